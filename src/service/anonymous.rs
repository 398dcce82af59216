//! Anonymous token requests (public repositories): their own rate limit per client address
//! (`[limits] anonymous_per_minute`), separate from the throttle of failed authentication,
//! and the rationing of their log lines.
//!
//! An anonymous request is no failure and costs no store read, so it is not counted by the
//! throttle; but it does cost a signature, so one address may not ask without bound. The
//! counters are a map bounded at [`MAX_ADDRESSES`]: when it is full of live windows, the
//! addresses beyond it share one window of [`OVERFLOW_FACTOR`] times the limit, so a spray of
//! addresses cannot grow memory nor get more than that many tokens a minute between them.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::throttle::{client_key, DenialLog};

/// The window the limit counts in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses counted one by one.
pub const MAX_ADDRESSES: usize = 16_384;
/// The addresses beyond [`MAX_ADDRESSES`] share one window of this many times the limit.
pub const OVERFLOW_FACTOR: u32 = 16;

/// One address's requests in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    /// Counts one request at `now` against `limit`: `Err` is the time until the window ends.
    fn take(&mut self, now: Instant, limit: u32) -> Result<(), Duration> {
        if now.duration_since(self.start) >= WINDOW {
            *self = Window {
                start: now,
                count: 0,
            };
        }
        if self.count >= limit {
            return Err(WINDOW.saturating_sub(now.duration_since(self.start)));
        }
        self.count += 1;
        Ok(())
    }
}

#[derive(Debug)]
struct Windows {
    by_addr: HashMap<IpAddr, Window>,
    overflow: Window,
    /// When ended windows were last swept out of a full map: at most once per
    /// [`SWEEP_INTERVAL`], so that a spray of new addresses cannot make every request walk
    /// the whole map.
    last_sweep: Instant,
}

/// Least time between two sweeps of a full map.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The anonymous rate limit and log ration, shared by every request.
pub struct AnonymousLimiter {
    per_minute: u32,
    windows: Mutex<Windows>,
    log: DenialLog,
}

/// An anonymous request over the limit: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        let r = self.retry_after;
        (r.as_secs() + u64::from(r.subsec_nanos() > 0)).max(1)
    }
}

impl AnonymousLimiter {
    /// `per_minute` requests per address (0: no limit); log lines rationed as denials are
    /// (`lines` per address and `interval`, the rest summed up).
    pub fn new(per_minute: u32, lines: u32, interval: Duration) -> Arc<AnonymousLimiter> {
        Arc::new(AnonymousLimiter {
            per_minute,
            windows: Mutex::new(Windows {
                by_addr: HashMap::new(),
                overflow: Window {
                    start: Instant::now(),
                    count: 0,
                },
                last_sweep: Instant::now(),
            }),
            log: DenialLog::new(lines, interval),
        })
    }

    /// Counts one anonymous request from `addr` (IPv6 by its /64, as the throttle counts).
    /// Without an address (in-process callers) nothing is limited.
    pub fn check(&self, addr: Option<IpAddr>) -> Result<(), Limited> {
        self.check_at(addr, Instant::now())
    }

    fn check_at(&self, addr: Option<IpAddr>, now: Instant) -> Result<(), Limited> {
        let (Some(addr), limit) = (addr, self.per_minute) else {
            return Ok(());
        };
        if limit == 0 {
            return Ok(());
        }
        let key = client_key(addr);
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !w.by_addr.contains_key(&key)
            && w.by_addr.len() >= MAX_ADDRESSES
            && now.duration_since(w.last_sweep) >= SWEEP_INTERVAL
        {
            // Forget the windows that ended before counting anyone as overflow.
            w.last_sweep = now;
            w.by_addr
                .retain(|_, win| now.duration_since(win.start) < WINDOW);
        }
        let result = if w.by_addr.len() < MAX_ADDRESSES || w.by_addr.contains_key(&key) {
            w.by_addr
                .entry(key)
                .or_insert(Window {
                    start: now,
                    count: 0,
                })
                .take(now, limit)
        } else {
            w.overflow.take(now, limit.saturating_mul(OVERFLOW_FACTOR))
        };
        result.map_err(|retry_after| Limited { retry_after })
    }

    /// Whether an anonymous request from `addr` is logged on its own line (otherwise it is
    /// counted for the summary, [`AnonymousLimiter::summarise`]).
    pub fn admit_log(&self, addr: Option<IpAddr>) -> bool {
        self.log.admit(addr)
    }

    /// Ends the log interval: one line per address with anonymous requests not logged.
    pub fn summarise(&self) {
        self.log.summarise_as("anonymous token requests");
    }

    /// Addresses counted one by one now.
    pub fn addresses(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_addr
            .len()
    }
}

/// Runs [`AnonymousLimiter::summarise`] once per log interval, forever.
pub async fn run_summariser(limiter: Arc<AnonymousLimiter>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        limiter.summarise();
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn v4(a: u8, b: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, a, b)))
    }

    #[test]
    fn limits_each_address_per_window() {
        let l = AnonymousLimiter::new(3, 10, WINDOW);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check_at(v4(0, 1), t0), Ok(()));
        }
        let refused = l
            .check_at(v4(0, 1), t0 + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(refused.retry_after_seconds(), 40);
        // Another address is not affected; the window's end lifts the limit.
        assert_eq!(l.check_at(v4(0, 2), t0), Ok(()));
        assert_eq!(l.check_at(v4(0, 1), t0 + WINDOW), Ok(()));
        // No address (in-process) and a zero limit are never limited.
        assert!((0..10).all(|_| l.check_at(None, t0).is_ok()));
        let off = AnonymousLimiter::new(0, 10, WINDOW);
        assert!((0..10).all(|_| off.check_at(v4(0, 1), t0).is_ok()));
    }

    #[test]
    fn the_map_is_bounded_and_overflow_shares_one_window() {
        let l = AnonymousLimiter::new(1, 10, WINDOW);
        let t0 = Instant::now();
        let addr = |i: usize| Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i as u32)));
        for i in 0..MAX_ADDRESSES {
            assert_eq!(l.check_at(addr(i), t0), Ok(()));
        }
        assert_eq!(l.addresses(), MAX_ADDRESSES);
        // New addresses share one window of OVERFLOW_FACTOR requests.
        let extra = (0..100)
            .filter(|i| l.check_at(addr(MAX_ADDRESSES + i), t0).is_ok())
            .count();
        assert_eq!(extra, OVERFLOW_FACTOR as usize);
        assert_eq!(l.addresses(), MAX_ADDRESSES);
        // Once the old windows end, they are forgotten and new addresses counted alone.
        assert_eq!(l.check_at(addr(MAX_ADDRESSES + 200), t0 + WINDOW), Ok(()));
        assert_eq!(l.addresses(), 1);
        // A counted address stays limited while the map is full.
        assert!(l.check_at(addr(0), t0 + WINDOW).is_ok());
        assert!(l.check_at(addr(0), t0 + WINDOW).is_err());
    }
}
