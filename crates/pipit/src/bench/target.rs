//! The server under test and the account pool, shared by every scenario: the
//! flags that name them, and the login options each simulated client uses.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use pipit_client::{LoginOptions, Mechanism, Mode, Session, State, TlsSettings};
use rustls::client::Resumption as TicketCache;
use serde::Serialize;

use crate::login::{host_of, parse_addr, parse_duration, parse_mechanism};

/// Session cache entries per resuming client: it talks to one server.
const TICKETS_PER_CLIENT: usize = 4;

/// Flags every scenario takes.
#[derive(clap::Args, Debug)]
pub struct TargetArgs {
    /// STARTTLS address of the server under test.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    server: String,
    /// Its Direct TLS (XEP-0368) address, used by the direct, sasl2 and FAST modes
    /// [default: the --server host, port 5223].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    direct_tls: Option<String>,
    /// The accounts' domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Accounts are PREFIX1 … PREFIXCOUNT@DOMAIN, as `pipit user add-many PREFIX
    /// COUNT --password PW` makes them; client n uses account n (wrapping).
    #[arg(long = "accounts", value_name = "PREFIX", default_value = "bench")]
    prefix: String,
    /// How many such accounts exist.
    #[arg(long, value_name = "M", default_value_t = 1000)]
    count: u32,
    /// Their password.
    #[arg(long)]
    password: String,
    /// How clients log in: lockstep, pipelined, stunt, direct, sasl2, fast,
    /// fast-0rtt or sm-resume. FAST modes first log each client in once with
    /// sasl2, uncounted, for its token.
    #[arg(long, default_value = "stunt", value_parser = parse_mode)]
    mode: Mode,
    /// SASL mechanism [default: the strongest offered].
    #[arg(long, value_name = "MECH", value_parser = parse_mechanism)]
    mech: Option<Mechanism>,
    /// Emulate this round-trip time through pipit-client's userspace relay, e.g.
    /// 100ms. The relay reaches the server from 127.0.0.1, so the server's per-IP
    /// limits then need raising.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    rtt: Option<Duration>,
    /// Resume each client's TLS session from its previous login's ticket: auto
    /// does for fast, fast-0rtt and sm-resume (a returning client), and makes
    /// every other login a full handshake.
    #[arg(long, value_enum, default_value_t = Resumption::Auto)]
    tls_resumption: Resumption,
    /// Trust this CA or self-signed certificate (PEM or DER); repeatable.
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// DANGEROUS: accept any certificate (throwaway test servers only).
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// Longest one login (and each later network wait) may take before it counts
    /// as failed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What the report says about the target and the logins.
#[derive(Serialize, Debug, Clone)]
pub struct TargetSummary {
    pub server: String,
    pub direct_tls: String,
    pub domain: String,
    pub accounts: String,
    pub account_count: u32,
    pub mode: &'static str,
    pub mechanism: Option<&'static str>,
    pub rtt_ms: Option<f64>,
    pub tls_resumption: bool,
    /// Source addresses spread over 127.0.0.0/8, one per connection.
    pub spread_addresses: bool,
}

/// The server, the accounts, and how to log in: what every client task reads.
pub struct Target {
    server: String,
    direct_tls: String,
    domain: String,
    prefix: String,
    count: u32,
    password: String,
    mode: Mode,
    mechanism: Option<Mechanism>,
    rtt: Option<Duration>,
    timeout: Duration,
    resume_tls: bool,
    /// The trust, with the session cache `resume_tls` asks for: without
    /// resumption one configuration serves all clients; with it each client gets
    /// a copy with a cache of its own, so that each holds its own tickets as a
    /// real one would.
    tls: Arc<rustls::ClientConfig>,
    spread: bool,
}

/// One simulated client: its account, and what its logins carry over.
pub struct Client {
    pub index: u32,
    state: State,
    tls: TlsSettings,
}

impl Target {
    pub fn new(args: TargetArgs) -> anyhow::Result<Target> {
        if args.count == 0 {
            bail!("--count must be at least 1");
        }
        if args.timeout.is_zero() {
            bail!("--timeout must be more than zero");
        }
        let mut trust = TlsSettings::builder();
        if args.insecure {
            trust = trust.dangerous_accept_any_certificate();
        }
        for file in &args.ca {
            trust = trust.add_ca_file(file)?;
        }
        let resume_tls = match args.tls_resumption {
            Resumption::On => true,
            Resumption::Off => false,
            Resumption::Auto => matches!(args.mode, Mode::Fast | Mode::Fast0Rtt | Mode::SmResume),
        };
        let mut tls = trust.client_config(rustls::DEFAULT_VERSIONS)?;
        if !resume_tls {
            tls.resumption = TicketCache::disabled();
        }
        let direct_tls = args.direct_tls.unwrap_or_else(|| {
            format!(
                "{}:{}",
                host_of(&args.server),
                pipit_client::options::DIRECT_TLS_PORT
            )
        });
        let target = Target {
            spread: args.server.starts_with("127.") && direct_tls.starts_with("127."),
            server: args.server,
            direct_tls,
            domain: args.domain,
            prefix: args.prefix,
            count: args.count,
            password: args.password,
            mode: args.mode,
            mechanism: args.mech,
            rtt: args.rtt,
            timeout: args.timeout,
            resume_tls,
            tls: Arc::new(tls),
        };
        // A bad domain or prefix is a usage error, not a failure per login.
        target
            .options(&target.client(0), Mode::Stunt, 0)?
            .validate()?;
        Ok(target)
    }

    pub fn summary(&self) -> TargetSummary {
        TargetSummary {
            server: self.server.clone(),
            direct_tls: self.direct_tls.clone(),
            domain: self.domain.clone(),
            accounts: self.prefix.clone(),
            account_count: self.count,
            mode: self.mode.name(),
            mechanism: self.mechanism.map(|m| m.name()),
            rtt_ms: self.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
            tls_resumption: self.resume_tls,
            spread_addresses: self.spread,
        }
    }

    /// Whether connections go through the `--rtt` relay.
    pub fn relayed(&self) -> bool {
        self.rtt.is_some()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The bare JID of client `index`'s account.
    pub fn account(&self, index: u32) -> String {
        format!("{}{}@{}", self.prefix, index % self.count + 1, self.domain)
    }

    /// Client `index`, with a fresh state (and TLS session cache, if resuming).
    pub fn client(&self, index: u32) -> Client {
        let tls = if self.resume_tls {
            let mut own = (*self.tls).clone();
            own.resumption = TicketCache::in_memory_sessions(TICKETS_PER_CLIENT);
            Arc::new(own)
        } else {
            Arc::clone(&self.tls)
        };
        Client {
            index,
            state: State::in_memory(),
            tls: TlsSettings::from_rustls(tls),
        }
    }

    /// The options of `client`'s login in `mode`; `connection` numbers its
    /// connections over the whole run, so each gets a source address of its own.
    pub fn options(
        &self,
        client: &Client,
        mode: Mode,
        connection: u64,
    ) -> anyhow::Result<LoginOptions> {
        let mut options = LoginOptions::new(&self.account(client.index), self.password.clone())?;
        options.server = self.server.clone();
        options.direct_tls = self.direct_tls.clone();
        options.mode = mode;
        options.mechanism = self.mechanism;
        options.resource = format!("bench{}", client.index);
        options.tls = client.tls.clone();
        options.state = client.state.clone();
        options.emulated_rtt = self.rtt;
        options.timeout = self.timeout;
        options.local_addr = self.spread.then(|| source(connection));
        Ok(options)
    }

    /// The uncounted login a FAST or sm-resume client needs first: SASL2 with the
    /// password, which leaves a FAST token (and a session ticket) in the client's
    /// state. `None` when the mode needs none; otherwise the session, or why it
    /// failed.
    pub async fn warm_up(
        &self,
        client: &Client,
        connection: u64,
    ) -> Option<Result<Session, String>> {
        if !matches!(self.mode, Mode::Fast | Mode::Fast0Rtt | Mode::SmResume) {
            return None;
        }
        let options = match self.options(client, Mode::Sasl2, connection) {
            Ok(options) => options,
            Err(e) => return Some(Err(format!("warm-up (sasl2): {e}"))),
        };
        Some(
            Session::login(&options)
                .await
                .map_err(|e| format!("warm-up (sasl2): {e}")),
        )
    }
}

/// Source address number `n`: 127.X.Y.Z from 127.2.0.1 on, a different one for
/// each connection, so that neither the 64k ports of one address nor a server's
/// per-address limits bound the run (every 127.0.0.0/8 address reaches a server
/// listening on loopback). 2^22 of them before they repeat.
pub fn source(n: u64) -> IpAddr {
    let n = (n % (1 << 22)) as u32 + 1;
    let [_, high, x, y] = n.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 2 + high, x, y))
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::from_name(&s.to_ascii_lowercase()).ok_or_else(|| {
        "expected lockstep, pipelined, stunt, direct, sasl2, fast, fast-0rtt or sm-resume".into()
    })
}

/// Whether clients resume TLS sessions.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Resumption {
    /// As a returning client of the mode would.
    Auto,
    /// Always resume.
    On,
    /// Never: every login a full handshake.
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_distinct_loopback_addresses() {
        assert_eq!(source(0), IpAddr::V4(Ipv4Addr::new(127, 2, 0, 1)));
        assert_eq!(source(255), IpAddr::V4(Ipv4Addr::new(127, 2, 1, 0)));
        let all: std::collections::HashSet<_> = (0..100_000).map(source).collect();
        assert_eq!(all.len(), 100_000);
        assert!(all.iter().all(|a| a.is_loopback()));
        assert_eq!(source(1 << 22), source(0));
    }
}
