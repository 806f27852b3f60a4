//! SASLprep (RFC 4013) as the mechanisms use it: a failed or empty result is a failure.

/// Prepares a username or password; `None` if SASLprep rejects it or leaves nothing.
pub(crate) fn saslprep(s: &str) -> Option<String> {
    let prepared = stringprep::saslprep(s).ok()?;
    // RFC 4616 §4 and RFC 5802 §5.1: an empty prepared string fails like a prohibited one.
    (!prepared.is_empty()).then(|| prepared.into_owned())
}

#[cfg(test)]
mod tests {
    use super::saslprep;

    #[test]
    fn rfc4013_section3_examples() {
        assert_eq!(saslprep("I\u{00AD}X").as_deref(), Some("IX"));
        assert_eq!(saslprep("user").as_deref(), Some("user"));
        assert_eq!(saslprep("USER").as_deref(), Some("USER"));
        assert_eq!(saslprep("\u{00AA}").as_deref(), Some("a"));
        assert_eq!(saslprep("\u{2168}").as_deref(), Some("IX"));
        assert_eq!(saslprep("\u{0007}"), None);
        assert_eq!(saslprep("\u{0627}\u{0031}"), None);
    }

    #[test]
    fn empty_after_mapping_fails() {
        assert_eq!(saslprep(""), None);
        assert_eq!(saslprep("\u{00AD}"), None);
    }

    #[test]
    fn non_ascii_space_maps_to_space() {
        assert_eq!(saslprep("a\u{00A0}b").as_deref(), Some("a b"));
    }
}
