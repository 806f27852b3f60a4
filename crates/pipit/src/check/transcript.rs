//! The evidence of one check: what the probe sent (described, never the bytes, which carry
//! the password) and what the server sent back, bounded so a chatty server cannot make
//! the report grow without limit, with the FAST tokens it issued hidden.

/// Most characters kept; a hostile server cannot grow the report past this.
const MAX_CHARS: usize = 32 * 1024;
/// Most characters of one server chunk shown.
const MAX_CHUNK_CHARS: usize = 8 * 1024;

/// A bounded, line-per-event log of one connection (or several, for two-connection checks).
#[derive(Debug, Default)]
pub struct Transcript {
    /// The lines so far.
    text: String,
    /// Set once the bound was reached; later lines are dropped.
    full: bool,
    /// Hides `token` attribute values in what the server sent.
    redactor: Redactor,
}

impl Transcript {
    /// A flight the probe wrote: `what` it held and how many bytes went on the wire.
    pub fn client(&mut self, what: &str, bytes: usize) {
        self.line(&format!("C: {what} ({bytes} bytes)"));
    }

    /// Bytes the server sent (plaintext, or decrypted TLS application data), with the
    /// value of every `token` attribute hidden: XEP-0484's `<token token='…'/>` is a
    /// credential, and the report may be shared.
    pub fn server(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let shown = self.redactor.feed(bytes);
            self.line(&format!("S: {}", printable(&shown, MAX_CHUNK_CHARS)));
        }
    }

    /// Something the probe observed that is not server text (a TLS event, a close, a timeout).
    pub fn note(&mut self, what: &str) {
        self.line(&format!("-- {what}"));
    }

    /// The transcript text.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn line(&mut self, line: &str) {
        if self.full {
            return;
        }
        if self.text.len() + line.len() + 1 > MAX_CHARS {
            self.text.push_str("-- [transcript truncated]\n");
            self.full = true;
            return;
        }
        self.text.push_str(line);
        self.text.push('\n');
    }
}

/// What hides `token` attribute values (`token='…'`, `token = "…"`) in a byte stream
/// fed in chunks, even when a value or the name before it is split across chunks.
#[derive(Debug, Default)]
struct Redactor {
    state: Scan,
}

/// Where the redactor is in `<whitespace>token<whitespace>?=<whitespace>?<quote>…<quote>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Scan {
    /// Looking for whitespace (an attribute name starts after it).
    #[default]
    Idle,
    /// After whitespace, this many bytes of `token` matched.
    Name(usize),
    /// `token` matched: whitespace or `=` may follow.
    AfterName,
    /// `=` matched: whitespace or the opening quote may follow.
    AfterEq,
    /// Inside the value, until this quote.
    Value(u8),
}

impl Redactor {
    const NAME: &'static [u8] = b"token";
    const HIDDEN: &'static [u8] = b"[hidden]";

    /// The bytes with the values hidden; a value's first byte becomes `[hidden]`, the rest
    /// of it (in this chunk or later ones) nothing.
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            let space = b.is_ascii_whitespace();
            self.state = match self.state {
                Scan::Value(quote) if b == quote => {
                    out.push(b);
                    Scan::Idle
                }
                Scan::Value(quote) => Scan::Value(quote),
                Scan::AfterEq if b == b'\'' || b == b'"' => {
                    out.push(b);
                    out.extend_from_slice(Self::HIDDEN);
                    Scan::Value(b)
                }
                Scan::AfterName if b == b'=' => {
                    out.push(b);
                    Scan::AfterEq
                }
                state @ (Scan::AfterName | Scan::AfterEq) if space => {
                    out.push(b);
                    state
                }
                Scan::Name(n) if b == Self::NAME[n] => {
                    out.push(b);
                    if n + 1 == Self::NAME.len() {
                        Scan::AfterName
                    } else {
                        Scan::Name(n + 1)
                    }
                }
                _ => {
                    out.push(b);
                    if space { Scan::Name(0) } else { Scan::Idle }
                }
            };
        }
        out
    }
}

/// Server bytes as one line of text: UTF-8 where valid, control characters and invalid
/// bytes escaped, cut after `max` characters.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == max {
                out.push_str(&format!("… [{} bytes in all]", bytes.len()));
                return out;
            }
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
            shown += 1;
        }
        for b in chunk.invalid() {
            if shown == max {
                out.push_str(&format!("… [{} bytes in all]", bytes.len()));
                return out;
            }
            out.push_str(&format!("\\x{b:02x}"));
            shown += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Redactor, Transcript, printable};

    #[test]
    fn printable_escapes_controls_and_binary() {
        assert_eq!(
            printable(b"<a/>\n\x15\x03\x03\xff", 100),
            "<a/>\\n\\x15\\x03\\x03\\xff"
        );
        assert_eq!(printable(b"abcdef", 3), "abc… [6 bytes in all]");
    }

    #[test]
    fn token_values_are_hidden_even_when_split() {
        let xml = "<token xmlns='urn:xmpp:fast:0' expiry='2026-01-01T00:00:00Z' \
                   token='s3cr3t'/><x token = \"more\" tokens='kept' atoken='kept'/>";
        let hidden = "<token xmlns='urn:xmpp:fast:0' expiry='2026-01-01T00:00:00Z' \
                      token='[hidden]'/><x token = \"[hidden]\" tokens='kept' atoken='kept'/>";
        for split in 0..=xml.len() {
            let mut r = Redactor::default();
            let mut out = r.feed(&xml.as_bytes()[..split]);
            out.extend(r.feed(&xml.as_bytes()[split..]));
            assert_eq!(String::from_utf8(out).unwrap(), hidden, "split at {split}");
        }
        let mut t = Transcript::default();
        t.server(b"<success><token token='s3cr3t'/></success>");
        assert!(!t.text().contains("s3cr3t"), "{}", t.text());
    }

    #[test]
    fn transcript_is_bounded() {
        let mut t = Transcript::default();
        for _ in 0..10_000 {
            t.server(&[b'x'; 100]);
        }
        assert!(t.text().len() <= super::MAX_CHARS + 64);
        assert!(t.text().ends_with("[transcript truncated]\n"));
    }
}
