//! TLS settings: which certificates are trusted, and the session cache that lets a
//! later login in the same process resume.
//!
//! Resumption lives in memory only. rustls 0.23 offers no public way to serialise
//! client session tickets, so a ticket cannot go into the state file: logins resume
//! when they share one [`TlsSettings`] (clones share its cache), as `pipit login
//! --mode all` does, and a new process starts with a full handshake.

use std::path::Path;
use std::sync::Arc;

use pipit_proto::client::Mode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::Error;

/// XEP-0368 §3: the ALPN protocol a Direct TLS client offers.
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// The rustls configurations for STARTTLS and Direct TLS logins. Both share one
/// session cache, so a login resumes the TLS session an earlier one (in this
/// process) got a ticket for, whichever port either used.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    starttls: Arc<rustls::ClientConfig>,
    /// The same, offering ALPN `xmpp-client` and sending TLS 1.3 early data when a
    /// login asks to (`fast-0rtt`).
    direct: Arc<rustls::ClientConfig>,
}

impl TlsSettings {
    /// Trusts the system's CA bundle (Mozilla's roots where none is found).
    pub fn new() -> Result<TlsSettings, Error> {
        TlsSettings::builder().build()
    }

    /// Starts settings to adjust: extra CAs, no public roots, or no verification.
    pub fn builder() -> TlsBuilder {
        TlsBuilder {
            public_roots: true,
            extra: Vec::new(),
            accept_any: false,
        }
    }

    /// Uses a rustls configuration as it is for STARTTLS; Direct TLS uses a copy
    /// offering ALPN `xmpp-client` (unless it names protocols already), with TLS 1.3
    /// early data enabled, that shares its session cache.
    pub fn from_rustls(config: Arc<rustls::ClientConfig>) -> TlsSettings {
        let mut direct = (*config).clone();
        if direct.alpn_protocols.is_empty() {
            direct.alpn_protocols = vec![ALPN_XMPP_CLIENT.to_vec()];
        }
        // Only offered on a resumed session whose ticket allows it, and only used
        // by a `fast-0rtt` login (`pipit_proto::client::Mode::Fast0Rtt`).
        direct.enable_early_data = true;
        TlsSettings {
            starttls: config,
            direct: Arc::new(direct),
        }
    }

    /// The configuration a login in `mode` uses.
    pub fn rustls_config(&self, mode: Mode) -> &Arc<rustls::ClientConfig> {
        if mode.direct_tls() {
            &self.direct
        } else {
            &self.starttls
        }
    }
}

/// Where the system's CA bundle usually is (Debian/Ubuntu, Fedora/RHEL, Alpine/BSD, SUSE).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The public roots: the system bundle (`SSL_CERT_FILE` first), else Mozilla's roots
/// from `webpki-roots`; and where they came from.
fn public_roots() -> (RootCertStore, String) {
    let candidates = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from));
    for path in candidates.filter(|p| p.is_file()) {
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
            .filter_map(Result::ok)
            .collect();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added > 0 {
            return (roots, format!("the system CA bundle {}", path.display()));
        }
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    (roots, "Mozilla's roots (webpki-roots)".into())
}

/// Builds [`TlsSettings`]; see [`TlsSettings::builder`].
#[derive(Clone, Debug)]
pub struct TlsBuilder {
    public_roots: bool,
    extra: Vec<CertificateDer<'static>>,
    accept_any: bool,
}

impl TlsBuilder {
    /// Trusts only the CAs added here, not the public web PKI.
    pub fn without_public_roots(mut self) -> Self {
        self.public_roots = false;
        self
    }

    /// Trusts a CA certificate, or a server's self-signed certificate.
    pub fn add_ca(mut self, cert: CertificateDer<'static>) -> Result<Self, Error> {
        RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| Error::TlsSettings(format!("unusable CA certificate: {e}")))?;
        self.extra.push(cert);
        Ok(self)
    }

    /// Trusts every certificate in a PEM file (or the one DER certificate it holds).
    pub fn add_ca_file(mut self, path: &Path) -> Result<Self, Error> {
        let bad = |message: String| Error::TlsSettings(format!("{}: {message}", path.display()));
        let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let pem: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("bad PEM: {e}")))?;
        let certs = if pem.is_empty() {
            vec![CertificateDer::from(data)]
        } else {
            pem
        };
        for cert in certs {
            self = self
                .add_ca(cert)
                .map_err(|_| bad("holds no usable certificate (PEM or DER)".into()))?;
        }
        Ok(self)
    }

    /// DANGEROUS: accepts any certificate for any name. Anyone on the path can then
    /// read and change everything, the password included. Only for throwaway test
    /// servers; the handshake signatures are still checked.
    pub fn dangerous_accept_any_certificate(mut self) -> Self {
        self.accept_any = true;
        self
    }

    /// TLS 1.3 and 1.2 with the ring provider.
    pub fn build(self) -> Result<TlsSettings, Error> {
        let config = self.client_config(rustls::DEFAULT_VERSIONS)?;
        Ok(TlsSettings::from_rustls(Arc::new(config)))
    }

    /// A plain rustls configuration for `versions` with this trust (no ALPN, the
    /// default session cache), for callers that need to vary versions or resumption.
    pub fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<rustls::ClientConfig, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|e| Error::TlsSettings(e.to_string()))?;
        if self.accept_any {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(DangerousAcceptAnyCertificate(provider)))
                .with_no_client_auth());
        }
        let mut roots = if self.public_roots {
            public_roots().0
        } else {
            RootCertStore::empty()
        };
        for cert in &self.extra {
            roots
                .add(cert.clone())
                .map_err(|e| Error::TlsSettings(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(Error::TlsSettings("no CA certificate to trust".into()));
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }

    /// What these settings trust, in words, for reports.
    pub fn describe(&self) -> String {
        match (self.accept_any, self.public_roots, self.extra.len()) {
            (true, _, _) => {
                "certificates NOT verified (insecure): any server could be answering".into()
            }
            (false, true, 0) => format!("trusting {}", public_roots().1),
            (false, true, n) => {
                format!("trusting {} and {n} added certificate(s)", public_roots().1)
            }
            (false, false, n) => format!("trusting {n} given certificate(s) only"),
        }
    }

    /// Whether certificate verification is off.
    pub fn is_insecure(&self) -> bool {
        self.accept_any
    }
}

/// A verifier that believes every certificate (see
/// [`TlsBuilder::dangerous_accept_any_certificate`]).
#[derive(Debug)]
struct DangerousAcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for DangerousAcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_tls_offers_alpn() {
        let tls = TlsSettings::new().unwrap();
        assert!(tls.rustls_config(Mode::Stunt).alpn_protocols.is_empty());
        assert_eq!(
            tls.rustls_config(Mode::Direct).alpn_protocols,
            vec![ALPN_XMPP_CLIENT.to_vec()]
        );
        assert!(tls.rustls_config(Mode::Fast0Rtt).enable_early_data);
        assert!(!tls.rustls_config(Mode::Stunt).enable_early_data);
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = TlsSettings::builder().add_ca_file(&path).unwrap_err();
        assert!(err.to_string().contains("no usable certificate"), "{err}");
        let missing = TlsSettings::builder()
            .add_ca_file(&dir.path().join("missing.pem"))
            .unwrap_err();
        assert!(missing.to_string().contains("missing.pem"), "{missing}");
    }

    #[test]
    fn no_roots_at_all_is_an_error() {
        let err = TlsSettings::builder()
            .without_public_roots()
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::TlsSettings(_)));
    }
}
