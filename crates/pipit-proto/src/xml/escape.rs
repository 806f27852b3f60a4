//! Character rules shared by the parser and the serialiser: the XML `Char` production,
//! the five predefined entities and character references, and output escaping.

use super::error::{XmlError, not_well_formed};

/// Longest entity reference body accepted between `&` and `;` (`#x0010FFFF` fits easily).
pub(super) const MAX_ENTITY_LEN: usize = 32;

/// Whether `c` matches the `Char` production of XML 1.0 §2.2.
pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// Turns accumulated bytes into a `String`, rejecting invalid UTF-8 (RFC 6120 §11.6) and
/// the two non-characters U+FFFE and U+FFFF that UTF-8 can encode but XML forbids.
/// Control characters were already rejected byte by byte by the lexer.
pub(super) fn into_string(bytes: Vec<u8>) -> Result<String, XmlError> {
    let s = String::from_utf8(bytes).map_err(|_| not_well_formed("invalid UTF-8"))?;
    if s.contains(['\u{FFFE}', '\u{FFFF}']) {
        return Err(not_well_formed("character not allowed in XML"));
    }
    Ok(s)
}

/// Decodes the body of an entity reference (the bytes between `&` and `;`).
///
/// Only the five predefined entities and character references exist in restricted XML
/// (RFC 6120 §11.1 forbids DTDs, so nothing else can be declared).
pub(super) fn decode_entity(body: &[u8]) -> Result<char, XmlError> {
    let code = match body {
        b"amp" => return Ok('&'),
        b"lt" => return Ok('<'),
        b"gt" => return Ok('>'),
        b"quot" => return Ok('"'),
        b"apos" => return Ok('\''),
        [b'#', b'x', hex @ ..] => parse_number(hex, 16),
        [b'#', dec @ ..] => parse_number(dec, 10),
        _ => None,
    };
    let Some(code) = code else {
        return Err(not_well_formed(format!(
            "unknown entity '&{};'",
            String::from_utf8_lossy(body)
        )));
    };
    match char::from_u32(code) {
        Some(c) if is_xml_char(c) => Ok(c),
        _ => Err(not_well_formed(format!(
            "character reference to U+{code:X} is not an XML character"
        ))),
    }
}

/// Parses a non-empty run of digits in `radix`, `None` on any other byte or on overflow.
fn parse_number(digits: &[u8], radix: u32) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &b| {
        let digit = char::from(b).to_digit(radix)?;
        acc.checked_mul(radix)?.checked_add(digit)
    })
}

/// Appends `s` as character data: escapes `&`, `<`, `>`, and `\r` (which a parser would
/// otherwise normalise to `\n`, XML 1.0 §2.11). Characters XML cannot carry become U+FFFD.
pub(super) fn escape_text(out: &mut Vec<u8>, s: &str) {
    escape(out, s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '\r' => Some("&#xD;"),
        _ => None,
    });
}

/// Appends `s` as an attribute value for either quote style: escapes `&`, `<`, `>`, `"`,
/// `'`, and tab, newline and carriage return (which attribute-value normalisation would
/// otherwise turn into spaces, XML 1.0 §3.3.3).
pub(super) fn escape_attr(out: &mut Vec<u8>, s: &str) {
    escape(out, s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&apos;"),
        '\t' => Some("&#x9;"),
        '\n' => Some("&#xA;"),
        '\r' => Some("&#xD;"),
        _ => None,
    });
}

/// Copies `s` to `out`, replacing characters for which `replace` returns an escape and
/// characters outside the XML `Char` production, copying unchanged runs in one go.
/// `s` escaped for an attribute value, for callers that write markup by hand (the
/// stream header, which is never closed and so is not an [`Element`](super::Element)).
pub fn escape_attr_value(s: &str) -> String {
    let mut out = Vec::new();
    escape_attr(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

fn escape(out: &mut Vec<u8>, s: &str, replace: impl Fn(char) -> Option<&'static str>) {
    let mut copied = 0;
    for (i, c) in s.char_indices() {
        let replacement = match replace(c) {
            Some(r) => r,
            None if is_xml_char(c) => continue,
            None => "\u{FFFD}",
        };
        out.extend_from_slice(s.get(copied..i).unwrap_or_default().as_bytes());
        out.extend_from_slice(replacement.as_bytes());
        copied = i + c.len_utf8();
    }
    out.extend_from_slice(s.get(copied..).unwrap_or_default().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = Vec::new();
        escape_text(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    fn attr(s: &str) -> String {
        let mut out = Vec::new();
        escape_attr(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn predefined_entities_decode() {
        assert_eq!(decode_entity(b"amp"), Ok('&'));
        assert_eq!(decode_entity(b"lt"), Ok('<'));
        assert_eq!(decode_entity(b"gt"), Ok('>'));
        assert_eq!(decode_entity(b"quot"), Ok('"'));
        assert_eq!(decode_entity(b"apos"), Ok('\''));
    }

    #[test]
    fn character_references_decode() {
        assert_eq!(decode_entity(b"#65"), Ok('A'));
        assert_eq!(decode_entity(b"#x41"), Ok('A'));
        assert_eq!(decode_entity(b"#x1F600"), Ok('😀'));
        assert_eq!(decode_entity(b"#0000065"), Ok('A'));
    }

    #[test]
    fn bad_references_are_rejected() {
        for body in [
            &b"nbsp"[..],
            b"",
            b"#",
            b"#x",
            b"#0",
            b"#x0",
            b"#xD800",
            b"#xFFFE",
            b"#x110000",
            b"#99999999999",
            b"#X41",
            b"#x4G",
            b"AMP",
        ] {
            assert!(
                matches!(decode_entity(body), Err(XmlError::NotWellFormed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn text_escaping() {
        assert_eq!(text("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(text("quotes ' \" stay"), "quotes ' \" stay");
        assert_eq!(text("line\r\n"), "line&#xD;\n");
        assert_eq!(text("nul\u{0}here"), "nul\u{FFFD}here");
        assert_eq!(text("snowman ☃"), "snowman ☃");
    }

    #[test]
    fn attribute_escaping() {
        assert_eq!(attr("a'b\"c<d>&"), "a&apos;b&quot;c&lt;d&gt;&amp;");
        assert_eq!(attr("\t\n\r"), "&#x9;&#xA;&#xD;");
    }

    #[test]
    fn strings_reject_non_characters() {
        assert!(into_string("ok ☃".as_bytes().to_vec()).is_ok());
        assert!(into_string(vec![0xC3]).is_err());
        assert!(into_string("\u{FFFF}".as_bytes().to_vec()).is_err());
        assert!(into_string(vec![0xED, 0xA0, 0x80]).is_err());
    }
}
