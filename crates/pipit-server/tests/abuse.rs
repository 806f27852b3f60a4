//! Abuse protection end to end: failed-login throttling (`crate::throttle`), the
//! connection's deadlines, and clients that stop reading. Deadlines are set to a
//! second and the tests wait for their stream errors; nothing asserts a duration.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use pipit_server::Settings;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ATTACKER: &str = "127.0.0.1";
const HOME: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A client at `from` with its stream open, ready for auth.
async fn at_auth(server: &TestServer, from: &str) -> WireClient {
    let mut w = connect_from(server, ip(from), None).await;
    w.flight(&header(true), has("</stream:features>")).await;
    w.client.take_text();
    w
}

#[tokio::test]
async fn failures_beyond_the_free_ones_are_delayed_and_still_answered() {
    let server = TestServer::start(Settings {
        auth_free_failures: Some(1),
        auth_max_delay_secs: Some(1),
        ..Settings::default()
    })
    .await;
    let mut w = at_auth(&server, ATTACKER).await;
    let throttle = &server.ctx.throttle;
    let delay = || throttle.delay(ip(ATTACKER), "alice@localhost", Instant::now());
    assert_eq!(delay(), Duration::ZERO);
    w.flight(&plain_auth("alice", "wrong"), has("<not-authorized/>"))
        .await;
    w.client.take_text();
    // Held before the lookup, then answered like any failure.
    assert_eq!(delay(), Duration::from_secs(1));
    w.flight(&plain_auth("nobody", "wrong"), has("<not-authorized/>"))
        .await;
    w.client.take_text();
    assert_eq!(
        throttle.delay(ip(ATTACKER), "carol@localhost", Instant::now()),
        Duration::from_secs(1),
        "the address is throttled, whatever account it tries next"
    );
    // The right password from a throttled address still gets in, after the delay.
    w.flight(&plain_auth("alice", PASSWORD), has("<success"))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn an_attack_on_alice_from_one_address_does_not_lock_her_out_from_another() {
    let server = TestServer::start(Settings {
        auth_free_failures: Some(1),
        auth_max_delay_secs: Some(30),
        ..Settings::default()
    })
    .await;
    // One failure on the wire, then a long attack recorded straight away.
    let mut attacker = at_auth(&server, ATTACKER).await;
    attacker
        .flight(&plain_auth("alice", "guess"), has("<not-authorized/>"))
        .await;
    for _ in 0..200 {
        server
            .ctx
            .throttle
            .failed(ip(ATTACKER), "alice@localhost", Instant::now());
    }
    assert_eq!(
        server
            .ctx
            .throttle
            .delay(ip(ATTACKER), "alice@localhost", Instant::now()),
        Duration::from_secs(30)
    );
    // Alice at home logs in at once (a 30 s hold would outlast the test
    // client's read timeout), and a message reaches her.
    let mut alice = connect_from(&server, ip(HOME), None).await;
    log_in(&mut alice, "alice", "home", true).await;
    // Bob is elsewhere too: the attacker's own address is held 30 s, whoever
    // logs in from it.
    let mut bob = connect_from(&server, ip("127.0.0.3"), None).await;
    log_in(&mut bob, "bob", "desk", false).await;
    send(&mut bob, &message_to("alice@localhost/home", "still here")).await;
    expect(&mut alice, "still here").await;
    server.stop().await;
}

#[tokio::test]
async fn no_stream_header_ends_in_connection_timeout() {
    let server = TestServer::start(Settings {
        stream_open_timeout_secs: Some(1),
        ..Settings::default()
    })
    .await;
    // STARTTLS port: connected, nothing said.
    let mut plain = WireClient::connect(server.c2s, None).await;
    let text = plain.read_to_close().await;
    assert!(text.contains("<connection-timeout "), "{text}");
    // Direct TLS: the handshake done (the client's Finished sent), no stream
    // header after it.
    let mut tls = connect(&server).await;
    let finished = tls.client.wire(b"");
    tls.stream.write_all(&finished).await.unwrap();
    let text = tls.read_to_close().await;
    assert!(text.contains("<connection-timeout "), "{text}");
    // After a SASL success: the restart's header never comes.
    let mut restarted = connect(&server).await;
    restarted
        .flight(
            &format!("{}{}", header(true), plain_auth("alice", PASSWORD)),
            has("<success"),
        )
        .await;
    let text = restarted.read_to_close().await;
    assert!(text.contains("<connection-timeout "), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed() {
    let server = TestServer::start(Settings {
        tls_handshake_timeout_secs: Some(1),
        ..Settings::default()
    })
    .await;
    // Direct TLS, no ClientHello: no XMPP can be spoken, the socket just closes
    // (well before the 60 s login timeout; the read gives up after 10 s).
    let mut w = WireClient::connect(server.direct_tls, None).await;
    w.read_to_close().await;
    // STARTTLS: <proceed/>, then no ClientHello.
    let mut w = WireClient::connect(server.c2s, None).await;
    w.flight(&format!("{}{STARTTLS}", header(true)), has("<proceed"))
        .await;
    w.read_to_close().await;
    server.stop().await;
}

#[tokio::test]
async fn a_silent_session_is_pinged_and_closed_when_it_does_not_answer() {
    let server = TestServer::start(Settings {
        idle_timeout_secs: Some(1),
        ping_timeout_secs: Some(1),
        ..Settings::default()
    })
    .await;
    let mut alice = online(&server, "alice", "idle", false).await;
    // The first ping is answered: the session goes on and is pinged again.
    let text = expect(&mut alice, "urn:xmpp:ping").await;
    let id = text
        .split("id='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the ping has an id")
        .to_owned();
    send(
        &mut alice,
        &format!("<iq type='result' id='{id}' to='localhost'/>"),
    )
    .await;
    expect(&mut alice, "urn:xmpp:ping").await;
    // The second is not.
    let text = alice.read_to_close().await;
    assert!(text.contains("<connection-timeout "), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_what_it_was_sent_is_kept() {
    let server = TestServer::start(Settings {
        max_queued_stanzas: Some(50),
        ..Settings::default()
    })
    .await;
    // Alice logs in, then never reads again; a small receive buffer backs her up
    // sooner.
    let mut alice = connect_from(&server, ip(HOME), Some(4096)).await;
    log_in(&mut alice, "alice", "slow", true).await;
    let alice_jid = pipit_proto::jid::Jid::parse("alice@localhost/slow").unwrap();
    assert!(server.ctx.router.available_priority(&alice_jid).is_some());
    let mut bob = online(&server, "bob", "flood", false).await;
    // Some 9 MB: more than the kernel buffers between the server and Alice.
    let body = "x".repeat(3000);
    let mut wire = Vec::new();
    for i in 0..3000 {
        let message = format!(
            "<message to='alice@localhost/slow' id='m{i}' type='chat'><body>{body}</body></message>"
        );
        wire.extend(bob.client.wire(message.as_bytes()));
    }
    // Then a ping of his own: its answer comes after everything before it.
    wire.extend(
        bob.client
            .wire(b"<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    // Bob writes and reads at once, as a real client does.
    let (mut rd, mut wr) = bob.stream.split();
    let client = &mut bob.client;
    let write = wr.write_all(&wire);
    tokio::pin!(write);
    let mut written = false;
    let mut buf = vec![0u8; 64 * 1024];
    let done = |c: &Client| c.text.contains("id='still'");
    while !(written && done(client)) {
        tokio::select! {
            result = &mut write, if !written => {
                result.expect("bob's stream stays open");
                written = true;
            }
            read = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf)) => {
                let n = read.expect("bob heard nothing more").unwrap();
                assert!(n > 0, "bob's stream closed: {}", client.text);
                client.receive(&buf[..n]);
            }
        }
    }
    // Alice's session ended. What the kernel took for her counts as delivered
    // (she had no stream management); what was held for her went to her offline
    // queue (XEP-0160), as did what came after until the queue was full, the
    // rest bouncing to Bob (XEP-0160 §2). Nothing was lost either way.
    let text = client.take_text();
    let mut waited = 0;
    while server.ctx.router.available_priority(&alice_jid).is_some() {
        assert!(waited < 1000, "alice's session never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let bounced = text.matches("<service-unavailable").count() as u64;
    // Her session requeues what it held as it ends, just after she went offline.
    let mut kept = 0;
    for _ in 0..1000 {
        let now = server
            .ctx
            .store
            .offline_count("alice", "localhost")
            .await
            .unwrap();
        if now >= 50 && now == kept {
            break;
        }
        kept = now;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        kept >= 50 && kept + bounced <= 3000,
        "kept {kept}, bounced {bounced}"
    );
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn what_waits_for_a_client_that_stops_reading_is_bounded_in_bytes() {
    // No count limit to speak of: only the bytes held can end the stream.
    let server = TestServer::start(Settings {
        max_queued_stanzas: Some(1_000_000),
        max_queued_bytes: Some(256 * 1024),
        ..Settings::default()
    })
    .await;
    let mut alice = connect_from(&server, ip(HOME), Some(4096)).await;
    log_in(&mut alice, "alice", "slow", true).await;
    let alice_jid = pipit_proto::jid::Jid::parse("alice@localhost/slow").unwrap();
    let mut bob = online(&server, "bob", "flood", false).await;
    // Some 9 MB of 30 KB stanzas: past the kernel buffers, 300 stanzas in all.
    let body = "x".repeat(30_000);
    let mut wire = Vec::new();
    for i in 0..300 {
        let message = format!(
            "<message to='alice@localhost/slow' id='b{i}' type='headline'><body>{body}</body></message>"
        );
        wire.extend(bob.client.wire(message.as_bytes()));
    }
    let (mut rd, mut wr) = bob.stream.split();
    let write = wr.write_all(&wire);
    tokio::pin!(write);
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = false;
    let mut ticks = 0;
    // Bob writes (and reads, as a real client does) until Alice's session ends.
    while server.ctx.router.available_priority(&alice_jid).is_some() {
        assert!(ticks < 3000, "alice's session never ended");
        tokio::select! {
            result = &mut write, if !written => {
                result.expect("bob's stream stays open");
                written = true;
            }
            read = rd.read(&mut buf) => assert!(read.expect("bob reads") > 0, "bob's stream closed"),
            () = tokio::time::sleep(Duration::from_millis(10)) => ticks += 1,
        }
    }
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn configured_depth_and_attribute_limits_end_the_stream_with_policy_violation() {
    let server = TestServer::start(Settings {
        max_stanza_depth: Some(4),
        max_attributes: Some(10),
        ..Settings::default()
    })
    .await;
    // Four deep is fine: the ping answers.
    let mut alice = online(&server, "alice", "desk", false).await;
    send(
        &mut alice,
        "<iq type='get' id='ok'><ping xmlns='urn:xmpp:ping'><a><b/></a></ping></iq>",
    )
    .await;
    expect(&mut alice, "id='ok'").await;
    send(&mut alice, "<message><a><b><c><d/></c></b></a></message>").await;
    let text = alice.read_to_close().await;
    assert!(text.contains("<policy-violation "), "{text}");

    let mut bob = online(&server, "bob", "desk", false).await;
    let attrs: String = (0..11).map(|i| format!(" a{i}='x'")).collect();
    send(&mut bob, &format!("<message{attrs}/>")).await;
    let text = bob.read_to_close().await;
    assert!(text.contains("<policy-violation "), "{text}");
    server.stop().await;
}
