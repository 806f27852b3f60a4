//! TLS set-up: the certificates (given, per domain, or self-signed on first start),
//! the rustls configuration with session resumption, and the `tls-server-end-point`
//! hash.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::ServerSessionMemoryCache;
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};

use crate::config::Config;
use crate::error::ServerError;
use crate::sni::{NotCovered, SniResolver};

/// ALPN protocol id for XMPP client connections (XEP-0368 §3).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a PEM certificate chain and its PEM private key, and checks that the key
/// is the one the leaf certificate was issued for.
pub fn load_key(cert: &Path, key: &Path) -> Result<CertifiedKey, ServerError> {
    let read = |p: &Path| {
        std::fs::read(p)
            .map_err(|e| ServerError::Certificate(format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Certificate(format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ServerError::Certificate(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServerError::Certificate(format!("{}: {e}", key.display())))?
        .ok_or_else(|| {
            ServerError::Certificate(format!("{} holds no PEM private key", key.display()))
        })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| match e {
        TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            ServerError::Certificate(format!(
                "the key in {} does not belong to the certificate in {}: give the key the \
                 certificate was issued for",
                key.display(),
                cert.display()
            ))
        }
        e => ServerError::Certificate(format!("{}: {e}", key.display())),
    })
}

/// The certificate resolver for `config`: the operator's `cert`/`key` as the
/// default (or the self-signed one, covering every served domain), and each
/// `[[certificates]]` entry for its domain, every file checked now rather than at
/// the first handshake.
pub fn resolver(config: &Config) -> Result<SniResolver, ServerError> {
    let (cert, key) = match &config.cert {
        Some((c, k)) => (c.clone(), k.clone()),
        None => self_signed(&config.data_dir, &config.domains)?,
    };
    let mut resolver = SniResolver::new(load_key(&cert, &key)?);
    for entry in &config.certificates {
        let key = load_key(&entry.cert, &entry.key)?;
        resolver.add(&entry.domain, key).map_err(|NotCovered| {
            ServerError::Certificate(format!(
                "{} is not valid for {}: its subjectAltName has no DNS name matching the \
                 domain (RFC 6120 §13.7.1.2); give a certificate issued for {}",
                entry.cert.display(),
                entry.domain,
                entry.domain
            ))
        })?;
    }
    Ok(resolver)
}

/// The self-signed certificate in `DATA_DIR/tls/`, generated on first start (ECDSA
/// P-256) and again whenever the served domains change.
pub fn self_signed(data_dir: &Path, domains: &[String]) -> Result<(PathBuf, PathBuf), ServerError> {
    let dir = data_dir.join("tls");
    let cert = dir.join("selfsigned-cert.pem");
    let key = dir.join("selfsigned-key.pem");
    let stamp = dir.join("selfsigned-domains");
    let wanted = domains.join("\n");
    let current = std::fs::read_to_string(&stamp).ok();
    if current.as_deref() == Some(wanted.as_str()) && cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir)?;
    let mut names = domains.to_vec();
    names.extend(domains.iter().map(|d| format!("*.{d}")));
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServerError::Certificate(format!("cannot generate: {e}")))?;
    std::fs::write(&cert, generated.cert.pem())?;
    write_private(&key, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&stamp, wanted)?;
    Ok((cert, key))
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

/// How many resumable TLS sessions the server keeps: each TLS 1.3 connection leaves
/// two tickets, each a few hundred bytes; the oldest go first.
const SESSION_CACHE_ENTRIES: usize = 64 * 1024;

/// The most TLS 1.3 early data a client may send: a stream header and a FAST
/// `<authenticate/>` need about 1 KiB. rustls fails a handshake that brings more.
pub const MAX_EARLY_DATA: u32 = 16 * 1024;

/// The rustls server configuration: TLS 1.3 and 1.2, resumption on by default, TLS
/// 1.3 early data (0-RTT) for FAST logins, ALPN `xmpp-client`, the certificate
/// chosen by SNI.
///
/// Resumption is stateful: tickets (TLS 1.3) and session ids (TLS 1.2) name entries
/// of an in-memory session store. rustls takes early data only on sessions resumed
/// that way, because each ticket is then good once (RFC 8446 §8.1), which stops a
/// replayed first flight from being resumed on this server at all. What may be
/// acted on in early data is the protocol core's business (DESIGN.md rule 7,
/// `pipit_proto::server`): a FAST authentication whose count the store checks.
pub fn server_config(resolver: SniResolver) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServerError::Certificate(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.max_early_data_size = MAX_EARLY_DATA;
    // The answer to a 0-RTT login (features, SASL2 success, Bind2) goes out with the
    // server's handshake flight, before the client's Finished: that is what makes
    // it two round trips, not three. It is encrypted for whoever holds the resumed
    // session's keys, so a replayer of the client's flight cannot read it, and
    // without early data there is nothing to send before the Finished.
    config.send_half_rtt_data = true;
    config.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
    Ok(Arc::new(config))
}

/// RFC 5929 §4.1: `tls-server-end-point` data for our certificate (see
/// [`pipit_proto::sasl::end_point_hash`]); `None` disables that binding type.
pub fn end_point_hash(leaf: &CertificateDer<'_>) -> Option<Vec<u8>> {
    pipit_proto::sasl::end_point_hash(leaf.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_again_for_new_domains() {
        let dir = tempfile::tempdir().unwrap();
        let domains = vec!["localhost".to_string()];
        let (cert, key) = self_signed(dir.path(), &domains).unwrap();
        let first = std::fs::read(&cert).unwrap();
        self_signed(dir.path(), &domains).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first, "reused on restart");
        let key = load_key(&cert, &key).unwrap();
        assert_eq!(end_point_hash(&key.cert[0]).map(|h| h.len()), Some(32));
        server_config(SniResolver::new(key)).unwrap();
        self_signed(dir.path(), &["example.org".to_string()]).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), first, "new domain, new cert");
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let err = load_key(Path::new("/nonexistent/c.pem"), Path::new("/k.pem"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/c.pem"), "{err}");
    }
}
