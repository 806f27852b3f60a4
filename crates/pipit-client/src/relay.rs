//! A userspace latency relay: a TCP proxy on loopback that delays each direction by
//! half a round trip, preserving order and chunking, so every exchange through it
//! costs the emulated round-trip time. It stands in for `netem` where the kernel has
//! none (or the user no privileges); `pipit login --rtt` uses it.
//!
//! What it cannot delay is the TCP handshake: the kernel completes `connect` to the
//! relay at once. A client emulating a network therefore waits one round trip after
//! connecting, as the SYN / SYN-ACK exchange would make it wait;
//! [`Session::login`](crate::Session::login) does so when
//! [`LoginOptions::emulated_rtt`](crate::LoginOptions::emulated_rtt) is set. Round
//! trips are counted the same with or without the relay.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// How long the relay waits for the upstream server to accept a connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running relay; dropping it stops it and every connection through it.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and relays each connection to `upstream`,
    /// delaying each direction by `rtt / 2`. Must be called within a tokio runtime.
    pub async fn start(upstream: SocketAddr, rtt: Duration) -> std::io::Result<Relay> {
        let listen: SocketAddr = if upstream.is_ipv6() {
            "[::1]:0".parse()
        } else {
            "127.0.0.1:0".parse()
        }
        .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let one_way = rtt / 2;
        let task = tokio::spawn(async move {
            // Owned here, so stopping this task stops every connection.
            let mut connections = JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(relay_one(down, upstream, one_way));
            }
        });
        Ok(Relay { addr, task })
    }

    /// The address to connect to instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay_one(down: TcpStream, upstream: SocketAddr, one_way: Duration) {
    let up =
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
            Ok(Ok(up)) => up,
            // Dropping `down` tells the client: the server was unreachable.
            _ => return,
        };
    // DESIGN.md §4: no Nagle on any hop, or the relay itself would add delay.
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (down_r, down_w) = down.into_split();
    let (up_r, up_w) = up.into_split();
    tokio::join!(pump(down_r, up_w, one_way), pump(up_r, down_w, one_way));
}

/// Copies one direction, each chunk `delay` after it was read; end of file is
/// passed on after the data before it.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due = tokio::time::Instant::now() + delay;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&data).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server; the relay in front of it must make each exchange take a
    /// round trip, and keep the bytes and their order.
    #[tokio::test]
    async fn each_exchange_takes_the_round_trip() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => s.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
        let rtt = Duration::from_millis(60);
        let relay = Relay::start(echo_addr, rtt).await.unwrap();
        let mut s = TcpStream::connect(relay.addr()).await.unwrap();
        for word in [&b"one"[..], b"two", b"three"] {
            let start = Instant::now();
            s.write_all(word).await.unwrap();
            let mut got = vec![0u8; word.len()];
            tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, word);
            assert!(start.elapsed() >= rtt, "{:?}", start.elapsed());
        }
        // Dropping the relay ends the connection through it.
        drop(relay);
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)));
    }

    #[tokio::test]
    async fn an_unreachable_server_closes_the_client_side() {
        // Bind, learn the port, then close: nothing listens there.
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone_addr = gone.local_addr().unwrap();
        drop(gone);
        let relay = Relay::start(gone_addr, Duration::from_millis(10))
            .await
            .unwrap();
        let mut s = TcpStream::connect(relay.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}
