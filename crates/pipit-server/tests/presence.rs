//! Subscriptions and presence between accounts over real sockets (RFC 6121 §3, §4):
//! the handshake to `both` with presence flowing both ways, presence at login and
//! logout, waiting requests delivered again at each login, cancelling and revoking,
//! removal from the roster, contacts that are elsewhere or nowhere, and directed
//! presence.

mod support;

use pipit_server::Settings;
use support::roster::*;
use support::*;

/// Alice (desk) and Bob (phone), both available and interested.
async fn alice_and_bob(server: &TestServer) -> (WireClient, WireClient) {
    let mut alice = online(server, "alice", "desk", true).await;
    let mut bob = online(server, "bob", "phone", true).await;
    roster_get(&mut alice, "ra", None).await;
    roster_get(&mut bob, "rb", None).await;
    (alice, bob)
}

#[tokio::test]
async fn the_handshake_ends_in_both_and_presence_flows_both_ways() {
    let server = TestServer::start(Settings::default()).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;

    // §3.1.2: the request goes on with bare JIDs; the asker's item shows `ask`.
    send(
        &mut alice,
        &subscription("subscribe", "bob@localhost/phone"),
    )
    .await;
    expect(
        &mut alice,
        "<item jid='bob@localhost' subscription='none' ask='subscribe'/>",
    )
    .await;
    let request = expect(&mut bob, "type='subscribe'").await;
    assert!(
        request.contains("from='alice@localhost' to='bob@localhost'"),
        "{request}"
    );
    // A request alone puts nothing on Bob's roster.
    assert!(!request.contains("jabber:iq:roster"), "{request}");

    // §3.1.5: Bob approves; Alice learns it, and gets Bob's presence.
    send(&mut bob, &subscription("subscribed", "alice@localhost")).await;
    expect(
        &mut bob,
        "<item jid='alice@localhost' subscription='from'/>",
    )
    .await;
    expect_all(
        &mut alice,
        &[
            "type='subscribed' from='bob@localhost'",
            "<item jid='bob@localhost' subscription='to'/>",
            "<presence from='bob@localhost/phone' to='alice@localhost'",
        ],
    )
    .await;

    // And the other way.
    send(&mut bob, &subscription("subscribe", "alice@localhost")).await;
    expect(
        &mut bob,
        "<item jid='alice@localhost' subscription='from' ask='subscribe'/>",
    )
    .await;
    expect(&mut alice, "type='subscribe' from='bob@localhost'").await;
    send(&mut alice, &subscription("subscribed", "bob@localhost")).await;
    expect(
        &mut alice,
        "<item jid='bob@localhost' subscription='both'/>",
    )
    .await;
    expect_all(
        &mut bob,
        &[
            "<item jid='alice@localhost' subscription='both'/>",
            "<presence from='alice@localhost/desk' to='bob@localhost'",
        ],
    )
    .await;

    // Presence updates now reach the contact.
    send(&mut alice, "<presence><show>away</show></presence>").await;
    let got = expect(&mut bob, "<show>away</show>").await;
    assert!(got.contains("from='alice@localhost/desk'"), "{got}");
    send(&mut bob, "<presence><show>dnd</show></presence>").await;
    let got = expect(&mut alice, "<show>dnd</show>").await;
    assert!(got.contains("from='bob@localhost/phone'"), "{got}");

    // A request from a contact already subscribed is approved by the server
    // (§3.1.3), not shown to Bob; and an approval for a subscription already there
    // changes nothing for Alice, so it is not shown to her either (§3.1.6).
    send(&mut alice, &subscription("subscribe", "bob@localhost")).await;
    let at_alice = settle(&mut alice, "m1").await;
    assert!(!at_alice.contains("type='subscribed'"), "{at_alice}");
    let at_bob = settle(&mut bob, "m2").await;
    assert!(!at_bob.contains("type='subscribe'"), "{at_bob}");
    server.stop().await;
}

#[tokio::test]
async fn login_brings_contacts_presence_and_logout_tells_them() {
    let server = TestServer::start(Settings::default()).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;

    // §4.5.3: a session that drops goes unavailable for its contacts.
    drop(alice);
    let gone = expect(&mut bob, "type='unavailable'").await;
    assert!(gone.contains("from='alice@localhost/desk'"), "{gone}");

    // §4.2: at login the probes are answered with Bob's presence, and Bob gets
    // Alice's.
    let mut alice = connect(&server).await;
    let login = format!(
        "{}{}{}{}{PRESENCE}",
        header(true),
        plain_auth("alice", PASSWORD),
        header(false),
        bind("laptop")
    );
    alice
        .flight(&login, |c| c.text.contains("from='bob@localhost/phone'"))
        .await;
    let text = alice.client.take_text();
    assert!(text.contains("to='alice@localhost/laptop'"), "{text}");
    expect(
        &mut bob,
        "<presence from='alice@localhost/laptop' to='bob@localhost'",
    )
    .await;

    // An explicit unavailable goes to the contact too.
    send(&mut alice, "<presence type='unavailable'/>").await;
    let gone = expect(&mut bob, "type='unavailable'").await;
    assert!(gone.contains("from='alice@localhost/laptop'"), "{gone}");
    server.stop().await;
}

#[tokio::test]
async fn a_waiting_request_comes_again_at_each_login_until_answered() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    roster_get(&mut alice, "r1", None).await;
    // Bob is offline: the request waits for him.
    send(&mut alice, &subscription("subscribe", "bob@localhost")).await;
    expect(&mut alice, "ask='subscribe'").await;
    for round in 0..2 {
        let mut bob = connect(&server).await;
        let login = format!(
            "{}{}{}{}{PRESENCE}",
            header(true),
            plain_auth("bob", PASSWORD),
            header(false),
            bind("phone")
        );
        bob.flight(&login, |c| c.text.contains("type='subscribe'"))
            .await;
        let text = bob.client.take_text();
        assert!(
            text.contains("from='alice@localhost' to='bob@localhost'"),
            "round {round}: {text}"
        );
        if round == 1 {
            send(&mut bob, &subscription("subscribed", "alice@localhost")).await;
            expect(&mut alice, "subscription='to'").await;
        }
        drop(bob);
    }
    // Answered: the next login brings no request.
    let mut bob = online(&server, "bob", "phone", true).await;
    let text = settle(&mut bob, "m1").await;
    assert!(!text.contains("type='subscribe'"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn cancelling_and_revoking_take_presence_away() {
    let server = TestServer::start(Settings::default()).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;

    // §3.3: Alice cancels her subscription to Bob: both → from; she no longer
    // sees him, so his presence goes unavailable for her.
    send(&mut alice, &subscription("unsubscribe", "bob@localhost")).await;
    expect_all(
        &mut alice,
        &[
            "<item jid='bob@localhost' subscription='from'/>",
            "<presence type='unavailable' from='bob@localhost/phone'",
        ],
    )
    .await;
    expect_all(
        &mut bob,
        &[
            "type='unsubscribe' from='alice@localhost'",
            "<item jid='alice@localhost' subscription='to'/>",
        ],
    )
    .await;

    // §3.2: Alice revokes Bob's subscription to her: from → none both sides.
    send(&mut alice, &subscription("unsubscribed", "bob@localhost")).await;
    expect(
        &mut alice,
        "<item jid='bob@localhost' subscription='none'/>",
    )
    .await;
    expect_all(
        &mut bob,
        &[
            "type='unsubscribed' from='alice@localhost'",
            "<item jid='alice@localhost' subscription='none'/>",
            "<presence type='unavailable' from='alice@localhost/desk'",
        ],
    )
    .await;
    // Her presence no longer reaches him.
    send(&mut alice, "<presence><show>xa</show></presence>").await;
    expect(&mut alice, "<show>xa</show>").await;
    let at_bob = settle(&mut bob, "m1").await;
    assert!(!at_bob.contains("<show>xa</show>"), "{at_bob}");
    server.stop().await;
}

#[tokio::test]
async fn removing_a_contact_cancels_both_ways() {
    let server = TestServer::start(Settings::default()).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    befriend(&mut alice, "alice@localhost", &mut bob, "bob@localhost").await;

    // §2.5.2: unsubscribe and unsubscribed go to Bob on Alice's behalf.
    roster_set(
        &mut alice,
        "s1",
        "<item jid='bob@localhost' subscription='remove'/>",
        &[
            "<item jid='bob@localhost' subscription='remove'/>",
            "<presence type='unavailable' from='bob@localhost/phone'",
        ],
    )
    .await;
    expect_all(
        &mut bob,
        &[
            "type='unsubscribe' from='alice@localhost'",
            "type='unsubscribed' from='alice@localhost'",
            "<item jid='alice@localhost' subscription='none'/>",
            "<presence type='unavailable' from='alice@localhost/desk'",
        ],
    )
    .await;
    let roster = roster_get(&mut alice, "r1", None).await;
    assert!(!roster.contains("bob@localhost"), "{roster}");
    server.stop().await;
}

#[tokio::test]
async fn contacts_elsewhere_or_nowhere() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    roster_get(&mut alice, "r1", None).await;
    // Another domain: no server-to-server, as for messages.
    send(
        &mut alice,
        &subscription("subscribe", "someone@elsewhere.example"),
    )
    .await;
    let got = expect(&mut alice, "<remote-server-not-found ").await;
    assert!(got.contains("type='error'"), "{got}");
    // No such account here: the request is denied for it.
    send(&mut alice, &subscription("subscribe", "nobody@localhost")).await;
    expect_all(
        &mut alice,
        &[
            "type='unsubscribed' from='nobody@localhost'",
            "<item jid='nobody@localhost' subscription='none'/>",
        ],
    )
    .await;
    // A probe is answered only for a subscription: Alice has none to Bob.
    let mut bob = online(&server, "bob", "phone", true).await;
    send(&mut alice, "<presence type='probe' to='bob@localhost'/>").await;
    let text = settle(&mut alice, "m1").await;
    assert!(!text.contains("from='bob@localhost/phone'"), "{text}");
    // With one, it is.
    send(&mut alice, &subscription("subscribe", "bob@localhost")).await;
    expect(&mut bob, "type='subscribe'").await;
    send(&mut bob, &subscription("subscribed", "alice@localhost")).await;
    expect(&mut alice, "subscription='to'").await;
    send(&mut alice, "<presence type='probe' to='bob@localhost'/>").await;
    expect(
        &mut alice,
        "<presence from='bob@localhost/phone' to='alice@localhost/desk'",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn directed_presence_is_followed_by_unavailable() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let mut carol = online(&server, "carol", "home", true).await;
    // §4.6: no subscription, presence sent to Carol directly.
    send(
        &mut alice,
        "<presence to='carol@localhost'><show>chat</show></presence>",
    )
    .await;
    expect(&mut carol, "<show>chat</show>").await;
    drop(alice);
    let gone = expect(&mut carol, "type='unavailable'").await;
    assert!(gone.contains("from='alice@localhost/desk'"), "{gone}");
    server.stop().await;
}
