//! The one error type of the XML layer, mapped to RFC 6120 §4.9.3 stream error conditions.

/// Why a stream could not be parsed. Every error is fatal: once
/// [`StreamParser::next_event`](super::StreamParser::next_event) fails, it keeps returning
/// the same error.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlError {
    /// Syntax, namespace, entity, character or UTF-8 error (RFC 6120 §4.9.3.13 `<not-well-formed/>`).
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// A DTD, comment, processing instruction or entity declaration (RFC 6120 §11.1, §4.9.3.18 `<restricted-xml/>`).
    #[error("restricted XML: {0}")]
    Restricted(String),
    /// An encoding other than UTF-8 was declared or sniffed (RFC 6120 §11.6, §4.9.3.22 `<unsupported-encoding/>`).
    #[error("unsupported encoding: {0}")]
    UnsupportedEncoding(String),
    /// A top-level element, or the stream header, passed its byte limit (RFC 6120 §4.9.3.14 `<policy-violation/>`).
    #[error("more than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// Elements nested deeper than the limit (RFC 6120 §4.9.3.14 `<policy-violation/>`).
    #[error("elements nested deeper than {limit}")]
    TooDeep {
        /// The maximum depth that was exceeded.
        limit: usize,
    },
    /// A start tag with more attributes than the limit (RFC 6120 §4.9.3.14 `<policy-violation/>`).
    #[error("more than {limit} attributes on one element")]
    TooManyAttributes {
        /// The maximum attribute count that was exceeded.
        limit: usize,
    },
}

impl XmlError {
    /// The RFC 6120 §4.9.3 stream error condition element name to send before closing.
    pub fn condition(&self) -> &'static str {
        match self {
            XmlError::NotWellFormed(_) => "not-well-formed",
            XmlError::Restricted(_) => "restricted-xml",
            XmlError::UnsupportedEncoding(_) => "unsupported-encoding",
            XmlError::TooLarge { .. }
            | XmlError::TooDeep { .. }
            | XmlError::TooManyAttributes { .. } => "policy-violation",
        }
    }
}

/// Shorthand for [`XmlError::NotWellFormed`].
pub(super) fn not_well_formed(why: impl Into<String>) -> XmlError {
    XmlError::NotWellFormed(why.into())
}

/// Shorthand for [`XmlError::Restricted`].
pub(super) fn restricted(why: impl Into<String>) -> XmlError {
    XmlError::Restricted(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_rfc_6120() {
        assert_eq!(not_well_formed("x").condition(), "not-well-formed");
        assert_eq!(restricted("x").condition(), "restricted-xml");
        assert_eq!(
            XmlError::UnsupportedEncoding("UTF-16".into()).condition(),
            "unsupported-encoding"
        );
        assert_eq!(
            XmlError::TooLarge { limit: 1 }.condition(),
            "policy-violation"
        );
        assert_eq!(
            XmlError::TooDeep { limit: 1 }.condition(),
            "policy-violation"
        );
        assert_eq!(
            XmlError::TooManyAttributes { limit: 1 }.condition(),
            "policy-violation"
        );
    }
}
