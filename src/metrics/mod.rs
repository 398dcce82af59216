//! Prometheus metrics (`prometheus-client`, OpenMetrics text): token decisions by outcome and
//! reason, the token endpoint's latency, throttled requests, admin writes (by admin) and
//! failed admin authentications, the store's contents, the registries' events (received,
//! stored, dropped by reason), webhook deliveries by outcome and the outbox's depth, and the
//! process ([`process`], from `/proc/self`).
//!
//! The metrics observe the outcome vocabulary ([`crate::outcome`]); they know nothing of the
//! services that decide it. Each series is a typed label set (`#[derive(EncodeLabelSet)]`)
//! created by iterating the vocabulary's `ALL`, so no table here can fall out of step with
//! an enum: a variant missing from `ALL` is created on first use instead of panicking, and
//! the unit tests check that every variant of `ALL` is registered and encodes.
//!
//! Hot path: every series of the token path is created once, here, and kept as a handle (a
//! counter is an `Arc`'d atomic), so a decision costs a scan of a short array, one atomic add
//! and one histogram observation, with no lock, hashing or allocation. Those counters and the
//! latency histogram are striped per thread ([`striped`]), so no two worker threads write
//! the same cache line for them.
//!
//! The store's contents (tokens per registry, refresh tokens, tokens expiring within 7 days)
//! are not read on a scrape: [`Metrics::set_store_stats`] is fed by a background pass every
//! [`STATS_INTERVAL`] (`server`), and a scrape serves the last values. A store of a million
//! tokens is then read once a minute whatever the scrape rate.
mod process;
mod striped;

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::outcome::{
    AdminAction, AdminAuthFailure, AdminOutcome, Decision, DeliveryOutcome, Denial, EventDrop,
    GrantType,
};
pub use process::ProcessStats;
use striped::{StripedHistogram, StripedU64};

/// A counter the token path increments on every request: striped per thread ([`striped`]).
type HotCounter = Counter<u64, StripedU64>;

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

/// The `reason` label of a denial: the log's reason in snake case.
fn denial_label(d: Denial) -> &'static str {
    match d {
        Denial::UnknownName => "unknown_name",
        Denial::WrongSecret => "wrong_secret",
        Denial::Disabled => "token_disabled",
        Denial::Expired => "token_expired",
        Denial::DeadRefresh => "refresh_revoked_or_unknown",
        Denial::ForeignRefresh => "refresh_for_another_service",
        Denial::GoneDuringLogin => "gone_during_login",
        Denial::AddressNotAllowed => "address_not_allowed",
        Denial::IdTokenRefused => "id_token_refused",
        Denial::SessionEnded => "session_ended",
        Denial::NotFederated => "not_federated",
    }
}

/// The series of `regauth_token_grant_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
    outcome: &'static str,
}

/// The series of `regauth_token_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    /// The denial's reason; empty for the other outcomes.
    reason: &'static str,
}

impl From<Decision> for DecisionLabels {
    fn from(d: Decision) -> Self {
        let (outcome, reason) = match d {
            Decision::Issued => ("issued", ""),
            Decision::NothingGranted => ("nothing_granted", ""),
            Decision::UnknownService => ("unknown_service", ""),
            Decision::Error => ("error", ""),
            Decision::Anonymous => ("anonymous", ""),
            Decision::AnonymousNothingGranted => ("anonymous_nothing_granted", ""),
            Decision::AnonymousLimited => ("anonymous_throttled", ""),
            Decision::NoCredentials => ("denied", "no_credentials"),
            Decision::Denied(d) => ("denied", denial_label(d)),
            Decision::IssuerUnreachable => ("issuer_unreachable", ""),
        };
        DecisionLabels { outcome, reason }
    }
}

impl EncodeLabelValue for AdminAction {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl EncodeLabelValue for AdminOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        // The log's outcome with `_` for spaces (`not found` -> `not_found`).
        let label = match self {
            AdminOutcome::NotFound => "not_found",
            other => other.as_str(),
        };
        EncodeLabelValue::encode(&label, encoder)
    }
}

impl EncodeLabelValue for AdminAuthFailure {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let label = match self {
            AdminAuthFailure::Missing => "missing",
            AdminAuthFailure::Wrong => "wrong",
        };
        EncodeLabelValue::encode(&label, encoder)
    }
}

/// The series of `regauth_admin_actions_total`: one per admin who wrote, so its cardinality
/// is bounded by the admins (few, and named by whoever runs the server), the actions and the
/// outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminActionLabels {
    action: AdminAction,
    outcome: AdminOutcome,
    /// The admin who acted (`bootstrap` for the bootstrap admin token).
    admin: String,
}

/// The series of `regauth_admin_auth_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminAuthLabels {
    reason: AdminAuthFailure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    key: String,
    state: String,
}

/// How a fetch of an issuer's signing keys (discovery, then the JWKS) ended: the `outcome` of
/// `regauth_jwks_fetches_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum JwksFetch {
    /// Keys fetched and cached.
    Ok,
    /// No answer: connection refused, TLS failure, the 5-second timeout.
    Unreachable,
    /// An answer other than 2xx.
    HttpError,
    /// Not JSON, too large, no `jwks_uri`, or no usable key.
    InvalidDocument,
    /// The discovery document names another issuer.
    WrongIssuer,
}

impl JwksFetch {
    /// Every outcome.
    pub const ALL: [JwksFetch; 5] = [
        JwksFetch::Ok,
        JwksFetch::Unreachable,
        JwksFetch::HttpError,
        JwksFetch::InvalidDocument,
        JwksFetch::WrongIssuer,
    ];

    /// The label (and the log's outcome).
    pub fn as_str(self) -> &'static str {
        match self {
            JwksFetch::Ok => "ok",
            JwksFetch::Unreachable => "unreachable",
            JwksFetch::HttpError => "http_error",
            JwksFetch::InvalidDocument => "invalid_document",
            JwksFetch::WrongIssuer => "wrong_issuer",
        }
    }
}

impl EncodeLabelValue for JwksFetch {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The series of `regauth_jwks_fetches_total`: bounded by the configured issuers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JwksLabels {
    issuer: String,
    outcome: JwksFetch,
}

/// The series of `regauth_registry_events_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

/// The series of `regauth_webhook_deliveries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    outcome: &'static str,
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
    decisions: Family<DecisionLabels, HotCounter>,
    /// A handle on every series of [`Decision::ALL`], so the token path takes no lock.
    decision_handles: [(Decision, HotCounter); Decision::ALL.len()],
    /// Token requests by grant type and outcome (issue 18).
    grant_decisions: Family<GrantLabels, HotCounter>,
    /// A handle on each grant type's `issued` series, so the token path's common case takes
    /// no lock and hashes no labels.
    grant_issued: [(GrantType, HotCounter); GrantType::ALL.len()],
    latency: StripedHistogram<{ LATENCY_BUCKETS.len() }, { LATENCY_BUCKETS.len() + 1 }>,
    throttled: Family<EndpointLabels, Counter>,
    admin: Family<AdminActionLabels, Counter>,
    admin_auth: Family<AdminAuthLabels, Counter>,
    tokens: Family<RegistryLabels, Gauge>,
    expiring: Family<RegistryLabels, Gauge>,
    refresh_tokens: Gauge<i64, AtomicI64>,
    stats_age: Gauge<f64, AtomicU64>,
    certificates: Family<CertificateLabels, Gauge>,
    active_certificate: Gauge<i64, AtomicI64>,
    jwks_fetches: Family<JwksLabels, Counter>,
    events_received: Counter,
    events_stored: Counter,
    events_dropped: Family<DropLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    outbox_depth: Gauge<i64, AtomicI64>,
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
        let decisions = Family::<DecisionLabels, HotCounter>::default();
        registry.register(
            "regauth_token_decisions",
            "Token requests by outcome (issued, nothing_granted, anonymous, anonymous_nothing_granted, anonymous_throttled, denied, unknown_service, error) and, for denials, reason",
            decisions.clone(),
        );
        let decision_handles =
            Decision::ALL.map(|d| (d, decisions.get_or_create(&d.into()).clone()));
        let grant_decisions = Family::<GrantLabels, HotCounter>::default();
        registry.register(
            "regauth_token_grant_decisions",
            "Token requests by grant type (password, refresh, id_token, exchange, temporary) and outcome (as regauth_token_decisions)",
            grant_decisions.clone(),
        );
        for grant_type in GrantType::ALL {
            drop(grant_decisions.get_or_create(&GrantLabels {
                grant_type: grant_type.as_str(),
                outcome: "denied",
            }));
        }
        let grant_issued = GrantType::ALL.map(|grant_type| {
            let series = GrantLabels {
                grant_type: grant_type.as_str(),
                outcome: "issued",
            };
            (grant_type, grant_decisions.get_or_create(&series).clone())
        });

        let latency = StripedHistogram::new(LATENCY_BUCKETS);
        registry.register(
            "regauth_token_request_duration_seconds",
            "Time to answer a token request (GET or POST /auth), from the parsed request to the reply",
            latency.clone(),
        );

        let throttled = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "regauth_throttled_requests",
            "Requests refused with 429 by the throttle, by endpoint",
            throttled.clone(),
        );

        // One series per admin who wrote: created on the first write of each admin.
        let admin = Family::<AdminActionLabels, Counter>::default();
        registry.register(
            "regauth_admin_actions",
            "Admin API writes by action, outcome and admin (each is one audit log line)",
            admin.clone(),
        );
        let admin_auth = Family::<AdminAuthLabels, Counter>::default();
        registry.register(
            "regauth_admin_auth_failures",
            "Admin API requests refused for a missing or wrong admin token",
            admin_auth.clone(),
        );
        for reason in AdminAuthFailure::ALL {
            drop(admin_auth.get_or_create(&AdminAuthLabels { reason }));
        }

        let tokens = Family::<RegistryLabels, Gauge>::default();
        registry.register(
            "regauth_tokens",
            "Tokens stored, by registry (counted every minute)",
            tokens.clone(),
        );
        let expiring = Family::<RegistryLabels, Gauge>::default();
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
        let certificates = Family::<CertificateLabels, Gauge>::default();
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
        let jwks_fetches = Family::<JwksLabels, Counter>::default();
        registry.register(
            "regauth_jwks_fetches",
            "Fetches of OIDC issuers' signing keys (discovery and JWKS), by issuer and outcome (ok, unreachable, http_error, invalid_document, wrong_issuer)",
            jwks_fetches.clone(),
        );
        let events_received = Counter::default();
        registry.register(
            "regauth_registry_events_received",
            "Events in the registries' notification envelopes received at /events (blob events and refused envelopes included)",
            events_received.clone(),
        );
        let events_stored = Counter::default();
        registry.register(
            "regauth_registry_events_stored",
            "Registry events stored (new image events)",
            events_stored.clone(),
        );
        let events_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "regauth_registry_events_dropped",
            "Registry events received and not stored, by reason (blob, duplicate, bad_envelope, unsupported_media_type, too_large, store_failed)",
            events_dropped.clone(),
        );
        for d in EventDrop::ALL {
            drop(events_dropped.get_or_create(&DropLabels { reason: d.as_str() }));
        }
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "regauth_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, given_up)",
            deliveries.clone(),
        );
        for o in DeliveryOutcome::ALL {
            drop(deliveries.get_or_create(&DeliveryLabels {
                outcome: o.as_str(),
            }));
        }
        let outbox_depth = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "regauth_webhook_outbox_depth",
            "Webhook deliveries waiting in the outbox (pending), all replicas (counted every 15 seconds)",
            outbox_depth.clone(),
        );
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            registry,
            decisions,
            decision_handles,
            grant_decisions,
            grant_issued,
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
            jwks_fetches,
            events_received,
            events_stored,
            events_dropped,
            deliveries,
            outbox_depth,
        }
    }

    /// Creates the series of a configured issuer at 0, so a failure shows as an increase.
    pub fn jwks_issuer(&self, issuer: &str) {
        for outcome in JwksFetch::ALL {
            drop(self.jwks_fetches.get_or_create(&JwksLabels {
                issuer: issuer.to_string(),
                outcome,
            }));
        }
    }

    /// Counts one fetch of `issuer`'s keys (not on the hot path: a warm cache fetches nothing).
    pub fn jwks_fetch(&self, issuer: &str, outcome: JwksFetch) {
        self.jwks_fetches
            .get_or_create(&JwksLabels {
                issuer: issuer.to_string(),
                outcome,
            })
            .inc();
    }

    /// Counts an envelope's events: `received` in it, `stored` of them, the rest dropped
    /// for `reasons` (each with its count).
    pub fn registry_events(&self, received: u64, stored: u64, dropped: &[(EventDrop, u64)]) {
        self.events_received.inc_by(received);
        self.events_stored.inc_by(stored);
        for (reason, n) in dropped {
            if *n > 0 {
                self.events_dropped
                    .get_or_create(&DropLabels {
                        reason: reason.as_str(),
                    })
                    .inc_by(*n);
            }
        }
    }

    /// Counts one webhook delivery attempt.
    pub fn webhook_delivery(&self, outcome: DeliveryOutcome) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Serves the outbox's depth (pending deliveries).
    pub fn set_outbox_depth(&self, pending: usize) {
        self.outbox_depth
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// Serves the not-after of every published signing certificate: (key id, state,
    /// not-after Unix seconds). Keys not listed (retired) disappear from the series.
    pub fn set_signing_certificates(&self, keys: &[(String, String, i64)]) {
        self.certificates.clear();
        for (id, state, not_after) in keys {
            self.certificates
                .get_or_create(&CertificateLabels {
                    key: id.clone(),
                    state: state.clone(),
                })
                .set(*not_after);
            if state == "active" {
                self.active_certificate.set(*not_after);
            }
        }
    }

    /// Counts one token request.
    pub fn decision(&self, d: Decision) {
        match self.decision_handles.iter().find(|(k, _)| *k == d) {
            Some((_, counter)) => {
                counter.inc();
            }
            // Only a decision missing from `Decision::ALL` (the unit test forbids it).
            None => {
                self.decisions.get_or_create(&d.into()).inc();
            }
        }
    }

    /// Counts one token request with credentials by its grant type: its decision, or
    /// `None` when the throttle refused it before any.
    pub fn grant_decision(&self, grant: GrantType, d: Option<Decision>) {
        let outcome = d.map_or("throttled", |d| DecisionLabels::from(d).outcome);
        if outcome == "issued" {
            if let Some((_, counter)) = self.grant_issued.iter().find(|(g, _)| *g == grant) {
                counter.inc();
                return;
            }
        }
        self.grant_decisions
            .get_or_create(&GrantLabels {
                grant_type: grant.as_str(),
                outcome,
            })
            .inc();
    }

    /// Records how long one token request took.
    pub fn token_latency(&self, took: Duration) {
        self.latency.observe(took);
    }

    /// The counter of requests to `endpoint` refused by the throttle: fetch it once (at
    /// start-up) and increment the handle.
    pub fn throttled(&self, endpoint: &'static str) -> Counter {
        self.throttled
            .get_or_create(&EndpointLabels { endpoint })
            .clone()
    }

    /// Counts one admin write by `admin` (not on the token path: one label lookup).
    pub fn admin_action(&self, admin: &str, action: AdminAction, outcome: AdminOutcome) {
        self.admin
            .get_or_create(&AdminActionLabels {
                action,
                outcome,
                admin: admin.to_string(),
            })
            .inc();
    }

    /// Counts one refused admin request.
    pub fn admin_auth_failed(&self, reason: AdminAuthFailure) {
        self.admin_auth
            .get_or_create(&AdminAuthLabels { reason })
            .inc();
    }

    /// Serves `stats` (counted at `at`, Unix seconds) until the next count.
    pub fn set_store_stats(&self, stats: &StoreStats, at: f64) {
        for (registry, n) in &stats.tokens {
            self.tokens
                .get_or_create(&RegistryLabels {
                    registry: registry.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        for (registry, n) in &stats.expiring {
            self.expiring
                .get_or_create(&RegistryLabels {
                    registry: registry.clone(),
                })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn series(d: Decision) -> String {
        let l = DecisionLabels::from(d);
        format!(
            "regauth_token_decisions_total{{outcome=\"{}\",reason=\"{}\"}}",
            l.outcome, l.reason
        )
    }

    /// Every decision of `Decision::ALL` is a series from the start, at 0, encodes, and is
    /// the one its decision increments (no two decisions share a series).
    #[test]
    fn every_decision_is_registered_and_counted_in_its_own_series() {
        let m = Metrics::new();
        let text = m.encode().unwrap();
        for d in Decision::ALL {
            assert!(
                text.contains(&format!("{} 0\n", series(d))),
                "{d:?} in\n{text}"
            );
        }
        for (i, d) in Decision::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                m.decision(d);
            }
        }
        let text = m.encode().unwrap();
        for (i, d) in Decision::ALL.into_iter().enumerate() {
            let want = format!("{} {}\n", series(d), i + 1);
            assert!(text.contains(&want), "{want} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn registry_events_and_webhook_deliveries_are_counted() {
        let m = Metrics::new();
        let text = m.encode().unwrap();
        for d in EventDrop::ALL {
            let want = format!(
                "regauth_registry_events_dropped_total{{reason=\"{}\"}} 0\n",
                d.as_str()
            );
            assert!(text.contains(&want), "{want} in\n{text}");
        }
        m.registry_events(5, 2, &[(EventDrop::Blob, 2), (EventDrop::Duplicate, 1)]);
        m.webhook_delivery(DeliveryOutcome::Retry);
        m.webhook_delivery(DeliveryOutcome::Delivered);
        m.webhook_delivery(DeliveryOutcome::Delivered);
        m.set_outbox_depth(7);
        let text = m.encode().unwrap();
        for want in [
            "regauth_registry_events_received_total 5\n",
            "regauth_registry_events_stored_total 2\n",
            "regauth_registry_events_dropped_total{reason=\"blob\"} 2\n",
            "regauth_registry_events_dropped_total{reason=\"duplicate\"} 1\n",
            "regauth_webhook_deliveries_total{outcome=\"delivered\"} 2\n",
            "regauth_webhook_deliveries_total{outcome=\"retry\"} 1\n",
            "regauth_webhook_deliveries_total{outcome=\"given_up\"} 0\n",
            "regauth_webhook_outbox_depth 7\n",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }

    #[test]
    fn admin_writes_are_counted_per_admin_and_failures_per_reason() {
        let m = Metrics::new();
        for o in AdminOutcome::ALL {
            m.admin_action("alice", AdminAction::Delete, o);
        }
        m.admin_action("alice", AdminAction::Create, AdminOutcome::Ok);
        m.admin_action("alice", AdminAction::Create, AdminOutcome::Ok);
        m.admin_action("bootstrap", AdminAction::Create, AdminOutcome::Ok);
        m.admin_auth_failed(AdminAuthFailure::Wrong);
        let text = m.encode().unwrap();
        for want in [
            "regauth_admin_actions_total{action=\"create\",outcome=\"ok\",admin=\"alice\"} 2\n",
            "regauth_admin_actions_total{action=\"create\",outcome=\"ok\",admin=\"bootstrap\"} 1\n",
            "regauth_admin_actions_total{action=\"delete\",outcome=\"not_found\",admin=\"alice\"} 1\n",
            "regauth_admin_actions_total{action=\"delete\",outcome=\"error\",admin=\"alice\"} 1\n",
            "regauth_admin_auth_failures_total{reason=\"missing\"} 0\n",
            "regauth_admin_auth_failures_total{reason=\"wrong\"} 1\n",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        // Every action and outcome encodes, as the log's words with `_` for spaces.
        for a in AdminAction::ALL {
            for o in AdminOutcome::ALL {
                m.admin_action("carol", a, o);
            }
        }
        let text = m.encode().unwrap();
        for a in AdminAction::ALL {
            for o in AdminOutcome::ALL {
                let want = format!(
                    "regauth_admin_actions_total{{action=\"{}\",outcome=\"{}\",admin=\"carol\"}} 1\n",
                    a.as_str(),
                    o.as_str().replace(' ', "_")
                );
                assert!(text.contains(&want), "{want} in\n{text}");
            }
        }
    }
}
