//! SASL2 (XEP-0388) with inline Bind2 (XEP-0386) and Initial Authentication
//! Pipelining (XEP-0509) through the server core, at every split point.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use pipit_proto::sasl::{Mechanism, ScramClient, plain_initial_response};
use pipit_proto::server::Listener;
use support::*;

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

fn authenticate(mechanism: &str, initial: &[u8], extra: &str) -> String {
    format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{mechanism}'>\
         <initial-response>{}</initial-response>\
         <user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>pipit-test</software></user-agent>\
         {extra}</authenticate>",
        BASE64.encode(initial)
    )
}

const BIND2: &str = "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag></bind>";

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {text}"))
        + open.len();
    let end = text[start..].find(close).unwrap() + start;
    &text[start..end]
}

/// Direct TLS with TLS up; the features of a first stream are returned.
fn direct(feed: Feed) -> Pair {
    let mut pair = Pair::new(Listener::DirectTls, feed);
    pair.client.start_tls(&client_tls(TLS13), false);
    pair.flight(b"");
    pair
}

#[test]
fn features_offer_sasl2_bind2_and_a_config_version() {
    let mut pair = direct(Feed::Whole);
    pair.flight(header(true).as_bytes());
    let text = pair.client.take_text();
    assert!(
        text.contains(
            "<authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-256-PLUS</mechanism>"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "<inline><bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:sm:3'/>\
             <feature var='urn:xmpp:carbons:2'/></inline></bind>\
             <fast xmlns='urn:xmpp:fast:0'"
        ),
        "{text}"
    );
    assert!(
        text.contains("<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='"),
        "{text}"
    );
}

#[test]
fn plain_with_bind2_in_three_round_trips_at_every_split() {
    let login = format!(
        "{}{}{}",
        header(true),
        authenticate(
            "PLAIN",
            &plain_initial_response(None, "alice", PASSWORD),
            BIND2
        ),
        message_to("alice@localhost", "sasl2 to me")
    );
    for feed in Feed::all(1000) {
        let mut pair = direct(feed);
        pair.flight(login.as_bytes());
        let text = pair.client.take_text();
        let identity = between(
            &text,
            "<authorization-identifier>",
            "</authorization-identifier>",
        );
        assert!(
            identity.starts_with("alice@localhost/phone."),
            "{feed:?}: {text}"
        );
        assert!(
            text.contains("<bound xmlns='urn:xmpp:bind:0'/></success>"),
            "{text}"
        );
        assert!(
            text.contains("sasl2 to me"),
            "the pipelined message is delivered ({feed:?})"
        );
        assert_eq!(pair.round_trips, 3, "{feed:?}");
        assert_eq!(pair.server.log.authenticated.len(), 1);
        assert_eq!(count(&text, "<stream:stream"), 1, "no restart after SASL2");
    }
}

#[test]
fn scram_through_sasl2_verifies_the_server() {
    for feed in [Feed::Whole, Feed::ByteByByte] {
        let mut pair = direct(feed);
        let mut scram = ScramClient::new(
            Mechanism::ScramSha256,
            "alice",
            PASSWORD,
            None,
            "c-nonce-1",
            None,
            true,
        )
        .unwrap();
        pair.flight(
            format!(
                "{}{}",
                header(true),
                authenticate("SCRAM-SHA-256", &scram.client_first(), BIND2)
            )
            .as_bytes(),
        );
        let text = pair.client.take_text();
        let challenge = BASE64
            .decode(between(
                &text,
                "<challenge xmlns='urn:xmpp:sasl:2'>",
                "</challenge>",
            ))
            .unwrap();
        let response = scram.handle_server_first(&challenge).unwrap();
        pair.flight(
            format!(
                "<response xmlns='urn:xmpp:sasl:2'>{}</response>",
                BASE64.encode(response)
            )
            .as_bytes(),
        );
        let text = pair.client.take_text();
        let server_final = BASE64
            .decode(between(&text, "<additional-data>", "</additional-data>"))
            .unwrap();
        scram.verify_server_final(&server_final).unwrap();
        assert!(
            text.contains("<authorization-identifier>alice@localhost/phone."),
            "{text}"
        );
        assert_eq!(pair.round_trips, 4);
    }
}

#[test]
fn without_bind2_the_client_binds_the_rfc_6120_way() {
    let mut pair = direct(Feed::Whole);
    pair.flight(
        format!(
            "{}{}",
            header(true),
            authenticate(
                "PLAIN",
                &plain_initial_response(None, "alice", PASSWORD),
                ""
            )
        )
        .as_bytes(),
    );
    let text = pair.client.take_text();
    assert!(
        text.contains(
            "<authorization-identifier>alice@localhost</authorization-identifier></success>"
        ),
        "{text}"
    );
    pair.flight(bind("desk").as_bytes());
    assert!(
        pair.client
            .take_text()
            .contains("<jid>alice@localhost/desk</jid>")
    );
}

#[test]
fn a_wrong_password_fails_in_the_sasl2_namespace() {
    let mut pair = direct(Feed::Whole);
    pair.flight(
        format!(
            "{}{}",
            header(true),
            authenticate(
                "PLAIN",
                &plain_initial_response(None, "alice", "nope"),
                BIND2
            )
        )
        .as_bytes(),
    );
    let text = pair.client.take_text();
    assert!(text.contains("<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>"), "{text}");
    assert!(pair.server.log.bound.is_empty());
}

#[test]
fn iap_a_current_config_version_pipelines_and_a_stale_one_is_refused_then_retried() {
    // Learn the version the way a client does: from an earlier stream's features.
    let mut first = direct(Feed::Whole);
    first.flight(header(true).as_bytes());
    let features = first.client.take_text();
    let version = between(
        &features,
        "<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='",
        "'/>",
    )
    .to_string();
    let plain = plain_initial_response(None, "alice", PASSWORD);
    for feed in Feed::all(900) {
        let current = format!(
            "<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='{version}'/>{BIND2}"
        );
        let mut pair = direct(feed);
        pair.flight(
            format!(
                "{}{}",
                header(true),
                authenticate("PLAIN", &plain, &current)
            )
            .as_bytes(),
        );
        assert!(
            pair.client
                .take_text()
                .contains("<bound xmlns='urn:xmpp:bind:0'/>"),
            "{feed:?}"
        );

        let stale = format!(
            "<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='stale'/>{BIND2}"
        );
        let mut pair = direct(feed);
        pair.flight(
            format!("{}{}", header(true), authenticate("PLAIN", &plain, &stale)).as_bytes(),
        );
        let text = pair.client.take_text();
        assert!(
            text.contains("<failure xmlns='urn:xmpp:sasl:2'><aborted xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><config-version-mismatch xmlns='urn:xmpp:iap:0'/></failure>"),
            "{feed:?}: {text}"
        );
        // Without prejudice: no credentials were even looked up.
        assert_eq!(pair.server.log.credential_lookups, 0);
        pair.flight(authenticate("PLAIN", &plain, &current).as_bytes());
        assert!(
            pair.client
                .take_text()
                .contains("<bound xmlns='urn:xmpp:bind:0'/>"),
            "retry ({feed:?})"
        );
    }
}

#[test]
fn stream_management_is_enabled_inline_with_bind2() {
    let bind = "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>";
    let login = format!(
        "{}{}{}<r xmlns='urn:xmpp:sm:3'/>",
        header(true),
        authenticate(
            "PLAIN",
            &plain_initial_response(None, "alice", PASSWORD),
            bind
        ),
        message_to("alice@localhost", "counted")
    );
    for feed in Feed::all(1000) {
        let mut pair = direct(feed);
        pair.flight(login.as_bytes());
        let text = pair.client.take_text();
        let bound = between(&text, "<bound xmlns='urn:xmpp:bind:0'>", "</bound>");
        assert!(
            bound.starts_with("<enabled xmlns='urn:xmpp:sm:3' id='"),
            "{feed:?}: {text}"
        );
        assert!(bound.contains("resume='true'"), "{bound}");
        // The message after <success/> is the first stanza counted.
        assert!(
            text.contains("<a xmlns='urn:xmpp:sm:3' h='1'/>"),
            "{feed:?}: {text}"
        );
    }
}

#[test]
fn carbons_are_enabled_inline_with_bind2() {
    let bind =
        "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:carbons:2'/></bind>";
    let login = format!(
        "{}{}",
        header(true),
        authenticate(
            "PLAIN",
            &plain_initial_response(None, "alice", PASSWORD),
            bind
        )
    );
    for feed in Feed::all(1000) {
        let mut pair = direct(feed);
        pair.flight(login.as_bytes());
        let text = pair.client.take_text();
        // XEP-0386 §4: carbons have no result element; the bind's success says it.
        assert!(
            text.contains("<bound xmlns='urn:xmpp:bind:0'/>"),
            "{feed:?}: {text}"
        );
        let log = &pair.server.log;
        assert_eq!(log.carbons, log.bound, "{feed:?}");
        assert_eq!(log.carbons.len(), 1, "{feed:?}");
    }
    // Without the inline <enable/>, the resource is bound without carbons.
    let mut pair = direct(Feed::Whole);
    let plain = format!(
        "{}{}",
        header(true),
        authenticate(
            "PLAIN",
            &plain_initial_response(None, "alice", PASSWORD),
            BIND2
        )
    );
    pair.flight(plain.as_bytes());
    assert_eq!(pair.server.log.bound.len(), 1);
    assert!(pair.server.log.carbons.is_empty());
}

/// Direct TLS to a server that wants 8192 SCRAM iterations, for an account that has
/// 4096: a password login asking for both XEP-0480 tasks gets `<continue/>`.
fn upgrading(feed: Feed) -> Pair {
    let mut pair = Pair::new(Listener::DirectTls, feed);
    pair.server = Harness::with_iterations(Listener::DirectTls, feed, 8192, credentials().clone());
    pair.client.start_tls(&client_tls(TLS13), false);
    pair.flight(b"");
    pair
}

const UPGRADES: &str = "<upgrade xmlns='urn:xmpp:sasl:upgrade:0'>UPGR-SCRAM-SHA-1</upgrade>\
                        <upgrade xmlns='urn:xmpp:sasl:upgrade:0'>UPGR-SCRAM-SHA-256</upgrade>";

#[test]
fn upgrade_tasks_hold_the_login_and_refuse_what_breaks_them() {
    // The login, a bind request and a message pipelined behind it: the tasks come
    // first, and until they are done nothing is executed.
    let login = format!(
        "{}{}<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>{}",
        header(true),
        authenticate(
            "PLAIN",
            &plain_initial_response(None, "alice", PASSWORD),
            &format!("{UPGRADES}{BIND2}")
        ),
        message_to("alice@localhost", "early")
    );
    let cases = [
        (
            "<next xmlns='urn:xmpp:sasl:2' task='UPGR-SCRAM-SHA-256'/>",
            "malformed-request",
        ),
        (
            "<task-data xmlns='urn:xmpp:sasl:2'><hash xmlns='urn:xmpp:scram-upgrade:0'>AAAA</hash></task-data>",
            "malformed-request",
        ),
        (
            "<next xmlns='urn:xmpp:sasl:2' task='UPGR-SCRAM-SHA-1'/>\
             <task-data xmlns='urn:xmpp:sasl:2'><hash xmlns='urn:xmpp:scram-upgrade:0'>c2hvcnQ=</hash></task-data>",
            "malformed-request",
        ),
        ("<abort xmlns='urn:xmpp:sasl:2'/>", "aborted"),
    ];
    for feed in Feed::all(1000) {
        let mut pair = upgrading(feed);
        pair.flight(login.as_bytes());
        let text = pair.client.take_text();
        assert!(
            text.contains(
                "<continue xmlns='urn:xmpp:sasl:2'><tasks><task>UPGR-SCRAM-SHA-1</task></tasks></continue>"
            ),
            "{feed:?}: {text}"
        );
        assert_eq!(count(&text, "<not-authorized"), 2, "{feed:?}: {text}");
        let log = &pair.server.log;
        assert!(
            log.authenticated.is_empty() && log.bound.is_empty(),
            "{feed:?}"
        );
        assert!(log.stanzas.is_empty(), "{feed:?}");
    }
    for (flight, condition) in cases {
        let mut pair = upgrading(Feed::Whole);
        pair.flight(login.as_bytes());
        pair.client.take_text();
        pair.flight(flight.as_bytes());
        let text = pair.client.take_text();
        assert!(
            text.contains(&format!("<failure xmlns='urn:xmpp:sasl:2'><{condition} ")),
            "{flight}: {text}"
        );
        let log = &pair.server.log;
        assert!(
            log.authenticated.is_empty() && log.bound.is_empty(),
            "{flight}"
        );
        assert_eq!(log.upgrades, 0, "{flight}");
    }
    // A client that asks for one task only gets none: with one salt for both
    // hashes, half an upgrade cannot be stored.
    let mut pair = upgrading(Feed::Whole);
    let one = format!(
        "{}{}",
        header(true),
        authenticate(
            "PLAIN",
            &plain_initial_response(None, "alice", PASSWORD),
            "<upgrade xmlns='urn:xmpp:sasl:upgrade:0'>UPGR-SCRAM-SHA-256</upgrade>"
        )
    );
    pair.flight(one.as_bytes());
    let text = pair.client.take_text();
    assert!(text.contains("<success xmlns='urn:xmpp:sasl:2'>"), "{text}");
    assert!(!text.contains("<continue"), "{text}");
}
