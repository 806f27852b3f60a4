//! Certificates chosen by SNI (RFC 6066 §3, XEP-0368 §3) over real sockets, on both
//! listeners: a server for `localhost`, `a.test` and `b.test` with the test PKI's
//! leaf as the default and a certificate of their own for a.test and b.test. Each
//! name gets its own; no SNI and an unknown name get the default; sessions resume
//! (and take 0-RTT data) under their domain's certificate; a bad certificate
//! configuration stops the server at start-up with a message that says what to fix.
//!
//! The TLS client here is blocking rustls on std sockets, run off the runtime: it
//! accepts any certificate, since what it checks is which one it was given.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pipit_server::config::DomainCertificate;
use pipit_server::{Config, Server, Settings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind};
use rustls::{SignatureScheme, SupportedProtocolVersion};
use support::*;

const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;

/// A failsafe against a hung server, not a timing assertion.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Which listener a connection goes to.
#[derive(Clone, Copy, Debug)]
enum Via {
    DirectTls,
    StartTls,
}

/// The server under test and the certificates it was given.
struct Sni {
    server: TestServer,
    a: CertificateDer<'static>,
    b: CertificateDer<'static>,
    files: tempfile::TempDir,
}

impl Sni {
    async fn start() -> Sni {
        let files = tempfile::tempdir().unwrap();
        let (a, a_entry) = domain_cert(files.path(), "a.test", &["a.test"]);
        let (b, b_entry) = domain_cert(files.path(), "b.test", &["b.test"]);
        let server = TestServer::start(Settings {
            domains: Some(vec![DOMAIN.into(), "a.test".into(), "b.test".into()]),
            certificates: Some(vec![a_entry, b_entry]),
            ..Settings::default()
        })
        .await;
        Sni {
            server,
            a,
            b,
            files,
        }
    }

    fn addr(&self, via: Via) -> SocketAddr {
        match via {
            Via::DirectTls => self.server.direct_tls,
            Via::StartTls => self.server.c2s,
        }
    }
}

/// A self-signed certificate for `names`, written to `dir` as `domain`'s entry.
fn domain_cert(
    dir: &Path,
    domain: &str,
    names: &[&str],
) -> (CertificateDer<'static>, DomainCertificate) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert, key) = write_pair(
        dir,
        domain,
        &generated.cert.pem(),
        &generated.key_pair.serialize_pem(),
    );
    let entry = DomainCertificate {
        domain: domain.into(),
        cert,
        key,
    };
    (generated.cert.der().clone(), entry)
}

fn write_pair(dir: &Path, stem: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    (cert_path, key_path)
}

/// Takes whatever certificate comes, and checks the handshake signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client for one TLS version with its own session cache and early data on; use
/// it again to resume.
fn client(version: &'static SupportedProtocolVersion) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    config.enable_early_data = true;
    Arc::new(config)
}

/// A DNS name: sent as SNI. An IP address: no SNI at all, as on a connection to an
/// IP literal.
fn name(n: &str) -> ServerName<'static> {
    ServerName::try_from(n.to_owned()).unwrap()
}

fn no_sni() -> ServerName<'static> {
    ServerName::IpAddress(Ipv4Addr::LOCALHOST.into())
}

fn stream_header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{to}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    )
}

/// What one connection saw.
struct Seen {
    leaf: CertificateDer<'static>,
    resumed: bool,
    early_data_accepted: bool,
    /// The stream features after TLS.
    features: String,
}

/// Connects `via` a listener with `server_name`, opens a stream to `to` over TLS (in
/// early data when `config` holds a ticket that allows it) and reads the features.
async fn connect(
    addr: SocketAddr,
    via: Via,
    config: &Arc<ClientConfig>,
    server_name: ServerName<'static>,
    to: &'static str,
) -> Seen {
    let config = Arc::clone(config);
    tokio::task::spawn_blocking(move || connect_blocking(addr, via, config, server_name, to))
        .await
        .unwrap()
}

fn connect_blocking(
    addr: SocketAddr,
    via: Via,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    to: &str,
) -> Seen {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    if let Via::StartTls = via {
        sock.write_all(format!("{}{STARTTLS}", stream_header(to)).as_bytes())
            .unwrap();
        let mut plain = Vec::new();
        while !String::from_utf8_lossy(&plain).contains(PROCEED) {
            let mut buf = [0u8; 4096];
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "closed before <proceed/>");
            plain.extend_from_slice(&buf[..n]);
        }
    }
    let mut conn = ClientConnection::new(config, server_name).unwrap();
    let header = stream_header(to);
    if let Some(mut early) = conn.early_data()
        && early.bytes_left() >= header.len()
    {
        early.write_all(header.as_bytes()).unwrap();
    }
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    // Early data the server turned down is the client's to send again.
    let early_data_accepted = conn.is_early_data_accepted();
    if !early_data_accepted {
        conn.writer().write_all(header.as_bytes()).unwrap();
    }
    // The answer to 0-RTT data may have come with the handshake: read first.
    let mut text = String::new();
    loop {
        let mut plain = Vec::new();
        match conn.reader().read_to_end(&mut plain) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        text.push_str(&String::from_utf8_lossy(&plain));
        if text.contains("</stream:features>") {
            break;
        }
        let (read, written) = conn.complete_io(&mut sock).unwrap();
        assert!(read + written > 0, "server closed; so far: {text}");
    }
    Seen {
        leaf: conn.peer_certificates().unwrap()[0].clone(),
        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        early_data_accepted,
        features: text,
    }
}

fn valid_for(leaf: &CertificateDer<'_>, domain: &str) -> bool {
    let parsed = ParsedCertificate::try_from(leaf).unwrap();
    rustls::client::verify_server_name(&parsed, &name(domain)).is_ok()
}

async fn each_name_gets_its_certificate(via: Via) {
    let sni = Sni::start().await;
    let addr = sni.addr(via);
    for version in [TLS13, TLS12] {
        let a = connect(addr, via, &client(version), name("a.test"), "a.test").await;
        assert_eq!(a.leaf, sni.a, "{via:?}");
        assert!(valid_for(&a.leaf, "a.test"));
        // Case and the root's trailing dot do not matter (RFC 4343, RFC 6066 §3).
        let b = connect(addr, via, &client(version), name("B.Test."), "b.test").await;
        assert_eq!(b.leaf, sni.b, "{via:?}");
        assert!(valid_for(&b.leaf, "b.test"));
        assert!(!valid_for(&b.leaf, "a.test"));
    }
    sni.server.stop().await;
}

async fn other_names_get_the_default(via: Via) {
    let sni = Sni::start().await;
    let addr = sni.addr(via);
    let default = pki().leaf.clone();
    let unknown = connect(addr, via, &client(TLS13), name("c.test"), DOMAIN).await;
    assert_eq!(unknown.leaf, default, "{via:?}: unknown SNI");
    let served_but_not_own = connect(addr, via, &client(TLS13), name(DOMAIN), DOMAIN).await;
    assert_eq!(served_but_not_own.leaf, default, "{via:?}: localhost");
    for version in [TLS13, TLS12] {
        let none = connect(addr, via, &client(version), no_sni(), "a.test").await;
        assert_eq!(none.leaf, default, "{via:?}: no SNI");
    }
    sni.server.stop().await;
}

#[tokio::test]
async fn direct_tls_serves_each_domain_its_certificate() {
    each_name_gets_its_certificate(Via::DirectTls).await;
}

#[tokio::test]
async fn starttls_serves_each_domain_its_certificate() {
    each_name_gets_its_certificate(Via::StartTls).await;
}

#[tokio::test]
async fn direct_tls_without_sni_or_with_an_unknown_name_gets_the_default() {
    other_names_get_the_default(Via::DirectTls).await;
}

#[tokio::test]
async fn starttls_without_sni_or_with_an_unknown_name_gets_the_default() {
    other_names_get_the_default(Via::StartTls).await;
}

#[tokio::test]
async fn sessions_resume_under_their_domains_certificate() {
    let sni = Sni::start().await;
    for via in [Via::DirectTls, Via::StartTls] {
        let addr = sni.addr(via);
        for version in [TLS13, TLS12] {
            let config = client(version);
            let first = connect(addr, via, &config, name("a.test"), "a.test").await;
            assert!(!first.resumed);
            let again = connect(addr, via, &config, name("a.test"), "a.test").await;
            assert!(again.resumed, "{via:?} {version:?}");
            assert_eq!(again.leaf, sni.a);
            let other = connect(addr, via, &config, name("b.test"), "b.test").await;
            assert!(!other.resumed, "a.test's session is not b.test's");
            assert_eq!(other.leaf, sni.b);
        }
    }
    sni.server.stop().await;
}

#[tokio::test]
async fn zero_rtt_works_behind_a_domains_certificate() {
    let sni = Sni::start().await;
    let config = client(TLS13);
    let addr = sni.server.direct_tls;
    connect(addr, Via::DirectTls, &config, name("b.test"), "b.test").await;
    let early = connect(addr, Via::DirectTls, &config, name("b.test"), "b.test").await;
    assert!(early.resumed);
    assert!(early.early_data_accepted, "the stream header went in 0-RTT");
    assert_eq!(early.leaf, sni.b);
    assert!(early.features.contains("<mechanisms"), "{}", early.features);
    sni.server.stop().await;
}

/// `tls-server-end-point` (RFC 5929) binds to the certificate a connection got, so
/// with a certificate per domain the server must use the hash of the one the SNI
/// picked. A FAST token for HT-SHA-256-ENDP proves it: the client binds its proof
/// to b.test's certificate, on a full handshake, a resumed one and in 0-RTT, and
/// the server accepts each (it would refuse a proof bound to another certificate).
#[tokio::test]
async fn channel_binding_follows_the_domains_own_certificate() {
    use pipit_client::{LoginOptions, Mode, Session, TlsSettings};

    let sni = Sni::start().await;
    let creds =
        pipit_proto::sasl::StoredCredentials::derive(PASSWORD, b"0123456789abcdef", 4096).unwrap();
    sni.server
        .ctx
        .store
        .create_user("dora", "b.test", &creds)
        .await
        .unwrap();
    let mut options = LoginOptions::new("dora@b.test", PASSWORD).unwrap();
    options.server = sni.server.c2s.to_string();
    options.direct_tls = sni.server.direct_tls.to_string();
    options.tls = TlsSettings::builder()
        .add_ca_file(&sni.files.path().join("b.test.pem"))
        .unwrap()
        .build()
        .unwrap();
    let mut mechanisms = Vec::new();
    for mode in [Mode::Sasl2, Mode::Fast, Mode::Fast0Rtt] {
        options.mode = mode;
        let session = Session::login(&options)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", mode.name()));
        mechanisms.push((
            mode.name(),
            session.report().mechanism,
            session.report().early_data,
        ));
        session.close().await.unwrap();
    }
    assert_eq!(
        mechanisms,
        [
            ("sasl2", Some("SCRAM-SHA-256-PLUS"), false),
            ("fast", Some("HT-SHA-256-ENDP"), false),
            ("fast-0rtt", Some("HT-SHA-256-ENDP"), true),
        ]
    );
    sni.server.stop().await;
}

/// Starts a server for a.test and b.test whose only per-domain entry is `entry`;
/// returns the start-up error.
async fn refused(dir: &Path, entry: DomainCertificate) -> String {
    let settings = Settings {
        data_dir: Some(dir.join("data")),
        domains: Some(vec!["a.test".into(), "b.test".into()]),
        c2s_addr: Some("127.0.0.1:0".parse().unwrap()),
        direct_tls_addr: Some("127.0.0.1:0".parse().unwrap()),
        certificates: Some(vec![entry]),
        ..Settings::default()
    };
    match Server::bind(Config::resolve(settings).unwrap()).await {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_certificate_for_another_domain_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_, entry) = domain_cert(dir.path(), "b.test", &["a.test"]);
    let err = refused(dir.path(), entry).await;
    assert!(err.contains("b.test.pem is not valid for b.test"), "{err}");
    assert!(
        err.contains("give a certificate issued for b.test"),
        "{err}"
    );
}

#[tokio::test]
async fn a_key_of_another_certificate_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut entry) = domain_cert(dir.path(), "a.test", &["a.test"]);
    let (_, other) = domain_cert(dir.path(), "other", &["a.test"]);
    entry.key = other.key;
    let err = refused(dir.path(), entry).await;
    assert!(err.contains("the key in"), "{err}");
    assert!(
        err.contains("other.key does not belong to the certificate in"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreadable_certificate_file_is_named_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut entry) = domain_cert(dir.path(), "a.test", &["a.test"]);
    entry.cert = dir.path().join("missing.pem");
    let err = refused(dir.path(), entry).await;
    assert!(err.contains("cannot read"), "{err}");
    assert!(err.contains("missing.pem"), "{err}");
}
