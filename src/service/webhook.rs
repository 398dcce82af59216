//! Webhooks for token events (docs/webhooks.md): events are written to the durable outbox
//! ([`Outbox`]) where they happen, and a background deliverer POSTs them, signed, to each
//! subscribed webhook, retrying with exponential backoff until the give-up time.
//!
//! - **Writing.** A token change's deliveries (one per subscribed webhook,
//!   [`WebhookService::token_deliveries`]) are committed by the store in the change's own
//!   transaction ([`crate::store::Store::write`]): a change is never made without its event,
//!   whatever stops the process. Events that report no store change (`token.expiring`,
//!   `image.pushed`) are written on their own ([`WebhookService::emit`]). With no webhook
//!   subscribed to an event, nothing is written. The admin API waits for the commit only,
//!   never for a receiver.
//! - **Sending.** [`run_deliverer`] claims due deliveries (leased, so one replica sends each;
//!   a replica killed mid-delivery leaves a lease that runs out and the delivery is due
//!   again), sends at most [`CONCURRENCY`] at once, each bounded by
//!   `[webhook_delivery] timeout_seconds`, and records each attempt. At least once: a
//!   receiver drops duplicates by the body's `id`.
//! - **Derived events.** `token.expiring`, `token.expired` and `image.pushed` get ids
//!   derived from what they are about, so noticing one twice (two replicas, a restart, a
//!   retried registry envelope) writes it once.
//!
//! `admin`, `activity` and `expiry` use it.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::activity::{Event, EventAction};
use crate::domain::webhook::{
    signature, Delivery, DeliveryState, Envelope, ImageData, TokenData, WebhookConfig, WebhookEvent,
};
use crate::domain::Token;
use crate::error::Chain;
use crate::metrics::Metrics;
use crate::outcome::DeliveryOutcome;
use crate::store::outbox::{MemoryOutbox, Outbox};
use crate::store::StoreError;

/// Deliveries sent at once by one replica.
pub const CONCURRENCY: usize = 32;
/// How often the deliverer looks for due deliveries (an event written by this replica is
/// sent at once).
pub const POLL: Duration = Duration::from_secs(1);
/// Finished deliveries are kept this long (the delivery log), then pruned.
pub const KEEP_FINISHED: TimeDelta = TimeDelta::days(7);
/// `token.expired` is sent for tokens that expired at most this long ago (a replica that
/// was down when a token expired still reports it, once).
pub const EXPIRED_LOOKBACK: TimeDelta = TimeDelta::days(2);
/// How often the outbox's depth is counted for the metrics.
const DEPTH_EVERY: Duration = Duration::from_secs(15);
/// How often finished deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The webhooks: configuration, outbox and sender; cheap to clone.
#[derive(Clone)]
pub struct WebhookService {
    outbox: Arc<dyn Outbox>,
    config: Arc<WebhookConfig>,
    clock: Clock,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    /// Wakes the deliverer when this replica writes an event.
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService")
            .field("webhooks", &self.config.hooks)
            .finish_non_exhaustive()
    }
}

impl WebhookService {
    /// The webhooks of `config` over `outbox`.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        config: WebhookConfig,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> WebhookService {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("regauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        WebhookService {
            outbox,
            config: Arc::new(config),
            clock,
            metrics,
            client,
            wake: Arc::new(Notify::new()),
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }

    /// An outbox in memory (tests, and the state before `server` sets the real one).
    pub fn in_memory(config: WebhookConfig, clock: Clock, metrics: Arc<Metrics>) -> Self {
        WebhookService::new(Arc::new(MemoryOutbox::default()), config, clock, metrics)
    }

    /// Whether any webhook is configured.
    pub fn active(&self) -> bool {
        !self.config.hooks.is_empty()
    }

    /// The deliveries of event `id` of type `kind` with `data`: one per webhook subscribed to
    /// `kind` (none when no webhook is). For a caller that writes them itself, in the
    /// transaction of the change they report ([`crate::store::Store::write`]); then it calls
    /// [`WebhookService::queued`].
    pub fn deliveries_of<T: Serialize>(
        &self,
        kind: WebhookEvent,
        id: Uuid,
        data: T,
    ) -> Vec<Delivery> {
        let urls: Vec<&str> = self
            .config
            .subscribed(kind)
            .map(|h| h.url.as_str())
            .collect();
        if urls.is_empty() {
            return Vec::new();
        }
        let now = self.clock.now();
        let envelope = Envelope {
            id,
            kind,
            time: now,
            data,
        };
        match serde_json::to_string(&envelope) {
            Ok(body) => urls
                .iter()
                .map(|u| Delivery::new(id, kind, u, body.clone(), now))
                .collect(),
            Err(e) => {
                tracing::error!(event = %kind, id = %id, error = %e, "webhook event lost: cannot encode it");
                Vec::new()
            }
        }
    }

    /// The deliveries of `token`'s event `kind` caused by `actor` (a new event id).
    pub fn token_deliveries(
        &self,
        kind: WebhookEvent,
        token: &Token,
        actor: &str,
    ) -> Vec<Delivery> {
        self.deliveries_of(kind, Uuid::new_v4(), TokenData::of(token, actor))
    }

    /// `token.expired` of `token`: one event id per token and expiry, whoever notices it.
    pub fn expired_deliveries(&self, token: &Token) -> Vec<Delivery> {
        let id = expiry_event_id(WebhookEvent::TokenExpired, token);
        self.deliveries_of(
            WebhookEvent::TokenExpired,
            id,
            TokenData::of(token, "regauth"),
        )
    }

    /// Wakes the deliverer: deliveries were committed to the outbox by the store.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Says that `deliveries` were committed to the outbox (by the store, with their
    /// change): the deliverer sends them now.
    pub fn queued(&self, deliveries: &[Delivery]) {
        if let Some(d) = deliveries.first() {
            tracing::debug!(event = %d.kind, id = %d.event_id, webhooks = deliveries.len(), "webhook event queued");
            self.wake.notify_one();
        }
    }

    /// Writes event `id` of type `kind` with `data` to the outbox on its own, for events
    /// that report no store change (`token.expiring`, `image.pushed`, a `token.expired` noticed
    /// late). A failure is logged.
    pub async fn emit<T: Serialize>(&self, kind: WebhookEvent, id: Uuid, data: T) {
        let deliveries = self.deliveries_of(kind, id, data);
        if deliveries.is_empty() {
            return;
        }
        match self.outbox.enqueue(deliveries).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(event = %kind, id = %id, webhooks = n, "webhook event queued");
                self.wake.notify_one();
            }
            Err(e) => tracing::error!(event = %kind, id = %id, error = %Chain(&e),
                "webhook event lost: cannot write it to the outbox"),
        }
    }

    /// `token.expired` for `token` (one id per token and expiry), written on its own.
    pub async fn token_expired(&self, token: &Token) {
        let id = expiry_event_id(WebhookEvent::TokenExpired, token);
        self.emit(
            WebhookEvent::TokenExpired,
            id,
            TokenData::of(token, "regauth"),
        )
        .await;
    }

    /// Sends `token.expiring` for each of `tokens` expiring within the lead time, and
    /// `token.expired` for those that expired within [`EXPIRED_LOOKBACK`]; once per token and
    /// expiry (derived ids).
    pub async fn check_expiries(&self, tokens: &[Token]) {
        let now = self.clock.now();
        for t in tokens {
            let Some(expiry) = t.expiry else { continue };
            if expiry > now {
                if expiry <= now + self.config.delivery.expiring_lead() {
                    let id = expiry_event_id(WebhookEvent::TokenExpiring, t);
                    self.emit(WebhookEvent::TokenExpiring, id, TokenData::of(t, "regauth"))
                        .await;
                }
            } else if now - expiry <= EXPIRED_LOOKBACK {
                self.token_expired(t).await;
            }
        }
    }

    /// How long before its expiry a token's `token.expiring` is sent.
    pub fn expiring_lead(&self) -> TimeDelta {
        self.config.delivery.expiring_lead()
    }

    /// `image.pushed` for each manifest push among `events` (stored registry events); one id
    /// per registry event, so a retried envelope sends nothing twice.
    pub async fn images_pushed(&self, events: &[Event]) {
        for e in events.iter().filter(|e| e.action == EventAction::Push) {
            let id = crate::domain::webhook::derived_id(&[
                b"image.pushed",
                e.registry.as_bytes(),
                e.id.as_bytes(),
            ]);
            let data = ImageData {
                registry: e.registry.clone(),
                repository: e.repository.clone(),
                tag: e.tag.clone(),
                digest: e.digest.clone(),
                media_type: e.media_type.clone(),
                size: e.size,
                actor: e.actor.clone(),
                registry_event_id: e.id.clone(),
            };
            self.emit(WebhookEvent::ImagePushed, id, data).await;
        }
    }

    /// The `limit` most recent deliveries, newest first.
    pub async fn deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.outbox.recent(limit).await
    }

    /// Makes delivery `id` due now again (whatever its state); `None` if there is none.
    pub async fn redeliver(&self, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        let Some(mut d) = self.outbox.delivery(id).await? else {
            return Ok(None);
        };
        d.redeliver(self.clock.now());
        self.outbox.save(&d).await?;
        tracing::info!(delivery = %d.id, event = %d.kind, id = %d.event_id, url = %d.url,
            "webhook redelivery requested");
        self.wake.notify_one();
        Ok(Some(d))
    }

    /// Claims the due deliveries this replica has room for and starts sending them; returns
    /// how many it started. Does not wait for the receivers.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let room = self.slots.available_permits();
        if room == 0 {
            return Ok(0);
        }
        let now = self.clock.now();
        let timeout =
            TimeDelta::seconds(i64::try_from(self.config.delivery.timeout_seconds).unwrap_or(60));
        // Twice the timeout: the attempt ends within one, its outcome is saved well within
        // the other. A replica killed mid-delivery leaves the lease to run out.
        let claimed = self.outbox.claim(now, now + timeout * 2, room).await?;
        let n = claimed.len();
        for d in claimed {
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.attempt(d).await;
                drop(permit);
            });
        }
        Ok(n)
    }

    /// Sends `d` once and records the outcome.
    pub async fn attempt(&self, mut d: Delivery) {
        let Some(secret) = self.config.secret_of(&d.url) else {
            d.attempted(
                self.clock.now(),
                None,
                Some("the webhook is no longer configured".into()),
                &self.config.delivery,
            );
            d.state = DeliveryState::Failed;
            tracing::warn!(delivery = %d.id, event = %d.kind, url = %d.url,
                "webhook delivery given up: its webhook is no longer in the configuration");
            self.record(d, DeliveryOutcome::GivenUp).await;
            return;
        };
        let timestamp = self.clock.now().timestamp();
        let sent = self
            .client
            .post(&d.url)
            .timeout(Duration::from_secs(self.config.delivery.timeout_seconds))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Regauth-Event", d.kind.as_str())
            .header("X-Regauth-Delivery", d.id.to_string())
            .header("X-Regauth-Timestamp", timestamp.to_string())
            .header(
                "X-Regauth-Signature-256",
                signature(secret, timestamp, d.body.as_bytes()),
            )
            .body(d.body.clone())
            .send()
            .await;
        let (status, error) = match sent {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
            Ok(r) => (
                Some(r.status().as_u16()),
                Some(format!("the receiver answered {}", r.status())),
            ),
            Err(e) => (
                None,
                Some(describe(&e, self.config.delivery.timeout_seconds)),
            ),
        };
        d.attempted(self.clock.now(), status, error, &self.config.delivery);
        let outcome = match d.state {
            DeliveryState::Delivered => {
                tracing::info!(delivery = %d.id, event = %d.kind, id = %d.event_id, url = %d.url,
                    attempt = d.attempts, status = status.unwrap_or(0), "webhook delivered");
                DeliveryOutcome::Delivered
            }
            DeliveryState::Pending => {
                tracing::warn!(delivery = %d.id, event = %d.kind, id = %d.event_id, url = %d.url,
                    attempt = d.attempts, error = d.last_error.as_deref().unwrap_or(""),
                    next_retry = %d.next_at.to_rfc3339(), "webhook delivery failed; will retry");
                DeliveryOutcome::Retry
            }
            DeliveryState::Failed => {
                tracing::error!(delivery = %d.id, event = %d.kind, id = %d.event_id, url = %d.url,
                    attempt = d.attempts, error = d.last_error.as_deref().unwrap_or(""),
                    "webhook delivery given up (retry with `regauth webhook redeliver`)");
                DeliveryOutcome::GivenUp
            }
        };
        self.record(d, outcome).await;
    }

    async fn record(&self, d: Delivery, outcome: DeliveryOutcome) {
        self.metrics.webhook_delivery(outcome);
        if let Err(e) = self.outbox.save(&d).await {
            // The lease runs out and the delivery is sent again: at least once.
            tracing::warn!(delivery = %d.id, error = %Chain(&e),
                "cannot record a webhook delivery's outcome; it will be sent again");
        }
    }

    /// Counts the pending deliveries for the metrics.
    async fn count_depth(&self) {
        match self.outbox.pending().await {
            Ok(n) => self.metrics.set_outbox_depth(n),
            Err(e) => tracing::warn!(error = %Chain(&e), "cannot count the webhook outbox"),
        }
    }

    /// Deletes finished deliveries older than [`KEEP_FINISHED`].
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.outbox.prune(now - KEEP_FINISHED).await
    }
}

/// The id of an expiry event (`token.expiring`, `token.expired`) of `token`: one per token
/// and expiry, so a token whose expiry is moved gets new ones.
fn expiry_event_id(kind: WebhookEvent, token: &Token) -> Uuid {
    let expiry = token.expiry.map_or(0, |e| e.timestamp_micros());
    crate::domain::webhook::derived_id(&[
        kind.as_str().as_bytes(),
        token.id.as_bytes(),
        &expiry.to_be_bytes(),
    ])
}

/// Why a request to a receiver failed, in words.
fn describe(e: &reqwest::Error, timeout: u64) -> String {
    if e.is_timeout() {
        return format!("no answer within {timeout} s");
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // The chain without the URL (it is logged beside).
    let mut text = what.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Sends due deliveries until the process ends: at once when this replica writes an event,
/// else every [`POLL`]. Counts the outbox every 15 s and prunes it every hour.
pub async fn run_deliverer(service: WebhookService) {
    if !service.active() {
        return;
    }
    let mut depth_at = tokio::time::Instant::now() - DEPTH_EVERY;
    let mut pruned_at = tokio::time::Instant::now();
    loop {
        match service.deliver_due().await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %Chain(&e),
                "cannot read the webhook outbox; retrying in a second"),
        }
        if depth_at.elapsed() >= DEPTH_EVERY {
            service.count_depth().await;
            depth_at = tokio::time::Instant::now();
        }
        if pruned_at.elapsed() >= PRUNE_EVERY {
            match service.prune(service.clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "pruned finished webhook deliveries"),
                Err(e) => tracing::warn!(error = %Chain(&e), "cannot prune the webhook outbox"),
            }
            pruned_at = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = service.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::{DeliverySettings, Webhook, WebhookConfig};

    fn config(events: &[WebhookEvent]) -> WebhookConfig {
        WebhookConfig {
            hooks: vec![Webhook {
                url: "http://127.0.0.1:9/hook".into(),
                secret: "s".into(),
                events: events.to_vec(),
            }],
            delivery: DeliverySettings::default(),
        }
    }

    #[tokio::test]
    async fn only_subscribed_events_are_queued_and_expiries_once() {
        let clock = Clock::manual(crate::testing::t0());
        let s = WebhookService::in_memory(
            config(&[WebhookEvent::TokenCreated, WebhookEvent::TokenExpiring]),
            clock.clone(),
            Arc::new(Metrics::new()),
        );
        let t = crate::testing::token("default", "ci-bot");
        s.emit(
            WebhookEvent::TokenCreated,
            Uuid::new_v4(),
            TokenData::of(&t, "alice"),
        )
        .await;
        s.emit(
            WebhookEvent::TokenDeleted,
            Uuid::new_v4(),
            TokenData::of(&t, "alice"),
        )
        .await;
        let soon = Token {
            expiry: Some(crate::testing::t0() + TimeDelta::hours(3)),
            ..crate::testing::token("default", "soon-token")
        };
        let later = Token {
            expiry: Some(crate::testing::t0() + TimeDelta::days(3)),
            ..crate::testing::token("default", "later-token")
        };
        s.check_expiries(&[soon.clone(), later.clone()]).await;
        s.check_expiries(&[soon.clone(), later]).await;
        let all = s.deliveries(10).await.unwrap();
        let mut kinds: Vec<&str> = all.iter().map(|d| d.kind.as_str()).collect();
        kinds.sort();
        assert_eq!(kinds, ["token.created", "token.expiring"]);
        let body: serde_json::Value = serde_json::from_str(&all[0].body).unwrap();
        assert!(body["data"]["name"].is_string() && body["id"].is_string());
        assert!(!all.iter().any(|d| d.body.contains("secret_hash")));
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_later() {
        let clock = Clock::manual(crate::testing::t0());
        let s = WebhookService::in_memory(
            config(&[WebhookEvent::TokenCreated]),
            clock.clone(),
            Arc::new(Metrics::new()),
        );
        let t = crate::testing::token("default", "ci-bot");
        s.emit(
            WebhookEvent::TokenCreated,
            Uuid::new_v4(),
            TokenData::of(&t, "a"),
        )
        .await;
        let d = s.deliveries(1).await.unwrap().remove(0);
        // Port 9 (discard) on loopback: nothing listens, the connection is refused.
        s.attempt(d).await;
        let d = s.deliveries(1).await.unwrap().remove(0);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 1);
        assert!(
            d.last_error.as_deref().unwrap_or("").contains("connect"),
            "{d:?}"
        );
        assert_eq!(d.next_at, crate::testing::t0() + TimeDelta::seconds(10));
        let redelivered = s.redeliver(d.id).await.unwrap().unwrap();
        assert_eq!(redelivered.next_at, crate::testing::t0());
        assert!(s.redeliver(Uuid::nil()).await.unwrap().is_none());
    }
}
