//! `pipit login`: log in to any server in a chosen mode and count the round trips.
//!
//! Each login sends `<presence/>` and a message to the account's own bare JID with
//! it (so a pipelined login carries them in the bind request's flight) and waits
//! for the message to come back: the session is then usable and stanzas flow.
//! Then it closes the stream, or with `--detach` leaves the session for a later
//! `--mode sm-resume` login to take back (XEP-0198 §5).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use pipit_client::xml::{Element, ns};
use pipit_client::{LoginOptions, Mechanism, Mode, Report, Session, State, TlsSettings};
use serde::Serialize;

/// Arguments of `pipit login`.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// The account, e.g. alice@example.org (a /resource picks the resource).
    jid: String,
    /// The password; prompted for when absent.
    #[arg(long)]
    password: Option<String>,
    /// STARTTLS address [default: the JID's domain, port 5222].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    server: Option<String>,
    /// Direct TLS (XEP-0368) address [default: the --server host, port 5223].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    direct_tls: Option<String>,
    /// lockstep, pipelined, stunt, direct, sasl2, fast, fast-0rtt, sm-resume, or all (in
    /// that order, sharing what each learns and the TLS session cache: fast-0rtt needs a
    /// session ticket and a FAST token from an earlier login of the same run, sm-resume
    /// the session fast-0rtt leaves detached).
    #[arg(long, value_name = "MODE", default_value = "stunt", value_parser = parse_modes)]
    mode: Modes,
    /// SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS, …) [default: the
    /// strongest offered].
    #[arg(long, value_name = "MECH", value_parser = parse_mechanism)]
    mech: Option<Mechanism>,
    /// The resource to bind [default: the JID's, or `pipit`].
    #[arg(long, value_name = "R")]
    resource: Option<String>,
    /// Emulate this round-trip time through a local relay, e.g. 100ms or 0.1s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    rtt: Option<Duration>,
    /// Print a JSON array, one object per mode.
    #[arg(long)]
    json: bool,
    /// Remember what each login learns about the server in this JSON file, and
    /// pipeline from the first login next time (never holds the password).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Also trust this CA or self-signed certificate (PEM or DER); repeatable.
    #[arg(long = "ca", value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// DANGEROUS: accept any certificate; anyone on the path can read the password.
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// Leave the session resumable instead of closing it: the server keeps it for a
    /// later `--mode sm-resume` login (XEP-0198), recorded in the --state file.
    #[arg(long)]
    detach: bool,
    /// Longest a login, and then the wait for the message to oneself, may take.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

/// The modes to run, in order.
#[derive(Clone, Debug)]
struct Modes(Vec<Mode>);

/// One mode's line of the report.
#[derive(Serialize, Debug)]
struct Row {
    mode: &'static str,
    ok: bool,
    round_trips: Option<usize>,
    login_ms: Option<f64>,
    first_stanza_ms: Option<f64>,
    tls: Option<String>,
    resumed: Option<bool>,
    /// The login rode in TLS 1.3 early data (0-RTT) and the server took it.
    early_data: Option<bool>,
    mechanism: Option<&'static str>,
    /// Authentication was pipelined on the grounds of an earlier success.
    pipelined: Option<bool>,
    /// The login resumed a detached session (XEP-0198 §5).
    sm_resumed: Option<bool>,
    /// The session was left detached for a later sm-resume login.
    detached: bool,
    /// Why the session could not be left detached (the login itself succeeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    detach_error: Option<String>,
    jid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let options = options(&args)?;
    if args.insecure {
        eprintln!(
            "warning: --insecure: the server's certificate is not checked; anyone on the path can read the password"
        );
    }
    if !args.json {
        println!(
            "pipit login {}: STARTTLS {}, Direct TLS {}{}",
            options.jid,
            options.server,
            options.direct_tls,
            args.rtt
                .map(|rtt| format!(", emulated RTT {}", ms(rtt)))
                .unwrap_or_default()
        );
    }
    if args.detach && options.state.path().is_none() {
        bail!("--detach needs --state FILE, where the session is recorded for --mode sm-resume");
    }
    let mut rows = Vec::new();
    let modes = &args.mode.0;
    for (i, &mode) in modes.iter().enumerate() {
        let mut options = options.clone();
        options.mode = mode;
        // The login before an sm-resume one leaves it a session to take back.
        let detach = match modes.get(i + 1) {
            Some(next) => *next == Mode::SmResume,
            None => args.detach,
        };
        rows.push(login_once(options, detach).await);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows);
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        bail!("{failed} of {} logins failed", rows.len());
    }
    if let Some(why) = rows.last().and_then(|r| r.detach_error.as_ref())
        && args.detach
    {
        bail!("--detach: the session could not be left to resume: {why}");
    }
    Ok(())
}

/// The login options the flags describe; errors name the flag at fault.
fn options(args: &LoginArgs) -> anyhow::Result<LoginOptions> {
    let mut options = LoginOptions::new(&args.jid, String::new())?;
    if let Some(server) = &args.server {
        options.server = server.clone();
    }
    options.direct_tls = match &args.direct_tls {
        Some(addr) => addr.clone(),
        None => format!(
            "{}:{}",
            host_of(&options.server),
            pipit_client::options::DIRECT_TLS_PORT
        ),
    };
    options.mechanism = args.mech;
    if let Some(resource) = &args.resource {
        options.resource = resource.clone();
    }
    options.tls = if args.insecure {
        TlsSettings::builder()
            .dangerous_accept_any_certificate()
            .build()?
    } else {
        let mut builder = TlsSettings::builder();
        for file in &args.ca {
            builder = builder.add_ca_file(file)?;
        }
        builder.build()?
    };
    options.state = match &args.state {
        Some(path) => State::open(path)?,
        None => State::in_memory(),
    };
    options.emulated_rtt = args.rtt;
    if args.timeout.is_zero() {
        bail!("--timeout must be more than zero");
    }
    options.timeout = args.timeout;
    options.validate()?;
    // Asked last, once everything else is known to be usable.
    options.password = match &args.password {
        Some(p) => p.clone(),
        None => rpassword::prompt_password("Password: ")
            .context("cannot read a password (give it with --password)")?,
    };
    Ok(options)
}

/// Logs in, sends a message to oneself with the login and waits for it; then
/// closes the session, or leaves it detached.
async fn login_once(mut options: LoginOptions, detach: bool) -> Row {
    let mode = options.mode;
    let id = format!("pipit-login-{}-{}", mode.name(), std::process::id());
    options.initial_stanzas = self_test(&options, &id, "pipit login self-test");
    let mut row = Row {
        mode: mode.name(),
        ok: false,
        round_trips: None,
        login_ms: None,
        first_stanza_ms: None,
        tls: None,
        resumed: None,
        early_data: None,
        mechanism: None,
        pipelined: None,
        sm_resumed: None,
        detached: false,
        detach_error: None,
        jid: None,
        error: None,
    };
    let mut session = match Session::login(&options).await {
        Ok(session) => session,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    fill(&mut row, session.report());
    match await_self_message(&mut session, &id, options.timeout).await {
        Ok(arrived) => {
            row.first_stanza_ms = Some(millis(arrived));
            row.ok = true;
        }
        Err(e) => row.error = Some(e),
    }
    if detach && row.ok {
        // The login succeeded either way; a server without resumption only means
        // there is nothing for sm-resume to take back.
        match session.detach().await {
            Ok(_) => row.detached = true,
            Err(e) => row.detach_error = Some(e.to_string()),
        }
    } else if let Err(e) = session.close().await {
        tracing::debug!("closing the {} session: {e}", mode.name());
    }
    row
}

fn fill(row: &mut Row, report: &Report) {
    row.round_trips = Some(report.round_trips);
    row.login_ms = Some(millis(report.login_time));
    row.tls = report.tls_version.clone();
    row.resumed = Some(report.resumed);
    row.early_data = Some(report.early_data);
    row.mechanism = report.mechanism;
    row.pipelined = Some(report.pipelined);
    row.sm_resumed = Some(report.sm_resumed);
    row.jid = Some(report.jid.to_string());
}

/// Initial presence and a chat message with `id` to the account's own bare JID: sent
/// with the login, its return shows the session usable and stanzas flowing.
pub(crate) fn self_test(options: &LoginOptions, id: &str, body: &str) -> Vec<Element> {
    vec![
        Element::new("presence", ns::CLIENT),
        Element::new("message", ns::CLIENT)
            .with_attr("to", options.jid.to_string())
            .with_attr("type", "chat")
            .with_attr("id", id)
            .with_child(Element::new("body", ns::CLIENT).with_text(body)),
    ]
}

/// Waits for the message with `id`; returns when it arrived, from connect start.
pub(crate) async fn await_self_message(
    session: &mut Session,
    id: &str,
    within: Duration,
) -> Result<Duration, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let stanza = match session.next_stanza(left).await {
            Ok(Some(stanza)) => stanza,
            Ok(None) => {
                return Err(
                    "the server closed the stream before the message to oneself came back".into(),
                );
            }
            Err(e) => return Err(format!("waiting for the message to oneself: {e}")),
        };
        if stanza.name() != "message" || stanza.attr("id") != Some(id) {
            continue;
        }
        if stanza.attr("type") == Some("error") {
            let condition = stanza
                .get_child("error", ns::CLIENT)
                .and_then(|e| e.children().next())
                .map(|c| c.name().to_owned())
                .unwrap_or_else(|| "unknown".into());
            return Err(format!(
                "the server bounced the message to oneself: {condition}"
            ));
        }
        return session
            .last_arrival()
            .ok_or_else(|| "no arrival time".to_string());
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<10} {:>11} {:>9} {:>15}  {:<8} {:<8} {:<19} result",
        "mode", "round trips", "login ms", "first stanza ms", "TLS", "resumed", "mechanism"
    );
    let dash = || "-".to_string();
    for row in rows {
        println!(
            "{:<10} {:>11} {:>9} {:>15}  {:<8} {:<8} {:<19} {}",
            row.mode,
            row.round_trips.map(|n| n.to_string()).unwrap_or_else(dash),
            row.login_ms
                .map(|ms| format!("{ms:.1}"))
                .unwrap_or_else(dash),
            row.first_stanza_ms
                .map(|ms| format!("{ms:.1}"))
                .unwrap_or_else(dash),
            row.tls.clone().unwrap_or_else(dash),
            // A 0-RTT login is a resumed one whose login rode in the early data.
            match (row.resumed, row.early_data) {
                (_, Some(true)) => "0-RTT".to_string(),
                (Some(true), _) => "yes".to_string(),
                (Some(false), _) => "no".to_string(),
                (None, _) => dash(),
            },
            row.mechanism.unwrap_or("-"),
            match (&row.error, row.sm_resumed, row.detached) {
                (Some(e), ..) => format!("FAILED: {e}"),
                (None, _, false) if row.detach_error.is_some() => format!(
                    "ok, not left detached: {}",
                    row.detach_error.as_deref().unwrap_or_default()
                ),
                (None, Some(true), true) => "ok, session resumed, left detached".to_string(),
                (None, Some(true), false) => "ok, session resumed".to_string(),
                (None, _, true) => "ok, left detached".to_string(),
                (None, ..) => "ok".to_string(),
            }
        );
    }
}

/// Milliseconds to the microsecond.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn ms(d: Duration) -> String {
    format!("{} ms", millis(d))
}

fn parse_modes(s: &str) -> Result<Modes, String> {
    let s = s.to_ascii_lowercase();
    if s == "all" {
        return Ok(Modes(Mode::ALL.to_vec()));
    }
    Mode::from_name(&s).map(|m| Modes(vec![m])).ok_or_else(|| {
        "expected lockstep, pipelined, stunt, direct, sasl2, fast, fast-0rtt, sm-resume or all"
            .into()
    })
}

pub(crate) fn parse_mechanism(s: &str) -> Result<Mechanism, String> {
    Mechanism::from_name(&s.to_ascii_uppercase()).ok_or_else(|| {
        let names: Vec<_> = Mechanism::ALL.iter().map(|m| m.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// `100ms`, `0.1s`, `250us`, `1m`: a number and a unit.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "" => return Err("give a unit, as in 100ms or 0.1s".into()),
        other => return Err(format!("unknown unit {other:?} (use us, ms, s or m)")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number (write it as 100ms or 0.1s)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| "out of range".into())
}

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn parse_addr(s: &str) -> Result<String, String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected HOST:PORT, e.g. example.org:5222".into());
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("write an IPv6 address in brackets, e.g. [::1]:5222".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!("{port:?} is not a port number")),
    }
}

/// The host part of a checked `host:port`.
pub(crate) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(host, _)| host).unwrap_or(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("100").unwrap_err().contains("unit"));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("-5ms").is_err());
        assert!(parse_duration("100 parsecs").is_err());
    }

    #[test]
    fn addresses_need_a_port() {
        assert!(parse_addr("example.org:5222").is_ok());
        assert!(parse_addr("[::1]:5222").is_ok());
        assert!(parse_addr("example.org").is_err());
        assert!(parse_addr("::1:5222").is_err());
        assert!(parse_addr("example.org:http").is_err());
        assert!(parse_addr(":5222").is_err());
        assert_eq!(host_of("[::1]:5222"), "[::1]");
    }

    #[test]
    fn modes_and_mechanisms_parse_by_name() {
        assert_eq!(parse_modes("all").unwrap().0, Mode::ALL.to_vec());
        assert_eq!(parse_modes("Stunt").unwrap().0, vec![Mode::Stunt]);
        assert_eq!(parse_modes("fast-0rtt").unwrap().0, vec![Mode::Fast0Rtt]);
        assert_eq!(parse_modes("sm-resume").unwrap().0, vec![Mode::SmResume]);
        assert!(parse_modes("warp").is_err());
        assert_eq!(parse_mechanism("scram-sha-256"), Ok(Mechanism::ScramSha256));
        assert!(parse_mechanism("MD5").unwrap_err().contains("PLAIN"));
    }
}
