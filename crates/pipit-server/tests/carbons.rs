//! Message Carbons (XEP-0280) over real sockets: switched on by iq or inline with
//! Bind2 (XEP-0386), switched off, received and sent copies, what is not copied
//! (private, no-copy, ineligible types), no copy for a resource that has the
//! original, forged copies stripped, the disco feature, and the switch lasting
//! through stream resumption (XEP-0198).
//!
//! A copy that must not arrive is checked with a marker: a later stanza from the
//! same sending session, which the server handles after the message and so queues
//! behind any copy the message made.

mod support;

use pipit_server::Settings;
use support::*;

const CARBONS: &str = "urn:xmpp:carbons:2";

/// Switches carbons on (`enable`) or off (`disable`) with an iq to `to` (or no
/// `to`); returns the answer.
async fn switch(w: &mut WireClient, switch: &str, to: Option<&str>) -> String {
    let to = to.map(|to| format!(" to='{to}'")).unwrap_or_default();
    send(
        w,
        &format!("<iq type='set' id='{switch}'{to}><{switch} xmlns='{CARBONS}'/></iq>"),
    )
    .await;
    expect(w, &format!("id='{switch}'")).await
}

/// Switches carbons on and checks the server said yes.
async fn enable(w: &mut WireClient) {
    let answer = switch(w, "enable", None).await;
    assert!(answer.contains("type='result'"), "{answer}");
}

/// A chat message with id and body `body`.
fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='{body}'><body>{body}</body></message>")
}

/// A marker: a headline (never copied itself) with body `body`.
fn marker(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='headline'><body>{body}</body></message>")
}

/// The SASL2 PLAIN initial response for `user`, taken from the legacy `<auth/>`
/// (the same base64 of `\0user\0password`).
fn initial_response(user: &str) -> String {
    let auth = plain_auth(user, PASSWORD);
    let start = auth.find('>').unwrap() + 1;
    auth[start..auth.find("</auth>").unwrap()].to_owned()
}

/// Logs in with SASL2 and Bind2 (tag `tag`, `inline` inside `<bind/>`), sends
/// initial presence; returns the client and its full JID.
async fn bind2_online(
    server: &TestServer,
    user: &str,
    tag: &str,
    inline: &str,
) -> (WireClient, String) {
    let mut w = connect(server).await;
    let login = format!(
        "{}<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'>\
         <initial-response>{}</initial-response>\
         <bind xmlns='urn:xmpp:bind:0'><tag>{tag}</tag>{inline}</bind></authenticate>{PRESENCE}",
        header(true),
        initial_response(user),
    );
    w.flight(&login, has("<presence")).await;
    let text = w.client.take_text();
    assert!(text.contains("<bound xmlns='urn:xmpp:bind:0'"), "{text}");
    let open = "<authorization-identifier>";
    let start = text.find(open).unwrap() + open.len();
    let jid = text[start..start + text[start..].find('<').unwrap()].to_owned();
    (w, jid)
}

#[tokio::test]
async fn enabled_by_iq_a_resource_gets_copies_until_disabled() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    let mut bob = online(&server, "bob", "home", true).await;
    enable(&mut phone).await;

    send(&mut bob, &chat("alice@localhost/desk", "m1")).await;
    let original = expect(&mut desk, "<body>m1</body>").await;
    assert!(!original.contains(CARBONS), "{original}");
    let copy = expect(&mut phone, "</message>").await;
    assert!(
        copy.contains(
            "<message from='alice@localhost' to='alice@localhost/phone' type='chat'>\
             <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client'"
        ) && copy.contains("from='bob@localhost/home'")
            && copy.contains("to='alice@localhost/desk'")
            && copy.contains("<body>m1</body>"),
        "{copy}"
    );

    // Off by an iq to the own bare JID.
    let answer = switch(&mut phone, "disable", Some("alice@localhost")).await;
    assert!(answer.contains("type='result'"), "{answer}");
    send(&mut bob, &chat("alice@localhost/desk", "m2")).await;
    send(&mut bob, &marker("alice@localhost/phone", "marker")).await;
    expect(&mut desk, "<body>m2</body>").await;
    let text = expect(&mut phone, "<body>marker</body>").await;
    assert!(!text.contains("m2"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn switching_is_for_ones_own_account_and_by_set() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    // Repeating a switch is no error (XEP-0280, Business Rules).
    for _ in 0..2 {
        enable(&mut alice).await;
    }
    for _ in 0..2 {
        let answer = switch(&mut alice, "disable", None).await;
        assert!(answer.contains("type='result'"), "{answer}");
    }
    let answer = switch(&mut alice, "enable", Some("bob@localhost")).await;
    assert!(
        answer.contains("type='error'") && answer.contains("<not-allowed "),
        "{answer}"
    );
    send(
        &mut alice,
        &format!("<iq type='get' id='g'><enable xmlns='{CARBONS}'/></iq>"),
    )
    .await;
    let answer = expect(&mut alice, "id='g'").await;
    assert!(answer.contains("<bad-request "), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn bind2_can_enable_carbons_inline() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let inline = format!("<enable xmlns='{CARBONS}'/>");
    let (mut phone, phone_jid) = bind2_online(&server, "alice", "phone", &inline).await;
    let (mut tablet, _) = bind2_online(&server, "alice", "tablet", "").await;
    let mut bob = online(&server, "bob", "home", true).await;

    send(&mut bob, &chat("alice@localhost/desk", "inline")).await;
    send(&mut bob, &marker("alice@localhost/tablet", "marker")).await;
    expect(&mut desk, "<body>inline</body>").await;
    let copy = expect(&mut phone, "<body>inline</body>").await;
    assert!(
        copy.contains(&format!(
            "<message from='alice@localhost' to='{phone_jid}' type='chat'><received xmlns='{CARBONS}'>"
        )),
        "{copy}"
    );
    // Bound without the inline <enable/>: no copies.
    let text = expect(&mut tablet, "<body>marker</body>").await;
    assert!(!text.contains("inline"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn sent_copies_reach_the_other_resources_but_not_the_sender() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    let mut bob = online(&server, "bob", "home", true).await;
    enable(&mut desk).await;
    enable(&mut phone).await;

    send(&mut desk, &chat("bob@localhost", "outgoing")).await;
    // The sender's own ping comes back after any copy the message made for it.
    send(
        &mut desk,
        "<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let original = expect(&mut bob, "<body>outgoing</body>").await;
    assert!(!original.contains(CARBONS), "{original}");
    let copy = expect(&mut phone, "</message>").await;
    assert!(
        copy.contains(&format!(
            "<message from='alice@localhost' to='alice@localhost/phone' type='chat'>\
             <sent xmlns='{CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client'"
        )) && copy.contains("from='alice@localhost/desk'")
            && copy.contains("to='bob@localhost'")
            && copy.contains("<body>outgoing</body>"),
        "{copy}"
    );
    let text = expect(&mut desk, "id='after'").await;
    assert!(!text.contains("outgoing"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn private_and_no_copy_messages_are_not_copied() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    let mut bob = online(&server, "bob", "home", true).await;
    enable(&mut phone).await;
    let private = format!("<private xmlns='{CARBONS}'/><no-copy xmlns='urn:xmpp:hints'/>");

    send(
        &mut bob,
        &format!(
            "<message to='alice@localhost/desk' type='chat' id='in'><body>secret-in</body>{private}</message>"
        ),
    )
    .await;
    send(&mut bob, &marker("alice@localhost/phone", "marker-in")).await;
    let original = expect(&mut desk, "secret-in").await;
    assert!(
        original.contains("<private "),
        "delivered as sent: {original}"
    );
    let text = expect(&mut phone, "marker-in").await;
    assert!(!text.contains("secret"), "{text}");

    send(
        &mut desk,
        &format!(
            "<message to='bob@localhost' type='chat' id='out'><body>secret-out</body>{private}</message>"
        ),
    )
    .await;
    send(&mut desk, &marker("alice@localhost/phone", "marker-out")).await;
    expect(&mut bob, "secret-out").await;
    let text = expect(&mut phone, "marker-out").await;
    assert!(!text.contains("secret"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn only_chat_and_normal_messages_with_a_body_are_copied() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    let mut bob = online(&server, "bob", "home", true).await;
    enable(&mut phone).await;

    let to = "to='alice@localhost/desk'";
    let ineligible = [
        format!("<message {to} type='groupchat' id='x-groupchat'><body>b</body></message>"),
        format!("<message {to} type='headline' id='x-headline'><body>b</body></message>"),
        format!("<message {to} type='error' id='x-error'><body>b</body></message>"),
        format!("<message {to} id='x-normal'><thread>t</thread></message>"),
    ];
    for stanza in &ineligible {
        send(&mut bob, stanza).await;
    }
    send(
        &mut bob,
        &format!("<message {to} id='y-normal'><body>with body</body></message>"),
    )
    .await;
    send(&mut bob, &marker("alice@localhost/phone", "marker")).await;

    let delivered = expect(&mut desk, "id='y-normal'").await;
    for id in ["x-groupchat", "x-headline", "x-error", "x-normal"] {
        assert!(
            delivered.contains(&format!("id='{id}'")),
            "{id}: {delivered}"
        );
    }
    let text = expect(&mut phone, "<body>marker</body>").await;
    assert_eq!(count(&text, "<received "), 1, "{text}");
    assert!(text.contains("id='y-normal'"), "{text}");
    assert!(!text.contains("id='x-"), "{text}");
    // A normal message's copy is a normal message too: no type on the wrapper.
    assert!(
        text.contains("<message from='alice@localhost' to='alice@localhost/phone'><received "),
        "{text}"
    );
    server.stop().await;
}

/// Alice on desk and phone (priority 0) and laptop (priority -1), all with
/// carbons on, and bob.
async fn three_resources(server: &TestServer) -> (WireClient, WireClient, WireClient, WireClient) {
    let mut desk = online(server, "alice", "desk", true).await;
    let mut phone = online(server, "alice", "phone", true).await;
    let mut laptop = online(server, "alice", "laptop", false).await;
    send(&mut laptop, "<presence><priority>-1</priority></presence>").await;
    expect(&mut laptop, "from='alice@localhost/laptop'").await;
    for w in [&mut desk, &mut phone, &mut laptop] {
        enable(w).await;
    }
    let bob = online(server, "bob", "home", true).await;
    (desk, phone, laptop, bob)
}

#[tokio::test]
async fn resources_that_got_the_original_get_no_copy() {
    let server = TestServer::start(Settings::default()).await;
    let (mut desk, mut phone, mut laptop, mut bob) = three_resources(&server).await;

    // RFC 6121 §8.5.2.1.1: to the bare JID, desk and phone get the original; the
    // laptop's negative priority keeps it out, so it gets the copy.
    send(&mut bob, &chat("alice@localhost", "to-bare")).await;
    for to in ["desk", "phone", "laptop"] {
        send(
            &mut bob,
            &marker(&format!("alice@localhost/{to}"), "marker"),
        )
        .await;
    }
    for w in [&mut desk, &mut phone] {
        let text = expect(w, "<body>marker</body>").await;
        assert_eq!(count(&text, "<body>to-bare</body>"), 1, "{text}");
        assert!(!text.contains(CARBONS), "{text}");
    }
    let text = expect(&mut laptop, "<body>marker</body>").await;
    assert_eq!(count(&text, "<body>to-bare</body>"), 1, "{text}");
    assert!(
        text.contains(&format!("<received xmlns='{CARBONS}'>")),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_message_to_oneself_reaches_each_resource_once() {
    let server = TestServer::start(Settings::default()).await;
    let (mut desk, mut phone, mut laptop, _bob) = three_resources(&server).await;

    send(&mut desk, &chat("alice@localhost", "note")).await;
    for to in ["desk", "phone", "laptop"] {
        send(
            &mut desk,
            &marker(&format!("alice@localhost/{to}"), "marker"),
        )
        .await;
    }
    // Desk and phone: the original only, neither a sent nor a received copy.
    for w in [&mut desk, &mut phone] {
        let text = expect(w, "<body>marker</body>").await;
        assert_eq!(count(&text, "<body>note</body>"), 1, "{text}");
        assert!(!text.contains(CARBONS), "{text}");
    }
    // The laptop did not get the original: one copy, as sent by its account.
    let text = expect(&mut laptop, "<body>marker</body>").await;
    assert_eq!(count(&text, "<body>note</body>"), 1, "{text}");
    assert!(
        text.contains(&format!("<sent xmlns='{CARBONS}'>")),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn forged_copies_from_another_user_are_stripped() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    let mut bob = online(&server, "bob", "home", true).await;
    enable(&mut desk).await;
    enable(&mut phone).await;

    for direction in ["received", "sent"] {
        let forged = format!(
            "<message to='alice@localhost/desk' type='chat' id='{direction}'><body>outer</body>\
             <{direction} xmlns='{CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='carol@localhost/x' to='alice@localhost/desk' type='chat'>\
             <body>impersonated</body></message></forwarded></{direction}></message>"
        );
        send(&mut bob, &forged).await;
        let got = expect(&mut desk, "</message>").await;
        assert!(
            got.contains("from='bob@localhost/home'") && got.contains("<body>outer</body>"),
            "{got}"
        );
        assert!(
            !got.contains(CARBONS) && !got.contains("impersonated"),
            "{got}"
        );
        // The real copy wraps what was delivered: the message without the forgery.
        let copy = expect(&mut phone, "</message></forwarded>").await;
        assert_eq!(count(&copy, CARBONS), 1, "{copy}");
        assert!(!copy.contains("impersonated"), "{copy}");
    }
    server.stop().await;
}

#[tokio::test]
async fn disco_lists_carbons() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    send(
        &mut alice,
        "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let got = expect(&mut alice, "</iq>").await;
    assert!(
        got.contains(&format!("<feature var='{CARBONS}'/>")),
        "{got}"
    );
    server.stop().await;
}

/// Enables stream management with resumption; returns the SM-ID.
async fn enable_sm(w: &mut WireClient) -> String {
    send(w, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>").await;
    let text = expect(w, "<enabled ").await;
    let id = text.split_once(" id='").unwrap().1;
    id.split_once('\'').unwrap().0.to_owned()
}

#[tokio::test]
async fn carbons_stay_on_through_stream_resumption() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    let mut bob = online(&server, "bob", "home", true).await;
    enable(&mut phone).await;
    let id = enable_sm(&mut phone).await;

    // The connection drops; the session waits, and copies queue for it.
    drop(phone);
    send(&mut bob, &chat("alice@localhost/desk", "while-away")).await;
    expect(&mut desk, "while-away").await;

    let mut phone = connect(&server).await;
    let flight = format!(
        "{}{}{}<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>",
        header(true),
        plain_auth("alice", PASSWORD),
        header(false),
    );
    phone.flight(&flight, has("while-away")).await;
    let text = phone.client.take_text();
    assert!(text.contains("<resumed "), "{text}");
    assert_eq!(count(&text, "<received "), 1, "{text}");

    // Still on in the resumed session.
    send(&mut bob, &chat("alice@localhost/desk", "after-resume")).await;
    let copy = expect(&mut phone, "after-resume").await;
    assert!(
        copy.contains(&format!("<received xmlns='{CARBONS}'>")),
        "{copy}"
    );
    server.stop().await;
}
