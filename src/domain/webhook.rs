//! Webhooks for token events (docs/webhooks.md): the `[[webhooks]]` and `[webhook_delivery]`
//! configuration and its rules, the event types, the signed delivery (a JSON body and the
//! `X-Regauth-Signature-256` HMAC), the retry schedule, and [`Delivery`], one event on its way
//! to one webhook as the outbox keeps it.
//!
//! Pure: no HTTP client, no store. `service::webhook` sends; `store` keeps the outbox.
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The events a webhook may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    #[serde(rename = "token.created")]
    TokenCreated,
    #[serde(rename = "token.updated")]
    TokenUpdated,
    #[serde(rename = "token.rotated")]
    TokenRotated,
    #[serde(rename = "token.disabled")]
    TokenDisabled,
    #[serde(rename = "token.deleted")]
    TokenDeleted,
    #[serde(rename = "token.expired")]
    TokenExpired,
    #[serde(rename = "token.expiring")]
    TokenExpiring,
    #[serde(rename = "image.pushed")]
    ImagePushed,
}

impl WebhookEvent {
    /// Every event type, in the docs' order.
    pub const ALL: [WebhookEvent; 8] = [
        WebhookEvent::TokenCreated,
        WebhookEvent::TokenUpdated,
        WebhookEvent::TokenRotated,
        WebhookEvent::TokenDisabled,
        WebhookEvent::TokenDeleted,
        WebhookEvent::TokenExpired,
        WebhookEvent::TokenExpiring,
        WebhookEvent::ImagePushed,
    ];

    /// The name in the configuration and in the body's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::TokenCreated => "token.created",
            WebhookEvent::TokenUpdated => "token.updated",
            WebhookEvent::TokenRotated => "token.rotated",
            WebhookEvent::TokenDisabled => "token.disabled",
            WebhookEvent::TokenDeleted => "token.deleted",
            WebhookEvent::TokenExpired => "token.expired",
            WebhookEvent::TokenExpiring => "token.expiring",
            WebhookEvent::ImagePushed => "image.pushed",
        }
    }
}

impl std::fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WebhookEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        WebhookEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
                format!("{s:?} is not one of {}", all.join(", "))
            })
    }
}

/// One `[[webhooks]]` entry as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub events: Option<Vec<String>>,
}

/// A checked webhook.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// The HMAC key of the signature.
    pub secret: String,
    pub events: Vec<WebhookEvent>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// `[webhook_delivery]`: how deliveries are made and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// A receiver must answer within this (default 10 s; 1 to 60).
    pub timeout_seconds: u64,
    /// The first retry waits this long; each next one twice as long, at most an hour
    /// (default 10 s).
    pub first_retry_seconds: u64,
    /// A delivery not accepted this long after its event is given up (default 24 h).
    pub give_up_hours: u64,
    /// `token.expiring` is sent this long before a token's expiry (default 24 h).
    pub expiring_lead_hours: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            timeout_seconds: 10,
            first_retry_seconds: 10,
            give_up_hours: 24,
            expiring_lead_hours: 24,
        }
    }
}

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: TimeDelta = TimeDelta::hours(1);

impl DeliverySettings {
    /// The wait after failed attempt number `attempt` (1 for the first): the first retry
    /// delay, doubled per attempt, at most [`MAX_RETRY_DELAY`].
    pub fn retry_delay(&self, attempt: u32) -> TimeDelta {
        let first = TimeDelta::seconds(i64::try_from(self.first_retry_seconds).unwrap_or(3600));
        let doublings = attempt.saturating_sub(1).min(20);
        first
            .checked_mul(1 << doublings)
            .unwrap_or(MAX_RETRY_DELAY)
            .min(MAX_RETRY_DELAY)
    }

    /// How long after its event a delivery is given up.
    pub fn give_up_after(&self) -> TimeDelta {
        TimeDelta::hours(i64::try_from(self.give_up_hours).unwrap_or(24))
    }

    /// How long before its expiry a token's `token.expiring` is sent.
    pub fn expiring_lead(&self) -> TimeDelta {
        TimeDelta::hours(i64::try_from(self.expiring_lead_hours).unwrap_or(24))
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let check = |key: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err((
                    format!("webhook_delivery.{key}"),
                    format!("must be from {min} to {max}, got {v}"),
                ))
            }
        };
        check("timeout_seconds", self.timeout_seconds, 1, 60)?;
        check("first_retry_seconds", self.first_retry_seconds, 1, 3600)?;
        check("give_up_hours", self.give_up_hours, 1, 168)?;
        check("expiring_lead_hours", self.expiring_lead_hours, 1, 720)
    }
}

/// The webhooks and their delivery settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookConfig {
    pub hooks: Vec<Webhook>,
    pub delivery: DeliverySettings,
}

impl WebhookConfig {
    /// Checks the file's entries: an `http(s)://` URL, a non-empty secret, known event names.
    /// `Err((key, message))` names the key (`webhooks[1].events[0]`).
    pub fn validate(
        entries: Vec<WebhookEntry>,
        delivery: DeliverySettings,
    ) -> Result<WebhookConfig, (String, String)> {
        delivery.validate()?;
        let mut hooks = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let key = |k: &str| format!("webhooks[{i}].{k}");
            let url = e.url.unwrap_or_default();
            check_url(&url).map_err(|m| (key("url"), m))?;
            let secret = e.secret.unwrap_or_default();
            if secret.trim().is_empty() {
                return Err((key("secret"), "must not be empty".into()));
            }
            let names = e.events.unwrap_or_default();
            if names.is_empty() {
                return Err((key("events"), "must name at least one event".into()));
            }
            let mut events = Vec::with_capacity(names.len());
            for (j, n) in names.iter().enumerate() {
                let ev = n
                    .parse::<WebhookEvent>()
                    .map_err(|m| (key(&format!("events[{j}]")), m))?;
                if !events.contains(&ev) {
                    events.push(ev);
                }
            }
            hooks.push(Webhook {
                url,
                secret,
                events,
            });
        }
        Ok(WebhookConfig { hooks, delivery })
    }

    /// The webhooks subscribed to `event`.
    pub fn subscribed(&self, event: WebhookEvent) -> impl Iterator<Item = &Webhook> {
        self.hooks.iter().filter(move |h| h.events.contains(&event))
    }

    /// The secret of the webhook at `url` (the outbox keeps URLs, never secrets).
    pub fn secret_of(&self, url: &str) -> Option<&str> {
        self.hooks
            .iter()
            .find(|h| h.url == url)
            .map(|h| h.secret.as_str())
    }
}

/// An `http://` or `https://` URL with a host and no whitespace.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains whitespace"));
    }
    Ok(())
}

/// The `X-Regauth-Signature-256` value of `body` sent at `timestamp` (Unix seconds):
/// `sha256=` and the hex HMAC-SHA256, keyed by `secret`, of `timestamp.body`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The body of every delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The event's id: the same in every delivery and redelivery of the event, so a receiver
    /// drops duplicates by it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: WebhookEvent,
    pub time: DateTime<Utc>,
    pub data: T,
}

/// `data` of the `token.*` events: the token as it is after the change (before it, for
/// `token.deleted` and `token.expired`), never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenData {
    pub registry: String,
    pub id: Uuid,
    pub name: String,
    /// `enabled` or `disabled`.
    pub status: String,
    pub expiry: Option<DateTime<Utc>>,
    pub owner: Option<String>,
    pub description: Option<String>,
    /// Who made the change: an admin's name, or `regauth` for expiry.
    pub actor: String,
}

impl TokenData {
    /// The data of an event about `token`, caused by `actor`.
    pub fn of(token: &crate::domain::Token, actor: &str) -> TokenData {
        TokenData {
            registry: token.registry.clone(),
            id: token.id,
            name: token.name.to_string(),
            status: match token.status {
                crate::domain::Status::Enabled => "enabled".into(),
                crate::domain::Status::Disabled => "disabled".into(),
            },
            expiry: token.expiry,
            owner: token.owner.as_ref().map(|o| o.as_str().to_string()),
            description: token.description.as_ref().map(|d| d.as_str().to_string()),
            actor: actor.to_string(),
        }
    }
}

/// `data` of `image.pushed`: a manifest push the registry reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageData {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
    /// Who pushed: a token's name, or the registry's actor name.
    pub actor: String,
    /// The registry's own event id.
    pub registry_event_id: String,
}

/// An id derived from `parts` (the first 16 bytes of their SHA-256, as a version-8 UUID):
/// the same event noticed twice (by two replicas, or after a restart) gets the same id, and
/// the outbox stores it once.
pub fn derived_id(parts: &[&[u8]]) -> Uuid {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let digest = ctx.finish();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Waiting for its (next) attempt at `next_at`.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up: no 2xx within the give-up time, or its webhook is no longer configured.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One event on its way to one webhook: a row of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery's id ([`derived_id`] of the event id and the URL).
    pub id: Uuid,
    pub event_id: Uuid,
    pub kind: WebhookEvent,
    pub url: String,
    /// The JSON body, fixed when the event happened: a redelivery sends the same bytes.
    pub body: String,
    pub created: DateTime<Utc>,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    pub next_at: DateTime<Utc>,
    /// A replica sending it holds it until then; after that (a crash) it is due again.
    pub lease_until: Option<DateTime<Utc>>,
    pub last_attempt: Option<DateTime<Utc>>,
    /// The receiver's status code at the last attempt, if it answered.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

impl Delivery {
    /// A new pending delivery of `body` (event `event_id` of type `kind`) to `url`, due now.
    pub fn new(
        event_id: Uuid,
        kind: WebhookEvent,
        url: &str,
        body: String,
        now: DateTime<Utc>,
    ) -> Delivery {
        Delivery {
            id: derived_id(&[event_id.as_bytes(), url.as_bytes()]),
            event_id,
            kind,
            url: url.to_string(),
            body,
            created: now,
            state: DeliveryState::Pending,
            attempts: 0,
            next_at: now,
            lease_until: None,
            last_attempt: None,
            last_status: None,
            last_error: None,
        }
    }

    /// Records an attempt at `now` that ended with `status` (if the receiver answered) or
    /// `error`: delivered on a 2xx, else due again after the retry delay, or given up once
    /// that would be past the give-up time.
    pub fn attempted(
        &mut self,
        now: DateTime<Utc>,
        status: Option<u16>,
        error: Option<String>,
        settings: &DeliverySettings,
    ) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_attempt = Some(now);
        self.last_status = status;
        self.last_error = error;
        self.lease_until = None;
        if status.is_some_and(|s| (200..300).contains(&s)) {
            self.state = DeliveryState::Delivered;
            return;
        }
        let next = now + settings.retry_delay(self.attempts);
        if next > self.created + settings.give_up_after() {
            self.state = DeliveryState::Failed;
        } else {
            self.state = DeliveryState::Pending;
            self.next_at = next;
        }
    }

    /// Makes the delivery due at `now` again, whatever its state (a redelivery).
    pub fn redeliver(&mut self, now: DateTime<Utc>) {
        self.state = DeliveryState::Pending;
        self.next_at = now;
        self.lease_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec
        let sig = signature("whsec", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "sha256=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        // Any change to the key, the time or the body changes it.
        assert_ne!(sig, signature("whsec2", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(sig, signature("whsec", 1_700_000_001, br#"{"a":1}"#));
        assert_ne!(sig, signature("whsec", 1_700_000_000, br#"{"a":2}"#));
    }

    #[test]
    fn retries_double_from_the_first_delay_up_to_an_hour() {
        let s = DeliverySettings {
            first_retry_seconds: 10,
            ..DeliverySettings::default()
        };
        let secs: Vec<i64> = (1..=12).map(|a| s.retry_delay(a).num_seconds()).collect();
        assert_eq!(
            secs,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600, 3600]
        );
        assert_eq!(s.retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn a_delivery_is_retried_until_the_give_up_time() {
        let s = DeliverySettings::default();
        let mut d = Delivery::new(
            Uuid::nil(),
            WebhookEvent::TokenCreated,
            "http://x",
            "{}".into(),
            t0(),
        );
        let mut now = t0();
        d.attempted(now, Some(500), None, &s);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.next_at, t0() + TimeDelta::seconds(10));
        let mut attempts = 1;
        while d.state == DeliveryState::Pending {
            now = d.next_at;
            d.attempted(now, None, Some("connection refused".into()), &s);
            attempts += 1;
            assert!(now <= t0() + TimeDelta::hours(24));
        }
        assert_eq!(d.state, DeliveryState::Failed);
        assert!(attempts > 20 && attempts < 40, "{attempts}");
        d.redeliver(now);
        assert_eq!((d.state, d.next_at), (DeliveryState::Pending, now));
        d.attempted(now, Some(204), None, &s);
        assert_eq!(d.state, DeliveryState::Delivered);
    }

    #[test]
    fn the_configuration_names_the_bad_key() {
        let entry = |url: &str, secret: &str, events: &[&str]| WebhookEntry {
            url: Some(url.into()),
            secret: Some(secret.into()),
            events: Some(events.iter().map(|e| e.to_string()).collect()),
        };
        let ok = WebhookConfig::validate(
            vec![entry(
                "https://h.example/x",
                "s",
                &["token.created", "image.pushed", "token.created"],
            )],
            DeliverySettings::default(),
        )
        .unwrap();
        assert_eq!(
            ok.hooks[0].events,
            [WebhookEvent::TokenCreated, WebhookEvent::ImagePushed]
        );
        assert!(!format!("{ok:?}").contains("\"s\""));
        for (entries, key, words) in [
            (
                vec![entry("ftp://h", "s", &["token.created"])],
                "webhooks[0].url",
                "http:// or https://",
            ),
            (
                vec![entry("https://", "s", &["token.created"])],
                "webhooks[0].url",
                "no host",
            ),
            (
                vec![entry("https://h", " ", &["token.created"])],
                "webhooks[0].secret",
                "empty",
            ),
            (
                vec![entry("https://h", "s", &[])],
                "webhooks[0].events",
                "at least one",
            ),
            (
                vec![
                    entry("https://h", "s", &["token.created"]),
                    entry("http://h", "s", &["token.foo"]),
                ],
                "webhooks[1].events[0]",
                "\"token.foo\" is not one of token.created",
            ),
        ] {
            let (k, m) = WebhookConfig::validate(entries, DeliverySettings::default()).unwrap_err();
            assert_eq!(k, key);
            assert!(m.contains(words), "{m}");
        }
        let (k, _) = WebhookConfig::validate(
            vec![],
            DeliverySettings {
                timeout_seconds: 0,
                ..DeliverySettings::default()
            },
        )
        .unwrap_err();
        assert_eq!(k, "webhook_delivery.timeout_seconds");
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_id(&[b"token.expiring", b"x"]);
        assert_eq!(a, derived_id(&[b"token.expiring", b"x"]));
        assert_ne!(a, derived_id(&[b"token.expiring", b"y"]));
        // Parts are length-prefixed: ("ab","c") is not ("a","bc").
        assert_ne!(derived_id(&[b"ab", b"c"]), derived_id(&[b"a", b"bc"]));
    }

    #[test]
    fn the_body_has_id_type_time_and_data() {
        let e = Envelope {
            id: Uuid::nil(),
            kind: WebhookEvent::TokenRotated,
            time: t0(),
            data: serde_json::json!({"name": "ci"}),
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "token.rotated");
        assert_eq!(v["id"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
        assert_eq!(v["data"]["name"], "ci");
    }
}
