//! The tokio driver: moves bytes between a socket and a [`ClientConnection`],
//! counting round trips until the resource is bound.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use pipit_proto::client::{ClientConnection, ClientError, ClientEvent, Mode, SmSession};
use pipit_proto::jid::Jid;
use pipit_proto::random::Random;
use pipit_proto::xml::Element;
use rustls::ProtocolVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout_at;

use crate::error::Error;
use crate::options::LoginOptions;
use crate::relay::Relay;
use crate::state::State;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;
/// How long [`Session::close`] waits for the server to close its side.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How a login went, from TCP connect to the bound resource.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The mode used.
    pub mode: Mode,
    /// The full JID bound.
    pub jid: Jid,
    /// Round trips to the bound resource: TCP connect is 1, and each time the client
    /// had written all it could and had to wait on the server adds 1.
    pub round_trips: usize,
    /// Time from the start of the TCP connect to the bound resource.
    pub login_time: Duration,
    /// The TLS version, as `TLS 1.3` or `TLS 1.2`.
    pub tls_version: Option<String>,
    /// Whether the TLS session was resumed from an earlier login's ticket.
    pub resumed: bool,
    /// Whether the login rode in TLS 1.3 early data (0-RTT) and the server took it.
    pub early_data: bool,
    /// The SASL mechanism used (a FAST login names its HT-* mechanism).
    pub mechanism: Option<&'static str>,
    /// Whether the login pipelined authentication on the grounds of an earlier
    /// success (DESIGN.md rule 9).
    pub pipelined: bool,
    /// Whether the login resumed a detached session (XEP-0198 §5) rather than
    /// binding a new one.
    pub sm_resumed: bool,
}

/// A bound, usable session.
///
/// Not cancel-safe: give [`next_stanza`](Self::next_stanza) its own time limit rather
/// than dropping its future, which could leave a flight half written.
#[derive(Debug)]
pub struct Session {
    stream: TcpStream,
    conn: Driven,
    report: Report,
    started: Instant,
    timeout: Duration,
    /// Stanzas read but not yet handed out, with when they arrived.
    pending: VecDeque<(Element, Instant)>,
    last_arrival: Option<Duration>,
    /// When the last read returned: when whatever it carried arrived.
    last_read: Instant,
    /// The stream is over; the error, if it ended badly and nobody was told yet.
    closed: Option<Option<ClientError>>,
    buf: Vec<u8>,
    /// Where the session is recorded when it is left to resume or ends: the
    /// state, and the server address and account it is kept under.
    state: State,
    server: String,
    /// Kept alive as long as the connection through it.
    _relay: Option<Relay>,
}

/// A [`ClientConnection`] with a `Debug` that shows only its state.
struct Driven(ClientConnection);

impl std::fmt::Debug for Driven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("bound", &self.0.is_bound())
            .field("closed", &self.0.is_closed())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects and logs in as `options` say; returns once the resource is bound.
    /// On success the state learns what the login taught; on an authentication
    /// failure it forgets that the credentials worked.
    pub async fn login(options: &LoginOptions) -> Result<Session, Error> {
        let result = Session::login_inner(options).await;
        match &result {
            Ok(session) => {
                let learned = session.conn.0.learned();
                options
                    .state
                    .remember(&options.server, &options.jid, learned)?;
            }
            Err(Error::Protocol(ClientError::AuthFailed { .. })) => {
                if let Err(e) = options
                    .state
                    .forget_credentials(&options.server, &options.jid)
                {
                    tracing::warn!("{e}");
                }
            }
            Err(_) => {}
        }
        result
    }

    async fn login_inner(options: &LoginOptions) -> Result<Session, Error> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + options.timeout;
        let config = options.core_config()?;
        let pipelined = config.mode != Mode::Lockstep
            && config.known.as_ref().is_some_and(|k| k.credentials_ok);
        let random = OsRandom::new()?;
        let (stream, relay) = connect(options, deadline).await?;
        let mut conn = ClientConnection::new(config, Box::new(random))?;
        for stanza in &options.initial_stanzas {
            conn.send_stanza(stanza);
        }
        let mut session = Session {
            stream,
            conn: Driven(conn),
            report: Report {
                mode: options.mode,
                jid: options.jid.clone(),
                round_trips: 1,
                login_time: Duration::ZERO,
                tls_version: None,
                resumed: false,
                early_data: false,
                mechanism: None,
                pipelined,
                sm_resumed: false,
            },
            started,
            timeout: options.timeout,
            pending: VecDeque::new(),
            last_arrival: None,
            last_read: started,
            closed: None,
            buf: vec![0u8; READ_SIZE],
            state: options.state.clone(),
            server: options.server.clone(),
            _relay: relay,
        };
        // The client speaks first (DESIGN.md rule 1).
        let mut wrote = session.flush(deadline).await?;
        let bound = loop {
            let bound = session.drain_events();
            // Everything this read caused goes out as one flight, in one write.
            wrote |= session.flush(deadline).await?;
            if let Some(error) = session.closed.take() {
                return Err(error.unwrap_or(ClientError::ConnectionClosed).into());
            }
            if let Some(jid) = bound {
                break jid;
            }
            if wrote {
                // All written, and the session is not usable: waiting on the server
                // from here on is a round trip.
                session.report.round_trips += 1;
                wrote = false;
            }
            session.read(deadline, options.timeout).await?;
        };
        session.report.login_time = session.last_read.saturating_duration_since(started);
        session.report.jid = bound;
        if let Some(info) = session.conn.0.tls_info() {
            session.report.tls_version = Some(version_name(info.version));
            session.report.resumed = info.resumed;
        }
        session.report.mechanism = session.conn.0.mechanism();
        session.report.early_data = session.conn.0.early_data_accepted();
        session.report.sm_resumed = session.conn.0.sm_resumed();
        Ok(session)
    }

    /// How the login went.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The full JID bound.
    pub fn jid(&self) -> &Jid {
        &self.report.jid
    }

    /// Sends a stanza (its namespace is `jabber:client`).
    pub async fn send(&mut self, stanza: &Element) -> Result<(), Error> {
        if self.closed.is_some() || self.conn.0.is_closed() {
            return Err(Error::Closed);
        }
        self.conn.0.send_stanza(stanza);
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.flush(deadline).await.map(|_| ())
    }

    /// The next stanza from the server, waiting at most `within`. `Ok(None)` once
    /// the server has closed the stream cleanly; [`Error::Timeout`] if nothing came.
    pub async fn next_stanza(&mut self, within: Duration) -> Result<Option<Element>, Error> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some((stanza, at)) = self.pending.pop_front() {
                self.last_arrival = Some(at.saturating_duration_since(self.started));
                return Ok(Some(stanza));
            }
            if let Some(error) = &mut self.closed {
                return match error.take() {
                    Some(e) => Err(e.into()),
                    None => Ok(None),
                };
            }
            self.read(deadline, within).await?;
            self.drain_events();
            // Whatever the input caused (TLS alerts, a closing tag) goes out now.
            let write_deadline = tokio::time::Instant::now() + self.timeout;
            self.flush(write_deadline).await?;
        }
    }

    /// Asks the server to acknowledge the stanzas it has handled (XEP-0198 §4,
    /// `<r/>`), when stream management is on; its answer is taken in by
    /// [`next_stanza`](Self::next_stanza) and shows in
    /// [`unacknowledged`](Self::unacknowledged).
    pub async fn request_ack(&mut self) -> Result<(), Error> {
        if self.closed.is_some() || self.conn.0.is_closed() {
            return Err(Error::Closed);
        }
        self.conn.0.request_ack();
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.flush(deadline).await.map(|_| ())
    }

    /// How many of the stanzas sent the server has not acknowledged yet (0
    /// without stream management). Acknowledgements come in order, so these are
    /// the last ones sent: for a server that stores before it acknowledges,
    /// everything before them is safe.
    pub fn unacknowledged(&self) -> usize {
        self.conn.0.unacked()
    }

    /// When the stanza last returned by [`next_stanza`](Self::next_stanza) arrived,
    /// counted from the start of the TCP connect.
    pub fn last_arrival(&self) -> Option<Duration> {
        self.last_arrival
    }

    /// Leaves the session for a later `sm-resume` login (XEP-0198 §5): asks the
    /// server to acknowledge everything sent and waits until it has, so that no
    /// stanza depends on this process any more; records the SM-ID and the count
    /// of stanzas handled in the state; then drops the connection without closing
    /// the stream, since a closed stream ends the session for good (§7).
    pub async fn detach(mut self) -> Result<SmSession, Error> {
        if self.conn.0.sm_session().is_none() {
            return Err(Error::NotResumable);
        }
        self.conn.0.request_ack();
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.flush(deadline).await?;
        while self.conn.0.unacked() > 0 {
            if let Some(error) = self.closed.take() {
                return Err(error.unwrap_or(ClientError::ConnectionClosed).into());
            }
            self.read(deadline, self.timeout).await?;
            self.drain_events();
            self.flush(deadline).await?;
        }
        let session = self.conn.0.sm_session().ok_or(Error::NotResumable)?;
        self.state
            .remember_session(&self.server, &self.report.jid, Some(session.clone()))?;
        Ok(session)
    }

    /// Ends the stream (RFC 6120 §4.4): the closing tag and TLS close_notify, then
    /// waits briefly for the server to close its side. The session is over, so
    /// the state no longer offers it for resumption.
    pub async fn close(mut self) -> Result<(), Error> {
        if self.conn.0.sm_session().is_some() {
            self.state
                .remember_session(&self.server, &self.report.jid, None)?;
        }
        if self.conn.0.is_closed() {
            return Ok(());
        }
        self.conn.0.close();
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.flush(deadline).await?;
        let _ = timeout_at(deadline, self.stream.shutdown()).await;
        let wait = tokio::time::Instant::now() + CLOSE_WAIT.min(self.timeout);
        while let Ok(Ok(n)) = timeout_at(wait, self.stream.read(&mut self.buf)).await {
            if n == 0 {
                break;
            }
            // Session tickets may still be on their way (TLS 1.3): keep them.
            self.conn.0.handle_input_after_close(&self.buf[..n]);
        }
        Ok(())
    }

    /// Hands the events of the last input on; returns the JID if the session
    /// became bound.
    fn drain_events(&mut self) -> Option<Jid> {
        let mut bound = None;
        while let Some(event) = self.conn.0.poll_event() {
            match event {
                ClientEvent::Bound(jid) => bound = Some(jid),
                ClientEvent::Stanza(stanza) => self.pending.push_back((stanza, self.last_read)),
                ClientEvent::Closed { error } => {
                    self.closed.get_or_insert(error);
                }
                // Events a newer core may add carry nothing this driver acts on.
                _ => {}
            }
        }
        bound
    }

    /// Writes all pending output in one write; true if there was any.
    async fn flush(&mut self, deadline: tokio::time::Instant) -> Result<bool, Error> {
        let out = self.conn.0.take_output();
        if out.is_empty() {
            return Ok(false);
        }
        match timeout_at(deadline, self.stream.write_all(&out)).await {
            Ok(Ok(())) => Ok(true),
            // The stream is already over: its last words are best effort.
            Ok(Err(_)) | Err(_) if self.closed.is_some() => Ok(true),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    /// One read from the socket into the core.
    async fn read(&mut self, deadline: tokio::time::Instant, limit: Duration) -> Result<(), Error> {
        let read = timeout_at(deadline, self.stream.read(&mut self.buf)).await;
        self.last_read = Instant::now();
        match read {
            Err(_) => Err(Error::Timeout(limit)),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(0)) => {
                self.conn.0.handle_eof();
                Ok(())
            }
            Ok(Ok(n)) => {
                self.conn.0.handle_input(&self.buf[..n]);
                Ok(())
            }
        }
    }
}

/// Resolves the mode's address and connects (through a relay when emulating a
/// round-trip time), with TCP_NODELAY (DESIGN.md §4).
async fn connect(
    options: &LoginOptions,
    deadline: tokio::time::Instant,
) -> Result<(TcpStream, Option<Relay>), Error> {
    let addr = options.address();
    let timed_out = || Error::Timeout(options.timeout);
    let resolved: Vec<SocketAddr> = timeout_at(deadline, tokio::net::lookup_host(addr))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| Error::Resolve {
            addr: addr.to_owned(),
            source,
        })?
        .collect();
    let Some(&first) = resolved.first() else {
        return Err(Error::Resolve {
            addr: addr.to_owned(),
            source: std::io::Error::other("no address found"),
        });
    };
    let relay = match options.emulated_rtt {
        Some(rtt) => Some(Relay::start(first, rtt).await?),
        None => None,
    };
    let targets = match &relay {
        Some(relay) => vec![relay.addr()],
        None => resolved,
    };
    let mut last_error = None;
    for target in targets {
        match timeout_at(deadline, open(target, options.local_addr)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => last_error = Some(e),
            Ok(Ok(stream)) => {
                stream.set_nodelay(true)?;
                if let Some(rtt) = options.emulated_rtt {
                    // The SYN / SYN-ACK the relay cannot delay (see `relay`).
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + rtt)).await;
                }
                return Ok((stream, relay));
            }
        }
    }
    Err(Error::Connect {
        addr: addr.to_owned(),
        source: last_error.unwrap_or_else(|| std::io::Error::other("no address to try")),
    })
}

/// A TCP connection to `target`, from `local` when given.
async fn open(target: SocketAddr, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(target).await;
    };
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(target).await
}

/// The report's name of a TLS version.
fn version_name(version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::TLSv1_3 => "TLS 1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLS 1.2".into(),
        other => format!("{other:?}"),
    }
}

/// The OS generator, checked before the login starts so that a broken one is an
/// error, not a failure half-way. The core draws one SCRAM nonce per login, which
/// the pool drawn up front covers.
struct OsRandom {
    pool: Vec<u8>,
}

impl OsRandom {
    fn new() -> Result<OsRandom, Error> {
        let mut pool = vec![0u8; 128];
        getrandom::getrandom(&mut pool).map_err(|e| Error::Random(e.to_string()))?;
        Ok(OsRandom { pool })
    }
}

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        if buf.len() <= self.pool.len() {
            let rest = self.pool.split_off(buf.len());
            buf.copy_from_slice(&self.pool);
            self.pool = rest;
        } else {
            // Beyond the pool; the OS generator worked a moment ago.
            getrandom::getrandom(buf).expect("the OS random number generator failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_pool_is_used_up_then_refilled() {
        let mut random = OsRandom::new().unwrap();
        let mut a = [0u8; 100];
        let mut b = [0u8; 100];
        random.fill(&mut a);
        random.fill(&mut b);
        assert_ne!(a, b);
    }
}
