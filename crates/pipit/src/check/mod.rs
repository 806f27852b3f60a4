//! `pipit check`: a pipelining conformance probe for any XMPP server.
//!
//! Each check opens its own connection(s), writes whole flights (TLS driven from buffers,
//! so a ClientHello can share a write with `<starttls/>`), reads the answers until a
//! condition or the timeout, and grades the server: pass, fail or not offered, with the
//! transcript as evidence and the round trips of each login that completed.
//!
//! Layout: `checks` (one function per check), `sasl2_checks` (the SASL2, Bind2 and IAP
//! checks), `fast_checks` (the FAST token checks), `zero_rtt_checks` (FAST in TLS 1.3
//! 0-RTT), `replay_check` (a 0-RTT first flight replayed byte for byte, with the
//! deterministic TLS client that makes it), `flows` (login steps they share),
//! `probe` (a scripted connection), `xmpp` and `sasl2` (what is written and how answers
//! are read), `tls` (client configurations), `report` (table and JSON), `transcript`
//! (evidence).
//!
//! Run order: the lockstep baseline first (it learns the mechanisms), then the pipelined
//! auth checks (a server that passes them gets pipelined logins in the STARTTLS, stunt and
//! Direct TLS checks, so their round trips show the best form it takes; others get
//! lockstep logins there, so each check grades one thing), then the rest; the SASL2 and
//! FAST checks go over Direct TLS when it is given. Printed in a fixed order.

mod checks;
mod fast_checks;
mod flows;
mod probe;
mod replay_check;
mod report;
mod sasl2;
mod sasl2_checks;
mod tls;
mod transcript;
mod xmpp;
mod zero_rtt_checks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pipit_proto::jid::Jid;
use rustls::pki_types::ServerName;

use report::{Finding, Verdict};
use tls::Trust;
use xmpp::Account;

/// Arguments of `pipit check`.
#[derive(clap::Args)]
#[command(after_help = "Checks: lockstep-login (baseline), starttls-pipelined, \
    stunt-clienthello, plaintext-after-starttls-ignored, auth-restart-bind-pipelined, \
    auth-restart-bind-pipelined-no-xml-decl, sasl-failure-pipelined-restart, \
    tls13-resumption, tls12-resumption, direct-tls, sasl2-bind2, iap-pipelined, \
    iap-stale-version-refused, fast-token, fast-replay-refused, fast-invalidate, fast-0rtt, \
    0rtt-replay.\n\n\
    plaintext-after-starttls-ignored sends a plaintext login with a decoy password right \
    behind <starttls/>; the real password only ever travels inside TLS.\n\
    The SASL2 checks (XEP-0388 with Bind2, XEP-0386; IAP, XEP-0509) and the FAST checks \
    (XEP-0484) use Direct TLS when --direct-tls is given, else STARTTLS. Each FAST check \
    asks for a token of its own (fast-invalidate ends its token); the report hides them. \
    fast-0rtt (TLS 1.3 early data) and 0rtt-replay (that login's first flight sent again, \
    byte for byte, which must log nobody in) need --direct-tls.\n\
    The exit status is 0 whatever the grades; non-zero means the probe could not run.")]
pub struct CheckArgs {
    /// The server's STARTTLS c2s address.
    #[arg(value_name = "HOST:PORT", value_parser = parse_addr)]
    addr: String,
    /// Its Direct TLS (XEP-0368) address; without it the direct-tls check is not offered
    /// and the SASL2 and FAST checks go over STARTTLS.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    direct_tls: Option<String>,
    /// An account on the server (its domain is also the TLS server name).
    #[arg(long, value_name = "JID")]
    jid: String,
    /// The account's password.
    #[arg(long, env = "PIPIT_CHECK_PASSWORD", hide_env_values = true)]
    password: String,
    /// Trust the CA certificate(s) (or the self-signed certificate) in this PEM file
    /// [default: the system CA bundle].
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any server certificate (the report says so).
    #[arg(long)]
    insecure: bool,
    /// Show what the server answered in each check.
    #[arg(long, short)]
    verbose: bool,
    /// Print a JSON array of {check, result, detail, round_trips?, evidence?}.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each answer before calling the server hung.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

/// Accepts `HOST:PORT` (`[v6]:PORT` for IPv6 literals).
fn parse_addr(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
    if host.is_empty() || host == "[]" {
        return Err(format!("'{s}' has no host"));
    }
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("'{port}' is not a port number"))?;
    Ok(s.to_owned())
}

/// What the baseline and the pipelined-auth checks learnt, for the checks after them.
#[derive(Clone, Debug, Default)]
pub struct Learned {
    /// The mechanisms offered after TLS, if the baseline got that far.
    pub mechanisms: Option<Vec<String>>,
    /// `auth-restart-bind-pipelined` passed: later logins may be pipelined.
    pub auth_pipelining: bool,
}

/// The server under test and how to talk to it.
#[derive(Clone)]
pub struct Target {
    /// STARTTLS address.
    pub addr: String,
    /// Direct TLS address, if given.
    pub direct_tls: Option<String>,
    /// The account.
    pub account: Account,
    /// The TLS server name (the JID's domain).
    pub server_name: ServerName<'static>,
    /// What certificates are trusted.
    pub trust: Trust,
    /// TLS 1.3 and 1.2, for STARTTLS.
    pub tls: Arc<rustls::ClientConfig>,
    /// TLS 1.3 and 1.2 with ALPN `xmpp-client`, for Direct TLS.
    pub direct: Arc<rustls::ClientConfig>,
    /// The bound of every wait.
    pub timeout: Duration,
    /// What earlier checks learnt.
    pub learned: Learned,
}

impl Target {
    /// Whether PLAIN may be offered after TLS (true when unknown: then it is tried).
    pub fn plain_offered(&self) -> bool {
        self.learned
            .mechanisms
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m == "PLAIN"))
    }
}

/// Runs every check and prints the report.
pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let jid = Jid::parse(&args.jid).map_err(|e| anyhow::anyhow!("--jid {}: {e}", args.jid))?;
    let Some(local) = jid.local() else {
        bail!(
            "--jid {} has no localpart: give an account, user@domain",
            args.jid
        );
    };
    let trust = Trust::load(args.ca.as_deref(), args.insecure)?;
    let server_name = ServerName::try_from(jid.domain().to_owned())
        .with_context(|| format!("'{}' is not a valid TLS server name", jid.domain()))?;
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut target = Target {
        addr: args.addr.clone(),
        direct_tls: args.direct_tls.clone(),
        account: Account {
            local: local.to_owned(),
            domain: jid.domain().to_owned(),
            password: args.password.clone(),
        },
        server_name,
        tls: trust.config(&versions, false, None)?,
        direct: trust.config(&versions, true, None)?,
        trust,
        timeout: Duration::from_secs(args.timeout),
        learned: Learned::default(),
    };
    if args.json && target.trust.is_insecure() {
        eprintln!("pipit check: {}", target.trust.describe());
    }

    let (baseline, mechanisms) = checks::lockstep_login(&target).await?;
    target.learned.mechanisms = mechanisms;
    let auth = checks::auth_pipelined(&target, true).await;
    target.learned.auth_pipelining = auth.verdict == Verdict::Pass;
    let findings = vec![
        baseline,
        checks::starttls_pipelined(&target).await,
        checks::stunt_clienthello(&target).await,
        checks::plaintext_after_starttls(&target).await,
        auth,
        checks::auth_pipelined(&target, false).await,
        checks::sasl_failure_restart(&target).await,
        checks::resumption(&target, &rustls::version::TLS13).await,
        checks::resumption(&target, &rustls::version::TLS12).await,
        checks::direct_tls(&target).await,
        sasl2_checks::sasl2_bind2(&target).await,
        sasl2_checks::iap_pipelined(&target).await,
        sasl2_checks::iap_stale_version_refused(&target).await,
        fast_checks::fast_token(&target).await,
        fast_checks::fast_replay_refused(&target).await,
        fast_checks::fast_invalidate(&target).await,
        zero_rtt_checks::fast_0rtt(&target).await,
        replay_check::zero_rtt_replay(&target).await,
    ];
    print(&args, &target, &findings);
    Ok(())
}

fn print(args: &CheckArgs, target: &Target, findings: &[Finding]) {
    if args.json {
        print!("{}", report::json(findings, args.verbose));
        return;
    }
    let direct = match &target.direct_tls {
        Some(addr) => format!(", Direct TLS {addr}"),
        None => String::new(),
    };
    println!(
        "pipit check: STARTTLS {}{direct}, as {}@{}",
        target.addr, target.account.local, target.account.domain
    );
    println!("TLS: {}", target.trust.describe());
    println!();
    print!("{}", report::table(findings, args.verbose));
}

#[cfg(test)]
mod tests {
    use super::parse_addr;

    #[test]
    fn addresses_need_a_port() {
        assert!(parse_addr("example.org:5222").is_ok());
        assert!(parse_addr("[::1]:5222").is_ok());
        assert!(parse_addr("example.org").is_err());
        assert!(parse_addr(":5222").is_err());
        assert!(parse_addr("example.org:0").is_err());
        assert!(parse_addr("example.org:http").is_err());
    }
}
