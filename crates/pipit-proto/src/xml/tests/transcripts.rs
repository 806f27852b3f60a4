//! Whole-conversation transcripts, each fed whole, split at every byte, and one byte at a
//! time (STYLE.md §7): the events, offsets and leftovers must not depend on the split.

use super::support::*;
use crate::xml::{Element, Limits, StreamEvent, StreamParser, ns};

fn is_element(event: &StreamEvent, name: &str) -> bool {
    matches!(event, StreamEvent::Element(e) if e.name() == name)
}

#[test]
fn client_header_opens_the_stream() {
    let outcome = check_splits(CLIENT_HEADER, never);
    let events = outcome.events();
    assert_eq!(events.len(), 1);
    let h = header(&events[0]);
    assert_eq!(h.ns, ns::STREAM);
    assert_eq!(h.default_ns.as_deref(), Some(ns::CLIENT));
    assert_eq!(h.attr("to"), Some("localhost"));
    assert_eq!(h.attr("version"), Some("1.0"));
    assert_eq!(h.attrs.len(), 2, "xmlns declarations are not attributes");
    assert!(h.xml_declaration);
    assert!(!h.nested);
    assert_eq!(outcome.steps[0].1, CLIENT_HEADER.len() as u64);
    assert!(outcome.unparsed.is_empty());
}

#[test]
fn starttls_leaves_the_client_hello_untouched() {
    // RFC 6120 §5.4.3.3: after <proceed/> the next bytes are TLS, never XML.
    let starttls: &[u8] = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    let input = cat(&[CLIENT_HEADER, b"\n", starttls, CLIENT_HELLO]);
    let outcome = check_splits(&input, |e| is_element(e, "starttls"));
    let events = outcome.events();
    assert_eq!(events.len(), 2);
    assert!(elem(&events[1]).is("starttls", ns::TLS));
    let end = (CLIENT_HEADER.len() + 1 + starttls.len()) as u64;
    assert_eq!(outcome.steps[1].1, end);
    assert_eq!(outcome.unparsed, CLIENT_HELLO);
}

#[test]
fn sasl_success_hands_the_restart_to_a_fresh_parser() {
    // RFC 6120 §6.4.6: after <success/> the client restarts the stream; a pipelined
    // restart must reach a fresh parser, byte for byte.
    let auth: &[u8] = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>\
        AGp1bGlldAByMG0zMG15cjBtMzA=</auth>";
    let input = cat(&[
        CLIENT_HEADER,
        auth,
        CLIENT_HEADER,
        b"<iq type='get' id='b'/>",
    ]);
    let outcome = check_splits(&input, |e| is_element(e, "auth"));
    let events = outcome.events();
    let auth_el = elem(&events[1]);
    assert!(auth_el.is("auth", ns::SASL));
    assert_eq!(auth_el.attr("mechanism"), Some("PLAIN"));
    assert_eq!(auth_el.text(), "AGp1bGlldAByMG0zMG15cjBtMzA=");
    assert_eq!(
        outcome.steps[1].1,
        (CLIENT_HEADER.len() + auth.len()) as u64
    );
    let restart = cat(&[CLIENT_HEADER, b"<iq type='get' id='b'/>"]);
    assert_eq!(outcome.unparsed, restart);

    let fresh = check_splits(&outcome.unparsed, never);
    let events = fresh.events();
    assert!(header(&events[0]).xml_declaration);
    assert!(!header(&events[0]).nested);
    assert!(elem(&events[1]).is("iq", ns::CLIENT));
    assert_eq!(fresh.steps[1].1, restart.len() as u64);
}

#[test]
fn message_with_nesting_entities_cdata_and_multibyte_text() {
    let input = cat(&[
        BARE_HEADER,
        "<message to='juliet@example.com' type='chat' xml:lang='en' id='m&amp;1'>\
         <body>Wherefore art thou, Romeo? &lt;3 &#x2764;&#65039; 日本語 😀\
         <![CDATA[<not a tag> & ]]]></body>\
         <thread>e0ffe42b</thread>\
         <active xmlns='http://jabber.org/protocol/chatstates'/>\
         </message>"
            .as_bytes(),
    ]);
    let outcome = check_splits(&input, never);
    let events = outcome.events();
    let expected =
        Element::new("message", ns::CLIENT)
            .with_attr("to", "juliet@example.com")
            .with_attr("type", "chat")
            .with_attr("xml:lang", "en")
            .with_attr("id", "m&1")
            .with_child(Element::new("body", ns::CLIENT).with_text(
                "Wherefore art thou, Romeo? <3 \u{2764}\u{FE0F} 日本語 😀<not a tag> & ]",
            ))
            .with_child(Element::new("thread", ns::CLIENT).with_text("e0ffe42b"))
            .with_child(Element::new(
                "active",
                "http://jabber.org/protocol/chatstates",
            ));
    assert_eq!(elem(&events[1]), &expected);
    assert_eq!(outcome.steps[1].1, input.len() as u64);
}

#[test]
fn multibyte_characters_split_inside_their_encoding() {
    // Every split point is covered by check_splits; this input is dense in multibyte
    // characters so that many splits fall inside one.
    let input = cat(&[
        BARE_HEADER,
        "<message><body>😀€ßü日😀</body><x a='€😀'/></message>".as_bytes(),
    ]);
    let events = check_splits(&input, never).events();
    let message = elem(&events[1]);
    assert_eq!(
        message.get_child("body", ns::CLIENT).unwrap().text(),
        "😀€ßü日😀"
    );
    assert_eq!(
        message.get_child("x", ns::CLIENT).unwrap().attr("a"),
        Some("€😀")
    );
}

#[test]
fn prefixed_elements_resolve_and_scope() {
    let input = cat(&[
        BARE_HEADER,
        b"<foo:bar xmlns:foo='x'><foo:baz/><qux/><foo:q xmlns:foo='y'/></foo:bar>\
          <stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    ]);
    let events = check_splits(&input, never).events();
    let bar = elem(&events[1]);
    assert!(bar.is("bar", "x"));
    let children: Vec<_> = bar.children().map(|c| (c.name(), c.ns())).collect();
    assert_eq!(children, [("baz", "x"), ("qux", ns::CLIENT), ("q", "y")]);
    let features = elem(&events[2]);
    assert!(features.is("features", ns::STREAM));
    assert!(features.get_child("bind", ns::BIND).is_some());
}

#[test]
fn pipelined_restart_after_failed_auth_is_a_nested_open() {
    let input = cat(&[
        CLIENT_HEADER,
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>",
        b"\n",
        CLIENT_HEADER,
        b"<iq type='set' id='bind'/>",
    ]);
    let outcome = check_splits(&input, never);
    let events = outcome.events();
    assert_eq!(events.len(), 4);
    assert!(elem(&events[1]).is("auth", ns::SASL));
    let nested = header(&events[2]);
    assert!(nested.nested);
    assert!(nested.xml_declaration);
    assert_eq!(nested.ns, ns::STREAM);
    assert_eq!(nested.default_ns.as_deref(), Some(ns::CLIENT));
    assert!(elem(&events[3]).is("iq", ns::CLIENT));
    assert_eq!(outcome.steps[3].1, input.len() as u64);
}

#[test]
fn nested_header_replaces_the_namespace_context() {
    let input = cat(&[
        BARE_HEADER,
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        b"<s:stream xmlns='jabber:server' xmlns:s='http://etherx.jabber.org/streams'>",
        b"<iq/><s:features/></s:stream>",
    ]);
    let events = check_splits(&input, never).events();
    let nested = header(&events[2]);
    assert!(nested.nested);
    assert!(!nested.xml_declaration);
    assert!(elem(&events[3]).is("iq", ns::SERVER));
    assert!(elem(&events[4]).is("features", ns::STREAM));
    assert_eq!(events[5], StreamEvent::Close);
}

#[test]
fn close_tag_ends_the_stream() {
    let input = cat(&[BARE_HEADER, b"<presence/>\n</stream:stream>"]);
    let outcome = check_splits(&input, never);
    let events = outcome.events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2], StreamEvent::Close);
    assert_eq!(outcome.steps[2].1, input.len() as u64);
}

#[test]
fn whitespace_keepalives_between_stanzas_are_skipped() {
    // RFC 6120 §4.6.1 whitespace keepalives.
    let input = cat(&[BARE_HEADER, b" \n\t\r\n <presence/>  \n <presence/> "]);
    let outcome = check_splits(&input, never);
    assert_eq!(outcome.events().len(), 3);
    assert_eq!(outcome.unparsed, b" ");
    assert_eq!(outcome.steps[2].1, input.len() as u64 - 1);
}

#[test]
fn utf8_byte_order_mark_is_skipped() {
    let input = cat(&[b"\xEF\xBB\xBF", CLIENT_HEADER, b"<presence/>"]);
    let outcome = check_splits(&input, never);
    let events = outcome.events();
    assert!(header(&events[0]).xml_declaration);
    assert_eq!(outcome.steps[0].1, 3 + CLIENT_HEADER.len() as u64);
}

#[test]
fn self_closing_stream_header_opens_and_closes() {
    let input: &[u8] = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>";
    let outcome = check_splits(input, never);
    let events = outcome.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], StreamEvent::Close);
    assert_eq!(outcome.steps[0].1, input.len() as u64);
    assert_eq!(outcome.steps[1].1, input.len() as u64);
}

#[test]
fn stream_errors_after_the_stream_end_are_split_independent() {
    let input = cat(&[BARE_HEADER, b"</stream:stream>  <presence/>"]);
    let outcome = check_splits(&input, never);
    assert!(matches!(
        outcome.error(),
        Some(crate::xml::XmlError::NotWellFormed(_))
    ));
    assert_eq!(outcome.unparsed, b"  <presence/>");
}

#[test]
fn one_parser_reused_across_feeds_matches_a_single_feed() {
    // A driver feeds each read and drains all events; an idle gap is just Ok(None).
    let mut p = StreamParser::new(Limits::default());
    p.feed(BARE_HEADER);
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    p.feed(b"<message><bo");
    assert_eq!(p.next_event(), Ok(None));
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"dy>hi</body></message>");
    let Ok(Some(StreamEvent::Element(m))) = p.next_event() else {
        panic!("expected the message");
    };
    assert_eq!(m.get_child("body", ns::CLIENT).unwrap().text(), "hi");
}

#[test]
fn mutated_transcripts_never_panic_and_stay_split_independent() {
    let base = cat(&[
        CLIENT_HEADER,
        "<message to='a@b' xml:lang='en'><body>x &amp; 😀<![CDATA[]]]]></body>\
         <p:x xmlns:p='urn:p' p:y='1'/></message>"
            .as_bytes(),
        b"</stream:stream>",
    ]);
    let alphabet: &[u8] = b"<>/?!='\"&;:x# \r\n[]-\x00\xC3\xA9\xF0\x9F\xEF\xBB\xBF";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..300 {
        let mut input = base.clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(input.len());
            let byte = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 => input[at] = byte,
                1 => input.insert(at, byte),
                _ => {
                    input.remove(at);
                }
            }
        }
        let whole = drive(Limits::default(), &[&input], never);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert!(drive(Limits::default(), &bytes, never) == whole);
        let third = input.len() / 3;
        let (a, rest) = input.split_at(third);
        let (b, c) = rest.split_at(third);
        assert!(drive(Limits::default(), &[a, b, c], never) == whole);
    }
}
