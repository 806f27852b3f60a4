//! Connection and session limits over real sockets: a connection past a limit is
//! told which one in a stream error (`<policy-violation/>` for what its address
//! does, RFC 6120 §4.9.3.14; `<resource-constraint/>` when the server is full,
//! §4.9.3.17) on both listeners, then closed; an account past its session limit
//! gets the `<resource-constraint/>` stanza error of RFC 6120 §7.6.2.1, with
//! RFC 6120 binding and with Bind2 (XEP-0386).
//!
//! Every connection here comes from 127.0.0.1: loopback is not exempt.

mod support;

use pipit_server::Settings;
use support::*;

/// Limits for one test: the ones not given are off.
fn limits(per_ip: u32, rate: u32, burst: u32, total: u32, sessions: u32) -> Settings {
    Settings {
        max_connections_per_ip: Some(per_ip),
        connection_rate_per_ip: Some(rate),
        connection_burst_per_ip: Some(burst),
        max_connections: Some(total),
        max_sessions_per_user: Some(sessions),
        ..Settings::default()
    }
}

/// Opens a STARTTLS stream; true when the server answered with features (the
/// connection was admitted), false when it closed the stream at once. The text
/// received stays in the client.
async fn open_stream(server: &TestServer) -> (WireClient, bool) {
    let mut w = WireClient::connect(server.c2s, None).await;
    w.flight(&header(true), |c| {
        c.text.contains("</stream:features>") || c.text.contains("</stream:stream>")
    })
    .await;
    let admitted = w.client.text.contains("</stream:features>");
    (w, admitted)
}

/// Connects over Direct TLS, sends a stream header (with the client's Finished,
/// which the server waits for) and reads until the server closes.
async fn refused_over_direct_tls(server: &TestServer) -> String {
    let mut w = connect(server).await;
    send(&mut w, &header(true)).await;
    w.read_to_close().await
}

/// Asserts `text` is a stream header, the stream error `condition` whose text
/// contains `says`, and the end of the stream.
fn assert_refused(text: &str, condition: &str, says: &str) {
    assert!(text.contains("<stream:stream "), "{text}");
    let error = format!(
        "<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>"
    );
    assert!(text.contains(&error), "{text}");
    assert!(text.contains(says), "{text}");
    assert!(text.ends_with("</stream:stream>"), "{text}");
}

#[tokio::test]
async fn past_the_per_address_cap_both_listeners_say_so() {
    let server = TestServer::start(limits(2, 0, 0, 0, 0)).await;
    let (_one, admitted) = open_stream(&server).await;
    assert!(admitted);
    // Direct TLS counts towards the same address.
    let _two = connect(&server).await;

    let (mut starttls, admitted) = open_stream(&server).await;
    assert!(!admitted);
    let text = starttls.read_to_close().await;
    assert_refused(
        &text,
        "policy-violation",
        "too many connections from your address (at most 2 at once)",
    );

    // Over Direct TLS the handshake completes and the same error comes in it.
    let text = refused_over_direct_tls(&server).await;
    assert_refused(
        &text,
        "policy-violation",
        "too many connections from your address",
    );
    server.stop().await;
}

#[tokio::test]
async fn connecting_faster_than_the_rate_is_refused_after_the_burst() {
    // One new connection a second after a burst of three: the loop below takes far
    // less than the seconds it would need to see no refusal at all.
    let server = TestServer::start(limits(0, 1, 3, 0, 0)).await;
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        let (mut w, admitted) = open_stream(&server).await;
        if !admitted {
            refused = Some(w.read_to_close().await);
            break;
        }
        open.push(w);
    }
    let text = refused.expect("twenty connections at once were all admitted");
    assert!(open.len() >= 3, "the burst of 3 was not admitted");
    assert_refused(
        &text,
        "policy-violation",
        "too many new connections from your address (at most 1 a second after 3 at once)",
    );
    server.stop().await;
}

#[tokio::test]
async fn past_the_total_cap_the_server_says_it_is_full() {
    let server = TestServer::start(limits(0, 0, 0, 2, 0)).await;
    let _one = connect(&server).await;
    let (_two, admitted) = open_stream(&server).await;
    assert!(admitted);
    let text = refused_over_direct_tls(&server).await;
    assert_refused(
        &text,
        "resource-constraint",
        "the server is at its limit of 2 connections",
    );
    let (mut starttls, admitted) = open_stream(&server).await;
    assert!(!admitted);
    let text = starttls.read_to_close().await;
    assert_refused(&text, "resource-constraint", "limit of 2 connections");
    server.stop().await;
}

/// RFC 6120 §7.6.2.1: "resource-constraint", type "wait".
fn assert_bind_refused(text: &str) {
    assert!(
        text.contains("<iq type='error' id='bind1'")
            && text.contains(
                "<error type='wait'><resource-constraint \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            ),
        "{text}"
    );
}

/// Logs in with PLAIN and binds `resource` the RFC 6120 way; returns the text
/// once the bind has been answered.
async fn bind_rfc6120(server: &TestServer, resource: &str) -> (WireClient, String) {
    let mut w = connect(server).await;
    let login = format!(
        "{}{}{}{}",
        header(true),
        plain_auth("alice", PASSWORD),
        header(false),
        bind(resource)
    );
    w.flight(&login, |c| c.text.contains("</iq>")).await;
    let text = w.client.take_text();
    (w, text)
}

#[tokio::test]
async fn an_account_past_its_session_limit_cannot_bind_another() {
    let server = TestServer::start(Settings {
        max_sessions_per_user: Some(2),
        ..Settings::default()
    })
    .await;
    let _desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    // Another account is not affected.
    let _bob = online(&server, "bob", "desk", true).await;

    let (mut third, text) = bind_rfc6120(&server, "laptop").await;
    assert_bind_refused(&text);
    // The stream stays usable: the client may end its session cleanly.
    send(&mut third, "</stream:stream>").await;
    third.read_to_close().await;

    // Taking over one of the two resources needs no new place (conflict policy
    // replace): the old session is told, the new one is bound.
    let (_again, text) = bind_rfc6120(&server, "phone").await;
    assert!(text.contains("<jid>alice@localhost/phone</jid>"), "{text}");
    let old = phone.read_to_close().await;
    assert!(old.contains("<conflict "), "{old}");
    server.stop().await;
}

/// The SASL2 PLAIN initial response for alice (the base64 of the legacy `<auth/>`).
fn initial_response() -> String {
    let auth = plain_auth("alice", PASSWORD);
    let start = auth.find('>').unwrap() + 1;
    auth[start..auth.find("</auth>").unwrap()].to_owned()
}

#[tokio::test]
async fn with_bind2_the_login_succeeds_unbound_and_binding_says_why() {
    let server = TestServer::start(Settings {
        max_sessions_per_user: Some(1),
        ..Settings::default()
    })
    .await;
    let _desk = online(&server, "alice", "desk", true).await;

    let mut w = connect(&server).await;
    let login = format!(
        "{}<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>\
         <initial-response>{}</initial-response>\
         <bind xmlns='urn:xmpp:bind:0'><tag>phone</tag></bind></authenticate>",
        header(true),
        initial_response(),
    );
    w.flight(&login, has("</success>")).await;
    let text = w.client.take_text();
    // XEP-0386 §3: authenticated, but with no <bound/>; the identity is the
    // account, not a full JID.
    assert!(!text.contains("<bound"), "{text}");
    assert!(
        text.contains("<authorization-identifier>alice@localhost</authorization-identifier>"),
        "{text}"
    );
    // A client that binds the RFC 6120 way, as XEP-0386 has it do next, is told why.
    w.flight(&bind("phone"), |c| c.text.contains("</iq>")).await;
    assert_bind_refused(&w.client.take_text());
    server.stop().await;
}
