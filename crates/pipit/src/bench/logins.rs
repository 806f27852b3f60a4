//! `pipit bench logins`: N clients log in over and over for T seconds, each as
//! soon as its last session is closed; the report gives logins per second, the
//! login latency (TCP connect to bound resource, as pipit-client reports it), the
//! mean round trips a login took (as pipit-client counts them), and failures by
//! reason.
//!
//! Each client keeps its own state in memory, so a FAST token carries over from
//! one of its logins to the next, and with `--tls-resumption` its own TLS tickets.
//! FAST and sm-resume clients start with an uncounted SASL2 login for the token;
//! the clock starts once every client is past it. In sm-resume mode each session
//! is left detached for the next login to resume (the last one is closed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use pipit_client::{Mode, Session};
use tokio::sync::Barrier;

use super::fd_limit;
use super::progress::Progress;
use super::report::Report;
use super::tally::Tally;
use super::target::{Client, Target, TargetArgs};
use crate::login::parse_duration;

/// How long a client waits after a failed login before the next: a real client
/// backs off too, and an unreachable server would otherwise be hammered in a loop.
const BACKOFF: Duration = Duration::from_millis(50);

/// Arguments of `pipit bench logins`.
#[derive(clap::Args, Debug)]
pub struct LoginsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Clients logging in at once, each again as soon as its last login closed.
    #[arg(long, value_name = "N", default_value_t = 50)]
    clients: u32,
    /// How long to measure, e.g. 20s.
    #[arg(long, value_name = "T", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
}

pub async fn run(args: LoginsArgs) -> anyhow::Result<Report> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    let target = Arc::new(Target::new(args.target)?);
    fd_limit::ensure(u64::from(args.clients), target.relayed())?;
    let mut notes = Vec::new();
    if args.clients > target.count() {
        notes.push(format!(
            "{} clients share {} accounts",
            args.clients,
            target.count()
        ));
    }
    let tally = Arc::new(Tally::default());
    let barrier = Arc::new(Barrier::new(args.clients as usize + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.clients {
        let client = target.client(index);
        tasks.spawn(client_loop(
            Arc::clone(&target),
            Arc::clone(&tally),
            client,
            Arc::clone(&barrier),
            (u64::from(args.clients), args.duration),
        ));
    }
    barrier.wait().await;
    let started = Instant::now();
    let progress = {
        let tally = Arc::clone(&tally);
        Progress::start(format!("logins ({})", target.mode().name()), move || {
            format!("{} logins, {} failed", tally.get("logins"), tally.failed())
        })
    };
    while tasks.join_next().await.is_some() {}
    progress.finish().await;
    let seconds = started.elapsed().as_secs_f64();
    let mut done = tally.take();
    let logins = done.counts.get("logins").copied().unwrap_or(0);
    // Summed per login; the mean goes with the rates.
    let round_trips = done.counts.remove("round_trips").unwrap_or(0);
    for count in [
        "attempts",
        "logins",
        "tls_resumed",
        "early_data",
        "pipelined",
        "sm_resumed",
    ] {
        done.counts.entry(count).or_default();
    }
    done.counts.insert("failed", done.failures.total());
    Ok(Report {
        scenario: "logins",
        mode: target.mode().name(),
        target: target.summary(),
        parameters: [
            ("clients", f64::from(args.clients)),
            ("duration_s", args.duration.as_secs_f64()),
        ]
        .into(),
        seconds,
        rates: [
            ("logins_per_s", logins as f64 / seconds.max(f64::EPSILON)),
            (
                "round_trips_mean",
                round_trips as f64 / logins.max(1) as f64,
            ),
        ]
        .into(),
        counts: done.counts,
        latency_ms: done.latency.percentiles(),
        failures: done.failures,
        rss: None,
        steps: Vec::new(),
        limit_per_s: None,
        notes,
    })
}

/// One client: its warm-up, then logins until `duration` after every client is
/// ready.
async fn client_loop(
    target: Arc<Target>,
    tally: Arc<Tally>,
    client: Client,
    barrier: Arc<Barrier>,
    (clients, duration): (u64, Duration),
) {
    let mode = target.mode();
    // Connection numbers: the warm-up takes the client's index, each round the next
    // block of `clients`, so that no two connections share a source address.
    let connection = |round: u64| round * clients + u64::from(client.index);
    let mut detached = false;
    if let Some(warm_up) = target.warm_up(&client, connection(0)).await {
        match warm_up {
            Ok(session) if mode == Mode::SmResume => detached = leave(&tally, session).await,
            Ok(session) => close(&tally, session).await,
            Err(why) => tally.fail(why),
        }
    }
    barrier.wait().await;
    let deadline = Instant::now() + duration;
    let mut round = 0;
    while Instant::now() < deadline {
        round += 1;
        let options = match target.options(&client, mode, connection(round)) {
            Ok(options) => options,
            Err(e) => return tally.fail(format!("options: {e}")),
        };
        tally.count("attempts");
        let session = match Session::login(&options).await {
            Ok(session) => session,
            Err(e) => {
                tally.fail(format!("{} login: {e}", mode.name()));
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        let report = session.report();
        tally.timed("logins", report.login_time);
        tally.add("round_trips", report.round_trips as u64);
        for (count, yes) in [
            ("tls_resumed", report.resumed),
            ("early_data", report.early_data),
            ("pipelined", report.pipelined),
            ("sm_resumed", report.sm_resumed),
        ] {
            if yes {
                tally.count(count);
            }
        }
        if mode == Mode::SmResume && Instant::now() < deadline {
            detached = leave(&tally, session).await;
        } else {
            detached = false;
            close(&tally, session).await;
        }
    }
    if detached {
        // Taken back and closed, uncounted, so that the server is not left
        // holding it after the run.
        if let Ok(options) = target.options(&client, mode, connection(round + 1))
            && let Ok(session) = Session::login(&options).await
        {
            close(&tally, session).await;
        }
    }
}

/// Leaves the session for the next sm-resume login; true if it could.
async fn leave(tally: &Tally, session: Session) -> bool {
    match session.detach().await {
        Ok(_) => true,
        Err(e) => {
            tally.fail(format!("detach: {e}"));
            false
        }
    }
}

async fn close(tally: &Tally, session: Session) {
    if let Err(e) = session.close().await {
        tally.fail(format!("close: {e}"));
    }
}
