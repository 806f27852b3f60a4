#!/usr/bin/env python3
"""Writes docs/pipelining.md from a real run: `pipit check` and
`pipit login --mode all --rtt 100ms` against Pipit, Prosody and ejabberd, side by side.

    cargo build --release && python3 bench/pipelining_report.py

Needs root (the peers come from Debian's packages; bench/peers/install installs them).
Every server listens on loopback only and is stopped at the end.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPIT = ROOT / "target" / "release" / "pipit"
PEERS = ROOT / "bench" / "peers"
USER, PASSWORD = "alice", "pencil"
RTT = "100ms"
LISTENING = re.compile(r"listening c2s=(\S+) direct-tls=(\S+)")


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def start_pipit(work):
    data = work / "pipit"
    proc = subprocess.Popen(
        [PIPIT, "serve", "--data-dir", data, "--c2s-addr", "127.0.0.1:0",
         "--direct-tls-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = LISTENING.search(line)
        if m:
            break
    else:
        sys.exit("pipit serve did not start")
    added = run([PIPIT, "user", "add", f"{USER}@localhost", "--password", PASSWORD,
                 "--data-dir", data])
    if added.returncode:
        sys.exit(added.stderr)
    return {"name": "Pipit", "c2s": m[1], "direct": m[2],
            "ca": data / "tls" / "selfsigned-cert.pem", "stop": proc.terminate,
            "version": run([PIPIT, "--version"]).stdout.strip()}


def start_peer(name, work):
    directory = work / name
    # SCRAM-SHA-256 on every server, so the SCRAM rows compare like with like.
    env = dict(os.environ, PEER_SCRAM_HASH="sha256")
    started = run([PEERS / "start", name, directory], env=env)
    m = LISTENING.search(started.stdout)
    if started.returncode or not m:
        sys.exit(f"{name} did not start:\n{started.stdout}\n{started.stderr}")
    return {"name": name.capitalize(), "c2s": m[1],
            "direct": m[2], "ca": directory / "cert.pem",
            "stop": lambda: run([PEERS / "stop", name, directory]),
            "version": version_of(name)}


def version_of(name):
    out = run([PEERS / "versions"]).stdout
    for line in out.splitlines():
        if line.lower().startswith(name):
            return line.strip()
    return name


def check(server):
    out = run([PIPIT, "check", server["c2s"], "--direct-tls", server["direct"],
               "--jid", f"{USER}@localhost", "--password", PASSWORD,
               "--ca", server["ca"], "--json"], timeout=600)
    try:
        return {c["check"]: c for c in json.loads(out.stdout)}
    except json.JSONDecodeError:
        sys.exit(f"pipit check failed against {server['name']}:\n{out.stderr}")


def login(server, mech):
    out = run([PIPIT, "login", f"{USER}@localhost", "--password", PASSWORD,
               "--server", server["c2s"], "--direct-tls", server["direct"],
               "--mode", "all", "--rtt", RTT, "--mech", mech, "--ca", server["ca"],
               "--timeout", "10s",
               "--json"], timeout=600)
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return [{"mode": "all", "ok": False, "error": out.stderr.strip()}]


def main():
    if not PIPIT.exists():
        sys.exit("build first: cargo build --release")
    subprocess.run([PEERS / "install"], check=True)
    work = Path(tempfile.mkdtemp(prefix="pipit-report-"))
    work.chmod(0o755)  # the peers run as their own system users
    servers = []
    try:
        servers.append(start_pipit(work))
        for peer in ("prosody", "ejabberd"):
            servers.append(start_peer(peer, work))
        checks = {s["name"]: check(s) for s in servers}
        logins = {(s["name"], mech): login(s, mech)
                  for s in servers for mech in ("PLAIN", "SCRAM-SHA-256")}
    finally:
        for s in servers:
            s["stop"]()
        shutil.rmtree(work, ignore_errors=True)
    write(servers, checks, logins)


def cell(finding):
    if finding is None:
        return "—"
    mark = {"pass": "pass", "fail": "**fail**", "not-offered": "not offered"}
    text = mark.get(finding["result"], finding["result"])
    detail = finding.get("detail", "")
    return f"{text}: {detail}" if detail else text


def write(servers, checks, logins):
    names = [s["name"] for s in servers]
    lines = [
        "# Pipelining: Pipit, Prosody and ejabberd side by side",
        "",
        "Generated from one real run on this machine by",
        "",
        "```sh",
        "cargo build --release && python3 bench/pipelining_report.py",
        "```",
        "",
        f"on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores. All servers on loopback, domain `localhost`, "
        "self-signed ECDSA P-256 certificates, an account `alice`.",
        "",
        "Versions: " + "; ".join(s["version"] for s in servers) + ".",
        "",
        "## `pipit check`: which pipelined forms each server accepts",
        "",
        "| check | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    all_checks = list(dict.fromkeys(c for n in names for c in checks[n]))
    for c in all_checks:
        lines.append(f"| `{c}` | " + " | ".join(cell(checks[n].get(c)) for n in names) + " |")
    passed = [sum(1 for f in checks[n].values() if f["result"] == "pass") for n in names]
    lines.append("| **passed** | " + " | ".join(
        f"**{p} of {len(checks[n])}**" for p, n in zip(passed, names)) + " |")
    lines += [
        "",
        "A `SECURITY` failure of `plaintext-after-starttls-ignored` means the server",
        "answered, as XMPP, bytes that arrived in plaintext behind `<starttls/>` (the",
        "STARTTLS command-injection class, CVE-2011-0411): the probe sends a decoy",
        "password there, and any XMPP reply proves the bytes were parsed.",
    ]
    lines += [
        "",
        f"## `pipit login --mode all --rtt {RTT}`: round trips and time",
        "",
        "Round trips count from TCP connect (one) to the bound resource; times are wall",
        "clock through a userspace relay adding 50 ms each way (the client waits one",
        "round trip after connect, as the TCP handshake would make it). `first stanza` is",
        "the message the client sent itself coming back. The modes run in order on one",
        "TLS configuration and share what the first login learned, so later modes",
        "pipeline and resume TLS sessions. The `fast-0rtt` login leaves its session",
        "detached (XEP-0198) and `sm-resume` takes it back inline in SASL2; a server",
        "that grants no resumption to a SASL2 login leaves `sm-resume` nothing to resume.",
        "",
    ]
    for mech in ("PLAIN", "SCRAM-SHA-256"):
        lines += [
            f"### {mech}",
            "",
            "| mode | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        modes = list(dict.fromkeys(r["mode"] for n in names for r in logins[(n, mech)]))
        for mode in modes:
            row = []
            for n in names:
                r = next((r for r in logins[(n, mech)] if r["mode"] == mode), None)
                if r is None:
                    row.append("—")
                elif not r.get("ok"):
                    row.append(f"failed: {r.get('error', '')}")
                else:
                    resumed = ", resumed" if r.get("resumed") else ""
                    row.append(f"{r['round_trips']} RTT, {round(r['login_ms'])} ms "
                               f"(first stanza {round(r['first_stanza_ms'])} ms; "
                               f"{r['tls']}{resumed})")
            lines.append(f"| {mode} | " + " | ".join(row) + " |")
        lines.append("")
    out = ROOT / "docs" / "pipelining.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
