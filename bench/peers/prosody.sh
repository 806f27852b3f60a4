# shellcheck shell=bash
# Prosody for bench/peers/start and stop; sourced, never run.
#
# Runs as the `prosody` user (as Debian's service does), so DIR is chowned to it.
# Files in DIR: prosody.cfg.lua and modules/ (rewritten on every start), cert.pem and
# key.pem, certs/ (empty: Prosody indexes it, the config names the files), data/
# (accounts), prosody.log (Prosody's log), prosody.out (its stdout/stderr), pid.

PROSODY_C2S_PORT=${PEER_PROSODY_C2S_PORT:-15222}
PROSODY_TLS_PORT=${PEER_PROSODY_TLS_PORT:-15223}

# True when Prosody can load module NAME from its own or prosody-modules' directory.
prosody_has_module() {
    [[ -e /usr/lib/prosody/modules/mod_$1.lua || -e /usr/lib/prosody/modules/mod_$1/mod_$1.lua ]]
}

# The modules_enabled entries for SASL2 and friends: those Debian ships, unless
# PEER_PROSODY_SASL2=0.
prosody_sasl2_modules() {
    local m list=()
    [[ ${PEER_PROSODY_SASL2:-1} == 1 ]] || return 0
    for m in sasl2 sasl2_bind2 sasl2_fast; do
        prosody_has_module "$m" && list+=("\"$m\";")
    done
    ((${#list[@]})) || return 0
    # Debian 12's prosody-modules snapshot needs bench_compat on Prosody 0.12.
    if dpkg --compare-versions "$(prosody_version)" lt 13; then
        list=("\"bench_compat\";" "${list[@]}")
    fi
    echo "${list[*]}"
}

prosody_config() {
    local dir=$1 hash direct_tls nagle=false
    [[ ${PEER_PROSODY_NAGLE:-0} == 1 ]] && nagle=true
    case ${PEER_SCRAM_HASH:-sha1} in
        sha1) hash=SHA-1 ;;
        sha256) hash=SHA-256 ;;
        *) die "PEER_SCRAM_HASH must be sha1 or sha256" ;;
    esac
    # Prosody 0.12 names the Direct TLS (XEP-0368) listener c2s_direct_tls; older
    # versions call it legacy_ssl.
    if dpkg --compare-versions "$(prosody_version)" ge 0.12; then
        direct_tls=c2s_direct_tls
    else
        direct_tls=legacy_ssl
    fi
    cat >"$dir/prosody.cfg.lua" <<CFG
-- Written by bench/peers/start on every start: a loopback-only Prosody for benchmarks.
--
-- Modules for what Pipit measures, as Debian 12 ships them (prosody 0.12.3,
-- prosody-modules 0.0~hg20230223, which installs into /usr/lib/prosody/modules/):
--   stream management (XEP-0198): "smacks", in Prosody itself;
--   SASL2 (XEP-0388) "sasl2", Bind2 (XEP-0386) "sasl2_bind2", FAST (XEP-0484)
--   "sasl2_fast": from prosody-modules, each enabled only if installed, none with
--   PEER_PROSODY_SASL2=0;
--   SM inside SASL2/Bind2 "sasl2_sm": shipped, but not enabled: it needs mod_smacks
--   functions that 0.12 lacks (a client enables SM after Bind2 the classic way).
-- The snapshot was written for Prosody's development branch; "bench_compat"
-- (bench/peers/prosody-modules, copied to DIR/modules) fills in what 0.12 lacks.

daemonize = false
-- Prosody 0.12 leaves Nagle's algorithm on (its default, nagle = true); with a
-- client's delayed ACKs that adds ~45 ms to every login on loopback. Pipit and
-- ejabberd set TCP_NODELAY, so it is off here unless PEER_PROSODY_NAGLE=1. The accept
-- backlog is 1024 as on the ejabberd listeners (and tokio's default), not 128.
network_settings = { nagle = $nagle; tcp_backlog = 1024 }
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
plugin_paths = { "$dir/modules" }
certificates = "$dir/certs"
log = { { levels = { min = "info" }, to = "file", filename = "$dir/prosody.log" } }

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $PROSODY_C2S_PORT }
c2s_interfaces = { "127.0.0.1" }
${direct_tls}_ports = { $PROSODY_TLS_PORT }
${direct_tls}_interfaces = { "127.0.0.1" }
s2s_ports = { }
http_ports = { }
https_ports = { }

c2s_require_encryption = true
allow_registration = false
authentication = "internal_hashed"
password_hash = "$hash"
default_iteration_count = 4096

-- No "limits" module is loaded, so c2s has no rate limits (the packaged config has
-- 10kb/s); the stanza size limit stays at its default of 256 KiB.
modules_enabled = {
    "posix"; "saslauth"; "tls"; "disco"; "roster"; "ping"; "carbons"; "csi_simple";
    "smacks";
    $(prosody_sasl2_modules)
}
modules_disabled = { "s2s"; "limits" }

ssl = { certificate = "$dir/cert.pem"; key = "$dir/key.pem" }
-- XEP-0368: answer a Direct TLS client's ALPN "xmpp-client" (0.12 sets none itself).
${direct_tls}_ssl = { certificate = "$dir/cert.pem"; key = "$dir/key.pem"; alpn = { "xmpp-client" } }

VirtualHost "localhost"
CFG
}

prosody_version() {
    dpkg-query -W -f='${Version}' prosody 2>/dev/null | sed 's/-[^-]*$//'
}

prosody_ctl() {
    local dir=$1
    shift
    # As root, prosodyctl switches to the prosody user by itself.
    prosodyctl --config "$dir/prosody.cfg.lua" "$@"
}

prosody_start() {
    local dir=$1 pid user
    command -v prosody >/dev/null || die "prosody is not installed: run bench/peers/install"
    [[ $dir != *[\"\\]* ]] || die "DIR must not contain quotes or backslashes"
    if running "$dir" prosody; then
        log "prosody is already running in $dir (pid $(<"$dir/pid"))"
    else
        ensure_ports_free "$PROSODY_C2S_PORT" "$PROSODY_TLS_PORT"
        make_cert "$dir"
        mkdir -p "$dir/data" "$dir/certs"
        rm -rf "$dir/modules"
        cp -r "$PEERS_DIR/prosody-modules" "$dir/modules"
        prosody_config "$dir"
        rm -f "$dir/pid" "$dir/prosody.pid"
        : >"$dir/prosody.log"
        chown -R prosody:prosody "$dir"
        check_reachable prosody "$dir"
        log "starting prosody $(prosody_version) in $dir"
        launch_as prosody "$dir/prosody.out" prosody --config "$dir/prosody.cfg.lua" -F
        pid=$LAUNCHED_PID
        echo "$pid" >"$dir/pid"
        stop_on_failure prosody_stop "$dir"
        if ! wait_port "$PROSODY_C2S_PORT" "$pid" 30 || ! wait_port "$PROSODY_TLS_PORT" "$pid" 5; then
            log_tail "$dir/prosody.out" "$dir/prosody.log"
            die "prosody did not start listening on 127.0.0.1:$PROSODY_C2S_PORT and :$PROSODY_TLS_PORT"
        fi
    fi
    for user in $(peer_users); do
        prosody_ctl "$dir" register "$user" localhost "$(peer_password)" >&2 \
            || die "could not register $user@localhost"
    done
    stop_on_failure_done
    log "prosody is up; accounts $(peer_users) @localhost, password $(peer_password)"
    echo "listening c2s=127.0.0.1:$PROSODY_C2S_PORT direct-tls=127.0.0.1:$PROSODY_TLS_PORT"
}

prosody_stop() {
    local dir=$1
    if running "$dir" prosody; then
        log "stopping prosody (pid $(<"$dir/pid"))"
        kill_group "$(<"$dir/pid")" 15
    else
        log "no prosody running in $dir"
    fi
    rm -f "$dir/pid"
}
