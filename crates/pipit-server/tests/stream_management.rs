//! XEP-0198 stream management over real sockets: enable and ack, a connection
//! dropped mid-stream and resumed on a new one (missed stanzas arrive exactly
//! once), failed resumption followed by a normal bind, takeover of a connection
//! still open, a detached session whose time runs out (its messages go to the
//! account's other resource, the rest bounces, its presence goes unavailable), a
//! clean close (what was not acknowledged goes back to the offline queue), and the
//! bounded queue.

mod support;

use std::time::Duration;

use pipit_server::Settings;
use support::*;

const ENABLE: &str = "<enable xmlns='urn:xmpp:sm:3' resume='true'/>";

/// Enables stream management with resumption; returns the SM-ID.
async fn enable(w: &mut WireClient) -> String {
    send(w, ENABLE).await;
    let text = expect(w, "<enabled ").await;
    attr(&text, "enabled", "id")
}

/// A new connection for `user` that resumes `previd`, having handled `h`
/// stanzas; returns the client and what came back up to `<resumed/>` or `<failed>`.
async fn resume(server: &TestServer, user: &str, previd: &str, h: u32) -> (WireClient, String) {
    let mut w = connect(server).await;
    let flight = format!(
        "{}{}{}<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>",
        header(true),
        plain_auth(user, PASSWORD),
        header(false),
    );
    w.flight(&flight, |c| {
        c.text.contains("<resumed ") || c.text.contains("</failed>")
    })
    .await;
    let text = w.client.take_text();
    (w, text)
}

/// The value of `name` on the first `<element …>` in `text`.
fn attr(text: &str, element: &str, name: &str) -> String {
    let start = text
        .find(&format!("<{element} "))
        .unwrap_or_else(|| panic!("<{element}> in {text}"));
    let tag = &text[start..];
    let tag = &tag[..tag.find('>').unwrap()];
    let value = tag
        .split_once(&format!(" {name}='"))
        .unwrap_or_else(|| panic!("{name} in {tag}"))
        .1;
    value.split_once('\'').unwrap().0.to_owned()
}

fn msg(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='{body}'><body>{body}</body></message>")
}

/// Lets the server notice a dropped connection (end of file on loopback).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn enable_counts_and_acks() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "phone", true).await;
    let mut bob = online(&server, "bob", "desk", true).await;
    send(&mut alice, ENABLE).await;
    let text = expect(&mut alice, "<enabled ").await;
    assert_eq!(attr(&text, "enabled", "resume"), "true");
    assert_eq!(attr(&text, "enabled", "max"), "300");
    assert_eq!(attr(&text, "enabled", "id").len(), 32);

    // Five stanzas to alice earn an <r/> after the fifth.
    let five: String = (1..=5)
        .map(|n| msg("alice@localhost/phone", &format!("n{n}")))
        .collect();
    send(&mut bob, &five).await;
    let got = expect(&mut alice, "<r xmlns='urn:xmpp:sm:3'/>").await;
    assert_eq!(count(&got, "<body>"), 5, "{got}");
    // Alice acks, sends one stanza, and asks: h counts hers since <enable/>.
    send(
        &mut alice,
        &format!(
            "<a xmlns='urn:xmpp:sm:3' h='5'/>{}<r xmlns='urn:xmpp:sm:3'/>",
            msg("bob@localhost", "hi")
        ),
    )
    .await;
    let got = expect(&mut alice, "<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
    assert!(!got.contains("type='error'"), "{got}");
    expect(&mut bob, "<body>hi</body>").await;
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_and_gets_what_it_missed_exactly_once() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "phone", true).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "desk", true).await;
    expect(&mut alice, "from='alice@localhost/desk'").await;
    let id = enable(&mut alice).await;

    send(&mut bob, &msg("alice@localhost/phone", "m1")).await;
    expect(&mut alice, "<body>m1</body>").await;
    // The connection dies mid-stream, m1 never acknowledged (the client has it).
    drop(alice);
    send(&mut bob, &msg("alice@localhost/phone", "m2")).await;
    settle().await;
    send(&mut bob, &msg("alice@localhost/phone", "m3")).await;
    settle().await;

    // The client handled one stanza (m1) since <enable/>.
    let (mut alice, text) = resume(&server, "alice", &id, 1).await;
    assert_eq!(attr(&text, "resumed", "previd"), id, "{text}");
    assert_eq!(attr(&text, "resumed", "h"), "0", "{text}");
    let mut text = text;
    while count(&text, "<body>") < 2 {
        text.push_str(&expect(&mut alice, "</message>").await);
    }
    // The old binding carries on: stanzas to the full JID arrive here.
    send(&mut bob, &msg("alice@localhost/phone", "m4")).await;
    text.push_str(&expect(&mut alice, "<body>m4</body>").await);
    for (body, times) in [("m1", 0), ("m2", 1), ("m3", 1), ("m4", 1)] {
        assert_eq!(
            count(&text, &format!("<body>{body}</body>")),
            times,
            "{body}: {text}"
        );
    }
    assert!(
        text.find("m2").unwrap() < text.find("m3").unwrap(),
        "in order"
    );
    // And what it sends comes from the old full JID; its presence never lapsed.
    send(&mut alice, "<presence><show>away</show></presence>").await;
    let at_desk = expect(&mut desk, "<show>away</show>").await;
    assert!(
        at_desk.contains("from='alice@localhost/phone'"),
        "{at_desk}"
    );
    assert!(!at_desk.contains("unavailable"), "{at_desk}");
    assert!(!bob.client.text.contains("type='error'"), "nothing bounced");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_id_fails_and_binding_works() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "phone", false).await;
    let id = enable(&mut alice).await;

    for (user, previd) in [("alice", "no-such-id"), ("bob", id.as_str())] {
        let (mut w, text) = resume(&server, user, previd, 0).await;
        assert!(
            text.contains(
                "<failed xmlns='urn:xmpp:sm:3'><item-not-found \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"
            ),
            "{user}: {text}"
        );
        w.flight(&bind("laptop"), has("</iq>")).await;
        let bound = w.client.take_text();
        assert!(
            bound.contains(&format!("<jid>{user}@localhost/laptop</jid>")),
            "{bound}"
        );
    }
    // Bob's attempt left alice's session alone: it is still hers, and connected.
    send(&mut alice, "<r xmlns='urn:xmpp:sm:3'/>").await;
    expect(&mut alice, "<a xmlns='urn:xmpp:sm:3' h='0'/>").await;
    server.stop().await;
}

#[tokio::test]
async fn resuming_closes_the_old_connection_if_still_open() {
    let server = TestServer::start(Settings::default()).await;
    let mut old = online(&server, "alice", "phone", false).await;
    let mut bob = online(&server, "bob", "desk", false).await;
    let id = enable(&mut old).await;
    send(&mut bob, &msg("alice@localhost/phone", "unacked")).await;
    expect(&mut old, "unacked").await;

    let (mut new, text) = resume(&server, "alice", &id, 0).await;
    assert!(text.contains("<resumed "), "{text}");
    let mut text = text;
    if !text.contains("unacked") {
        text.push_str(&expect(&mut new, "unacked").await);
    }
    assert_eq!(count(&text, "<body>unacked</body>"), 1, "resent: {text}");
    let closed = old.read_to_close().await;
    assert!(
        closed.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{closed}"
    );
    send(&mut bob, &msg("alice@localhost/phone", "after")).await;
    expect(&mut new, "<body>after</body>").await;
    server.stop().await;
}

#[tokio::test]
async fn an_expired_session_hands_messages_on_bounces_the_rest_and_goes_unavailable() {
    let quick = Settings {
        sm_resume_timeout_secs: Some(1),
        ..Settings::default()
    };
    let server = TestServer::start(quick).await;
    let mut alice = online(&server, "alice", "phone", true).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "desk", true).await;
    expect(&mut alice, "from='alice@localhost/desk'").await;
    let text = {
        send(&mut alice, ENABLE).await;
        expect(&mut alice, "<enabled ").await
    };
    assert_eq!(attr(&text, "enabled", "max"), "1");
    let id = attr(&text, "enabled", "id");

    // Delivered to the client but never acknowledged, then queued while detached.
    send(&mut bob, &msg("alice@localhost/phone", "sent")).await;
    expect(&mut alice, "<body>sent</body>").await;
    drop(alice);
    settle().await;
    send(&mut bob, &msg("alice@localhost/phone", "queued")).await;
    send(
        &mut bob,
        "<iq to='alice@localhost/phone' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    // Nothing bounces while the session may still be resumed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !bob.client.text.contains("type='error'"),
        "{}",
        bob.client.text
    );

    // The messages were to a resource that is gone: the account's other
    // resource gets them (RFC 6121 §8.5.3.2.1); the iq bounces (§8.5.3.2.2).
    let bounced = expect(&mut bob, "<service-unavailable").await;
    assert!(bounced.contains("id='p1'"), "{bounced}");
    assert!(
        bounced.contains("from='alice@localhost/phone'"),
        "{bounced}"
    );
    let mut at_desk = String::new();
    while !(at_desk.contains("<body>sent</body>")
        && at_desk.contains("<body>queued</body>")
        && at_desk.contains("type='unavailable'"))
    {
        at_desk.push_str(&expect(&mut desk, ">").await);
    }
    assert!(
        at_desk.contains("from='alice@localhost/phone'"),
        "{at_desk}"
    );
    // One ping round trip: nothing else bounced.
    send(
        &mut bob,
        "<iq to='localhost' type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let rest = expect(&mut bob, "id='ping'").await;
    assert!(!rest.contains("type='error'"), "{rest}");
    assert!(server.ctx.resumption.is_empty());

    // Too late: the id is forgotten.
    let (_w, text) = resume(&server, "alice", &id, 1).await;
    assert!(text.contains("<item-not-found "), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_clean_close_ends_the_session_and_requeues_only_the_unacknowledged() {
    let server = TestServer::start(Settings::default()).await;
    let mut bob = online(&server, "bob", "desk", false).await;
    let queued = || async {
        server
            .ctx
            .store
            .offline_count("alice", "localhost")
            .await
            .unwrap()
    };
    for (n, ack) in [(1, ""), (2, "<a xmlns='urn:xmpp:sm:3' h='1'/>")] {
        let mut alice = online(&server, "alice", "phone", false).await;
        enable(&mut alice).await;
        let body = format!("hello{n}");
        send(&mut bob, &msg("alice@localhost/phone", &body)).await;
        expect(&mut alice, &format!("<body>{body}</body>")).await;
        send(&mut alice, &format!("{ack}</stream:stream>")).await;
        alice.read_to_close().await;
        // The session ends (its id forgotten), then what it had not confirmed
        // goes back to the offline queue: only hello1 ever does.
        for _ in 0..500 {
            if server.ctx.resumption.is_empty() && queued().await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        settle().await;
        assert_eq!(queued().await, 1, "after {body}: only hello1 waits");
        // A ping round trip: nothing bounced before its answer.
        send(
            &mut bob,
            "<iq to='localhost' type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
        let text = expect(&mut bob, "id='ping'").await;
        assert!(!text.contains("type='error'"), "{ack}: {text}");
    }
    let mut alice = online(&server, "alice", "laptop", false).await;
    send(&mut alice, "<presence/>").await;
    let text = expect(&mut alice, "</message>").await;
    assert!(text.contains("<body>hello1</body>"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_sends_the_overflow_offline_while_detached() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "phone", false).await;
    let mut bob = online(&server, "bob", "desk", false).await;
    let id = enable(&mut alice).await;
    drop(alice);
    settle().await;
    // The queue holds 500 (SmConfig::default); the 501st goes to the offline
    // queue at once, and the iq after it bounces.
    let flood: String = (1..=501)
        .map(|n| msg("alice@localhost/phone", &format!("f{n}")))
        .collect();
    send(
        &mut bob,
        &format!("{flood}<iq to='alice@localhost/phone' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"),
    )
    .await;
    let bounced = expect(&mut bob, "<service-unavailable").await;
    assert!(bounced.contains("id='p'"), "{bounced}");
    assert_eq!(count(&bounced, "type='error'"), 1, "{bounced}");
    assert_eq!(
        server
            .ctx
            .store
            .offline_count("alice", "localhost")
            .await
            .unwrap(),
        1
    );

    let (mut alice, mut text) = resume(&server, "alice", &id, 0).await;
    while !text.contains("<body>f500</body>") {
        text.push_str(&expect(&mut alice, "</message>").await);
    }
    assert_eq!(count(&text, "<body>"), 500);
    assert!(!text.contains("<body>f501<"));
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_stopped_reading_can_still_be_resumed() {
    // Room for what is held here (the default 4 MiB would end the stream).
    let server = TestServer::start(Settings {
        max_queued_bytes: Some(64 * 1024 * 1024),
        ..Settings::default()
    })
    .await;
    let mut alice = online(&server, "alice", "phone", false).await;
    let id = enable(&mut alice).await;
    assert_eq!(server.ctx.resumption.len(), 1);
    let mut bob = online(&server, "bob", "desk", false).await;
    // Alice's client reads nothing more (its network is gone, the socket is open):
    // 20 MB fill the socket buffers and the server's writes to it stall.
    let filler = "x".repeat(200_000);
    for n in 1..=100 {
        let stanza = format!(
            "<message to='alice@localhost/phone' type='chat' id='big{n}'><body>{n}:{filler}</body></message>"
        );
        // The test client's TLS buffers hold 64 KiB: the stanza goes in pieces.
        for piece in stanza.as_bytes().chunks(16 * 1024) {
            send(&mut bob, std::str::from_utf8(piece).unwrap()).await;
        }
    }
    let (mut resumed, text) = resume(&server, "alice", &id, 0).await;
    assert!(
        text.contains("<resumed "),
        "{}",
        &text[..text.len().min(500)]
    );
    let mut text = text;
    // Resent from the queue, then the rest from the session's router queue.
    resumed
        .wait(|c| {
            c.text.len() + text.len() >= 100 * 200_000
                && (c.text.ends_with("</message>") || c.text.ends_with("/>"))
                && count(&c.text, "</message>") + count(&text, "</message>") >= 100
        })
        .await;
    text.push_str(&resumed.client.take_text());
    assert_eq!(count(&text, "</message>"), 100);
    let order: Vec<usize> = text
        .split("<body>")
        .skip(1)
        .map(|b| b.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(order, (1..=100).collect::<Vec<_>>(), "each once, in order");
    drop(alice);
    server.stop().await;
}
