//! Errors of the server's driver layer (configuration, certificates, sockets, store).

/// Why the server could not start or serve.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// A configuration value is wrong; the message says which and how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// The certificate or key could not be read, generated or used.
    #[error("TLS certificate: {0}")]
    Certificate(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] pipit_store::StoreError),
    /// Another I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
