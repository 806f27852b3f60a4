//! `pipit`: run the server and manage its accounts.

mod bench;
mod check;
mod login;
mod soak;
mod user;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use pipit_server::config::DomainCertificate;
use pipit_server::{Config, Server, Settings};

#[derive(Parser)]
#[command(
    name = "pipit",
    version,
    about = "An XMPP server whose logins take the fewest round trips the network allows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ConfigArgs),
    /// Manage accounts (works while the server runs).
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Log in to any XMPP server and report the round trips it took.
    Login(login::LoginArgs),
    /// Grade any XMPP server's support for each pipelined login form.
    Check(check::CheckArgs),
    /// Run a bounded soak test against a server: well-behaved and misbehaving
    /// clients for a set time, then a report.
    Soak(soak::SoakArgs),
    /// Load-test any XMPP server: logins/s, idle sessions and their memory, or
    /// message rates; a bounded run, then a report (a table, or --json).
    Bench(bench::BenchArgs),
}

/// Settings shared by every command; each overrides the `--config` file.
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML configuration file; flags given here win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the database and the generated certificate [default: pipit-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A domain to serve; repeat for virtual hosts [default: localhost].
    #[arg(long = "domain", value_name = "NAME")]
    domains: Vec<String>,
    /// STARTTLS c2s listener [default: 127.0.0.1:5222]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    c2s_addr: Option<SocketAddr>,
    /// Direct TLS (XEP-0368) listener [default: 127.0.0.1:5223].
    #[arg(long, value_name = "ADDR")]
    direct_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain (with --key) instead of the generated self-signed one.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// A domain's own certificate and key, served to clients that ask for that
    /// domain by SNI (--cert stays the default); repeatable.
    #[arg(long = "domain-cert", value_name = "DOMAIN=CERT,KEY")]
    domain_certs: Vec<DomainCertificate>,
    /// postgres:// URL or SQLite file [default: DATA_DIR/pipit.sqlite3].
    #[arg(long, value_name = "URL|PATH")]
    database: Option<String>,
    /// What a second login with the same resource does: replace, refuse or rename.
    #[arg(long, value_name = "POLICY")]
    conflict_policy: Option<String>,
    /// PBKDF2 iterations for new SCRAM credentials [default: 4096].
    #[arg(long, value_name = "N")]
    scram_iterations: Option<u32>,
    /// Largest stanza accepted, in bytes [default: 262144].
    #[arg(long, value_name = "BYTES")]
    max_stanza_bytes: Option<usize>,
    /// Deepest nesting inside a stanza, the stanza itself counted [default: 32].
    #[arg(long, value_name = "N")]
    max_stanza_depth: Option<usize>,
    /// Most attributes on one start tag [default: 64].
    #[arg(long, value_name = "N")]
    max_attributes: Option<usize>,
    /// Seconds from connect to bound resource before the server gives up [default: 60].
    #[arg(long, value_name = "SECS")]
    login_timeout_secs: Option<u64>,
    /// Seconds a client has to send its stream header, after connect, after TLS
    /// and after a SASL success [default: 30].
    #[arg(long, value_name = "SECS")]
    stream_open_timeout_secs: Option<u64>,
    /// Seconds a TLS handshake may take [default: 30].
    #[arg(long, value_name = "SECS")]
    tls_handshake_timeout_secs: Option<u64>,
    /// Seconds a bound session may be silent before it is pinged; 0: never
    /// [default: 300].
    #[arg(long, value_name = "SECS")]
    idle_timeout_secs: Option<u64>,
    /// Seconds a pinged session has to answer before its stream ends [default: 60].
    #[arg(long, value_name = "SECS")]
    ping_timeout_secs: Option<u64>,
    /// Routed stanzas held for a client that is not reading, before its stream
    /// ends with resource-constraint [default: 1000].
    #[arg(long, value_name = "N")]
    max_queued_stanzas: Option<usize>,
    /// Bytes of stanzas held for a client that is not reading before its stream
    /// ends with resource-constraint [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    max_queued_bytes: Option<usize>,
    /// Failed logins an address may have before its login attempts are delayed
    /// [default: 5].
    #[arg(long, value_name = "N")]
    auth_free_failures: Option<u32>,
    /// Longest delay of a throttled login attempt; 0 turns throttling off
    /// [default: 30].
    #[arg(long, value_name = "SECS")]
    auth_max_delay_secs: Option<u64>,
    /// Seconds a dropped session with stream management waits to be resumed
    /// (XEP-0198); 0 turns resumption off [default: 300].
    #[arg(long, value_name = "SECS")]
    sm_resume_timeout_secs: Option<u64>,
    /// Connections one address (IPv4, or IPv6 /64) may hold open; 0: no limit
    /// [default: 50].
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<u32>,
    /// New connections one address may open per second after its burst; 0: no
    /// limit [default: 10].
    #[arg(long, value_name = "N")]
    connection_rate_per_ip: Option<u32>,
    /// New connections one address may open at once [default: 100].
    #[arg(long, value_name = "N")]
    connection_burst_per_ip: Option<u32>,
    /// Connections the server holds open in all; 0: no limit [default: 10000].
    #[arg(long, value_name = "N")]
    max_connections: Option<u32>,
    /// Resources one account may have bound at once; 0: no limit [default: 10].
    #[arg(long, value_name = "N")]
    max_sessions_per_user: Option<u32>,
    /// Messages kept for an account while it is offline (XEP-0160); more are
    /// refused with service-unavailable [default: 1000].
    #[arg(long, value_name = "N")]
    max_offline_messages: Option<usize>,
    /// The most messages one archive query (XEP-0313) returns; a larger page
    /// asked for is cut to this [default: 100].
    #[arg(long, value_name = "N")]
    mam_max_page: Option<usize>,
    /// Entries a roster may hold (contacts, and subscription requests waiting for
    /// an answer); 0: no limit [default: 1000].
    #[arg(long, value_name = "N")]
    max_roster_items: Option<usize>,
}

impl ConfigArgs {
    /// The file (if any) with these flags laid over it, resolved.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        let flags = Settings {
            data_dir: self.data_dir.clone(),
            domains: (!self.domains.is_empty()).then(|| self.domains.clone()),
            c2s_addr: self.c2s_addr,
            direct_tls_addr: self.direct_tls_addr,
            cert: self.cert.clone(),
            key: self.key.clone(),
            certificates: (!self.domain_certs.is_empty()).then(|| self.domain_certs.clone()),
            database: self.database.clone(),
            conflict_policy: self.conflict_policy.clone(),
            scram_iterations: self.scram_iterations,
            max_stanza_bytes: self.max_stanza_bytes,
            max_stanza_depth: self.max_stanza_depth,
            max_attributes: self.max_attributes,
            login_timeout_secs: self.login_timeout_secs,
            stream_open_timeout_secs: self.stream_open_timeout_secs,
            tls_handshake_timeout_secs: self.tls_handshake_timeout_secs,
            idle_timeout_secs: self.idle_timeout_secs,
            ping_timeout_secs: self.ping_timeout_secs,
            max_queued_stanzas: self.max_queued_stanzas,
            max_queued_bytes: self.max_queued_bytes,
            auth_free_failures: self.auth_free_failures,
            auth_max_delay_secs: self.auth_max_delay_secs,
            sm_resume_timeout_secs: self.sm_resume_timeout_secs,
            max_connections_per_ip: self.max_connections_per_ip,
            connection_rate_per_ip: self.connection_rate_per_ip,
            connection_burst_per_ip: self.connection_burst_per_ip,
            max_connections: self.max_connections,
            max_sessions_per_user: self.max_sessions_per_user,
            max_offline_messages: self.max_offline_messages,
            mam_max_page: self.mam_max_page,
            max_roster_items: self.max_roster_items,
        };
        Ok(Config::resolve(file.merge(flags))?)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::User { command } => user::run(command).await,
            Command::Login(args) => login::run(args).await,
            Command::Check(args) => check::run(args).await,
            Command::Soak(args) => soak::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    })
}

async fn serve(args: ConfigArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let data_dir = config.data_dir.clone();
    let domains = config.domains.clone();
    let database = config.database.clone();
    let self_signed = config.cert.is_none();
    let server = Server::bind(config).await?;
    // Before the `listening` line: from then on a SIGHUP must reload, not kill.
    #[cfg(unix)]
    reload_on_sighup(server.reloader())?;
    println!(
        "pipit {} serving {}",
        env!("CARGO_PKG_VERSION"),
        domains.join(", ")
    );
    println!(
        "  c2s (STARTTLS, TLS required before auth): {}",
        server.c2s_addr()
    );
    println!(
        "  Direct TLS (XEP-0368):                    {}",
        server.direct_tls_addr()
    );
    println!("  database:                                 {database}");
    if self_signed {
        println!(
            "  certificate: self-signed, in {}",
            data_dir.join("tls").display()
        );
    }
    println!(
        "Add a user: pipit user add alice@{} --data-dir {}",
        domains[0],
        data_dir.display()
    );
    println!(
        "listening c2s={} direct-tls={}",
        server.c2s_addr(),
        server.direct_tls_addr()
    );
    server.run(shutdown_signal()).await;
    println!("pipit stopped");
    Ok(())
}

/// Reloads the certificates on each SIGHUP, the usual way to tell a daemon its
/// files changed (a renewed certificate). Sessions already open keep theirs; a
/// reload that fails is logged and the certificates served stay as they were.
#[cfg(unix)]
fn reload_on_sighup(reloader: pipit_server::Reloader) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("installing a SIGHUP handler")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => tracing::info!("SIGHUP: certificates reloaded for new connections"),
                Err(e) => tracing::error!(
                    "SIGHUP: certificates not reloaded, still serving the old ones: {e}"
                ),
            }
        }
    });
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
