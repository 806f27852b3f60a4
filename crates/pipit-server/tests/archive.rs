//! Message Archive Management (XEP-0313) over real sockets: what is archived, the
//! archive ID on delivered messages (XEP-0359), queries with filters and paging
//! (XEP-0059), the page bound and the errors.

mod support;

use pipit_server::Settings;
use support::*;

const MAM: &str = "urn:xmpp:mam:2";

fn chat(to: &str, id: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>")
}

/// A query with these form fields and RSM children; waits for the iq result and
/// returns everything received up to it.
async fn query(w: &mut WireClient, id: &str, fields: &[(&str, &str)], rsm: &str) -> String {
    let mut form = String::new();
    if !fields.is_empty() {
        form.push_str(&format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>{MAM}</value></field>"
        ));
        for (var, value) in fields {
            form.push_str(&format!(
                "<field var='{var}'><value>{value}</value></field>"
            ));
        }
        form.push_str("</x>");
    }
    let set = if rsm.is_empty() {
        String::new()
    } else {
        format!("<set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set>")
    };
    send(
        w,
        &format!("<iq type='set' id='{id}'><query xmlns='{MAM}' queryid='q-{id}'>{form}{set}</query></iq>"),
    )
    .await;
    expect(w, &format!("id='{id}'")).await
}

/// The bodies of the results in `text`, in order.
fn bodies(text: &str) -> Vec<String> {
    text.split("<body>")
        .skip(1)
        .map(|rest| rest[..rest.find("</body>").unwrap()].to_string())
        .collect()
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("{open} in {text}"))
        + open.len();
    &text[start..start + text[start..].find(close).unwrap()]
}

/// Sends `n` chats from alice to bob, each acknowledged (so stored) before the next.
async fn converse(alice: &mut WireClient, bob: &mut WireClient, n: usize) {
    for i in 0..n {
        send(
            alice,
            &chat("bob@localhost", &format!("c{i}"), &format!("msg {i}")),
        )
        .await;
        expect(bob, &format!("msg {i}<")).await;
    }
}

#[tokio::test]
async fn both_sides_archive_and_the_recipient_sees_the_archive_id() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "phone", true).await;
    send(&mut alice, &chat("bob@localhost", "a1", "hello bob")).await;
    let got = expect(&mut bob, "</message>").await;
    let id = between(
        &got,
        "<stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='",
        "'",
    );
    assert_eq!(id.len(), 24, "{got}");
    // Chat states, headlines and no-store messages are not archived.
    send(
        &mut alice,
        "<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>\
         <message to='bob@localhost' type='headline'><body>news</body></message>\
         <message to='bob@localhost' type='chat'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>",
    )
    .await;
    expect(&mut bob, "secret").await;

    let text = query(&mut bob, "b1", &[], "").await;
    assert_eq!(bodies(&text), ["hello bob"], "{text}");
    assert!(
        text.contains(&format!("<result xmlns='{MAM}' id='{id}' queryid='q-b1'>")),
        "{text}"
    );
    assert!(
        text.contains(
            "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='"
        ),
        "{text}"
    );
    assert!(text.contains("from='alice@localhost/desk'"), "{text}");
    assert!(
        text.contains("<fin xmlns='urn:xmpp:mam:2' complete='true'>"),
        "{text}"
    );
    assert!(
        text.contains(&format!("<first>{id}</first><last>{id}</last>")),
        "{text}"
    );

    // The sender's own archive has its copy, under another ID.
    let text = query(&mut alice, "a1", &[], "").await;
    assert_eq!(bodies(&text), ["hello bob"], "{text}");
    assert!(!text.contains(id), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn filters_and_pages_cover_everything_once() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "phone", true).await;
    let mut carol = online(&server, "carol", "home", true).await;
    converse(&mut alice, &mut bob, 7).await;
    send(&mut carol, &chat("bob@localhost", "k", "from carol")).await;
    expect(&mut bob, "from carol").await;

    let with_carol = query(&mut bob, "w", &[("with", "carol@localhost")], "").await;
    assert_eq!(bodies(&with_carol), ["from carol"]);

    // Forward in pages of 3.
    let mut seen = Vec::new();
    let mut after = String::new();
    for page in 0.. {
        let rsm = if after.is_empty() {
            "<max>3</max>".to_string()
        } else {
            format!("<max>3</max><after>{after}</after>")
        };
        let text = query(
            &mut bob,
            &format!("f{page}"),
            &[("with", "alice@localhost")],
            &rsm,
        )
        .await;
        seen.extend(bodies(&text));
        if text.contains("complete='true'") {
            break;
        }
        after = between(&text, "<last>", "</last>").to_string();
        assert!(page < 5, "too many pages");
    }
    let all: Vec<String> = (0..7).map(|i| format!("msg {i}")).collect();
    assert_eq!(seen, all);

    // Backward from the end, pages of 2, each page oldest first.
    let mut pages = Vec::new();
    let mut before = String::new();
    for page in 0.. {
        let rsm = format!("<max>2</max><before>{before}</before>");
        let text = query(
            &mut bob,
            &format!("b{page}"),
            &[("with", "alice@localhost")],
            &rsm,
        )
        .await;
        pages.push(bodies(&text));
        if text.contains("complete='true'") {
            break;
        }
        before = between(&text, "<first>", "</first>").to_string();
        assert!(page < 5, "too many pages");
    }
    let backward: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(backward, all);

    // A time window: everything up to now, nothing from the future.
    let future = query(&mut bob, "t", &[("start", "2999-01-01T00:00:00Z")], "").await;
    assert!(
        bodies(&future).is_empty() && future.contains("complete='true'"),
        "{future}"
    );
    let past = query(&mut bob, "t2", &[("end", "2999-01-01T00:00:00Z")], "").await;
    assert_eq!(bodies(&past).len(), 8);
    server.stop().await;
}

#[tokio::test]
async fn pages_are_bounded_and_errors_are_clear() {
    let server = TestServer::start(Settings {
        mam_max_page: Some(4),
        ..Settings::default()
    })
    .await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "phone", true).await;
    converse(&mut alice, &mut bob, 6).await;
    // No max, and a max past the bound: both get the bound, and are not complete.
    for (id, rsm) in [("n", ""), ("m", "<max>1000</max>")] {
        let text = query(&mut bob, id, &[], rsm).await;
        assert_eq!(bodies(&text).len(), 4, "{text}");
        assert!(!text.contains("complete='true'"), "{text}");
    }
    let cases = [
        ("e1", vec![], "<after>no-such-id</after>", "item-not-found"),
        ("e2", vec![("start", "yesterday")], "", "bad-request"),
        ("e3", vec![("with", "@")], "", "jid-malformed"),
        ("e4", vec![("colour", "red")], "", "bad-request"),
        ("e5", vec![], "<index>2</index>", "feature-not-implemented"),
    ];
    for (id, fields, rsm, condition) in cases {
        let text = query(&mut bob, id, &fields, rsm).await;
        assert!(
            text.contains("type='error'") && text.contains(&format!("<{condition} ")),
            "{id}: {text}"
        );
    }
    // Another account's archive is not yours to read.
    send(
        &mut bob,
        &format!("<iq type='set' to='alice@localhost' id='x'><query xmlns='{MAM}'/></iq>"),
    )
    .await;
    let text = expect(&mut bob, "id='x'").await;
    assert!(text.contains("<service-unavailable "), "{text}");
    assert!(!text.contains("<body>"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn the_archive_is_announced_and_its_form_described() {
    let server = TestServer::start(Settings::default()).await;
    let mut bob = online(&server, "bob", "phone", true).await;
    send(
        &mut bob,
        "<iq type='get' id='d' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let text = expect(&mut bob, "id='d'").await;
    assert!(text.contains("category='account'"), "{text}");
    assert!(text.contains(&format!("var='{MAM}'")), "{text}");
    assert!(text.contains("var='urn:xmpp:sid:0'"), "{text}");
    send(
        &mut bob,
        &format!("<iq type='get' id='f'><query xmlns='{MAM}'/></iq>"),
    )
    .await;
    let text = expect(&mut bob, "id='f'").await;
    for var in ["FORM_TYPE", "with", "start", "end"] {
        assert!(text.contains(&format!("var='{var}'")), "{var}: {text}");
    }
    server.stop().await;
}
