//! The report every scenario ends with: one shape for all, printed as a table or
//! as JSON (`--json`). The JSON shape is stable; `pipit bench --help` documents it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::histogram::Percentiles;
use super::target::TargetSummary;

/// Distinct failure reasons kept; later new ones are counted under [`OTHER`], so
/// that a reason carrying a changing detail cannot grow the report without bound.
const MAX_REASONS: usize = 32;
/// Where failures beyond [`MAX_REASONS`] distinct reasons go.
const OTHER: &str = "other reasons";

/// Failures counted by reason.
#[derive(Serialize, Debug, Default, Clone)]
#[serde(transparent)]
pub struct Failures(BTreeMap<String, u64>);

impl Failures {
    pub fn add(&mut self, reason: String) {
        self.add_n(reason, 1);
    }

    fn add_n(&mut self, reason: String, n: u64) {
        let key = if self.0.len() < MAX_REASONS || self.0.contains_key(&reason) {
            reason
        } else {
            OTHER.to_owned()
        };
        *self.0.entry(key).or_default() += n;
    }

    pub fn merge(&mut self, other: Failures) {
        for (reason, n) in other.0 {
            self.add_n(reason, n);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// The server's resident memory, from /proc/PID/status (`--server-pid`).
#[derive(Serialize, Debug, Clone, Copy)]
pub struct Rss {
    /// Before the first connection.
    pub before_kib: u64,
    /// Once every session was established.
    pub after_kib: u64,
    /// At the end of the hold, before the sessions were closed.
    pub end_kib: u64,
    /// (after − before) / established sessions.
    pub per_session_kib: Option<f64>,
}

/// One rate step of `messages --find-limit`.
#[derive(Serialize, Debug, Clone)]
pub struct Step {
    pub target_per_s: f64,
    pub sent_per_s: f64,
    pub delivered_per_s: f64,
    pub lost: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Within the limits: p99 under the bound, nothing lost, delivery keeping up.
    pub ok: bool,
}

/// A whole run.
#[derive(Serialize, Debug)]
pub struct Report {
    pub scenario: &'static str,
    pub mode: &'static str,
    pub target: TargetSummary,
    /// The scenario's own settings (clients, duration_s, rate_per_s, …).
    pub parameters: BTreeMap<&'static str, f64>,
    /// Wall time of the measured part, in seconds.
    pub seconds: f64,
    pub counts: BTreeMap<&'static str, u64>,
    pub rates: BTreeMap<&'static str, f64>,
    /// Login latency (logins, idle) or delivery latency (messages).
    pub latency_ms: Option<Percentiles>,
    pub failures: Failures,
    pub rss: Option<Rss>,
    /// `messages --find-limit` only: each step, and the highest rate within limits.
    pub steps: Vec<Step>,
    pub limit_per_s: Option<f64>,
    /// Caveats: a generator that fell behind, a resource limit met.
    pub notes: Vec<String>,
}

impl Report {
    pub fn print_json(&self) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(self)?);
        Ok(())
    }

    pub fn print_table(&self) {
        let t = &self.target;
        println!(
            "pipit bench {} — mode {}, {} (Direct TLS {}), accounts {}1..{}@{}{}",
            self.scenario,
            self.mode,
            t.server,
            t.direct_tls,
            t.accounts,
            t.account_count,
            t.domain,
            t.rtt_ms
                .map(|ms| format!(", emulated RTT {ms} ms"))
                .unwrap_or_default()
        );
        let parameters: Vec<String> = self
            .parameters
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "  {}; {:.1} s measured",
            parameters.join(", "),
            self.seconds
        );
        for (name, value) in &self.counts {
            println!("  {name:<24} {value:>12}");
        }
        for (name, value) in &self.rates {
            println!("  {name:<24} {value:>12.2}");
        }
        match &self.latency_ms {
            Some(p) => println!(
                "  latency ms               p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (mean {:.2}, n {})",
                p.p50, p.p90, p.p99, p.max, p.mean, p.count
            ),
            None => println!("  latency ms               -"),
        }
        if let Some(rss) = &self.rss {
            println!(
                "  server RSS               {} KiB before, {} KiB established, {} KiB at the end{}",
                rss.before_kib,
                rss.after_kib,
                rss.end_kib,
                rss.per_session_kib
                    .map(|kib| format!(" → {kib:.1} KiB per session"))
                    .unwrap_or_default()
            );
        }
        if !self.steps.is_empty() {
            println!(
                "  {:>10} {:>10} {:>12} {:>6} {:>8} {:>8}",
                "target/s", "sent/s", "delivered/s", "lost", "p50 ms", "p99 ms"
            );
            for s in &self.steps {
                println!(
                    "  {:>10.0} {:>10.0} {:>12.0} {:>6} {:>8} {:>8}  {}",
                    s.target_per_s,
                    s.sent_per_s,
                    s.delivered_per_s,
                    s.lost,
                    opt_ms(s.p50_ms),
                    opt_ms(s.p99_ms),
                    if s.ok { "ok" } else { "over the limit" }
                );
            }
            match self.limit_per_s {
                Some(rate) => println!("  limit: {rate:.0} messages/s within the bounds"),
                None => println!("  limit: not even the first rate stayed within the bounds"),
            }
        }
        println!("  failures                 {:>12}", self.failures.total());
        for (reason, n) in &self.failures.0 {
            println!("    {n:>8}× {reason}");
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_beyond_the_cap_are_lumped_together() {
        let mut failures = Failures::default();
        for n in 0..MAX_REASONS + 5 {
            failures.add(format!("reason {n}"));
        }
        failures.add("reason 0".into());
        assert_eq!(failures.total(), MAX_REASONS as u64 + 6);
        assert_eq!(failures.0.len(), MAX_REASONS + 1);
        assert_eq!(failures.0[OTHER], 5);
        assert_eq!(failures.0["reason 0"], 2);
    }

    #[test]
    fn merging_adds_by_reason() {
        let mut a = Failures::default();
        a.add("timeout".into());
        let mut b = Failures::default();
        b.add("timeout".into());
        b.add("refused".into());
        a.merge(b);
        assert_eq!(a.0["timeout"], 2);
        assert_eq!(a.total(), 3);
    }
}
