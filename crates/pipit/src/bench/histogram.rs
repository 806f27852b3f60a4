//! A latency histogram in microseconds, log-linear like HDR histograms: values
//! below 128 µs are kept exactly, larger ones in buckets 1/64 of their power of
//! two wide, so a percentile is never off by more than 1.6% while a run of any
//! length takes a fixed 30 KiB. Exact count, sum, minimum and maximum ride along.

use std::time::Duration;

use serde::Serialize;

/// Values below `2^PRECISION` get a bucket each.
const PRECISION: u32 = 7;
/// Buckets per power of two above that.
const HALF: u64 = 1 << (PRECISION - 1);
/// Enough buckets for any `u64`.
const BUCKETS: usize = (1 << PRECISION) + (64 - PRECISION as usize) * HALF as usize;

/// Recorded durations, mergeable across tasks.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

/// The percentiles a report shows, in milliseconds.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

impl Histogram {
    /// Records one duration, to the microsecond.
    pub fn record(&mut self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.counts[index(us)] += 1;
        self.count += 1;
        self.sum_us += u128::from(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The value at quantile `q` (0 to 1) in microseconds: the smallest recorded
    /// value that at least `q` of all values do not exceed, to the bucket's middle,
    /// kept within the exact minimum and maximum (the largest is exact). `None`
    /// when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank >= self.count {
            // The largest value is known exactly.
            return Some(self.max_us);
        }
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(middle(i).clamp(self.min_us, self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// The report's summary; `None` when empty.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.count == 0 {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            count: self.count,
            min: ms(self.min_us),
            mean: (self.sum_us as f64 / self.count as f64 / 10.0).round() / 100.0,
            p50: ms(self.quantile_us(0.50)?),
            p90: ms(self.quantile_us(0.90)?),
            p99: ms(self.quantile_us(0.99)?),
            max: ms(self.max_us),
        })
    }
}

/// The bucket of `us`.
fn index(us: u64) -> usize {
    if us < 1 << PRECISION {
        return us as usize;
    }
    let shift = 64 - us.leading_zeros() - PRECISION;
    let top = us >> shift;
    ((1 << PRECISION) + u64::from(shift - 1) * HALF + (top - HALF)) as usize
}

/// The middle of bucket `i`'s range.
fn middle(i: usize) -> u64 {
    let i = i as u64;
    if i < 1 << PRECISION {
        return i;
    }
    let above = i - (1 << PRECISION);
    let shift = above / HALF + 1;
    let low = (HALF + above % HALF) << shift;
    low + ((1u64 << shift) - 1) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of_micros(values: impl IntoIterator<Item = u64>) -> Histogram {
        let mut h = Histogram::default();
        for v in values {
            h.record(Duration::from_micros(v));
        }
        h
    }

    #[test]
    fn small_values_are_exact() {
        let h = of_micros(1..=100);
        assert_eq!(h.quantile_us(0.5), Some(50));
        assert_eq!(h.quantile_us(0.9), Some(90));
        assert_eq!(h.quantile_us(0.99), Some(99));
        assert_eq!(h.quantile_us(1.0), Some(100));
        assert_eq!(h.quantile_us(0.0), Some(1));
    }

    #[test]
    fn large_values_stay_within_the_bucket_error() {
        for v in [
            128,
            129,
            1_000,
            99_999,
            1_234_567,
            3_600_000_000,
            u64::MAX / 3,
        ] {
            let i = index(v);
            assert!(i < BUCKETS, "{v}");
            let mid = middle(i);
            let error = mid.abs_diff(v) as f64 / v as f64;
            assert!(error <= 1.0 / 64.0, "{v}: bucket middle {mid}");
        }
        // Percentiles of a spread of large values: each within 1.6% of the exact one.
        let values: Vec<u64> = (1..=1000).map(|n| n * 997).collect();
        let h = of_micros(values.iter().copied());
        for (q, exact) in [(0.5, 500 * 997), (0.9, 900 * 997), (0.99, 990 * 997)] {
            let got = h.quantile_us(q).unwrap();
            assert!(
                got.abs_diff(exact) as f64 / exact as f64 <= 1.0 / 64.0,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile_us(1.0), Some(1000 * 997));
    }

    #[test]
    fn buckets_are_in_order_and_cover_every_value() {
        let mut last = 0;
        for v in (0..20_000).chain([u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i >= last, "{v}");
            last = i;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn an_empty_histogram_has_no_percentiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile_us(0.5), None);
        assert_eq!(h.percentiles(), None);
    }

    #[test]
    fn merging_adds_counts_and_keeps_extremes() {
        let mut a = of_micros([5, 10]);
        let b = of_micros([1, 50_000]);
        a.merge(&b);
        let p = a.percentiles().unwrap();
        assert_eq!(p.count, 4);
        assert_eq!(p.min, 0.001);
        assert_eq!(p.max, 50.0);
        assert_eq!(a.quantile_us(0.5), Some(5));
        assert_eq!(p.mean, 12.5);
    }
}
