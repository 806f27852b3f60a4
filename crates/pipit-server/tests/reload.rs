//! Certificate reload while the server runs (what `pipit serve` does on SIGHUP):
//! new connections get the new certificate and its `tls-server-end-point` hash
//! (RFC 5929 §4.1), sessions made before keep working, and a reload that fails
//! keeps the certificates served as they were.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pipit_client::{LoginOptions, Mode, Session, TlsSettings};
use pipit_proto::sasl::StoredCredentials;
use pipit_server::{Config, Reloader, Server, Settings};
use rustls::pki_types::CertificateDer;
use support::*;
use tokio::sync::oneshot;

/// A server whose certificate files the test can replace, and its reloader.
struct Reloading {
    c2s: std::net::SocketAddr,
    direct_tls: std::net::SocketAddr,
    reloader: Reloader,
    cert: PathBuf,
    key: PathBuf,
    dir: tempfile::TempDir,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Certificate B: self-signed for `localhost`, trusted by [`client_config`].
struct Other {
    der: CertificateDer<'static>,
    pem: String,
    key_pem: String,
}

fn other() -> Other {
    let generated = rcgen::generate_simple_self_signed(vec![DOMAIN.to_string()]).unwrap();
    Other {
        der: generated.cert.der().clone(),
        pem: generated.cert.pem(),
        key_pem: generated.key_pair.serialize_pem(),
    }
}

impl Reloading {
    /// Starts with the test PKI's leaf (certificate A) and users alice and bob.
    async fn start() -> Reloading {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &pki().leaf_pem).unwrap();
        std::fs::write(&key, &pki().leaf_key_pem).unwrap();
        let settings = Settings {
            data_dir: Some(dir.path().to_path_buf()),
            c2s_addr: Some("127.0.0.1:0".parse().unwrap()),
            direct_tls_addr: Some("127.0.0.1:0".parse().unwrap()),
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            ..Settings::default()
        };
        let server = Server::bind(Config::resolve(settings).unwrap())
            .await
            .unwrap();
        let creds = StoredCredentials::derive(PASSWORD, b"0123456789abcdef", 4096).unwrap();
        for user in ["alice", "bob"] {
            let store = &server.context().store;
            store.create_user(user, DOMAIN, &creds).await.unwrap();
        }
        let (stop, stopped) = oneshot::channel();
        let (c2s, direct_tls) = (server.c2s_addr(), server.direct_tls_addr());
        let reloader = server.reloader();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Reloading {
            c2s,
            direct_tls,
            reloader,
            cert,
            key,
            dir,
            stop,
            task,
        }
    }

    fn replace(&self, cert: &str, key: &str) {
        std::fs::write(&self.cert, cert).unwrap();
        std::fs::write(&self.key, key).unwrap();
    }

    /// Logs `user` in over Direct TLS with `resource` and initial presence;
    /// returns the client and the certificate it was served.
    async fn online(&self, user: &str, resource: &str) -> (WireClient, CertificateDer<'static>) {
        let mut w = WireClient::connect(self.direct_tls, None).await;
        w.client.start_tls(&client_config(), false);
        while w.client.handshaking() {
            w.flight("", |c| !c.handshaking()).await;
        }
        let login = format!(
            "{}{}{}{}{PRESENCE}",
            header(true),
            plain_auth(user, PASSWORD),
            header(false),
            bind(resource),
        );
        w.flight(&login, has("<presence")).await;
        w.client.take_text();
        let leaf = w.client.tls().peer_certificates().unwrap()[0].clone();
        (w, leaf)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Trusts the test CA (certificate A) and certificate B.
fn client_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki().ca.clone()).unwrap();
    roots.add(b().der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Certificate B, the same for the whole test process.
fn b() -> &'static Other {
    static B: std::sync::OnceLock<Other> = std::sync::OnceLock::new();
    B.get_or_init(other)
}

fn end_point_hash(leaf: &CertificateDer<'_>) -> Option<Vec<u8>> {
    pipit_server::tls::end_point_hash(leaf)
}

#[tokio::test]
async fn new_connections_get_the_new_certificate_and_old_sessions_go_on() {
    let server = Reloading::start().await;
    let (mut alice, leaf) = server.online("alice", "before").await;
    assert_eq!(leaf, pki().leaf);

    server.replace(&b().pem, &b().key_pem);
    server.reloader.reload().unwrap();

    let (mut bob, leaf) = server.online("bob", "after").await;
    assert_eq!(leaf, b().der, "a new connection gets certificate B");
    // The core binds new connections to B's hash (RFC 5929 §4.1).
    let proto = &server.reloader.current().proto;
    assert_eq!(
        proto.end_point_hashes.for_server_name(Some(DOMAIN)),
        end_point_hash(&b().der).as_deref()
    );

    // The session from before the reload is untouched, both ways.
    send(
        &mut alice,
        &message_to("bob@localhost/after", "from before"),
    )
    .await;
    expect(&mut bob, "<body>from before</body>").await;
    send(&mut bob, &message_to("alice@localhost/before", "to before")).await;
    expect(&mut alice, "<body>to before</body>").await;
    server.stop().await;
}

/// Channel-bound logins after the reload: the FAST token login binds to the
/// certificate with `tls-server-end-point` (HT-SHA-256-ENDP), which the server
/// accepts only if its hash is the new certificate's.
#[tokio::test]
async fn channel_bound_logins_work_after_a_reload() {
    let server = Reloading::start().await;
    server.replace(&b().pem, &b().key_pem);
    server.reloader.reload().unwrap();
    let b_file = server.dir.path().join("b-trust.pem");
    std::fs::write(&b_file, &b().pem).unwrap();
    let mut options = LoginOptions::new("alice@localhost", PASSWORD).unwrap();
    options.server = server.c2s.to_string();
    options.direct_tls = server.direct_tls.to_string();
    options.tls = TlsSettings::builder()
        .add_ca_file(&b_file)
        .unwrap()
        .build()
        .unwrap();
    let mut mechanisms = Vec::new();
    // The SASL2 login gets the FAST token the second one uses.
    for mode in [Mode::Sasl2, Mode::Fast] {
        options.mode = mode;
        let session = Session::login(&options)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", mode.name()));
        mechanisms.push((mode.name(), session.report().mechanism));
        session.close().await.unwrap();
    }
    assert_eq!(
        mechanisms,
        [
            ("sasl2", Some("SCRAM-SHA-256-PLUS")),
            ("fast", Some("HT-SHA-256-ENDP")),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failed_reload_keeps_the_old_certificate() {
    let server = Reloading::start().await;
    let key_of_a = pki().leaf_key_pem.clone();
    // B's certificate with A's key: the key does not belong to it.
    server.replace(&b().pem, &key_of_a);
    let err = server.reloader.reload().unwrap_err().to_string();
    assert!(err.contains("does not belong to the certificate"), "{err}");
    // An unreadable file.
    std::fs::remove_file(&server.key).unwrap();
    let err = server.reloader.reload().unwrap_err().to_string();
    assert!(err.contains(&display(&server.key)), "{err}");

    let (_alice, leaf) = server.online("alice", "desk").await;
    assert_eq!(leaf, pki().leaf, "still certificate A");
    server.stop().await;
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
