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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pipit_proto::error::StreamError;
use pipit_proto::jid::Jid;
use pipit_proto::random::Random;
use pipit_proto::server::{Event, Listener, ServerConnection, StreamManagement};
use pipit_proto::xml::{Element, ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::fast;
use crate::im;
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

/// Serves one connection until the stream ends, then the session until it is
/// resumed elsewhere or ends.
pub async fn run(ctx: Arc<Context>, mut stream: TcpStream, peer: SocketAddr, listener: Listener) {
    // DESIGN.md §4: with Nagle on, every TLS flight waits for a delayed ACK.
    let _ = stream.set_nodelay(true);
    let mut session = Session::new(&ctx);
    let mut conn = ServerConnection::new(Arc::clone(&ctx.proto), listener, Box::new(OsRandom));
    let login_deadline = tokio::time::sleep(ctx.config.login_timeout);
    tokio::pin!(login_deadline);
    let idle = tokio::time::sleep(ACK_IDLE);
    tokio::pin!(idle);
    let mut buf = vec![0u8; 16 * 1024];
    let mut bound: Option<Jid> = None;
    let mut shutdown = ctx.shutdown.subscribe();
    // Routed stanzas the connection could not write (it had closed): never dropped.
    let mut unsent = Vec::new();
    let mut takeover = None;
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => conn.handle_eof(),
                Ok(n) => {
                    conn.set_time(fast::unix_now());
                    conn.handle_input(&buf[..n])
                }
            },
            Some(delivery) = session.inbox.recv() => deliver(&mut conn, delivery, &mut unsent),
            Some(request) = session.control.recv() => {
                // XEP-0198 §5: resumed on another connection; this stream ends.
                conn.close(Some(StreamError::Conflict));
                takeover = Some(request);
            }
            // Until bound, and (TLS 1.3 0-RTT) until the client's Finished came.
            () = &mut login_deadline, if conn.is_logging_in() => conn.handle_timeout(),
            () = &mut idle, if conn.wants_ack() => conn.request_ack(),
            _ = shutdown.wait_for(|stop| *stop) => conn.close(Some(StreamError::SystemShutdown)),
        }
        drive(&ctx, &mut conn, &mut session, &mut bound).await;
        // Routed stanzas already queued go out in the same write.
        while let Ok(delivery) = session.inbox.try_recv() {
            deliver(&mut conn, delivery, &mut unsent);
        }
        if conn.has_output() {
            let output = conn.take_output();
            if takeover.is_some() {
                // The session goes to another connection: a goodbye to this one
                // (<conflict/>), without waiting long on a peer that may not read.
                let _ = tokio::time::timeout(GOODBYE_WRITE, stream.write_all(&output)).await;
            } else {
                tokio::select! {
                    // The write first: only one that cannot finish gives way (once
                    // shutdown is signalled, its branch is always ready).
                    biased;
                    written = stream.write_all(&output) => if written.is_err() {
                        conn.handle_eof();
                    },
                    // A peer that stopped reading (its network gone, the socket still
                    // open) must not keep its session from being resumed elsewhere.
                    Some(request) = session.control.recv() => {
                        conn.close(Some(StreamError::Conflict));
                        takeover = Some(request);
                    }
                    _ = shutdown.wait_for(|stop| *stop) => {
                        conn.close(Some(StreamError::SystemShutdown));
                    }
                }
            }
        }
        idle.as_mut().reset(Instant::now() + ACK_IDLE);
        if conn.is_closed() {
            break;
        }
    }
    let _ = stream.shutdown().await;
    drop(stream);
    let Some(jid) = bound else {
        return;
    };
    let resumable = conn.can_resume();
    let mut parked = Box::new(Parked {
        jid,
        session,
        sm: conn.take_stream_management(),
    });
    for stanza in unsent {
        park_stanza(&ctx, &mut parked, stanza);
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
    end(&ctx, parked);
}

/// Writes a routed stanza, or keeps it when the connection could not take it.
fn deliver(conn: &mut ServerConnection, delivery: Delivery, unsent: &mut Vec<Element>) {
    match delivery {
        Delivery::Stanza(stanza) => {
            if !conn.send_stanza(&stanza) {
                unsent.push(stanza);
            }
        }
        Delivery::Close(error) => conn.close(Some(error)),
    }
}

/// Queues a stanza for a session without a connection; one that does not fit
/// (the SM queue is full, or there is no SM) is undeliverable at once.
fn park_stanza(ctx: &Context, parked: &mut Parked, stanza: Element) {
    let refused = match &mut parked.sm {
        Some(sm) => sm.queue(stanza),
        None => Err(stanza),
    };
    if let Err(stanza) = refused {
        im::undeliverable(ctx, stanza);
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
        tokio::select! {
            Some(delivery) = parked.session.inbox.recv() => match delivery {
                Delivery::Stanza(stanza) => park_stanza(ctx, &mut parked, stanza),
                // Another connection bound this resource (conflict policy replace).
                Delivery::Close(_) => return Err(parked),
            },
            Some(request) = parked.session.control.recv() => match hand_over(parked, request) {
                Ok(jid) => return Ok(jid),
                // The resuming connection stopped waiting: keep waiting for another.
                Err(back) => parked = back,
            },
            () = &mut deadline => return Err(parked),
            _ = shutdown.wait_for(|stop| *stop) => return Err(parked),
        }
    }
}

/// The session ends for good: off the router and the registry; what it was sent
/// and never confirmed is undeliverable (XEP-0198 §4, RFC 6121 §8.5); then
/// unavailable presence for its other resources (RFC 6121 §4.5.3) as before.
fn end(ctx: &Context, parked: Box<Parked>) {
    let Parked {
        jid,
        mut session,
        sm,
    } = *parked;
    let was_available = ctx.router.unbind(&jid, session.id);
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
    for stanza in undelivered {
        im::undeliverable(ctx, stanza);
    }
    if was_available {
        // RFC 6121 §4.5.3: a session that ends without saying goodbye still goes
        // unavailable for its other resources.
        let unavailable = Element::new("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", jid.to_string());
        ctx.router
            .deliver_to_available(&jid.to_bare(), &unavailable, i8::MIN);
    }
}

/// Answers the core's events until it has none.
async fn drive(
    ctx: &Context,
    conn: &mut ServerConnection,
    session: &mut Session,
    bound: &mut Option<Jid>,
) {
    while let Some(event) = conn.poll_event() {
        match event {
            Event::NeedCredentials { username, domain } => {
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
            Event::Authenticated {
                jid,
                mechanism,
                user_agent,
            } => {
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
                if let Some(from) = conn.jid().cloned() {
                    im::handle_stanza(ctx, &from, stanza);
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
