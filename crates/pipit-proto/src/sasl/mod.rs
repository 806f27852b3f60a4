//! SASL mechanisms (RFC 4422): PLAIN (RFC 4616) and SCRAM (RFC 5802, RFC 7677), sans-IO.

mod credentials;

pub use credentials::{ScramKeys, StoredCredentials};
