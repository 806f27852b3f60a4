//! Failed-login throttling: a growing delay, per client address and per account,
//! on password logins after a few free failures, with no lockout an attacker could
//! hold against an account's owner.
//!
//! **Where the delay goes.** A throttled attempt is held *before* its credentials
//! are looked up ([`Event::NeedCredentials`](pipit_proto::server::Event)), so the
//! success and the `<failure/>` of a throttled attempt both come after the delay.
//! Delaying only the `<failure/>` would leak the answer: a success would come at
//! once, and an attacker could give up after a round trip, count the silence as a
//! failure and try again on another connection, unthrottled. Held before the
//! lookup, the delay also depends on nothing the store knows: an unknown account
//! and a wrong password are delayed alike, and the account table is keyed by the
//! name tried whether or not it exists (RFC 6120 §6.4.5 asks for one
//! `<not-authorized/>` for both; the core's decoy SCRAM salts keep the rest alike).
//!
//! **Per address.** Failures count per IPv4 address and per IPv6 /64 (one host
//! usually holds a whole /64, RFC 4291 §2.5.4). After [`Policy::ip_free`] failures,
//! every attempt from the address waits [`Policy::first_delay`], doubling with each
//! further failure up to [`Policy::max_delay`]. A success does *not* clear the
//! address's record: an attacker with an account of their own (or a friend's)
//! could otherwise log in to it between guesses and wipe the record. The owner of
//! the address loses at most `max_delay` per attempt while its failures decay.
//!
//! **Per account.** Failures also count per account, against guessing spread over
//! many addresses. The account's delay applies only to attempts from an address
//! that has failed itself (its own score is above zero): the owner logging in from
//! an address with no failures is never held, however hard the account is being
//! attacked from elsewhere, so the attack cannot lock them out. An address that has
//! failed (a bot, or the owner after a typo) waits the longer of the two delays,
//! never more than `max_delay`, and a success clears the account's record: only
//! the owner can succeed.
//!
//! **Decay.** One failure is forgiven per [`Policy::decay`] without new ones, and a
//! score never climbs above what the longest delay needs, so an address or
//! account is back to free attempts a few minutes after an attack stops.
//!
//! **Bounds.** Each table keeps at most [`Policy::max_entries`] records: when full,
//! records that have decayed to nothing go first, then the stalest. Parallel
//! attempts from one address each see the same delay; how many connections one
//! address may hold at once is the connection limits' business, not this one's.
//!
//! The throttle is pure: time is an argument, so tests drive it with a made-up clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The throttle's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Failures an address may have before its attempts are delayed.
    pub ip_free: u32,
    /// Failures an account may have before attempts on it (from addresses that
    /// have failed) are delayed; higher than `ip_free`, since the owner's own
    /// typos count here too.
    pub account_free: u32,
    /// The delay after the free failures are used up; it doubles per failure.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// One failure is forgiven per this much time.
    pub decay: Duration,
    /// Records kept per table (addresses, accounts).
    pub max_entries: usize,
}

impl Default for Policy {
    /// Five free failures per address and ten per account (enough for a user who
    /// mistypes a few times, far too few to guess with), then 1 s doubling to 30 s,
    /// one failure forgiven a minute.
    fn default() -> Self {
        Policy {
            ip_free: 5,
            account_free: 10,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            decay: Duration::from_secs(60),
            max_entries: 100_000,
        }
    }
}

impl Policy {
    /// The delay for a key with `score` failures, `free` of them free.
    fn backoff(&self, score: u32, free: u32) -> Duration {
        if score < free {
            return Duration::ZERO;
        }
        let doublings = (score - free).min(31);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }

    /// The highest score worth keeping: one that already gives `max_delay`.
    fn max_score(&self, free: u32) -> u32 {
        let mut score = free;
        while self.backoff(score, free) < self.max_delay && score < free + 31 {
            score += 1;
        }
        score
    }
}

/// The failures of one address or account.
#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    /// When `failures` was last set; decay counts from here.
    since: Instant,
}

impl Record {
    /// Failures left after decay.
    fn score(&self, now: Instant, decay: Duration) -> u32 {
        let elapsed = now.saturating_duration_since(self.since);
        let forgiven = if decay.is_zero() {
            u32::MAX
        } else {
            u32::try_from(elapsed.as_nanos() / decay.as_nanos()).unwrap_or(u32::MAX)
        };
        self.failures.saturating_sub(forgiven)
    }
}

/// Where failures from one client are counted: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IpKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => IpKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

#[derive(Default)]
struct Tables {
    ips: HashMap<IpKey, Record>,
    accounts: HashMap<String, Record>,
}

/// The failed-login records of the whole server.
pub struct Throttle {
    policy: Policy,
    tables: Mutex<Tables>,
}

impl Throttle {
    /// A throttle with no records.
    pub fn new(policy: Policy) -> Self {
        Throttle {
            policy,
            tables: Mutex::default(),
        }
    }

    /// How long to hold a password attempt on `account` (`user@domain`, prepared)
    /// from `ip` before its credentials are looked up.
    pub fn delay(&self, ip: IpAddr, account: &str, now: Instant) -> Duration {
        let p = &self.policy;
        let tables = self.lock();
        let score = |r: Option<&Record>| r.map_or(0, |r| r.score(now, p.decay));
        let ip_score = score(tables.ips.get(&IpKey::from(ip)));
        let by_ip = p.backoff(ip_score, p.ip_free);
        // Only an address that has failed itself waits for the account's record:
        // the owner at a clean address is never held (see the module docs).
        let by_account = if ip_score > 0 {
            p.backoff(score(tables.accounts.get(account)), p.account_free)
        } else {
            Duration::ZERO
        };
        by_ip.max(by_account)
    }

    /// Records a failed password attempt on `account` from `ip`.
    pub fn failed(&self, ip: IpAddr, account: &str, now: Instant) {
        let p = &self.policy;
        let mut tables = self.lock();
        bump(
            &mut tables.ips,
            IpKey::from(ip),
            now,
            p,
            p.max_score(p.ip_free),
        );
        bump(
            &mut tables.accounts,
            account.to_owned(),
            now,
            p,
            p.max_score(p.account_free),
        );
    }

    /// Records a successful login to `account`: its record goes (only the owner
    /// can succeed), the address's stays (see the module docs).
    pub fn succeeded(&self, account: &str) {
        self.lock().accounts.remove(account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Each update is one insert or remove: a poisoned table is still consistent.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Adds a failure to `key`'s record, making room first when the table is full.
fn bump<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Record>,
    key: K,
    now: Instant,
    policy: &Policy,
    max_score: u32,
) {
    if !table.contains_key(&key) && table.len() >= policy.max_entries {
        table.retain(|_, r| r.score(now, policy.decay) > 0);
        if table.len() >= policy.max_entries
            && let Some(stalest) = table
                .iter()
                .min_by_key(|(_, r)| r.since)
                .map(|(k, _)| k.clone())
        {
            table.remove(&stalest);
        }
    }
    let score = table.get(&key).map_or(0, |r| r.score(now, policy.decay));
    table.insert(
        key,
        Record {
            failures: (score + 1).min(max_score),
            since: now,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy() -> Policy {
        Policy {
            ip_free: 3,
            account_free: 5,
            ..Policy::default()
        }
    }

    #[test]
    fn free_failures_then_a_doubling_capped_delay() {
        let throttle = Throttle::new(policy());
        let t0 = Instant::now();
        let attacker = ip("192.0.2.1");
        let mut delays = Vec::new();
        for _ in 0..10 {
            delays.push(throttle.delay(attacker, "mallory@x", t0).as_secs());
            throttle.failed(attacker, "mallory@x", t0);
        }
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn failures_decay_and_the_score_is_capped() {
        let throttle = Throttle::new(policy());
        let t0 = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..1000 {
            throttle.failed(addr, "a@x", t0);
        }
        assert_eq!(throttle.delay(addr, "a@x", t0), 30 * SEC);
        // Capped at the score that gives 30 s (3 free + 1,2,4,8,16,30): a few
        // minutes of quiet, not a thousand, bring the free attempts back.
        let later = t0 + policy().decay * 6;
        assert_eq!(throttle.delay(addr, "b@x", later), Duration::ZERO);
        let sooner = t0 + policy().decay * 4;
        assert_eq!(throttle.delay(addr, "b@x", sooner), 2 * SEC);
    }

    #[test]
    fn an_attack_from_one_address_does_not_hold_up_the_owner_elsewhere() {
        let throttle = Throttle::new(policy());
        let t0 = Instant::now();
        let attacker = ip("192.0.2.1");
        for i in 0..500 {
            throttle.failed(attacker, "alice@x", t0 + SEC * i);
        }
        let now = t0 + SEC * 500;
        assert_eq!(throttle.delay(attacker, "alice@x", now), 30 * SEC);
        // Alice at home: no delay, whatever the account's record says.
        assert_eq!(
            throttle.delay(ip("198.51.100.7"), "alice@x", now),
            Duration::ZERO
        );
        // Alice after one typo of her own: held, but never beyond the cap, and
        // her success clears the account's record.
        let phone = ip("2001:db8::1");
        throttle.failed(phone, "alice@x", now);
        assert_eq!(throttle.delay(phone, "alice@x", now), 30 * SEC);
        throttle.succeeded("alice@x");
        assert_eq!(throttle.delay(phone, "alice@x", now), Duration::ZERO);
    }

    #[test]
    fn many_addresses_against_one_account_are_slowed_by_its_record() {
        let throttle = Throttle::new(policy());
        let t0 = Instant::now();
        for bot in 1..=20u8 {
            throttle.failed(ip(&format!("203.0.113.{bot}")), "alice@x", t0);
        }
        // Each bot has one failure of its own: free per address, not per account.
        assert_eq!(
            throttle.delay(ip("203.0.113.1"), "bob@x", t0),
            Duration::ZERO
        );
        assert_eq!(throttle.delay(ip("203.0.113.1"), "alice@x", t0), 30 * SEC);
    }

    #[test]
    fn a_success_does_not_clear_the_address() {
        let throttle = Throttle::new(policy());
        let t0 = Instant::now();
        let addr = ip("192.0.2.1");
        for _ in 0..5 {
            throttle.failed(addr, "alice@x", t0);
        }
        // The attacker logs in to an account of their own between guesses.
        throttle.succeeded("mallory@x");
        throttle.succeeded("alice@x");
        assert_eq!(throttle.delay(addr, "alice@x", t0), 4 * SEC);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = Throttle::new(policy());
        let t0 = Instant::now();
        for host in 1..=3 {
            throttle.failed(ip(&format!("2001:db8:0:1::{host}")), "a@x", t0);
        }
        assert_eq!(
            throttle.delay(ip("2001:db8:0:1:ffff::9"), "b@x", t0),
            SEC,
            "same /64"
        );
        assert_eq!(
            throttle.delay(ip("2001:db8:0:2::1"), "b@x", t0),
            Duration::ZERO
        );
        for _ in 0..3 {
            throttle.failed(ip("::ffff:192.0.2.9"), "a@x", t0);
        }
        assert_eq!(throttle.delay(ip("192.0.2.9"), "b@x", t0), SEC);
    }

    #[test]
    fn tables_stay_bounded() {
        let throttle = Throttle::new(Policy {
            max_entries: 10,
            ..policy()
        });
        let t0 = Instant::now();
        for i in 0..100u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            throttle.failed(addr, &format!("user{i}@x"), t0 + SEC * i);
        }
        let tables = throttle.lock();
        assert!(tables.ips.len() <= 10 && tables.accounts.len() <= 10);
        // The stalest went first.
        assert!(tables.accounts.contains_key("user99@x"));
        assert!(!tables.accounts.contains_key("user0@x"));
    }
}
