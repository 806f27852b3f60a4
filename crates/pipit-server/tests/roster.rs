//! Roster management over real sockets (RFC 6121 §2): get, set, update and remove
//! with their pushes to interested resources only, roster versioning, the error
//! cases of §2.3.3 and §2.5.3, and the roster size limit.

mod support;

use pipit_server::Settings;
use support::roster::*;
use support::*;

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

#[tokio::test]
async fn items_are_added_updated_and_removed_with_pushes_to_interested_resources() {
    let server = TestServer::start(Settings::default()).await;
    let mut desk = online(&server, "alice", "desk", true).await;
    let mut phone = online(&server, "alice", "phone", true).await;
    let mut laptop = online(&server, "alice", "laptop", false).await;
    let empty = roster_get(&mut desk, "r1", None).await;
    assert!(
        empty.contains("type='result'")
            && empty.contains("<query xmlns='jabber:iq:roster' ver='0'/>"),
        "{empty}"
    );
    // The laptop is interested without being available (§2.2); the phone is neither.
    roster_get(&mut laptop, "r2", None).await;

    let push = "<item jid='nurse@localhost' subscription='none' name='Nurse'>\
                <group>Servants</group></item>";
    let added = roster_set(
        &mut desk,
        "s1",
        "<item jid='nurse@localhost' name='Nurse'><group>Servants</group></item>",
        &[push],
    )
    .await;
    assert!(
        added.contains("type='result'")
            && added.contains("ver='1'")
            && added.contains("type='set'"),
        "{added}"
    );
    expect(&mut laptop, push).await;
    let at_phone = settle(&mut phone, "m1").await;
    assert!(!at_phone.contains("jabber:iq:roster"), "{at_phone}");

    // An update replaces name and groups.
    let updated = "<item jid='nurse@localhost' subscription='none'><group>House</group></item>";
    roster_set(
        &mut desk,
        "s2",
        "<item jid='nurse@localhost'><group>House</group></item>",
        &[updated],
    )
    .await;
    expect(&mut laptop, updated).await;
    let roster = roster_get(&mut phone, "r3", None).await;
    assert!(
        roster.contains("ver='2'") && roster.contains(updated),
        "{roster}"
    );

    // Now the phone is interested too.
    let removal = "<item jid='nurse@localhost' subscription='remove'/>";
    let removed = roster_set(&mut desk, "s3", removal, &[&format!("ver='3'>{removal}")]).await;
    assert!(removed.contains("type='result'"), "{removed}");
    for w in [&mut phone, &mut laptop] {
        expect(w, removal).await;
    }
    let roster = roster_get(&mut desk, "r4", None).await;
    assert!(
        roster.contains("<query xmlns='jabber:iq:roster' ver='3'/>"),
        "{roster}"
    );
    // §2.5.3: removing what is not there.
    let missing = roster_set(&mut desk, "s4", removal, &[]).await;
    assert!(missing.contains("<item-not-found"), "{missing}");
    server.stop().await;
}

#[tokio::test]
async fn a_current_version_gets_an_empty_result_and_the_feature_is_announced() {
    let server = TestServer::start(Settings::default()).await;
    // The bind features announce roster versioning (§2.6.1).
    let mut w = WireClient::connect(server.direct_tls, None).await;
    w.client.start_tls(&client_tls(TLS13), false);
    w.flight("", |c| !c.handshaking()).await;
    let login = format!(
        "{}{}{}",
        header(true),
        plain_auth("alice", PASSWORD),
        header(false)
    );
    w.flight(&login, |c| {
        c.text.matches("</stream:features>").count() == 2
    })
    .await;
    let features = w.client.take_text();
    assert!(
        features.contains("<ver xmlns='urn:xmpp:features:rosterver'/>"),
        "{features}"
    );
    send(&mut w, &bind("desk")).await;
    expect(&mut w, "</iq>").await;

    roster_set(&mut w, "s1", "<item jid='bob@localhost'/>", &[]).await;
    let full = roster_get(&mut w, "r1", Some("")).await;
    assert!(
        full.contains("ver='1'") && full.contains("jid='bob@localhost'"),
        "{full}"
    );
    // §2.6.3: the client's version is current: an empty result, no roster.
    let current = roster_get(&mut w, "r2", Some("1")).await;
    assert!(current.contains("type='result'"), "{current}");
    assert!(!current.contains("<query"), "{current}");
    // A stale version gets the whole roster (§2.6.3 allows it).
    roster_set(&mut w, "s2", "<item jid='carol@localhost'/>", &[]).await;
    let stale = roster_get(&mut w, "r3", Some("1")).await;
    assert!(
        stale.contains("ver='2'")
            && stale.contains("jid='bob@localhost'")
            && stale.contains("jid='carol@localhost'"),
        "{stale}"
    );
    server.stop().await;
}

#[tokio::test]
async fn roster_sets_that_break_rfc_6121_section_2_3_3_are_refused() {
    let server = TestServer::start(Settings::default()).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let cases = [
        (
            "<item jid='a@localhost'/><item jid='b@localhost'/>",
            "bad-request",
        ),
        ("<item name='no jid'/>", "bad-request"),
        (
            "<item jid='a@localhost'><group>g</group><group>g</group></item>",
            "bad-request",
        ),
        ("<item jid='a@localhost'><group/></item>", "not-acceptable"),
        ("<item jid='a@b@c'/>", "jid-malformed"),
        ("<item jid='a@localhost/desk'/>", "bad-request"),
    ];
    for (i, (item, condition)) in cases.into_iter().enumerate() {
        let got = roster_set(&mut alice, &format!("e{i}"), item, &[]).await;
        assert!(got.contains(&format!("<{condition} ")), "{item}: {got}");
    }
    // Only the account's own resources touch its roster (§2.3.3: forbidden).
    send(
        &mut alice,
        "<iq type='get' id='f1' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    let got = expect(&mut alice, "id='f1'").await;
    assert!(got.contains("<forbidden "), "{got}");
    // A subscription other than `remove` is ignored, not obeyed (§2.1.2.5).
    roster_set(
        &mut alice,
        "s1",
        "<item jid='bob@localhost' subscription='both'/>",
        &[],
    )
    .await;
    let roster = roster_get(&mut alice, "r1", None).await;
    assert!(
        roster.contains("<item jid='bob@localhost' subscription='none'/>"),
        "{roster}"
    );
    // Nothing refused was stored.
    assert!(!roster.contains("a@localhost"), "{roster}");
    server.stop().await;
}

#[tokio::test]
async fn a_full_roster_refuses_new_contacts_and_requests() {
    let small = Settings {
        max_roster_items: Some(2),
        ..Settings::default()
    };
    let server = TestServer::start(small).await;
    let mut alice = online(&server, "alice", "desk", true).await;
    let mut bob = online(&server, "bob", "phone", true).await;
    roster_get(&mut bob, "r0", None).await;
    roster_set(&mut alice, "s1", "<item jid='x@localhost'/>", &[]).await;
    roster_set(&mut alice, "s2", "<item jid='y@localhost'/>", &[]).await;
    let refused = roster_set(&mut alice, "s3", "<item jid='z@localhost'/>", &[]).await;
    assert!(
        refused.contains("type='error'") && refused.contains("<not-allowed "),
        "{refused}"
    );
    // What is there can still change.
    let renamed = roster_set(&mut alice, "s4", "<item jid='x@localhost' name='X'/>", &[]).await;
    assert!(renamed.contains("type='result'"), "{renamed}");
    // Asking a new contact would take a place too.
    send(&mut alice, &subscription("subscribe", "carol@localhost")).await;
    let got = expect(&mut alice, "<not-allowed ").await;
    assert!(got.contains("type='error'"), "{got}");

    // A request to the full roster is denied for it: the asker's `ask` goes.
    send(&mut bob, &subscription("subscribe", "alice@localhost")).await;
    let got = expect_all(
        &mut bob,
        &[
            "type='unsubscribed' from='alice@localhost'",
            "<item jid='alice@localhost' subscription='none'/>",
        ],
    )
    .await;
    assert!(got.contains("ask='subscribe'"), "{got}");
    let at_alice = settle(&mut alice, "m1").await;
    assert!(!at_alice.contains("type='subscribe'"), "{at_alice}");
    server.stop().await;
}
