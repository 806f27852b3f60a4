//! Connection admission: how many connections an address may hold open, how
//! often it may open new ones, and how many the server holds in all.
//!
//! Pure accounting, no sockets and no clock: the accept loop passes the time in
//! ([`Admission::admit`]), so the tests step time instead of sleeping. What a
//! refused connection is told is decided here ([`Refusal::stream_error`], the one
//! place these refusals meet RFC 6120 conditions); how it is told is the accept
//! loop's business (`server.rs`).
//!
//! Addresses are counted by [`AddressKey`]: an IPv4 address on its own, an IPv6
//! address by its /64 prefix.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pipit_proto::error::StreamError;

/// Default [`ConnectionLimits::per_address`]. Postfix ships the same per-client
/// cap (`smtpd_client_connection_count_limit = 50`): a household or a small
/// office behind one NAT address, each person with a phone and a desktop client,
/// stays well below it, while one host cannot take a large share of the server.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 50;

/// Default [`ConnectionLimits::rate_per_sec`]. A client connects once per login
/// and reconnects with back-off; ten new connections a second from one address
/// is far above what people behind it do, and bounds the TLS handshakes (a
/// signature and a key exchange each) one address can make the server compute.
pub const DEFAULT_CONNECTION_RATE_PER_IP: u32 = 10;

/// Default [`ConnectionLimits::burst`]: after a network outage every client
/// behind a NAT address reconnects at once, and `pipit check` opens about 35
/// connections in under a second; a hundred may connect without waiting, the
/// rest are refused and retry after their back-off. A hundred handshakes cost a
/// server core well under a second.
pub const DEFAULT_CONNECTION_BURST_PER_IP: u32 = 100;

/// Default [`ConnectionLimits::total`]. A connection costs up to about 64 KiB
/// (the 16 KiB read buffer, rustls buffers for a full 16 KiB record each way,
/// the parser), so ten thousand stay under 1 GiB even in the worst case: a
/// small virtual server survives a flood instead of being killed for memory.
/// Larger machines raise it; the operating system's file descriptor limit
/// (`ulimit -n`) must be raised with it.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

/// Default per-account session limit (the router applies it). ejabberd ships
/// the same (`max_user_sessions: 10`): a person rarely has more than a few
/// devices, and a leaked password or a buggy client that binds in a loop cannot
/// make one account fill the router.
pub const DEFAULT_MAX_SESSIONS_PER_USER: u32 = 10;

/// How many connections are admitted; every count may be 0 for "no limit".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one address (an IPv6 /64) may hold open at once.
    pub per_address: u32,
    /// New connections one address may open per second, once its burst is spent.
    pub rate_per_sec: u32,
    /// New connections one address may open at once before the rate applies.
    pub burst: u32,
    /// Connections the server holds open in all.
    pub total: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            per_address: DEFAULT_MAX_CONNECTIONS_PER_IP,
            rate_per_sec: DEFAULT_CONNECTION_RATE_PER_IP,
            burst: DEFAULT_CONNECTION_BURST_PER_IP,
            total: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// No limit at all.
    pub const UNLIMITED: ConnectionLimits = ConnectionLimits {
        per_address: 0,
        rate_per_sec: 0,
        burst: 0,
        total: 0,
    };
}

/// Why a connection was refused. The text goes to the client in the stream
/// error's `<text/>`, so it says which limit, in words a user can act on.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The address holds as many connections as it may.
    #[error("too many connections from your address (at most {limit} at once)")]
    PerAddress {
        /// The limit.
        limit: u32,
    },
    /// The address opened connections faster than it may.
    #[error(
        "too many new connections from your address (at most {per_sec} a second after \
         {burst} at once); wait and reconnect"
    )]
    Rate {
        /// The sustained rate.
        per_sec: u32,
        /// The burst.
        burst: u32,
    },
    /// The server holds as many connections as it may.
    #[error("the server is at its limit of {limit} connections; try again later")]
    Total {
        /// The limit.
        limit: u32,
    },
}

impl Refusal {
    /// The stream error the client gets: what this address does is
    /// `<policy-violation/>` (RFC 6120 §4.9.3.14: "a local service policy"),
    /// what the server as a whole lacks is `<resource-constraint/>` (§4.9.3.17:
    /// "the server lacks the system resources necessary to service the stream").
    pub fn stream_error(&self) -> StreamError {
        match self {
            Refusal::PerAddress { .. } | Refusal::Rate { .. } => {
                StreamError::PolicyViolation(self.to_string())
            }
            Refusal::Total { .. } => StreamError::ResourceConstraint(self.to_string()),
        }
    }

    /// Whether the refusal is for connecting too often. Telling such a client
    /// anything that costs a TLS handshake would undo what the rate is for.
    pub fn is_rate(&self) -> bool {
        matches!(self, Refusal::Rate { .. })
    }
}

/// The unit connections are counted by: an IPv4 address, or the /64 an IPv6
/// address is in.
///
/// An IPv6 host usually has a whole /64 to itself (RFC 7421: the subnet prefix
/// length is 64) and picks addresses in it at will (RFC 8981 temporary
/// addresses rotate on their own), so counting single IPv6 addresses would
/// limit nothing. IPv4-mapped addresses (`::ffff:a.b.c.d`, from a dual-stack
/// listener) count as the IPv4 address they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !(u128::from(u64::MAX));
                    AddressKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Admits or refuses new connections and counts the open ones. Cheap to share:
/// one lock around a few map operations per connection.
#[derive(Clone)]
pub struct Admission {
    limits: ConnectionLimits,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Open connections per address; an address with none has no entry.
    open: HashMap<AddressKey, u32>,
    total: u32,
    /// The rate of each address as GCRA (the token bucket in "virtual time"):
    /// the time its bucket would be full again. An entry at or before now is a
    /// full bucket, the same as no entry.
    full_at: HashMap<AddressKey, Instant>,
    /// `full_at` is swept for full buckets when it reaches this size, so that
    /// addresses seen once do not stay for ever; doubling keeps it amortised O(1).
    sweep_at: usize,
}

/// The smallest size at which [`State::full_at`] is swept.
const SWEEP_MIN: usize = 1024;

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: ConnectionLimits) -> Admission {
        Admission {
            limits,
            state: Arc::new(Mutex::new(State {
                sweep_at: SWEEP_MIN,
                ..State::default()
            })),
        }
    }

    /// The limits applied.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Admits a connection from `ip` at `now`, or says why not. The rate is
    /// checked first and every admitted attempt counts towards it, also one the
    /// caps then refuse: a client retrying against a full cap is slowed down
    /// like any other.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<Slot, Refusal> {
        let key = AddressKey::of(ip);
        let limits = self.limits;
        let mut state = self.lock();
        state.take_token(key, now, limits)?;
        let open = state.open.get(&key).copied().unwrap_or(0);
        if limits.per_address != 0 && open >= limits.per_address {
            return Err(Refusal::PerAddress {
                limit: limits.per_address,
            });
        }
        if limits.total != 0 && state.total >= limits.total {
            return Err(Refusal::Total {
                limit: limits.total,
            });
        }
        state.open.insert(key, open + 1);
        state.total += 1;
        Ok(Slot {
            state: Arc::clone(&self.state),
            key,
        })
    }

    /// Connections open now, in all.
    pub fn open(&self) -> u32 {
        self.lock().total
    }

    /// Connections open now from `ip`'s address (its /64 for IPv6).
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        let key = AddressKey::of(ip);
        self.lock().open.get(&key).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// Each update is a few integer changes made together, so a lock poisoned by a
/// panic elsewhere is still consistent.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    /// GCRA (the virtual-scheduling form of a token bucket holding `burst`
    /// tokens, refilled at `rate_per_sec`): each connection moves the time the
    /// bucket is full again one interval on; a connection that would move it
    /// more than `burst` intervals ahead of now finds the bucket empty.
    fn take_token(
        &mut self,
        key: AddressKey,
        now: Instant,
        limits: ConnectionLimits,
    ) -> Result<(), Refusal> {
        if limits.rate_per_sec == 0 {
            return Ok(());
        }
        let interval = Duration::from_secs(1) / limits.rate_per_sec;
        let burst = limits.burst.max(1);
        let full_at = self.full_at.get(&key).map_or(now, |&t| t.max(now));
        let next = full_at + interval;
        if next > now + interval * burst {
            return Err(Refusal::Rate {
                per_sec: limits.rate_per_sec,
                burst,
            });
        }
        self.full_at.insert(key, next);
        if self.full_at.len() >= self.sweep_at {
            self.full_at.retain(|_, full_at| *full_at > now);
            self.sweep_at = (self.full_at.len() * 2).max(SWEEP_MIN);
        }
        Ok(())
    }
}

/// An admitted connection's place in the counts, given back when dropped: the
/// session task owns it, so a connection that ends in any way (an error, a
/// panic, the server stopping) cannot keep its place.
pub struct Slot {
    state: Arc<Mutex<State>>,
    key: AddressKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.total = state.total.saturating_sub(1);
        if let Some(open) = state.open.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                state.open.remove(&self.key);
            }
        }
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("address", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits(per_address: u32, rate_per_sec: u32, burst: u32, total: u32) -> Admission {
        Admission::new(ConnectionLimits {
            per_address,
            rate_per_sec,
            burst,
            total,
        })
    }

    #[test]
    fn an_address_holds_at_most_its_limit_and_gets_a_place_back_on_drop() {
        let admission = limits(2, 0, 0, 0);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        let first = admission.admit(a, now).unwrap();
        let _second = admission.admit(a, now).unwrap();
        assert_eq!(
            admission.admit(a, now).unwrap_err(),
            Refusal::PerAddress { limit: 2 }
        );
        // Another address is counted on its own.
        let _other = admission.admit(ip("192.0.2.2"), now).unwrap();
        assert_eq!(admission.open_from(a), 2);
        drop(first);
        assert_eq!(admission.open_from(a), 1);
        admission.admit(a, now).unwrap();
    }

    #[test]
    fn the_total_is_a_server_wide_cap() {
        let admission = limits(0, 0, 0, 2);
        let now = Instant::now();
        let one = admission.admit(ip("192.0.2.1"), now).unwrap();
        let _two = admission.admit(ip("198.51.100.1"), now).unwrap();
        let refused = admission.admit(ip("203.0.113.1"), now).unwrap_err();
        assert_eq!(refused, Refusal::Total { limit: 2 });
        assert!(matches!(
            refused.stream_error(),
            StreamError::ResourceConstraint(text) if text.contains("limit of 2 connections")
        ));
        drop(one);
        assert_eq!(admission.open(), 1);
        admission.admit(ip("203.0.113.1"), now).unwrap();
    }

    #[test]
    fn a_burst_then_the_rate() {
        let admission = limits(0, 10, 3, 0);
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for _ in 0..3 {
            admission.admit(a, t0).unwrap();
        }
        let refused = admission.admit(a, t0).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Rate {
                per_sec: 10,
                burst: 3
            }
        );
        assert!(refused.is_rate());
        assert!(matches!(
            refused.stream_error(),
            StreamError::PolicyViolation(_)
        ));
        // One token comes back every 100 ms, not sooner.
        assert!(admission.admit(a, t0 + 99 * MS).is_err());
        admission.admit(a, t0 + 100 * MS).unwrap();
        assert!(admission.admit(a, t0 + 100 * MS).is_err());
        // Idle long enough, the whole burst is back, and no more than it.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            admission.admit(a, later).unwrap();
        }
        assert!(admission.admit(a, later).is_err());
        // Others are not slowed down by it.
        admission.admit(ip("192.0.2.2"), later).unwrap();
    }

    #[test]
    fn a_refused_attempt_takes_no_token_and_a_capped_one_does() {
        let admission = limits(1, 1, 2, 0);
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        let held = admission.admit(a, t0).unwrap();
        // Refused by the cap, but it was an attempt: the burst is spent.
        assert!(matches!(
            admission.admit(a, t0),
            Err(Refusal::PerAddress { .. })
        ));
        assert!(admission.admit(a, t0).unwrap_err().is_rate());
        // Rate refusals do not push the refill further away.
        for _ in 0..5 {
            assert!(admission.admit(a, t0 + 500 * MS).unwrap_err().is_rate());
        }
        drop(held);
        admission.admit(a, t0 + 1000 * MS).unwrap();
    }

    #[test]
    fn ipv6_is_counted_by_its_64_and_mapped_ipv4_as_ipv4() {
        let admission = limits(1, 0, 0, 0);
        let now = Instant::now();
        let _held = admission.admit(ip("2001:db8:1:2::1"), now).unwrap();
        assert!(admission.admit(ip("2001:db8:1:2:ffff::9"), now).is_err());
        admission.admit(ip("2001:db8:1:3::1"), now).unwrap();
        let _v4 = admission.admit(ip("192.0.2.7"), now).unwrap();
        assert!(admission.admit(ip("::ffff:192.0.2.7"), now).is_err());
        assert_eq!(
            AddressKey::of(ip("2001:db8:1:2:3:4:5:6")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let admission = Admission::new(ConnectionLimits::UNLIMITED);
        let now = Instant::now();
        let held: Vec<_> = (0..1000)
            .map(|_| admission.admit(ip("192.0.2.1"), now).unwrap())
            .collect();
        assert_eq!(admission.open(), 1000);
        drop(held);
        assert_eq!(admission.open(), 0);
    }

    #[test]
    fn rate_entries_of_quiet_addresses_are_swept() {
        let admission = limits(0, 10, 1, 0);
        let t0 = Instant::now();
        for i in 0..SWEEP_MIN as u32 - 1 {
            let address = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            admission.admit(address.into(), t0).unwrap();
        }
        // A second later every bucket is full again; the insert that reaches the
        // sweep size drops them.
        let later = t0 + Duration::from_secs(1);
        admission.admit(ip("192.0.2.1"), later).unwrap();
        assert!(admission.lock().full_at.len() <= 2);
    }
}
