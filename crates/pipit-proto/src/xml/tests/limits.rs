//! Limits are enforced as soon as they are passed, even on incomplete input.

use super::support::*;
use crate::xml::{Limits, StreamEvent, StreamParser, XmlError};

fn small(max_element_bytes: usize) -> Limits {
    Limits {
        max_element_bytes,
        ..Limits::default()
    }
}

fn opened(limits: Limits) -> StreamParser {
    let mut p = StreamParser::new(limits);
    p.feed(BARE_HEADER);
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
    p
}

#[test]
fn element_of_exactly_the_limit_is_accepted() {
    let stanza: &[u8] = b"<presence type='unavailable'/>";
    let outcome = check_splits_with(small(stanza.len()), &cat(&[BARE_HEADER, stanza]), never);
    assert_eq!(outcome.events().len(), 2);
    let too_big = stream_error_with(small(stanza.len() - 1), stanza);
    assert_eq!(
        too_big,
        Some(XmlError::TooLarge {
            limit: stanza.len() - 1
        })
    );
}

#[test]
fn incomplete_element_over_the_limit_fails_without_its_end() {
    let mut p = opened(small(100));
    p.feed(b"<message><body>");
    assert_eq!(p.next_event(), Ok(None));
    p.feed(&[b'a'; 84]);
    assert_eq!(p.next_event(), Ok(None));
    assert_eq!(p.buffered(), 99);
    p.feed(b"aa");
    assert_eq!(p.next_event(), Err(XmlError::TooLarge { limit: 100 }));
}

#[test]
fn limit_counts_from_the_elements_own_lt() {
    // Whitespace before an element does not count towards it.
    let stanza: &[u8] = b"<presence/>";
    let input = cat(&[BARE_HEADER, b"          ", stanza]);
    let outcome = parse_with(small(stanza.len()), &input);
    assert_eq!(outcome.events().len(), 2);
}

#[test]
fn endless_whitespace_is_bounded() {
    let input = cat(&[BARE_HEADER, &[b' '; 65]]);
    assert_eq!(
        parse_with(small(64), &input).error(),
        Some(XmlError::TooLarge { limit: 64 })
    );
}

#[test]
fn header_limit_includes_declaration_and_whitespace_before_it() {
    let limits = Limits {
        max_header_bytes: CLIENT_HEADER.len(),
        ..Limits::default()
    };
    assert!(parse_with(limits, CLIENT_HEADER).error().is_none());
    let padded = cat(&[b" ", CLIENT_HEADER]);
    assert_eq!(
        parse_with(limits, &padded).error(),
        Some(XmlError::TooLarge {
            limit: CLIENT_HEADER.len()
        })
    );
}

#[test]
fn header_limit_fires_on_an_incomplete_header() {
    let limits = Limits {
        max_header_bytes: 64,
        ..Limits::default()
    };
    let mut p = StreamParser::new(limits);
    p.feed(&[b'\n'; 64]);
    assert_eq!(p.next_event(), Ok(None));
    p.feed(b"<");
    assert_eq!(p.next_event(), Err(XmlError::TooLarge { limit: 64 }));

    let mut p = StreamParser::new(limits);
    let mut huge = b"<stream:stream to='".to_vec();
    huge.extend_from_slice(&[b'a'; 100]);
    p.feed(&huge);
    assert_eq!(p.next_event(), Err(XmlError::TooLarge { limit: 64 }));
}

#[test]
fn nested_header_uses_the_header_limit() {
    let limits = Limits {
        max_header_bytes: BARE_HEADER.len(),
        ..Limits::default()
    };
    let ok = parse_with(limits, &cat(&[BARE_HEADER, BARE_HEADER]));
    assert_eq!(ok.events().len(), 2);
    assert!(header(&ok.events()[1]).nested);

    let with_decl = cat(&[BARE_HEADER, b"<?xml version='1.0'?>", BARE_HEADER]);
    assert_eq!(
        parse_with(limits, &with_decl).error(),
        Some(XmlError::TooLarge {
            limit: BARE_HEADER.len()
        })
    );

    // Without a declaration the tag is only known to be a header once complete.
    let padded = cat(&[BARE_HEADER, b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' x='0123456789012345678901234567890'/>"]);
    assert_eq!(
        parse_with(
            Limits {
                max_header_bytes: BARE_HEADER.len() + 1,
                ..Limits::default()
            },
            &padded
        )
        .error(),
        Some(XmlError::TooLarge {
            limit: BARE_HEADER.len() + 1
        })
    );
}

#[test]
fn depth_limit_counts_the_top_level_element() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let ok = parse_with(limits, &cat(&[BARE_HEADER, b"<a><b><c/></b></a>"]));
    assert!(ok.error().is_none());
    let mut p = opened(limits);
    p.feed(b"<a><b><c><d");
    assert_eq!(p.next_event(), Err(XmlError::TooDeep { limit: 3 }));
}

#[test]
fn default_depth_is_32() {
    let deep = |n: usize| {
        let mut s = Vec::new();
        for _ in 0..n {
            s.extend_from_slice(b"<a>");
        }
        for _ in 0..n {
            s.extend_from_slice(b"</a>");
        }
        s
    };
    assert_eq!(stream_error(&deep(32)), None);
    assert_eq!(
        stream_error(&deep(33)),
        Some(XmlError::TooDeep { limit: 32 })
    );
}

#[test]
fn attribute_limit_fires_on_an_incomplete_tag() {
    let limits = Limits {
        max_attributes: 2,
        ..Limits::default()
    };
    let ok = parse_with(limits, &cat(&[BARE_HEADER, b"<a x='1' y='2'/>"]));
    assert!(ok.error().is_none());
    let mut p = opened(limits);
    p.feed(b"<a x='1' y='2' z");
    assert_eq!(
        p.next_event(),
        Err(XmlError::TooManyAttributes { limit: 2 })
    );
}

#[test]
fn namespace_declarations_count_as_attributes() {
    let limits = Limits {
        max_attributes: 1,
        ..Limits::default()
    };
    assert_eq!(
        stream_error_with(limits, b"<a xmlns='u' x='1'/>"),
        Some(XmlError::TooManyAttributes { limit: 1 })
    );
}

#[test]
fn default_limits() {
    let limits = Limits::default();
    assert_eq!(limits.max_element_bytes, 256 * 1024);
    assert_eq!(limits.max_depth, 32);
    assert_eq!(limits.max_attributes, 64);
    assert_eq!(limits.max_header_bytes, 8 * 1024);
}
