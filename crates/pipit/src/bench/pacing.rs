//! Rate pacing: a sender's schedule at a steady rate, as plain arithmetic on the
//! times it is given (no clock inside), so that it is tested without waiting.
//!
//! The k-th send (k from 1) is due at `start + k / rate`. A sender that fell behind
//! catches up in bursts of bounded size rather than all at once, so a stall in the
//! generator shows as a lower sent rate, not as a flood that the server is then
//! blamed for.

use std::time::{Duration, Instant};

/// One sender's schedule.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    rate: f64,
    taken: u64,
}

impl Pacer {
    /// Sends at `rate` per second from `start` (`rate` must be positive).
    pub fn new(start: Instant, rate: f64) -> Pacer {
        debug_assert!(rate > 0.0);
        Pacer {
            start,
            rate,
            taken: 0,
        }
    }

    /// How many sends are due by `now` in all.
    pub fn due_by(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_secs_f64() * self.rate).floor() as u64
    }

    /// Takes the sends due at `now` and not taken yet, at most `burst` of them.
    pub fn take_due(&mut self, now: Instant, burst: u64) -> u64 {
        let due = self.due_by(now).saturating_sub(self.taken).min(burst);
        self.taken += due;
        due
    }

    /// When the next send not taken yet is due.
    pub fn next_due(&self) -> Instant {
        self.start + Duration::from_secs_f64((self.taken + 1) as f64 / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_come_due_at_the_rate() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 10.0);
        assert_eq!(pacer.take_due(start, 100), 0);
        assert_eq!(pacer.next_due(), start + Duration::from_millis(100));
        assert_eq!(pacer.take_due(start + Duration::from_millis(99), 100), 0);
        assert_eq!(pacer.take_due(start + Duration::from_millis(100), 100), 1);
        assert_eq!(pacer.take_due(start + Duration::from_millis(150), 100), 0);
        assert_eq!(pacer.next_due(), start + Duration::from_millis(200));
        // A second in all: ten sends, however they were taken.
        assert_eq!(pacer.take_due(start + Duration::from_secs(1), 100), 9);
    }

    #[test]
    fn a_late_sender_catches_up_in_bounded_bursts() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 1000.0);
        let late = start + Duration::from_secs(1);
        let mut bursts = Vec::new();
        loop {
            match pacer.take_due(late, 300) {
                0 => break,
                n => bursts.push(n),
            }
        }
        assert_eq!(bursts, vec![300, 300, 300, 100]);
        assert!(pacer.next_due() > late);
    }

    #[test]
    fn fractional_rates_keep_their_average() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 2.5);
        let taken: u64 = (1..=40)
            .map(|tenth| pacer.take_due(start + Duration::from_millis(100 * tenth), 10))
            .sum();
        // Four seconds at 2.5 per second.
        assert_eq!(taken, 10);
    }
}
