//! The XML declaration `<?xml version='1.0' encoding='UTF-8'?>` (XML 1.0 §2.8), the only
//! processing-instruction-like construct restricted XML allows (RFC 6120 §11.1).

use super::error::{XmlError, not_well_formed};

/// Checks the body of an XML declaration: the bytes after `<?xml` and its first
/// whitespace, up to (not including) `?>`. Only UTF-8 is accepted (RFC 6120 §11.6).
pub(super) fn check_declaration(body: &[u8]) -> Result<(), XmlError> {
    let mut cursor = Cursor { rest: body };
    cursor.skip_ws();
    let (name, version) = cursor.pseudo_attr()?;
    if name != b"version" {
        return Err(not_well_formed("XML declaration must start with version"));
    }
    if !is_version(version) {
        return Err(not_well_formed("unsupported XML version"));
    }
    let mut seen_encoding = false;
    let mut seen_standalone = false;
    loop {
        let spaced = cursor.skip_ws();
        if cursor.rest.is_empty() {
            return Ok(());
        }
        if !spaced {
            return Err(not_well_formed("missing whitespace in XML declaration"));
        }
        match cursor.pseudo_attr()? {
            (b"encoding", value) if !seen_encoding && !seen_standalone => {
                seen_encoding = true;
                if !is_encoding_name(value) {
                    return Err(not_well_formed("malformed encoding name"));
                }
                if !value.eq_ignore_ascii_case(b"UTF-8") {
                    return Err(XmlError::UnsupportedEncoding(
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                }
            }
            (b"standalone", b"yes" | b"no") if !seen_standalone => seen_standalone = true,
            _ => return Err(not_well_formed("malformed XML declaration")),
        }
    }
}

/// `VersionNum ::= '1.' [0-9]+` (XML 1.0 fifth edition §2.8).
fn is_version(value: &[u8]) -> bool {
    value
        .strip_prefix(b"1.")
        .is_some_and(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
}

/// `EncName ::= [A-Za-z] ([A-Za-z0-9._] | '-')*` (XML 1.0 §4.3.3).
fn is_encoding_name(value: &[u8]) -> bool {
    match value.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => false,
    }
}

/// A read position in the declaration body.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// Skips whitespace, reporting whether there was any.
    fn skip_ws(&mut self) -> bool {
        let before = self.rest.len();
        while let Some((b' ' | b'\t' | b'\r' | b'\n', rest)) = self.rest.split_first() {
            self.rest = rest;
        }
        self.rest.len() != before
    }

    /// Reads `name = 'value'` (either quote).
    fn pseudo_attr(&mut self) -> Result<(&'a [u8], &'a [u8]), XmlError> {
        let len = self
            .rest
            .iter()
            .position(|b| !b.is_ascii_alphabetic())
            .unwrap_or(self.rest.len());
        let (name, rest) = self.rest.split_at(len);
        self.rest = rest;
        self.skip_ws();
        let Some((b'=', rest)) = self.rest.split_first() else {
            return Err(not_well_formed("expected '=' in XML declaration"));
        };
        self.rest = rest;
        self.skip_ws();
        let Some((&quote @ (b'\'' | b'"'), rest)) = self.rest.split_first() else {
            return Err(not_well_formed("expected a quote in XML declaration"));
        };
        let Some(end) = rest.iter().position(|&b| b == quote) else {
            return Err(not_well_formed("unterminated value in XML declaration"));
        };
        let (value, rest) = rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or_default();
        Ok((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_declarations() {
        for ok in [
            &b"version='1.0'"[..],
            b"version=\"1.0\" ",
            b"version = '1.0' encoding='UTF-8'",
            b"version='1.0' encoding='utf-8' standalone='yes'",
            b"version='1.0' standalone=\"no\"",
            b"version='1.1'",
        ] {
            assert_eq!(
                check_declaration(ok),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(ok)
            );
        }
    }

    #[test]
    fn rejects_other_encodings() {
        for enc in ["ISO-8859-1", "UTF-16", "utf8", "US-ASCII"] {
            let body = format!("version='1.0' encoding='{enc}'");
            assert_eq!(
                check_declaration(body.as_bytes()),
                Err(XmlError::UnsupportedEncoding(enc.to_owned()))
            );
        }
    }

    #[test]
    fn rejects_malformed_declarations() {
        for bad in [
            &b""[..],
            b"encoding='UTF-8'",
            b"version='2.0'",
            b"version='1.'",
            b"version='1.0",
            b"version='1.0'encoding='UTF-8'",
            b"version='1.0' standalone='maybe'",
            b"version='1.0' standalone='yes' encoding='UTF-8'",
            b"version='1.0' encoding='UTF-8' encoding='UTF-8'",
            b"version='1.0' foo='bar'",
            b"version='1.0' encoding=''",
            b"version 1.0",
        ] {
            assert!(
                matches!(check_declaration(bad), Err(XmlError::NotWellFormed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
