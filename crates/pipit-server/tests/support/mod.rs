//! End-to-end harness: a real server on loopback port 0 with a real SQLite store,
//! a scripted client over real sockets that counts round trips, and a relay that
//! delays each direction to emulate a network round trip.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipit_proto::sasl::StoredCredentials;
use pipit_server::{Config, Context, Server, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

pub use pipit_testkit::*;

pub mod roster;

pub const PASSWORD: &str = "pencil";

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

/// A running server and what is needed to reach and stop it.
pub struct TestServer {
    pub c2s: SocketAddr,
    pub direct_tls: SocketAddr,
    pub ctx: Arc<Context>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server for `localhost` with the test PKI, users alice, bob and carol.
    pub async fn start(extra: Settings) -> TestServer {
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
        }
        .merge(extra);
        let server = Server::bind(Config::resolve(settings).unwrap())
            .await
            .unwrap();
        let creds = StoredCredentials::derive(PASSWORD, b"0123456789abcdef", 4096).unwrap();
        for user in ["alice", "bob", "carol"] {
            server
                .context()
                .store
                .create_user(user, DOMAIN, &creds)
                .await
                .unwrap();
        }
        let (stop, stopped) = oneshot::channel();
        let c2s = server.c2s_addr();
        let direct_tls = server.direct_tls_addr();
        let ctx = Arc::clone(server.context());
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            c2s,
            direct_tls,
            ctx,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    /// Stops the server and waits until every session has ended.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

/// A scripted client on a real socket. Each [`flight`](Self::flight) is one round
/// trip: the client writes everything it has, then waits for what it needs.
pub struct WireClient {
    pub stream: TcpStream,
    pub client: Client,
    pub round_trips: usize,
    started: Instant,
}

const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl WireClient {
    /// Connects; the TCP handshake is the first round trip. With `emulated_rtt`
    /// (through a [`Relay`]), the client also waits that long, as the SYN / SYN-ACK
    /// exchange would make it wait on a real network.
    pub async fn connect(addr: SocketAddr, emulated_rtt: Option<Duration>) -> WireClient {
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        if let Some(rtt) = emulated_rtt {
            tokio::time::sleep(rtt).await;
        }
        WireClient {
            stream,
            client: Client::new(),
            round_trips: 1,
            started,
        }
    }

    /// Time since connect started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sends `plaintext` (through TLS when active, with pending TLS records) and
    /// waits until `done` holds for the text received.
    pub async fn flight(&mut self, plaintext: &str, done: impl Fn(&Client) -> bool) {
        let wire = self.client.wire(plaintext.as_bytes());
        self.flight_raw(&wire, done).await;
    }

    /// Sends raw bytes and waits until `done` holds.
    pub async fn flight_raw(&mut self, wire: &[u8], done: impl Fn(&Client) -> bool) {
        self.round_trips += 1;
        self.stream.write_all(wire).await.unwrap();
        self.wait(done).await;
    }

    /// Reads until `done` holds, without sending (not a round trip of ours).
    pub async fn wait(&mut self, done: impl Fn(&Client) -> bool) {
        let mut buf = vec![0u8; 64 * 1024];
        while !done(&self.client) {
            let n = tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("timed out; so far: {}", self.client.text))
                .unwrap();
            assert!(n > 0, "server closed; so far: {}", self.client.text);
            self.client.receive(&buf[..n]);
        }
    }

    /// Reads until the server closes the connection; returns all text.
    pub async fn read_to_close(&mut self) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => self.client.receive(&buf[..n]),
                Err(_) => panic!("server did not close; so far: {}", self.client.text),
            }
        }
        self.client.take_text()
    }
}

/// Waits for `needle` in the text.
pub fn has(needle: &'static str) -> impl Fn(&Client) -> bool {
    move |c| c.text.contains(needle)
}

/// The latency relay of `pipit_client::relay` (each direction delayed by half the
/// round trip), started with the one-way delay these tests think in. Stops when
/// dropped.
pub struct Relay {
    pub addr: SocketAddr,
    _relay: pipit_client::relay::Relay,
}

impl Relay {
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> Relay {
        let relay = pipit_client::relay::Relay::start(upstream, 2 * one_way)
            .await
            .unwrap();
        Relay {
            addr: relay.addr(),
            _relay: relay,
        }
    }
}

/// Connects over Direct TLS and completes the handshake.
pub async fn connect(server: &TestServer) -> WireClient {
    let mut w = WireClient::connect(server.direct_tls, None).await;
    w.client.start_tls(&client_tls(TLS13), false);
    while w.client.handshaking() {
        w.flight("", |c| !c.handshaking()).await;
    }
    w
}

/// Logs `user` in with `resource`, sends initial presence if `available`.
pub async fn online(
    server: &TestServer,
    user: &str,
    resource: &str,
    available: bool,
) -> WireClient {
    let mut w = connect(server).await;
    log_in(&mut w, user, resource, available).await;
    w
}

pub async fn send(w: &mut WireClient, xml: &str) {
    use tokio::io::AsyncWriteExt;
    let wire = w.client.wire(xml.as_bytes());
    w.stream.write_all(&wire).await.unwrap();
}

pub async fn expect(w: &mut WireClient, needle: &str) -> String {
    let needle = needle.to_string();
    w.wait(move |c| c.text.contains(&needle)).await;
    w.client.take_text()
}

/// Connects over Direct TLS from the local address `local` (on Linux every
/// 127.0.0.0/8 address reaches the loopback listener, so tests can play clients at
/// different addresses), with this receive buffer if given (a small one makes a
/// client that does not read back up quickly), and completes the handshake.
pub async fn connect_from(
    server: &TestServer,
    local: std::net::IpAddr,
    recv_buffer: Option<u32>,
) -> WireClient {
    let started = Instant::now();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let stream = socket.connect(server.direct_tls).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut w = WireClient {
        stream,
        client: Client::new(),
        round_trips: 1,
        started,
    };
    w.client.start_tls(&client_tls(TLS13), false);
    while w.client.handshaking() {
        w.flight("", |c| !c.handshaking()).await;
    }
    w
}

/// Logs `user` in on a connected client with `resource`, as [`online`] does.
pub async fn log_in(w: &mut WireClient, user: &str, resource: &str, available: bool) {
    let login = format!(
        "{}{}{}{}{}",
        header(true),
        plain_auth(user, PASSWORD),
        header(false),
        bind(resource),
        if available { PRESENCE } else { "" }
    );
    let jid = format!("<jid>{user}@localhost/{resource}</jid>");
    w.flight(&login, move |c| c.text.contains(&jid)).await;
    if available {
        w.wait(|c| c.text.contains("<presence")).await;
    }
    w.client.take_text();
}
