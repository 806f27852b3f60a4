//! Offline storage (XEP-0160) over real sockets: messages to an account with no
//! available resource are stored, delivered with a delay stamp on its next
//! available presence, bounded per account, and go back to the queue when the
//! session they were handed to ends without confirming them.

mod support;

use pipit_server::Settings;
use support::*;

fn chat(to: &str, id: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>")
}

/// How many messages wait in `user`'s queue.
async fn queued(server: &TestServer, user: &str) -> u64 {
    server
        .ctx
        .store
        .offline_count(user, "localhost")
        .await
        .unwrap()
}

/// Sends `xml` with an ack request and waits for the ack: by then the server
/// has handled it (XEP-0198 §4), stored if it is to be stored.
async fn send_handled(w: &mut WireClient, xml: &str) {
    send(w, &format!("{xml}<r xmlns='urn:xmpp:sm:3'/>")).await;
    expect(w, "<a xmlns='urn:xmpp:sm:3'").await;
}

async fn with_sm(server: &TestServer, user: &str, resource: &str) -> WireClient {
    let mut w = online(server, user, resource, true).await;
    send(&mut w, "<enable xmlns='urn:xmpp:sm:3'/>").await;
    expect(&mut w, "<enabled ").await;
    w
}

#[tokio::test]
async fn messages_wait_for_the_next_available_presence() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = with_sm(&server, "alice", "desk").await;
    for n in 1..=3 {
        send_handled(
            &mut alice,
            &chat("bob@localhost", &format!("o{n}"), &format!("offline {n}")),
        )
        .await;
    }
    // Stored, not bounced.
    assert_eq!(queued(&server, "bob").await, 3);
    assert!(
        !alice.client.text.contains("type='error'"),
        "{}",
        alice.client.text
    );

    // Bound but not available: nothing yet (XEP-0160 §2, step 5).
    let mut bob = online(&server, "bob", "phone", false).await;
    send(&mut bob, "<presence><priority>-1</priority></presence>").await;
    expect(&mut bob, "</presence>").await;
    assert_eq!(queued(&server, "bob").await, 3);

    send(&mut bob, "<presence/>").await;
    let got = expect(&mut bob, "offline 3").await;
    let first = got.find("offline 1").expect("first message");
    let second = got.find("offline 2").expect("second message");
    assert!(first < second, "in order: {got}");
    assert!(got.contains("from='alice@localhost/desk'"), "{got}");
    assert!(
        got.contains("<delay xmlns='urn:xmpp:delay' from='localhost' stamp='"),
        "XEP-0203 stamp: {got}"
    );
    assert!(
        got.contains("<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='"),
        "{got}"
    );
    assert_eq!(queued(&server, "bob").await, 0);

    // Delivered once: another resource coming online gets nothing more.
    let mut tablet = online(&server, "bob", "tablet", true).await;
    send(
        &mut tablet,
        "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let text = expect(&mut tablet, "id='p'").await;
    assert!(!text.contains("offline"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_bounces_with_service_unavailable() {
    let server = TestServer::start(Settings {
        max_offline_messages: Some(2),
        ..Settings::default()
    })
    .await;
    let mut alice = with_sm(&server, "alice", "desk").await;
    send_handled(&mut alice, &chat("bob@localhost", "q1", "one")).await;
    send_handled(&mut alice, &chat("bob@localhost", "q2", "two")).await;
    assert!(!alice.client.text.contains("type='error'"));
    send(&mut alice, &chat("bob@localhost", "q3", "three")).await;
    let got = expect(&mut alice, "</message>").await;
    assert!(
        got.contains("id='q3'")
            && got.contains("type='error'")
            && got.contains("<service-unavailable"),
        "{got}"
    );
    assert_eq!(queued(&server, "bob").await, 2);
    // The refused one is not in the archive either: only what was accepted is kept.
    let mut bob = online(&server, "bob", "phone", false).await;
    send(
        &mut bob,
        "<presence/><iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let text = expect(&mut bob, "id='p'").await;
    assert!(text.contains("one") && text.contains("two"), "{text}");
    assert!(!text.contains("three"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_resend_is_stored_and_delivered_once() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = with_sm(&server, "alice", "desk").await;
    let same = "<message to='bob@localhost' type='chat' id='x'><body>once</body>\
                <origin-id xmlns='urn:xmpp:sid:0' id='uuid-1'/></message>";
    send_handled(&mut alice, same).await;
    send_handled(&mut alice, same).await;
    // Without an origin-id, the same id is no proof (ids get reused): kept twice.
    send_handled(&mut alice, &chat("bob@localhost", "x", "again")).await;
    send_handled(&mut alice, &chat("bob@localhost", "x", "again")).await;
    assert_eq!(queued(&server, "bob").await, 3);
    server.stop().await;
}

#[tokio::test]
async fn what_a_dropped_session_never_confirmed_goes_back_to_the_queue() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = with_sm(&server, "alice", "desk").await;
    send_handled(&mut alice, &chat("bob@localhost", "d1", "kept for later")).await;
    // Bob comes online with SM but no resumption, gets the message, and his
    // connection drops before he acknowledges it.
    let mut bob = online(&server, "bob", "phone", false).await;
    send(&mut bob, "<enable xmlns='urn:xmpp:sm:3'/><presence/>").await;
    expect(&mut bob, "kept for later").await;
    assert_eq!(queued(&server, "bob").await, 0);
    drop(bob);
    // Its session ends and the message waits again.
    let mut tries = 0;
    while queued(&server, "bob").await == 0 {
        tries += 1;
        assert!(tries < 500, "never requeued");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut bob = online(&server, "bob", "laptop", false).await;
    send(&mut bob, "<presence/>").await;
    expect(&mut bob, "kept for later").await;
    server.stop().await;
}

#[tokio::test]
async fn forged_stanza_ids_are_removed() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = with_sm(&server, "alice", "desk").await;
    let mut bob = online(&server, "bob", "phone", true).await;
    send(
        &mut alice,
        "<message to='bob@localhost' type='chat' id='f'><body>hi</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='kept'/></message>",
    )
    .await;
    let got = expect(&mut bob, "</message>").await;
    assert!(!got.contains("id='forged'"), "{got}");
    assert!(got.contains("id='kept'"), "{got}");
    assert_eq!(got.matches("by='bob@localhost'").count(), 1, "{got}");
    server.stop().await;
}

#[tokio::test]
async fn a_queue_longer_than_the_ack_window_waits_for_acks_instead_of_ending_the_stream() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = with_sm(&server, "alice", "desk").await;
    // 600 stored for Bob, more than the 500 that may wait unacknowledged (XEP-0198).
    let burst: String = (0..600)
        .map(|n| chat("bob@localhost", &format!("w{n}"), &format!("wait {n}.")))
        .collect();
    send_handled(&mut alice, &burst).await;
    assert_eq!(queued(&server, "bob").await, 600);

    let mut bob = online(&server, "bob", "phone", false).await;
    send(&mut bob, "<enable xmlns='urn:xmpp:sm:3'/><presence/>").await;
    // 500 stanzas come (his presence reflected and 499 messages); the rest wait
    // for his acknowledgement rather than overflow the window.
    let mut text = expect(&mut bob, "wait 498.").await;
    let handled = |t: &str| t.matches("<message ").count() + t.matches("<presence ").count();
    send(
        &mut bob,
        &format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", handled(&text)),
    )
    .await;
    text.push_str(&expect(&mut bob, "wait 599.").await);
    for n in 0..600 {
        assert_eq!(
            text.matches(&format!("wait {n}.<")).count(),
            1,
            "message {n}"
        );
    }
    assert!(!text.contains("stream:error"), "{text}");
    assert_eq!(queued(&server, "bob").await, 0);
    server.stop().await;
}
