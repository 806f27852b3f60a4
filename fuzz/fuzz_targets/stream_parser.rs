//! The stream parser on arbitrary bytes at arbitrary split points.
//!
//! Input: `[n] [n chunk-size bytes] [data...]` (n taken mod 8; bit 3 of the first byte
//! picks tiny limits so the size, depth and attribute limits are hit). The data is fed
//! to one parser whole and to another in chunks whose sizes cycle through the chunk
//! bytes (0 = one byte). Asserts no panic and that both give the same events, offsets,
//! error and leftover bytes (DESIGN.md rule 1: any split gives the same result). Each
//! element the parser returns is also serialised and parsed again, which must give the
//! same element (what the server writes is what it read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipit_proto::xml::{Element, Limits, StreamEvent, StreamParser, XmlError};

/// Events with the offset after each, then how the input ended.
type Outcome = (Vec<(StreamEvent, u64)>, Option<XmlError>, Vec<u8>);

fn drain(parser: &mut StreamParser, events: &mut Vec<(StreamEvent, u64)>) -> Option<XmlError> {
    loop {
        match parser.next_event() {
            Ok(Some(event)) => events.push((event, parser.offset())),
            Ok(None) => return None,
            Err(e) => {
                // Errors are sticky.
                assert_eq!(parser.next_event(), Err(e.clone()));
                return Some(e);
            }
        }
    }
}

fn run<'a>(limits: Limits, chunks: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = StreamParser::new(limits);
    let mut events = Vec::new();
    let mut error = None;
    for chunk in chunks {
        parser.feed(chunk);
        error = drain(&mut parser, &mut events);
        if error.is_some() {
            break;
        }
    }
    let rest = if error.is_some() {
        Vec::new()
    } else {
        parser.take_unparsed()
    };
    (events, error, rest)
}

/// Serialises `el` and parses it back inside a stream without a default namespace.
fn round_trip(el: &Element) {
    let mut doc = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>".to_vec();
    doc.extend(el.to_bytes(""));
    let mut parser = StreamParser::new(Limits {
        max_element_bytes: usize::MAX / 2,
        max_header_bytes: usize::MAX / 2,
        max_depth: usize::MAX,
        max_attributes: usize::MAX,
    });
    parser.feed(&doc);
    assert!(matches!(
        parser.next_event(),
        Ok(Some(StreamEvent::Open(_)))
    ));
    match parser.next_event() {
        Ok(Some(StreamEvent::Element(again))) => {
            assert_eq!(&again, el, "re-parsed {:?}", String::from_utf8_lossy(&doc))
        }
        other => panic!(
            "serialised element did not parse back: {other:?} from {:?}",
            String::from_utf8_lossy(&doc)
        ),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&head, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(head % 8).min(rest.len());
    let (sizes, data) = rest.split_at(n);
    let limits = if head & 8 != 0 {
        Limits {
            max_element_bytes: 200,
            max_depth: 4,
            max_attributes: 4,
            max_header_bytes: 160,
        }
    } else {
        Limits::default()
    };

    let whole = run(limits, std::iter::once(data));

    let mut chunks = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(1, |&s| usize::from(s).max(1));
        let end = (at + size).min(data.len());
        chunks.push(&data[at..end]);
        at = end;
        i += 1;
    }
    let split = run(limits, chunks.into_iter());
    assert_eq!(whole, split, "the split changed the outcome");

    for (event, _) in &whole.0 {
        if let StreamEvent::Element(el) = event {
            round_trip(el);
        }
    }
});
