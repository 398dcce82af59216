//! Storage of registry activity ([`Event`]s), beside the token store and independent of it:
//! the [`ActivityStore`] trait and its in-memory and sled implementations (PostgreSQL's is in
//! `postgres/activity.rs`). Part of `store`: depends on `domain` and sled only.
//!
//! Contract (checked by [`conformance`] against every implementation):
//! - [`ActivityStore::record_events`] stores each `(registry, id)` once: a registry retrying
//!   an envelope adds nothing. It returns only once the batch is durable (sled flushed,
//!   PostgreSQL committed), so the 2xx that follows is a promise.
//! - [`ActivityStore::events`] answers newest first (time, then id, descending), with the
//!   number of matching events: exact up to [`count_limit`] matches (the page's end plus
//!   [`COUNT_AHEAD`]); a store may stop counting there and say so
//!   ([`EventPage::total_is_lower_bound`]), so that a broad filter over a million events
//!   costs a bounded count, not a scan of every match.
//! - [`ActivityStore::prune_events`] deletes a registry's events older than a time and beyond
//!   a count, oldest first.
//!
//! # sled layout
//!
//! Its own database (`<data_dir>/activity`), so that appending events never waits on the token
//! store's fsync and the token endpoint never waits on this one's.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `events` | registry `\0` time (µs, 8 bytes, sign flipped) event id | the event (postcard) |
//! | `event_ids` | registry `\0` event id | the `events` key |
//! | `events_by_actor` | registry `\0` actor `\0` time event id | the `events` key |
//! | `events_by_digest` | registry `\0` digest `\0` time event id | the `events` key |
//! | `event_counts` | registry `\0` (all its events), registry `\0` actor `\0` (an actor's) | the number of events (u64 big-endian) |
//!
//! A query by actor (a token's activity) reads that actor's index range only, one by digest
//! ("who pushed this?") that digest's (a database written before the digest index is
//! indexed once when opened). A query with no
//! filter besides the actor reads its `total` from `event_counts` and only the page's keys,
//! so its cost does not grow with the number of events (a key count over 1 000 000 events took
//! ~0.5 s, `benches/RESULTS.md`); one with `since` counts keys without decoding events outside
//! the page; any other filter decodes events until the page is full and [`count_limit`]
//! matches are counted. The counts change in the transaction that adds or removes an event; a database
//! written before them is counted once when opened.
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::StoreError;
use crate::domain::activity::{ActivityQuery, Event};

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Events matching the query in the registry (at least this many when
    /// `total_is_lower_bound`).
    pub total: usize,
    /// The store stopped counting at [`count_limit`] matches: there may be more.
    pub total_is_lower_bound: bool,
}

/// How many matches past the page's end a query counts at least (exactly, when there are
/// no more).
pub const COUNT_AHEAD: usize = 1000;

/// The number of matches after which a query of the page `offset`, `limit` may stop
/// counting: the page's end plus [`COUNT_AHEAD`].
pub fn count_limit(offset: usize, limit: usize) -> usize {
    offset.saturating_add(limit).saturating_add(COUNT_AHEAD)
}

impl EventPage {
    /// The page of `items` out of `matches` counted, of which the store stopped at `limit`
    /// ([`count_limit`]) when it reached it.
    pub(crate) fn counted(items: Vec<Event>, matches: usize, limit: usize) -> EventPage {
        EventPage {
            items,
            total: matches.min(limit),
            total_is_lower_bound: matches >= limit,
        }
    }
}

/// Where registry events are kept.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    /// Stores `events`, each `(registry, id)` once; returns how many were new. Durable when
    /// it returns.
    async fn record_events(&self, events: Vec<Event>) -> Result<usize, StoreError>;

    /// The events of `registry` matching `query`, newest first, `limit` from `offset`.
    async fn events(
        &self,
        registry: &str,
        query: &ActivityQuery,
        offset: usize,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// Deletes `registry`'s events older than `before`, then the oldest beyond the newest
    /// `keep`; returns how many it deleted.
    async fn prune_events(
        &self,
        registry: &str,
        before: DateTime<Utc>,
        keep: usize,
    ) -> Result<usize, StoreError>;
}

/// Newest first: time, then id, descending.
fn newest_first(a: &Event, b: &Event) -> std::cmp::Ordering {
    b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id))
}

/// Events in memory, for tests and the in-memory token store.
#[derive(Debug, Default)]
pub struct MemoryActivity {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    events: Vec<Event>,
    ids: HashSet<(String, String)>,
}

impl MemoryActivity {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::message("the activity lock is poisoned"))
    }
}

#[async_trait]
impl ActivityStore for MemoryActivity {
    async fn record_events(&self, events: Vec<Event>) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let mut added = 0;
        for e in events {
            if inner.ids.insert((e.registry.clone(), e.id.clone())) {
                inner.events.push(e);
                added += 1;
            }
        }
        Ok(added)
    }

    async fn events(
        &self,
        registry: &str,
        query: &ActivityQuery,
        offset: usize,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let inner = self.lock()?;
        let mut all: Vec<&Event> = inner
            .events
            .iter()
            .filter(|e| e.registry == registry && query.matches(e))
            .collect();
        all.sort_by(|a, b| newest_first(a, b));
        let matches = all.len();
        let items = all.into_iter().skip(offset).take(limit).cloned().collect();
        Ok(EventPage::counted(
            items,
            matches,
            count_limit(offset, limit),
        ))
    }

    async fn prune_events(
        &self,
        registry: &str,
        before: DateTime<Utc>,
        keep: usize,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let mut mine: Vec<Event> = Vec::new();
        let mut others: Vec<Event> = Vec::new();
        for e in std::mem::take(&mut inner.events) {
            if e.registry == registry {
                mine.push(e);
            } else {
                others.push(e);
            }
        }
        mine.sort_by(newest_first);
        let before_count = mine.len();
        mine.retain(|e| e.time >= before);
        mine.truncate(keep);
        let removed = before_count - mine.len();
        let kept: HashSet<(String, String)> = mine
            .iter()
            .map(|e| (e.registry.clone(), e.id.clone()))
            .collect();
        inner.ids.retain(|k| k.0 != registry || kept.contains(k));
        others.extend(mine);
        inner.events = others;
        Ok(removed)
    }
}

/// Events in their own sled database (see the module doc for the layout).
#[derive(Clone)]
pub struct SledActivity {
    db: sled::Db,
    events: sled::Tree,
    ids: sled::Tree,
    by_actor: sled::Tree,
    by_digest: sled::Tree,
    counts: sled::Tree,
}

/// The key in `event_counts` saying that the counts cover every event (absent in a database
/// written before the counts). Registry ids are slugs, so no count key starts with 0xff.
const COUNTED: &[u8] = b"\xffcounted";

/// The key in `event_counts` saying that `events_by_digest` covers every event (absent in a
/// database written before it).
const DIGESTS_INDEXED: &[u8] = b"\xffdigests";

impl std::fmt::Debug for SledActivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledActivity").finish_non_exhaustive()
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::backend("activity store (sled)", e)
}

/// The sign-flipped big-endian microseconds of `t`: byte order is time order.
fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

fn prefix(registry: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(registry.len() + 1);
    k.extend_from_slice(registry.as_bytes());
    k.push(0);
    k
}

/// `registry \0 actor \0`: the prefix of an actor's keys in `events_by_actor` (an actor has
/// no NUL: the parser refuses control characters).
fn actor_prefix(registry: &str, actor: &str) -> Vec<u8> {
    let mut k = prefix(registry);
    k.extend_from_slice(actor.as_bytes());
    k.push(0);
    k
}

/// The `events_by_actor` key of `e`: its actor's prefix, time and id.
fn actor_key(e: &Event) -> Vec<u8> {
    let mut k = actor_prefix(&e.registry, &e.actor);
    k.extend_from_slice(&time_key(e.time));
    k.extend_from_slice(e.id.as_bytes());
    k
}

/// `registry \0 digest \0`: the prefix of a digest's keys in `events_by_digest` (a digest
/// is `algorithm:hex`, validated when parsed).
fn digest_prefix(registry: &str, digest: &str) -> Vec<u8> {
    let mut k = prefix(registry);
    k.extend_from_slice(digest.as_bytes());
    k.push(0);
    k
}

/// The `events_by_digest` key of `e`, if it has a digest.
fn digest_key(e: &Event) -> Option<Vec<u8>> {
    let d = e.digest.as_deref()?;
    let mut k = digest_prefix(&e.registry, d);
    k.extend_from_slice(&time_key(e.time));
    k.extend_from_slice(e.id.as_bytes());
    Some(k)
}

/// Just past every key that starts with `prefix` (which ends in NUL).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    end
}

fn read_count(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Adds `delta` to each count in `keys`, inside a transaction.
fn add_counts(
    counts: &sled::transaction::TransactionalTree,
    keys: &[Vec<u8>],
    delta: i64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    for key in keys {
        let n = counts.get(key)?.map_or(0, |b| read_count(&b));
        let next = n.saturating_add_signed(delta);
        if next == 0 {
            counts.remove(key.as_slice())?;
        } else {
            counts.insert(key.as_slice(), &next.to_be_bytes()[..])?;
        }
    }
    Ok(())
}

fn decode(bytes: &[u8]) -> Result<Event, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::backend("a stored event is corrupt", e))
}

impl SledActivity {
    /// Opens (or creates) the activity database in `dir`.
    pub fn open(dir: &Path) -> Result<SledActivity, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(|e| super::sled::open_error(dir, e))?;
        let store = SledActivity {
            events: db.open_tree("events").map_err(backend)?,
            ids: db.open_tree("event_ids").map_err(backend)?,
            by_actor: db.open_tree("events_by_actor").map_err(backend)?,
            by_digest: db.open_tree("events_by_digest").map_err(backend)?,
            counts: db.open_tree("event_counts").map_err(backend)?,
            db,
        };
        let count = store.counts.get(COUNTED).map_err(backend)?.is_none();
        let index = store
            .counts
            .get(DIGESTS_INDEXED)
            .map_err(backend)?
            .is_none();
        if count || index {
            store.upgrade(count, index)?;
        }
        Ok(store)
    }

    /// Brings a database written by an older version up to date, in one pass over its events
    /// (nothing else writes while it opens): counts every event when `count` (written before
    /// `event_counts`), indexes every digest when `index` (written before `events_by_digest`),
    /// and marks what it did as complete. A database older than both is read once, not twice.
    /// Redone in full if interrupted: both write what a full pass finds.
    fn upgrade(&self, count: bool, index: bool) -> Result<(), StoreError> {
        let mut counts: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
        let mut digests = sled::Batch::default();
        for entry in self.events.iter() {
            let (key, value) = entry.map_err(backend)?;
            let e = decode(&value)?;
            if count {
                *counts.entry(prefix(&e.registry)).or_default() += 1;
                *counts
                    .entry(actor_prefix(&e.registry, &e.actor))
                    .or_default() += 1;
            }
            if index {
                if let Some(k) = digest_key(&e) {
                    digests.insert(k, key);
                }
            }
        }
        if index {
            self.by_digest.apply_batch(digests).map_err(backend)?;
        }
        let mut marks = sled::Batch::default();
        for (key, n) in counts {
            marks.insert(key, &n.to_be_bytes()[..]);
        }
        if count {
            marks.insert(COUNTED, &[][..]);
        }
        if index {
            marks.insert(DIGESTS_INDEXED, &[][..]);
        }
        self.counts.apply_batch(marks).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    /// The event behind `value`, an entry of the tree a query reads: the event itself, or
    /// (`indexed`: by actor or digest) its key in `events`; `None` when pruned meanwhile.
    fn event_of(&self, indexed: bool, value: sled::IVec) -> Result<Option<Event>, StoreError> {
        let bytes = if indexed {
            match self.events.get(&value).map_err(backend)? {
                Some(v) => v,
                None => return Ok(None),
            }
        } else {
            value
        };
        decode(&bytes).map(Some)
    }

    /// The number of events under `key` (a registry's or an actor's prefix).
    fn count(&self, key: &[u8]) -> Result<usize, StoreError> {
        match self.counts.get(key).map_err(backend)? {
            Some(bytes) => Ok(read_count(&bytes) as usize),
            None => Ok(0),
        }
    }

    /// The webhooks' outbox that earlier builds kept in this database (tree `outbox`); the
    /// outbox is now the token store's, and `server::open` moves what is left here into it.
    pub fn outbox(&self) -> Result<super::outbox::SledOutbox, StoreError> {
        super::outbox::SledOutbox::open(&self.db)
    }

    fn record(&self, events: &[Event]) -> Result<usize, StoreError> {
        // Keys and values first, outside the transaction (it may run more than once).
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            if e.registry.contains('\0') {
                return Err(StoreError::message("a registry id contains NUL"));
            }
            if e.actor.contains('\0') {
                return Err(StoreError::message("an actor name contains NUL"));
            }
            let mut id_key = prefix(&e.registry);
            id_key.extend_from_slice(e.id.as_bytes());
            let mut key = prefix(&e.registry);
            key.extend_from_slice(&time_key(e.time));
            key.extend_from_slice(e.id.as_bytes());
            let value = postcard::to_stdvec(e)
                .map_err(|err| StoreError::backend("cannot encode an event", err))?;
            let counted = [prefix(&e.registry), actor_prefix(&e.registry, &e.actor)];
            rows.push((id_key, key, actor_key(e), digest_key(e), value, counted));
        }
        // One transaction for the envelope (a transaction per event cost most of the
        // ingestion time, benches/RESULTS.md); an id repeated within it is stored once, as
        // the transaction reads its own writes.
        let trees = (
            &self.events,
            &self.ids,
            &self.by_actor,
            &self.by_digest,
            &self.counts,
        );
        let added = trees
            .transaction(|(events, ids, actors, digests, counts)| {
                let mut added = 0;
                let mut deltas: std::collections::BTreeMap<&[u8], i64> = Default::default();
                for (id_key, key, by_actor, by_digest, value, counted) in &rows {
                    if ids.get(id_key)?.is_some() {
                        continue;
                    }
                    ids.insert(id_key.as_slice(), key.as_slice())?;
                    events.insert(key.as_slice(), value.as_slice())?;
                    actors.insert(by_actor.as_slice(), key.as_slice())?;
                    if let Some(d) = by_digest {
                        digests.insert(d.as_slice(), key.as_slice())?;
                    }
                    for c in counted {
                        *deltas.entry(c.as_slice()).or_default() += 1;
                    }
                    added += 1;
                }
                for (key, delta) in deltas {
                    add_counts(counts, &[key.to_vec()], delta)?;
                }
                Ok::<usize, ConflictableTransactionError<StoreError>>(added)
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => backend(e),
            })?;
        self.db.flush().map_err(backend)?;
        Ok(added)
    }

    fn query(
        &self,
        registry: &str,
        query: &ActivityQuery,
        offset: usize,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        // An actor's events come from its index, a digest's from its; the others from the
        // registry's time order.
        let (tree, start, indexed) = match (&query.actor, &query.digest) {
            (Some(actor), _) => (&self.by_actor, actor_prefix(registry, actor), true),
            (None, Some(digest)) => (&self.by_digest, digest_prefix(registry, digest), true),
            (None, None) => (&self.events, prefix(registry), false),
        };
        let end = prefix_end(&start);
        let mut from = start;
        if let Some(since) = query.since {
            from.extend_from_slice(&time_key(since));
        }
        // Whether the range read holds exactly the matches (no event needs decoding to know).
        let only_range = query.repository.is_none()
            && query.tag.is_none()
            && query.action.is_none()
            && (query.digest.is_none() || query.actor.is_none());
        if only_range && query.since.is_none() && query.digest.is_none() {
            // Every event of the registry (or of the actor): counted in `event_counts`.
            let total = self.count(&from)?;
            let mut items = Vec::with_capacity(limit.min(total));
            for entry in tree.range(from..end).rev().skip(offset) {
                if items.len() >= limit {
                    break;
                }
                let (_, value) = entry.map_err(backend)?;
                if let Some(e) = self.event_of(indexed, value)? {
                    items.push(e);
                }
            }
            return Ok(EventPage {
                items,
                total,
                total_is_lower_bound: false,
            });
        }
        let stop = count_limit(offset, limit);
        let mut items = Vec::new();
        let mut total = 0;
        for entry in tree.range(from..end).rev() {
            if total >= stop {
                break;
            }
            let (_, value) = entry.map_err(backend)?;
            let in_page = total >= offset && items.len() < limit;
            if only_range && !in_page {
                // Counted without reading the event.
                total += 1;
                continue;
            }
            let Some(e) = self.event_of(indexed, value)? else {
                continue;
            };
            if !query.matches(&e) {
                continue;
            }
            if in_page {
                items.push(e);
            }
            total += 1;
        }
        Ok(EventPage::counted(items, total, stop))
    }

    fn prune(
        &self,
        registry: &str,
        before: DateTime<Utc>,
        keep: usize,
    ) -> Result<usize, StoreError> {
        let p = prefix(registry);
        let mut old: Vec<sled::IVec> = Vec::new();
        let mut kept = 0usize;
        let mut old_values: Vec<sled::IVec> = Vec::new();
        for entry in self.events.scan_prefix(&p).rev() {
            let (key, value) = entry.map_err(backend)?;
            let recent = key.len() >= p.len() + 8 && {
                let mut t = [0u8; 8];
                t.copy_from_slice(&key[p.len()..p.len() + 8]);
                t >= time_key(before)
            };
            if recent && kept < keep {
                kept += 1;
            } else {
                old.push(key);
                old_values.push(value);
            }
        }
        for (key, value) in old.iter().zip(&old_values) {
            let mut id_key = p.clone();
            id_key.extend_from_slice(key.get(p.len() + 8..).unwrap_or_default());
            let e = decode(value).ok();
            let counted = e
                .as_ref()
                .map(|e| [p.clone(), actor_prefix(registry, &e.actor)]);
            // One transaction per event: the event, its index entries and its counts go
            // together.
            let trees = (
                &self.events,
                &self.ids,
                &self.by_actor,
                &self.by_digest,
                &self.counts,
            );
            trees
                .transaction(|(events, ids, actors, digests, counts)| {
                    if events.remove(key)?.is_none() {
                        return Ok(());
                    }
                    ids.remove(id_key.as_slice())?;
                    if let (Some(e), Some(counted)) = (&e, &counted) {
                        actors.remove(actor_key(e))?;
                        if let Some(d) = digest_key(e) {
                            digests.remove(d)?;
                        }
                        add_counts(counts, counted, -1)?;
                    }
                    Ok::<(), ConflictableTransactionError<StoreError>>(())
                })
                .map_err(|e| match e {
                    TransactionError::Abort(e) => e,
                    TransactionError::Storage(e) => backend(e),
                })?;
        }
        if !old.is_empty() {
            self.db.flush().map_err(backend)?;
        }
        Ok(old.len())
    }
}

/// Runs `f` on a blocking thread (sled writes fsync); the outbox's sled calls too.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        StoreError::backend("a task of the activity database (events, outbox) failed", e)
    })?
}

#[async_trait]
impl ActivityStore for SledActivity {
    async fn record_events(&self, events: Vec<Event>) -> Result<usize, StoreError> {
        let me = self.clone();
        blocking(move || me.record(&events)).await
    }

    async fn events(
        &self,
        registry: &str,
        query: &ActivityQuery,
        offset: usize,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let me = self.clone();
        let (registry, query) = (registry.to_string(), query.clone());
        blocking(move || me.query(&registry, &query, offset, limit)).await
    }

    async fn prune_events(
        &self,
        registry: &str,
        before: DateTime<Utc>,
        keep: usize,
    ) -> Result<usize, StoreError> {
        let me = self.clone();
        let registry = registry.to_string();
        blocking(move || me.prune(&registry, before, keep)).await
    }
}

/// The contract every [`ActivityStore`] keeps; each implementation's tests run these.
#[cfg(test)]
pub(crate) mod conformance {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::activity::EventAction;

    pub(crate) fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-01T12:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    pub(crate) fn event(registry: &str, id: &str, seconds: i64, actor: &str) -> Event {
        Event {
            id: id.into(),
            registry: registry.into(),
            time: t0() + TimeDelta::seconds(seconds),
            action: EventAction::Push,
            repository: "team/app".into(),
            tag: Some("v1".into()),
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            size: Some(1234),
            actor: actor.into(),
            client_addr: Some("127.0.0.1:4000".into()),
            user_agent: Some("docker/27".into()),
            instance: Some("i-1".into()),
        }
    }

    pub(crate) fn ids(p: &EventPage) -> Vec<&str> {
        p.items.iter().map(|e| e.id.as_str()).collect()
    }

    /// Every field round-trips; a repeated id is stored once (also within one batch); the
    /// same id in another registry is another event.
    pub(crate) async fn stores_each_id_once(s: &dyn ActivityStore) {
        let e = event("default", "a", 0, "ci-bot");
        assert_eq!(
            s.record_events(vec![e.clone(), e.clone()]).await.unwrap(),
            1
        );
        assert_eq!(s.record_events(vec![e.clone()]).await.unwrap(), 0);
        assert_eq!(
            s.record_events(vec![event("other", "a", 0, "x")])
                .await
                .unwrap(),
            1
        );
        let page = s
            .events("default", &ActivityQuery::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(page.total, 1);
        assert_eq!(page.items, vec![e]);
    }

    /// Newest first, paged, every filter narrows and `total` counts the matches.
    pub(crate) async fn answers_newest_first_with_filters(s: &dyn ActivityStore) {
        let mut batch = Vec::new();
        for i in 0..5 {
            let mut e = event(
                "default",
                &format!("e{i}"),
                i,
                if i % 2 == 0 { "ci-bot" } else { "dev" },
            );
            if i == 3 {
                e.action = EventAction::Pull;
                e.repository = "other/app".into();
                e.tag = Some("v2".into());
                e.digest = Some(format!("sha256:{}", "cd".repeat(32)));
            }
            batch.push(e);
        }
        s.record_events(batch).await.unwrap();
        let all = ActivityQuery::default();
        let p = s.events("default", &all, 0, 10).await.unwrap();
        assert_eq!(ids(&p), ["e4", "e3", "e2", "e1", "e0"]);
        let p = s.events("default", &all, 1, 2).await.unwrap();
        assert_eq!((ids(&p), p.total), (vec!["e3", "e2"], 5));
        let p = s.events("default", &all, 9, 2).await.unwrap();
        assert_eq!((p.items.len(), p.total), (0, 5));
        let q = |f: fn(&mut ActivityQuery)| {
            let mut q = ActivityQuery::default();
            f(&mut q);
            q
        };
        let check = |q: ActivityQuery, want: &'static [&'static str]| async move {
            let p = s.events("default", &q, 0, 10).await.unwrap();
            assert_eq!(ids(&p), want, "{q:?}");
            assert_eq!(p.total, want.len());
        };
        check(q(|q| q.actor = Some("ci-bot".into())), &["e4", "e2", "e0"]).await;
        check(q(|q| q.action = Some(EventAction::Pull)), &["e3"]).await;
        check(
            q(|q| q.repository = Some("other/*".parse().unwrap())),
            &["e3"],
        )
        .await;
        check(
            q(|q| q.repository = Some("team/ap?".parse().unwrap())),
            &["e4", "e2", "e1", "e0"],
        )
        .await;
        check(q(|q| q.tag = Some("v2".into())), &["e3"]).await;
        check(
            q(|q| q.digest = Some(format!("sha256:{}", "cd".repeat(32)))),
            &["e3"],
        )
        .await;
        check(
            q(|q| q.since = Some(t0() + TimeDelta::seconds(3))),
            &["e4", "e3"],
        )
        .await;
        let p = s.events("nowhere", &all, 0, 10).await.unwrap();
        assert_eq!(p.total, 0);
    }

    /// A filtered query counts its matches up to [`count_limit`] and then may stop, saying
    /// so; a page past that limit is still found, and a small match count is exact.
    pub(crate) async fn counts_a_bounded_number_of_matches(s: &dyn ActivityStore) {
        let n = COUNT_AHEAD + 100;
        let batch = (0..n)
            .map(|i| event("default", &format!("m{i:05}"), i as i64, "ci-bot"))
            .collect();
        assert_eq!(s.record_events(batch).await.unwrap(), n);
        let digest = format!("sha256:{}", "ab".repeat(32));
        let newest = |k: usize| format!("m{:05}", n - 1 - k);
        let filters = [
            ActivityQuery {
                repository: Some("team/*".parse().unwrap()),
                ..ActivityQuery::default()
            },
            ActivityQuery {
                digest: Some(digest.clone()),
                ..ActivityQuery::default()
            },
            ActivityQuery {
                since: Some(t0()),
                ..ActivityQuery::default()
            },
            ActivityQuery {
                actor: Some("ci-bot".into()),
                action: Some(EventAction::Push),
                ..ActivityQuery::default()
            },
        ];
        for q in &filters {
            let p = s.events("default", q, 0, 50).await.unwrap();
            assert_eq!(p.items.len(), 50, "{q:?}");
            assert_eq!(p.items[0].id, newest(0), "{q:?}");
            assert_eq!(p.items[49].id, newest(49), "{q:?}");
            assert_eq!(
                (p.total, p.total_is_lower_bound),
                (count_limit(0, 50), true),
                "{q:?}: counted up to the limit"
            );
            // Past the limit of the first page: found, and counted to the end.
            let p = s.events("default", q, 1040, 50).await.unwrap();
            assert_eq!(p.items.len(), 50, "{q:?}");
            assert_eq!(p.items[0].id, newest(1040), "{q:?}");
            assert_eq!((p.total, p.total_is_lower_bound), (n, false), "{q:?}");
        }
        // Unfiltered: exact, or bounded as above.
        let p = s
            .events("default", &ActivityQuery::default(), 0, 50)
            .await
            .unwrap();
        if p.total_is_lower_bound {
            assert_eq!(p.total, count_limit(0, 50));
        } else {
            assert_eq!(p.total, n);
        }
        let none = ActivityQuery {
            action: Some(EventAction::Pull),
            ..ActivityQuery::default()
        };
        let p = s.events("default", &none, 0, 50).await.unwrap();
        assert_eq!(
            (p.items.len(), p.total, p.total_is_lower_bound),
            (0, 0, false)
        );
        let other = ActivityQuery {
            digest: Some(format!("sha256:{}", "cd".repeat(32))),
            ..ActivityQuery::default()
        };
        assert_eq!(s.events("default", &other, 0, 50).await.unwrap().total, 0);
    }

    /// Pruning removes the old and the excess, oldest first, and only in one registry; a
    /// pruned id may be stored again.
    pub(crate) async fn prunes_oldest_first(s: &dyn ActivityStore) {
        let batch = (0..6)
            .map(|i| event("default", &format!("p{i}"), i, "a"))
            .collect();
        s.record_events(batch).await.unwrap();
        s.record_events(vec![event("other", "o", -100, "a")])
            .await
            .unwrap();
        let all = ActivityQuery::default();
        let removed = s
            .prune_events("default", t0() + TimeDelta::seconds(1), 1000)
            .await
            .unwrap();
        assert_eq!(removed, 1);
        let removed = s.prune_events("default", t0(), 3).await.unwrap();
        assert_eq!(removed, 2);
        let p = s.events("default", &all, 0, 10).await.unwrap();
        assert_eq!(ids(&p), ["p5", "p4", "p3"]);
        // The indexes are pruned alike.
        let by_actor = ActivityQuery {
            actor: Some("a".into()),
            ..ActivityQuery::default()
        };
        let by_digest = ActivityQuery {
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
            ..ActivityQuery::default()
        };
        for q in [by_actor, by_digest] {
            let p = s.events("default", &q, 0, 10).await.unwrap();
            assert_eq!((ids(&p), p.total), (vec!["p5", "p4", "p3"], 3), "{q:?}");
        }
        assert_eq!(s.events("other", &all, 0, 10).await.unwrap().total, 1);
        assert_eq!(
            s.record_events(vec![event("default", "p0", 0, "a")])
                .await
                .unwrap(),
            1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::conformance::*;
    use super::*;

    #[tokio::test]
    async fn memory_keeps_the_contract() {
        stores_each_id_once(&MemoryActivity::default()).await;
        answers_newest_first_with_filters(&MemoryActivity::default()).await;
        prunes_oldest_first(&MemoryActivity::default()).await;
        counts_a_bounded_number_of_matches(&MemoryActivity::default()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        stores_each_id_once(&SledActivity::open(&dir.path().join("a")).unwrap()).await;
        answers_newest_first_with_filters(&SledActivity::open(&dir.path().join("b")).unwrap())
            .await;
        prunes_oldest_first(&SledActivity::open(&dir.path().join("c")).unwrap()).await;
        counts_a_bounded_number_of_matches(&SledActivity::open(&dir.path().join("d")).unwrap())
            .await;
    }

    /// A second opener of the activity store is told, as for the token store, that another
    /// regauth holds it, with its directory; not sled's `WouldBlock`.
    #[test]
    fn a_held_activity_store_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledActivity::open(dir.path()).unwrap();
        let msg = SledActivity::open(dir.path()).unwrap_err().to_string();
        assert!(msg.contains(crate::store::sled::HELD), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            !msg.contains("WouldBlock") && !msg.contains("could not acquire lock"),
            "{msg}"
        );
    }

    /// A database written before `events_by_digest` is indexed once when opened; a digest
    /// query then reads the index (an event missing from it is not found).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_indexes_the_digests_of_a_database_written_before_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let digest = |c: &str| format!("sha256:{}", c.repeat(32));
        {
            let s = SledActivity::open(dir.path()).unwrap();
            let mut other = event("default", "b", 1, "x");
            other.digest = Some(digest("cd"));
            let mut none = event("default", "c", 2, "x");
            none.digest = None;
            s.record_events(vec![event("default", "a", 0, "x"), other, none])
                .await
                .unwrap();
            // What the previous version left: no digest index.
            s.by_digest.clear().unwrap();
            s.counts.remove(DIGESTS_INDEXED).unwrap();
            s.db.flush().unwrap();
        }
        let s = crate::testing::reopen_sled(|| SledActivity::open(dir.path()));
        let by = |d: String| {
            let q = ActivityQuery {
                digest: Some(d),
                ..ActivityQuery::default()
            };
            let s = s.clone();
            async move { s.events("default", &q, 0, 10).await.unwrap() }
        };
        assert_eq!(ids(&by(digest("ab")).await), ["a"]);
        assert_eq!(ids(&by(digest("cd")).await), ["b"]);
        assert_eq!(s.by_digest.len(), 2);
        s.by_digest.clear().unwrap();
        assert!(
            by(digest("ab")).await.items.is_empty(),
            "read from the index"
        );
    }

    /// Issue 19: a database written before `event_counts` is counted when opened, and the
    /// counts then follow every write; a page's total is read, not counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_counts_a_database_written_before_the_counts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledActivity::open(dir.path()).unwrap();
            let batch = (0..5)
                .map(|i| {
                    event(
                        "default",
                        &format!("e{i}"),
                        i,
                        if i < 2 { "x" } else { "y" },
                    )
                })
                .collect();
            s.record_events(batch).await.unwrap();
            s.record_events(vec![event("other", "o", 0, "x")])
                .await
                .unwrap();
            // What a version before both the counts and the digest index left: neither
            // (both are made in one pass over the events).
            s.counts.clear().unwrap();
            s.by_digest.clear().unwrap();
            s.db.flush().unwrap();
        }
        let s = crate::testing::reopen_sled(|| SledActivity::open(dir.path()));
        assert_eq!(s.by_digest.len(), 6, "every event's digest indexed");
        assert!(s.counts.get(DIGESTS_INDEXED).unwrap().is_some());
        let total = |actor: Option<&str>| {
            let q = ActivityQuery {
                actor: actor.map(str::to_string),
                ..ActivityQuery::default()
            };
            let s = s.clone();
            async move { s.events("default", &q, 0, 2).await.unwrap() }
        };
        let page = total(None).await;
        assert_eq!((ids(&page), page.total), (vec!["e4", "e3"], 5));
        assert_eq!(total(Some("x")).await.total, 2);
        assert_eq!(total(Some("y")).await.total, 3);
        s.record_events(vec![event("default", "e5", 5, "x")])
            .await
            .unwrap();
        assert_eq!(
            (total(None).await.total, total(Some("x")).await.total),
            (6, 3)
        );
        // The count is what is read: a changed count shows (the events are not counted).
        s.counts
            .insert(prefix("default"), &41u64.to_be_bytes()[..])
            .unwrap();
        assert_eq!(total(None).await.total, 41);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_events_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledActivity::open(dir.path()).unwrap();
            s.record_events(vec![event("default", "a", 0, "x")])
                .await
                .unwrap();
        }
        let s = crate::testing::reopen_sled(|| SledActivity::open(dir.path()));
        assert_eq!(
            s.record_events(vec![event("default", "a", 0, "x")])
                .await
                .unwrap(),
            0,
            "the id is still known after a reopen"
        );
        let p = s
            .events("default", &ActivityQuery::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(p.total, 1);
    }
}
