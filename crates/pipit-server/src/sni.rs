//! Certificate choice by Server Name Indication: each served domain may have its
//! own certificate, picked by the name the client puts in the ClientHello.
//!
//! XEP-0368 §3 has a Direct TLS client set SNI (RFC 6066 §3) to the domain of its
//! JID, and RFC 6120 §13.7.2 has it verify our certificate against that domain, so
//! the name in the ClientHello says which certificate will pass. STARTTLS clients
//! send it too, and the same resolver serves both listeners.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use pipit_proto::server::{EndPointHashes, server_name_key};
use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Picks a certificate by SNI: a domain's own when one is configured for the name
/// sent, the default otherwise.
///
/// No SNI, or a name without a certificate of its own, gets the default rather
/// than a refused handshake: older clients and connections to an IP literal send
/// no SNI (RFC 6066 §3 allows no address there), refusing them would lock them
/// out, and it gives nothing away, since the client checks whatever it gets
/// against its own domain (RFC 6120 §13.7.2) and walks away from a mismatch.
///
/// rustls calls this on every handshake, resumed ones included, and resumes a
/// session only under the SNI it began with, so a ticket issued behind one
/// domain's certificate never resumes under another's name.
pub struct SniResolver {
    default: Arc<CertifiedKey>,
    by_domain: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    /// A resolver that serves `default` to every name until [`add`](Self::add)
    /// gives a domain its own.
    pub fn new(default: CertifiedKey) -> Self {
        SniResolver {
            default: Arc::new(default),
            by_domain: HashMap::new(),
        }
    }

    /// Serves `key` to clients that ask for `domain`. The certificate must name the
    /// domain (a DNS name in its subjectAltName, wildcards as RFC 6125 §6.4.3 has
    /// them), or every client asking for it would reject it.
    pub fn add(&mut self, domain: &str, key: CertifiedKey) -> Result<(), NotCovered> {
        if !covers(&key, domain) {
            return Err(NotCovered);
        }
        self.by_domain
            .insert(server_name_key(domain), Arc::new(key));
        Ok(())
    }

    /// The `tls-server-end-point` hash (RFC 5929 §4.1) of the leaf each name is
    /// served, keyed as [`pick`](Self::pick) keys names, for the protocol core to
    /// bind each connection to the certificate it really got.
    pub fn end_point_hashes(&self) -> EndPointHashes {
        let hash = |key: &CertifiedKey| key.cert.first().and_then(crate::tls::end_point_hash);
        EndPointHashes {
            default: hash(&self.default),
            by_name: self
                .by_domain
                .iter()
                .map(|(name, key)| (name.clone(), hash(key)))
                .collect(),
        }
    }

    /// The certificate for `server_name`, the SNI if the client sent one.
    fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        server_name
            .and_then(|name| self.by_domain.get(&server_name_key(name)))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.pick(client_hello.server_name())))
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut domains: Vec<_> = self.by_domain.keys().collect();
        domains.sort();
        f.debug_struct("SniResolver")
            .field("domains", &domains)
            .finish_non_exhaustive()
    }
}

/// The certificate does not name the domain it was configured for.
#[derive(Debug, PartialEq, Eq)]
pub struct NotCovered;

/// Whether the leaf of `key` is valid for `domain` as a DNS-ID (RFC 6120
/// §13.7.1.2), checked as a client's verifier checks it.
fn covers(key: &CertifiedKey, domain: &str) -> bool {
    let Ok(name) = ServerName::try_from(server_name_key(domain)) else {
        return false;
    };
    key.cert
        .first()
        .and_then(|leaf| ParsedCertificate::try_from(leaf).ok())
        .is_some_and(|leaf| rustls::client::verify_server_name(&leaf, &name).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    fn key_for(names: &[&str]) -> CertifiedKey {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names).unwrap();
        let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der()).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        CertifiedKey::from_der(vec![generated.cert.der().clone()], key, &provider).unwrap()
    }

    fn leaf_of(key: &CertifiedKey) -> CertificateDer<'static> {
        key.cert[0].clone()
    }

    #[test]
    fn names_pick_their_certificate_without_case_or_trailing_dot() {
        let (default, a) = (key_for(&["localhost"]), key_for(&["a.test"]));
        let (default_leaf, a_leaf) = (leaf_of(&default), leaf_of(&a));
        let mut resolver = SniResolver::new(default);
        resolver.add("a.test", a).unwrap();
        for name in ["a.test", "A.Test", "a.test."] {
            assert_eq!(resolver.pick(Some(name)).cert[0], a_leaf, "{name}");
        }
        assert_eq!(resolver.pick(Some("b.test")).cert[0], default_leaf);
        assert_eq!(resolver.pick(None).cert[0], default_leaf);
    }

    #[test]
    fn a_certificate_must_name_its_domain() {
        let mut resolver = SniResolver::new(key_for(&["localhost"]));
        assert_eq!(
            resolver.add("b.test", key_for(&["a.test"])),
            Err(NotCovered)
        );
        resolver.add("chat.b.test", key_for(&["*.b.test"])).unwrap();
    }

    #[test]
    fn each_name_gets_the_end_point_hash_of_its_own_leaf() {
        let default = key_for(&["localhost"]);
        let default_hash = crate::tls::end_point_hash(&default.cert[0]);
        let b = key_for(&["b.test"]);
        let b_hash = crate::tls::end_point_hash(&b.cert[0]);
        let mut resolver = SniResolver::new(default);
        resolver.add("B.test", b).unwrap();
        let hashes = resolver.end_point_hashes();
        assert!(default_hash.is_some() && b_hash.is_some() && default_hash != b_hash);
        assert_eq!(hashes.for_server_name(None), default_hash.as_deref());
        assert_eq!(
            hashes.for_server_name(Some("a.test")),
            default_hash.as_deref()
        );
        assert_eq!(hashes.for_server_name(Some("b.test.")), b_hash.as_deref());
    }
}
