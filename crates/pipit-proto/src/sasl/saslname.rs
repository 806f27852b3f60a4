//! The SCRAM `saslname` encoding of usernames and authzids: `,` as `=2C`, `=` as `=3D` (RFC 5802 §5.1).

/// Escapes a name for the `n=` or `a=` attribute.
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`]; `None` for an empty name, a bare `=`, any other escape, or a NUL or `,`.
pub(crate) fn unescape(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        match c {
            '=' => {
                if let Some(after) = rest.strip_prefix("=2C") {
                    out.push(',');
                    rest = after;
                } else if let Some(after) = rest.strip_prefix("=3D") {
                    out.push('=');
                    rest = after;
                } else {
                    return None;
                }
            }
            ',' | '\0' => return None,
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{escape, unescape};

    #[test]
    fn round_trips() {
        for name in ["user", "a,b", "a=b", "=,=,", "ünïcödé", "=2C"] {
            assert_eq!(unescape(&escape(name)).as_deref(), Some(name));
        }
        assert_eq!(escape("a,b=c"), "a=2Cb=3Dc");
    }

    #[test]
    fn rejects_bad_escapes() {
        for bad in ["", "=", "a=", "=2", "=2c", "=3d", "=41", "a,b", "a\0b"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }
}
