//! The byte-at-a-time tokenizer.
//!
//! Every byte is examined exactly once and all progress lives in [`Lexer`], so input
//! split anywhere costs linear time and yields the same tokens at the same byte
//! positions. The lexer knows XML syntax only; namespaces, nesting and limits other than
//! the attribute count belong to the parser, which describes the position with [`Ctx`].

use super::error::{XmlError, not_well_formed, restricted};
use super::escape::{MAX_ENTITY_LEN, decode_entity, into_string};

/// What the parser knows about the position of the next byte.
pub(super) struct Ctx {
    /// Inside a top-level element: text, references and CDATA are content. Outside,
    /// only whitespace may appear between markup.
    pub content: bool,
    /// An XML declaration may start here.
    pub decl_allowed: bool,
    /// The byte is the first of the document (byte-order mark and encoding sniffing).
    pub doc_start: bool,
    /// Maximum attributes per start tag.
    pub max_attributes: usize,
}

/// A complete start tag, names and values still unresolved.
#[derive(Debug)]
pub(super) struct RawTag {
    /// The qualified name as written.
    pub name: String,
    /// Attributes as written (qualified name, normalised and unescaped value).
    pub attrs: Vec<(String, String)>,
    /// Whether the tag was self-closing (`<x/>`).
    pub empty: bool,
}

/// What one byte can complete.
#[derive(Debug)]
pub(super) enum Token {
    /// A `<` outside any top-level element: a new top-level construct starts here.
    Lt,
    /// `<?` where a declaration is allowed.
    PiStart,
    /// `<` followed by a name character: a start tag begins.
    ElementStart,
    /// A start tag ended with this byte.
    StartTag(RawTag),
    /// An end tag ended with this byte.
    EndTag(String),
    /// Character data that ended at this `<` (only inside a top-level element).
    Text(String),
    /// An XML declaration ended; the body between `<?xml ` and `?>`.
    Decl(Vec<u8>),
}

/// Where in the syntax the next byte falls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Between markup.
    #[default]
    Content,
    /// Inside a UTF-8 byte-order mark, this many bytes matched.
    Bom(u8),
    /// After `<`; `first` if the `<` was the first byte of the document.
    Lt { first: bool },
    /// In a start tag's name.
    StartName,
    /// In a start tag between attributes; `spaced` once whitespace was seen.
    InTag { spaced: bool },
    /// In an attribute name.
    AttrName,
    /// Between an attribute name and `=`.
    AfterAttrName,
    /// Between `=` and the opening quote.
    BeforeValue,
    /// Inside an attribute value delimited by this quote.
    AttrValue(u8),
    /// After `/` in a start tag.
    TagSlash,
    /// After `</`, in the name.
    EndName,
    /// After an end tag's name.
    AfterEndName,
    /// After `<!`.
    Bang,
    /// Matching `CDATA[` after `<![`, this many bytes matched.
    CDataOpen(u8),
    /// Inside a CDATA section after this many consecutive `]`.
    CData(usize),
    /// After `<?`, this many bytes of `xml` matched.
    PiTarget(u8),
    /// Inside the XML declaration; `question` after a `?`.
    DeclBody { question: bool },
    /// After `&`; `Some(quote)` inside an attribute value, `None` in text.
    Entity { quote: Option<u8> },
}

/// Resumable tokenizer state: the current [`State`] plus the partial token.
#[derive(Debug, Default)]
pub(super) struct Lexer {
    state: State,
    /// Element name (start or end tag).
    name: Vec<u8>,
    /// Attributes completed so far in the current start tag.
    attrs: Vec<(String, String)>,
    /// Current attribute name.
    attr_name: Vec<u8>,
    /// Current attribute value, or the XML declaration body.
    value: Vec<u8>,
    /// Character data since the last markup.
    text: Vec<u8>,
    /// Entity reference body since `&`.
    entity: Vec<u8>,
    /// The previous byte was a carriage return (line-end normalisation, XML 1.0 §2.11).
    cr: bool,
    /// Consecutive `]` just seen in text (`]]>` is forbidden there, XML 1.0 §2.4).
    brackets: u8,
}

/// The literal after `<![`.
const CDATA_OPEN: &[u8] = b"CDATA[";
/// The only processing-instruction target we accept.
const XML_TARGET: &[u8] = b"xml";

impl Lexer {
    /// Consumes one byte, returning the token it completes, if any.
    pub(super) fn step(&mut self, b: u8, ctx: &Ctx) -> Result<Option<Token>, XmlError> {
        if is_never_valid(b) {
            let utf16_or_32 = (ctx.doc_start && matches!(b, 0x00 | 0xFE | 0xFF))
                || (b == 0 && self.state == (State::Lt { first: true }));
            return Err(if utf16_or_32 {
                XmlError::UnsupportedEncoding("UTF-16 or UTF-32".into())
            } else {
                not_well_formed(format!("byte 0x{b:02X} is not allowed in XML"))
            });
        }
        match self.state {
            State::Content => return self.content(b, ctx),
            State::Bom(matched) => self.bom(b, matched)?,
            State::Lt { .. } => return self.after_lt(b, ctx),
            State::StartName => {
                if is_name_char(b) {
                    self.name.push(b);
                } else {
                    return self.tag_delimiter(b, true);
                }
            }
            State::InTag { spaced } => {
                if is_name_start(b) {
                    if !spaced {
                        return Err(not_well_formed(
                            "attributes must be separated by whitespace",
                        ));
                    }
                    if self.attrs.len() >= ctx.max_attributes {
                        return Err(XmlError::TooManyAttributes {
                            limit: ctx.max_attributes,
                        });
                    }
                    self.attr_name.clear();
                    self.attr_name.push(b);
                    self.state = State::AttrName;
                } else {
                    return self.tag_delimiter(b, spaced);
                }
            }
            State::AttrName => match b {
                _ if is_name_char(b) => self.attr_name.push(b),
                b'=' => self.state = State::BeforeValue,
                _ if is_ws(b) => self.state = State::AfterAttrName,
                _ => return Err(not_well_formed("malformed attribute name")),
            },
            State::AfterAttrName => match b {
                b'=' => self.state = State::BeforeValue,
                _ if is_ws(b) => {}
                _ => return Err(not_well_formed("expected '=' after attribute name")),
            },
            State::BeforeValue => match b {
                b'\'' | b'"' => {
                    self.value.clear();
                    self.cr = false;
                    self.state = State::AttrValue(b);
                }
                _ if is_ws(b) => {}
                _ => return Err(not_well_formed("attribute value must be quoted")),
            },
            State::AttrValue(quote) => self.attr_value(b, quote)?,
            State::TagSlash => {
                if b != b'>' {
                    return Err(not_well_formed("expected '>' after '/'"));
                }
                return self.finish_start_tag(true);
            }
            State::EndName => {
                if self.name.is_empty() {
                    if !is_name_start(b) {
                        return Err(not_well_formed("malformed end tag"));
                    }
                    self.name.push(b);
                } else if is_name_char(b) {
                    self.name.push(b);
                } else if b == b'>' {
                    return self.finish_end_tag();
                } else if is_ws(b) {
                    self.state = State::AfterEndName;
                } else {
                    return Err(not_well_formed("malformed end tag"));
                }
            }
            State::AfterEndName => match b {
                b'>' => return self.finish_end_tag(),
                _ if is_ws(b) => {}
                _ => return Err(not_well_formed("malformed end tag")),
            },
            State::Bang => match b {
                b'[' if ctx.content => self.state = State::CDataOpen(0),
                b'[' => return Err(not_well_formed("CDATA is only allowed inside a stanza")),
                b'-' => return Err(restricted("comments are not allowed")),
                b'A'..=b'Z' => {
                    return Err(restricted(
                        "document type and markup declarations are not allowed",
                    ));
                }
                _ => return Err(not_well_formed("malformed markup after '<!'")),
            },
            State::CDataOpen(matched) => {
                if CDATA_OPEN.get(usize::from(matched)) != Some(&b) {
                    return Err(not_well_formed("malformed CDATA section"));
                }
                let matched = matched + 1;
                self.state = if usize::from(matched) == CDATA_OPEN.len() {
                    self.cr = false;
                    State::CData(0)
                } else {
                    State::CDataOpen(matched)
                };
            }
            State::CData(brackets) => self.cdata(b, brackets),
            State::PiTarget(matched) => self.pi_target(b, matched)?,
            State::DeclBody { question } => match b {
                b'>' if question => {
                    self.state = State::Content;
                    return Ok(Some(Token::Decl(std::mem::take(&mut self.value))));
                }
                _ => {
                    if question {
                        self.value.push(b'?');
                    }
                    if b != b'?' {
                        self.value.push(b);
                    }
                    self.state = State::DeclBody {
                        question: b == b'?',
                    };
                }
            },
            State::Entity { quote } => self.entity(b, quote)?,
        }
        Ok(None)
    }

    /// Between markup: text inside a stanza, whitespace outside.
    fn content(&mut self, b: u8, ctx: &Ctx) -> Result<Option<Token>, XmlError> {
        if b == b'<' {
            self.state = State::Lt {
                first: ctx.doc_start,
            };
            self.brackets = 0;
            self.cr = false;
            if !ctx.content {
                return Ok(Some(Token::Lt));
            }
            if self.text.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Token::Text(into_string(std::mem::take(
                &mut self.text,
            ))?)));
        }
        if !ctx.content {
            if ctx.doc_start && b == 0xEF {
                self.state = State::Bom(1);
            } else if !is_ws(b) {
                // RFC 6120 §4.7.1 allows only whitespace (keepalives) between stanzas.
                return Err(not_well_formed("text is not allowed at stream level"));
            }
            return Ok(None);
        }
        match b {
            b'&' => {
                self.brackets = 0;
                self.cr = false;
                self.state = State::Entity { quote: None };
            }
            b'>' if self.brackets >= 2 => {
                return Err(not_well_formed("']]>' is not allowed in text"));
            }
            _ => {
                self.brackets = if b == b']' {
                    self.brackets.saturating_add(1)
                } else {
                    0
                };
                push_normalized(&mut self.text, &mut self.cr, b, false);
            }
        }
        Ok(None)
    }

    /// The UTF-8 byte-order mark `EF BB BF`, skipped at the start of a document.
    fn bom(&mut self, b: u8, matched: u8) -> Result<(), XmlError> {
        match (matched, b) {
            (1, 0xBB) => self.state = State::Bom(2),
            (2, 0xBF) => self.state = State::Content,
            _ => return Err(not_well_formed("invalid UTF-8")),
        }
        Ok(())
    }

    /// The byte after `<` decides the kind of markup.
    fn after_lt(&mut self, b: u8, ctx: &Ctx) -> Result<Option<Token>, XmlError> {
        match b {
            b'/' => {
                self.name.clear();
                self.state = State::EndName;
            }
            b'!' => self.state = State::Bang,
            b'?' => {
                if !ctx.decl_allowed {
                    return Err(restricted("processing instructions are not allowed"));
                }
                self.state = State::PiTarget(0);
                return Ok(Some(Token::PiStart));
            }
            _ if is_name_start(b) => {
                self.name.clear();
                self.name.push(b);
                self.attrs.clear();
                self.state = State::StartName;
                return Ok(Some(Token::ElementStart));
            }
            _ => return Err(not_well_formed("malformed markup after '<'")),
        }
        Ok(None)
    }

    /// Whitespace, `/` or `>` after a start tag's name or an attribute.
    fn tag_delimiter(&mut self, b: u8, spaced: bool) -> Result<Option<Token>, XmlError> {
        match b {
            b'>' => self.finish_start_tag(false),
            b'/' => {
                self.state = State::TagSlash;
                Ok(None)
            }
            _ if is_ws(b) => {
                self.state = State::InTag { spaced: true };
                Ok(None)
            }
            _ if spaced => Err(not_well_formed("malformed start tag")),
            _ => Err(not_well_formed("malformed start tag name")),
        }
    }

    /// A byte inside a quoted attribute value (normalised per XML 1.0 §3.3.3).
    fn attr_value(&mut self, b: u8, quote: u8) -> Result<(), XmlError> {
        match b {
            _ if b == quote => {
                let name = into_string(std::mem::take(&mut self.attr_name))?;
                let value = into_string(std::mem::take(&mut self.value))?;
                self.attrs.push((name, value));
                self.state = State::InTag { spaced: false };
            }
            b'<' => return Err(not_well_formed("'<' is not allowed in attribute values")),
            b'&' => {
                self.cr = false;
                self.state = State::Entity { quote: Some(quote) };
            }
            _ => push_normalized(&mut self.value, &mut self.cr, b, true),
        }
        Ok(())
    }

    /// A byte inside `<![CDATA[ ... ]]>`, after `brackets` consecutive `]`.
    fn cdata(&mut self, b: u8, brackets: usize) {
        match b {
            b']' => self.state = State::CData(brackets.saturating_add(1)),
            b'>' if brackets >= 2 => {
                self.text.extend(std::iter::repeat_n(b']', brackets - 2));
                self.cr = false;
                self.brackets = 0;
                self.state = State::Content;
            }
            _ => {
                if brackets > 0 {
                    self.text.extend(std::iter::repeat_n(b']', brackets));
                    self.cr = false;
                }
                push_normalized(&mut self.text, &mut self.cr, b, false);
                self.state = State::CData(0);
            }
        }
    }

    /// After `<?`: only the target `xml` followed by whitespace is an XML declaration.
    fn pi_target(&mut self, b: u8, matched: u8) -> Result<(), XmlError> {
        match XML_TARGET.get(usize::from(matched)) {
            Some(&expected) if expected == b => self.state = State::PiTarget(matched + 1),
            Some(_) => return Err(restricted("processing instructions are not allowed")),
            None if is_ws(b) => {
                self.value.clear();
                self.state = State::DeclBody { question: false };
            }
            None if b == b'?' => {
                return Err(not_well_formed("XML declaration without version"));
            }
            None => return Err(restricted("processing instructions are not allowed")),
        }
        Ok(())
    }

    /// A byte of an entity reference, in text or in an attribute value.
    fn entity(&mut self, b: u8, quote: Option<u8>) -> Result<(), XmlError> {
        if b == b';' {
            let c = decode_entity(&self.entity)?;
            self.entity.clear();
            let mut utf8 = [0; 4];
            let encoded = c.encode_utf8(&mut utf8).as_bytes();
            match quote {
                Some(quote) => {
                    self.value.extend_from_slice(encoded);
                    self.state = State::AttrValue(quote);
                }
                None => {
                    self.text.extend_from_slice(encoded);
                    self.state = State::Content;
                }
            }
        } else if b.is_ascii_alphanumeric() || b == b'#' {
            if self.entity.len() >= MAX_ENTITY_LEN {
                return Err(not_well_formed("entity reference too long"));
            }
            self.entity.push(b);
        } else {
            return Err(not_well_formed("malformed entity reference"));
        }
        Ok(())
    }

    /// `>` closed a start tag.
    fn finish_start_tag(&mut self, empty: bool) -> Result<Option<Token>, XmlError> {
        self.state = State::Content;
        Ok(Some(Token::StartTag(RawTag {
            name: into_string(std::mem::take(&mut self.name))?,
            attrs: std::mem::take(&mut self.attrs),
            empty,
        })))
    }

    /// `>` closed an end tag.
    fn finish_end_tag(&mut self) -> Result<Option<Token>, XmlError> {
        self.state = State::Content;
        Ok(Some(Token::EndTag(into_string(std::mem::take(
            &mut self.name,
        ))?)))
    }
}

/// Appends a content byte with line ends normalised (`\r\n` and `\r` become `\n`, XML 1.0
/// §2.11); in attribute values, tab and line ends then become a space (§3.3.3).
fn push_normalized(buf: &mut Vec<u8>, cr: &mut bool, b: u8, attr: bool) {
    let after_cr = std::mem::replace(cr, b == b'\r');
    match b {
        b'\n' if after_cr => {}
        b'\t' | b'\n' | b'\r' if attr => buf.push(b' '),
        b'\r' => buf.push(b'\n'),
        _ => buf.push(b),
    }
}

/// XML whitespace (XML 1.0 §2.3 `S`).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A byte that may start a name. Non-ASCII bytes are accepted here and checked as UTF-8
/// when the name is complete.
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// A byte that may continue a name.
fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.'
}

/// Bytes that can never appear in a UTF-8 XML document: C0 controls other than tab, line
/// feed and carriage return (XML 1.0 §2.2), and bytes that never occur in UTF-8.
fn is_never_valid(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F | 0xC0 | 0xC1 | 0xF5..=0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: Ctx = Ctx {
        content: true,
        decl_allowed: false,
        doc_start: false,
        max_attributes: 8,
    };

    /// Runs the lexer over `input` in content mode, collecting tokens.
    fn lex(input: &[u8]) -> Result<Vec<Token>, XmlError> {
        let mut lexer = Lexer::default();
        let mut tokens = Vec::new();
        for &b in input {
            if let Some(token) = lexer.step(b, &CONTENT)? {
                tokens.push(token);
            }
        }
        Ok(tokens)
    }

    fn texts(input: &[u8]) -> Vec<String> {
        lex(input)
            .unwrap()
            .into_iter()
            .filter_map(|t| match t {
                Token::Text(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn start_tag_with_attributes() {
        let tokens = lex(b"<a x='1' y = \"2\"/>").unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(matches!(tokens.first(), Some(Token::ElementStart)));
        let Some(Token::StartTag(tag)) = tokens.get(1) else {
            panic!("{tokens:?}");
        };
        assert_eq!(tag.name, "a");
        assert!(tag.empty);
        assert_eq!(
            tag.attrs,
            [
                ("x".to_owned(), "1".to_owned()),
                ("y".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn end_tag_allows_trailing_whitespace() {
        let tokens = lex(b"</a \n>").unwrap();
        assert!(matches!(tokens.as_slice(), [Token::EndTag(n)] if n == "a"));
    }

    #[test]
    fn line_ends_are_normalised() {
        assert_eq!(texts(b"a\r\nb\rc\n\rd<"), ["a\nb\nc\n\nd"]);
        assert_eq!(texts(b"a&#xD;\nb<"), ["a\r\nb"]);
    }

    #[test]
    fn attribute_values_are_normalised() {
        let tokens = lex(b"<a v='x\r\ny\tz&#x9;'>").unwrap();
        let Some(Token::StartTag(tag)) = tokens.get(1) else {
            panic!("{tokens:?}");
        };
        assert_eq!(tag.attrs, [("v".to_owned(), "x y z\t".to_owned())]);
    }

    #[test]
    fn cdata_becomes_text() {
        assert_eq!(texts(b"<![CDATA[<a>&amp;]]]]><"), ["<a>&amp;]]"]);
        assert_eq!(texts(b"<![CDATA[]]><"), Vec::<String>::new());
        assert_eq!(texts(b"<![CDATA[x] ]>]]><"), ["x] ]>"]);
    }

    #[test]
    fn cdata_close_in_text_is_rejected() {
        assert!(lex(b"a]]>").is_err());
        assert!(lex(b"a] ]>").is_ok());
    }

    #[test]
    fn attributes_need_whitespace_between_them() {
        assert!(lex(b"<a x='1'y='2'>").is_err());
    }

    #[test]
    fn attribute_limit_is_checked_at_the_next_name() {
        let mut input = b"<a".to_vec();
        for i in 0..8 {
            input.extend_from_slice(format!(" a{i}='v'").as_bytes());
        }
        input.extend_from_slice(b" z");
        assert_eq!(
            lex(&input).unwrap_err(),
            XmlError::TooManyAttributes { limit: 8 }
        );
    }

    #[test]
    fn malformed_markup_is_rejected() {
        for bad in [
            &b"<1a>"[..],
            b"< a>",
            b"<a b>",
            b"<a b=c>",
            b"<a b='<'>",
            b"<a/ >",
            b"</ a>",
            b"</a b>",
            b"<!x",
            b"<![CDATX",
            b"&bogus;",
            b"& amp;",
            b"\x01",
            b"\xFF",
        ] {
            assert!(
                matches!(lex(bad), Err(XmlError::NotWellFormed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn restricted_constructs() {
        for bad in [&b"<!--"[..], b"<!DOCTYPE", b"<!ENTITY", b"<?php"] {
            assert!(
                matches!(lex(bad), Err(XmlError::Restricted(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
