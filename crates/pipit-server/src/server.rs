//! The listeners, connection admission, and the shared state every session sees.
//!
//! A certificate reload ([`Reloader::reload`], on SIGHUP in `pipit serve`) makes a
//! new [`Context`] generation: the same router, store and registries, with a core
//! configuration whose rustls configuration and `tls-server-end-point` hashes come
//! from the new files. New connections take the newest generation; sessions keep
//! the one they started with, so their TLS, and the channel binding they proved,
//! are never touched.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use pipit_proto::server::{EndPointHashes, Listener, ServerConfig, ServerConnection, SmConfig};
use pipit_store::SharedStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::archive::Archive;
use crate::config::Config;
use crate::error::ServerError;
use crate::limits::{Admission, Refusal};
use crate::resumption::Resumption;
use crate::router::Router;
use crate::session::{self, OsRandom};
use crate::throttle::Throttle;
use crate::tls;
use pipit_proto::random::Random;

/// What every session shares. Cloning it is cheap (everything but the core
/// configuration is behind an `Arc` shared by all clones); a certificate reload
/// makes a clone with a new [`proto`](Context::proto).
#[derive(Clone)]
pub struct Context {
    /// The protocol core's configuration, for the sessions of this generation.
    pub proto: Arc<ServerConfig>,
    /// The resolved server configuration.
    pub config: Config,
    /// Accounts, their archives and offline queues.
    pub store: SharedStore,
    /// The archive's group-commit writer.
    pub archive: Archive,
    /// Bound sessions.
    pub router: Arc<Router>,
    /// Resumable sessions by SM-ID (XEP-0198 §5).
    pub resumption: Arc<Resumption>,
    /// Failed password logins by address and account, for their delays.
    pub throttle: Arc<Throttle>,
    /// Flips to true when the server shuts down; every session watches it.
    pub shutdown: Arc<watch::Sender<bool>>,
    /// Open connections per address and in all.
    pub admission: Admission,
    next_session_id: Arc<AtomicU64>,
}

impl Context {
    /// A process-unique id for a new session.
    pub fn session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }
}

fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    OsRandom.fill(&mut secret);
    secret
}

/// The TLS parts of the core configuration, read from the files `config` names.
/// Each call gives a new rustls configuration with a session cache of its own: a
/// TLS session resumed across a reload would go on under the old certificate
/// while the core bound it to the new one's hash.
fn tls_parts(config: &Config) -> Result<(Arc<rustls::ServerConfig>, EndPointHashes), ServerError> {
    let resolver = tls::resolver(config)?;
    // `tls-server-end-point` binds to the certificate a connection is served,
    // which its SNI picks: the core gets one hash per name.
    let end_point_hashes = resolver.end_point_hashes();
    Ok((tls::server_config(resolver)?, end_point_hashes))
}

/// A server with its listeners bound, ready to [`run`](Server::run).
pub struct Server {
    c2s: TcpListener,
    direct_tls: TcpListener,
    /// The first generation, for [`context`](Server::context).
    ctx: Arc<Context>,
    current: Reloader,
}

/// Reloads the certificates of a running server; cheap to clone, usable from any
/// task (a signal handler) while [`Server::run`] runs.
#[derive(Clone)]
pub struct Reloader {
    current: Arc<RwLock<Arc<Context>>>,
}

impl Reloader {
    /// Reads the certificate and key files again (the paths given at start) and
    /// makes new connections use them; sessions already open keep theirs. On any
    /// error (a file unreadable, a key that does not match, a certificate that
    /// does not name its domain) nothing changes: the server keeps serving the
    /// certificates it has, and the error says what to fix.
    pub fn reload(&self) -> Result<(), ServerError> {
        let old = self.current();
        let (tls, end_point_hashes) = tls_parts(&old.config)?;
        let proto = Arc::new(ServerConfig {
            tls,
            end_point_hashes,
            // The rest carries over, the decoy secret too: decoy salts must stay
            // the same per username, or a change would give unknown accounts away.
            ..ServerConfig::clone(&old.proto)
        });
        let new = Arc::new(Context {
            proto,
            ..Context::clone(&old)
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// The newest generation.
    pub fn current(&self) -> Arc<Context> {
        // Replacing an `Arc` cannot be left half done: a poisoned lock is usable.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Server {
    /// Opens the store, loads or generates the certificates and binds both listeners.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let (tls, end_point_hashes) = tls_parts(&config)?;
        let proto = Arc::new(ServerConfig {
            domains: config.domains.clone(),
            tls,
            end_point_hashes,
            conflict_policy: config.conflict_policy,
            limits: config.limits,
            scram_iterations: config.scram_iterations,
            decoy_secret: random_secret(),
            stream_management: SmConfig {
                resume_timeout_secs: u32::try_from(config.sm_resume_timeout.as_secs())
                    .unwrap_or(u32::MAX),
                ..SmConfig::default()
            },
        });
        let store = pipit_store::open(&config.database).await?;
        let listen = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })
        };
        let c2s = listen(config.c2s_addr).await?;
        let direct_tls = listen(config.direct_tls_addr).await?;
        let throttle = Throttle::new(config.throttle.clone());
        let max_resources = usize::try_from(config.max_sessions_per_user).unwrap_or(usize::MAX);
        let admission = Admission::new(config.connection_limits);
        let archive = Archive::start(Arc::clone(&store), config.max_offline_messages);
        let ctx = Arc::new(Context {
            proto,
            config,
            store,
            archive,
            router: Arc::new(Router::with_max_resources(max_resources)),
            resumption: Arc::new(Resumption::default()),
            throttle: Arc::new(throttle),
            shutdown: Arc::new(watch::channel(false).0),
            admission,
            next_session_id: Arc::new(AtomicU64::new(1)),
        });
        let current = Reloader {
            current: Arc::new(RwLock::new(Arc::clone(&ctx))),
        };
        Ok(Server {
            c2s,
            direct_tls,
            ctx,
            current,
        })
    }

    /// The bound STARTTLS address (the real port when port 0 was asked for).
    pub fn c2s_addr(&self) -> SocketAddr {
        self.c2s
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound Direct TLS address.
    pub fn direct_tls_addr(&self) -> SocketAddr {
        self.direct_tls
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state, for embedding and tests: the generation the server
    /// started with. Its router, store and registries are every generation's;
    /// [`Reloader::current`] has the newest core configuration.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// A handle that reloads the certificates while the server runs.
    pub fn reloader(&self) -> Reloader {
        self.current.clone()
    }

    /// Accepts connections until `shutdown` completes, then ends every session with
    /// `<system-shutdown/>` and waits for them to flush.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut sessions = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (accepted, listener) = tokio::select! {
                a = self.c2s.accept() => (a, Listener::StartTls),
                a = self.direct_tls.accept() => (a, Listener::DirectTls),
                Some(_) = sessions.join_next() => continue,
                () = &mut shutdown => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let ctx = self.current.current();
                    match ctx.admission.admit(peer.ip(), Instant::now()) {
                        Ok(slot) => {
                            sessions.spawn(async move {
                                // Held for the session's life, detached time included.
                                let _slot = slot;
                                session::run(ctx, stream, peer, listener).await;
                            });
                        }
                        Err(refusal) => {
                            refuse(&mut sessions, &ctx, stream, peer, listener, refusal)
                        }
                    }
                }
                // Out of file descriptors and the like: the listener itself is fine.
                Err(e) => tracing::warn!("accept failed: {e}"),
            }
        }
        self.ctx.shutdown.send_replace(true);
        while sessions.join_next().await.is_some() {}
    }
}

/// How long a refused connection may take to be told (TLS handshake included)
/// and to close; a client that does not read meanwhile is cut off.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(5);

/// Refused connections being told at once. Each address's rate bounds its own
/// refusals, but many addresses together are not bounded by it; past this many,
/// the rest get only what fits in one non-blocking write (nothing over Direct
/// TLS), so refusing connections can never cost more than serving them.
const MAX_REFUSALS_IN_FLIGHT: usize = 256;

static REFUSALS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Tells a refused connection why, with the stream error of
/// [`Refusal::stream_error`] (its `<text/>` names the limit), then closes it.
///
/// On the STARTTLS listener that is a stream header and the error at once, in
/// plain text, as RFC 6120 §4.9.1.1 has a server open its stream before an error
/// even when the client has not opened its own. Over Direct TLS nothing can be
/// said before the handshake (XEP-0368), so for the per-address and total caps
/// the handshake is finished and the same error sent inside it: one handshake
/// per refusal, which the address's rate bounds as it bounds admitted ones. A
/// refusal for the rate itself gets no handshake, since bounding handshakes is
/// what the rate is for: over Direct TLS that connection is just closed.
fn refuse(
    tasks: &mut JoinSet<()>,
    ctx: &Context,
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: Listener,
    refusal: Refusal,
) {
    match &refusal {
        Refusal::Total { .. } => tracing::warn!("{peer}: refused: {refusal}"),
        Refusal::Rate { .. } => tracing::debug!("{peer}: refused: {refusal}"),
        _ => tracing::info!("{peer}: refused: {refusal}"),
    }
    if listener == Listener::DirectTls && refusal.is_rate() {
        return;
    }
    let in_flight = REFUSALS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    if in_flight >= MAX_REFUSALS_IN_FLIGHT {
        REFUSALS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        if listener == Listener::StartTls {
            let _ = stream.try_write(&refusal_bytes(ctx, &refusal));
        }
        return;
    }
    let error = refusal_bytes(ctx, &refusal);
    let tls = Arc::clone(&ctx.proto.tls);
    let mut shutdown = ctx.shutdown.subscribe();
    tasks.spawn(async move {
        let told = async {
            match listener {
                Listener::DirectTls => refuse_over_tls(&mut stream, tls, &error).await?,
                _ => stream.write_all(&error).await?,
            }
            linger(&mut stream).await
        };
        tokio::select! {
            told = tokio::time::timeout(REFUSAL_DEADLINE, told) => match told {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("{peer}: refusal cut short: {e}"),
                Err(_) => tracing::debug!("{peer}: refusal took too long"),
            },
            // Stopping the server does not wait for clients that do not close.
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
        REFUSALS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    });
}

/// The stream header and stream error the core writes for `refusal`: stream
/// errors are made in one place (`pipit_proto::error`).
fn refusal_bytes(ctx: &Context, refusal: &Refusal) -> Vec<u8> {
    let mut conn = ServerConnection::new(
        Arc::clone(&ctx.proto),
        Listener::StartTls,
        Box::new(OsRandom),
    );
    conn.close(Some(refusal.stream_error()));
    conn.take_output()
}

/// Completes a TLS handshake only to send `plaintext` and close_notify.
async fn refuse_over_tls(
    stream: &mut TcpStream,
    config: Arc<rustls::ServerConfig>,
    plaintext: &[u8],
) -> std::io::Result<()> {
    let mut tls = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    // rustls holds it until the handshake gives it keys to go out under.
    tls.writer().write_all(plaintext)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    while tls.is_handshaking() {
        while tls.wants_write() {
            tls.write_tls(&mut out)?;
        }
        stream.write_all(&out).await?;
        out.clear();
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let mut input = &buf[..n];
        while !input.is_empty() {
            tls.read_tls(&mut input)?;
            tls.process_new_packets().map_err(std::io::Error::other)?;
        }
    }
    tls.send_close_notify();
    while tls.wants_write() {
        tls.write_tls(&mut out)?;
    }
    stream.write_all(&out).await
}

/// Closes our side, then reads until the client closes its own: closing with
/// input unread makes the kernel send a reset, which can destroy what was
/// written before the client has read it.
async fn linger(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.shutdown().await?;
    let mut buf = [0u8; 4096];
    while stream.read(&mut buf).await? != 0 {}
    Ok(())
}
