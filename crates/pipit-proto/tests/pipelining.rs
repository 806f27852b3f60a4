//! DESIGN.md §2 rules 1–6 at the protocol-core level. Every scenario runs with each
//! flight delivered whole, one byte at a time, and split at every point.

mod support;

use pipit_proto::server::Listener;
use support::*;

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

/// The longest flight any scenario here sends; splits beyond it are "whole".
const MAX_FLIGHT: usize = 1400;

fn stunt_login(feed: Feed, restart_declaration: bool) -> Pair {
    let mut pair = Pair::new(Listener::StartTls, feed);
    pair.client.start_tls(&client_tls(TLS13), true);
    // Rule 2: header, <starttls/> and the ClientHello in the client's first packet.
    let mut first = format!("{}{STARTTLS}", header(true)).into_bytes();
    first.extend(pair.client.wire(b""));
    pair.flight_raw(&first);
    assert!(
        !pair.client.handshaking(),
        "TLS 1.3 completes in one flight ({feed:?})"
    );
    pair.flight(pipelined_login(restart_declaration).as_bytes());
    pair
}

fn assert_logged_in(pair: &Pair, feed: Feed) {
    let text = &pair.client.text;
    assert!(
        text.contains("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'"),
        "{feed:?}: {text}"
    );
    assert!(
        text.contains("<jid>alice@localhost/phone</jid>"),
        "{feed:?}: {text}"
    );
    assert!(
        text.contains("hello me"),
        "self-message delivered ({feed:?}): {text}"
    );
    let log = &pair.server.log;
    assert_eq!(log.bound.len(), 1, "{feed:?}");
    assert_eq!(
        log.stanzas.len(),
        2,
        "presence and message executed ({feed:?})"
    );
    assert_eq!(log.stanzas[1].attr("from"), Some("alice@localhost/phone"));
    assert_eq!(log.closed, None, "{feed:?}");
}

#[test]
fn rule1_header_and_starttls_before_features() {
    for feed in Feed::all(MAX_FLIGHT) {
        let mut pair = Pair::new(Listener::StartTls, feed);
        pair.flight(format!("{}{STARTTLS}", header(false)).as_bytes());
        let text = pair.client.take_text();
        assert_eq!(count(&text, "<stream:stream"), 1, "{feed:?}");
        assert!(
            text.contains(
                "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            "{feed:?}: {text}"
        );
    }
}

#[test]
fn rule2_stunt_buffering_logs_in_in_three_round_trips() {
    for feed in Feed::all(MAX_FLIGHT) {
        let pair = stunt_login(feed, true);
        assert_logged_in(&pair, feed);
        assert_eq!(pair.round_trips, 3, "{feed:?}");
    }
}

#[test]
fn rule3_plaintext_after_starttls_is_never_parsed() {
    for feed in Feed::all(MAX_FLIGHT) {
        let mut pair = Pair::new(Listener::StartTls, feed);
        let answer = pair.server.receive(starttls_injection(PASSWORD).as_bytes());
        let after = after_proceed(&answer);
        // Only a TLS alert record (content type 21) follows: no XML, no success.
        assert_eq!(after.first(), Some(&21u8), "{feed:?}: {after:?}");
        let log = &pair.server.log;
        assert_eq!(log.credential_lookups, 0, "auth never acted on ({feed:?})");
        assert!(log.authenticated.is_empty() && log.bound.is_empty());
        assert!(
            log.closed
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .starts_with("TLS"),
            "{feed:?}"
        );
    }
}

#[test]
fn rule4_pipelined_login_after_tls_takes_four_round_trips() {
    for declaration in [true, false] {
        for feed in Feed::all(MAX_FLIGHT) {
            let mut pair = Pair::new(Listener::StartTls, feed);
            pair.flight(format!("{}{STARTTLS}", header(true)).as_bytes());
            pair.client.start_tls(&client_tls(TLS13), false);
            pair.flight(b"");
            pair.flight(pipelined_login(declaration).as_bytes());
            assert_logged_in(&pair, feed);
            assert_eq!(pair.round_trips, 4, "{feed:?}");
        }
    }
}

#[test]
fn rule4_restart_without_declaration_in_stunt_mode() {
    for feed in Feed::all(MAX_FLIGHT) {
        let pair = stunt_login(feed, false);
        assert_logged_in(&pair, feed);
    }
}

/// TLS up, then the given plaintext as one flight.
fn after_tls(feed: Feed, plaintext: &str) -> Pair {
    let mut pair = Pair::new(Listener::DirectTls, feed);
    pair.client.start_tls(&client_tls(TLS13), false);
    pair.flight(b"");
    pair.client.take_text();
    pair.flight(plaintext.as_bytes());
    pair
}

#[test]
fn rule5_sasl_failure_with_pipelined_restart_is_graceful() {
    for declaration in [true, false] {
        for feed in Feed::all(MAX_FLIGHT) {
            let wrong = format!(
                "{}{}{}{}{PRESENCE}{}",
                header(true),
                plain_auth("alice", "wrong"),
                header(declaration),
                bind("phone"),
                message_to("bob@localhost", "must not arrive")
            );
            let mut pair = after_tls(feed, &wrong);
            let text = pair.client.take_text();
            let failure = text
                .find(
                    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
                )
                .unwrap_or_else(|| panic!("{feed:?}: {text}"));
            let rest = &text[failure..];
            // The pipelined header restarts the unauthenticated stream: a fresh header
            // and the SASL features again.
            assert_eq!(count(rest, "<stream:stream"), 1, "{feed:?}: {rest}");
            assert!(rest.contains("<mechanism>PLAIN</mechanism>"), "{rest}");
            // Each pipelined stanza is answered with not-authorized and not executed.
            assert_eq!(
                count(
                    rest,
                    "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                ),
                3,
                "{rest}"
            );
            let log = &pair.server.log;
            assert!(log.bound.is_empty() && log.stanzas.is_empty(), "{feed:?}");
            assert_eq!(log.closed, None);
            // The same connection then logs in.
            pair.flight(
                format!(
                    "{}{}{}",
                    plain_auth("alice", PASSWORD),
                    header(false),
                    bind("phone")
                )
                .as_bytes(),
            );
            let text = pair.client.take_text();
            assert!(
                text.contains("<jid>alice@localhost/phone</jid>"),
                "{feed:?}: {text}"
            );
        }
    }
}

#[test]
fn rule6_bind_feature_announces_the_conflict_policy() {
    for feed in Feed::all(MAX_FLIGHT) {
        let login = format!(
            "{}{}{}",
            header(true),
            plain_auth("alice", PASSWORD),
            header(true)
        );
        let mut pair = after_tls(feed, &login);
        let text = pair.client.take_text();
        assert!(
            text.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource-policy xmlns='urn:x-pipit:bind:0' conflict='replace'/></bind>"),
            "{feed:?}: {text}"
        );
        // A client-chosen resource is honoured.
        pair.flight(bind("desk").as_bytes());
        assert!(
            pair.client
                .take_text()
                .contains("<jid>alice@localhost/desk</jid>")
        );
    }
}

#[test]
fn rule6_server_chosen_resource_and_conflict_are_reported() {
    for feed in Feed::all(600) {
        let login = format!(
            "{}{}{}",
            header(true),
            plain_auth("alice", PASSWORD),
            header(true)
        );
        let mut pair = after_tls(feed, &login);
        pair.server.taken_resources.push("phone".into());
        pair.flight(bind("phone").as_bytes());
        let text = pair.client.take_text();
        assert!(
            text.contains("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
            "{feed:?}: {text}"
        );
        pair.flight(
            b"<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        );
        let text = pair.client.take_text();
        assert!(
            text.contains("<jid>alice@localhost/generated</jid>"),
            "{feed:?}: {text}"
        );
    }
}

#[test]
fn direct_tls_login_takes_three_round_trips() {
    for feed in Feed::all(MAX_FLIGHT) {
        let mut pair = Pair::new(Listener::DirectTls, feed);
        pair.client.start_tls(&client_tls(TLS13), false);
        pair.flight(b"");
        pair.flight(pipelined_login(false).as_bytes());
        assert_logged_in(&pair, feed);
        assert_eq!(pair.round_trips, 3, "{feed:?}");
    }
}
