//! Bad input gets the RFC 6120 §4.9.3 stream error it deserves, whatever the read
//! boundaries, and the stream closes.

mod support;

use pipit_proto::server::{ConflictPolicy, Listener};
use support::*;

/// Feeds `input` in every way and expects the stream to end with `condition`.
fn expect_stream_error(input: &str, condition: &str) {
    for feed in Feed::all(input.len()) {
        let mut server = Harness::new(Listener::StartTls, ConflictPolicy::Replace, feed);
        let answer = String::from_utf8(server.receive(input.as_bytes())).unwrap();
        let expected =
            format!("<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
        assert!(answer.contains(&expected), "{feed:?}: {answer}");
        assert!(
            answer.starts_with("<?xml version='1.0'?><stream:stream "),
            "header first: {answer}"
        );
        assert!(answer.ends_with("</stream:stream>"), "{answer}");
        assert!(
            server.log.closed.as_ref().is_some_and(|e| e.is_some()),
            "{feed:?}"
        );
        assert!(server.conn.is_closed());
    }
}

fn after_header(rest: &str) -> String {
    format!("{}{rest}", header(true))
}

#[test]
fn malformed_xml() {
    expect_stream_error(
        &after_header("<message><body>hi</message>"),
        "not-well-formed",
    );
    expect_stream_error(&after_header("<message to='a' to='b'/>"), "not-well-formed");
    expect_stream_error(&after_header("<x:message/>"), "not-well-formed");
    expect_stream_error(
        &after_header("<message>&bogus;</message>"),
        "not-well-formed",
    );
}

#[test]
fn dtd_and_entities_are_restricted() {
    let laughs = "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><stream:stream/>";
    expect_stream_error(laughs, "restricted-xml");
    expect_stream_error(&after_header("<!-- hello --><presence/>"), "restricted-xml");
    expect_stream_error(&after_header("<?pi data?>"), "restricted-xml");
}

#[test]
fn unknown_namespaces() {
    expect_stream_error(
        "<stream:stream to='localhost' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
        "invalid-namespace",
    );
    expect_stream_error(
        "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='urn:wrong' version='1.0'>",
        "invalid-namespace",
    );
    expect_stream_error(
        &after_header("<foo xmlns='urn:example:unknown'/>"),
        "unsupported-stanza-type",
    );
}

#[test]
fn header_problems() {
    expect_stream_error(
        "<stream:stream to='elsewhere.example' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
        "host-unknown",
    );
    expect_stream_error(
        "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        "unsupported-version",
    );
    expect_stream_error(&after_header(&header(false)), "policy-violation");
}

#[test]
fn oversized_stanza_and_deep_nesting() {
    let big = format!("<message><body>{}</body></message>", "x".repeat(300 * 1024));
    let mut server = Harness::new(Listener::StartTls, ConflictPolicy::Replace, Feed::Whole);
    let answer = String::from_utf8(server.receive(after_header(&big).as_bytes())).unwrap();
    assert!(
        answer.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{answer}"
    );
    let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    expect_stream_error(
        &after_header(&format!("<message>{deep}</message>")),
        "policy-violation",
    );
}

#[test]
fn a_client_that_never_logs_in_times_out() {
    let mut server = Harness::new(Listener::StartTls, ConflictPolicy::Replace, Feed::Whole);
    server.receive(header(true).as_bytes());
    server.conn.handle_timeout();
    let answer = String::from_utf8(server.conn.take_output()).unwrap();
    assert!(
        answer.contains("<connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{answer}"
    );
    assert!(server.conn.is_closed());
}

#[test]
fn stanzas_before_auth_are_refused_not_executed() {
    for feed in Feed::all(200) {
        let mut server = Harness::new(Listener::StartTls, ConflictPolicy::Replace, feed);
        let answer = String::from_utf8(
            server.receive(after_header(&message_to("bob@localhost", "hi")).as_bytes()),
        )
        .unwrap();
        assert!(
            answer.contains("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
            "{answer}"
        );
        assert!(server.log.stanzas.is_empty());
        assert!(!server.conn.is_closed());
    }
}

#[test]
fn a_closing_client_gets_a_closing_server() {
    for feed in Feed::all(300) {
        let mut server = Harness::new(Listener::StartTls, ConflictPolicy::Replace, feed);
        let answer =
            String::from_utf8(server.receive(after_header("</stream:stream>").as_bytes())).unwrap();
        assert!(answer.ends_with("</stream:stream>"), "{answer}");
        assert_eq!(server.log.closed, Some(None));
    }
}
