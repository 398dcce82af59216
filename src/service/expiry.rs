//! Expiry warnings: a `warn` log line once a day for each token that expires within
//! [`WARN_WITHIN`], so an operator sees what is about to stop working before it does.
//!
//! The tokens are read through [`AdminService`]. Which tokens
//! were warned about is kept in memory: after a restart each is warned about once more.
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tracing::warn;
use uuid::Uuid;

use crate::domain::Token;
use crate::error::Chain;
use crate::service::AdminService;

/// Tokens expiring within this are warned about.
pub const WARN_WITHIN: TimeDelta = TimeDelta::days(7);
/// A token is warned about at most once per this.
pub const WARN_EVERY: TimeDelta = TimeDelta::days(1);
/// How often the warner looks.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// When each token was last warned about.
#[derive(Debug, Default)]
pub struct ExpiryWarnings {
    warned: HashMap<Uuid, DateTime<Utc>>,
}

impl ExpiryWarnings {
    /// Of `expiring` (tokens expiring within [`WARN_WITHIN`]), those not warned about in the
    /// last [`WARN_EVERY`]; notes them as warned at `now`. Forgets tokens no longer expiring.
    pub fn due(&mut self, expiring: Vec<Token>, now: DateTime<Utc>) -> Vec<Token> {
        self.warned
            .retain(|id, _| expiring.iter().any(|t| t.id == *id));
        expiring
            .into_iter()
            .filter(|t| match self.warned.get(&t.id) {
                Some(&at) if now < at + WARN_EVERY => false,
                _ => {
                    self.warned.insert(t.id, now);
                    true
                }
            })
            .collect()
    }
}

/// Logs the due warnings every `every`, forever.
pub async fn run_warner(admin: AdminService, every: Duration) {
    let mut warnings = ExpiryWarnings::default();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let expiring = match admin.expiring_soon(WARN_WITHIN).await {
            Ok(tokens) => tokens,
            Err(e) => {
                warn!(error = %Chain(&e), "expiry check failed");
                continue;
            }
        };
        let now = admin.now();
        for t in warnings.due(expiring, now) {
            let expiry = t.expiry.map(|e| e.to_rfc3339()).unwrap_or_default();
            warn!(
                token = %t.name, registry = %t.registry, id = %t.id, expiry = %expiry,
                "token expires within 7 days"
            );
        }
    }
}

/// How often the expiry webhooks (`token.expiring`, `token.expired`) look.
pub const WEBHOOK_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Writes `token.expiring` and `token.expired` to the webhooks' outbox every `every`, once
/// per token and expiry (their ids are derived, so replicas and restarts repeat nothing).
/// Reads the expiry index only.
pub async fn run_webhook_watch(admin: AdminService, every: Duration) {
    let Some(webhooks) = admin.webhooks().filter(|w| w.active()).cloned() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match admin.expiring_until(webhooks.expiring_lead()).await {
            Ok(tokens) => webhooks.check_expiries(&tokens).await,
            Err(e) => warn!(error = %Chain(&e), "expiry check for the webhooks failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{expiring, t0};

    #[tokio::test]
    async fn each_token_is_warned_about_once_a_day() {
        let a = expiring("default", "soon-a", t0() + TimeDelta::days(3));
        let b = expiring("default", "soon-b", t0() + TimeDelta::days(6));
        let mut w = ExpiryWarnings::default();
        let names = |v: Vec<Token>| {
            v.into_iter()
                .map(|t| t.name.to_string())
                .collect::<Vec<_>>()
        };

        assert_eq!(names(w.due(vec![a.clone()], t0())), ["soon-a"]);
        let hour = t0() + TimeDelta::hours(1);
        assert_eq!(
            names(w.due(vec![a.clone(), b.clone()], hour)),
            ["soon-b"],
            "a was warned an hour ago"
        );
        let day = t0() + WARN_EVERY;
        assert_eq!(names(w.due(vec![a.clone(), b.clone()], day)), ["soon-a"]);
        assert_eq!(
            names(w.due(vec![a.clone(), b.clone()], hour + WARN_EVERY)),
            ["soon-b"]
        );
        // A token no longer expiring (extended, deleted) is forgotten, so a new expiry warns.
        assert!(w.due(vec![a.clone()], day).is_empty());
        assert_eq!(names(w.due(vec![a, b], day)), ["soon-b"]);
    }

    #[tokio::test]
    async fn admin_service_finds_tokens_expiring_within_a_week() {
        use crate::clock::Clock;
        use crate::store::{MemoryStore, Store};
        use std::sync::Arc;
        let store = Arc::new(MemoryStore::new());
        for t in [
            expiring("default", "in-a-day", t0() + TimeDelta::days(1)),
            expiring("default", "in-a-month", t0() + TimeDelta::days(30)),
            expiring("default", "gone", t0() - TimeDelta::days(1)),
        ] {
            store.create(&t).await.unwrap();
        }
        let admin = AdminService::new(store, Clock::manual(t0()));
        let soon = admin.expiring_soon(WARN_WITHIN).await.unwrap();
        assert_eq!(soon.len(), 1);
        assert_eq!(soon[0].name.as_str(), "in-a-day");
    }
}
