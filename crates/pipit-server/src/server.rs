//! The listeners and the shared state every session sees.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pipit_proto::server::{Listener, ServerConfig, SmConfig};
use pipit_store::SharedStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::error::ServerError;
use crate::resumption::Resumption;
use crate::router::Router;
use crate::session::{self, OsRandom};
use crate::throttle::Throttle;
use crate::tls;
use pipit_proto::random::Random;

/// What every session shares.
pub struct Context {
    /// The protocol core's configuration.
    pub proto: Arc<ServerConfig>,
    /// The resolved server configuration.
    pub config: Config,
    /// Accounts and, later, everything else stored.
    pub store: SharedStore,
    /// Bound sessions.
    pub router: Router,
    /// Resumable sessions by SM-ID (XEP-0198 §5).
    pub resumption: Resumption,
    /// Failed password logins by address and account, for their delays.
    pub throttle: Throttle,
    /// Flips to true when the server shuts down; every session watches it.
    pub shutdown: watch::Sender<bool>,
    next_session_id: AtomicU64,
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

/// A server with its listeners bound, ready to [`run`](Server::run).
pub struct Server {
    c2s: TcpListener,
    direct_tls: TcpListener,
    ctx: Arc<Context>,
}

impl Server {
    /// Opens the store, loads or generates the certificates and binds both listeners.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let resolver = tls::resolver(&config)?;
        // `tls-server-end-point` binds to the certificate a connection is served,
        // which its SNI picks: the core gets one hash per name.
        let end_point_hashes = resolver.end_point_hashes();
        let proto = Arc::new(ServerConfig {
            domains: config.domains.clone(),
            tls: tls::server_config(resolver)?,
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
        let ctx = Arc::new(Context {
            proto,
            config,
            store,
            router: Router::default(),
            resumption: Resumption::default(),
            throttle,
            shutdown: watch::channel(false).0,
            next_session_id: AtomicU64::new(1),
        });
        Ok(Server {
            c2s,
            direct_tls,
            ctx,
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

    /// The shared state, for embedding and tests.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
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
                    let ctx = Arc::clone(&self.ctx);
                    sessions.spawn(session::run(ctx, stream, peer, listener));
                }
                // Out of file descriptors and the like: the listener itself is fine.
                Err(e) => tracing::warn!("accept failed: {e}"),
            }
        }
        self.ctx.shutdown.send_replace(true);
        while sessions.join_next().await.is_some() {}
    }
}
