//! Helpers: drive a parser over chunked input and check that every split agrees.

use crate::xml::{Element, Limits, StreamEvent, StreamHeader, StreamParser, XmlError};

/// A typical client stream header with an XML declaration (RFC 6120 §4.7).
pub const CLIENT_HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream to='localhost' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// The same header without the declaration.
pub const BARE_HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams'>";

/// Start of a TLS 1.2/1.3 ClientHello record: binary garbage to XML.
pub const CLIENT_HELLO: &[u8] =
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x00<\xff&\x1b\x00\x00\x3e\x13\x02";

/// Everything observable about one run: each result with the offset after it, and the
/// bytes `take_unparsed` returned at the end.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// Every event or the error, each with `offset()` right after it.
    pub steps: Vec<(Result<StreamEvent, XmlError>, u64)>,
    /// `take_unparsed()` after the last chunk was fed.
    pub unparsed: Vec<u8>,
}

impl Outcome {
    /// The events, failing the test on an error.
    pub fn events(&self) -> Vec<StreamEvent> {
        self.steps
            .iter()
            .map(|(step, _)| step.clone().expect("no error expected"))
            .collect()
    }

    /// The error that ended the run, if any.
    pub fn error(&self) -> Option<XmlError> {
        self.steps.last().and_then(|(step, _)| step.clone().err())
    }
}

/// Stops parsing after an event, as a driver does at a layer change.
pub type Stop = fn(&StreamEvent) -> bool;

/// Never stop early.
pub fn never(_: &StreamEvent) -> bool {
    false
}

/// Feeds `chunks` one after the other, draining events after each, until `stop` says so
/// or an error occurs; later chunks are still fed (they arrived) but not parsed.
pub fn drive(limits: Limits, chunks: &[&[u8]], stop: Stop) -> Outcome {
    let mut parser = StreamParser::new(limits);
    let mut steps = Vec::new();
    let mut stopped = false;
    for chunk in chunks {
        parser.feed(chunk);
        while !stopped {
            match parser.next_event() {
                Ok(Some(event)) => {
                    stopped = stop(&event);
                    steps.push((Ok(event), parser.offset()));
                }
                Ok(None) => break,
                Err(error) => {
                    steps.push((Err(error), parser.offset()));
                    stopped = true;
                }
            }
        }
    }
    Outcome {
        steps,
        unparsed: parser.take_unparsed(),
    }
}

/// Parses `input` whole, then split in two at every position, then one byte at a time,
/// asserting identical outcomes; returns the outcome.
pub fn check_splits_with(limits: Limits, input: &[u8], stop: Stop) -> Outcome {
    let whole = drive(limits, &[input], stop);
    for at in 0..=input.len() {
        let (head, tail) = input.split_at(at);
        let split = drive(limits, &[head, tail], stop);
        assert!(
            split == whole,
            "split at byte {at} differs from whole input"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert!(
        drive(limits, &bytes, stop) == whole,
        "byte-at-a-time differs from whole input"
    );
    whole
}

/// [`check_splits_with`] under default limits.
pub fn check_splits(input: &[u8], stop: Stop) -> Outcome {
    check_splits_with(Limits::default(), input, stop)
}

/// Concatenates byte strings.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Parses one stream and returns its outcome, under `limits`.
pub fn parse_with(limits: Limits, input: &[u8]) -> Outcome {
    drive(limits, &[input], never)
}

/// Parses one stream under default limits.
pub fn parse(input: &[u8]) -> Outcome {
    parse_with(Limits::default(), input)
}

/// The error from parsing `input` after a bare client header under `limits`.
pub fn stream_error_with(limits: Limits, input: &[u8]) -> Option<XmlError> {
    parse_with(limits, &cat(&[BARE_HEADER, input])).error()
}

/// The error from parsing `input` after a bare client header.
pub fn stream_error(input: &[u8]) -> Option<XmlError> {
    stream_error_with(Limits::default(), input)
}

/// The elements of a stream opened with the bare header, failing on anything else.
pub fn elements(input: &[u8]) -> Vec<Element> {
    let outcome = parse(&cat(&[BARE_HEADER, input]));
    outcome
        .events()
        .into_iter()
        .skip(1)
        .map(|event| match event {
            StreamEvent::Element(e) => e,
            other => panic!("expected an element, got {other:?}"),
        })
        .collect()
}

/// The single element of a stream opened with the bare header.
pub fn element(input: &[u8]) -> Element {
    let mut all = elements(input);
    assert_eq!(all.len(), 1, "expected exactly one element");
    all.remove(0)
}

/// The header of an `Open` event.
pub fn header(event: &StreamEvent) -> &StreamHeader {
    match event {
        StreamEvent::Open(header) => header,
        other => panic!("expected Open, got {other:?}"),
    }
}

/// The element of an `Element` event.
pub fn elem(event: &StreamEvent) -> &Element {
    match event {
        StreamEvent::Element(e) => e,
        other => panic!("expected Element, got {other:?}"),
    }
}

/// A small deterministic generator (xorshift64*) for mutation tests.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A pseudo-random index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
