//! `pipit check` end to end: against a real Pipit (every check passes, with the round
//! trips the README promises), with a wrong password, against an unreachable port, and
//! against fake servers that hang, babble or act on plaintext after `<starttls/>`.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// One object of `pipit check --json`.
#[derive(Debug)]
struct Row {
    check: String,
    result: String,
    detail: String,
    round_trips: Option<u64>,
}

/// Parses the JSON array `pipit check --json` prints.
fn rows(json: &str) -> Vec<Row> {
    let value: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{json}"));
    let rows: Vec<Row> = value
        .as_array()
        .expect("an array")
        .iter()
        .map(|o| Row {
            check: o["check"].as_str().expect("check").to_owned(),
            result: o["result"].as_str().expect("result").to_owned(),
            detail: o["detail"].as_str().expect("detail").to_owned(),
            round_trips: o.get("round_trips").and_then(|n| n.as_u64()),
        })
        .collect();
    assert_eq!(rows.len(), 10, "ten checks expected:\n{json}");
    for r in &rows {
        assert!(
            ["pass", "fail", "not-offered"].contains(&r.result.as_str()),
            "{r:#?}"
        );
    }
    rows
}

fn row<'a>(rows: &'a [Row], check: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.check == check)
        .unwrap_or_else(|| panic!("no {check} in {rows:#?}"))
}

fn addr(a: std::net::SocketAddr) -> String {
    a.to_string()
}

/// `pipit check` against a running Pipit as alice with `password`.
fn check_pipit(server: &Server, password: &str) -> Vec<Row> {
    let cafile = server.cafile();
    let out = pipit_ok(&[
        "check",
        &addr(server.c2s),
        "--direct-tls",
        &addr(server.direct_tls),
        "--jid",
        "alice@localhost",
        "--password",
        password,
        "--ca",
        cafile.to_str().unwrap(),
        "--json",
    ]);
    rows(&out)
}

#[test]
fn every_check_passes_against_pipit_with_the_promised_round_trips() {
    let server = Server::start();
    server.add_user(("alice@localhost", "pw"));
    let rows = check_pipit(&server, "pw");
    for r in &rows {
        assert_eq!(
            r.result,
            "pass",
            "{r:#?}\n--- server log ---\n{}",
            server.log_tail()
        );
    }
    // TLS 1.3; connect counts as one (README "Measured round trips"). The baseline uses
    // SCRAM (one more round trip than PLAIN), the pipelined forms PLAIN.
    let expected = [
        ("lockstep-login", 10),
        ("starttls-pipelined", 4),
        ("stunt-clienthello", 3),
        ("auth-restart-bind-pipelined", 5),
        ("auth-restart-bind-pipelined-no-xml-decl", 5),
        ("sasl-failure-pipelined-restart", 6),
        ("direct-tls", 3),
    ];
    for (check, n) in expected {
        assert_eq!(row(&rows, check).round_trips, Some(n), "{check}: {rows:#?}");
    }
    assert!(
        row(&rows, "lockstep-login")
            .detail
            .contains("TLS 1.3, SCRAM-SHA-256, lockstep"),
        "{rows:#?}"
    );
    assert!(
        row(&rows, "sasl-failure-pipelined-restart")
            .detail
            .starts_with("graceful:")
    );
    assert!(row(&rows, "direct-tls").detail.contains("ALPN xmpp-client"));
    assert!(
        row(&rows, "tls12-resumption")
            .detail
            .contains("handshake round trips: 2 then 1")
    );
}

#[test]
fn the_table_is_readable_and_verbose_shows_the_transcript() {
    let server = Server::start();
    server.add_user(("alice@localhost", "pw"));
    let cafile = server.cafile();
    let out = pipit_ok(&[
        "check",
        &addr(server.c2s),
        "--jid",
        "alice@localhost",
        "--password",
        "pw",
        "--ca",
        cafile.to_str().unwrap(),
        "--verbose",
    ]);
    assert!(out.contains("check  "), "{out}");
    assert!(out.contains("stunt-clienthello"), "{out}");
    assert!(
        out.contains("C: header + <starttls/>, then in TLS"),
        "the stunt flight is described: {out}"
    );
    assert!(out.contains("S: <proceed xmlns="), "{out}");
    assert!(out.contains("9 passed, 0 failed, 1 not offered"), "{out}");
    assert!(
        !out.contains("AGFsaWNlAHB3"),
        "the password (base64 in PLAIN) must not appear: {out}"
    );
}

#[test]
fn a_wrong_password_fails_the_login_checks_with_a_clear_detail() {
    let server = Server::start();
    server.add_user(("alice@localhost", "pw"));
    let rows = check_pipit(&server, "not-the-password");
    for check in [
        "lockstep-login",
        "starttls-pipelined",
        "stunt-clienthello",
        "auth-restart-bind-pipelined",
        "auth-restart-bind-pipelined-no-xml-decl",
        "direct-tls",
    ] {
        let r = row(&rows, check);
        assert_eq!(r.result, "fail", "{r:#?}");
        assert!(
            r.detail
                .contains("authentication failed: <not-authorized/>"),
            "{r:#?}"
        );
        assert_eq!(r.round_trips, None, "{r:#?}");
    }
    let r = row(&rows, "sasl-failure-pipelined-restart");
    assert_eq!(r.result, "fail");
    assert!(r.detail.contains("are the credentials right?"), "{r:#?}");
    // What needs no credentials still passes.
    for check in [
        "plaintext-after-starttls-ignored",
        "tls13-resumption",
        "tls12-resumption",
    ] {
        assert_eq!(row(&rows, check).result, "pass", "{rows:#?}");
    }
}

#[test]
fn an_unreachable_port_is_a_clear_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let target = format!("127.0.0.1:{port}");
    let err = pipit_err(&[
        "check",
        &target,
        "--jid",
        "alice@localhost",
        "--password",
        "pw",
        "--insecure",
    ]);
    assert!(
        err.contains(&format!("cannot connect to {target}")),
        "{err}"
    );
}

#[test]
fn usage_mistakes_say_what_to_fix() {
    let err = pipit_err(&["check", "localhost", "--jid", "a@b", "--password", "x"]);
    assert!(err.contains("is not HOST:PORT"), "{err}");
    let err = pipit_err(&[
        "check",
        "127.0.0.1:5222",
        "--jid",
        "localhost",
        "--password",
        "x",
        "--insecure",
    ]);
    assert!(err.contains("has no localpart"), "{err}");
    let err = pipit_err(&[
        "check",
        "127.0.0.1:5222",
        "--jid",
        "a@localhost",
        "--password",
        "x",
        "--ca",
        "/nonexistent/ca.pem",
    ]);
    assert!(err.contains("/nonexistent/ca.pem: No such file"), "{err}");
}

/// A fake server on port 0: `serve` runs on every connection, each in its own thread.
fn fake_server(serve: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// `pipit check` against a fake server, with a one-second timeout.
fn check_fake(addr: &str) -> (Output, Duration) {
    let started = Instant::now();
    let out = pipit(&[
        "check",
        addr,
        "--jid",
        "alice@localhost",
        "--password",
        "pw",
        "--insecure",
        "--timeout",
        "1",
        "--json",
    ]);
    (out, started.elapsed())
}

const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='x' version='1.0'>";
const FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
    </stream:features>";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_silent_server_is_reported_as_hung_within_the_timeout() {
    let addr = fake_server(|mut stream| {
        let mut buf = [0u8; 4096];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    });
    let (out, took) = check_fake(&addr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    for r in rows(&stdout) {
        if r.check == "direct-tls" {
            assert_eq!(r.result, "not-offered");
        } else {
            assert_eq!(r.result, "fail", "{r:#?}");
            assert!(r.detail.contains("no answer within 1 s"), "{r:#?}");
        }
    }
}

#[test]
fn a_server_that_babbles_binary_is_survived() {
    let addr = fake_server(|mut stream| {
        let mut noise = Vec::new();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..70_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push((x >> 24) as u8);
        }
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(SERVER_HEADER.as_bytes());
        let _ = stream.write_all(FEATURES.as_bytes());
        let _ = stream.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        let _ = stream.write_all(&noise);
    });
    let (out, _) = check_fake(&addr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for r in rows(&stdout) {
        assert_ne!(r.result, "pass", "{r:#?}");
    }
}

#[test]
fn a_server_acting_on_plaintext_after_starttls_is_a_security_finding() {
    // Answers the header, then <starttls/>, then (wrongly) a plaintext <auth/>; hangs up on
    // a ClientHello, so that the other checks end at once.
    let addr = fake_server(|mut stream| {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let (mut opened, mut proceeded, mut succeeded) = (false, false, false);
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(2).any(|w| w == b"\x16\x03") {
                break;
            }
            if !opened && contains(&seen, "<stream:stream") {
                opened = true;
                let _ = stream.write_all(format!("{SERVER_HEADER}{FEATURES}").as_bytes());
            }
            if opened && !proceeded && contains(&seen, "<starttls") {
                proceeded = true;
                let _ = stream.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
            }
            if proceeded && !succeeded && contains(&seen, "<auth") {
                succeeded = true;
                let _ = stream.write_all(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
            }
        }
    });
    let (out, _) = check_fake(&addr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let rows = rows(&stdout);
    let r = row(&rows, "plaintext-after-starttls-ignored");
    assert_eq!(r.result, "fail", "{r:#?}");
    assert!(r.detail.starts_with("SECURITY:"), "{r:#?}");
}
