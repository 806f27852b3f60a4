//! One or more tests per `XmlError` variant and per rule of RFC 6120 §11.

use super::support::*;
use crate::xml::{Limits, StreamEvent, StreamParser, XmlError};

fn is_nwf(error: Option<XmlError>) -> bool {
    matches!(error, Some(XmlError::NotWellFormed(_)))
}

fn is_restricted(error: Option<XmlError>) -> bool {
    matches!(error, Some(XmlError::Restricted(_)))
}

fn is_encoding(error: Option<XmlError>) -> bool {
    matches!(error, Some(XmlError::UnsupportedEncoding(_)))
}

// --- Restricted XML (RFC 6120 §11.1) ---

#[test]
fn billion_laughs_doctype_is_restricted_at_once() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>");
    assert!(is_restricted(p.next_event().err()));
    // Already at "<!D", before any of the DTD could be read.
    let mut p = StreamParser::new(Limits::default());
    p.feed(b"<!D");
    assert!(is_restricted(p.next_event().err()));
}

#[test]
fn doctype_and_entity_declarations_inside_the_stream_are_restricted() {
    assert!(is_restricted(stream_error(b"<!DOCTYPE x>")));
    assert!(is_restricted(stream_error(b"<message><!ENTITY x 'y'>")));
}

#[test]
fn comments_are_restricted_everywhere() {
    assert!(is_restricted(parse(b"<!-- hi -->").error()));
    assert!(is_restricted(stream_error(b"<!-- keepalive -->")));
    assert!(is_restricted(stream_error(
        b"<message><!-- x --></message>"
    )));
}

#[test]
fn processing_instructions_are_restricted() {
    assert!(is_restricted(parse(b"<?xml-stylesheet href='a'?>").error()));
    assert!(is_restricted(parse(b"<?php echo 1; ?>").error()));
    assert!(is_restricted(stream_error(b"<?foo bar?>")));
    assert!(is_restricted(stream_error(
        b"<message><?xml version='1.0'?>"
    )));
}

#[test]
fn a_second_declaration_in_the_prolog_is_restricted() {
    assert!(is_restricted(
        parse(b"<?xml version='1.0'?><?xml version='1.0'?>").error()
    ));
}

#[test]
fn declaration_at_depth_one_must_precede_a_stream_header() {
    assert!(is_nwf(stream_error(b"<?xml version='1.0'?><presence/>")));
    assert!(is_nwf(stream_error(
        b"<?xml version='1.0'?></stream:stream>"
    )));
    assert!(is_restricted(stream_error(
        b"<?xml version='1.0'?> <?xml version='1.0'?>"
    )));
}

#[test]
fn declaration_without_version_is_not_well_formed() {
    assert!(is_nwf(parse(b"<?xml?>").error()));
    assert!(is_nwf(parse(b"<?xml encoding='UTF-8'?>").error()));
}

#[test]
fn cdata_outside_a_stanza_is_not_well_formed() {
    assert!(is_nwf(stream_error(b"<![CDATA[ ]]>")));
}

// --- Encoding (RFC 6120 §11.6) ---

#[test]
fn declared_encoding_other_than_utf8_is_unsupported() {
    assert!(is_encoding(
        parse(b"<?xml version='1.0' encoding='ISO-8859-1'?>").error()
    ));
    assert!(is_encoding(stream_error(
        b"<?xml version='1.0' encoding='UTF-16'?>"
    )));
    let ok = parse(&cat(&[
        b"<?xml version='1.0' encoding='utf-8'?>",
        BARE_HEADER,
    ]));
    assert_eq!(ok.events().len(), 1);
}

#[test]
fn utf16_and_utf32_byte_order_marks_are_unsupported() {
    assert!(is_encoding(parse(b"\xFE\xFF\x00<").error()));
    assert!(is_encoding(parse(b"\xFF\xFE<\x00").error()));
    assert!(is_encoding(parse(b"\x00\x00\xFE\xFF").error()));
}

#[test]
fn utf16_without_byte_order_mark_is_unsupported() {
    assert!(is_encoding(parse(b"\x00<\x00?").error()));
    assert!(is_encoding(parse(b"<\x00?\x00").error()));
}

#[test]
fn byte_order_mark_later_in_the_document_is_not_well_formed() {
    assert!(is_nwf(parse(b" \xEF\xBB\xBF").error()));
    assert!(is_nwf(stream_error(b"\xEF\xBB\xBF<presence/>")));
    assert!(is_nwf(parse(b"\xEF\xBB<").error()));
}

#[test]
fn invalid_utf8_is_not_well_formed() {
    assert!(is_nwf(stream_error(
        b"<message><body>\xC3\x28</body></message>"
    )));
    assert!(is_nwf(stream_error(b"<message a='\xE2\x82'/>")));
    assert!(is_nwf(stream_error(b"<m\xFF/>")));
    // Overlong encoding of '/' and an encoded surrogate.
    assert!(is_nwf(stream_error(b"<body>\xC0\xAF</body>")));
    assert!(is_nwf(stream_error(b"<body>\xED\xA0\x80</body>")));
    // U+FFFE is encodable in UTF-8 but not an XML character.
    assert!(is_nwf(stream_error(b"<body>\xEF\xBF\xBE</body>")));
}

#[test]
fn control_characters_are_not_well_formed() {
    assert!(is_nwf(stream_error(b"<body>\x07</body>")));
    assert!(is_nwf(stream_error(b"<body a='\x00'/>")));
    assert!(is_nwf(stream_error(b"\x0C")));
}

// --- Well-formedness ---

#[test]
fn mismatched_tags_are_not_well_formed() {
    assert!(is_nwf(stream_error(b"<message><body></message>")));
    assert!(is_nwf(stream_error(b"<a:b xmlns:a='x' xmlns:c='x'></c:b>")));
    assert!(is_nwf(stream_error(b"</presence>")));
    assert!(is_nwf(parse(b"</stream:stream>").error()));
}

#[test]
fn close_tag_must_match_the_header_name() {
    assert!(is_nwf(stream_error(b"</stream>")));
    assert!(is_nwf(stream_error(b"</s:stream>")));
}

#[test]
fn unknown_entities_and_bad_character_references_are_not_well_formed() {
    assert!(is_nwf(stream_error(b"<body>&nbsp;</body>")));
    assert!(is_nwf(stream_error(b"<body>&#0;</body>")));
    assert!(is_nwf(stream_error(b"<body>&#xD800;</body>")));
    assert!(is_nwf(stream_error(b"<body>&#x110000;</body>")));
    assert!(is_nwf(stream_error(b"<body>&amp</body>")));
    assert!(is_nwf(stream_error(b"<body a='&lol;'/>")));
    assert!(is_nwf(stream_error(
        b"<body>&#xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    )));
}

#[test]
fn unbound_prefixes_are_not_well_formed() {
    assert!(is_nwf(stream_error(b"<foo:bar/>")));
    assert!(is_nwf(stream_error(b"<bar foo:attr='1'/>")));
    assert!(is_nwf(
        parse(b"<stream:stream xmlns='jabber:client'>").error()
    ));
    // A prefix goes out of scope with its element.
    assert!(is_nwf(stream_error(b"<a xmlns:p='x'><p:b/></a><p:c/>")));
}

#[test]
fn undeclaring_a_prefix_is_not_well_formed() {
    assert!(is_nwf(stream_error(b"<a xmlns:p=''/>")));
}

#[test]
fn reserved_prefixes_are_not_well_formed() {
    assert!(is_nwf(stream_error(b"<xmlns:a/>")));
    assert!(is_nwf(stream_error(b"<a xmlns:xml='urn:other'/>")));
    assert!(is_nwf(stream_error(
        b"<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>"
    )));
}

#[test]
fn duplicate_attributes_are_not_well_formed() {
    assert!(is_nwf(stream_error(b"<a x='1' x='2'/>")));
    assert!(is_nwf(stream_error(
        b"<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>"
    )));
    assert!(is_nwf(stream_error(b"<a xmlns='u' xmlns='v'/>")));
    // Same local name in different namespaces is fine.
    let a = element(b"<a xmlns:p='u' x='1' p:x='2'/>");
    assert_eq!(a.attr("x"), Some("1"));
    assert_eq!(a.attr("{u}x"), Some("2"));
}

#[test]
fn text_at_stream_level_is_not_well_formed() {
    assert!(is_nwf(stream_error(b"hello")));
    assert!(is_nwf(stream_error(b"<presence/> x")));
    assert!(is_nwf(stream_error(b"&amp;")));
    assert!(is_nwf(parse(b"junk").error()));
}

#[test]
fn text_is_rejected_at_its_first_byte() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(BARE_HEADER);
    assert!(p.next_event().is_ok());
    p.feed(b" x");
    assert!(is_nwf(p.next_event().err()));
}

#[test]
fn a_second_root_after_close_is_not_well_formed() {
    let input = cat(&[BARE_HEADER, b"</stream:stream>", BARE_HEADER]);
    let outcome = parse(&input);
    assert_eq!(outcome.steps.len(), 3);
    assert_eq!(outcome.steps[1].0, Ok(StreamEvent::Close));
    assert!(is_nwf(outcome.error()));
    // Whitespace after the end is fine.
    let ok = parse(&cat(&[BARE_HEADER, b"</stream:stream>\n\n"]));
    assert!(ok.error().is_none());
}

#[test]
fn root_must_be_a_stream() {
    assert!(is_nwf(parse(b"<message xmlns='jabber:client'>").error()));
}

#[test]
fn root_in_the_wrong_namespace_is_reported_for_the_caller_to_reject() {
    let outcome = parse(b"<stream:stream xmlns:stream='urn:wrong'>");
    let events = outcome.events();
    assert_eq!(header(&events[0]).ns, "urn:wrong");
    assert_eq!(header(&events[0]).default_ns, None);
}

#[test]
fn malformed_tags_are_not_well_formed() {
    for bad in [
        &b"<a b='1'c='2'/>"[..],
        b"<a b/>",
        b"<a b=1/>",
        b"< a/>",
        b"<a:/>",
        b"<:a/>",
        b"<a:b:c/>",
        b"<a><b/ ></a>",
        b"<body>]]></body>",
        b"<a b='<'/>",
    ] {
        assert!(
            is_nwf(stream_error(bad)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn errors_stick_and_keep_their_value() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(b"<!--");
    let first = p.next_event();
    assert!(is_restricted(first.clone().err()));
    p.feed(BARE_HEADER);
    assert_eq!(p.next_event(), first);
}
