# shellcheck shell=bash
# Shared helpers for bench/peers/{install,start,stop}; sourced, never run.
# Progress and errors go to stderr, so that stdout carries only machine-readable lines.

# shellcheck disable=SC2034 # used by the scripts that source this
PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "peers: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints nothing and succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until 127.0.0.1:PORT accepts connections; fails after TIMEOUT seconds or as
# soon as process PID is gone.
wait_port() {
    local port=$1 pid=$2 deadline=$((SECONDS + $3))
    until port_open "$port"; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# Who holds a listening TCP port on this machine, for error messages.
port_holder() { ss -Hltnp "sport = :$1" 2>/dev/null | head -n 3; }

# Dies if any of the given ports is already taken (by something we did not start).
ensure_ports_free() {
    local p
    for p in "$@"; do
        if port_open "$p"; then
            die "port $p is already in use: $(port_holder "$p")"
        fi
    done
}

# A self-signed ECDSA P-256 certificate for `localhost` (the kind Pipit generates), an
# end-entity certificate (CA:FALSE) so that webpki-based clients accept it as pinned:
# DIR/cert.pem and DIR/key.pem, made once and kept.
make_cert() {
    local dir=$1
    if [[ -s $dir/cert.pem && -s $dir/key.pem ]]; then
        return
    fi
    log "generating a self-signed ECDSA P-256 certificate for localhost in $dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 3650 -sha256 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -addext basicConstraints=critical,CA:FALSE \
        -addext keyUsage=critical,digitalSignature \
        -addext extendedKeyUsage=serverAuth 2>/dev/null \
        || die "openssl could not make a certificate"
}

# True when DIR/pid names a live process whose command line mentions WORD.
running() {
    local dir=$1 word=$2 pid
    [[ -s $dir/pid ]] || return 1
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$word"
}

# PID's descendants, one a line (children first found, then theirs).
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$child"
        descendants "$child"
    done
}

# True while any of the given PIDs is alive (exited but unreaped counts as gone).
any_alive() {
    local p
    for p in "$@"; do
        if kill -0 "$p" 2>/dev/null && [[ $(ps -o stat= -p "$p" 2>/dev/null) != Z* ]]; then
            return 0
        fi
    done
    return 1
}

# Ends PID, its process group and every descendant (Erlang's helpers, such as
# erl_child_setup, put themselves in groups of their own): SIGTERM, up to TIMEOUT
# seconds for them all to exit, then SIGKILL.
kill_group() {
    local pid=$1 timeout=$2 ticks=$(($2 * 10)) pids
    mapfile -t pids < <(echo "$pid"; pgrep -g "$pid" 2>/dev/null || true; descendants "$pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    while any_alive "${pids[@]}"; do
        if ((ticks-- <= 0)); then
            log "pid $pid and its children did not exit within ${timeout}s; sending SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || true
            kill -KILL "${pids[@]}" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
    done
}

# Prints the last lines of each file that exists, for a failed start.
log_tail() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f" >&2
        tail -n 30 "$f" >&2
    done
}

SERVICE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Runs a command as USER with a clean environment (plus any NAME=VALUE given before
# the command) and root's PATH (ejabberdctl is in /usr/sbin).
as_user() {
    local user=$1
    shift
    setpriv --reuid="$user" --regid="$user" --init-groups --reset-env \
        env PATH="$SERVICE_PATH" "$@"
}

# Starts a command like as_user, in the background with stdout and stderr to OUT,
# and sets LAUNCHED_PID. setsid, setpriv and env all exec, so that PID is the server's
# own, and it leads a new process group (which stop ends as a whole).
launch_as() {
    local user=$1 out=$2
    shift 2
    setsid setpriv --reuid="$user" --regid="$user" --init-groups --reset-env \
        env PATH="$SERVICE_PATH" "$@" >"$out" 2>&1 </dev/null &
    # shellcheck disable=SC2034 # read by the caller
    LAUNCHED_PID=$!
}

# Makes DIR (and its parents) and claims it for SERVER; dies if another server owns it.
claim_dir() {
    local server=$1 dir=$2 other
    mkdir -p "$dir"
    if [[ -s $dir/server ]]; then
        other=$(<"$dir/server")
        [[ $other == "$server" ]] || die "$dir belongs to $other; use one DIR per server"
    fi
    echo "$server" >"$dir/server"
}

# Fails with a clear message when USER cannot reach DIR (a parent not searchable).
check_reachable() {
    local user=$1 dir=$2
    setpriv --reuid="$user" --regid="$user" --init-groups test -x "$dir" \
        || die "user $user cannot reach $dir (a parent directory is not searchable); use a DIR under /tmp"
}

peer_users() { echo "${PEER_USERS:-alice bob}"; }
peer_password() { echo "${PEER_PASSWORD:-pencil}"; }

# After a server was launched: if the script then fails, run COMMAND ARGS... (the
# server's stop), so that a failed start leaves nothing running. Cleared by
# stop_on_failure_done.
stop_on_failure() {
    # shellcheck disable=SC2064 # expand the command now
    trap "status=\$?; if ((status != 0)); then $(printf '%q ' "$@"); fi" EXIT
}
stop_on_failure_done() { trap - EXIT; }
