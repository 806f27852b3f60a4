//! The evidence of one check: what the probe sent (described, never the bytes, which carry
//! the password) and what the server sent back, bounded so a chatty server cannot make
//! the report grow without limit.

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
}

impl Transcript {
    /// A flight the probe wrote: `what` it held and how many bytes went on the wire.
    pub fn client(&mut self, what: &str, bytes: usize) {
        self.line(&format!("C: {what} ({bytes} bytes)"));
    }

    /// Bytes the server sent (plaintext, or decrypted TLS application data).
    pub fn server(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.line(&format!("S: {}", printable(bytes, MAX_CHUNK_CHARS)));
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
    use super::{Transcript, printable};

    #[test]
    fn printable_escapes_controls_and_binary() {
        assert_eq!(
            printable(b"<a/>\n\x15\x03\x03\xff", 100),
            "<a/>\\n\\x15\\x03\\x03\\xff"
        );
        assert_eq!(printable(b"abcdef", 3), "abc… [6 bytes in all]");
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
