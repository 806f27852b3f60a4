#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the pipit-store conformance tests and prints
# its URL (the only thing written to stdout; progress goes to stderr).
#
#   URL=$(crates/pipit-store/tests/start-postgres.sh [DIR] [PORT])
#   PIPIT_TEST_POSTGRES_URL=$URL cargo test -p pipit-store
#   crates/pipit-store/tests/start-postgres.sh --stop [DIR]    # or: pg_ctl stop -D DIR/data
#
# DIR defaults to /tmp/pipit-pg, PORT to 55432. The cluster lives in DIR/data, its Unix
# socket and log (DIR/postgres.log) in DIR; it listens on 127.0.0.1 only, trusts every
# local connection, and runs with fsync off: for tests, never for data you want to keep.
# Idempotent: installs PostgreSQL (Debian/Ubuntu, as root) only if missing, runs initdb
# only if DIR/data is not a cluster yet, starts it only if it is not running, creates
# the database only if missing. Remove DIR to start from scratch.
#
# As root, the server runs as the `postgres` user (initdb refuses root), so DIR and its
# parents must be reachable by that user; /tmp is.
set -euo pipefail

log() { echo "start-postgres: $*" >&2; }
die() { log "$*"; exit 1; }

stop=false
if [[ ${1:-} == --stop ]]; then
    stop=true
    shift
fi
dir=${1:-/tmp/pipit-pg}
port=${2:-55432}
db=pipit_test
[[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data

# Runs a PostgreSQL server binary as the postgres user when we are root.
as_pg() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The newest installed server's bin directory, or nothing.
find_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $d && -x $d/initdb ]]; then
        echo "$d"
    elif command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/initdb ]]; then
        pg_config --bindir
    fi
}

bindir=$(find_bindir)
if [[ -z $bindir ]]; then
    $stop && die "PostgreSQL is not installed, so nothing to stop"
    [[ $(id -u) == 0 ]] || die "PostgreSQL is not installed; run me as root to install it"
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql >&2 || { apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2; }
    bindir=$(find_bindir)
    [[ -n $bindir ]] || die "installed postgresql but found no initdb"
fi

if $stop; then
    if [[ -f $data/PG_VERSION ]] && as_pg "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1; then
        as_pg "$bindir/pg_ctl" stop -D "$data" -m fast -w >&2
    else
        log "no cluster running in $data"
    fi
    exit 0
fi

if [[ $(id -u) == 0 ]]; then
    chown postgres: "$dir"
fi

# Two callers starting the same DIR at once take turns.
exec 9>"$dir/.lock"
flock 9

if [[ ! -f $data/PG_VERSION ]]; then
    rm -rf "$data" # a half-made cluster from an interrupted run
    log "initdb $data"
    as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C -N >/dev/null
fi

if as_pg "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1; then
    # Already running, maybe on another port from an earlier call: report the real one.
    running_port=$(sed -n 4p "$data/postmaster.pid")
    if [[ $running_port != "$port" ]]; then
        log "already running in $data on port $running_port (not $port); using that"
        port=$running_port
    fi
else
    log "starting on 127.0.0.1:$port"
    if ! as_pg "$bindir/pg_ctl" start -D "$data" -l "$dir/postgres.log" -w -t 30 -o \
        "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >/dev/null 9>&-; then # 9>&-: the server must not inherit (and hold) the lock
        tail -n 20 "$dir/postgres.log" >&2 || true
        die "could not start PostgreSQL (is port $port taken?)"
    fi
fi

psql=("$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA)
if [[ $("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'") != 1 ]]; then
    log "creating database $db"
    # An ICU en-US collation where the server has one (PostgreSQL 15+ with ICU): it sorts
    # "alice" before "Zed", unlike byte order, so the suite checks the store sorts right
    # whatever the database's locale.
    "${psql[@]}" -d postgres -c "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' \
        LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'" >/dev/null 2>&1 ||
        "${psql[@]}" -d postgres -c "CREATE DATABASE $db" >/dev/null
fi

echo "postgres://postgres@127.0.0.1:$port/$db"
