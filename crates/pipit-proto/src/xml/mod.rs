//! Streaming XML for XMPP: a parser that reports exact byte offsets, and an element tree.
//!
//! An XMPP stream is one long XML document per connection (RFC 6120 §4), in the
//! restricted XML of RFC 6120 §11: UTF-8 only, no DTD, comments or processing
//! instructions. [`StreamParser`] turns bytes into [`StreamEvent`]s (the stream header,
//! each top-level element, the close tag) and never reads past the event it returns, so
//! the bytes after `<starttls/>` or a SASL success can be handed on untouched.
//!
//! Layout: `parser` (events, offsets, namespaces, limits) drives `lexer` (one byte at a
//! time, resumable); `element` holds the tree and its serialiser; `escape`, `namespace`
//! and `decl` hold the character, namespace and XML declaration rules.
//!
//! ```
//! use pipit_proto::xml::{Limits, StreamEvent, StreamParser, ns};
//!
//! let mut parser = StreamParser::new(Limits::default());
//! parser.feed(b"<stream:stream xmlns='jabber:client' \
//!     xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\
//!     <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01");
//! let Ok(Some(StreamEvent::Open(header))) = parser.next_event() else { panic!() };
//! assert_eq!(header.attr("version"), Some("1.0"));
//! let Ok(Some(StreamEvent::Element(starttls))) = parser.next_event() else { panic!() };
//! assert!(starttls.is("starttls", ns::TLS));
//! // The rest belongs to TLS.
//! assert_eq!(parser.take_unparsed(), b"\x16\x03\x01");
//! ```

mod decl;
mod element;
mod error;
mod escape;
mod event;
mod lexer;
mod limits;
mod namespace;
pub mod ns;
mod parser;
mod stored;
#[cfg(test)]
mod tests;

pub use element::{Element, Node};
pub use error::XmlError;
pub use escape::escape_attr_value;
pub use event::{StreamEvent, StreamHeader};
pub use limits::Limits;
pub use parser::StreamParser;
pub use stored::parse_stored;
