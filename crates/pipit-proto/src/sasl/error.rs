//! The one error type of the SASL layer, mapped to RFC 6120 §6.5 failure conditions.

/// Why a SASL exchange failed. Once a [`ServerSession`](super::ServerSession) fails, it
/// keeps returning the same error.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslError {
    /// The client aborted the exchange (RFC 6120 §6.5.1 `<aborted/>`).
    #[error("authentication aborted")]
    Aborted,
    /// The decoded data is not valid UTF-8 (RFC 6120 §6.5.2 `<incorrect-encoding/>`).
    #[error("incorrect encoding")]
    IncorrectEncoding,
    /// The authorization identity is badly formatted (RFC 6120 §6.5.6 `<invalid-authzid/>`).
    #[error("invalid authorization identity")]
    InvalidAuthzid,
    /// The mechanism is not usable here, e.g. -PLUS without channel binding (RFC 6120 §6.5.7).
    #[error("invalid mechanism")]
    InvalidMechanism,
    /// The message does not follow the mechanism's grammar (RFC 6120 §6.5.8 `<malformed-request/>`).
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// Wrong password, unknown user or failed channel binding (RFC 6120 §6.5.10 `<not-authorized/>`).
    #[error("not authorized")]
    NotAuthorized,
    /// The caller passed unusable input (bad nonce, zero iterations, call out of order); RFC 6120 §6.5.11.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// A password or username was rejected by SASLprep (RFC 4013), or is empty after it.
    #[error("string rejected by SASLprep")]
    SaslPrep,
    /// Client side: the server's `v=` signature is wrong, so the server does not know the password.
    #[error("server signature mismatch")]
    ServerSignatureMismatch,
    /// Client side: the server answered with `e=<value>` (RFC 5802 §7 `server-error`).
    #[error("server error: {0}")]
    ServerError(String),
    /// Client side: a server message does not follow the SCRAM grammar or changed our nonce.
    #[error("invalid server message: {0}")]
    InvalidServerMessage(String),
    /// Client side: XEP-0474's hash of the advertised mechanisms and channel-binding types
    /// does not match what we saw (someone changed the features), or is missing where required.
    #[error("SASL downgrade detected (XEP-0474)")]
    DowngradeDetected,
}

impl SaslError {
    /// The RFC 6120 §6.5 condition element name to send in `<failure/>`.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslError::Aborted => "aborted",
            SaslError::IncorrectEncoding => "incorrect-encoding",
            SaslError::InvalidAuthzid => "invalid-authzid",
            SaslError::InvalidMechanism => "invalid-mechanism",
            SaslError::MalformedRequest(_) => "malformed-request",
            // A fault on our side, not the client's: RFC 6120 §6.5.11.
            SaslError::Internal(_) => "temporary-auth-failure",
            SaslError::NotAuthorized
            | SaslError::SaslPrep
            | SaslError::ServerSignatureMismatch
            | SaslError::ServerError(_)
            | SaslError::InvalidServerMessage(_)
            | SaslError::DowngradeDetected => "not-authorized",
        }
    }

    /// Shorthand for [`SaslError::MalformedRequest`].
    pub(crate) fn malformed(reason: &str) -> Self {
        SaslError::MalformedRequest(reason.to_owned())
    }

    /// Shorthand for [`SaslError::InvalidServerMessage`].
    pub(crate) fn bad_server(reason: &str) -> Self {
        SaslError::InvalidServerMessage(reason.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::SaslError;

    #[test]
    fn conditions_match_rfc6120() {
        assert_eq!(SaslError::Aborted.condition(), "aborted");
        assert_eq!(
            SaslError::IncorrectEncoding.condition(),
            "incorrect-encoding"
        );
        assert_eq!(SaslError::InvalidAuthzid.condition(), "invalid-authzid");
        assert_eq!(SaslError::InvalidMechanism.condition(), "invalid-mechanism");
        assert_eq!(SaslError::malformed("x").condition(), "malformed-request");
        assert_eq!(SaslError::NotAuthorized.condition(), "not-authorized");
        assert_eq!(
            SaslError::Internal("x").condition(),
            "temporary-auth-failure"
        );
        assert_eq!(
            SaslError::ServerSignatureMismatch.condition(),
            "not-authorized"
        );
    }
}
