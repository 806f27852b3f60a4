//! Reading back one stanza that was stored as bytes, e.g. in the message archive.

use super::element::Element;
use super::error::{XmlError, not_well_formed};
use super::event::StreamEvent;
use super::limits::Limits;
use super::ns;
use super::parser::StreamParser;

/// Parses exactly one element written by [`Element::to_bytes`] with
/// `parent_ns` [`ns::CLIENT`], as if it had arrived on a client stream: with the
/// same limits and restrictions (no DTD, no entities), so stored bytes are never
/// trusted more than a client's. Anything before or after the element is an error.
pub fn parse_stored(bytes: &[u8], limits: Limits) -> Result<Element, XmlError> {
    let mut parser = StreamParser::new(limits);
    let header = format!(
        "<stream:stream xmlns='{}' xmlns:stream='{}'>",
        ns::CLIENT,
        ns::STREAM
    );
    parser.feed(header.as_bytes());
    parser.feed(bytes);
    parser.feed(b"</stream:stream>");
    match parser.next_event()? {
        Some(StreamEvent::Open(_)) => {}
        _ => return Err(not_well_formed("no stream header")),
    }
    let element = match parser.next_event()? {
        Some(StreamEvent::Element(element)) => element,
        _ => return Err(not_well_formed("no element stored")),
    };
    match parser.next_event()? {
        Some(StreamEvent::Close) => Ok(element),
        _ => Err(not_well_formed("more than one element stored")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Element {
        Element::new("message", ns::CLIENT)
            .with_attr("to", "juliet@capulet.lit")
            .with_attr("type", "chat")
            .with_child(Element::new("body", ns::CLIENT).with_text("a < b & 'c'"))
            .with_child(Element::new("stanza-id", ns::SID).with_attr("id", "x1"))
    }

    #[test]
    fn what_to_bytes_wrote_reads_back_the_same() {
        let bytes = message().to_bytes(ns::CLIENT);
        assert_eq!(parse_stored(&bytes, Limits::default()).unwrap(), message());
    }

    #[test]
    fn anything_but_one_element_is_refused() {
        let one = message().to_bytes(ns::CLIENT);
        let two = [one.clone(), one.clone()].concat();
        for bad in [
            &b""[..],
            b"text",
            &two,
            b"<message>",
            b"</stream:stream><message/>",
            b"<!DOCTYPE x><message/>",
        ] {
            assert!(parse_stored(bad, Limits::default()).is_err(), "{bad:?}");
        }
    }
}
