//! Why a client login or session ended.

use crate::sasl::SaslError;
use crate::xml::XmlError;

/// A client-side failure, with the server's own condition where it sent one.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// TLS failed (certificate, handshake, or a corrupt record).
    #[error("TLS: {0}")]
    Tls(String),
    /// The server's XML was malformed.
    #[error("server sent bad XML: {0}")]
    Xml(#[from] XmlError),
    /// The server does not offer STARTTLS, and we never log in without TLS.
    #[error("the server does not offer STARTTLS")]
    NoStartTls,
    /// No mechanism both sides support (or the one asked for is not offered).
    #[error("no usable SASL mechanism (offered: {0})")]
    NoMechanism(String),
    /// A FAST login needs a token, and no earlier login got one from this server.
    #[error("no FAST token for this server: log in once with sasl2 first")]
    NoFastToken,
    /// An `sm-resume` login needs a session an earlier login left resumable.
    #[error(
        "no resumable session saved for this server: log in with SASL2 and leave the session detached first"
    )]
    NoSmSession,
    /// Authentication failed with this RFC 6120 §6.5 condition.
    #[error("authentication failed: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    AuthFailed {
        /// The failure condition.
        condition: String,
        /// The server's explanation, if any.
        text: Option<String>,
    },
    /// Our side of SASL failed (a bad server signature: the server is not who it
    /// claims, or a broken server-first message).
    #[error("SASL: {0}")]
    Sasl(#[from] SaslError),
    /// Resource binding failed with this stanza error condition.
    #[error("resource binding failed: {0}")]
    Bind(String),
    /// The server ended the stream with this RFC 6120 §4.9.3 condition.
    #[error("stream error: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Stream {
        /// The condition.
        condition: String,
        /// The server's explanation, if any.
        text: Option<String>,
    },
    /// The server sent something the protocol does not allow here.
    #[error("unexpected from the server: {0}")]
    Unexpected(String),
    /// The connection closed before the session was usable.
    #[error("the server closed the connection")]
    ConnectionClosed,
}
