//! Last-use tracking off the request path. The token endpoint notes each successful
//! authentication here (a map insert under the lock of its thread's own map: no I/O; one
//! small allocation the first time a token is noted in an interval); a background task writes
//! what was noted to the store once per interval ([`FLUSH_INTERVAL`], so at most once per
//! token per interval) and the server writes the rest on shutdown. A crash loses at most one
//! interval of last uses, never a token.
//!
//! Memory is bounded: an entry is the token's registry, id and last use (not the token), and
//! once [`MAX_PENDING`] entries are noted the flusher is woken early, so a load that touches
//! many tokens in one interval cannot grow the maps with the store.
//!
//! Reads of tokens by the admin service
//! overlay what is noted but not yet written ([`UsageRecorder::pending`]), so the admin API
//! shows a use at once.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::domain::{LastUse, Token};
use crate::error::Chain;
use crate::store::{Store, StoreError, TokenUse};
use crate::stripes::Striped;

/// How often noted uses are written: each token's last use is written at most once per
/// interval, and a crash loses at most one interval.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// How many tokens may have a noted use before the flusher is woken early (~100 bytes each).
pub const MAX_PENDING: usize = 65_536;

/// Last uses noted since the last write, by token id.
pub struct UsageRecorder {
    store: Arc<dyn Store>,
    /// The latest use of each token noted since the last write, with its registry (for the
    /// write), per thread ([`Striped`]): a request locks and writes only its own thread's
    /// map, so the lock's cache line does not move between cores at every request. A token
    /// used on several threads is in several maps; readers and the flush take the latest.
    pending: Striped<Mutex<HashMap<Uuid, TokenUse>>>,
    /// Entries in all the maps (a token in two maps counts twice): written only when a map
    /// gains a token, not at every use.
    entries: AtomicUsize,
    /// Wakes the flusher before its interval when `limit` entries are noted.
    full: Notify,
    limit: usize,
}

impl UsageRecorder {
    /// Nothing noted yet.
    pub fn new(store: Arc<dyn Store>) -> UsageRecorder {
        UsageRecorder::with_limit(store, MAX_PENDING)
    }

    /// Nothing noted yet; the flusher is woken early once `limit` entries are noted.
    pub fn with_limit(store: Arc<dyn Store>, limit: usize) -> UsageRecorder {
        UsageRecorder {
            store,
            pending: Striped::default(),
            entries: AtomicUsize::new(0),
            full: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(map: &Mutex<HashMap<Uuid, TokenUse>>) -> MutexGuard<'_, HashMap<Uuid, TokenUse>> {
        // Every critical section leaves the map consistent, so a poisoned one is still good.
        map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that `token` authenticated. Keeps the later use if one is already noted.
    pub fn record(&self, token: &Token, last_use: LastUse) {
        let mut pending = Self::lock(self.pending.mine());
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
                // Counted under the map's lock, so a flush that takes the entry subtracts it
                // only after it was added.
                let entries = self.entries.fetch_add(1, Ordering::Relaxed);
                drop(pending);
                if entries.saturating_add(1) >= self.limit {
                    self.full.notify_one();
                }
            }
        }
    }

    /// The use of token `id` noted but not yet written, if any.
    pub fn pending(&self, id: Uuid) -> Option<LastUse> {
        self.pending
            .iter()
            .filter_map(|map| Self::lock(map).get(&id).map(|u| u.last_use))
            .reduce(|a, b| if b.at > a.at { b } else { a })
    }

    /// `token` with its noted, not yet written use, if that is later than the stored one.
    pub fn overlay(&self, mut token: Token) -> Token {
        token.last_used = LastUse::latest(token.last_used, self.pending(token.id));
        token
    }

    /// Number of tokens with a use not yet written.
    pub fn pending_count(&self) -> usize {
        let mut ids = std::collections::HashSet::new();
        for map in self.pending.iter() {
            ids.extend(Self::lock(map).keys().copied());
        }
        ids.len()
    }

    /// Writes every noted use to the store. On failure the uses stay noted for the next
    /// attempt. Returns how many tokens were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let mut taken: HashMap<Uuid, TokenUse> = HashMap::new();
        for map in self.pending.iter() {
            let map = std::mem::take(&mut *Self::lock(map));
            self.entries.fetch_sub(map.len(), Ordering::Relaxed);
            for (id, u) in map {
                note_latest(&mut taken, id, u);
            }
        }
        if taken.is_empty() {
            return Ok(0);
        }
        let uses: Vec<TokenUse> = taken.into_values().collect();
        match self.store.record_uses(&uses).await {
            Ok(written) => Ok(written),
            Err(e) => {
                // Put them back, unless a later use was noted meanwhile.
                let mut pending = Self::lock(self.pending.mine());
                for u in uses {
                    let before = pending.len();
                    note_latest(&mut pending, u.id, u);
                    self.entries
                        .fetch_add(pending.len() - before, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// Notes `u` as token `id`'s use in `map` unless a later one is noted there.
fn note_latest(map: &mut HashMap<Uuid, TokenUse>, id: Uuid, u: TokenUse) {
    match map.entry(id) {
        std::collections::hash_map::Entry::Occupied(mut noted) => {
            if u.last_use.at > noted.get().last_use.at {
                noted.get_mut().last_use = u.last_use;
            }
        }
        std::collections::hash_map::Entry::Vacant(free) => {
            free.insert(u);
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

    /// Uses of one token noted on many threads (so in several of the per-thread maps) read
    /// as one token with the latest use, and are written once, with that use.
    #[tokio::test]
    async fn uses_noted_on_many_threads_are_one_token_with_the_latest_use() {
        let store = Arc::new(MemoryStore::new());
        let a = token("default", "bot-a");
        store.create(&a).await.unwrap();
        let r = UsageRecorder::with_limit(store.clone(), 1000);
        let threads = crate::stripes::STRIPES as i64 + 1;
        std::thread::scope(|s| {
            for m in 1..=threads {
                let (r, a) = (&r, &a);
                // The latest use on a thread in the middle, not the last one started.
                let minutes = if m == threads / 2 { 100 } else { m };
                s.spawn(move || r.record(a, use_at(minutes, GrantKind::Password)));
            }
        });
        assert_eq!(r.pending_count(), 1);
        assert_eq!(r.pending(a.id), Some(use_at(100, GrantKind::Password)));
        assert_eq!(r.flush().await.unwrap(), 1);
        assert_eq!(
            store.get("default", a.id).await.unwrap().unwrap().last_used,
            Some(use_at(100, GrantKind::Password))
        );
        assert_eq!(r.pending_count(), 0);
        assert_eq!(r.entries.load(Ordering::Relaxed), 0, "every entry taken");
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
