//! Last-use tracking off the request path. The token endpoint notes each successful
//! authentication here (a map insert under a lock: no I/O; one small allocation the first time
//! a token is noted in an interval); a background task writes what was noted to the store once
//! per interval ([`FLUSH_INTERVAL`], so at most once per token per interval) and the server
//! writes the rest on shutdown. A crash loses at most one interval of last uses, never a token.
//!
//! Memory is bounded: an entry is the token's registry, id and last use (not the token), and
//! once [`MAX_PENDING`] tokens are noted the flusher is woken early, so a load that touches
//! many tokens in one interval cannot grow the map with the store.
//!
//! Reads of tokens by the admin service
//! overlay what is noted but not yet written ([`UsageRecorder::pending`]), so the admin API
//! shows a use at once.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::domain::{LastUse, Token};
use crate::error::Chain;
use crate::store::{Store, StoreError, TokenUse};

/// How often noted uses are written: each token's last use is written at most once per
/// interval, and a crash loses at most one interval.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// How many tokens may have a noted use before the flusher is woken early (~100 bytes each).
pub const MAX_PENDING: usize = 65_536;

/// Last uses noted since the last write, by token id.
pub struct UsageRecorder {
    store: Arc<dyn Store>,
    /// The latest use of each token noted since the last write, with its registry (for the
    /// write).
    pending: Mutex<HashMap<Uuid, TokenUse>>,
    /// Wakes the flusher before its interval when `limit` tokens are noted.
    full: Notify,
    limit: usize,
}

impl UsageRecorder {
    /// Nothing noted yet.
    pub fn new(store: Arc<dyn Store>) -> UsageRecorder {
        UsageRecorder::with_limit(store, MAX_PENDING)
    }

    /// Nothing noted yet; the flusher is woken early once `limit` tokens are noted.
    pub fn with_limit(store: Arc<dyn Store>, limit: usize) -> UsageRecorder {
        UsageRecorder {
            store,
            pending: Mutex::new(HashMap::new()),
            full: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, TokenUse>> {
        // Every critical section leaves the map consistent, so a poisoned one is still good.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that `token` authenticated. Keeps the later use if one is already noted.
    pub fn record(&self, token: &Token, last_use: LastUse) {
        let mut pending = self.lock();
        match pending.get_mut(&token.id) {
            Some(noted) => {
                if last_use.at >= noted.last_use.at {
                    noted.last_use = last_use;
                }
            }
            None => {
                pending.insert(
                    token.id,
                    TokenUse {
                        registry: token.registry.clone(),
                        id: token.id,
                        name: token.name.as_str().to_string(),
                        last_use,
                    },
                );
                if pending.len() >= self.limit {
                    self.full.notify_one();
                }
            }
        }
    }

    /// The use of token `id` noted but not yet written, if any.
    pub fn pending(&self, id: Uuid) -> Option<LastUse> {
        self.lock().get(&id).map(|u| u.last_use)
    }

    /// `token` with its noted, not yet written use, if that is later than the stored one.
    pub fn overlay(&self, mut token: Token) -> Token {
        token.last_used = LastUse::latest(token.last_used, self.pending(token.id));
        token
    }

    /// Number of tokens with a use not yet written.
    pub fn pending_count(&self) -> usize {
        self.lock().len()
    }

    /// Writes every noted use to the store. On failure the uses stay noted for the next
    /// attempt. Returns how many tokens were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let taken = std::mem::take(&mut *self.lock());
        if taken.is_empty() {
            return Ok(0);
        }
        let uses: Vec<TokenUse> = taken.into_values().collect();
        match self.store.record_uses(&uses).await {
            Ok(written) => Ok(written),
            Err(e) => {
                // Put them back, unless a later use was noted meanwhile.
                let mut pending = self.lock();
                for u in uses {
                    let entry = pending.entry(u.id).or_insert_with(|| u.clone());
                    if u.last_use.at > entry.last_use.at {
                        entry.last_use = u.last_use;
                    }
                }
                Err(e)
            }
        }
    }
}

/// Writes noted uses every `every`, and early whenever the recorder fills up, forever (the
/// server aborts it and flushes once more on shutdown).
pub async fn run_flusher(recorder: Arc<UsageRecorder>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; nothing is noted yet
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = recorder.full.notified() => {}
        }
        match recorder.flush().await {
            Ok(written) => debug!(tokens = written, "last uses written"),
            Err(e) => warn!(error = %Chain(&e), "writing last uses failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as TimeDelta;

    use super::*;
    use crate::domain::GrantKind;
    use crate::store::MemoryStore;
    use crate::testing::{t0, token, Fault, FaultStore, Method};

    fn use_at(minutes: i64, grant: GrantKind) -> LastUse {
        LastUse {
            at: t0() + TimeDelta::minutes(minutes),
            client: Some("192.0.2.7".parse().unwrap()),
            grant,
        }
    }

    #[tokio::test]
    async fn uses_are_coalesced_in_memory_and_written_on_flush() {
        let store = Arc::new(MemoryStore::new());
        let a = Arc::new(token("default", "bot-a"));
        let b = Arc::new(token("default", "bot-b"));
        store.create(&a).await.unwrap();
        store.create(&b).await.unwrap();
        let r = UsageRecorder::new(store.clone());

        for m in 1..=5 {
            r.record(&a, use_at(m, GrantKind::Password));
        }
        r.record(&a, use_at(3, GrantKind::Refresh)); // out of order: the later one stays
        r.record(&b, use_at(2, GrantKind::Refresh));
        assert_eq!(r.pending_count(), 2, "one entry per token");
        assert_eq!(r.pending(a.id), Some(use_at(5, GrantKind::Password)));
        assert_eq!(
            store.get("default", a.id).await.unwrap().unwrap().last_used,
            None
        );
        let shown = r.overlay(store.get("default", a.id).await.unwrap().unwrap());
        assert_eq!(shown.last_used, Some(use_at(5, GrantKind::Password)));

        assert_eq!(r.flush().await.unwrap(), 2);
        assert_eq!(r.pending_count(), 0);
        assert_eq!(
            store.get("default", a.id).await.unwrap().unwrap().last_used,
            Some(use_at(5, GrantKind::Password))
        );
        assert_eq!(
            store.get("default", b.id).await.unwrap().unwrap().last_used,
            Some(use_at(2, GrantKind::Refresh))
        );
        assert_eq!(r.flush().await.unwrap(), 0, "nothing new");

        // A token deleted before the write is skipped, not resurrected.
        r.record(&a, use_at(9, GrantKind::Password));
        assert!(store.delete("default", a.id).await.unwrap());
        assert_eq!(r.flush().await.unwrap(), 0);
        assert_eq!(store.get("default", a.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_failed_write_keeps_the_uses_for_the_next_attempt() {
        // A store whose writes of last uses fail.
        let store = Arc::new(FaultStore::default());
        store.on(Method::RecordUses, |_| {
            Fault::Fail(StoreError::backend(
                "writing last uses",
                std::io::Error::other("disk full"),
            ))
        });
        let a = Arc::new(token("default", "bot-a"));
        store.create(&a).await.unwrap();
        let r = UsageRecorder::new(store);
        r.record(&a, use_at(1, GrantKind::Password));
        assert!(r.flush().await.is_err());
        assert_eq!(r.pending(a.id), Some(use_at(1, GrantKind::Password)));
    }

    #[tokio::test]
    async fn a_full_recorder_wakes_the_flusher_before_its_interval() {
        let store = Arc::new(MemoryStore::new());
        let tokens: Vec<Token> = (0..3)
            .map(|i| token("default", &format!("bot-{i}")))
            .collect();
        for t in &tokens {
            store.create(t).await.unwrap();
        }
        let r = Arc::new(UsageRecorder::with_limit(store.clone(), 3));
        // An interval far longer than the test: only the early wake-up can write.
        let task = tokio::spawn(run_flusher(r.clone(), Duration::from_secs(3600)));
        for t in &tokens[..2] {
            r.record(t, use_at(1, GrantKind::Password));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            r.pending_count(),
            2,
            "below the limit nothing is written early"
        );
        r.record(&tokens[2], use_at(1, GrantKind::Password));
        let mut written = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut all = true;
            for t in &tokens {
                let stored = store.get("default", t.id).await.unwrap().unwrap();
                all &= stored.last_used.is_some();
            }
            if all {
                written = true;
                break;
            }
        }
        task.abort();
        assert!(
            written,
            "reaching the limit should have written every noted use"
        );
        assert_eq!(r.pending_count(), 0);
    }

    #[tokio::test]
    async fn the_flusher_writes_in_the_background() {
        let store = Arc::new(MemoryStore::new());
        let a = Arc::new(token("default", "bot-a"));
        store.create(&a).await.unwrap();
        let r = Arc::new(UsageRecorder::new(store.clone()));
        let task = tokio::spawn(run_flusher(r.clone(), Duration::from_millis(20)));
        r.record(&a, use_at(1, GrantKind::Password));
        let mut written = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if store
                .get("default", a.id)
                .await
                .unwrap()
                .unwrap()
                .last_used
                .is_some()
            {
                written = true;
                break;
            }
        }
        task.abort();
        assert!(written, "the flusher should have written the use");
    }
}
