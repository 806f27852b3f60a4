//! What client tasks count while a scenario runs: named counts, a latency
//! histogram and failures by reason, behind one lock (a few thousand events a
//! second at most; the hot message path keeps its own per task).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::histogram::Histogram;
use super::report::Failures;

#[derive(Default)]
pub struct Tally {
    inner: Mutex<Inner>,
}

#[derive(Default)]
pub struct Inner {
    pub counts: BTreeMap<&'static str, u64>,
    pub latency: Histogram,
    pub failures: Failures,
}

impl Tally {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds one to `count`.
    pub fn count(&self, count: &'static str) {
        self.add(count, 1);
    }

    /// Adds `n` to `count`.
    pub fn add(&self, count: &'static str, n: u64) {
        *self.lock().counts.entry(count).or_default() += n;
    }

    /// Adds one to `count` and records how long it took.
    pub fn timed(&self, count: &'static str, took: Duration) {
        let mut inner = self.lock();
        *inner.counts.entry(count).or_default() += 1;
        inner.latency.record(took);
    }

    pub fn fail(&self, reason: String) {
        self.lock().failures.add(reason);
    }

    /// The value of `count` (0 if never counted).
    pub fn get(&self, count: &'static str) -> u64 {
        self.lock().counts.get(count).copied().unwrap_or(0)
    }

    pub fn failed(&self) -> u64 {
        self.lock().failures.total()
    }

    /// Everything counted, leaving the tally empty.
    pub fn take(&self) -> Inner {
        std::mem::take(&mut *self.lock())
    }
}
