//! A real Pipit server on loopback port 0 (SQLite in a temporary directory, the
//! test PKI) with the user alice, and client options that trust it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use pipit_client::xml::{Element, ns};
use pipit_client::{LoginOptions, Mechanism, Mode, Report, Session, State, TlsSettings};
use pipit_proto::sasl::StoredCredentials;
use pipit_server::{Config, Server, Settings};
use pipit_testkit::pki;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "pencil";
pub const ALICE: &str = "alice@localhost";

/// A running server, stopped on [`stop`](Self::stop) or when the runtime ends.
pub struct TestServer {
    pub c2s: SocketAddr,
    pub direct_tls: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &pki().leaf_pem).unwrap();
        std::fs::write(&key, &pki().leaf_key_pem).unwrap();
        let settings = Settings {
            data_dir: Some(dir.path().to_path_buf()),
            c2s_addr: Some("127.0.0.1:0".parse().unwrap()),
            direct_tls_addr: Some("127.0.0.1:0".parse().unwrap()),
            cert: Some(cert),
            key: Some(key),
            ..Settings::default()
        };
        let server = Server::bind(Config::resolve(settings).unwrap())
            .await
            .unwrap();
        let creds = StoredCredentials::derive(PASSWORD, b"0123456789abcdef", 4096).unwrap();
        server
            .context()
            .store
            .create_user("alice", "localhost", &creds)
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel();
        let c2s = server.c2s_addr();
        let direct_tls = server.direct_tls_addr();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            c2s,
            direct_tls,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// Login options for alice on this server, trusting only the test CA.
    pub fn options(
        &self,
        mode: Mode,
        mechanism: Option<Mechanism>,
        tls: &TlsSettings,
        state: &State,
    ) -> LoginOptions {
        let mut options = LoginOptions::new(ALICE, PASSWORD).unwrap();
        options.server = self.c2s.to_string();
        options.direct_tls = self.direct_tls.to_string();
        options.mode = mode;
        options.mechanism = mechanism;
        options.tls = tls.clone();
        options.state = state.clone();
        options.timeout = Duration::from_secs(20);
        options
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// TLS settings trusting only the test CA, with a fresh session cache.
pub fn trusting_test_ca() -> TlsSettings {
    TlsSettings::builder()
        .without_public_roots()
        .add_ca(pki().ca.clone())
        .unwrap()
        .build()
        .unwrap()
}

/// `<presence/>` and a message to one's own bare JID: with a pipelined login they
/// ride in the bind request's flight.
pub fn self_message(id: &str) -> Vec<Element> {
    vec![
        Element::new("presence", ns::CLIENT),
        Element::new("message", ns::CLIENT)
            .with_attr("to", ALICE)
            .with_attr("type", "chat")
            .with_attr("id", id)
            .with_child(Element::new("body", ns::CLIENT).with_text("to me")),
    ]
}

/// Logs in with the self-message pipelined, waits for it to come back, closes.
/// Returns the report and when the message arrived.
pub async fn login_and_echo(mut options: LoginOptions) -> (Report, Duration) {
    options.initial_stanzas = self_message("echo-1");
    let mut session = Session::login(&options).await.unwrap();
    let arrived = loop {
        let stanza = session
            .next_stanza(Duration::from_secs(10))
            .await
            .unwrap()
            .expect("the stream stays open");
        if stanza.name() == "message" && stanza.attr("id") == Some("echo-1") {
            assert_ne!(stanza.attr("type"), Some("error"), "{stanza}");
            break session.last_arrival().unwrap();
        }
    };
    let report = session.report().clone();
    session.close().await.unwrap();
    (report, arrived)
}
