//! `pipit bench messages`: a ring of U users, each logged in once, each sending
//! one-to-one chat messages to the next user's bare JID, together at R messages
//! per second for T seconds. Every message id carries the moment it was sent;
//! the receiver takes the delivery latency from it when the message is handed to
//! it (so the client's own reading time counts against the server, never for it).
//!
//! After the sending stops, receivers wait up to [`DRAIN`] for the rest; what has
//! not arrived by then is lost. With `--find-limit` the ring runs again and again
//! at ×1.5 the rate, until the p99 latency passes `--p99-limit`, a message is
//! lost, or delivery falls behind the rate, and reports the last rate within
//! those bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use pipit_client::xml::{Element, ns};
use pipit_client::{Error, Session};
use tokio::sync::watch;

use super::fd_limit;
use super::histogram::Histogram;
use super::pacing::Pacer;
use super::ping;
use super::progress::Progress;
use super::report::{Failures, Report, Step};
use super::target::{Target, TargetArgs};
use crate::login::parse_duration;

/// How long receivers wait for stragglers once sending stops.
const DRAIN: Duration = Duration::from_secs(5);
/// The most a late sender sends at once to catch up.
const BURST: u64 = 64;
/// How often a user that no longer sends looks whether the step is over.
const POLL: Duration = Duration::from_millis(20);
/// Delivery must reach this share of the target rate to keep up.
const KEEPING_UP: f64 = 0.95;
/// Each `--find-limit` step multiplies the rate by this.
const STEP_FACTOR: f64 = 1.5;

/// Arguments of `pipit bench messages`.
#[derive(clap::Args, Debug)]
pub struct MessagesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Users in the ring, each its own account (at most --count), each logged in
    /// once.
    #[arg(long, value_name = "U", default_value_t = 100)]
    users: u32,
    /// Messages per second, all users together (the start rate with --find-limit).
    #[arg(long, value_name = "R", default_value_t = 1000.0)]
    rate: f64,
    /// How long to send at each rate, e.g. 10s.
    #[arg(long, value_name = "T", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Raise the rate ×1.5 per step until a bound is passed; report the last
    /// rate within them.
    #[arg(long)]
    find_limit: bool,
    /// The p99 delivery latency a rate must stay under.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    p99_limit: Duration,
    /// The most steps --find-limit takes.
    #[arg(long, value_name = "N", default_value_t = 12)]
    max_steps: u32,
}

/// A ring member.
struct User {
    index: u32,
    session: Session,
    /// The next user's bare JID.
    to: String,
}

/// What one user saw in one step.
#[derive(Default)]
struct Seen {
    /// Sends the schedule called for within the window.
    scheduled: u64,
    sent: u64,
    delivered: u64,
    bounced: u64,
    /// Messages of an earlier step, arriving late.
    stale: u64,
    latency: Histogram,
    failures: Failures,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.bounced += other.bounced;
        self.stale += other.stale;
        self.latency.merge(&other.latency);
        self.failures.merge(other.failures);
    }
}

/// Live counts for the progress line and the end of the drain.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    delivered: AtomicU64,
    /// Users past their sending window.
    done_sending: AtomicU64,
}

/// How a step went.
struct Outcome {
    seen: Seen,
    seconds: f64,
    rate: f64,
}

impl Outcome {
    /// Whether the generator sent (nearly) all the schedule called for.
    fn keeping_up(&self) -> bool {
        self.seen.sent as f64 >= KEEPING_UP * self.seen.scheduled as f64
    }

    fn step(&self, p99_limit: Duration) -> Step {
        let percentiles = self.seen.latency.percentiles();
        let delivered_per_s = self.seen.delivered as f64 / self.seconds;
        let lost = self.seen.sent.saturating_sub(self.seen.delivered);
        Step {
            target_per_s: self.rate,
            sent_per_s: self.seen.sent as f64 / self.seconds,
            delivered_per_s,
            lost,
            p50_ms: percentiles.map(|p| p.p50),
            p99_ms: percentiles.map(|p| p.p99),
            ok: lost == 0
                && self.seen.failures.total() == 0
                && self.keeping_up()
                && percentiles.is_some_and(|p| p.p99 <= p99_limit.as_secs_f64() * 1000.0),
        }
    }
}

pub async fn run(args: MessagesArgs) -> anyhow::Result<Report> {
    if args.users < 2 {
        bail!("--users must be at least 2 to make a ring");
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a positive number of messages per second");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    let target = Arc::new(Target::new(args.target)?);
    if args.users > target.count() {
        bail!(
            "--users {} needs as many accounts, but --count is {}",
            args.users,
            target.count()
        );
    }
    fd_limit::ensure(u64::from(args.users), target.relayed())?;
    let epoch = Instant::now();
    let mut failures = Failures::default();
    let users = log_in(&target, args.users, &mut failures).await;
    let mut report = Report {
        scenario: "messages",
        mode: target.mode().name(),
        target: target.summary(),
        parameters: [
            ("users", f64::from(args.users)),
            ("rate_per_s", args.rate),
            ("duration_s", args.duration.as_secs_f64()),
            ("p99_limit_ms", args.p99_limit.as_secs_f64() * 1000.0),
        ]
        .into(),
        seconds: 0.0,
        counts: [
            ("users", u64::from(args.users)),
            ("logged_in", users.len() as u64),
        ]
        .into(),
        rates: Default::default(),
        latency_ms: None,
        failures,
        rss: None,
        steps: Vec::new(),
        limit_per_s: None,
        notes: Vec::new(),
    };
    if users.len() < args.users as usize {
        report
            .notes
            .push("not every user logged in, so no messages were sent".into());
        close_all(users, &mut report.failures).await;
        report.counts.insert("failed", report.failures.total());
        return Ok(report);
    }
    let mut users = users;
    let mut rate = args.rate;
    let steps = if args.find_limit {
        args.max_steps.max(1)
    } else {
        1
    };
    let mut shown: Option<Outcome> = None;
    for number in 0..steps {
        let (back, outcome) = step(users, rate, args.duration, number, epoch).await;
        users = back;
        let step = outcome.step(args.p99_limit);
        if !outcome.keeping_up() {
            report.notes.push(format!(
                "at {rate:.0}/s the generator sent only {:.0}/s: that step measured this machine's client side, not the server",
                step.sent_per_s
            ));
        }
        let within = step.ok;
        report.steps.push(step);
        // Every step's failures, the one over the bounds included.
        report.failures.merge(outcome.seen.failures.clone());
        if within {
            report.limit_per_s = Some(rate);
        }
        if within || shown.is_none() {
            shown = Some(outcome);
        }
        if !within || users.len() < args.users as usize {
            break;
        }
        rate *= STEP_FACTOR;
    }
    if !args.find_limit {
        report.steps.clear();
        report.limit_per_s = None;
    }
    if let Some(outcome) = shown {
        let seen = outcome.seen;
        report.seconds = outcome.seconds;
        report.rates = [
            ("target_per_s", outcome.rate),
            ("sent_per_s", seen.sent as f64 / outcome.seconds),
            ("delivered_per_s", seen.delivered as f64 / outcome.seconds),
        ]
        .into();
        report.counts.extend([
            ("scheduled", seen.scheduled),
            ("sent", seen.sent),
            ("delivered", seen.delivered),
            ("lost", seen.sent.saturating_sub(seen.delivered)),
            ("bounced", seen.bounced),
            ("stale", seen.stale),
        ]);
        report.latency_ms = seen.latency.percentiles();
    }
    close_all(users, &mut report.failures).await;
    report.counts.insert("failed", report.failures.total());
    Ok(report)
}

/// Logs the ring in, 50 at a time; those that failed are counted and left out.
async fn log_in(target: &Arc<Target>, users: u32, failures: &mut Failures) -> Vec<User> {
    let mut ring = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..users {
        let target = Arc::clone(target);
        tasks.spawn(async move { (index, log_in_one(&target, index).await) });
        if tasks.len() >= 50 {
            collect(tasks.join_next().await, &mut ring, failures);
        }
    }
    while let Some(done) = tasks.join_next().await {
        collect(Some(done), &mut ring, failures);
    }
    ring.sort_by_key(|user: &User| user.index);
    for user in &mut ring {
        user.to = target.account((user.index + 1) % users);
    }
    ring
}

type LoggedIn = Result<(u32, Result<Session, String>), tokio::task::JoinError>;

fn collect(done: Option<LoggedIn>, ring: &mut Vec<User>, failures: &mut Failures) {
    match done {
        Some(Ok((index, Ok(session)))) => ring.push(User {
            index,
            session,
            to: String::new(),
        }),
        Some(Ok((_, Err(why)))) => failures.add(why),
        Some(Err(e)) => failures.add(format!("login task: {e}")),
        None => {}
    }
}

async fn log_in_one(target: &Target, index: u32) -> Result<Session, String> {
    let client = target.client(index);
    let connection = u64::from(index);
    if let Some(warm_up) = target.warm_up(&client, connection + (1 << 21)).await {
        let _ = warm_up?.close().await;
    }
    let mode = target.mode();
    let mut options = target
        .options(&client, mode, connection)
        .map_err(|e| format!("options: {e}"))?;
    options.initial_stanzas = vec![Element::new("presence", ns::CLIENT)];
    Session::login(&options)
        .await
        .map_err(|e| format!("{} login: {e}", mode.name()))
}

/// One step: every user sends at its share of `rate` for `duration`, then all
/// wait for the stragglers. Returns the users whose sessions are still good.
async fn step(
    users: Vec<User>,
    rate: f64,
    duration: Duration,
    number: u32,
    epoch: Instant,
) -> (Vec<User>, Outcome) {
    let count = users.len();
    let share = rate / count as f64;
    let live = Arc::new(Live::default());
    let (stop, stopped) = watch::channel(false);
    let progress = {
        let live = Arc::clone(&live);
        Progress::start(format!("messages at {rate:.0}/s"), move || {
            format!(
                "{} sent, {} delivered",
                live.sent.load(Ordering::Relaxed),
                live.delivered.load(Ordering::Relaxed)
            )
        })
    };
    let start = Instant::now();
    let window_end = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (position, user) in users.into_iter().enumerate() {
        // Users are spread over one interval rather than all sending at the same
        // instants: each schedule starts that far before the window.
        let phase = Duration::from_secs_f64(position as f64 / count as f64 / share);
        let pacer = Pacer::new(start.checked_sub(phase).unwrap_or(start), share);
        tasks.spawn(run_user(
            user,
            pacer,
            (window_end, number, epoch),
            Arc::clone(&live),
            stopped.clone(),
        ));
    }
    tokio::time::sleep_until(window_end.into()).await;
    let drain_end = tokio::time::Instant::now() + DRAIN;
    while tokio::time::Instant::now() < drain_end {
        let sent = live.sent.load(Ordering::Relaxed);
        let all_done = live.done_sending.load(Ordering::Relaxed) == count as u64;
        if all_done && live.delivered.load(Ordering::Relaxed) >= sent {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let _ = stop.send(true);
    let mut back = Vec::with_capacity(count);
    let mut seen = Seen::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((user, user_seen)) => {
                back.extend(user);
                seen.merge(user_seen);
            }
            Err(e) => seen.failures.add(format!("user task: {e}")),
        }
    }
    progress.finish().await;
    back.sort_by_key(|user| user.index);
    let outcome = Outcome {
        seen,
        seconds: duration.as_secs_f64(),
        rate,
    };
    (back, outcome)
}

/// One user in one step: sends on its schedule until the window ends (all that
/// was due within it), reads between sends, then reads until the step stops. The user comes back unless its
/// session failed.
async fn run_user(
    mut user: User,
    mut pacer: Pacer,
    (window_end, number, epoch): (Instant, u32, Instant),
    live: Arc<Live>,
    stop: watch::Receiver<bool>,
) -> (Option<User>, Seen) {
    let mut seen = Seen {
        scheduled: pacer.due_by(window_end),
        ..Seen::default()
    };
    let mut sending = true;
    let mut sequence = 0u64;
    let failed = loop {
        let now = Instant::now();
        if sending {
            // A sender woken late still sends all that was due within the window.
            let due = pacer.take_due(now.min(window_end), BURST);
            let mut send_failed = None;
            for _ in 0..due {
                sequence += 1;
                let sent_us = epoch.elapsed().as_micros();
                let message = Element::new("message", ns::CLIENT)
                    .with_attr("to", user.to.as_str())
                    .with_attr("type", "chat")
                    .with_attr(
                        "id",
                        format!("b{number}.{}.{sequence}.{sent_us}", user.index),
                    )
                    .with_child(Element::new("body", ns::CLIENT).with_text("pipit bench"));
                if let Err(e) = user.session.send(&message).await {
                    send_failed = Some(format!("sending: {e}"));
                    break;
                }
                seen.sent += 1;
                live.sent.fetch_add(1, Ordering::Relaxed);
            }
            if send_failed.is_some() {
                break send_failed;
            }
            if now >= window_end && due < BURST {
                sending = false;
                live.done_sending.fetch_add(1, Ordering::Relaxed);
            }
        } else if *stop.borrow() {
            break None;
        }
        let wait = if sending {
            pacer
                .next_due()
                .min(window_end)
                .saturating_duration_since(Instant::now())
        } else {
            POLL
        };
        match user.session.next_stanza(wait).await {
            Ok(Some(stanza)) => {
                if let Some(reply) = ping::reply(&stanza) {
                    if let Err(e) = user.session.send(&reply).await {
                        break Some(format!("answering a ping: {e}"));
                    }
                    continue;
                }
                receive(&stanza, number, epoch, &mut seen, &live);
            }
            Err(Error::Timeout(_)) => {}
            Ok(None) => break Some("the server closed the stream".into()),
            Err(e) => break Some(e.to_string()),
        }
    };
    if sending {
        live.done_sending.fetch_add(1, Ordering::Relaxed);
    }
    match failed {
        None => (Some(user), seen),
        Some(why) => {
            seen.failures.add(why);
            (None, seen)
        }
    }
}

/// Counts a received stanza: a bench message of this step (with its latency), of
/// an earlier one, or a bounce.
fn receive(stanza: &Element, number: u32, epoch: Instant, seen: &mut Seen, live: &Live) {
    if stanza.name() != "message" {
        return;
    }
    if stanza.attr("type") == Some("error") {
        seen.bounced += 1;
        let condition = stanza
            .get_child("error", ns::CLIENT)
            .and_then(|e| e.children().next())
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "unknown".into());
        seen.failures.add(format!("message bounced: {condition}"));
        return;
    }
    let Some((step, sent_us)) = stanza.attr("id").and_then(parse_id) else {
        return;
    };
    if step != number {
        seen.stale += 1;
        return;
    }
    let sent = epoch + Duration::from_micros(sent_us);
    seen.delivered += 1;
    live.delivered.fetch_add(1, Ordering::Relaxed);
    seen.latency
        .record(Instant::now().saturating_duration_since(sent));
}

/// The step and the send time (µs since the run's start) of a bench message id,
/// `b{step}.{sender}.{sequence}.{sent_us}`.
fn parse_id(id: &str) -> Option<(u32, u64)> {
    let mut parts = id.strip_prefix('b')?.split('.');
    let step = parts.next()?.parse().ok()?;
    let _sender = parts.next()?;
    let _sequence = parts.next()?;
    let sent_us = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((step, sent_us))
}

async fn close_all(users: Vec<User>, failures: &mut Failures) {
    let mut tasks = tokio::task::JoinSet::new();
    for user in users {
        tasks.spawn(user.session.close());
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            failures.add(format!("close: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_carry_the_step_and_send_time() {
        assert_eq!(parse_id("b3.17.42.123456"), Some((3, 123456)));
        assert_eq!(parse_id("b3.17.42"), None);
        assert_eq!(parse_id("b3.17.42.1.2"), None);
        assert_eq!(parse_id("x3.17.42.1"), None);
        assert_eq!(parse_id("pipit-login-stunt-1"), None);
    }

    #[test]
    fn a_step_is_within_bounds_only_if_fast_complete_and_keeping_up() {
        let outcome = |sent, delivered, latency_ms: u64| {
            let mut seen = Seen {
                scheduled: 100,
                sent,
                delivered,
                ..Seen::default()
            };
            for _ in 0..delivered {
                seen.latency.record(Duration::from_millis(latency_ms));
            }
            Outcome {
                seen,
                seconds: 1.0,
                rate: 100.0,
            }
        };
        let limit = Duration::from_millis(100);
        assert!(outcome(100, 100, 5).step(limit).ok);
        assert!(
            outcome(96, 96, 5).step(limit).ok,
            "one short of the schedule"
        );
        assert!(!outcome(100, 100, 150).step(limit).ok, "slow");
        assert!(!outcome(100, 99, 5).step(limit).ok, "lost one");
        assert!(!outcome(90, 90, 5).step(limit).ok, "behind the rate");
        assert_eq!(outcome(100, 97, 5).step(limit).lost, 3);
    }
}
