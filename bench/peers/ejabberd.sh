# shellcheck shell=bash
# ejabberd for bench/peers/start and stop; sourced, never run.
#
# Runs as the `ejabberd` user (as Debian's service does; Debian's ejabberdctl switches
# root to it anyway), so DIR is chowned to it. Erlang distribution goes over
# 127.0.0.1:$PEER_EJABBERD_DIST_PORT without epmd, and the cookie lives in DIR/home.
# Files in DIR: ejabberd/ (ejabberd.yml and ejabberdctl.cfg, rewritten on every start),
# cert.pem/key.pem and ejabberd.pem (both in one, as ejabberd wants), spool/ (Mnesia:
# the accounts), log/ (ejabberd.log, error.log), ejabberd.out (stdout/stderr: only
# critical messages), home/ (the Erlang cookie), pid.

EJABBERD_C2S_PORT=${PEER_EJABBERD_C2S_PORT:-25222}
EJABBERD_TLS_PORT=${PEER_EJABBERD_TLS_PORT:-25223}
EJABBERD_DIST=${PEER_EJABBERD_DIST_PORT:-25999}

ejabberd_config() {
    local dir=$1 hash
    case ${PEER_SCRAM_HASH:-sha1} in
        sha1) hash=sha ;;
        sha256) hash=sha256 ;;
        *) die "PEER_SCRAM_HASH must be sha1 or sha256" ;;
    esac
    cat >"$dir/ejabberd/ejabberdctl.cfg" <<CFG
# Written by bench/peers/start on every start.
ERLANG_NODE=ejabberd@localhost
ERL_DIST_PORT=$EJABBERD_DIST
INET_DIST_INTERFACE=127.0.0.1
EJABBERD_BYPASS_WARNINGS=true
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
CFG
    cat >"$dir/ejabberd/ejabberd.yml" <<CFG
# Written by bench/peers/start on every start: a loopback-only ejabberd for benchmarks.
#
# What Debian 12's ejabberd 23.01 has for what Pipit measures: stream management
# (mod_stream_mgmt, XEP-0198). It has no SASL2 (XEP-0388), Bind2 (XEP-0386) or FAST
# (XEP-0484): those came in later releases, and no Debian package adds them.
# SCRAM iterations are fixed at 4096 in this version (no option).

hosts:
  - localhost
loglevel: info
hide_sensitive_log_data: true
certfiles:
  - "$dir/ejabberd.pem"
acme:
  auto: false

auth_method: internal
auth_password_format: scram
auth_scram_hash: $hash

# No traffic shaping anywhere.
shaper: {}
shaper_rules: {}

listen:
  - port: $EJABBERD_C2S_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
    shaper: none
    backlog: 1024
    max_stanza_size: 262144
  - port: $EJABBERD_TLS_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
    shaper: none
    backlog: 1024
    max_stanza_size: 262144

s2s_access: none

modules:
  mod_disco: {}
  mod_roster: {}
  mod_ping: {}
  mod_carboncopy: {}
  mod_client_state: {}
  mod_stream_mgmt: {}
  # Only ejabberdctl commands (check_account, change_password), nothing on c2s.
  mod_admin_extra: {}
CFG
}

ejabberd_version() {
    dpkg-query -W -f='${Version}' ejabberd 2>/dev/null | sed 's/-[^-]*$//'
}

# ejabberdctl for the node in DIR, as the ejabberd user with a clean environment (an
# inherited EJABBERD_CONFIG_PATH would otherwise win over --config-dir).
ejabberd_ctl() {
    local dir=$1
    shift
    as_user ejabberd HOME="$dir/home" \
        ejabberdctl --config-dir "$dir/ejabberd" --logs "$dir/log" --spool "$dir/spool" "$@"
}

# Waits up to TIMEOUT seconds for the node in DIR to say it is started.
ejabberd_wait_started() {
    local dir=$1 deadline=$((SECONDS + $2))
    until ejabberd_ctl "$dir" status >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

ejabberd_start() {
    local dir=$1 pid user out
    command -v ejabberdctl >/dev/null || die "ejabberd is not installed: run bench/peers/install"
    if running "$dir" ejabberd; then
        log "ejabberd is already running in $dir (pid $(<"$dir/pid"))"
    else
        ensure_ports_free "$EJABBERD_C2S_PORT" "$EJABBERD_TLS_PORT" "$EJABBERD_DIST"
        make_cert "$dir"
        cat "$dir/cert.pem" "$dir/key.pem" >"$dir/ejabberd.pem"
        mkdir -p "$dir/ejabberd" "$dir/spool" "$dir/log" "$dir/home"
        ejabberd_config "$dir"
        touch "$dir/ejabberd/inetrc"
        rm -f "$dir/pid"
        chown -R ejabberd:ejabberd "$dir"
        chmod 700 "$dir/home"
        check_reachable ejabberd "$dir"
        log "starting ejabberd $(ejabberd_version) in $dir"
        launch_as ejabberd "$dir/ejabberd.out" HOME="$dir/home" ejabberdctl \
            --config-dir "$dir/ejabberd" --logs "$dir/log" --spool "$dir/spool" foreground-quiet
        pid=$LAUNCHED_PID
        echo "$pid" >"$dir/pid"
        stop_on_failure ejabberd_stop "$dir"
        if ! wait_port "$EJABBERD_C2S_PORT" "$pid" 30 || ! wait_port "$EJABBERD_TLS_PORT" "$pid" 5; then
            log_tail "$dir/ejabberd.out" "$dir/log/ejabberd.log" "$dir/log/error.log"
            die "ejabberd did not start listening on 127.0.0.1:$EJABBERD_C2S_PORT and :$EJABBERD_TLS_PORT"
        fi
    fi
    # Listening comes before the node has finished starting. (ejabberdctl's own
    # `started` would do, but it sleeps 2 s before it first asks.)
    ejabberd_wait_started "$dir" 30 || {
        log_tail "$dir/ejabberd.out" "$dir/log/error.log"
        die "ejabberd did not finish starting"
    }
    for user in $(peer_users); do
        # register refuses an existing account; change_password rehashes it, so the
        # password and PEER_SCRAM_HASH in force now always apply.
        if ejabberd_ctl "$dir" check_account "$user" localhost >/dev/null 2>&1; then
            out=$(ejabberd_ctl "$dir" change_password "$user" localhost "$(peer_password)" 2>&1) \
                || die "could not set the password of $user@localhost: $out"
        else
            out=$(ejabberd_ctl "$dir" register "$user" localhost "$(peer_password)" 2>&1) \
                || die "could not register $user@localhost: $out"
        fi
    done
    stop_on_failure_done
    log "ejabberd is up; accounts $(peer_users) @localhost, password $(peer_password)"
    echo "listening c2s=127.0.0.1:$EJABBERD_C2S_PORT direct-tls=127.0.0.1:$EJABBERD_TLS_PORT"
}

ejabberd_stop() {
    local dir=$1
    if running "$dir" ejabberd; then
        log "stopping ejabberd (pid $(<"$dir/pid"))"
        kill_group "$(<"$dir/pid")" 20
    else
        log "no ejabberd running in $dir"
    fi
    rm -f "$dir/pid"
}
