//! SASL mechanisms (RFC 4422): PLAIN (RFC 4616) and SCRAM (RFC 5802, RFC 7677), sans-IO.
//!
//! Bytes in, bytes and [`Step`]s out: no I/O, clock or randomness. Nonces and salts are
//! arguments, base64 and the authzid-vs-account check belong to the XMPP layer, and
//! [`SaslError::condition`] is the RFC 6120 §6.5 failure condition.
//!
//! Layout: [`ServerSession`] (server.rs) drives one exchange, delegating to plain.rs and
//! scram_server.rs; [`ScramClient`] is the client side; the SCRAM grammar lives in
//! scram_message.rs and gs2.rs, the key schedule in hash.rs, stored keys in credentials.rs.
//! downgrade.rs adds XEP-0474's `h` attribute to SCRAM; ht.rs holds the HT-* mechanisms
//! FAST (XEP-0484) uses ([`HtServer`], [`ht_initial_response`]), kept apart from
//! [`Mechanism`] because they are advertised only inside `<fast/>`.
//!
//! ```
//! use pipit_proto::sasl::{ChannelBindingInfo, Mechanism, ScramClient, ServerSession, Step,
//!     StoredCredentials};
//!
//! let creds = StoredCredentials::derive("pencil", b"0123456789abcdef", 4096)?;
//! let mut client =
//!     ScramClient::new(Mechanism::ScramSha256, "user", "pencil", None, "cnonce", None, false)?;
//! let cb = ChannelBindingInfo::default();
//! let (mut server, step) =
//!     ServerSession::start(Mechanism::ScramSha256, Some(&client.client_first()), &cb)?;
//! assert_eq!(step, Step::NeedCredentials { username: "user".into(), authzid: None });
//! let Step::Challenge(server_first) = server.credentials(Some(&creds), "snonce")? else {
//!     unreachable!()
//! };
//! let client_final = client.handle_server_first(&server_first)?;
//! let Step::Success { additional_data: Some(server_final) } = server.respond(&client_final)?
//! else {
//!     unreachable!()
//! };
//! client.verify_server_final(&server_final)?;
//! # Ok::<(), pipit_proto::sasl::SaslError>(())
//! ```

mod channel_binding;
mod credentials;
mod decoy;
mod downgrade;
mod error;
mod gs2;
mod hash;
mod ht;
mod mechanism;
mod plain;
mod prep;
mod saslname;
mod scram_client;
mod scram_message;
mod scram_server;
mod server;

#[cfg(test)]
mod tests;

pub use channel_binding::{ChannelBindingInfo, ChannelBindingType, end_point_hash};
pub(crate) use credentials::{SCRAM_UPGRADE_TASKS, salted_password};
pub use credentials::{ScramKeys, StoredCredentials};
pub use error::SaslError;
pub(crate) use hash::ScramHash;
pub use ht::{
    HT_TOKEN_MIN_LEN, HtMechanism, HtServer, HtTokenKey, ht_initial_response, ht_token_string,
    ht_verify_server,
};
pub use mechanism::Mechanism;
pub use plain::plain_initial_response;
pub use scram_client::ScramClient;
pub use server::{ServerSession, Step};
