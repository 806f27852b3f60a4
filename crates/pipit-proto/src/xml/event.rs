//! What the stream parser reports: stream headers, top-level elements, the stream end.

use super::element::Element;

/// One step of an XMPP stream, returned by [`StreamParser::next_event`](super::StreamParser::next_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A `<stream:stream>` start tag (RFC 6120 §4.7). Normally the document root; also
    /// reported for such a tag (in the streams namespace) at depth 1 of an open stream,
    /// optionally preceded by an XML declaration, as sent by a client that pipelined a
    /// stream restart after a SASL exchange that then failed. Its namespace declarations
    /// then replace the root's for the following top-level elements, and
    /// [`StreamHeader::nested`] is set; the caller decides whether to accept it.
    Open(StreamHeader),
    /// A complete top-level child of the stream (stanza or nonza) with its subtree.
    Element(Element),
    /// The `</stream:stream>` end tag (RFC 6120 §4.4).
    Close,
}

/// The attributes and namespaces of a stream header (RFC 6120 §4.7), unvalidated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// Resolved namespace of the stream element; the caller checks it is
    /// `http://etherx.jabber.org/streams` (RFC 6120 §4.9.3.10 `<invalid-namespace/>`).
    pub ns: String,
    /// The `xmlns='...'` declaration on the header, i.e. the content namespace (RFC 6120 §4.8.2).
    pub default_ns: Option<String>,
    /// Attributes other than namespace declarations, unescaped, keyed as on
    /// [`Element`](super::Element) (so `xml:lang` is `"xml:lang"`).
    pub attrs: Vec<(String, String)>,
    /// Whether an XML declaration preceded the header.
    pub xml_declaration: bool,
    /// Whether the header appeared at depth 1 inside an already open stream.
    pub nested: bool,
}

impl StreamHeader {
    /// The value of attribute `name` (`to`, `from`, `id`, `version`, `xml:lang`, ...).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
