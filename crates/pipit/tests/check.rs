//! `pipit check` end to end: against a real Pipit (every check passes, with the round
//! trips the README promises), with a wrong password, against an unreachable port, and
//! against fake servers that hang, babble, act on plaintext after `<starttls/>`, offer
//! SASL2 in part or with a config version they do not check, or offer FAST tokens that
//! replay, outlive their invalidation or come with a wrong proof.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    assert_eq!(rows.len(), 18, "eighteen checks expected:\n{json}");
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
        // Over Direct TLS: the features, then SASL2 PLAIN with Bind2.
        ("sasl2-bind2", 4),
        // XEP-0509: header and <authenticate/> leave with the client's Finished.
        ("iap-pipelined", 3),
        // The refusal of a made-up version, then the retry on the same stream.
        ("iap-stale-version-refused", 4),
        // XEP-0484: header + the token login leave with the client's Finished.
        ("fast-token", 3),
        // The repeated count refused, then a greater one on the same stream.
        ("fast-replay-refused", 4),
        // The invalidating login (pipelined as in fast-token).
        ("fast-invalidate", 3),
        // TLS 1.3 0-RTT: header + the token login ride as early data with the
        // ClientHello; <success/> comes in the server's first flight.
        ("fast-0rtt", 2),
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
        row(&rows, "fast-0rtt")
            .detail
            .contains("SASL2 HT-SHA-256-ENDP token (count 1) in TLS 1.3 early data, accepted"),
        "{rows:#?}"
    );
    for check in ["sasl2-bind2", "iap-pipelined", "iap-stale-version-refused"] {
        let detail = &row(&rows, check).detail;
        assert!(
            detail.contains("bound alice@localhost/pipit-check."),
            "{detail}"
        );
        assert!(detail.contains("(TLS 1.3, Direct TLS, "), "{detail}");
        assert!(detail.contains("SASL2 PLAIN + Bind2"), "{detail}");
    }
    assert!(
        row(&rows, "iap-stale-version-refused")
            .detail
            .starts_with("<failure/> <aborted/> + <config-version-mismatch/>; the message pipelined behind it was answered <not-authorized/>;"),
        "{rows:#?}"
    );
    // TLS 1.3, so the tokens are bound to the channel (tls-exporter).
    for check in ["fast-token", "fast-replay-refused", "fast-invalidate"] {
        let detail = &row(&rows, check).detail;
        assert!(
            detail.contains("bound alice@localhost/pipit-check."),
            "{detail}"
        );
        assert!(
            detail.contains("(TLS 1.3, Direct TLS, ")
                && detail.contains("SASL2 HT-SHA-256-EXPR token + Bind2"),
            "{detail}"
        );
        assert!(detail.contains("the server's proof verified"), "{detail}");
    }
    assert!(
        row(&rows, "fast-token").detail.contains(
            "header + SASL2 HT-SHA-256-EXPR token + Bind2 + config version in one flight); \
             the server's proof verified (the token, for HT-SHA-256-EXPR, came from a SASL2 \
             PLAIN login)"
        ),
        "{rows:#?}"
    );
    assert!(
        row(&rows, "fast-replay-refused").detail.starts_with(
            "count 1 again: <failure/> <not-authorized/>; the message pipelined behind it was \
             answered <not-authorized/>; count 2 on the same stream: bound"
        ),
        "{rows:#?}"
    );
    assert!(
        row(&rows, "fast-invalidate").detail.ends_with(
            "then count 2 on a new connection: <failure/> <not-authorized/>; the message \
             pipelined behind it was answered <not-authorized/>"
        ),
        "{rows:#?}"
    );
    assert!(
        row(&rows, "tls12-resumption")
            .detail
            .contains("handshake round trips: 2 then 1")
    );
    assert!(
        row(&rows, "0rtt-replay")
            .detail
            .starts_with("refused by TLS and by the count:"),
        "{rows:#?}"
    );
}

#[test]
fn the_0rtt_replay_check_is_refused_by_pipit_at_both_layers() {
    let server = Server::start();
    server.add_user(("alice@localhost", "pw"));
    let cafile = server.cafile();
    let out = pipit_ok(&[
        "check",
        &addr(server.c2s),
        "--direct-tls",
        &addr(server.direct_tls),
        "--jid",
        "alice@localhost",
        "--password",
        "pw",
        "--ca",
        cafile.to_str().unwrap(),
        "--json",
        "--verbose",
    ]);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    let replay = value
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["check"] == "0rtt-replay")
        .unwrap_or_else(|| panic!("no 0rtt-replay in {out}"));
    let (detail, evidence) = (
        replay["detail"].as_str().unwrap(),
        replay["evidence"].as_str().unwrap(),
    );
    assert_eq!(replay["result"], "pass", "{replay:#?}");
    // Pipit's tickets are single-use, so TLS skips the replayed early data; sent again
    // after the handshake, the authenticate's count is refused as already seen.
    assert!(
        detail.starts_with("refused by TLS and by the count: TLS rejected the replayed early data")
            && detail.contains(
                "the same <authenticate/> sent again after the handshake got <failure/> \
             <not-authorized/>"
            )
            && detail.contains("byte-identical to the original 0-RTT login's"),
        "{detail}"
    );
    // Five connections: the token, the certificate, the tickets, the original, the replay.
    for n in 1..=5 {
        assert!(
            evidence.contains(&format!("== connection {n}: ")),
            "{evidence}"
        );
    }
    assert!(
        evidence.contains("C: ClientHello + early data: the same again: header + authenticate"),
        "{evidence}"
    );
    assert!(!evidence.contains("secret-token:"), "{evidence}");
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
    assert!(out.contains("15 passed, 0 failed, 3 not offered"), "{out}");
    // Without --direct-tls the SASL2 and FAST checks go over STARTTLS.
    assert!(
        out.contains("6 round trips (TLS 1.3, STARTTLS, SASL2 PLAIN + Bind2 after the features)"),
        "{out}"
    );
    assert!(
        out.contains("5 round trips (TLS 1.3, STARTTLS, header + SASL2 PLAIN + Bind2 + config version in one flight)"),
        "{out}"
    );
    assert!(
        out.contains("5 round trips (TLS 1.3, STARTTLS, header + SASL2 HT-SHA-256-EXPR token + Bind2 + config version in one flight)"),
        "{out}"
    );
    assert!(
        out.contains("C: the end of the TLS handshake + header + authenticate HT-SHA-256-EXPR (FAST count 1) + Bind2"),
        "{out}"
    );
    assert!(
        !out.contains("AGFsaWNlAHB3"),
        "the password (base64 in PLAIN) must not appear: {out}"
    );
    // Nor the FAST tokens the server issued (Pipit's start with RFC 8959's scheme).
    assert!(out.contains("token='[hidden]'"), "{out}");
    assert!(!out.contains("secret-token:"), "{out}");
}

#[test]
fn a_wrong_password_fails_the_login_checks_with_a_clear_detail() {
    // Every check fails a login from this one address: with the failed-login
    // throttle on, the later ones would wait out its delays.
    let server = Server::start_with(&["--auth-max-delay-secs", "0"]);
    server.add_user(("alice@localhost", "pw"));
    let rows = check_pipit(&server, "not-the-password");
    for check in [
        "lockstep-login",
        "starttls-pipelined",
        "stunt-clienthello",
        "auth-restart-bind-pipelined",
        "auth-restart-bind-pipelined-no-xml-decl",
        "direct-tls",
        "sasl2-bind2",
        "iap-pipelined",
        "fast-token",
        "fast-replay-refused",
        "fast-invalidate",
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
    // The made-up version is refused as it should be; only the retry fails.
    let r = row(&rows, "iap-stale-version-refused");
    assert_eq!(r.result, "fail");
    assert!(
        r.detail
            .starts_with("<failure/> <aborted/> + <config-version-mismatch/>;")
            && r.detail.contains(
                "the retry on the same stream with the current version failed: \
                 authentication failed: <not-authorized/>"
            ),
        "{r:#?}"
    );
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

/// How a fake server does FAST (XEP-0484): HT-SHA-256-NONE only, tokens on request.
#[derive(Clone, Copy)]
struct FastFake {
    /// A count must be greater than any used with the token before (§3.4).
    check_count: bool,
    /// `invalidate='true'` ends the token (§3.6).
    honour_invalidate: bool,
    /// The proof in `<additional-data/>` is made with another token.
    wrong_proof: bool,
}

impl FastFake {
    const GOOD: FastFake = FastFake {
        check_count: true,
        honour_invalidate: true,
        wrong_proof: false,
    };
}

/// A fake server's FAST tokens, across its connections: the token and its last count.
type Tokens = Arc<Mutex<Vec<(String, u64)>>>;

/// What a fake Direct TLS server offers after TLS, and how it treats config versions.
#[derive(Clone, Copy)]
struct Sasl2Fake {
    /// The SASL2 mechanisms (PLAIN and SCRAM-SHA-256 work); none: no `<authentication/>`.
    mechanisms: &'static [&'static str],
    /// `<inline><bind xmlns='urn:xmpp:bind:0'/></inline>` is offered.
    bind2: bool,
    /// The config version announced, if any.
    version: Option<&'static str>,
    /// A pipelined `<authenticate/>` against another version is refused (XEP-0509).
    honour_version: bool,
    /// FAST is offered inside `<inline/>`, and done this way.
    fast: Option<FastFake>,
}

impl Sasl2Fake {
    fn features(&self) -> String {
        let mut auth = String::new();
        if !self.mechanisms.is_empty() {
            auth.push_str("<authentication xmlns='urn:xmpp:sasl:2'>");
            for m in self.mechanisms {
                auth.push_str(&format!("<mechanism>{m}</mechanism>"));
            }
            if self.bind2 || self.fast.is_some() {
                auth.push_str("<inline>");
                if self.bind2 {
                    auth.push_str("<bind xmlns='urn:xmpp:bind:0'/>");
                }
                if self.fast.is_some() {
                    auth.push_str(
                        "<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-NONE</mechanism></fast>",
                    );
                }
                auth.push_str("</inline>");
            }
            auth.push_str("</authentication>");
        }
        let version = self
            .version
            .map(|v| {
                format!("<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='{v}'/>")
            })
            .unwrap_or_default();
        format!(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms>{auth}{version}</stream:features>"
        )
    }

    /// One Direct TLS connection: SASL2 against alice/pw through the real server-side SASL
    /// code, and FAST tokens (kept in `tokens`) through the real HT code; a message after
    /// success comes back from the bound resource.
    fn serve(self, stream: TcpStream, tokens: Tokens) {
        use base64::Engine as _;
        use pipit_proto::sasl::{
            ChannelBindingInfo, HtMechanism, HtServer, HtTokenKey, Mechanism, ServerSession, Step,
            StoredCredentials, ht_token_string,
        };
        use pipit_proto::xml::{Limits, StreamEvent, StreamParser, ns};

        const JID: &str = "alice@localhost/pipit-check.fake";
        let b64 = base64::engine::general_purpose::STANDARD;
        let creds = StoredCredentials::derive("pw", b"fake-salt", 4096).unwrap();
        let conn = rustls::ServerConnection::new(pipit_testkit::server_tls()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, stream);
        let mut parser = StreamParser::new(Limits::default());
        let mut session: Option<ServerSession> = None;
        let mut bound = false;
        let mut buf = [0u8; 16 * 1024];
        let success = |data: Option<Vec<u8>>, token: Option<String>| {
            let data = data
                .map(|d| format!("<additional-data>{}</additional-data>", b64.encode(d)))
                .unwrap_or_default();
            let token = token
                .map(|t| {
                    format!(
                        "<token xmlns='urn:xmpp:fast:0' expiry='2099-01-01T00:00:00Z' token='{t}'/>"
                    )
                })
                .unwrap_or_default();
            format!(
                "<success xmlns='urn:xmpp:sasl:2'>{data}<authorization-identifier>{JID}\
                 </authorization-identifier><bound xmlns='urn:xmpp:bind:0'/>{token}</success>"
            )
        };
        // A new token for each request, unique across fakes.
        static ISSUED: AtomicU64 = AtomicU64::new(1);
        let issue = || {
            let n = ISSUED.fetch_add(1, Ordering::Relaxed).to_be_bytes();
            let token = ht_token_string(&n.repeat(4)).unwrap();
            tokens.lock().unwrap().push((token.clone(), 0));
            token
        };
        let mut request_token = false;
        let not_authorized = "<failure xmlns='urn:xmpp:sasl:2'>\
            <not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>";
        loop {
            let n = match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            parser.feed(&buf[..n]);
            let mut out = String::new();
            while let Ok(Some(event)) = parser.next_event() {
                let e = match event {
                    StreamEvent::Open(_) => {
                        out.push_str(SERVER_HEADER);
                        out.push_str(&self.features());
                        continue;
                    }
                    StreamEvent::Close => return,
                    StreamEvent::Element(e) => e,
                };
                let data = |name: &str| {
                    let el = if e.name() == name {
                        Some(&e)
                    } else {
                        e.get_child(name, ns::SASL2)
                    };
                    b64.decode(el.map(|i| i.text()).unwrap_or_default())
                        .unwrap_or_default()
                };
                let step = if e.is("authenticate", ns::SASL2) {
                    let version = e
                        .get_child("config-version", ns::IAP)
                        .and_then(|v| v.attr("value"));
                    if self.honour_version && version.is_some() && version != self.version {
                        out.push_str(
                            "<failure xmlns='urn:xmpp:sasl:2'>\
                             <aborted xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
                             <config-version-mismatch xmlns='urn:xmpp:iap:0'/></failure>",
                        );
                        continue;
                    }
                    let name = e.attr("mechanism").unwrap_or_default();
                    if let (Some(ht), Some(fast)) = (HtMechanism::from_name(name), self.fast) {
                        let cb = ChannelBindingInfo::default();
                        let (server, _) =
                            HtServer::start(ht, &data("initial-response"), &cb).unwrap();
                        let asked = e.get_child("fast", "urn:xmpp:fast:0");
                        let count: u64 = asked
                            .and_then(|f| f.attr("count"))
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(0);
                        let invalidate = asked.and_then(|f| f.attr("invalidate")) == Some("true");
                        let mut tokens = tokens.lock().unwrap();
                        let found = tokens
                            .iter()
                            .position(|(t, _)| server.verify(&HtTokenKey::from_token(t).unwrap()));
                        let Some(at) =
                            found.filter(|at| !fast.check_count || count > tokens[*at].1)
                        else {
                            out.push_str(not_authorized);
                            continue;
                        };
                        tokens[at].1 = count;
                        let proof_key = if fast.wrong_proof {
                            HtTokenKey::from_token(&ht_token_string(&[9; 32]).unwrap())
                        } else {
                            HtTokenKey::from_token(&tokens[at].0)
                        };
                        if invalidate && fast.honour_invalidate {
                            tokens.remove(at);
                        }
                        bound = true;
                        let proof = server.success_data(&proof_key.unwrap());
                        out.push_str(&success(Some(proof), None));
                        continue;
                    }
                    request_token = e.get_child("request-token", "urn:xmpp:fast:0").is_some();
                    let mech = Mechanism::from_name(name).unwrap();
                    let initial = data("initial-response");
                    let cb = ChannelBindingInfo::default();
                    let (mut s, _) = ServerSession::start(mech, Some(&initial), &cb).unwrap();
                    let step = s.credentials(Some(&creds), "fakenonce");
                    session = Some(s);
                    step
                } else if e.is("response", ns::SASL2) {
                    session.as_mut().unwrap().respond(&data("response"))
                } else if e.is("auth", ns::SASL) {
                    // The direct-tls check's SASL1 login: refused, so that it ends at once.
                    out.push_str(
                        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
                    );
                    continue;
                } else if e.name() == "message" && bound {
                    let body = e.children().find(|c| c.name() == "body").unwrap().text();
                    out.push_str(&format!(
                        "<message from='{JID}' type='chat'><body>{body}</body></message>"
                    ));
                    continue;
                } else {
                    continue;
                };
                match step {
                    Ok(Step::Challenge(data)) => out.push_str(&format!(
                        "<challenge xmlns='urn:xmpp:sasl:2'>{}</challenge>",
                        b64.encode(data)
                    )),
                    Ok(Step::Success { additional_data }) => {
                        bound = true;
                        let token = (request_token && self.fast.is_some()).then(issue);
                        out.push_str(&success(additional_data, token));
                    }
                    Ok(Step::NeedCredentials { .. }) | Err(_) => out.push_str(not_authorized),
                }
            }
            if !out.is_empty() && tls.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// `pipit check` with a STARTTLS address that hangs up at once and a fake Direct TLS
/// server; returns the rows of the SASL2 and FAST checks.
fn check_sasl2_fake(fake: Sasl2Fake) -> Vec<Row> {
    let closer = fake_server(drop);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let direct = listener.local_addr().unwrap().to_string();
    let tokens = Tokens::default();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let tokens = Arc::clone(&tokens);
            thread::spawn(move || fake.serve(stream, tokens));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pipit_testkit::pki().ca_pem).unwrap();
    let out = pipit_ok(&[
        "check",
        &closer,
        "--direct-tls",
        &direct,
        "--jid",
        "alice@localhost",
        "--password",
        "pw",
        "--ca",
        ca.to_str().unwrap(),
        "--timeout",
        "1",
        "--json",
    ]);
    rows(&out)
        .into_iter()
        .filter(|r| {
            ["sasl2", "iap", "fast"]
                .iter()
                .any(|p| r.check.starts_with(p))
        })
        .collect()
}

#[test]
fn scram_through_sasl2_and_iap_pass_against_a_server_without_plain() {
    let rows = check_sasl2_fake(Sasl2Fake {
        mechanisms: &["SCRAM-SHA-256"],
        bind2: true,
        version: Some("v1"),
        honour_version: true,
        fast: None,
    });
    // SCRAM takes one round trip more than PLAIN; the server signature is verified.
    for (check, n) in [
        ("sasl2-bind2", 5),
        ("iap-pipelined", 4),
        ("iap-stale-version-refused", 5),
    ] {
        let r = row(&rows, check);
        assert_eq!(r.result, "pass", "{r:#?}");
        assert_eq!(r.round_trips, Some(n), "{r:#?}");
        assert!(r.detail.contains("SASL2 SCRAM-SHA-256 + Bind2"), "{r:#?}");
        assert!(
            r.detail.contains("bound alice@localhost/pipit-check.fake"),
            "{r:#?}"
        );
    }
}

#[test]
fn a_server_that_ignores_the_config_version_fails_the_stale_version_check() {
    let rows = check_sasl2_fake(Sasl2Fake {
        mechanisms: &["PLAIN"],
        bind2: true,
        version: Some("v1"),
        honour_version: false,
        fast: None,
    });
    assert_eq!(row(&rows, "sasl2-bind2").result, "pass", "{rows:#?}");
    assert_eq!(row(&rows, "iap-pipelined").result, "pass", "{rows:#?}");
    let r = row(&rows, "iap-stale-version-refused");
    assert_eq!(r.result, "fail", "{r:#?}");
    assert!(
        r.detail
            .starts_with("the server accepted the made-up config version")
            && r.detail
                .ends_with("and authenticated as alice@localhost/pipit-check.fake"),
        "{r:#?}"
    );
}

#[test]
fn what_a_server_does_not_offer_is_not_offered() {
    // No SASL2 at all.
    let rows = check_sasl2_fake(Sasl2Fake {
        mechanisms: &[],
        bind2: false,
        version: None,
        honour_version: false,
        fast: None,
    });
    for r in &rows {
        assert_eq!(r.result, "not-offered", "{r:#?}");
        assert!(r.detail.contains("no SASL2 (XEP-0388)"), "{r:#?}");
    }
    // SASL2 without Bind2.
    let rows = check_sasl2_fake(Sasl2Fake {
        mechanisms: &["PLAIN"],
        bind2: false,
        version: Some("v1"),
        honour_version: true,
        fast: None,
    });
    for r in &rows {
        assert_eq!(r.result, "not-offered", "{r:#?}");
        assert!(r.detail.contains("without inline Bind2"), "{r:#?}");
    }
    // SASL2 and Bind2, but no config version: no IAP.
    let rows = check_sasl2_fake(Sasl2Fake {
        mechanisms: &["PLAIN"],
        bind2: true,
        version: None,
        honour_version: false,
        fast: None,
    });
    assert_eq!(row(&rows, "sasl2-bind2").result, "pass", "{rows:#?}");
    assert_eq!(row(&rows, "sasl2-bind2").round_trips, Some(4));
    for check in ["fast-token", "fast-replay-refused", "fast-invalidate"] {
        let r = row(&rows, check);
        assert_eq!(r.result, "not-offered", "{r:#?}");
        assert!(r.detail.contains("SASL2 is offered without FAST"), "{r:#?}");
    }
    for check in ["iap-pipelined", "iap-stale-version-refused"] {
        let r = row(&rows, check);
        assert_eq!(r.result, "not-offered", "{r:#?}");
        assert!(
            r.detail.contains("no <config-version/> (XEP-0509)"),
            "{r:#?}"
        );
    }
}

#[test]
fn fast_checks_pass_against_a_server_with_only_ht_sha_256_none() {
    // The fake speaks TLS 1.3 but offers no -EXPR: the probe falls back to -NONE, whose
    // login can wait behind the ClientHello.
    let fake = Sasl2Fake {
        mechanisms: &["PLAIN"],
        bind2: true,
        version: Some("v1"),
        honour_version: true,
        fast: Some(FastFake::GOOD),
    };
    let rows = check_sasl2_fake(fake);
    for (check, n) in [
        ("fast-token", 3),
        ("fast-replay-refused", 4),
        ("fast-invalidate", 3),
    ] {
        let r = row(&rows, check);
        assert_eq!(r.result, "pass", "{r:#?}");
        assert_eq!(r.round_trips, Some(n), "{r:#?}");
        assert!(
            r.detail.contains("SASL2 HT-SHA-256-NONE token + Bind2"),
            "{r:#?}"
        );
    }
    // Without a config version the token login waits for the features.
    let rows = check_sasl2_fake(Sasl2Fake {
        version: None,
        honour_version: false,
        ..fake
    });
    let r = row(&rows, "fast-token");
    assert_eq!(r.result, "pass", "{r:#?}");
    assert_eq!(r.round_trips, Some(4), "{r:#?}");
    assert!(
        r.detail.contains(
            "(TLS 1.3, Direct TLS, SASL2 HT-SHA-256-NONE token + Bind2 after the features)"
        ),
        "{r:#?}"
    );
    for check in ["fast-replay-refused", "fast-invalidate"] {
        assert_eq!(row(&rows, check).result, "pass", "{rows:#?}");
    }
}

#[test]
fn a_server_that_takes_a_replayed_count_or_an_invalidated_token_fails() {
    let rows = check_sasl2_fake(Sasl2Fake {
        mechanisms: &["PLAIN"],
        bind2: true,
        version: Some("v1"),
        honour_version: true,
        fast: Some(FastFake {
            check_count: false,
            honour_invalidate: false,
            wrong_proof: false,
        }),
    });
    assert_eq!(row(&rows, "fast-token").result, "pass", "{rows:#?}");
    let r = row(&rows, "fast-replay-refused");
    assert_eq!(r.result, "fail", "{r:#?}");
    assert_eq!(r.round_trips, None, "{r:#?}");
    assert!(
        r.detail.starts_with(
            "SECURITY: the server accepted the token again with count 1, which it had already \
             seen, and authenticated as alice@localhost/pipit-check.fake"
        ),
        "{r:#?}"
    );
    let r = row(&rows, "fast-invalidate");
    assert_eq!(r.result, "fail", "{r:#?}");
    assert!(
        r.detail.starts_with(
            "the token still works after the login that invalidated it (<fast \
             invalidate='true'/>, XEP-0484 §3.6): count 2 authenticated"
        ),
        "{r:#?}"
    );
}

#[test]
fn a_wrong_server_proof_fails_the_token_login() {
    let rows = check_sasl2_fake(Sasl2Fake {
        mechanisms: &["PLAIN"],
        bind2: true,
        version: Some("v1"),
        honour_version: true,
        fast: Some(FastFake {
            wrong_proof: true,
            ..FastFake::GOOD
        }),
    });
    for check in ["fast-token", "fast-replay-refused", "fast-invalidate"] {
        let r = row(&rows, check);
        assert_eq!(r.result, "fail", "{r:#?}");
        assert!(
            r.detail.contains(
                "the server's HT-SHA-256-NONE proof (<additional-data/>) is wrong: it does not \
                 hold the token"
            ),
            "{r:#?}"
        );
    }
}
