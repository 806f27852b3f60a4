//! The IM basics over real sockets: messages to bare, full and own JIDs, presence
//! among one's own resources, ping, disco, the legacy session iq, the resource
//! conflict policies, and bad input that ends one stream while others carry on.

mod support;

use pipit_server::Settings;
use support::*;

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

#[tokio::test]
async fn messages_to_bare_full_and_own_jids() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "phone", true).await;

    send(&mut alice, &message_to("bob@localhost", "to bare")).await;
    let got = expect(&mut bob, "to bare").await;
    assert!(got.contains("from='alice@localhost/desk'"), "{got}");

    send(&mut alice, &message_to("bob@localhost/phone", "to full")).await;
    expect(&mut bob, "to full").await;

    send(&mut alice, &message_to("alice@localhost", "to myself")).await;
    expect(&mut alice, "to myself").await;

    // A full JID that is not connected falls back to the bare JID (RFC 6121 §8.5.3.2.1).
    send(
        &mut alice,
        &message_to("bob@localhost/gone", "to a gone resource"),
    )
    .await;
    expect(&mut bob, "to a gone resource").await;
    server.stop().await;
}

#[tokio::test]
async fn undeliverable_messages_bounce_instead_of_vanishing() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    // No such account, the server itself; an offline account's messages are
    // stored instead (tests/offline.rs), its chat states bounce.
    send(
        &mut alice,
        "<message to='carol@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    )
    .await;
    let got = expect(&mut alice, "</message>").await;
    assert!(got.contains("<service-unavailable"), "{got}");
    for to in ["nobody@localhost", "localhost"] {
        send(&mut alice, &message_to(to, "hello?")).await;
        let got = expect(&mut alice, "</message>").await;
        assert!(
            got.contains("type='error'") && got.contains("<service-unavailable"),
            "{to}: {got}"
        );
    }
    send(&mut alice, &message_to("someone@elsewhere.example", "far")).await;
    let got = expect(&mut alice, "</message>").await;
    assert!(got.contains("<remote-server-not-found"), "{got}");
    send(&mut alice, "<message to='a@b@c'><body>x</body></message>").await;
    let got = expect(&mut alice, "</message>").await;
    assert!(got.contains("<jid-malformed"), "{got}");
    server.stop().await;
}

#[tokio::test]
async fn presence_reaches_own_other_resources() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", false).await;
    send(&mut phone, "<presence><show>away</show></presence>").await;
    let at_desk = expect(&mut desk, "</presence>").await;
    assert!(
        at_desk.contains("from='alice@localhost/phone'") && at_desk.contains("away"),
        "{at_desk}"
    );
    // The newcomer learns of the desk's presence, and sees its own reflected.
    let at_phone = expect(&mut phone, "from='alice@localhost/desk'").await;
    assert!(at_phone.contains("<presence"), "{at_phone}");
    // Going away without a word still tells the others.
    drop(phone);
    let gone = expect(&mut desk, "type='unavailable'").await;
    assert!(gone.contains("from='alice@localhost/phone'"), "{gone}");
    server.stop().await;
}

#[tokio::test]
async fn server_iq_ping_disco_session_and_the_rest() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    send(
        &mut alice,
        "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let got = expect(&mut alice, "id='p1'").await;
    assert!(got.contains("type='result'"), "{got}");

    send(&mut alice, "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let got = expect(&mut alice, "</iq>").await;
    assert!(
        got.contains("category='server'") && got.contains("var='urn:xmpp:ping'"),
        "{got}"
    );

    send(
        &mut alice,
        "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    )
    .await;
    let got = expect(&mut alice, "id='s1'").await;
    assert!(got.contains("type='result'"), "{got}");

    send(
        &mut alice,
        "<iq type='get' id='v1' to='localhost'><vCard xmlns='vcard-temp'/></iq>",
    )
    .await;
    let got = expect(&mut alice, "</iq>").await;
    assert!(got.contains("<service-unavailable"), "{got}");

    send(&mut alice, "<iq type='get' id='bad'/>").await;
    let got = expect(&mut alice, "</iq>").await;
    assert!(got.contains("<bad-request"), "{got}");
    server.stop().await;
}

#[tokio::test]
async fn iq_to_a_full_jid_is_routed() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "phone", true).await;
    send(
        &mut alice,
        "<iq type='get' id='q' to='bob@localhost/phone'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await;
    expect(&mut bob, "jabber:iq:version").await;
    send(
        &mut bob,
        "<iq type='result' id='q' to='alice@localhost/desk'/>",
    )
    .await;
    let got = expect(&mut alice, "id='q'").await;
    assert!(got.contains("from='bob@localhost/phone'"), "{got}");
    server.stop().await;
}

async fn second_login(server: &TestServer) -> (WireClient, String) {
    let mut w = WireClient::connect(server.direct_tls, None).await;
    w.client.start_tls(&client_tls(TLS13), false);
    w.flight("", |c| !c.handshaking()).await;
    let login = format!(
        "{}{}{}{}",
        header(true),
        plain_auth("alice", PASSWORD),
        header(false),
        bind("desk")
    );
    w.flight(&login, |c| c.text.contains("</iq>")).await;
    let text = w.client.take_text();
    (w, text)
}

#[tokio::test]
async fn conflict_policy_replace() {
    let server = TestServer::start(Settings::default()).await;
    let mut old = online(&server, "alice", "desk", true).await;
    let (_new, text) = second_login(&server).await;
    assert!(
        text.contains("conflict='replace'") && text.contains("<jid>alice@localhost/desk</jid>"),
        "{text}"
    );
    let closed = old.read_to_close().await;
    assert!(
        closed.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{closed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn conflict_policy_refuse() {
    let refuse = Settings {
        conflict_policy: Some("refuse".into()),
        ..Settings::default()
    };
    let server = TestServer::start(refuse).await;
    let _old = online(&server, "alice", "desk", true).await;
    let (_new, text) = second_login(&server).await;
    assert!(
        text.contains("conflict='refuse'")
            && text.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn conflict_policy_rename_reports_the_override() {
    let rename = Settings {
        conflict_policy: Some("rename".into()),
        ..Settings::default()
    };
    let server = TestServer::start(rename).await;
    let _old = online(&server, "alice", "desk", true).await;
    let (_new, text) = second_login(&server).await;
    assert!(
        text.contains("conflict='rename'") && text.contains("<jid>alice@localhost/desk."),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_ends_one_stream_and_the_server_carries_on() {
    let server = TestServer::start(Settings::default()).await;
    let mut bob = online(&server, "bob", "phone", true).await;
    for (garbage, condition) in [
        ("<message><body>x</message>", "not-well-formed"),
        ("<!DOCTYPE x [<!ENTITY a 'b'>]>", "restricted-xml"),
        ("<foo xmlns='urn:unknown'/>", "unsupported-stanza-type"),
    ] {
        let mut w = WireClient::connect(server.c2s, None).await;
        w.flight(&format!("{}{garbage}", header(true)), |_| true)
            .await;
        let text = w.read_to_close().await;
        assert!(
            text.contains(&format!("<{condition} ")),
            "{condition}: {text}"
        );
    }
    let mut alice = online(&server, "alice", "desk", true).await;
    send(&mut alice, &message_to("bob@localhost", "still here")).await;
    expect(&mut bob, "still here").await;
    server.stop().await;
}

#[tokio::test]
async fn a_silent_client_times_out() {
    let quick = Settings {
        login_timeout_secs: Some(1),
        ..Settings::default()
    };
    let server = TestServer::start(quick).await;
    let mut w = WireClient::connect(server.c2s, None).await;
    w.flight(&header(true), has("</stream:features>")).await;
    let text = w.read_to_close().await;
    assert!(text.contains("<connection-timeout "), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_streams_with_system_shutdown() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    server.stop().await;
    let text = alice.read_to_close().await;
    assert!(text.contains("<system-shutdown "), "{text}");
}
