//! Prometheus metrics (`prometheus-client`, OpenMetrics text): token decisions by outcome and
//! reason, the token endpoint's latency, throttled requests, admin writes and failed admin
//! authentications, the store's contents, and the process (from `/proc/self`).
//!
//! Hot path: every label set of the token path is created once, here, and kept as a handle
//! (a counter is an `Arc`'d atomic), so a decision costs one atomic add and one histogram
//! observation, with no label lookup, hashing or allocation.
//!
//! The store's contents (tokens per registry, refresh tokens, tokens expiring within 7 days)
//! are not read on a scrape: [`Metrics::set_store_stats`] is fed by a background pass every
//! [`STATS_INTERVAL`] (`server`), and a scrape serves the last values. A store of a million
//! tokens is then read once a minute whatever the scrape rate.
//!
//! Dependency direction: `service::metrics -> {service::auth, service::audit, store}`; `http`
//! serves [`Metrics::encode`] and `server` runs the background pass.
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::service::audit::{AdminAction, AdminAuthFailure, AdminOutcome};
use crate::service::auth::Denial;

/// How often the store's contents are counted for the metrics.
pub const STATS_INTERVAL: Duration = Duration::from_secs(60);

/// "Expiring soon": within this of now.
pub const EXPIRING_WITHIN_DAYS: i64 = 7;

/// Upper bounds of the token endpoint's latency buckets, in seconds: a decision takes
/// ~100 µs on a quiet machine (one store read, one hash, one signature), a login that stores
/// a refresh token waits for an fsync (milliseconds).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Every [`Denial`], in the order of [`denial_index`].
const DENIALS: [Denial; 8] = [
    Denial::UnknownName,
    Denial::WrongSecret,
    Denial::Disabled,
    Denial::Expired,
    Denial::DeadRefresh,
    Denial::ForeignRefresh,
    Denial::GoneDuringLogin,
    Denial::AddressNotAllowed,
];

fn denial_index(d: Denial) -> usize {
    match d {
        Denial::UnknownName => 0,
        Denial::WrongSecret => 1,
        Denial::Disabled => 2,
        Denial::Expired => 3,
        Denial::DeadRefresh => 4,
        Denial::ForeignRefresh => 5,
        Denial::GoneDuringLogin => 6,
        Denial::AddressNotAllowed => 7,
    }
}

/// The `reason` label of a denial: the log's reason in snake case.
pub fn denial_label(d: Denial) -> &'static str {
    match d {
        Denial::UnknownName => "unknown_name",
        Denial::WrongSecret => "wrong_secret",
        Denial::Disabled => "token_disabled",
        Denial::Expired => "token_expired",
        Denial::DeadRefresh => "refresh_revoked_or_unknown",
        Denial::ForeignRefresh => "refresh_for_another_service",
        Denial::GoneDuringLogin => "gone_during_login",
        Denial::AddressNotAllowed => "address_not_allowed",
    }
}

/// The outcome of one token request, for [`Metrics::decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Something granted, or nothing asked for (a login).
    Issued,
    /// Authenticated; none of what was asked for is covered by the token's scopes.
    NothingGranted,
    Denied(Denial),
    /// 400: the `service` names no registry.
    UnknownService,
    /// Anonymous (no credentials): something granted from the public repositories, or
    /// nothing asked for.
    Anonymous,
    /// Anonymous: none of what was asked for is public.
    AnonymousNothingGranted,
    /// Anonymous, refused: over `[limits] anonymous_per_minute` (429).
    AnonymousLimited,
    /// No credentials, and the registry has no public repositories (401).
    NoCredentials,
    /// 500.
    Error,
}

/// What the background pass counted in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// (registry id, tokens stored), for every configured registry.
    pub tokens: Vec<(String, u64)>,
    /// (registry id, tokens that expire within 7 days and have not expired yet).
    pub expiring: Vec<(String, u64)>,
    /// Refresh tokens stored, all registries.
    pub refresh_tokens: u64,
}

/// Every metric of the server, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    issued: Counter,
    nothing_granted: Counter,
    unknown_service: Counter,
    errors: Counter,
    anonymous: Counter,
    anonymous_nothing_granted: Counter,
    anonymous_limited: Counter,
    no_credentials: Counter,
    denied: [Counter; 8],
    latency: Histogram,
    throttled: Family<Labels, Counter>,
    admin: Vec<Counter>,
    admin_auth: [Counter; 2],
    tokens: Family<Labels, Gauge>,
    expiring: Family<Labels, Gauge>,
    refresh_tokens: Gauge<i64, AtomicI64>,
    stats_age: Gauge<f64, AtomicU64>,
    certificates: Family<Labels, Gauge>,
    active_certificate: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, with the process collector.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let decisions = Family::<Labels, Counter>::default();
        registry.register(
            "regauth_token_decisions",
            "Token requests by outcome (issued, nothing_granted, anonymous, anonymous_nothing_granted, anonymous_throttled, denied, unknown_service, error) and, for denials, reason",
            decisions.clone(),
        );
        let decision = |outcome: &str, reason: &str| {
            decisions
                .get_or_create(&labels(&[("outcome", outcome), ("reason", reason)]))
                .clone()
        };
        let issued = decision("issued", "");
        let nothing_granted = decision("nothing_granted", "");
        let unknown_service = decision("unknown_service", "");
        let errors = decision("error", "");
        let anonymous = decision("anonymous", "");
        let anonymous_nothing_granted = decision("anonymous_nothing_granted", "");
        let anonymous_limited = decision("anonymous_throttled", "");
        let no_credentials = decision("denied", "no_credentials");
        let denied = DENIALS.map(|d| decision("denied", denial_label(d)));

        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "regauth_token_request_duration_seconds",
            "Time to answer a token request (GET or POST /auth), from the parsed request to the reply",
            latency.clone(),
        );

        let throttled = Family::<Labels, Counter>::default();
        registry.register(
            "regauth_throttled_requests",
            "Requests refused with 429 by the throttle, by endpoint",
            throttled.clone(),
        );

        let admin_family = Family::<Labels, Counter>::default();
        registry.register(
            "regauth_admin_actions",
            "Admin API writes by action and outcome (each is one audit log line)",
            admin_family.clone(),
        );
        let mut admin = Vec::with_capacity(AdminAction::ALL.len() * AdminOutcome::ALL.len());
        for a in AdminAction::ALL {
            for o in AdminOutcome::ALL {
                let outcome = o.as_str().replace(' ', "_");
                admin.push(
                    admin_family
                        .get_or_create(&labels(&[("action", a.as_str()), ("outcome", &outcome)]))
                        .clone(),
                );
            }
        }
        let auth_family = Family::<Labels, Counter>::default();
        registry.register(
            "regauth_admin_auth_failures",
            "Admin API requests refused for a missing or wrong admin token",
            auth_family.clone(),
        );
        let admin_auth = ["missing", "wrong"]
            .map(|r| auth_family.get_or_create(&labels(&[("reason", r)])).clone());

        let tokens = Family::<Labels, Gauge>::default();
        registry.register(
            "regauth_tokens",
            "Tokens stored, by registry (counted every minute)",
            tokens.clone(),
        );
        let expiring = Family::<Labels, Gauge>::default();
        registry.register(
            "regauth_tokens_expiring_soon",
            "Tokens that expire within 7 days and have not expired yet, by registry (counted every minute)",
            expiring.clone(),
        );
        let refresh_tokens = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "regauth_refresh_tokens",
            "Refresh tokens stored (counted every minute)",
            refresh_tokens.clone(),
        );
        let stats_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "regauth_store_stats_timestamp_seconds",
            "When the store's contents were last counted (Unix time; 0 before the first count)",
            stats_age.clone(),
        );
        let certificates = Family::<Labels, Gauge>::default();
        registry.register(
            "regauth_signing_certificate_not_after_seconds",
            "Not-after (Unix time) of every published signing key's certificate, by key id and state (next, active, retiring)",
            certificates.clone(),
        );
        let active_certificate = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "regauth_signing_certificate_active_not_after_seconds",
            "Not-after (Unix time) of the active signing key's certificate; registries refuse its tokens after it",
            active_certificate.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Metrics {
            registry,
            issued,
            nothing_granted,
            unknown_service,
            errors,
            anonymous,
            anonymous_nothing_granted,
            anonymous_limited,
            no_credentials,
            denied,
            latency,
            throttled,
            admin,
            admin_auth,
            tokens,
            expiring,
            refresh_tokens,
            stats_age,
            certificates,
            active_certificate,
        }
    }

    /// Serves the not-after of every published signing certificate: (key id, state,
    /// not-after Unix seconds). Keys not listed (retired) disappear from the series.
    pub fn set_signing_certificates(&self, keys: &[(String, String, i64)]) {
        self.certificates.clear();
        for (id, state, not_after) in keys {
            self.certificates
                .get_or_create(&labels(&[("key", id), ("state", state)]))
                .set(*not_after);
            if state == "active" {
                self.active_certificate.set(*not_after);
            }
        }
    }

    /// Counts one token request.
    pub fn decision(&self, d: Decision) {
        let counter = match d {
            Decision::Issued => &self.issued,
            Decision::NothingGranted => &self.nothing_granted,
            Decision::Denied(denial) => &self.denied[denial_index(denial)],
            Decision::UnknownService => &self.unknown_service,
            Decision::Error => &self.errors,
            Decision::Anonymous => &self.anonymous,
            Decision::AnonymousNothingGranted => &self.anonymous_nothing_granted,
            Decision::AnonymousLimited => &self.anonymous_limited,
            Decision::NoCredentials => &self.no_credentials,
        };
        counter.inc();
    }

    /// Records how long one token request took.
    pub fn token_latency(&self, took: Duration) {
        self.latency.observe(took.as_secs_f64());
    }

    /// The counter of requests to `endpoint` refused by the throttle: fetch it once (at
    /// start-up) and increment the handle.
    pub fn throttled(&self, endpoint: &'static str) -> Counter {
        self.throttled
            .get_or_create(&labels(&[("endpoint", endpoint)]))
            .clone()
    }

    /// Counts one admin write.
    pub fn admin_action(&self, action: AdminAction, outcome: AdminOutcome) {
        let a = AdminAction::ALL.iter().position(|x| *x == action);
        let o = AdminOutcome::ALL.iter().position(|x| *x == outcome);
        if let (Some(a), Some(o)) = (a, o) {
            if let Some(c) = self.admin.get(a * AdminOutcome::ALL.len() + o) {
                c.inc();
            }
        }
    }

    /// Counts one refused admin request.
    pub fn admin_auth_failed(&self, why: AdminAuthFailure) {
        let i = match why {
            AdminAuthFailure::Missing => 0,
            AdminAuthFailure::Wrong => 1,
        };
        self.admin_auth[i].inc();
    }

    /// Serves `stats` (counted at `at`, Unix seconds) until the next count.
    pub fn set_store_stats(&self, stats: &StoreStats, at: f64) {
        for (registry, n) in &stats.tokens {
            self.tokens
                .get_or_create(&labels(&[("registry", registry)]))
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        for (registry, n) in &stats.expiring {
            self.expiring
                .get_or_create(&labels(&[("registry", registry)]))
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.refresh_tokens
            .set(i64::try_from(stats.refresh_tokens).unwrap_or(i64::MAX));
        self.stats_age.set(at);
    }

    /// Every metric as OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The usual `process_*` metrics, read from `/proc/self` at each scrape (a few small reads).
#[derive(Debug)]
struct ProcessCollector;

/// What `/proc/self` says about the process; `None` where it could not be read.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads the current process.
    pub fn read() -> ProcessStats {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let mut p = stat
            .as_deref()
            .map(|s| {
                parse_stat(
                    s,
                    rustix::param::clock_ticks_per_second(),
                    rustix::param::page_size() as u64,
                    btime,
                )
            })
            .unwrap_or_default();
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        p.max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        p
    }
}

/// Parses `/proc/self/stat` (proc(5)): fields after the `(comm)`, which may hold spaces.
fn parse_stat(stat: &str, ticks: u64, page: u64, btime: Option<u64>) -> ProcessStats {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return ProcessStats::default();
    };
    // rest[0] is field 3 (state).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = ticks.max(1) as f64;
    ProcessStats {
        cpu_seconds: field(14)
            .zip(field(15))
            .map(|(u, s)| (u + s) as f64 / ticks),
        start_time_seconds: field(22)
            .zip(btime)
            .map(|(start, boot)| boot as f64 + start as f64 / ticks),
        virtual_bytes: field(23),
        resident_bytes: field(24).map(|pages| pages * page),
        threads: field(20),
        open_fds: None,
        max_fds: None,
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = ProcessStats::read();
        if let Some(v) = p.cpu_seconds {
            let m = ConstCounter::new(v);
            let e = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                m.metric_type(),
            )?;
            m.encode(e)?;
        }
        let gauges: [(&str, &str, Option<f64>); 6] = [
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                p.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                p.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                p.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                p.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Limit of open file descriptors (soft)",
                p.max_fds.map(|v| v as f64),
            ),
            (
                "process_threads",
                "Threads of the process",
                p.threads.map(|v| v as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let m = ConstGauge::new(v);
                let e = encoder.encode_descriptor(name, help, None, m.metric_type())?;
                m.encode(e)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_read_past_a_command_with_spaces() {
        // proc(5): pid (comm) state ppid ... utime(14) stime(15) ... num_threads(20)
        // itrealvalue(21) starttime(22) vsize(23) rss(24) ...
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[0] = "S".into();
        fields[14 - 3] = "250".into(); // utime
        fields[15 - 3] = "50".into(); // stime
        fields[20 - 3] = "7".into(); // threads
        fields[22 - 3] = "1000".into(); // starttime, ticks after boot
        fields[23 - 3] = "123456789".into(); // vsize
        fields[24 - 3] = "100".into(); // rss pages
        let stat = format!("4242 (regauth (a) b) {}\n", fields.join(" "));
        let p = parse_stat(&stat, 100, 4096, Some(1_700_000_000));
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.threads, Some(7));
        assert_eq!(p.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(p.virtual_bytes, Some(123_456_789));
        assert_eq!(p.resident_bytes, Some(409_600));
        assert_eq!(
            parse_stat("garbage", 100, 4096, None),
            ProcessStats::default()
        );
    }

    #[test]
    fn this_process_is_readable() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.unwrap() > 0);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.max_fds.unwrap() >= p.open_fds.unwrap());
        assert!(p.threads.unwrap() >= 1);
        assert!(p.start_time_seconds.unwrap() > 1_500_000_000.0);
    }
}
