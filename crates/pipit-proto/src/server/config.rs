//! What the server core needs to know, shared by every connection.

use std::sync::Arc;

use crate::server::sm::SmConfig;
use crate::xml::Limits;

/// What happens when a client binds a resource that another session of the same
/// account holds. Announced a priori inside the bind stream feature (see
/// [`crate::server::BIND_POLICY_NS`]) so a pipelining client knows the outcome
/// before it sends its bind request (founding mail; DESIGN.md rule 6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// The new session takes the resource; the old one gets a `<conflict/>` stream error.
    #[default]
    Replace,
    /// The new bind request fails with a `<conflict/>` stanza error.
    Refuse,
    /// The new session gets another resource, reported in the bind result.
    Rename,
}

impl ConflictPolicy {
    /// The name used in configuration and in the bind feature.
    pub fn name(self) -> &'static str {
        match self {
            ConflictPolicy::Replace => "replace",
            ConflictPolicy::Refuse => "refuse",
            ConflictPolicy::Rename => "rename",
        }
    }

    /// Parses a configuration value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "replace" => Some(ConflictPolicy::Replace),
            "refuse" => Some(ConflictPolicy::Refuse),
            "rename" => Some(ConflictPolicy::Rename),
            _ => None,
        }
    }
}

/// Shared configuration of the server protocol core.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Domains served here, prepared (lowercase); the first is the default for a
    /// stream header without `to`.
    pub domains: Vec<String>,
    /// The rustls configuration used for STARTTLS and Direct TLS.
    pub tls: Arc<rustls::ServerConfig>,
    /// RFC 5929 `tls-server-end-point` data: the hash of our certificate, chosen by
    /// its signature algorithm. `None` disables that channel-binding type.
    pub end_point_hash: Option<Vec<u8>>,
    /// The resource conflict policy.
    pub conflict_policy: ConflictPolicy,
    /// XML size limits.
    pub limits: Limits,
    /// The iteration count new accounts get; SCRAM decoys for unknown users use it
    /// too, so they look like real accounts.
    pub scram_iterations: u32,
    /// A server-wide random secret from which decoy salts for unknown users are
    /// derived, stable per username, so that SCRAM does not reveal which accounts
    /// exist.
    pub decoy_secret: [u8; 32],
    /// XEP-0198 stream management: resumption time, queue bound, ack cadence.
    pub stream_management: SmConfig,
}

impl ServerConfig {
    /// Whether `domain` (prepared) is served here.
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d == domain)
    }
}
