//! What the soak saw: counts by outcome, login times, and the server's resident
//! memory over time; printed as a table or JSON.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Filled in by every client task.
#[derive(Default)]
pub struct Outcomes {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    login_ms: Vec<f64>,
    delivered: u64,
    refused: BTreeMap<String, u64>,
    misbehaved: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Outcomes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn logged_in(&self, took: Duration) {
        self.lock().login_ms.push(took.as_secs_f64() * 1000.0);
    }

    pub fn delivered(&self) {
        self.lock().delivered += 1;
    }

    pub fn refused(&self, why: String) {
        *self.lock().refused.entry(why).or_default() += 1;
    }

    pub fn misbehaved(&self, kind: &str, outcome: String) {
        *self
            .lock()
            .misbehaved
            .entry(kind.to_owned())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
}

/// The server's resident memory, sampled once a second.
#[derive(Serialize, Debug, Default)]
pub struct Memory {
    /// (seconds since the start, KiB).
    pub samples: Vec<(u64, u64)>,
    /// After warm-up (the first fifth of the run): the first sample, the highest,
    /// and the last; growth is last minus first.
    pub after_warm_up_kib: Option<u64>,
    pub max_kib: Option<u64>,
    pub last_kib: Option<u64>,
    pub growth_after_warm_up_kib: Option<i64>,
}

/// Samples `/proc/PID/status` VmRSS every second until `deadline`.
pub async fn sample_rss(pid: Option<u32>, deadline: Instant) -> Memory {
    let mut memory = Memory::default();
    let Some(pid) = pid else {
        return memory;
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < deadline {
        tick.tick().await;
        if let Some(kib) = rss_kib(pid) {
            memory.samples.push((started.elapsed().as_secs(), kib));
        }
    }
    let warm_up = deadline.saturating_duration_since(started).as_secs() / 5;
    let after: Vec<u64> = memory
        .samples
        .iter()
        .filter(|(t, _)| *t >= warm_up)
        .map(|(_, kib)| *kib)
        .collect();
    memory.after_warm_up_kib = after.first().copied();
    memory.max_kib = after.iter().max().copied();
    memory.last_kib = after.last().copied();
    memory.growth_after_warm_up_kib = after
        .first()
        .zip(after.last())
        .map(|(first, last)| *last as i64 - *first as i64);
    memory
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The whole run.
#[derive(Serialize, Debug)]
pub struct Report {
    pub seconds: f64,
    pub clients: u32,
    pub misbehaving: u32,
    pub logins: usize,
    pub logins_per_second: f64,
    pub login_ms_p50: Option<f64>,
    pub login_ms_p99: Option<f64>,
    pub messages_delivered: u64,
    /// Well-behaved logins or messages that failed, in all.
    pub refused: u64,
    pub refusals: BTreeMap<String, u64>,
    pub misbehaving_outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    pub memory: Memory,
}

impl Report {
    pub fn new(
        outcomes: &Outcomes,
        memory: Memory,
        took: Duration,
        clients: u32,
        misbehaving: u32,
    ) -> Report {
        let inner = outcomes.lock();
        let mut times = inner.login_ms.clone();
        times.sort_by(f64::total_cmp);
        let seconds = took.as_secs_f64();
        Report {
            seconds,
            clients,
            misbehaving,
            logins: times.len(),
            logins_per_second: times.len() as f64 / seconds.max(f64::EPSILON),
            login_ms_p50: percentile(&times, 0.50),
            login_ms_p99: percentile(&times, 0.99),
            messages_delivered: inner.delivered,
            refused: inner.refused.values().sum(),
            refusals: inner.refused.clone(),
            misbehaving_outcomes: inner.misbehaved.clone(),
            memory,
        }
    }

    pub fn print(&self) {
        println!(
            "soak: {:.0} s, {} well-behaved and {} misbehaving clients at once",
            self.seconds, self.clients, self.misbehaving
        );
        println!(
            "well-behaved: {} logins ({:.1}/s, p50 {} ms, p99 {} ms), {} messages back, {} refused",
            self.logins,
            self.logins_per_second,
            ms(self.login_ms_p50),
            ms(self.login_ms_p99),
            self.messages_delivered,
            self.refused
        );
        for (why, count) in &self.refusals {
            println!("  refused {count}×: {why}");
        }
        for (kind, outcomes) in &self.misbehaving_outcomes {
            println!("{kind}:");
            for (outcome, count) in outcomes {
                println!("  {count}× {outcome}");
            }
        }
        match (
            self.memory.after_warm_up_kib,
            self.memory.max_kib,
            self.memory.last_kib,
        ) {
            (Some(first), Some(max), Some(last)) => println!(
                "server RSS after warm-up: {} MiB, max {} MiB, at the end {} MiB ({:+} KiB)",
                first / 1024,
                max / 1024,
                last / 1024,
                last as i64 - first as i64
            ),
            _ => println!("server RSS: not sampled (give --server-pid)"),
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let at = (q * last as f64).round() as usize;
    sorted.get(at).map(|v| (v * 10.0).round() / 10.0)
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_the_sorted_times() {
        let times: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&times, 0.5), Some(51.0));
        assert_eq!(percentile(&times, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn outcomes_are_counted_by_reason() {
        let outcomes = Outcomes::default();
        outcomes.refused("a".into());
        outcomes.refused("a".into());
        outcomes.misbehaved("garbage", "closed".into());
        outcomes.logged_in(Duration::from_millis(5));
        let report = Report::new(&outcomes, Memory::default(), Duration::from_secs(1), 1, 1);
        assert_eq!(report.refused, 2);
        assert_eq!(report.refusals["a"], 2);
        assert_eq!(report.misbehaving_outcomes["garbage"]["closed"], 1);
        assert_eq!(report.logins, 1);
    }
}
