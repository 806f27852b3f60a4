//! Parsing is linear however the input is split: a large element fed one byte at a time
//! must not be rescanned from its start on every byte. The parser counts the bytes it
//! hands to the lexer; each must be examined exactly once.

use super::support::*;
use crate::xml::{Limits, StreamEvent, StreamParser};

/// Feeds `input` one byte at a time, draining events; returns the event count after
/// checking every byte was scanned exactly once.
fn byte_at_a_time(input: &[u8]) -> usize {
    let mut p = StreamParser::new(Limits::default());
    let mut events = 0;
    for b in input.chunks(1) {
        p.feed(b);
        while let Some(event) = p.next_event().expect("valid input") {
            assert!(!matches!(event, StreamEvent::Close));
            events += 1;
        }
    }
    assert_eq!(p.scanned, input.len() as u64, "each byte scanned once");
    events
}

#[test]
fn large_text_element_fed_one_byte_at_a_time() {
    let mut input = BARE_HEADER.to_vec();
    input.extend_from_slice(b"<message><body>");
    while input.len() < 200 * 1024 {
        input.extend_from_slice("lorem &amp; ipsum 😀 <![CDATA[x]]> ".as_bytes());
    }
    input.extend_from_slice(b"</body></message>");
    assert_eq!(byte_at_a_time(&input), 2);
}

#[test]
fn large_attribute_fed_one_byte_at_a_time() {
    let mut input = BARE_HEADER.to_vec();
    input.extend_from_slice(b"<message a='");
    input.resize(input.len() + 200 * 1024, b'v');
    input.extend_from_slice(b"'/>");
    assert_eq!(byte_at_a_time(&input), 2);
}

#[test]
fn many_children_fed_one_byte_at_a_time() {
    let mut input = BARE_HEADER.to_vec();
    input.extend_from_slice(b"<query xmlns='jabber:iq:roster'>");
    while input.len() < 200 * 1024 {
        input.extend_from_slice(b"<item jid='romeo@example.net' name='R'><group>G</group></item>");
    }
    input.extend_from_slice(b"</query>");
    assert_eq!(byte_at_a_time(&input), 2);
}

#[test]
fn many_small_stanzas_in_one_feed() {
    let mut input = BARE_HEADER.to_vec();
    for _ in 0..20_000 {
        input.extend_from_slice(b"<presence/> ");
    }
    let mut p = StreamParser::new(Limits::default());
    p.feed(&input);
    let mut events = 0;
    while let Some(_event) = p.next_event().expect("valid input") {
        events += 1;
    }
    assert_eq!(events, 20_001);
    assert_eq!(p.scanned, input.len() as u64, "each byte scanned once");
}
