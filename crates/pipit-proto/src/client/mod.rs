//! The client side of a c2s login (RFC 6120), on the same parser, TLS-from-buffers
//! transport and SASL code as the server: every login mode of DESIGN.md §1 that
//! needs no server extension, pipelined only on grounds an earlier login gave.

mod config;
mod connection;
mod error;
mod sm;

pub use config::{ClientConfig, FastToken, KnownServer, Mode};
pub use connection::{ClientConnection, ClientEvent};
pub use error::ClientError;
pub use sm::SmSession;
