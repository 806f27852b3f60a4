//! `pipit bench idle`: opens N authenticated sessions (each sends its initial
//! presence with the login), holds them for T seconds or until Ctrl-C, then closes
//! them. The report gives the time to establish them, the login latency, sessions
//! the server dropped during the hold, and with `--server-pid` the server's
//! resident memory before, once all are established, and at the end of the hold,
//! with the growth per session.
//!
//! `--concurrency` workers log sessions in, each holding the ones it opened (many
//! connections per task). While holding, each sweeps its sessions every few
//! seconds: it answers server pings and notes sessions that ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pipit_client::xml::{Element, ns};
use pipit_client::{Error, Session};
use tokio::sync::{Barrier, watch};

use super::fd_limit;
use super::ping;
use super::progress::Progress;
use super::report::{Failures, Report, Rss};
use super::tally::Tally;
use super::target::{Target, TargetArgs};
use crate::login::parse_duration;
use crate::soak::report::rss_kib;

/// How often a holding worker looks at its sessions.
const SWEEP: Duration = Duration::from_secs(5);

/// Arguments of `pipit bench idle`.
#[derive(clap::Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Sessions to open and hold. Each takes a source address of its own when the
    /// server is on 127.0.0.0/8, but the server's own limits still apply: for a
    /// Pipit server raise --max-connections (default 10000) and
    /// --max-sessions-per-user (default 10; or make --count accounts enough).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    sessions: u32,
    /// Logins in flight at once while establishing.
    #[arg(long, value_name = "C", default_value_t = 100)]
    concurrency: u32,
    /// How long to hold the sessions once established, e.g. 60s; Ctrl-C ends the
    /// hold early.
    #[arg(long, value_name = "T", default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// The server's process id, to read its resident memory (VmRSS) from
    /// /proc/PID/status; the server must run on this machine.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
}

/// What a worker saw after establishing.
#[derive(Default)]
struct Held {
    dropped: u64,
    at_end: u64,
    failures: Failures,
}

pub async fn run(args: IdleArgs) -> anyhow::Result<Report> {
    if args.sessions == 0 || args.concurrency == 0 {
        bail!("--sessions and --concurrency must be at least 1");
    }
    let target = Arc::new(Target::new(args.target)?);
    fd_limit::ensure(u64::from(args.sessions), target.relayed())?;
    let rss = |pid: u32| {
        rss_kib(pid).with_context(|| format!("cannot read VmRSS from /proc/{pid}/status"))
    };
    let before_kib = args.server_pid.map(rss).transpose()?;
    let mut notes = Vec::new();
    let per_account = args.sessions.div_ceil(target.count());
    if per_account > 1 {
        notes.push(format!(
            "{per_account} sessions per account: the server must allow that many resources per user"
        ));
    }
    let workers = args.concurrency.min(args.sessions);
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicU32::new(0));
    let established = Arc::new(Barrier::new(workers as usize + 1));
    let (stop, stopped) = watch::channel(false);
    let progress = {
        let tally = Arc::clone(&tally);
        Progress::start("idle".into(), move || {
            format!(
                "{} sessions, {} failed",
                tally.get("established"),
                tally.failed()
            )
        })
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(
            Arc::clone(&target),
            Arc::clone(&tally),
            (Arc::clone(&next), args.sessions),
            Arc::clone(&established),
            stopped.clone(),
        ));
    }
    established.wait().await;
    let establish_s = started.elapsed().as_secs_f64();
    let after_kib = args.server_pid.map(rss).transpose()?;
    let hold_started = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(args.duration) => {}
        _ = tokio::signal::ctrl_c() => notes.push("the hold was ended by Ctrl-C".into()),
    }
    let held_s = hold_started.elapsed().as_secs_f64();
    let end_kib = args.server_pid.map(rss).transpose()?;
    let _ = stop.send(true);
    let mut held = Held::default();
    while let Some(worker) = tasks.join_next().await {
        let worker = worker?;
        held.dropped += worker.dropped;
        held.at_end += worker.at_end;
        held.failures.merge(worker.failures);
    }
    progress.finish().await;
    let mut done = tally.take();
    let opened = done.counts.get("established").copied().unwrap_or(0);
    done.failures.merge(held.failures);
    done.counts.entry("attempts").or_default();
    done.counts.insert("established", opened);
    done.counts.insert("dropped_during_hold", held.dropped);
    done.counts.insert("held_at_end", held.at_end);
    done.counts.insert("failed", done.failures.total());
    let rss = before_kib
        .zip(after_kib)
        .zip(end_kib)
        .map(|((before_kib, after_kib), end_kib)| Rss {
            before_kib,
            after_kib,
            end_kib,
            per_session_kib: (opened > 0)
                .then(|| (after_kib as f64 - before_kib as f64) / opened as f64),
        });
    Ok(Report {
        scenario: "idle",
        mode: target.mode().name(),
        target: target.summary(),
        parameters: [
            ("sessions", f64::from(args.sessions)),
            ("concurrency", f64::from(args.concurrency)),
            ("duration_s", args.duration.as_secs_f64()),
        ]
        .into(),
        seconds: establish_s + held_s,
        rates: [
            ("establish_s", establish_s),
            (
                "sessions_per_s",
                opened as f64 / establish_s.max(f64::EPSILON),
            ),
            ("held_s", held_s),
        ]
        .into(),
        counts: done.counts,
        latency_ms: done.latency.percentiles(),
        failures: done.failures,
        rss,
        steps: Vec::new(),
        limit_per_s: None,
        notes,
    })
}

/// Logs sessions in until all `total` are taken, holds them until told to stop,
/// then closes them.
async fn worker(
    target: Arc<Target>,
    tally: Arc<Tally>,
    (next, total): (Arc<AtomicU32>, u32),
    established: Arc<Barrier>,
    mut stop: watch::Receiver<bool>,
) -> Held {
    let mut sessions = Vec::new();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= total {
            break;
        }
        if let Some(session) = open(&target, &tally, index).await {
            sessions.push(session);
        }
    }
    established.wait().await;
    let mut held = Held::default();
    while !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP) => {}
            _ = stop.changed() => break,
        }
        sweep(&mut sessions, &mut held).await;
    }
    held.at_end = sessions.len() as u64;
    for session in sessions {
        if let Err(e) = session.close().await {
            held.failures.add(format!("close: {e}"));
        }
    }
    held
}

/// Session number `index`, logged in with its initial presence; `None` (counted
/// as a failure) if the login failed.
async fn open(target: &Target, tally: &Tally, index: u32) -> Option<Session> {
    let total = u64::from(index);
    let client = target.client(index);
    // The warm-up takes the addresses after the sessions' own.
    if let Some(warm_up) = target.warm_up(&client, total + (1 << 21)).await {
        match warm_up {
            Ok(session) => {
                if let Err(e) = session.close().await {
                    tally.fail(format!("warm-up close: {e}"));
                }
            }
            Err(why) => tally.fail(why),
        }
    }
    let mode = target.mode();
    let mut options = match target.options(&client, mode, total) {
        Ok(options) => options,
        Err(e) => {
            tally.fail(format!("options: {e}"));
            return None;
        }
    };
    options.initial_stanzas = vec![Element::new("presence", ns::CLIENT)];
    tally.count("attempts");
    match Session::login(&options).await {
        Ok(session) => {
            tally.timed("established", session.report().login_time);
            Some(session)
        }
        Err(e) => {
            tally.fail(format!("{} login: {e}", mode.name()));
            None
        }
    }
}

/// Reads what each session has waiting without blocking: answers pings, and
/// drops sessions the server ended.
async fn sweep(sessions: &mut Vec<Session>, held: &mut Held) {
    let mut kept = Vec::with_capacity(sessions.len());
    for mut session in sessions.drain(..) {
        let ended = loop {
            match session.next_stanza(Duration::ZERO).await {
                Ok(Some(stanza)) => {
                    if let Some(reply) = ping::reply(&stanza)
                        && let Err(e) = session.send(&reply).await
                    {
                        break Some(format!("answering a ping: {e}"));
                    }
                }
                Err(Error::Timeout(_)) => break None,
                Ok(None) => break Some("the server closed the stream".into()),
                Err(e) => break Some(e.to_string()),
            }
        };
        match ended {
            None => kept.push(session),
            Some(why) => {
                held.dropped += 1;
                held.failures.add(format!("during the hold: {why}"));
            }
        }
    }
    *sessions = kept;
}
