//! Namespace resolution and attribute keys (Namespaces in XML 1.0).

use super::support::*;
use crate::xml::ns;

#[test]
fn stanzas_inherit_the_stream_default_namespace() {
    let e = element(b"<iq type='get'><query xmlns='jabber:iq:roster'><item/></query></iq>");
    assert!(e.is("iq", ns::CLIENT));
    let query = e.get_child("query", "jabber:iq:roster").unwrap();
    assert!(query.get_child("item", "jabber:iq:roster").is_some());
}

#[test]
fn default_namespace_can_be_undeclared() {
    let e = element(b"<iq><x xmlns=''><y/></x></iq>");
    let x = e.get_child("x", "").unwrap();
    assert!(x.get_child("y", "").is_some());
}

#[test]
fn stream_without_default_namespace_gives_empty_namespace() {
    let outcome = parse(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq/>");
    let events = outcome.events();
    assert_eq!(header(&events[0]).default_ns, None);
    assert!(elem(&events[1]).is("iq", ""));
}

#[test]
fn xml_prefix_is_predefined_and_keyed_as_xml_colon() {
    let e = element(b"<message xml:lang='de'><body xml:lang='en'>hi</body></message>");
    assert_eq!(e.attr("xml:lang"), Some("de"));
    assert_eq!(
        e.get_child("body", ns::CLIENT).unwrap().attr("xml:lang"),
        Some("en")
    );
    let outcome =
        parse(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xml:lang='fr'>");
    assert_eq!(header(&outcome.events()[0]).attr("xml:lang"), Some("fr"));
}

#[test]
fn attributes_in_other_namespaces_are_keyed_by_uri() {
    let e = element(b"<a xmlns:p='urn:p'><b p:x='1' y='2'/></a>");
    let b = e.get_child("b", ns::CLIENT).unwrap();
    assert_eq!(b.attr("{urn:p}x"), Some("1"));
    assert_eq!(b.attr("y"), Some("2"));
    assert_eq!(b.attrs().count(), 2);
}

#[test]
fn namespace_declarations_are_not_attributes() {
    let e = element(b"<a xmlns='urn:a' xmlns:p='urn:p' x='1'/>");
    assert_eq!(e.attrs().collect::<Vec<_>>(), [("x", "1")]);
}

#[test]
fn stream_prefix_is_usable_in_stanzas() {
    let e = element(
        b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    );
    assert!(e.is("error", ns::STREAM));
    assert!(e.get_child("conflict", ns::STREAM_ERRORS).is_some());
}

#[test]
fn prefix_redeclaration_is_scoped() {
    let e = element(b"<p:a xmlns:p='one'><p:b xmlns:p='two'><p:c/></p:b><p:d/></p:a>");
    assert!(e.is("a", "one"));
    let b = e.get_child("b", "two").unwrap();
    assert!(b.get_child("c", "two").is_some());
    assert!(e.get_child("d", "one").is_some());
}

#[test]
fn a_prefixed_stream_element_at_depth_one_in_another_namespace_is_an_ordinary_element() {
    let e = element(b"<x:stream xmlns:x='urn:not-streams'/>");
    assert!(e.is("stream", "urn:not-streams"));
}
