//! Throttling of failed authentication: the token endpoint (password and refresh grants) and
//! the admin API's bearer token. Policy only: it knows addresses, token names and time, not
//! HTTP; `http` turns a [`Refused`] into `429` with `Retry-After`.
//!
//! The rules (docs/security.md, "Guessing"):
//! - failures are counted per client address (IPv6 by its /64, which one host usually owns
//!   whole) in a fixed window; at `auth_failures` (`admin_failures` for the admin API) the
//!   address is refused for `lockout` on that endpoint;
//! - failures are also counted per token name across addresses. At `name_failures` the name is
//!   under attack for `lockout`: an address that has itself failed for that name in the window
//!   is refused for it, and nobody else is. A stranger can therefore never lock a token's real
//!   users out, and parallel logins that do not fail are never refused;
//! - a success forgives the failures of that name from that address (the owner's typos), in
//!   the address's and the name's counts. Failures against other names stay;
//! - every counter lives in one bounded [`quick_cache`] map: an address spray evicts the least
//!   used counters instead of growing memory.
//!
//! Cost for a client that has not failed: one lookup (of its address) per request, nothing on
//! success. Denial log lines are rationed per address and interval ([`DenialLog`]).
//!
//! Dependency direction: `service::throttle -> config`; used by `service::auth` and `http`.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use tracing::warn;

use crate::config::LimitsConfig;

/// Which authentication a failure belongs to; each has its own address counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The token endpoint (`/auth`).
    Auth,
    /// The admin API's bearer token.
    Admin,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Auth => "auth",
            Endpoint::Admin => "admin",
        }
    }
}

/// A refusal: how long until the client may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
    /// Whether the name (not only the address) is what is locked.
    pub by_name: bool,
}

impl Refused {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        let s = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        s.max(1)
    }
}

/// The key an address is counted under: IPv4 as is (also when IPv4-mapped), IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !0xffff_ffff_ffff_ffff_u128).into()),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(Endpoint, IpAddr),
    Name(String),
    NameAddr(String, IpAddr),
}

/// Failures in the current window, and the lockout they caused.
#[derive(Debug)]
struct Counter {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Counter {
    fn new(now: Instant) -> Counter {
        Counter {
            window_start: now,
            failures: 0,
            locked_until: None,
        }
    }

    /// Time left of the lockout, if locked at `now`.
    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Failures within the window at `now`.
    fn current(&self, now: Instant, window: Duration) -> u32 {
        if now.duration_since(self.window_start) < window {
            self.failures
        } else {
            0
        }
    }

    /// Counts one failure; at `limit` (0: never) the counter locks for `lockout`.
    fn fail(&mut self, now: Instant, window: Duration, limit: u32, lockout: Duration) {
        if self.locked(now).is_some() {
            return;
        }
        if self.locked_until.is_some() || now.duration_since(self.window_start) >= window {
            *self = Counter::new(now);
        }
        self.failures = self.failures.saturating_add(1);
        if limit > 0 && self.failures >= limit {
            self.locked_until = Some(now + lockout);
        }
    }

    fn forgive(&mut self, n: u32) {
        self.failures = self.failures.saturating_sub(n);
    }
}

type Entry = Arc<Mutex<Counter>>;

fn lock(e: &Entry) -> MutexGuard<'_, Counter> {
    // A panic while holding it leaves numbers: still consistent.
    e.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What [`Throttle::check`] found, handed back to [`Throttle::failed`] or
/// [`Throttle::succeeded`] so that the outcome costs no second lookup.
pub struct Ticket {
    endpoint: Endpoint,
    addr: Option<IpAddr>,
    /// The address's counter, when it has one (it has failed recently).
    entry: Option<Entry>,
}

/// The throttle: counters, the policy's numbers, and how many requests it refused.
pub struct Throttle {
    counters: Cache<Key, Entry>,
    auth_failures: u32,
    name_failures: u32,
    admin_failures: u32,
    window: Duration,
    lockout: Duration,
    refused_auth: AtomicU64,
    refused_admin: AtomicU64,
    log: DenialLog,
}

impl Throttle {
    pub fn new(limits: &LimitsConfig) -> Throttle {
        Throttle {
            counters: Cache::new(limits.throttle_entries),
            auth_failures: limits.auth_failures,
            name_failures: limits.name_failures,
            admin_failures: limits.admin_failures,
            window: Duration::from_secs(limits.failure_window_seconds),
            lockout: Duration::from_secs(limits.lockout_seconds),
            refused_auth: AtomicU64::new(0),
            refused_admin: AtomicU64::new(0),
            log: DenialLog::new(
                limits.denial_log_lines,
                Duration::from_secs(limits.denial_log_interval_seconds),
            ),
        }
    }

    fn limit(&self, endpoint: Endpoint) -> u32 {
        match endpoint {
            Endpoint::Auth => self.auth_failures,
            Endpoint::Admin => self.admin_failures,
        }
    }

    /// Whether `addr` may try to authenticate (as `name`, when a name is presented) now. A
    /// client without recent failures costs one map lookup.
    pub fn check(
        &self,
        endpoint: Endpoint,
        addr: Option<IpAddr>,
        name: Option<&str>,
    ) -> Result<Ticket, Refused> {
        let key = addr.map(client_key);
        let entry = key.and_then(|k| self.counters.get(&Key::Addr(endpoint, k)));
        let ticket = Ticket {
            endpoint,
            addr: key,
            entry,
        };
        let (Some(entry), Some(k)) = (&ticket.entry, key) else {
            return Ok(ticket);
        };
        let now = Instant::now();
        if let Some(left) = lock(entry).locked(now) {
            return Err(self.refuse(endpoint, left, false));
        }
        if let (Endpoint::Auth, Some(name)) = (endpoint, name) {
            if let Some(left) = self.name_refusal(name, k, now) {
                return Err(self.refuse(endpoint, left, true));
            }
        }
        Ok(ticket)
    }

    /// When `name` is under attack and `addr` failed for it in the window: the time until
    /// either ends.
    fn name_refusal(&self, name: &str, addr: IpAddr, now: Instant) -> Option<Duration> {
        let name_entry = self.counters.get(&Key::Name(name.to_string()))?;
        let name_left = lock(&name_entry).locked(now)?;
        let pair = self.counters.get(&Key::NameAddr(name.to_string(), addr))?;
        let pair = lock(&pair);
        if pair.current(now, self.window) == 0 {
            return None;
        }
        let pair_left = (pair.window_start + self.window).saturating_duration_since(now);
        Some(name_left.min(pair_left))
    }

    fn refuse(&self, endpoint: Endpoint, retry_after: Duration, by_name: bool) -> Refused {
        match endpoint {
            Endpoint::Auth => &self.refused_auth,
            Endpoint::Admin => &self.refused_admin,
        }
        .fetch_add(1, Ordering::Relaxed);
        Refused {
            retry_after,
            by_name,
        }
    }

    fn counter(&self, key: Key, now: Instant) -> Entry {
        self.counters
            .get_or_insert_with(&key, || {
                Ok::<_, std::convert::Infallible>(Arc::new(Mutex::new(Counter::new(now))))
            })
            .unwrap_or_else(|never| match never {})
    }

    /// Counts a failed authentication (as `name`, when one was presented).
    pub fn failed(&self, ticket: Ticket, name: Option<&str>) {
        let Some(addr) = ticket.addr else { return };
        let now = Instant::now();
        let limit = self.limit(ticket.endpoint);
        let entry = match ticket.entry {
            Some(e) => e,
            None => self.counter(Key::Addr(ticket.endpoint, addr), now),
        };
        lock(&entry).fail(now, self.window, limit, self.lockout);
        if let (Endpoint::Auth, Some(name)) = (ticket.endpoint, name) {
            let pair = self.counter(Key::NameAddr(name.to_string(), addr), now);
            lock(&pair).fail(now, self.window, 0, self.lockout);
            let named = self.counter(Key::Name(name.to_string()), now);
            lock(&named).fail(now, self.window, self.name_failures, self.lockout);
        }
    }

    /// A successful authentication as `name`: forgives that name's failures from this address.
    /// Nothing to do (no lookup) for an address without recent failures.
    pub fn succeeded(&self, ticket: Ticket, name: &str) {
        let (Some(entry), Some(addr)) = (ticket.entry, ticket.addr) else {
            return;
        };
        let now = Instant::now();
        let Some((_, pair)) = self.counters.remove(&Key::NameAddr(name.to_string(), addr)) else {
            return;
        };
        let n = lock(&pair).current(now, self.window);
        lock(&entry).forgive(n);
        if let Some(named) = self.counters.get(&Key::Name(name.to_string())) {
            lock(&named).forgive(n);
        }
    }

    /// Requests refused so far on `endpoint` (for metrics).
    pub fn refused(&self, endpoint: Endpoint) -> u64 {
        match endpoint {
            Endpoint::Auth => &self.refused_auth,
            Endpoint::Admin => &self.refused_admin,
        }
        .load(Ordering::Relaxed)
    }

    /// Counters held now (at most about `throttle_entries`).
    pub fn entries(&self) -> usize {
        self.counters.len()
    }

    /// The ration of denial log lines.
    pub fn log(&self) -> &DenialLog {
        &self.log
    }
}

/// Addresses whose suppressed denials are summed up one by one; more share one line.
pub const SUMMARY_ADDRESSES: usize = 256;

/// Rations denial log lines: the first `lines` denials (401 or 429) per address and interval
/// are logged one by one, the rest only counted; [`DenialLog::summarise`], run once per
/// interval, logs one line per address with the count and starts a new interval. At most
/// [`SUMMARY_ADDRESSES`] addresses are tracked per interval; denials from more addresses are
/// summed up together, and not logged one by one. A flood therefore writes at most
/// `(lines + 1) * SUMMARY_ADDRESSES + 1` lines per interval.
pub struct DenialLog {
    lines: u32,
    interval: Duration,
    window: Mutex<LogWindow>,
}

#[derive(Default)]
struct LogWindow {
    /// address -> (logged, suppressed)
    by_addr: HashMap<IpAddr, (u32, u64)>,
    /// Denials from addresses beyond the tracked ones, and how many such addresses were seen.
    others: u64,
}

/// One interval's suppressed denials, for the summary lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Addresses with suppressed denials, and how many each.
    pub by_addr: Vec<(IpAddr, u64)>,
    /// Suppressed denials from addresses beyond [`SUMMARY_ADDRESSES`].
    pub others: u64,
}

impl DenialLog {
    pub fn new(lines: u32, interval: Duration) -> DenialLog {
        DenialLog {
            lines,
            interval,
            window: Mutex::new(LogWindow::default()),
        }
    }

    /// The summary interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether a denial from `addr` is logged on its own line (otherwise it is counted for
    /// the summary).
    pub fn admit(&self, addr: Option<IpAddr>) -> bool {
        let addr = match addr {
            Some(a) => client_key(a),
            // Without an address (in-process callers) nothing is rationed.
            None => return true,
        };
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let tracked = w.by_addr.len();
        match w.by_addr.get_mut(&addr) {
            Some((logged, suppressed)) => {
                if *logged < self.lines {
                    *logged += 1;
                    true
                } else {
                    *suppressed += 1;
                    false
                }
            }
            None if tracked < SUMMARY_ADDRESSES => {
                let logged = u32::from(self.lines > 0);
                w.by_addr.insert(addr, (logged, u64::from(logged == 0)));
                logged == 1
            }
            None => {
                w.others += 1;
                false
            }
        }
    }

    /// Ends the interval: what was suppressed in it.
    pub fn take(&self) -> Summary {
        let w = std::mem::take(&mut *self.window.lock().unwrap_or_else(PoisonError::into_inner));
        let mut by_addr: Vec<(IpAddr, u64)> = w
            .by_addr
            .into_iter()
            .filter(|(_, (_, s))| *s > 0)
            .map(|(a, (_, s))| (a, s))
            .collect();
        by_addr.sort();
        Summary {
            by_addr,
            others: w.others,
        }
    }

    /// Ends the interval and logs one line per address that had denials suppressed.
    pub fn summarise(&self) {
        self.summarise_as("denials");
    }

    /// As [`DenialLog::summarise`], calling the events `what` ("refused connections").
    pub fn summarise_as(&self, what: &str) {
        let s = self.take();
        let secs = self.interval.as_secs();
        for (addr, n) in &s.by_addr {
            warn!(client = %addr, suppressed = n, interval_seconds = secs,
                "{n} more {what} from {addr} in the last {secs} s (not logged one by one)");
        }
        if s.others > 0 {
            let n = s.others;
            warn!(
                suppressed = n,
                interval_seconds = secs,
                "{n} more {what} from other addresses in the last {secs} s (not logged one by one)"
            );
        }
    }
}

/// Runs [`DenialLog::summarise`] once per interval, forever.
pub async fn run_summariser(throttle: Arc<Throttle>) {
    let mut tick = tokio::time::interval(throttle.log().interval());
    tick.tick().await;
    loop {
        tick.tick().await;
        throttle.log().summarise();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(auth: u32, name: u32) -> LimitsConfig {
        LimitsConfig {
            auth_failures: auth,
            name_failures: name,
            admin_failures: 2,
            throttle_entries: 1000,
            ..LimitsConfig::default()
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn fail(t: &Throttle, addr: &str, name: &str) -> Result<(), Refused> {
        let ticket = t.check(Endpoint::Auth, ip(addr), Some(name))?;
        t.failed(ticket, Some(name));
        Ok(())
    }

    fn succeed(t: &Throttle, addr: &str, name: &str) -> Result<(), Refused> {
        let ticket = t.check(Endpoint::Auth, ip(addr), Some(name))?;
        t.succeeded(ticket, name);
        Ok(())
    }

    #[test]
    fn an_address_is_locked_out_at_the_limit_and_others_are_not() {
        let t = Throttle::new(&limits(3, 0));
        for _ in 0..3 {
            fail(&t, "10.0.0.1", "alice").unwrap();
        }
        let refused = t
            .check(Endpoint::Auth, ip("10.0.0.1"), Some("bob"))
            .err()
            .expect("locked out");
        assert!(!refused.by_name);
        assert!(refused.retry_after <= Duration::from_secs(900));
        assert!(refused.retry_after_seconds() > 890);
        assert!(succeed(&t, "10.0.0.2", "alice").is_ok(), "another address");
        assert!(
            t.check(Endpoint::Admin, ip("10.0.0.1"), None).is_ok(),
            "the admin API counts separately"
        );
        assert_eq!(t.refused(Endpoint::Auth), 1);
        assert_eq!(t.refused(Endpoint::Admin), 0);
    }

    #[test]
    fn a_success_forgives_that_names_failures_only() {
        let t = Throttle::new(&limits(4, 0));
        for _ in 0..3 {
            fail(&t, "10.0.0.1", "alice").unwrap();
        }
        succeed(&t, "10.0.0.1", "alice").unwrap();
        for _ in 0..3 {
            fail(&t, "10.0.0.1", "alice").unwrap();
        }
        assert!(t.check(Endpoint::Auth, ip("10.0.0.1"), None).is_ok());
        // Failures against another name are not forgiven by alice's success.
        fail(&t, "10.0.0.1", "bob").unwrap();
        succeed(&t, "10.0.0.1", "alice").unwrap_err();
    }

    #[test]
    fn a_name_under_attack_refuses_only_addresses_that_failed_for_it() {
        let t = Throttle::new(&limits(0, 5));
        // A distributed guess: five addresses, one failure each.
        for i in 1..=5 {
            fail(&t, &format!("10.0.1.{i}"), "alice").unwrap();
        }
        let r = t
            .check(Endpoint::Auth, ip("10.0.1.1"), Some("alice"))
            .err()
            .expect("a guesser is refused for the name");
        assert!(r.by_name);
        assert!(t.check(Endpoint::Auth, ip("10.0.1.1"), Some("bob")).is_ok());
        // The owner, from an address that never failed, is never refused: many times over.
        for _ in 0..100 {
            succeed(&t, "10.0.9.9", "alice").unwrap();
        }
        // A new guesser gets one try, then is refused.
        fail(&t, "10.0.2.1", "alice").unwrap();
        assert!(t
            .check(Endpoint::Auth, ip("10.0.2.1"), Some("alice"))
            .is_err());
    }

    #[test]
    fn ipv6_is_counted_by_its_64_prefix() {
        let t = Throttle::new(&limits(2, 0));
        fail(&t, "2001:db8:1:2::1", "a").unwrap();
        fail(&t, "2001:db8:1:2:ffff::9", "b").unwrap();
        assert!(t
            .check(Endpoint::Auth, ip("2001:db8:1:2::77"), None)
            .is_err());
        assert!(t.check(Endpoint::Auth, ip("2001:db8:1:3::1"), None).is_ok());
        assert_eq!(
            client_key("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn an_address_spray_does_not_grow_memory_past_the_bound() {
        let t = Throttle::new(&LimitsConfig {
            throttle_entries: 1000,
            ..LimitsConfig::default()
        });
        for i in 0..50_000u32 {
            let addr = IpAddr::V4(i.into());
            let ticket = t.check(Endpoint::Auth, Some(addr), Some("alice")).unwrap();
            t.failed(ticket, Some(&format!("name{}", i % 5000)));
        }
        assert!(t.entries() <= 1000, "{} counters kept", t.entries());
        assert!(t.entries() > 100, "{} counters kept", t.entries());
    }

    #[test]
    fn without_an_address_nothing_is_counted() {
        let t = Throttle::new(&limits(1, 1));
        for _ in 0..5 {
            let ticket = t.check(Endpoint::Auth, None, Some("alice")).unwrap();
            t.failed(ticket, Some("alice"));
        }
        assert_eq!(t.entries(), 0);
    }

    #[test]
    fn denial_lines_are_rationed_per_address_and_summed_up() {
        let log = DenialLog::new(3, Duration::from_secs(60));
        let a = ip("10.0.0.1");
        let b = ip("10.0.0.2");
        let logged = (0..100).filter(|_| log.admit(a)).count();
        assert_eq!(logged, 3);
        assert!(log.admit(b));
        let s = log.take();
        assert_eq!(s.by_addr, vec![(a.unwrap(), 97)]);
        assert_eq!(s.others, 0);
        // A new interval starts afresh.
        assert!(log.admit(a));
        // Beyond the tracked addresses, denials share one count and no line each.
        let log = DenialLog::new(1, Duration::from_secs(60));
        for i in 0..(SUMMARY_ADDRESSES as u32 + 10) {
            log.admit(Some(IpAddr::V4(i.into())));
        }
        let s = log.take();
        assert_eq!(s.others, 10);
        assert!(s.by_addr.is_empty());
    }
}
