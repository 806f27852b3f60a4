//! Every pipelined login form of DESIGN.md §2 against the real server over loopback
//! sockets, with the round trips counted from TCP connect to the self-addressed
//! message coming back (the session is bound and stanzas flow).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pipit_server::Settings;
use rustls::SupportedProtocolVersion;
use support::*;

const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    /// RFC 6120 lockstep: every step waits for its answer.
    Lockstep,
    /// Header + starttls | ClientHello | Finished + header + auth + restart + bind + …
    Pipelined,
    /// Header + starttls + ClientHello | Finished + header + auth + restart + bind + …
    Stunt,
    /// Direct TLS (XEP-0368): ClientHello | Finished + header + auth + restart + bind + …
    Direct,
    /// Stunt, but the first auth fails with the restart pipelined; the retry succeeds.
    SaslFailureThenRetry,
}

/// The round trips each form must take (TLS 1.3, PLAIN), TCP connect included.
const EXPECTED: [(Form, usize); 5] = [
    (Form::Lockstep, 9),
    (Form::Pipelined, 4),
    (Form::Stunt, 3),
    (Form::Direct, 3),
    (Form::SaslFailureThenRetry, 4),
];

struct Outcome {
    round_trips: usize,
    millis: u128,
    resumed: bool,
    text: String,
}

fn tls_advanced(c: &Client) -> bool {
    !c.handshaking() || c.tls().wants_write()
}

/// Runs a TLS handshake to the end, one flight per client turn.
async fn finish_handshake(w: &mut WireClient) {
    while w.client.handshaking() {
        w.flight("", tls_advanced).await;
    }
}

async fn login(
    form: Form,
    server: &TestServer,
    relay: Option<(SocketAddr, SocketAddr)>,
    rtt: Option<Duration>,
    tls: &Arc<rustls::ClientConfig>,
) -> Outcome {
    let (c2s, direct) = relay.unwrap_or((server.c2s, server.direct_tls));
    let body = "ping-myself";
    let login = pipelined_login("alice", PASSWORD, false, "alice@localhost", body);
    let got_body = move |c: &Client| c.text.contains(body);
    let addr = if form == Form::Direct { direct } else { c2s };
    let mut w = WireClient::connect(addr, rtt).await;
    match form {
        Form::Lockstep => {
            w.flight(&header(true), has("</stream:features>")).await;
            w.flight(STARTTLS, has(PROCEED)).await;
            w.client.take_text();
            w.client.start_tls(tls, false);
            finish_handshake(&mut w).await;
            w.flight(&header(true), has("</stream:features>")).await;
            w.flight(&plain_auth("alice", PASSWORD), has("<success"))
                .await;
            w.client.take_text();
            w.flight(&header(false), has("</stream:features>")).await;
            w.flight(&bind("phone"), has("</iq>")).await;
            w.flight(
                &format!("{PRESENCE}{}", message_to("alice@localhost", body)),
                got_body,
            )
            .await;
        }
        Form::Pipelined => {
            w.flight(&format!("{}{STARTTLS}", header(true)), has(PROCEED))
                .await;
            w.client.start_tls(tls, false);
            finish_handshake(&mut w).await;
            w.flight(&login, got_body).await;
        }
        Form::Stunt | Form::SaslFailureThenRetry => {
            w.client.start_tls(tls, true);
            let mut first = format!("{}{STARTTLS}", header(true)).into_bytes();
            first.extend(w.client.wire(b""));
            w.flight_raw(&first, tls_advanced).await;
            finish_handshake(&mut w).await;
            if form == Form::SaslFailureThenRetry {
                let wrong = pipelined_login("alice", "wrong", false, "alice@localhost", "lost");
                w.flight(&wrong, |c| count(&c.text, "not-authorized") == 4)
                    .await;
                let retry = format!(
                    "{}{}{}{PRESENCE}{}",
                    plain_auth("alice", PASSWORD),
                    header(false),
                    bind("phone"),
                    message_to("alice@localhost", body)
                );
                w.flight(&retry, got_body).await;
            } else {
                w.flight(&login, got_body).await;
            }
        }
        Form::Direct => {
            w.client.start_tls(tls, false);
            finish_handshake(&mut w).await;
            w.flight(&login, got_body).await;
        }
    }
    let resumed = w.client.tls().handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Outcome {
        round_trips: w.round_trips,
        millis: w.elapsed().as_millis(),
        resumed,
        text: w.client.take_text(),
    }
}

#[tokio::test]
async fn each_form_takes_its_round_trips() {
    let server = TestServer::start(Settings::default()).await;
    for (form, expected) in EXPECTED {
        let outcome = login(form, &server, None, None, &client_tls(TLS13)).await;
        assert_eq!(outcome.round_trips, expected, "{form:?}: {}", outcome.text);
        assert!(!outcome.resumed);
    }
    server.stop().await;
}

#[tokio::test]
async fn the_failed_pipelined_stanzas_were_never_executed() {
    let server = TestServer::start(Settings::default()).await;
    let outcome = login(
        Form::SaslFailureThenRetry,
        &server,
        None,
        None,
        &client_tls(TLS13),
    )
    .await;
    // The pipelined message only ever comes back as the error that bounced it.
    let copies: Vec<_> = outcome
        .text
        .split("<message")
        .filter(|m| m.contains("lost"))
        .collect();
    assert_eq!(copies.len(), 1, "{}", outcome.text);
    assert!(copies[0].starts_with(" type='error'"), "{}", copies[0]);
    server.stop().await;
}

#[tokio::test]
async fn tls_resumption_on_13_and_12() {
    let server = TestServer::start(Settings::default()).await;
    // TLS 1.3: resumption saves the certificate work, not a round trip (that is 0-RTT).
    let tls13 = client_tls(TLS13);
    let first = login(Form::Stunt, &server, None, None, &tls13).await;
    let second = login(Form::Stunt, &server, None, None, &tls13).await;
    assert_eq!((first.resumed, second.resumed), (false, true));
    assert_eq!((first.round_trips, second.round_trips), (3, 3));
    // TLS 1.2: the abbreviated handshake saves a round trip.
    let tls12 = client_tls(TLS12);
    let first = login(Form::Stunt, &server, None, None, &tls12).await;
    let second = login(Form::Stunt, &server, None, None, &tls12).await;
    assert_eq!((first.resumed, second.resumed), (false, true));
    assert_eq!((first.round_trips, second.round_trips), (4, 3));
    server.stop().await;
}

/// The figures for the README: each form through a relay that emulates a 100 ms
/// round trip. Asserts the round-trip counts only; the times are printed
/// (`cargo test -p pipit-server --test pipelining -- --nocapture at_100ms`).
#[tokio::test]
async fn at_100ms_round_trip() {
    let server = TestServer::start(Settings::default()).await;
    let one_way = Duration::from_millis(50);
    let relay_c2s = Relay::start(server.c2s, one_way).await;
    let relay_direct = Relay::start(server.direct_tls, one_way).await;
    let relay = Some((relay_c2s.addr, relay_direct.addr));
    let rtt = Some(2 * one_way);
    println!("| login form (TLS 1.3, PLAIN) | round trips | ms to self-message |");
    println!("|---|---|---|");
    for (form, expected) in EXPECTED {
        let outcome = login(form, &server, relay, rtt, &client_tls(TLS13)).await;
        assert_eq!(outcome.round_trips, expected, "{form:?}");
        println!(
            "| {form:?} | {} | {} |",
            outcome.round_trips, outcome.millis
        );
    }
    let tls12 = client_tls(TLS12);
    for label in ["Stunt, TLS 1.2 full", "Stunt, TLS 1.2 resumed"] {
        let outcome = login(Form::Stunt, &server, relay, rtt, &tls12).await;
        println!("| {label} | {} | {} |", outcome.round_trips, outcome.millis);
    }
    server.stop().await;
}

/// Rule 3 over a socket: plaintext pipelined after `<starttls/>` goes to TLS, fails
/// the handshake, and is never acted on.
#[tokio::test]
async fn plaintext_after_starttls_fails_the_handshake() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(Settings::default()).await;
    let mut stream = tokio::net::TcpStream::connect(server.c2s).await.unwrap();
    stream
        .write_all(starttls_injection(PASSWORD).as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let proceed = answer
        .windows(PROCEED.len())
        .position(|w| w == PROCEED.as_bytes())
        .expect("proceed");
    let after = &answer[proceed + PROCEED.len()..];
    assert_eq!(
        after.first(),
        Some(&21u8),
        "only a TLS alert follows: {after:?}"
    );
    assert!(
        server
            .ctx
            .router
            .available_priority(&"alice@localhost/evil".parse().unwrap())
            .is_none()
    );
    server.stop().await;
}

/// Rule 4 over a socket, with and without an XML declaration on the restart.
#[tokio::test]
async fn restart_header_with_or_without_declaration() {
    let server = TestServer::start(Settings::default()).await;
    for declaration in [true, false] {
        let mut w = WireClient::connect(server.direct_tls, None).await;
        w.client.start_tls(&client_tls(TLS13), false);
        finish_handshake(&mut w).await;
        let login = pipelined_login("bob", PASSWORD, declaration, "bob@localhost", "decl");
        w.flight(&login, has("decl</body>")).await;
        assert_eq!(w.round_trips, 3);
    }
    server.stop().await;
}
