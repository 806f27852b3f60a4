//! Sans-IO XMPP protocol core for Pipit.
//!
//! Nothing in this crate touches a socket, a clock or a random number generator:
//! bytes go in, bytes and events come out, and time and randomness are passed in
//! by the driver (the tokio server in `pipit-server`, or a test).

pub mod client;
pub mod datetime;
pub mod error;
pub mod jid;
pub mod random;
pub mod roster;
pub mod sasl;
pub mod server;
pub mod stanza;
mod transport;
pub mod xml;

pub use transport::TlsInfo;
