//! Stream-level errors and their mapping to RFC 6120 §4.9.3 conditions, in one place.

use crate::xml::{Element, XmlError};

/// Why a stream ends with an error. Each variant maps to exactly one RFC 6120
/// §4.9.3 condition in [`StreamError::condition`], except a failed TLS handshake,
/// after which no XMPP can be spoken at all.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The XML was malformed or broke a limit.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The stream or content namespace is not the one a client stream uses.
    #[error("invalid namespace: {0}")]
    InvalidNamespace(String),
    /// The stream header carries no version, or a major version other than 1.
    #[error("unsupported stream version")]
    UnsupportedVersion,
    /// The `to` of the stream header names no domain served here.
    #[error("host unknown: {0}")]
    HostUnknown(String),
    /// A stanza's `from` is not the session's JID (RFC 6120 §8.1.2.1).
    #[error("invalid from address")]
    InvalidFrom,
    /// A top-level element that is neither a stanza nor a nonza expected now.
    #[error("unsupported stanza type: {0}")]
    UnsupportedStanzaType(String),
    /// A known element at a time the protocol does not allow it.
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// The client did not complete its login in time.
    #[error("connection timeout")]
    ConnectionTimeout,
    /// A newer session took over this resource (RFC 6120 §7.7.2.2).
    #[error("session replaced by a new connection")]
    Conflict,
    /// The server is shutting down.
    #[error("system shutdown")]
    SystemShutdown,
    /// The TLS layer failed; the peer gets a TLS alert, not an XMPP error.
    #[error("TLS: {0}")]
    Tls(String),
    /// The client acknowledged stanzas that were never sent (XEP-0198 §4).
    #[error("handled count too high: the client acknowledged {h} stanzas of {sent} sent")]
    HandledCountTooHigh {
        /// The client's `h`.
        h: u32,
        /// Stanzas sent, modulo 2^32.
        sent: u32,
    },
    /// A limit on what the server keeps for this stream was reached.
    #[error("resource constraint: {0}")]
    ResourceConstraint(String),
}

impl StreamError {
    /// The RFC 6120 §4.9.3 condition element name, or `None` when the error cannot
    /// be reported in XMPP (a TLS failure).
    pub fn condition(&self) -> Option<&'static str> {
        Some(match self {
            StreamError::Xml(xml) => match xml {
                XmlError::Restricted(_) => "restricted-xml",
                XmlError::UnsupportedEncoding(_) => "unsupported-encoding",
                XmlError::TooLarge { .. }
                | XmlError::TooDeep { .. }
                | XmlError::TooManyAttributes { .. } => "policy-violation",
                _ => "not-well-formed",
            },
            StreamError::InvalidNamespace(_) => "invalid-namespace",
            StreamError::UnsupportedVersion => "unsupported-version",
            StreamError::HostUnknown(_) => "host-unknown",
            StreamError::InvalidFrom => "invalid-from",
            StreamError::UnsupportedStanzaType(_) => "unsupported-stanza-type",
            StreamError::PolicyViolation(_) => "policy-violation",
            StreamError::ConnectionTimeout => "connection-timeout",
            StreamError::Conflict => "conflict",
            StreamError::SystemShutdown => "system-shutdown",
            StreamError::HandledCountTooHigh { .. } => "undefined-condition",
            StreamError::ResourceConstraint(_) => "resource-constraint",
            StreamError::Tls(_) => return None,
        })
    }

    /// The application-specific condition (RFC 6120 §4.9.4) that goes with the
    /// defined one, if any.
    pub fn application_condition(&self) -> Option<Element> {
        match self {
            StreamError::HandledCountTooHigh { h, sent } => {
                Some(crate::server::sm::handled_count_too_high(*h, *sent))
            }
            _ => None,
        }
    }
}
