//! `pipit soak`: a bounded soak test against a running server. Well-behaved clients
//! log in (stunt, SASL2 and FAST in turn), send themselves a message, wait for it and
//! log out, over and over, from addresses spread over 127.0.0.0/8 as if from many
//! hosts; beside them misbehaving ones send garbage, open streams one byte at a time
//! (slowloris), flood messages without reading, or guess passwords. It stops by
//! itself after `--duration`, and reports what the well-behaved clients met (every
//! failure is a refusal the server owes an explanation for), what became of each
//! misbehaving kind, and the server's resident memory over time (from /proc, with
//! `--server-pid`), so growth after warm-up shows.

mod misbehaving;
pub(crate) mod report;
mod well_behaved;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use pipit_client::TlsSettings;

use crate::login::{parse_addr, parse_duration};
use report::{Outcomes, Report};

/// Arguments of `pipit soak`.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// STARTTLS address of the server under test.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    server: String,
    /// Its Direct TLS address (SASL2 and FAST logins go there).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    direct_tls: String,
    /// The accounts' domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Accounts are PREFIX1 … PREFIXN (see `pipit user add-many`).
    #[arg(long, default_value = "soak")]
    prefix: String,
    /// How many such accounts exist; the last `--misbehaving` of them flood.
    #[arg(long, default_value_t = 1000)]
    accounts: u32,
    /// Their password.
    #[arg(long)]
    password: String,
    /// Well-behaved clients running at once.
    #[arg(long, default_value_t = 200)]
    clients: u32,
    /// Misbehaving clients running at once, shared among garbage, slowloris, flood
    /// and password guessing.
    #[arg(long, default_value_t = 20)]
    misbehaving: u32,
    /// How long to run, e.g. 60s or 10m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// The server's process id, to sample its resident memory every second.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Trust this CA or self-signed certificate (PEM or DER).
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Which clients an address belongs to: 127.1–64.x.y or 127.128–191.x.y.
#[derive(Clone, Copy)]
pub(crate) enum Group {
    WellBehaved = 1,
    Misbehaving = 128,
}

/// What every client task needs.
pub(crate) struct Plan {
    pub server: String,
    pub direct_tls: String,
    pub domain: String,
    pub prefix: String,
    pub accounts: u32,
    pub password: String,
    pub tls: TlsSettings,
    pub deadline: Instant,
    /// Well-behaved clients at once.
    pub clients: u32,
    /// Spread the clients' source addresses over 127.0.0.0/8 (the server is on
    /// loopback, where every such address reaches it).
    pub spread: bool,
}

impl Plan {
    /// The JID of account number `n` (1-based, wrapping over the pool).
    pub fn account(&self, n: u32) -> String {
        format!("{}{}@{}", self.prefix, n % self.accounts + 1, self.domain)
    }

    /// Source address number `index` of a group: 127.G.x.y and on into the next
    /// values of G, 64 of them per group, so that 2^22 addresses look like hosts of
    /// their own. Well-behaved clients take a new one each round (a real host does
    /// not log in a hundred times a second, and the server's per-address rate limit
    /// would rightly refuse one that did); misbehaving ones keep theirs, so that
    /// per-address limits meet them.
    pub fn source(&self, group: Group, index: u32) -> Option<IpAddr> {
        self.spread.then(|| {
            let [_, high, x, y] = (index % (1 << 22)).to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(127, group as u8 + high, x, y.max(1)))
        })
    }
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    if args.accounts < args.clients + args.misbehaving {
        bail!(
            "--accounts must be at least --clients plus --misbehaving: each client needs an account of its own"
        );
    }
    let mut tls = TlsSettings::builder();
    for file in &args.ca {
        tls = tls.add_ca_file(file)?;
    }
    let started = Instant::now();
    let plan = Arc::new(Plan {
        spread: args.server.starts_with("127.") && args.direct_tls.starts_with("127."),
        server: args.server,
        direct_tls: args.direct_tls,
        domain: args.domain,
        prefix: args.prefix,
        accounts: args.accounts,
        password: args.password,
        tls: tls.build()?,
        deadline: started + args.duration,
        clients: args.clients,
    });
    let outcomes = Arc::new(Outcomes::default());
    let memory = tokio::spawn(report::sample_rss(args.server_pid, plan.deadline));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..args.clients {
        tasks.spawn(well_behaved::run(
            Arc::clone(&plan),
            Arc::clone(&outcomes),
            n,
        ));
    }
    for n in 0..args.misbehaving {
        tasks.spawn(misbehaving::run(
            Arc::clone(&plan),
            Arc::clone(&outcomes),
            n,
        ));
    }
    while tasks.join_next().await.is_some() {}
    let report = Report::new(
        &outcomes,
        memory.await?,
        started.elapsed(),
        args.clients,
        args.misbehaving,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    if report.refused > 0 {
        bail!("{} well-behaved logins or messages failed", report.refused);
    }
    Ok(())
}
