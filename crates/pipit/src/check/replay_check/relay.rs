//! The local recording relay of the `0rtt-replay` check: a [`Tap`] sits between a probe
//! and the server on the loopback interface and keeps what each side wrote. The check
//! needs the first flight exactly as it went on the wire, to show that the replay's is
//! the original's byte for byte, and the server's side of the connection that got the
//! tickets, for a second deterministic client to follow; neither the probe nor rustls
//! hands those out, so they are taken from the socket.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A relay on this machine between a probe and the server, which records both sides
/// (up to [`MAX_RECORDED`] bytes each) and where the server's first byte came: what the
/// probe wrote before it is its first flight, as it went on the wire. The probe writes
/// that flight with one write and the relay reads the probe's side first, so the
/// server's answer cannot cut it short. Ends with the connection, or when dropped.
pub(super) struct Tap {
    /// Where the probe connects.
    pub(super) addr: String,
    recording: Arc<Mutex<Recording>>,
    task: JoinHandle<()>,
}

/// Most bytes a [`Tap`] keeps of each side; a login needs a few kilobytes.
const MAX_RECORDED: usize = 1 << 20;

/// What a [`Tap`] saw.
#[derive(Clone, Debug, Default)]
pub(super) struct Recording {
    /// What the probe wrote.
    to_server: Vec<u8>,
    /// How much of it came before the server's first byte, once the server spoke.
    first: Option<usize>,
    /// What the server wrote.
    pub(super) to_client: Vec<u8>,
}

impl Recording {
    /// The probe wrote `bytes`.
    fn client_wrote(&mut self, bytes: &[u8]) {
        keep(&mut self.to_server, bytes);
    }

    /// The server wrote `bytes`: the probe's first flight, if not yet, is complete.
    fn server_wrote(&mut self, bytes: &[u8]) {
        self.first.get_or_insert(self.to_server.len());
        keep(&mut self.to_client, bytes);
    }
}

/// Appends `bytes` to `kept` up to [`MAX_RECORDED`].
fn keep(kept: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_RECORDED.saturating_sub(kept.len());
    kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Tap {
    /// Connects to `server`, then listens on the loopback interface for one probe.
    pub(super) async fn open(server: &str, limit: Duration) -> Result<Tap, String> {
        let upstream = match timeout(limit, TcpStream::connect(server)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("cannot connect to {server}: {e}")),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {server}: no answer within {} s",
                    limit.as_secs()
                ));
            }
        };
        let listen = |e: std::io::Error| format!("cannot listen on the loopback interface: {e}");
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?.to_string();
        let recording = Arc::default();
        let task = tokio::spawn(relay(listener, upstream, Arc::clone(&recording), limit));
        Ok(Tap {
            addr,
            recording,
            task,
        })
    }

    /// What the tap saw so far.
    pub(super) fn recording(&self) -> Recording {
        self.recording
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the probe wrote before the server's first byte (all it wrote, if the server
    /// has sent nothing yet).
    pub(super) fn first_flight(&self) -> Vec<u8> {
        let mut recording = self.recording();
        if let Some(first) = recording.first {
            recording.to_server.truncate(first);
        }
        recording.to_server
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The tap's relay: copies and records both ways until either side ends.
async fn relay(
    listener: TcpListener,
    mut upstream: TcpStream,
    recording: Arc<Mutex<Recording>>,
    limit: Duration,
) {
    let Ok(Ok((mut client, _))) = timeout(limit, listener.accept()).await else {
        return;
    };
    drop(listener);
    // Each flight leaves at once, as the probe's own sockets do (DESIGN.md §4).
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let record = |from_server: bool, bytes: &[u8]| {
        let mut recording = recording.lock().unwrap_or_else(PoisonError::into_inner);
        if from_server {
            recording.server_wrote(bytes);
        } else {
            recording.client_wrote(bytes);
        }
    };
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_server = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            read = client.read(&mut from_client) => {
                let Ok(n @ 1..) = read else { return };
                record(false, &from_client[..n]);
                if upstream.write_all(&from_client[..n]).await.is_err() {
                    return;
                }
            }
            read = upstream.read(&mut from_server) => {
                let Ok(n @ 1..) = read else { return };
                record(true, &from_server[..n]);
                if client.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
