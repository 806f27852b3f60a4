//! The server side of a c2s stream (RFC 6120): stream headers, STARTTLS with stunt
//! buffering, SASL, the pipelined restart, resource binding, then stanzas.
//!
//! Everything a client pipelines is processed in order whatever read boundaries it
//! arrives in (DESIGN.md §2): see [`ServerConnection`] for the call order. What
//! arrives as TLS 1.3 early data (0-RTT) is acted on only as far as a replay of it
//! could do no harm: the stream header and one FAST authentication with a count
//! (DESIGN.md rule 7; the rules are in `early_data.rs`).

mod config;
mod connection;
mod early_data;
mod fast;
mod features;
mod sasl2;
mod scram_upgrade;
pub mod sm;

pub use config::{ConflictPolicy, EndPointHashes, ServerConfig, server_name_key};
pub use connection::{Event, Listener, ServerConnection};
pub use fast::{FastTokenRecord, TOKEN_LIFETIME_SECS};
pub use features::BIND_POLICY_NS;
pub use sm::{SmConfig, StreamManagement};
