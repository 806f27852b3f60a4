//! Why a login or a session failed.

use std::path::PathBuf;
use std::time::Duration;

use pipit_proto::client::ClientError;

/// A client failure: bad options, the network, a timeout, or the protocol itself.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum Error {
    /// A login option is unusable (the JID, an address, the resource).
    #[error("{0}")]
    Options(String),
    /// The server's host name did not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// No address of the server accepted a TCP connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// The last attempt's error.
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not answer (or the login did not finish) in time.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The protocol failed: TLS, SASL, binding, a stream error, a closed connection.
    #[error(transparent)]
    Protocol(#[from] ClientError),
    /// The session is closed; nothing more can be sent.
    #[error("the session is closed")]
    Closed,
    /// The session cannot be left to resume later: the server did not grant
    /// XEP-0198 resumption (it needs SASL2 with Bind2 and stream management).
    #[error("the server did not grant stream resumption (XEP-0198) for this session")]
    NotResumable,
    /// The TLS settings are unusable (an unreadable CA file, a bad certificate).
    #[error("TLS settings: {0}")]
    TlsSettings(String),
    /// The state file could not be read or written.
    #[error("state file {}: {message}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}
