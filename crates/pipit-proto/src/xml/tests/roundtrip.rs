//! Element -> bytes -> parse -> the same Element.

use super::support::*;
use crate::xml::{Element, Limits, StreamEvent, StreamParser, ns};

/// Writes `e` inside a jabber:client stream and parses it back.
fn round_trip(e: &Element) -> Element {
    let bytes = cat(&[BARE_HEADER, &e.to_bytes(ns::CLIENT)]);
    let events = check_splits(&bytes, never).events();
    assert_eq!(events.len(), 2);
    elem(&events[1]).clone()
}

#[test]
fn simple_stanza() {
    let e = Element::new("presence", ns::CLIENT).with_attr("type", "unavailable");
    assert_eq!(e.to_bytes(ns::CLIENT), b"<presence type='unavailable'/>");
    assert_eq!(round_trip(&e), e);
}

#[test]
fn nested_namespaces_and_text() {
    let e = Element::new("iq", ns::CLIENT)
        .with_attr("type", "result")
        .with_attr("id", "q'1\"")
        .with_child(
            Element::new("query", ns::DISCO_INFO)
                .with_child(
                    Element::new("identity", ns::DISCO_INFO).with_attr("category", "server"),
                )
                .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::PING)),
        )
        .with_child(Element::new("x", "").with_text("no namespace"));
    assert_eq!(round_trip(&e), e);
}

#[test]
fn special_characters_survive() {
    let e = Element::new("message", ns::CLIENT)
        .with_attr("a", "<&>'\" tab\there\nline\r\nend")
        .with_child(
            Element::new("body", ns::CLIENT).with_text("<b>&amp;</b> ]]> \r\n\r 😀 日本 \t"),
        );
    assert_eq!(round_trip(&e), e);
}

#[test]
fn namespaced_and_xml_attributes() {
    let e = Element::new("message", ns::CLIENT)
        .with_attr("xml:lang", "en")
        .with_attr("{urn:a}x", "1")
        .with_attr("{urn:b}x", "2")
        .with_child(Element::new("c", "urn:a").with_attr("{urn:a}y", "3"));
    assert_eq!(round_trip(&e), e);
}

#[test]
fn mixed_content() {
    let e = Element::new("body", ns::CLIENT)
        .with_text("a")
        .with_child(Element::new("b", ns::CLIENT).with_text("bold"))
        .with_text("c");
    assert_eq!(round_trip(&e), e);
}

#[test]
fn parsed_stanza_reserialises_identically() {
    let input: &[u8] = b"<message to='a@b' type='chat'><body>hi &amp; bye</body>\
        <x xmlns='jabber:x:data'><field var='v'/></x></message>";
    let e = element(input);
    assert_eq!(e.to_bytes(ns::CLIENT), input);
}

#[test]
fn display_output_parses_standalone() {
    // Display declares the namespace, so it parses inside a stream of any namespace.
    let e = Element::new("ping", ns::PING);
    let mut p = StreamParser::new(Limits::default());
    p.feed(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    p.feed(e.to_string().as_bytes());
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert_eq!(p.next_event(), Ok(Some(StreamEvent::Element(e))));
}
