//! The stream parser: bytes in, at most one [`StreamEvent`] out per call, with exact
//! byte offsets so that leftovers can be handed on at a layer change.

use super::decl::check_declaration;
use super::element::Element;
use super::error::{XmlError, not_well_formed};
use super::event::{StreamEvent, StreamHeader};
use super::lexer::{Ctx, Lexer, RawTag, Token};
use super::limits::Limits;
use super::namespace::{Frame, is_declaration, split_qname};
use super::ns;

/// Where in the document the parser is, between events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the root stream header.
    Prolog,
    /// The stream is open: top-level elements follow.
    Stream,
    /// `</stream:stream>` was seen; only whitespace may follow.
    Closed,
}

/// An element whose end tag has not been seen yet.
#[derive(Debug)]
struct OpenElement {
    /// The element being built.
    element: Element,
    /// Its qualified name as written, which the end tag must repeat.
    qname: String,
    /// The namespace declarations it made.
    frame: Frame,
}

/// Incremental parser for one XMPP stream, i.e. one XML document (RFC 6120 §4.2).
///
/// Call order: [`feed`](Self::feed) every chunk read from the peer, then call
/// [`next_event`](Self::next_event) until it returns `Ok(None)`. The parser never reads
/// past the event it returns, so at a layer change (after `<starttls/>`, or after SASL
/// success) call [`take_unparsed`](Self::take_unparsed) and give the bytes to TLS or to a
/// fresh parser. Any split of the input gives the same events at the same offsets, and
/// each byte is examined once however the input is split.
#[derive(Debug)]
pub struct StreamParser {
    /// Limits checked as bytes are scanned.
    limits: Limits,
    /// Bytes fed and not yet compacted away; `buf[start..]` is unconsumed.
    buf: Vec<u8>,
    /// Absolute offset of `buf[0]`.
    base: u64,
    /// Index in `buf` of the first byte not consumed by a returned event.
    start: usize,
    /// Index in `buf` of the next byte to scan; the lexer holds the state for `start..pos`.
    pos: usize,
    /// Absolute offset of the end of the last returned event.
    last_end: u64,
    /// Tokenizer state.
    lexer: Lexer,
    /// Document position between events.
    phase: Phase,
    /// Namespace declarations of the current stream header.
    root: Frame,
    /// Qualified name of the current stream header, for matching its end tag.
    root_qname: String,
    /// Open elements of the top-level element being parsed, outermost first.
    stack: Vec<OpenElement>,
    /// An XML declaration was seen since the last event, so a stream header must follow.
    decl_pending: bool,
    /// A self-closing stream header was returned; `Close` is due next.
    pending_close: bool,
    /// Absolute offset where the byte count for the current limit started.
    region_start: u64,
    /// The byte limit for the current region (element or header).
    region_limit: usize,
    /// The fatal error, once one occurred.
    error: Option<XmlError>,
    /// Bytes handed to the lexer so far: the linearity tests check each byte is
    /// examined once, however the input was split.
    #[cfg(test)]
    pub(super) scanned: u64,
}

impl StreamParser {
    /// Creates a parser for a new stream (a new XML document).
    pub fn new(limits: Limits) -> Self {
        StreamParser {
            limits,
            buf: Vec::new(),
            base: 0,
            start: 0,
            pos: 0,
            last_end: 0,
            lexer: Lexer::default(),
            phase: Phase::Prolog,
            root: Frame::default(),
            root_qname: String::new(),
            stack: Vec::new(),
            decl_pending: false,
            pending_close: false,
            region_start: 0,
            region_limit: limits.max_header_bytes,
            error: None,
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// Appends bytes to the internal buffer. Does not parse.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Parses at most one event from what has been fed; `Ok(None)` means more bytes are
    /// needed. Bytes after the returned event are not looked at. Errors are fatal and
    /// returned again by every later call.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let result = self.run();
        if let Err(error) = &result {
            self.error = Some(error.clone());
        }
        result
    }

    /// Absolute offset (bytes since this parser was created) of the end of the last
    /// event returned; 0 before the first.
    pub fn offset(&self) -> u64 {
        self.last_end
    }

    /// Removes and returns every byte fed but not consumed by a returned event. Partial
    /// progress on those bytes is discarded; bytes fed later continue the stream as if
    /// they followed the last event, and are numbered after the bytes taken.
    pub fn take_unparsed(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start.min(self.buf.len()));
        self.base += (self.buf.len() + rest.len()) as u64;
        self.buf.clear();
        self.start = 0;
        self.pos = 0;
        self.lexer = Lexer::default();
        self.stack.clear();
        self.decl_pending = false;
        self.region_start = self.base;
        self.region_limit = match self.phase {
            Phase::Prolog => self.limits.max_header_bytes,
            Phase::Stream | Phase::Closed => self.limits.max_element_bytes,
        };
        rest
    }

    /// Number of bytes buffered but not yet consumed by a returned event.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Scans bytes until an event completes or the buffer is exhausted.
    fn run(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        if self.pending_close {
            self.pending_close = false;
            self.phase = Phase::Closed;
            return Ok(Some(StreamEvent::Close));
        }
        while let Some(&b) = self.buf.get(self.pos) {
            let abs = self.base + self.pos as u64;
            let ctx = self.ctx(abs);
            let token = self.lexer.step(b, &ctx)?;
            self.pos += 1;
            #[cfg(test)]
            {
                self.scanned += 1;
            }
            let event = match token {
                Some(token) => self.handle(token, abs)?,
                None => None,
            };
            if (abs + 1).saturating_sub(self.region_start) > self.region_limit as u64 {
                return Err(XmlError::TooLarge {
                    limit: self.region_limit,
                });
            }
            if let Some(event) = event {
                self.start = self.pos;
                self.last_end = abs + 1;
                self.region_start = abs + 1;
                self.region_limit = self.limits.max_element_bytes;
                self.decl_pending = false;
                self.compact();
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Describes the position of the byte at absolute offset `abs` to the lexer.
    fn ctx(&self, abs: u64) -> Ctx {
        let top_level = self.stack.is_empty();
        Ctx {
            content: !top_level,
            decl_allowed: top_level && !self.decl_pending && self.phase != Phase::Closed,
            doc_start: abs == 0,
            max_attributes: self.limits.max_attributes,
        }
    }

    /// Applies a token that ended at absolute offset `abs`.
    fn handle(&mut self, token: Token, abs: u64) -> Result<Option<StreamEvent>, XmlError> {
        match token {
            Token::Lt => {
                // A top-level construct starts: count its bytes from its `<`, unless it is
                // the header announced by a declaration, which is counted with it.
                if self.phase != Phase::Prolog && !self.decl_pending {
                    self.region_start = abs;
                    self.region_limit = self.limits.max_element_bytes;
                }
            }
            Token::PiStart => {
                if self.phase == Phase::Stream {
                    self.region_limit = self.limits.max_header_bytes;
                }
            }
            Token::ElementStart => match self.phase {
                Phase::Closed => return Err(not_well_formed("element after the stream end")),
                Phase::Stream if self.stack.len() >= self.limits.max_depth => {
                    return Err(XmlError::TooDeep {
                        limit: self.limits.max_depth,
                    });
                }
                Phase::Prolog | Phase::Stream => {}
            },
            Token::Decl(body) => {
                check_declaration(&body)?;
                self.decl_pending = true;
            }
            Token::Text(text) => {
                if let Some(open) = self.stack.last_mut() {
                    open.element.append_text(text);
                }
            }
            Token::StartTag(tag) => return self.start_tag(tag, abs),
            Token::EndTag(name) => return self.end_tag(&name),
        }
        Ok(None)
    }

    /// A complete start tag: a stream header, a top-level element, or a descendant.
    fn start_tag(&mut self, tag: RawTag, abs: u64) -> Result<Option<StreamEvent>, XmlError> {
        let frame = Frame::from_attrs(&tag.attrs)?;
        let (prefix, local) = split_qname(&tag.name)?;
        let local = local.to_owned();
        let ns = self.resolve_element(prefix, &frame)?;
        let attrs = self.resolve_attrs(&tag.attrs, &frame)?;
        let top_level = self.stack.is_empty();
        match self.phase {
            Phase::Closed => Err(not_well_formed("element after the stream end")),
            Phase::Prolog => {
                if local != "stream" {
                    return Err(not_well_formed("the root element must be a stream header"));
                }
                Ok(Some(self.open_stream(tag, frame, ns, attrs, false)))
            }
            Phase::Stream if top_level && local == "stream" && ns == ns::STREAM => {
                // Without a declaration the tag was counted as an element; it is a header.
                let used = (abs + 1).saturating_sub(self.region_start);
                if used > self.limits.max_header_bytes as u64 {
                    return Err(XmlError::TooLarge {
                        limit: self.limits.max_header_bytes,
                    });
                }
                Ok(Some(self.open_stream(tag, frame, ns, attrs, true)))
            }
            Phase::Stream => {
                if top_level && self.decl_pending {
                    return Err(not_well_formed(
                        "an XML declaration must be followed by a stream header",
                    ));
                }
                let element = Element::from_parts(local, ns, attrs);
                if tag.empty {
                    return Ok(self.close_element(element));
                }
                self.stack.push(OpenElement {
                    element,
                    qname: tag.name,
                    frame,
                });
                Ok(None)
            }
        }
    }

    /// Makes `tag` the stream header whose namespaces the following elements inherit.
    fn open_stream(
        &mut self,
        tag: RawTag,
        frame: Frame,
        ns: String,
        attrs: Vec<(String, String)>,
        nested: bool,
    ) -> StreamEvent {
        let header = StreamHeader {
            ns,
            default_ns: frame.default_ns().map(str::to_owned),
            attrs,
            xml_declaration: self.decl_pending,
            nested,
        };
        self.root = frame;
        self.root_qname = tag.name;
        self.phase = Phase::Stream;
        self.pending_close = tag.empty;
        StreamEvent::Open(header)
    }

    /// A complete end tag: closes the innermost element, or the stream.
    fn end_tag(&mut self, name: &str) -> Result<Option<StreamEvent>, XmlError> {
        match self.stack.pop() {
            Some(open) if open.qname == name => Ok(self.close_element(open.element)),
            Some(open) => Err(not_well_formed(format!(
                "end tag '{name}' does not match '{}'",
                open.qname
            ))),
            None if self.phase == Phase::Stream
                && !self.decl_pending
                && name == self.root_qname =>
            {
                self.phase = Phase::Closed;
                Ok(Some(StreamEvent::Close))
            }
            None => Err(not_well_formed(format!("unexpected end tag '{name}'"))),
        }
    }

    /// Attaches a finished element to its parent, or returns it if it is top-level.
    fn close_element(&mut self, element: Element) -> Option<StreamEvent> {
        match self.stack.last_mut() {
            Some(parent) => {
                parent.element.append_child(element);
                None
            }
            None => Some(StreamEvent::Element(element)),
        }
    }

    /// The declaration frames in scope for a new element, innermost first.
    fn scopes<'a>(&'a self, own: &'a Frame) -> impl Iterator<Item = &'a Frame> {
        std::iter::once(own)
            .chain(self.stack.iter().rev().map(|open| &open.frame))
            .chain(std::iter::once(&self.root))
    }

    /// The namespace of an element name with optional `prefix`.
    fn resolve_element(&self, prefix: Option<&str>, own: &Frame) -> Result<String, XmlError> {
        match prefix {
            None => Ok(self
                .scopes(own)
                .find_map(Frame::default_ns)
                .unwrap_or_default()
                .to_owned()),
            Some(prefix) => self.resolve_prefix(prefix, own),
        }
    }

    /// The namespace bound to `prefix`; unbound prefixes are not well-formed.
    fn resolve_prefix(&self, prefix: &str, own: &Frame) -> Result<String, XmlError> {
        if prefix == "xml" {
            return Ok(ns::XML.to_owned());
        }
        if prefix == "xmlns" {
            return Err(not_well_formed("the prefix xmlns is reserved"));
        }
        self.scopes(own)
            .find_map(|frame| frame.prefix(prefix))
            .map(str::to_owned)
            .ok_or_else(|| not_well_formed(format!("unbound namespace prefix '{prefix}'")))
    }

    /// Resolves attribute names to keys (`name`, `xml:name` or `{uri}name`), dropping
    /// namespace declarations and rejecting duplicates after resolution.
    fn resolve_attrs(
        &self,
        raw: &[(String, String)],
        own: &Frame,
    ) -> Result<Vec<(String, String)>, XmlError> {
        let mut attrs: Vec<(String, String)> = Vec::with_capacity(raw.len());
        for (qname, value) in raw {
            if is_declaration(qname) {
                continue;
            }
            let key = match split_qname(qname)? {
                (None, local) => local.to_owned(),
                (Some(prefix), local) => match self.resolve_prefix(prefix, own)? {
                    uri if uri == ns::XML => format!("xml:{local}"),
                    uri => format!("{{{uri}}}{local}"),
                },
            };
            if attrs.iter().any(|(k, _)| *k == key) {
                return Err(not_well_formed(format!("duplicate attribute '{qname}'")));
            }
            attrs.push((key, value.clone()));
        }
        Ok(attrs)
    }

    /// Drops consumed bytes once they are at least half the buffer, so compaction costs
    /// amortised O(1) per byte; releases memory left over from a large element.
    fn compact(&mut self) {
        if self.start == 0 || self.start < self.buf.len() - self.start {
            return;
        }
        self.buf.drain(..self.start);
        self.base += self.start as u64;
        self.pos = self.pos.saturating_sub(self.start);
        self.start = 0;
        if self.buf.capacity() > 64 * 1024 && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len().max(4096));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams'>";

    fn open(input: &[u8]) -> StreamParser {
        let mut p = StreamParser::new(Limits::default());
        p.feed(HEADER);
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Open(_)))));
        p.feed(input);
        p
    }

    #[test]
    fn needs_more_bytes_on_empty_input() {
        let mut p = StreamParser::new(Limits::default());
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(p.offset(), 0);
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn offsets_and_buffered_track_events() {
        let mut p = open(b" <a/><b>");
        assert_eq!(p.offset(), HEADER.len() as u64);
        assert_eq!(p.buffered(), 8);
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
        assert_eq!(p.offset(), HEADER.len() as u64 + 5);
        assert_eq!(p.buffered(), 3);
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(p.buffered(), 3);
        assert_eq!(p.offset(), HEADER.len() as u64 + 5);
    }

    #[test]
    fn take_unparsed_returns_partial_element_and_parsing_resumes_after_last_event() {
        let mut p = open(b"<a>par");
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(p.take_unparsed(), b"<a>par");
        assert_eq!(p.buffered(), 0);
        p.feed(b"<b/>");
        let Ok(Some(StreamEvent::Element(b))) = p.next_event() else {
            panic!("expected <b/>");
        };
        assert!(b.is("b", ns::CLIENT));
        assert_eq!(p.offset(), HEADER.len() as u64 + 6 + 4);
    }

    #[test]
    fn bytes_after_an_event_are_not_examined() {
        let mut p = open(b"<a/>\x00\xFF");
        assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
        assert_eq!(p.buffered(), 2);
        assert!(p.next_event().is_err());
    }

    #[test]
    fn errors_are_sticky() {
        let mut p = open(b"<a></b>");
        let err = p.next_event().unwrap_err();
        p.feed(b"<c/>");
        assert_eq!(p.next_event(), Err(err.clone()));
        assert_eq!(p.next_event(), Err(err));
    }

    #[test]
    fn compaction_keeps_offsets_absolute() {
        let mut p = open(b"");
        let mut expected = HEADER.len() as u64;
        for _ in 0..1000 {
            p.feed(b"<presence/>");
            assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Element(_)))));
            expected += 11;
            assert_eq!(p.offset(), expected);
        }
        assert!(p.buf.len() < 64, "buffer was not compacted");
    }
}
