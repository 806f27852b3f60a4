//! One client connection: a tokio task that drives the sans-IO core, and, with
//! XEP-0198 stream management, keeps the session after its connection drops until
//! it is resumed or its time runs out.
//!
//! A session's life in this task:
//! 1. **Connected**: bytes in, events answered, routed stanzas written.
//! 2. **Detached** (only with resumption enabled, and only when the stream dropped
//!    rather than ended, XEP-0198 §7): the router entry and presence stay, routed
//!    stanzas are queued in the SM state, until a new connection resumes the session
//!    (it is handed over, §5) or [`Config::sm_resume_timeout`](crate::Config) passes.
//! 3. **Ended**: the router entry goes; every stanza the client never acknowledged
//!    or never got is handled as undeliverable ([`im::undeliverable`]: never lost
//!    silently, RFC 6121 §8.5); unavailable presence goes out as before.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pipit_proto::error::StreamError;
use pipit_proto::jid::Jid;
use pipit_proto::random::Random;
use pipit_proto::server::{Event, Listener, ServerConnection, StreamManagement};
use pipit_proto::xml::{Element, ns};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::WriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::Config;
use crate::fast;
use crate::im;
use crate::presence;
use crate::resumption::{ControlSender, Handover, Takeover};
use crate::router::{Delivery, SessionSender};
use crate::server::Context;

/// With stream management on, a connection that falls quiet this long while
/// stanzas it was sent are not covered by an `<r/>` gets one (XEP-0198 §4: either
/// side may ask at any time); the core also asks every few stanzas.
const ACK_IDLE: Duration = Duration::from_secs(5);

/// How long the stream-error goodbye to a connection whose session was resumed
/// elsewhere may take (the resuming connection waits for the handover).
const GOODBYE_WRITE: Duration = Duration::from_secs(1);

/// How long the goodbye to a connection that ended cleanly, or by a timeout, may
/// take to write.
const FINAL_FLUSH: Duration = Duration::from_secs(10);

/// Output waiting for the socket beyond which the client is not read from and
/// routed stanzas are held back (see [`Outbox`]): a few TCP windows.
const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// Randomness from the operating system, for the core's stream ids and nonces.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // The OS generator failing means the machine cannot do TLS either.
        getrandom::getrandom(buf).expect("the OS random number generator failed");
    }
}

/// What a session owns besides its connection: it moves to the new connection
/// when the session is resumed.
pub(crate) struct Session {
    /// Process-unique; the router tells sessions on the same resource apart by it.
    pub id: u64,
    /// The router's way in; cloned into the router when bound.
    pub sender: SessionSender,
    /// Stanzas routed to this session.
    pub inbox: mpsc::UnboundedReceiver<Delivery>,
    /// The resumption registry's way in.
    pub control_sender: ControlSender,
    /// Takeover requests from a connection that resumes this session.
    pub control: mpsc::UnboundedReceiver<Takeover>,
}

impl Session {
    fn new(ctx: &Context) -> Session {
        let (sender, inbox) = mpsc::unbounded_channel();
        let (control_sender, control) = mpsc::unbounded_channel();
        Session {
            id: ctx.session_id(),
            sender,
            inbox,
            control_sender,
            control,
        }
    }
}

/// A bound session whose connection is over.
struct Parked {
    jid: Jid,
    session: Session,
    /// `None` without stream management.
    sm: Option<StreamManagement>,
}

thread_local! {
    /// The buffer sessions read into, one per worker thread: a read is taken in by
    /// the core before anything else runs on the thread, so no session holds a read
    /// buffer while it waits, which is most of its life (16 KiB each otherwise).
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 16 * 1024]);
}

/// Serves one connection until the stream ends, then the session until it is
/// resumed elsewhere or ends.
///
/// Writing never holds up the rest: output waits in the [`Outbox`] and is written
/// as the socket takes it, while input, routed stanzas, takeovers and deadlines
/// are still served. A client that stops reading stops being read from once its
/// output backs up ([`OUTPUT_HIGH_WATER`]), and the stream ends with
/// `<resource-constraint/>` once [`Config::max_queued_stanzas`](crate::Config)
/// routed stanzas, or [`Config::max_queued_bytes`](crate::Config) of them, wait
/// behind it (RFC 6120 §4.9.3.17: the server will not spend
/// more on this stream); those stanzas were never written, so they are handled as
/// undeliverable, not lost.
pub async fn run(ctx: Arc<Context>, mut stream: TcpStream, peer: SocketAddr, listener: Listener) {
    // DESIGN.md §4: with Nagle on, every TLS flight waits for a delayed ACK.
    let _ = stream.set_nodelay(true);
    let mut session = Session::new(&ctx);
    let mut conn = ServerConnection::new(Arc::clone(&ctx.proto), listener, Box::new(OsRandom));
    let login_deadline = tokio::time::sleep(ctx.config.login_timeout);
    tokio::pin!(login_deadline);
    let ack_idle = tokio::time::sleep(ACK_IDLE);
    tokio::pin!(ack_idle);
    let mut deadlines = Deadlines::new(Instant::now());
    deadlines.update(&conn, &ctx.config, Instant::now());
    let mut out = Outbox::new(ctx.config.max_queued_stanzas, ctx.config.max_queued_bytes);
    let mut bound: Option<Jid> = None;
    let mut shutdown = ctx.shutdown.subscribe();
    // Routed stanzas the connection could not write (it had closed): never dropped.
    let mut unsent = Vec::new();
    let mut takeover = None;
    let (reader, mut writer) = stream.split();
    loop {
        tokio::select! {
            // Output first: a batch of input gets its answer in one write (DESIGN.md §4).
            biased;
            written = writer.write(out.pending()), if out.has_pending() => match written {
                Ok(0) | Err(_) => conn.handle_eof(),
                Ok(n) => out.written(n),
            },
            ready = reader.readable(), if out.wants_input() => match ready {
                Err(_) => conn.handle_eof(),
                Ok(()) => READ_BUFFER.with_borrow_mut(|buf| match reader.try_read(buf) {
                    // Readiness can be spurious: wait again.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Ok(0) | Err(_) => conn.handle_eof(),
                    Ok(n) => {
                        deadlines.heard(Instant::now());
                        conn.set_time(fast::unix_now());
                        conn.handle_input(&buf[..n]);
                    }
                }),
            },
            Some(delivery) = session.inbox.recv() => {
                out.deliver(&mut conn, delivery, &mut unsent, &writer)
            }
            Some(request) = session.control.recv() => {
                // XEP-0198 §5: resumed on another connection; this stream ends.
                conn.close(Some(StreamError::Conflict));
                takeover = Some(request);
            }
            // Until bound, and (TLS 1.3 0-RTT) until the client's Finished came.
            () = &mut login_deadline, if conn.is_logging_in() => conn.handle_timeout(),
            () = until(deadlines.next()) => deadlines.fire(&mut conn, &ctx.config, Instant::now()),
            () = &mut ack_idle, if conn.wants_ack() => conn.request_ack(),
            _ = shutdown.wait_for(|stop| *stop) => conn.close(Some(StreamError::SystemShutdown)),
        }
        drive(
            &ctx,
            &mut conn,
            &mut session,
            &mut bound,
            peer.ip(),
            &mut shutdown,
        )
        .await;
        // Routed stanzas already queued go out in the same write.
        while !conn.is_closed()
            && let Ok(delivery) = session.inbox.try_recv()
        {
            out.deliver(&mut conn, delivery, &mut unsent, &writer);
        }
        out.collect(&mut conn, &mut unsent);
        deadlines.update(&conn, &ctx.config, Instant::now());
        ack_idle.as_mut().reset(Instant::now() + ACK_IDLE);
        if conn.is_closed() {
            break;
        }
    }
    // The goodbye (a stream error, `</stream:stream>`), bounded: a peer that does
    // not read, or whose session went elsewhere, is not waited on for long.
    let hurry = takeover.is_some() || out.overflowed || *shutdown.borrow();
    let flush = if hurry { GOODBYE_WRITE } else { FINAL_FLUSH };
    let _ = tokio::time::timeout(flush, writer.write_all(out.pending())).await;
    let _ = writer.shutdown().await;
    unsent.extend(out.held.drain(..));
    drop(stream);
    let Some(jid) = bound else {
        return;
    };
    if out.overflowed {
        tracing::info!("{peer}: {jid} ended: it stopped reading what it was sent");
    }
    let resumable = conn.can_resume();
    let mut parked = Box::new(Parked {
        jid,
        session,
        sm: conn.take_stream_management(),
    });
    for stanza in unsent {
        park_stanza(&ctx, &mut parked, stanza).await;
    }
    if let Some(request) = takeover {
        match hand_over(parked, request) {
            Ok(jid) => {
                tracing::info!("{peer}: {jid} resumed on another connection");
                return;
            }
            // The resuming connection gave up waiting: the session ends.
            Err(back) => parked = back,
        }
    } else if resumable {
        let timeout = parked
            .sm
            .as_ref()
            .and_then(StreamManagement::resume_timeout_secs)
            .map_or(Duration::ZERO, |secs| Duration::from_secs(secs.into()));
        tracing::info!(
            "{peer}: {} detached; resumable for {}s",
            parked.jid,
            timeout.as_secs()
        );
        match detached(&ctx, parked, timeout, &mut shutdown).await {
            Ok(jid) => {
                tracing::info!("{jid} resumed on another connection");
                return;
            }
            Err(back) => parked = back,
        }
    }
    tracing::info!("{peer}: {} went offline", parked.jid);
    end(&ctx, parked).await;
}

/// Sleeps until `at`, or forever without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a connection holds for its client: output the socket has not taken yet,
/// and routed stanzas waiting behind it while that output is backed up.
///
/// Routed stanzas are taken off the session's queue at once, whatever the
/// client does, so the router never waits on a slow reader and its queue stays
/// short; this is where they wait instead, counted. A stanza is serialized only
/// when the output has room, so one held here was never written: if the stream
/// ends, it is still an element to hand back (and bounce), not lost bytes.
struct Outbox {
    /// Bytes for the socket, oldest first.
    pending: Vec<u8>,
    /// Routed stanzas not yet given to the connection.
    held: VecDeque<Element>,
    /// Their [`Element::memory_size`] in all.
    held_bytes: usize,
    max_held: usize,
    max_held_bytes: usize,
    /// The stream ended because `held` overflowed.
    overflowed: bool,
}

impl Outbox {
    fn new(max_held: usize, max_held_bytes: usize) -> Outbox {
        Outbox {
            pending: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            max_held,
            max_held_bytes,
            overflowed: false,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.pending
    }

    fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether to read more: not while the client leaves its answers unread, so a
    /// client that sends without reading cannot grow `pending` without bound.
    fn wants_input(&self) -> bool {
        self.pending.len() < OUTPUT_HIGH_WATER
    }

    fn written(&mut self, n: usize) {
        self.pending.drain(..n);
    }

    /// Writes what the socket takes now, without waiting; an error is left for
    /// the next awaited write to find.
    fn write_ready(&mut self, socket: &WriteHalf<'_>) {
        while self.has_pending() {
            match socket.try_write(&self.pending) {
                Ok(n) if n > 0 => self.written(n),
                _ => return,
            }
        }
    }

    /// Takes a routed stanza: written now if the output has room, held otherwise;
    /// a stanza too many ends the stream (see [`run`]). Before holding one, as
    /// much output as the socket takes without waiting goes out, so a burst that a
    /// reading client's socket can absorb is never counted against it.
    fn deliver(
        &mut self,
        conn: &mut ServerConnection,
        delivery: Delivery,
        unsent: &mut Vec<Element>,
        socket: &WriteHalf<'_>,
    ) {
        match delivery {
            Delivery::Stanza(stanza) => {
                if !self.wants_input() {
                    self.write_ready(socket);
                }
                if self.held.is_empty() && self.wants_input() && can_send(conn) {
                    self.write(conn, stanza, unsent);
                } else if conn.is_closed() {
                    unsent.push(stanza);
                } else {
                    self.held_bytes += stanza.memory_size();
                    self.held.push_back(stanza);
                    if self.held.len() > self.max_held || self.held_bytes > self.max_held_bytes {
                        self.overflowed = true;
                        conn.close(Some(StreamError::ResourceConstraint(
                            "too much waits for a client that is not reading".into(),
                        )));
                        self.pending.extend(conn.take_output());
                    }
                }
            }
            Delivery::Close(error) => conn.close(Some(error)),
        }
    }

    /// Moves the connection's output here, then held stanzas while there is room.
    fn collect(&mut self, conn: &mut ServerConnection, unsent: &mut Vec<Element>) {
        self.pending.extend(conn.take_output());
        while self.wants_input()
            && !conn.is_closed()
            && can_send(conn)
            && let Some(stanza) = self.held.pop_front()
        {
            self.held_bytes -= stanza.memory_size();
            self.write(conn, stanza, unsent);
        }
    }

    fn write(&mut self, conn: &mut ServerConnection, stanza: Element, unsent: &mut Vec<Element>) {
        if !conn.send_stanza(&stanza) {
            unsent.push(stanza);
        }
        self.pending.extend(conn.take_output());
    }
}

/// Whether the stream can take one more stanza now: not while the client has as
/// many unacknowledged as XEP-0198 lets wait (the core would end the stream on one
/// more). Until its acks come, routed stanzas are held like output it has not read
/// (a flush of a long offline queue, say), within the same bounds.
fn can_send(conn: &ServerConnection) -> bool {
    conn.stream_management().is_none_or(|sm| !sm.is_full())
}

/// The connection's deadlines besides the login one, each ending the stream with
/// `<connection-timeout/>` (RFC 6120 §4.9.3.4), each from [`Config`](crate::Config):
///
/// - **stream open**: the client's stream header, after connect, after TLS and after
///   a SASL success (a slowloris that connects and says nothing);
/// - **TLS handshake**: while one is under way (Direct TLS, or after `<proceed/>`);
/// - **idle**: a bound session silent this long is pinged: an XEP-0199 ping, which
///   every client answers (a result, or an error from one without XEP-0199: RFC
///   6120 §8.2.3 requires an answer to every iq get), and with stream management an
///   `<r/>` too (XEP-0198 §4). Anything from the client, whitespace keepalives
///   included (RFC 6120 §4.6.4), counts as an answer; nothing within the ping
///   timeout ends the stream. A dead connection found this way can still be resumed.
struct Deadlines {
    stream_open: Option<Instant>,
    tls: Option<Instant>,
    /// When the silent session gets its ping.
    idle: Option<Instant>,
    /// When an unanswered ping ends the stream.
    ping: Option<Instant>,
    last_heard: Instant,
}

impl Deadlines {
    fn new(now: Instant) -> Deadlines {
        Deadlines {
            stream_open: None,
            tls: None,
            idle: None,
            ping: None,
            last_heard: now,
        }
    }

    /// Input came: the client is alive.
    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.ping = None;
    }

    /// Starts each phase's deadline when its phase begins, drops it when it ends.
    fn update(&mut self, conn: &ServerConnection, config: &Config, now: Instant) {
        let open = !conn.is_closed();
        arm(
            &mut self.stream_open,
            open && conn.awaits_stream_header(),
            now + config.stream_open_timeout,
        );
        arm(
            &mut self.tls,
            conn.is_tls_handshaking(),
            now + config.tls_handshake_timeout,
        );
        let watched = open && conn.jid().is_some() && !config.idle_timeout.is_zero();
        self.idle = (watched && self.ping.is_none()).then(|| self.last_heard + config.idle_timeout);
        if !watched {
            self.ping = None;
        }
    }

    fn next(&self) -> Option<Instant> {
        [self.stream_open, self.tls, self.idle, self.ping]
            .into_iter()
            .flatten()
            .min()
    }

    fn fire(&mut self, conn: &mut ServerConnection, config: &Config, now: Instant) {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if passed(self.stream_open) || passed(self.tls) || passed(self.ping) {
            conn.close(Some(StreamError::ConnectionTimeout));
        } else if passed(self.idle)
            && let Some(jid) = conn.jid().cloned()
        {
            let ping = Element::new("iq", ns::CLIENT)
                .with_attr("type", "get")
                .with_attr("id", format!("idle-{}", OsRandom.hex(4)))
                .with_attr("from", jid.domain().to_owned())
                .with_attr("to", jid.to_string())
                .with_child(Element::new("ping", ns::PING));
            conn.send_stanza(&ping);
            conn.request_ack();
            self.idle = None;
            self.ping = Some(now + config.ping_timeout);
        }
    }
}

/// Sets `slot` to `at` when its phase begins, clears it when the phase is over.
fn arm(slot: &mut Option<Instant>, active: bool, at: Instant) {
    if !active {
        *slot = None;
    } else if slot.is_none() {
        *slot = Some(at);
    }
}

/// Queues a stanza for a session without a connection; one that does not fit
/// (the SM queue is full, or there is no SM) is undeliverable at once.
async fn park_stanza(ctx: &Context, parked: &mut Parked, stanza: Element) {
    let refused = match &mut parked.sm {
        Some(sm) => sm.queue(stanza),
        None => Err(stanza),
    };
    if let Err(stanza) = refused {
        im::undeliverable(ctx, &parked.jid, vec![stanza]).await;
    }
}

/// Gives the session to the connection that resumes it; returns it when that
/// connection has stopped waiting.
fn hand_over(parked: Box<Parked>, request: Takeover) -> Result<Jid, Box<Parked>> {
    let Parked { jid, session, sm } = *parked;
    let Some(sm) = sm else {
        // Never registered without SM; nothing to resume.
        return Err(Box::new(Parked { jid, session, sm }));
    };
    let handover = Handover {
        jid: jid.clone(),
        session,
        sm,
    };
    match request.reply.send(handover) {
        Ok(()) => Ok(jid),
        Err(back) => Err(Box::new(Parked {
            jid: back.jid,
            session: back.session,
            sm: Some(back.sm),
        })),
    }
}

/// XEP-0198 §5: the session waits without a connection. Routed stanzas queue up;
/// it ends on timeout, on server shutdown, or when a new bind replaced its
/// resource. `Ok` when it was handed to a resuming connection.
async fn detached(
    ctx: &Context,
    mut parked: Box<Parked>,
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Jid, Box<Parked>> {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        // Awaited outside the `select!`, whose futures (a watch guard among them)
        // would otherwise be held across the await.
        let stanza = tokio::select! {
            Some(delivery) = parked.session.inbox.recv() => match delivery {
                Delivery::Stanza(stanza) => stanza,
                // Another connection bound this resource (conflict policy replace).
                Delivery::Close(_) => return Err(parked),
            },
            Some(request) = parked.session.control.recv() => match hand_over(parked, request) {
                Ok(jid) => return Ok(jid),
                // The resuming connection stopped waiting: keep waiting for another.
                Err(back) => {
                    parked = back;
                    continue;
                }
            },
            () = &mut deadline => return Err(parked),
            _ = shutdown.wait_for(|stop| *stop) => return Err(parked),
        };
        park_stanza(ctx, &mut parked, stanza).await;
    }
}

/// The session ends for good: off the router and the registry; what it was sent
/// and never confirmed is undeliverable (XEP-0198 §4, RFC 6121 §8.5); then
/// unavailable presence for its other resources and its contacts (RFC 6121 §4.5.3).
async fn end(ctx: &Context, parked: Box<Parked>) {
    let Parked {
        jid,
        mut session,
        sm,
    } = *parked;
    let departed = ctx.router.unbind(&jid, session.id);
    let mut undelivered = Vec::new();
    if let Some(mut sm) = sm {
        if let Some(id) = sm.resume_id() {
            ctx.resumption.remove(id, session.id);
        }
        undelivered = sm.take_unacked();
    }
    // Off the router, nothing new arrives: what is queued is all there is.
    while let Ok(delivery) = session.inbox.try_recv() {
        if let Delivery::Stanza(stanza) = delivery {
            undelivered.push(stanza);
        }
    }
    im::undeliverable(ctx, &jid, undelivered).await;
    if let Some(directed) = departed {
        presence::session_ended(ctx, &jid, directed).await;
    }
}

/// The throttle's clock: tokio's, so that a test's paused clock drives it too.
fn throttle_now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Answers the core's events until it has none.
async fn drive(
    ctx: &Context,
    conn: &mut ServerConnection,
    session: &mut Session,
    bound: &mut Option<Jid>,
    peer: IpAddr,
    shutdown: &mut watch::Receiver<bool>,
) {
    while let Some(event) = conn.poll_event() {
        match event {
            Event::NeedCredentials { username, domain } => {
                // Held before the lookup, so that success and failure both wait
                // and an unknown account waits like a known one (crate::throttle).
                let account = format!("{username}@{domain}");
                let delay = ctx.throttle.delay(peer, &account, throttle_now());
                if !delay.is_zero() {
                    tracing::info!(
                        "{peer}: login as {account} held {}s after failed logins",
                        delay.as_secs_f32()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {
                            conn.close(Some(StreamError::SystemShutdown));
                            continue;
                        }
                    }
                }
                let credentials = match ctx.store.credentials(&username, &domain).await {
                    Ok(credentials) => credentials,
                    Err(e) => {
                        // Fails the login (as not-authorized) rather than the server.
                        tracing::error!("credentials lookup for {username}@{domain}: {e}");
                        None
                    }
                };
                conn.provide_credentials(credentials);
            }
            Event::AuthFailed {
                username,
                domain,
                mechanism,
            } => {
                tracing::info!("{peer}: failed {mechanism} login as {username}@{domain}");
                let account = format!("{username}@{domain}");
                ctx.throttle.failed(peer, &account, throttle_now());
            }
            Event::Authenticated {
                jid,
                mechanism,
                user_agent,
            } => {
                ctx.throttle.succeeded(&jid.to_string());
                tracing::debug!(
                    "{jid} authenticated with {mechanism} (user agent {})",
                    user_agent.as_deref().unwrap_or("not given")
                );
            }
            Event::CredentialsUpgraded { jid, credentials } => {
                // XEP-0480: the login goes on even if this fails; the account keeps
                // its older count and can upgrade at a later login.
                let (local, domain) = (jid.local().unwrap_or_default(), jid.domain());
                match ctx.store.set_credentials(local, domain, &credentials).await {
                    Ok(()) => tracing::info!(
                        "{jid}: credentials upgraded to {} iterations",
                        credentials.iterations
                    ),
                    Err(e) => tracing::error!("{jid}: storing upgraded credentials: {e}"),
                }
            }
            Event::NeedFastTokens { username, domain } => {
                let tokens = fast::tokens(ctx, &username, &domain).await;
                conn.provide_fast_tokens(tokens);
            }
            Event::FastCount {
                username,
                domain,
                key,
                count,
            } => {
                let fresh = fast::bump(ctx, &username, &domain, &key, count).await;
                conn.provide_fast_count(fresh);
            }
            Event::IssueFastToken {
                jid,
                key,
                mechanism,
                expires_at,
                user_agent,
            } => {
                fast::issue(
                    ctx,
                    &jid,
                    &key,
                    &mechanism,
                    expires_at,
                    user_agent.as_deref(),
                )
                .await
            }
            Event::RevokeFastToken { jid, key } => fast::revoke(ctx, &jid, &key).await,
            Event::FastTokenUsed {
                jid,
                key,
                user_agent,
            } => fast::used(ctx, &jid, &key, user_agent.as_deref()).await,
            Event::BindRequest {
                jid,
                resource,
                carbons,
            } => {
                let result = ctx.router.bind(
                    &jid,
                    resource,
                    ctx.config.conflict_policy,
                    session.id,
                    session.sender.clone(),
                    || OsRandom.hex(4),
                );
                if let Ok(full) = &result {
                    // XEP-0386 §4: Bind2 may switch Message Carbons on with the bind.
                    // Before the bind completes the resource cannot be available, so
                    // no copy can have missed it.
                    if carbons {
                        ctx.router.set_carbons(full, true);
                    }
                    *bound = Some(full.clone());
                }
                conn.complete_bind(result);
            }
            Event::Stanza(stanza) => {
                // With the ones right behind it: a burst is stored in one write.
                let mut stanzas = vec![stanza];
                while let Some(next) = conn.poll_stanza() {
                    stanzas.push(next);
                }
                if let Some(from) = conn.jid().cloned() {
                    im::handle_stanzas(ctx, &from, stanzas).await;
                }
            }
            Event::StreamManagementEnabled {
                resume_id: Some(id),
            } => {
                if let Some(jid) = bound.clone() {
                    ctx.resumption
                        .register(id, jid, session.id, session.control_sender.clone());
                }
            }
            Event::ResumeRequest { jid, previd } => {
                match ctx.resumption.take_over(&previd, &jid).await {
                    Some(handover) => {
                        // This connection's own, never-bound session parts go; the
                        // resumed session's router queue and control channel come.
                        *session = handover.session;
                        *bound = Some(handover.jid.clone());
                        conn.complete_resume(Some((handover.jid, handover.sm)));
                    }
                    None => conn.complete_resume(None),
                }
            }
            Event::Closed { error: Some(error) } => tracing::debug!("stream closed: {error}"),
            _ => {}
        }
    }
}
