//! TLS client configurations for the probe: what to trust, which versions, ALPN, and a
//! session store that counts what the server issued, so a failed resumption can say why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};

/// Where the system's CA bundle usually is (Debian/Ubuntu, Fedora/RHEL, Alpine/BSD, SUSE).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// What the probe trusts.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Certificates that chain to these roots; the string says where they came from.
    Roots(Arc<RootCertStore>, String),
    /// Any certificate (`--insecure`).
    Insecure,
}

impl Trust {
    /// `--ca FILE`, `--insecure`, or the system bundle (`SSL_CERT_FILE` first).
    pub fn load(ca: Option<&Path>, insecure: bool) -> anyhow::Result<Trust> {
        if insecure {
            return Ok(Trust::Insecure);
        }
        if let Some(path) = ca {
            let roots = read_roots(path)?;
            return Ok(Trust::Roots(
                Arc::new(roots),
                format!("certificates from {}", path.display()),
            ));
        }
        let candidates = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from));
        for path in candidates.filter(|p| p.is_file()) {
            if let Ok(roots) = read_roots(&path) {
                return Ok(Trust::Roots(
                    Arc::new(roots),
                    format!("the system CA bundle {}", path.display()),
                ));
            }
        }
        bail!("no system CA bundle found: give --ca FILE (a PEM CA or certificate) or --insecure")
    }

    /// One line for the report header.
    pub fn describe(&self) -> String {
        match self {
            Trust::Roots(_, from) => format!("trusting {from}"),
            Trust::Insecure => {
                "certificates NOT verified (--insecure): any server could be answering".into()
            }
        }
    }

    /// A client configuration for `versions`, with ALPN `xmpp-client` (XEP-0368) when
    /// `direct`, resuming sessions only through `store` (shared by every connection that
    /// uses the configuration).
    pub fn config(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        direct: bool,
        store: Option<Arc<CountingStore>>,
    ) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .expect("ring supports TLS 1.2 and 1.3");
        let mut config = match self {
            Trust::Roots(roots, _) => builder
                .with_root_certificates(Arc::clone(roots))
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth(),
        };
        if direct {
            config.alpn_protocols = vec![b"xmpp-client".to_vec()];
        }
        // Without a store, no resumption: every check then sees a first-time client.
        config.resumption = match store {
            Some(store) => Resumption::store(store),
            None => Resumption::disabled(),
        };
        Arc::new(config)
    }
}

/// Every certificate in a PEM file, as roots.
fn read_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        bail!("no usable PEM certificate in {}", path.display());
    }
    Ok(roots)
}

/// `--insecure`: accepts any certificate, but still checks the handshake signatures so
/// that TLS itself works as usual.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// rustls's in-memory session cache, counting the TLS 1.3 tickets and TLS 1.2 sessions
/// it is given.
#[derive(Debug)]
pub struct CountingStore {
    inner: ClientSessionMemoryCache,
    tickets: AtomicUsize,
    sessions: AtomicUsize,
}

impl CountingStore {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(CountingStore {
            inner: ClientSessionMemoryCache::new(32),
            tickets: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
        })
    }

    /// TLS 1.3 tickets received so far.
    pub fn tickets(&self) -> usize {
        self.tickets.load(Ordering::Relaxed)
    }

    /// TLS 1.2 sessions stored so far (by id or ticket).
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.tickets.fetch_add(1, Ordering::Relaxed);
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}
