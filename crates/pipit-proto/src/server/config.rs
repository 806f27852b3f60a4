//! What the server core needs to know, shared by every connection.

use std::collections::HashMap;
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
    /// RFC 5929 `tls-server-end-point` data: the hash of the certificate each
    /// connection is served, which depends on its SNI when domains have their own.
    pub end_point_hashes: EndPointHashes,
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

/// RFC 5929 `tls-server-end-point` data for every certificate the server serves: the
/// hash (chosen by the signature algorithm) of the one picked for the name a client
/// sends in SNI (RFC 6066 §3), and of the default one for no SNI or another name.
/// Channel binding is only right with the hash of the certificate this very
/// connection got, so the driver's certificate resolver and this map must pick
/// alike: both key names by [`server_name_key`]. No hash disables that
/// channel-binding type (and HT-SHA-256-ENDP) for the connections concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndPointHashes {
    /// For connections without SNI, or with a name that has no certificate of its own.
    pub default: Option<Vec<u8>>,
    /// For a name with its own certificate, keyed by [`server_name_key`].
    pub by_name: HashMap<String, Option<Vec<u8>>>,
}

impl EndPointHashes {
    /// One certificate for every name.
    pub fn single(hash: Option<Vec<u8>>) -> Self {
        EndPointHashes {
            default: hash,
            by_name: HashMap::new(),
        }
    }

    /// The hash for a connection whose client sent `server_name` in SNI.
    pub fn for_server_name(&self, server_name: Option<&str>) -> Option<&[u8]> {
        server_name
            .and_then(|name| self.by_name.get(&server_name_key(name)))
            .unwrap_or(&self.default)
            .as_deref()
    }
}

/// How an SNI name is compared with a domain: DNS names are case-insensitive, and
/// a trailing dot names the same host (RFC 6066 §3 sends it without; be lenient).
pub fn server_name_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_the_server_name() {
        let mut hashes = EndPointHashes::single(Some(vec![1]));
        hashes
            .by_name
            .insert("chat.example.org".into(), Some(vec![2]));
        hashes.by_name.insert("nohash.example.org".into(), None);
        assert_eq!(hashes.for_server_name(None), Some(&[1u8][..]));
        assert_eq!(hashes.for_server_name(Some("other.org")), Some(&[1u8][..]));
        assert_eq!(
            hashes.for_server_name(Some("Chat.Example.ORG.")),
            Some(&[2u8][..])
        );
        assert_eq!(hashes.for_server_name(Some("nohash.example.org")), None);
    }
}
