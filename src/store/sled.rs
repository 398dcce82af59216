//! The embedded default store, on sled. Part of `store`: depends on `domain` (and sled)
//! only; nothing outside `store` sees a sled type.
//!
//! # Layout
//!
//! One sled database (under `data_dir`) with these trees. `name key` below means the bytes
//! `registry \0 name` (registry ids are slugs and names are `a-z 0-9 -`, so neither contains
//! NUL and the key splits unambiguously).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `tokens` | name key | the token's record (`record.rs`: a format byte, then postcard) |
//! | `id_buckets` | a bucket of token ids (2 bytes, `id_bucket.rs`) | each id's name key (`id_bucket.rs`) |
//! | `expiry` | expiry unix millis (8 bytes, see below) ++ token id (16) | name key |
//! | `counts` | registry id | number of tokens in it (u64 big-endian) |
//! | `refresh` | SHA-256 of the refresh secret (32) | the grant's record (`record.rs`) |
//! | `refresh_by_token` | token id (16) ++ created unix millis (8) ++ hash (32) | empty |
//! | `last_uses` | token id (16) | the token's last use (`record.rs`: 13 to 28 bytes) |
//!
//! Millisecond keys are the `i64` with its sign bit flipped, big-endian, so byte order is
//! numeric order also before 1970.
//!
//! Why this shape:
//! - `find_by_name` (the token endpoint's hot path) is exactly one `get` on `tokens`, or a hit
//!   in the cache of decoded tokens in front of it (`cache.rs`; bounded, invalidated by every
//!   write, see there).
//! - `list` is a prefix scan of `registry \0` in `tokens`, already sorted by name; `total`
//!   comes from `counts`, so it does not scan the registry.
//! - `delete_expired(now)` scans `expiry` up to `now` only, never the token tree.
//! - `refresh_by_token` keeps each token's grants oldest first, for the cap and for deletion.
//! - Last uses, written in the background for up to 65 536 tokens a minute, live in
//!   `last_uses`, a tree of small entries: rewriting whole token records for them grew sled's
//!   in-memory page state by ~60 MB at 1 000 000 tokens (`benches/RESULTS.md`). A token read
//!   shows the later of its record's last use (stores written before this tree, and updates
//!   carrying a use) and its `last_uses` entry, so older stores keep their last uses without
//!   a migration.
//! - The index by id keeps about 15 ids in each entry at 1 000 000 tokens (`id_bucket.rs`):
//!   one entry per id cost 22–25 MB of sled's per-page state (`benches/RESULTS.md`), for
//!   reads that only the admin API makes. A store written before it (tree `ids`, one entry
//!   per id) is moved into buckets when it is opened ([`reindex`]).
//! - No in-memory index: memory is sled's page cache (bounded by `cache_bytes`) and the token
//!   cache (bounded by bytes), so RSS stays flat with millions of tokens.
//!
//! # Writes
//!
//! Every write touching more than one tree is one sled transaction, so tokens and indexes
//! change together; uniqueness of name and id is checked inside it, so exactly one of several
//! racing creates of one name wins. sled serialises transactions, but cannot range-scan
//! inside one: writes that need a scan of `refresh_by_token` (delete, expiry, add_refresh,
//! an update that disables) scan and commit under [`SledStore`]'s grant lock, so no grant is
//! added to a token between the scan and the commit. sled holds an exclusive lock on its directory, so this process
//! is the only writer. After the commit, `Db::flush` makes the write durable before the
//! method returns.
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use sled::transaction::{
    abort, ConflictableTransactionResult, TransactionError, Transactional, TransactionalTree,
};
use sled::{IVec, Tree};
use uuid::Uuid;

use super::cache::{self, TokenCache};
use super::id_bucket::{self, Malformed};
use super::outbox::{Outbox, SledOutbox, OUTBOX_TREE};
use super::{record, Page, RefreshGrant, Report, Store, StoreError, TokenUse, TokenWrite};
use crate::domain::webhook::Delivery;
use crate::domain::{Admin, LastUse, SecretHash, Status, Token};

/// Default page cache. A lookup that misses it reads and decodes a whole leaf (up to 16
/// tokens) on the async worker, which costs more CPU than the JWT signature and, when the OS
/// has dropped the file from its page cache, a disk read that stalls the worker. With 10 000
/// active tokens among 1 000 000 (load benchmark), lookups did 1.05 `pread`s each at 32 MiB,
/// 0.40 at 64 MiB, none at 128 MiB, for an RSS of 129 / 144 / 152 MB: most of the RSS is
/// sled's per-page metadata (~77 MB at 1 000 000 tokens before any lookup), not this cache.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Default size of the cache of decoded tokens in front of sled (`cache.rs`).
pub const DEFAULT_TOKEN_CACHE_BYTES: u64 = cache::DEFAULT_CACHE_BYTES;

/// Last uses written per sled batch by the last-use writer (see `Engine::record_uses`).
const USES_PER_BATCH: usize = 256;

/// The index by id: buckets of ids (`id_bucket.rs`).
const ID_INDEX_TREE: &str = "id_buckets";
/// The index by id of stores written before [`ID_INDEX_TREE`]: one entry per id.
const OLD_ID_TREE: &str = "ids";
/// Passes over the old index while [`reindex`] moves it, each writing a sixteenth of the
/// buckets: what one pass holds in memory is about 4 MB at 1 000 000 tokens.
const REINDEX_PASSES: u8 = 16;

const ID_LEN: usize = 16;
const MILLIS_LEN: usize = 8;
const HASH_LEN: usize = 32;

/// Tokens and refresh grants in a sled database. Cheap to clone (one `Arc`): a write moves a
/// clone onto a blocking thread.
#[derive(Clone)]
pub struct SledStore {
    engine: Arc<Engine>,
    /// The webhooks' outbox: tree `outbox` of this database, written by [`Store::write`].
    outbox: Arc<SledOutbox>,
}

/// The trees, the grant lock and the token cache; its methods are the synchronous store.
struct Engine {
    db: sled::Db,
    tokens: Tree,
    /// The index by id (`id_bucket.rs`).
    ids: Tree,
    expiry: Tree,
    counts: Tree,
    refresh: Tree,
    refresh_by_token: Tree,
    /// Last uses by token id (see the module doc).
    last_uses: Tree,
    /// Named admins by name, JSON (`domain::Admin`).
    admins: Tree,
    /// Webhook deliveries by id (`store::outbox::SledOutbox` reads and updates them).
    outbox: Tree,
    /// Held across "scan `refresh_by_token`, then commit" (see the module doc).
    grant_lock: Mutex<()>,
    /// Held by every write that removes a token, from its transaction until its cache entry
    /// is dropped, and by the last-use writer from its checks until its batch is applied: so
    /// no token is removed between the writer finding it and writing its use.
    removal_lock: Mutex<()>,
    /// Decoded tokens by name key, for `find_by_name` (see `cache.rs` for coherence).
    hot: TokenCache,
    /// How many ids [`reindex`] moved into buckets when this store was opened, if it did.
    reindexed: Option<usize>,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the database in `dir` with the default cache sizes.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with_caches(dir, DEFAULT_CACHE_BYTES, DEFAULT_TOKEN_CACHE_BYTES)
    }

    /// Opens (or creates) the database in `dir` with a sled page cache of `cache_bytes` and a
    /// cache of decoded tokens of about `token_cache_bytes` (0: none, every lookup reads sled).
    pub fn open_with_caches(
        dir: &Path,
        cache_bytes: u64,
        token_cache_bytes: u64,
    ) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| open_error(dir, e))?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let ids = tree(ID_INDEX_TREE)?;
        let reindexed = reindex(&db, &ids)?;
        let engine = Engine {
            tokens: tree("tokens")?,
            ids,
            expiry: tree("expiry")?,
            counts: tree("counts")?,
            refresh: tree("refresh")?,
            refresh_by_token: tree("refresh_by_token")?,
            last_uses: tree("last_uses")?,
            admins: tree("admins")?,
            outbox: tree(OUTBOX_TREE)?,
            grant_lock: Mutex::new(()),
            removal_lock: Mutex::new(()),
            hot: TokenCache::new(token_cache_bytes),
            reindexed,
            db,
        };
        let outbox = Arc::new(SledOutbox::open(&engine.db)?);
        Ok(SledStore {
            engine: Arc::new(engine),
            outbox,
        })
    }

    /// How many token ids opening this store moved from the index of an older version (tree
    /// `ids`, one entry per id) into buckets; `None` when there was no such index.
    pub fn reindexed(&self) -> Option<usize> {
        self.engine.reindexed
    }

    /// The sled database, for `compact.rs`.
    pub(super) fn db(&self) -> &sled::Db {
        &self.engine.db
    }

    /// Names (and known-absent names) in the cache of decoded tokens.
    #[cfg(test)]
    pub(crate) fn cached_tokens(&self) -> usize {
        self.engine.hot.len()
    }

    /// Makes every write so far durable. Each [`Store`] write calls it before returning; bulk
    /// loads that use [`SledStore::create_unflushed`] call it once per batch.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.engine.flush()
    }

    /// [`Store::create`] without the flush: the same checks and the same transaction, visible at
    /// once but durable only after the next [`SledStore::flush`]. For bulk seeding (the load
    /// benchmark's `regauth-seed`), where a flush per token would be a million fsyncs; the
    /// server never calls it.
    pub fn create_unflushed(&self, token: &Token) -> Result<(), StoreError> {
        self.engine.create_unflushed(token)
    }

    /// Hands every token to `f`, in batches of at most `batch`, in key order; returns how many
    /// there were. For `regauth store migrate` (a stopped server's store).
    pub fn for_each_token_batch(
        &self,
        batch: usize,
        f: impl FnMut(Vec<Token>) -> Result<(), StoreError>,
    ) -> Result<usize, StoreError> {
        self.engine.for_each_token_batch(batch, f)
    }

    /// Every refresh grant (for `regauth store migrate`).
    pub fn all_grants(&self) -> Result<Vec<RefreshGrant>, StoreError> {
        self.engine.all_grants()
    }

    /// Runs the write `f` on the engine on a blocking thread: it commits and fsyncs.
    async fn on_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| StoreError::backend("a sled write task failed", e))?
    }
}

impl Engine {
    /// Makes every write so far durable. Each [`Store`] write calls it before returning; bulk
    /// loads that use [`SledStore::create_unflushed`] call it once per batch.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(backend)
    }

    /// [`Store::create`] without the flush: the same checks and the same transaction, visible at
    /// once but durable only after the next [`SledStore::flush`]. For bulk seeding (the load
    /// benchmark's `regauth-seed`), where a flush per token would be a million fsyncs; the
    /// server never calls it.
    pub fn create_unflushed(&self, token: &Token) -> Result<(), StoreError> {
        self.create_with(token, &[])
    }

    /// The create transaction, with the deliveries `outbox` reporting it; not flushed.
    fn create_with(&self, token: &Token, outbox: &[Encoded]) -> Result<(), StoreError> {
        check_registry(&token.registry)?;
        let key = name_key(&token.registry, token.name.as_str());
        let value = encode(token)?;
        let expiry = token.expiry.map(|at| expiry_key(at, token.id));
        self.transact_all(|trees| {
            if trees.tokens.get(&key)?.is_some() {
                return abort(StoreError::NameTaken(token.name.to_string()));
            }
            if indexed_in(trees.ids, token.id)?.is_some() {
                return abort(StoreError::IdTaken(token.id));
            }
            trees.tokens.insert(key.as_slice(), value.as_slice())?;
            trees.index_id(token.id, &key)?;
            if let Some(ek) = &expiry {
                trees.expiry.insert(&ek[..], key.as_slice())?;
            }
            add_count(trees.counts, &token.registry, 1)?;
            trees.add_deliveries(outbox)
        })?;
        // The name may be cached as absent.
        self.hot.invalidate(&key);
        Ok(())
    }

    /// Hands every token to `f`, in batches of at most `batch`, in key order; returns how many
    /// there were. For `regauth store migrate` (a stopped server's store).
    pub fn for_each_token_batch(
        &self,
        batch: usize,
        mut f: impl FnMut(Vec<Token>) -> Result<(), StoreError>,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        let mut pending = Vec::with_capacity(batch);
        for entry in self.tokens.iter() {
            let (key, bytes) = entry.map_err(backend)?;
            pending.push(self.with_last_use(decode_token(&key, &bytes)?)?);
            if pending.len() >= batch.max(1) {
                total += pending.len();
                f(std::mem::take(&mut pending))?;
            }
        }
        total += pending.len();
        if !pending.is_empty() {
            f(pending)?;
        }
        Ok(total)
    }

    /// Every refresh grant (for `regauth store migrate`).
    pub fn all_grants(&self) -> Result<Vec<RefreshGrant>, StoreError> {
        self.refresh
            .iter()
            .map(|entry| {
                let (hash, bytes) = entry.map_err(backend)?;
                decode_grant(&hash, &bytes)
            })
            .collect()
    }

    fn lock_grants(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a poisoned one is still good.
        self.grant_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_removals(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a poisoned one is still good.
        self.removal_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keys in `refresh_by_token` of `token_id`'s grants, oldest first.
    fn grant_keys(&self, token_id: Uuid) -> Result<Vec<IVec>, StoreError> {
        self.refresh_by_token
            .scan_prefix(token_id.as_bytes())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    /// Reads the token at `key` in `tokens`, with its last use.
    fn token_at(&self, key: &[u8]) -> Result<Option<Token>, StoreError> {
        match self.tokens.get(key).map_err(backend)? {
            Some(bytes) => self.with_last_use(decode_token(key, &bytes)?).map(Some),
            None => Ok(None),
        }
    }

    /// `token` as decoded from its record, with the later of the record's last use and its
    /// entry in `last_uses`.
    fn with_last_use(&self, token: Token) -> Result<Token, StoreError> {
        let entry = self.last_uses.get(token.id.as_bytes()).map_err(backend)?;
        merge_last_use(token, entry.as_deref())
    }
}

/// Reads run inline: a cache hit or a sled lookup (its page cache; a miss is one `pread`),
/// short enough for a worker thread, and the token endpoint's read is usually a hit. Writes
/// commit and fsync (`Db::flush`, milliseconds on a slow disk), so they run on a blocking
/// thread ([`SledStore::write`]).
#[async_trait::async_trait]
impl Store for SledStore {
    async fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        self.engine.admins()
    }

    async fn put_admin(&self, admin: &Admin, replace: bool) -> Result<(), StoreError> {
        let admin = admin.clone();
        self.on_blocking(move |e| e.put_admin(&admin, replace))
            .await
    }

    async fn delete_admin(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.on_blocking(move |e| e.delete_admin(&name)).await
    }

    async fn find_by_name(
        &self,
        registry: &str,
        name: &str,
    ) -> Result<Option<Arc<Token>>, StoreError> {
        self.engine.find_by_name(registry, name)
    }

    async fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError> {
        self.engine.get(registry, id)
    }

    async fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, StoreError> {
        self.engine.list(registry, offset, limit)
    }

    async fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.engine.list_matching(registry, needle, offset, limit)
    }

    async fn write(&self, write: TokenWrite<'_>, outbox: &[Delivery]) -> Result<bool, StoreError> {
        let outbox = encode_deliveries(outbox)?;
        match write {
            TokenWrite::Create(token) => {
                let token = token.clone();
                self.on_blocking(move |e| e.create(&token, &outbox).map(|()| true))
                    .await
            }
            TokenWrite::Update(token) => {
                let token = token.clone();
                self.on_blocking(move |e| e.update(&token, &outbox).map(|()| true))
                    .await
            }
            TokenWrite::Delete { registry, id } => {
                let registry = registry.to_string();
                self.on_blocking(move |e| e.delete(&registry, id, &outbox))
                    .await
            }
        }
    }

    async fn delete_expired_reporting(
        &self,
        now: DateTime<Utc>,
        report: &Report<'_>,
    ) -> Result<Vec<Token>, StoreError> {
        // The tokens due are decoded here, their deliveries made, and the deletion (which
        // re-checks each inside its transaction) runs on a blocking thread.
        let due = self.engine.expiring(now)?;
        let mut reports = Vec::with_capacity(due.len());
        for t in &due {
            reports.push((t.id, encode_deliveries(&report(t))?));
        }
        self.on_blocking(move |e| e.delete_expired(now, &reports))
            .await
    }

    fn outbox(self: Arc<Self>) -> Arc<dyn Outbox> {
        self.outbox.clone()
    }

    async fn add_refresh(
        &self,
        grant: &RefreshGrant,
        cap_per_token: usize,
    ) -> Result<(), StoreError> {
        let grant = grant.clone();
        self.on_blocking(move |e| e.add_refresh(&grant, cap_per_token))
            .await
    }

    async fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError> {
        self.engine.find_refresh(hash)
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.engine.count()
    }

    async fn refresh_count(&self) -> Result<usize, StoreError> {
        self.engine.refresh_count()
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<usize, StoreError> {
        let uses = uses.to_vec();
        self.on_blocking(move |e| e.record_uses(&uses)).await
    }

    async fn expiring(&self, until: DateTime<Utc>) -> Result<Vec<Token>, StoreError> {
        self.engine.expiring(until)
    }
}

/// The synchronous store: every method as [`Store`] describes it.
impl Engine {
    fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        self.admins
            .iter()
            .map(|kv| {
                let (key, bytes) = kv.map_err(backend)?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::backend(
                        format!(
                            "undecodable record at key {:?} in tree admins",
                            String::from_utf8_lossy(&key)
                        ),
                        e,
                    )
                })
            })
            .collect()
    }

    fn put_admin(&self, admin: &Admin, replace: bool) -> Result<(), StoreError> {
        let name = admin.name.to_string();
        let bytes = serde_json::to_vec(admin)
            .map_err(|e| StoreError::backend(format!("encoding admin {name}"), e))?;
        let old = self.admins.get(name.as_bytes()).map_err(backend)?;
        match (old.is_some(), replace) {
            (true, false) => return Err(StoreError::NameTaken(name)),
            (false, true) => return Err(StoreError::NotFound),
            _ => {}
        }
        // Compare-and-swap against what was read, so two racing creates make one winner.
        if self
            .admins
            .compare_and_swap(name.as_bytes(), old, Some(bytes))
            .map_err(backend)?
            .is_err()
        {
            return Err(if replace {
                StoreError::NotFound
            } else {
                StoreError::NameTaken(name)
            });
        }
        self.flush()
    }

    fn delete_admin(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self
            .admins
            .remove(name.as_bytes())
            .map_err(backend)?
            .is_some();
        self.flush()?;
        Ok(existed)
    }

    fn find_by_name(&self, registry: &str, name: &str) -> Result<Option<Arc<Token>>, StoreError> {
        if registry.contains('\0') {
            return Ok(None);
        }
        let key = name_key(registry, name);
        if let Some(cached) = self.hot.get(&key) {
            return Ok(cached);
        }
        let epoch = self.hot.epoch();
        let token = self.token_at(&key)?.map(Arc::new);
        // Absent names too: an unknown name then costs what a known one costs (cache.rs).
        self.hot.insert_if_current(&key, token.clone(), epoch);
        Ok(token)
    }

    fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError> {
        let Some(key) = indexed(&self.ids, id)? else {
            return Ok(None);
        };
        if !key.starts_with(&registry_prefix(registry)) {
            return Ok(None);
        }
        // Two reads without a transaction: the token may have been deleted or replaced
        // under its name in between; then the token with `id` is gone.
        Ok(self.token_at(&key)?.filter(|t| t.id == id))
    }

    fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, StoreError> {
        let total = read_count(&self.counts, registry)? as usize;
        let mut items = Vec::with_capacity(limit.min(total));
        let entries = self.tokens.scan_prefix(registry_prefix(registry));
        for entry in entries.skip(offset).take(limit) {
            let (key, value) = entry.map_err(backend)?;
            items.push(self.with_last_use(decode_token(&key, &value)?)?);
        }
        Ok(Page { items, total })
    }

    fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        // The name is the key's tail: match on keys, decode only the page's records.
        let prefix = registry_prefix(registry);
        let mut items = Vec::new();
        let mut total = 0;
        for entry in self.tokens.scan_prefix(&prefix) {
            let (key, value) = entry.map_err(backend)?;
            let name = &key[prefix.len()..];
            if !contains(name, needle.as_bytes()) {
                continue;
            }
            if total >= offset && items.len() < limit {
                items.push(self.with_last_use(decode_token(&key, &value)?)?);
            }
            total += 1;
        }
        Ok(Page { items, total })
    }

    fn create(&self, token: &Token, outbox: &[Encoded]) -> Result<(), StoreError> {
        self.create_with(token, outbox)?;
        self.flush()
    }

    fn update(&self, token: &Token, outbox: &[Encoded]) -> Result<(), StoreError> {
        check_registry(&token.registry)?;
        let new_key = name_key(&token.registry, token.name.as_str());
        let value = encode(token)?;
        let new_expiry = token.expiry.map(|at| expiry_key(at, token.id));
        let prefix = registry_prefix(&token.registry);
        // A disabled token keeps no refresh grants (see the trait): they go in this
        // transaction, scanned and committed under the grant lock like a delete.
        let disabling = token.status != Status::Enabled;
        let _grants = disabling.then(|| self.lock_grants());
        let revoked = if disabling {
            self.grant_keys(token.id)?
        } else {
            Vec::new()
        };
        let old_key = self.transact_all(|trees| {
            let Some(old_key) = indexed_in(trees.ids, token.id)? else {
                return abort(StoreError::NotFound);
            };
            if !old_key.starts_with(&prefix) {
                return abort(StoreError::NotFound);
            }
            let Some(old_bytes) = trees.tokens.get(&old_key)? else {
                return abort(missing_token(token.id, &old_key));
            };
            let old = decode_token(&old_key, &old_bytes).or_else(abort)?;
            // A later use written in the background since the caller read the token stays.
            let later_use = match (old.last_used, token.last_used) {
                (Some(o), n) if n.is_none_or(|n| o.at > n.at) => Some(Token {
                    last_used: Some(o),
                    ..token.clone()
                }),
                _ => None,
            };
            let value = match &later_use {
                Some(t) => encode(t).or_else(abort)?,
                None => value.clone(),
            };
            if old_key != new_key.as_slice() {
                // A rename: callers forbid it, but keep the name index consistent.
                if trees.tokens.get(&new_key)?.is_some() {
                    return abort(StoreError::NameTaken(token.name.to_string()));
                }
                trees.tokens.remove(old_key.as_slice())?;
                trees.index_id(token.id, &new_key)?;
            }
            trees.tokens.insert(new_key.as_slice(), value.as_slice())?;
            if let Some(at) = old.expiry {
                trees.expiry.remove(&expiry_key(at, token.id)[..])?;
            }
            if let Some(ek) = &new_expiry {
                trees.expiry.insert(&ek[..], new_key.as_slice())?;
            }
            trees.remove_grants(&revoked)?;
            trees.add_deliveries(outbox)?;
            Ok(old_key)
        })?;
        drop(_grants);
        self.hot.invalidate(&old_key);
        if old_key != new_key.as_slice() {
            self.hot.invalidate(&new_key);
        }
        self.flush()
    }

    fn delete(&self, registry: &str, id: Uuid, outbox: &[Encoded]) -> Result<bool, StoreError> {
        let prefix = registry_prefix(registry);
        let existed = {
            let _removals = self.lock_removals();
            let _grants = self.lock_grants();
            let grant_keys = self.grant_keys(id)?;
            let key = self.transact_all(|trees| {
                let Some(key) = indexed_in(trees.ids, id)? else {
                    return Ok(None);
                };
                if !key.starts_with(&prefix) {
                    return Ok(None);
                }
                trees.remove_token(&key, id, &grant_keys)?;
                trees.add_deliveries(outbox)?;
                Ok(Some(key))
            })?;
            if let Some(key) = &key {
                self.hot.invalidate(key);
            }
            key.is_some()
        };
        if !existed {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// Deletes the expired tokens; `reports` holds the deliveries to add with each token's
    /// deletion, by token id (a token expired since they were made has none).
    fn delete_expired(
        &self,
        now: DateTime<Utc>,
        reports: &[(Uuid, Vec<Encoded>)],
    ) -> Result<Vec<Token>, StoreError> {
        // Every entry whose millisecond is <= now's; entries in now's own millisecond may
        // still lie after `now` and are checked against the token's exact expiry below.
        let mut upper = millis_key(now.timestamp_millis()).to_vec();
        upper.extend_from_slice(&[0xff; ID_LEN]);
        let due: Vec<(IVec, IVec)> = self
            .expiry
            .range(..=upper)
            .collect::<Result<_, _>>()
            .map_err(backend)?;

        let mut deleted = Vec::new();
        for (expiry_key, name_key) in due {
            let Some(id) = expiry_key
                .get(MILLIS_LEN..)
                .and_then(|bytes| Uuid::from_slice(bytes).ok())
            else {
                return Err(StoreError::message(format!(
                    "malformed key {} in tree expiry",
                    hex(&expiry_key)
                )));
            };
            let _removals = self.lock_removals();
            let _grants = self.lock_grants();
            let grant_keys = self.grant_keys(id)?;
            let removed = self.transact_all(|trees| {
                // Re-check inside the transaction: an update may have moved the expiry since
                // the scan.
                if trees.expiry.get(&expiry_key)?.is_none()
                    || indexed_in(trees.ids, id)?.as_deref() != Some(&name_key[..])
                {
                    return Ok(None);
                }
                let Some(bytes) = trees.tokens.get(&name_key)? else {
                    return Ok(None);
                };
                let token = decode_token(&name_key, &bytes).or_else(abort)?;
                let entry = trees.last_uses.get(id.as_bytes())?;
                let token = merge_last_use(token, entry.as_deref()).or_else(abort)?;
                if token.expiry.is_none_or(|at| at > now) {
                    // Due in `now`'s millisecond but after `now` itself.
                    return Ok(None);
                }
                trees.remove_token(&name_key, id, &grant_keys)?;
                if let Some((_, outbox)) = reports.iter().find(|(t, _)| *t == id) {
                    trees.add_deliveries(outbox)?;
                }
                Ok(Some(token))
            })?;
            if removed.is_some() {
                self.hot.invalidate(&name_key);
            }
            deleted.extend(removed);
        }
        if !deleted.is_empty() {
            self.flush()?;
        }
        Ok(deleted)
    }

    fn add_refresh(&self, grant: &RefreshGrant, cap_per_token: usize) -> Result<(), StoreError> {
        let hash = grant.hash.0;
        let value = record::encode_grant(grant)
            .map_err(|e| StoreError::backend("encoding refresh grant", e))?;
        let token_key = name_key(&grant.registry, &grant.token_name);
        let own_key = grant_index_key(grant.token_id, grant.created, &hash);
        {
            let _grants = self.lock_grants();
            // The token's grants after this insert, oldest first; the first ones beyond the
            // cap go. A grant re-added under the same hash replaces its old index entry.
            let mut kept: Vec<Vec<u8>> = self
                .grant_keys(grant.token_id)?
                .into_iter()
                .filter(|k| k.get(ID_LEN + MILLIS_LEN..) != Some(&hash[..]))
                .map(|k| k.to_vec())
                .collect();
            let pos = kept.binary_search(&own_key).unwrap_or_else(|p| p);
            kept.insert(pos, own_key.clone());
            let evict = kept.len().saturating_sub(cap_per_token);
            let evicted = &kept[..evict];
            (
                &self.tokens,
                &self.ids,
                &self.refresh,
                &self.refresh_by_token,
            )
                .transaction(|(tokens, ids, refresh, by_token)| {
                    if indexed_in(ids, grant.token_id)?.as_deref() != Some(&token_key[..]) {
                        return abort(StoreError::NotFound);
                    }
                    // A disabled token takes no grants (see the trait).
                    let Some(bytes) = tokens.get(&token_key)? else {
                        return abort(missing_token(grant.token_id, &token_key));
                    };
                    if decode_token(&token_key, &bytes).or_else(abort)?.status != Status::Enabled {
                        return abort(StoreError::NotFound);
                    }
                    if let Some(old) = refresh.get(hash)? {
                        let old = decode_grant(&hash, &old).or_else(abort)?;
                        by_token.remove(&grant_index_key(old.token_id, old.created, &hash)[..])?;
                    }
                    refresh.insert(&hash[..], value.as_slice())?;
                    by_token.insert(own_key.as_slice(), &[][..])?;
                    for key in evicted {
                        by_token.remove(key.as_slice())?;
                        if let Some(h) = key.get(ID_LEN + MILLIS_LEN..) {
                            refresh.remove(h)?;
                        }
                    }
                    Ok(())
                })
                .map_err(tx_error)?;
        }
        self.flush()
    }

    fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError> {
        match self.refresh.get(hash.0).map_err(backend)? {
            Some(bytes) => decode_grant(&hash.0, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn count(&self) -> Result<usize, StoreError> {
        let mut total = 0u64;
        for entry in self.counts.iter() {
            let (key, value) = entry.map_err(backend)?;
            total += decode_count(&key, &value)?;
        }
        Ok(total as usize)
    }

    fn refresh_count(&self) -> Result<usize, StoreError> {
        // Keys only: sled's `len` walks the tree without decoding a record.
        Ok(self.refresh.len())
    }

    fn record_uses(&self, uses: &[TokenUse]) -> Result<usize, StoreError> {
        // Batches of [`USES_PER_BATCH`], not a transaction per token: the per-token
        // transactions of the background writer were the last-use cost in RSS
        // (benches/RESULTS.md). Nor one batch for all: sled holds one epoch guard and its
        // write lock for a whole batch, so nothing a batch replaces is freed before it ends
        // (10 000 uses at once left ~20 MB of old tree nodes for a moment) and no token
        // lookup that misses the cache runs meanwhile. Only `last_uses` changes. Each token is
        // found where the token endpoint just found it: in the token cache, or else by its
        // name key in `tokens` (not through `ids`: looking up thousands of random ids loaded
        // most of that tree's pages, tens of MB at 1 000 000 tokens), and its cached copy is
        // updated rather than dropped. The removal lock keeps a token from being deleted
        // between its check and the batch (a delete after the batch removes the entry itself).
        let mut chunk = Vec::with_capacity(USES_PER_BATCH.min(uses.len()));
        let mut written = 0;
        let removals = self.lock_removals();
        for u in uses {
            let key = name_key(&u.registry, &u.name);
            let found = match self.hot.get(&key) {
                // Every removal drops its cache entry before releasing the lock we hold.
                Some(cached) => cached.filter(|t| t.id == u.id).map(|t| t.last_used),
                None => self.token_with_id(&key, u.id)?.map(|t| t.last_used),
            };
            let Some(record_use) = found else {
                continue;
            };
            let stored = match self.last_uses.get(u.id.as_bytes()).map_err(backend)? {
                Some(bytes) => Some(decode_last_use(u.id, &bytes)?),
                // No entry yet: the record may hold one (a store written before `last_uses`,
                // or an update carrying a use).
                None => record_use,
            };
            if stored.is_some_and(|old| old.at >= u.last_use.at) {
                continue;
            }
            chunk.push((u.id, key, u.last_use));
            if chunk.len() == USES_PER_BATCH {
                written += self.apply_uses(&mut chunk)?;
            }
        }
        written += self.apply_uses(&mut chunk)?;
        drop(removals);
        if written > 0 {
            self.flush()?;
        }
        Ok(written)
    }

    /// Writes `uses` (token id, name key, use) as one sled batch, shows each in its cached
    /// token, and empties `uses`; returns how many were written.
    fn apply_uses(&self, uses: &mut Vec<(Uuid, Vec<u8>, LastUse)>) -> Result<usize, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        for (id, _, last_use) in uses.iter() {
            let value = record::encode_last_use(*last_use)
                .map_err(|e| StoreError::backend(format!("encoding last use of {id}"), e))?;
            batch.insert(&id.as_bytes()[..], value);
        }
        self.last_uses.apply_batch(batch).map_err(backend)?;
        for (id, key, last_use) in uses.iter() {
            // The cached token shows its last use too.
            self.hot.show_last_use(key, *id, *last_use);
        }
        let n = uses.len();
        uses.clear();
        Ok(n)
    }

    /// The token at name key `key` if it is token `id` (not one deleted and created again
    /// under its name).
    fn token_with_id(&self, key: &[u8], id: Uuid) -> Result<Option<Token>, StoreError> {
        match self.tokens.get(key).map_err(backend)? {
            Some(bytes) => Ok(Some(decode_token(key, &bytes)?).filter(|t| t.id == id)),
            None => Ok(None),
        }
    }

    fn expiring(&self, until: DateTime<Utc>) -> Result<Vec<Token>, StoreError> {
        let mut upper = millis_key(until.timestamp_millis()).to_vec();
        upper.extend_from_slice(&[0xff; ID_LEN]);
        let mut found = Vec::new();
        for entry in self.expiry.range(..=upper) {
            let (_, name_key) = entry.map_err(backend)?;
            // Without a transaction: a token deleted since the index read is skipped.
            if let Some(t) = self.token_at(&name_key)? {
                if t.expiry.is_some_and(|at| at <= until) {
                    found.push(t);
                }
            }
        }
        Ok(found)
    }
}

/// The transactional views of every tree, for writes that remove a whole token.
struct AllTrees<'a> {
    tokens: &'a TransactionalTree,
    ids: &'a TransactionalTree,
    expiry: &'a TransactionalTree,
    counts: &'a TransactionalTree,
    refresh: &'a TransactionalTree,
    refresh_by_token: &'a TransactionalTree,
    last_uses: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
}

impl Engine {
    /// Runs `f` as one transaction over every tree.
    fn transact_all<A>(
        &self,
        f: impl Fn(&AllTrees<'_>) -> ConflictableTransactionResult<A, StoreError>,
    ) -> Result<A, StoreError> {
        (
            &self.tokens,
            &self.ids,
            &self.expiry,
            &self.counts,
            &self.refresh,
            &self.refresh_by_token,
            &self.last_uses,
            &self.outbox,
        )
            .transaction(
                |(tokens, ids, expiry, counts, refresh, refresh_by_token, last_uses, outbox)| {
                    f(&AllTrees {
                        tokens,
                        ids,
                        expiry,
                        counts,
                        refresh,
                        refresh_by_token,
                        last_uses,
                        outbox,
                    })
                },
            )
            .map_err(tx_error)
    }
}

/// A delivery as the outbox tree holds it: key (its id) and value.
type Encoded = (Uuid, Vec<u8>);

/// `deliveries` encoded for [`AllTrees::add_deliveries`] (before a transaction, whose
/// closure may run more than once).
fn encode_deliveries(deliveries: &[Delivery]) -> Result<Vec<Encoded>, StoreError> {
    deliveries
        .iter()
        .map(|d| Ok((d.id, super::outbox::encode(d)?)))
        .collect()
}

impl AllTrees<'_> {
    /// Adds each delivery whose id is not in the outbox yet (as `Outbox::enqueue` does).
    fn add_deliveries(&self, outbox: &[Encoded]) -> ConflictableTransactionResult<(), StoreError> {
        for (id, value) in outbox {
            if self.outbox.get(id.as_bytes())?.is_none() {
                self.outbox.insert(&id.as_bytes()[..], value.as_slice())?;
            }
        }
        Ok(())
    }

    /// Removes the token at `key` (whose id is `id`), its id and expiry entries, its grants
    /// (`grant_keys`, from `refresh_by_token`) and its share of the registry count.
    fn remove_token(
        &self,
        key: &[u8],
        id: Uuid,
        grant_keys: &[IVec],
    ) -> ConflictableTransactionResult<(), StoreError> {
        let Some(bytes) = self.tokens.remove(key)? else {
            return abort(missing_token(id, key));
        };
        let token = decode_token(key, &bytes).or_else(abort)?;
        self.unindex_id(id)?;
        self.last_uses.remove(id.as_bytes())?;
        if let Some(at) = token.expiry {
            self.expiry.remove(&expiry_key(at, id)[..])?;
        }
        self.remove_grants(grant_keys)?;
        add_count(self.counts, &token.registry, -1)
    }

    /// Puts `id` at `name_key` in the index by id.
    fn index_id(&self, id: Uuid, name_key: &[u8]) -> ConflictableTransactionResult<(), StoreError> {
        let bucket = id_bucket::key(id);
        let old = self.ids.get(bucket)?;
        let new = id_bucket::with(old.as_deref(), id, name_key)
            .map_err(|e| bucket_error(&bucket, e))
            .or_else(abort)?;
        self.ids.insert(&bucket[..], new)?;
        Ok(())
    }

    /// Takes `id` out of the index by id.
    fn unindex_id(&self, id: Uuid) -> ConflictableTransactionResult<(), StoreError> {
        let bucket = id_bucket::key(id);
        let Some(old) = self.ids.get(bucket)? else {
            return Ok(());
        };
        match id_bucket::without(&old, id)
            .map_err(|e| bucket_error(&bucket, e))
            .or_else(abort)?
        {
            Some(new) => self.ids.insert(&bucket[..], new)?,
            None => self.ids.remove(&bucket[..])?,
        };
        Ok(())
    }

    /// Removes the grants whose `refresh_by_token` keys are `grant_keys`.
    fn remove_grants(&self, grant_keys: &[IVec]) -> ConflictableTransactionResult<(), StoreError> {
        for grant in grant_keys {
            self.refresh_by_token.remove(grant)?;
            if let Some(hash) = grant.get(ID_LEN + MILLIS_LEN..) {
                self.refresh.remove(hash)?;
            }
        }
        Ok(())
    }
}

/// Why the sled database in `dir` (the token store's or the activity store's) did not open.
/// sled reports a directory locked by another process as an I/O error of kind `Other` whose
/// text holds the OS error (`WouldBlock`); say what that means, and only that: the OS error is
/// dropped, it would only confuse.
pub(super) fn open_error(dir: &Path, e: sled::Error) -> StoreError {
    if matches!(&e, sled::Error::Io(io) if io.to_string().contains(LOCKED)) {
        return StoreError::message(format!(
            "{}: {HELD}; only one regauth can use a data_dir at a time: stop the other one, \
             or give this one another data_dir",
            dir.display()
        ));
    }
    StoreError::backend(format!("opening {}", dir.display()), e)
}

/// The start of sled's message for a directory another process has locked.
const LOCKED: &str = "could not acquire lock";

/// What [`SledStore::open`] and `SledActivity::open` say when another process holds the store.
pub const HELD: &str = "another regauth (or another process) holds this store";

fn backend(e: sled::Error) -> StoreError {
    StoreError::backend("sled", e)
}

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

/// The name key of token `id` in the index by id `index`.
fn indexed(index: &Tree, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
    let bucket = id_bucket::key(id);
    match index.get(bucket).map_err(backend)? {
        Some(bytes) => find_in_bucket(&bucket, &bytes, id),
        None => Ok(None),
    }
}

/// [`indexed`] inside a transaction.
fn indexed_in(
    index: &TransactionalTree,
    id: Uuid,
) -> ConflictableTransactionResult<Option<Vec<u8>>, StoreError> {
    let bucket = id_bucket::key(id);
    match index.get(bucket)? {
        Some(bytes) => find_in_bucket(&bucket, &bytes, id).or_else(abort),
        None => Ok(None),
    }
}

fn find_in_bucket(bucket: &[u8], bytes: &[u8], id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
    id_bucket::find(bytes, id)
        .map(|key| key.map(<[u8]>::to_vec))
        .map_err(|e| bucket_error(bucket, e))
}

fn bucket_error(bucket: &[u8], e: Malformed) -> StoreError {
    StoreError::message(format!(
        "malformed bucket {} in tree {ID_INDEX_TREE}: {}",
        hex(bucket),
        e.0
    ))
}

/// Moves the index by id of a store written before buckets (tree `ids`: token id → name key)
/// into `index`, then drops the old tree; returns how many ids it moved, or `None` when the
/// store has no old index (a new store, or one moved already). Runs at open, before any other
/// read or write; sled's lock on the directory keeps every other process out.
///
/// The old entries are added to the buckets already there, not written over them, so that:
/// - a crash at any point loses nothing: the old tree goes only after every bucket is written
///   and flushed, and a start that still finds it adds the same entries again;
/// - a store that an older regauth opened after this one (it makes a new `ids` tree and puts
///   only the tokens it creates there) keeps the ids of both when this version opens it
///   again.
fn reindex(db: &sled::Db, index: &Tree) -> Result<Option<usize>, StoreError> {
    if !db
        .tree_names()
        .iter()
        .any(|n| &n[..] == OLD_ID_TREE.as_bytes())
    {
        return Ok(None);
    }
    let old = db.open_tree(OLD_ID_TREE).map_err(backend)?;
    let mut moved = 0;
    for pass in 0..REINDEX_PASSES {
        let mut buckets: std::collections::BTreeMap<[u8; id_bucket::KEY_LEN], Vec<(Uuid, IVec)>> =
            Default::default();
        for entry in old.iter() {
            let (id, name_key) = entry.map_err(backend)?;
            let Ok(id) = Uuid::from_slice(&id) else {
                return Err(StoreError::message(format!(
                    "malformed key {} in tree {OLD_ID_TREE}",
                    hex(&id)
                )));
            };
            let bucket = id_bucket::key(id);
            if bucket[0] >> 4 == pass {
                buckets.entry(bucket).or_default().push((id, name_key));
            }
        }
        let mut batch = sled::Batch::default();
        for (bucket, entries) in &buckets {
            let entries: Vec<_> = entries.iter().map(|(id, k)| (*id, &k[..])).collect();
            let there = index.get(bucket).map_err(backend)?;
            let bytes = id_bucket::merge(there.as_deref(), &entries)
                .map_err(|e| bucket_error(bucket, e))?;
            batch.insert(&bucket[..], bytes);
            moved += entries.len();
        }
        index.apply_batch(batch).map_err(backend)?;
    }
    db.flush().map_err(backend)?;
    db.drop_tree(OLD_ID_TREE).map_err(backend)?;
    db.flush().map_err(backend)?;
    Ok(Some(moved))
}

fn check_registry(registry: &str) -> Result<(), StoreError> {
    if registry.contains('\0') {
        return Err(StoreError::message(format!(
            "registry id {registry:?} contains NUL"
        )));
    }
    Ok(())
}

fn missing_token(id: Uuid, key: &[u8]) -> StoreError {
    StoreError::message(format!(
        "index id_buckets has token {id} at key {} but tree tokens has no such key",
        show_name_key(key)
    ))
}

fn registry_prefix(registry: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(registry.len() + 1);
    key.extend_from_slice(registry.as_bytes());
    key.push(0);
    key
}

/// Whether `needle` occurs in `haystack` (an empty needle always does).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn name_key(registry: &str, name: &str) -> Vec<u8> {
    // One allocation of the whole key (the token endpoint builds one per request).
    let mut key = Vec::with_capacity(registry.len() + 1 + name.len());
    key.extend_from_slice(registry.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// A name key for messages: `registry/name`.
fn show_name_key(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key).replace('\0', "/"))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Unix millis as bytes whose order is numeric order (sign bit flipped, big-endian).
fn millis_key(millis: i64) -> [u8; MILLIS_LEN] {
    ((millis as u64) ^ (1 << 63)).to_be_bytes()
}

fn expiry_key(at: DateTime<Utc>, id: Uuid) -> [u8; MILLIS_LEN + ID_LEN] {
    let mut key = [0u8; MILLIS_LEN + ID_LEN];
    key[..MILLIS_LEN].copy_from_slice(&millis_key(at.timestamp_millis()));
    key[MILLIS_LEN..].copy_from_slice(id.as_bytes());
    key
}

fn grant_index_key(token_id: Uuid, created: DateTime<Utc>, hash: &[u8; HASH_LEN]) -> Vec<u8> {
    let mut key = Vec::with_capacity(ID_LEN + MILLIS_LEN + HASH_LEN);
    key.extend_from_slice(token_id.as_bytes());
    key.extend_from_slice(&millis_key(created.timestamp_millis()));
    key.extend_from_slice(hash);
    key
}

fn encode(token: &Token) -> Result<Vec<u8>, StoreError> {
    record::encode_token(token)
        .map_err(|e| StoreError::backend(format!("encoding token {}", token.id), e))
}

fn decode_token(key: &[u8], bytes: &[u8]) -> Result<Token, StoreError> {
    record::decode_token(bytes).map_err(|e| {
        StoreError::backend(
            format!(
                "undecodable record at key {} in tree tokens",
                show_name_key(key)
            ),
            e,
        )
    })
}

fn decode_last_use(id: Uuid, bytes: &[u8]) -> Result<LastUse, StoreError> {
    record::decode_last_use(bytes).map_err(|e| {
        StoreError::backend(
            format!("undecodable record at key {id} in tree last_uses"),
            e,
        )
    })
}

/// `token` with the later of its record's last use and `entry`, its `last_uses` record.
fn merge_last_use(mut token: Token, entry: Option<&[u8]>) -> Result<Token, StoreError> {
    if let Some(bytes) = entry {
        let noted = decode_last_use(token.id, bytes)?;
        token.last_used = LastUse::latest(token.last_used, Some(noted));
    }
    Ok(token)
}

fn decode_grant(hash: &[u8], bytes: &[u8]) -> Result<RefreshGrant, StoreError> {
    record::decode_grant(bytes).map_err(|e| {
        StoreError::backend(
            format!("undecodable record at key {} in tree refresh", hex(hash)),
            e,
        )
    })
}

fn decode_count(key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        StoreError::message(format!(
            "undecodable record at key {:?} in tree counts: expected 8 bytes, got {}",
            String::from_utf8_lossy(key),
            bytes.len()
        ))
    })?;
    Ok(u64::from_be_bytes(arr))
}

fn read_count(counts: &Tree, registry: &str) -> Result<u64, StoreError> {
    match counts.get(registry.as_bytes()).map_err(backend)? {
        Some(bytes) => decode_count(registry.as_bytes(), &bytes),
        None => Ok(0),
    }
}

/// Adds `delta` to the token count of `registry`, inside a transaction.
fn add_count(
    counts: &TransactionalTree,
    registry: &str,
    delta: i64,
) -> ConflictableTransactionResult<(), StoreError> {
    let key = registry.as_bytes();
    let current = match counts.get(key)? {
        Some(bytes) => decode_count(key, &bytes).or_else(abort)?,
        None => 0,
    };
    let Some(next) = current.checked_add_signed(delta) else {
        return abort(StoreError::message(format!(
            "token count of registry {registry:?} would go below zero"
        )));
    };
    if next == 0 {
        counts.remove(key)?;
    } else {
        counts.insert(key, &next.to_be_bytes()[..])?;
    }
    Ok(())
}

/// Writes `tokens` into `dir` in the layout of the version before `last_uses` and
/// `id_buckets`: trees `tokens`, `ids` (one entry per id) and `counts` only. `more` may
/// add to the database before it is flushed and closed.
#[cfg(test)]
pub(crate) fn write_old_layout(dir: &Path, tokens: &[Token], more: impl FnOnce(&sled::Db)) {
    let db = sled::Config::new().path(dir).open().unwrap();
    let (tree, ids, counts) = (
        db.open_tree("tokens").unwrap(),
        db.open_tree(OLD_ID_TREE).unwrap(),
        db.open_tree("counts").unwrap(),
    );
    let mut per_registry = std::collections::BTreeMap::<&str, u64>::new();
    for t in tokens {
        let key = name_key(&t.registry, t.name.as_str());
        tree.insert(&key, encode(t).unwrap()).unwrap();
        ids.insert(t.id.as_bytes(), key).unwrap();
        *per_registry.entry(&t.registry).or_default() += 1;
    }
    for (registry, n) in per_registry {
        counts.insert(registry, &n.to_be_bytes()[..]).unwrap();
    }
    more(&db);
    db.flush().unwrap();
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::error::Chain;
    use crate::store::conformance::{expiring, grant};
    use crate::testing::{t0, token};

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    // These tests drive the synchronous engine directly (threads racing on it, its caches and
    // indexes); the conformance suite drives the async `SledStore` around it.

    /// The engine of a store opened on `dir`.
    fn engine(dir: &Path) -> Arc<Engine> {
        SledStore::open(dir).unwrap().engine
    }

    /// Opens `dir` again after a store on it was dropped. sled lets go of its directory lock
    /// when its background threads release the dropped database, a moment after `drop`
    /// (longer on a busy machine), so a reopen in the same process retries until then.
    fn reopen(dir: &Path) -> Arc<Engine> {
        crate::testing::reopen_sled(|| SledStore::open(dir)).engine
    }

    /// Issue 10: a second opener is told that another regauth holds the store, not
    /// `Os { code: 11, kind: WouldBlock }`.
    #[test]
    fn a_held_store_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        let msg = SledStore::open(dir.path()).unwrap_err().to_string();
        assert!(msg.contains(HELD), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            !msg.contains("WouldBlock") && !msg.contains("code: 11"),
            "{msg}"
        );
    }

    #[test]
    fn full_records_round_trip_through_disk() {
        use crate::domain::{Scope, Status};
        let dir = tempfile::tempdir().unwrap();
        let mut t = expiring("default", "full-record", t0() + chrono::Duration::days(3));
        t.status = Status::Disabled;
        t.scopes = vec![
            Scope::parse("repository", "team/*", &["pull".into(), "push".into()]).unwrap(),
            Scope::parse("repository", "a?c/x", &["delete".into()]).unwrap(),
            Scope::parse("registry", "catalog", &["pull".into()]).unwrap(),
        ];
        // A disabled token holds no grants: the grant's record goes with an enabled one.
        let holder = token("default", "holder");
        let g = grant(&holder, 7, t0());
        {
            let s = engine(dir.path());
            s.create(&t, &[]).unwrap();
            s.create(&holder, &[]).unwrap();
            s.add_refresh(&g, 4).unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(
            s.find_by_name("default", "full-record")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(t.clone())
        );
        assert_eq!(s.get("default", t.id).unwrap(), Some(t));
        assert_eq!(s.find_refresh(&g.hash).unwrap(), Some(g));
    }

    /// Issue 10: disabling revokes the grants durably; enabling after a restart revives none.
    #[test]
    fn disable_revokes_grants_durably() {
        use crate::domain::Status;
        let dir = tempfile::tempdir().unwrap();
        let mut t = token("default", "laptop-login");
        let other = token("default", "other");
        {
            let s = engine(dir.path());
            s.create(&t, &[]).unwrap();
            s.create(&other, &[]).unwrap();
            for seed in 1..=3 {
                s.add_refresh(&grant(&t, seed, t0()), 10).unwrap();
            }
            s.add_refresh(&grant(&other, 9, t0()), 10).unwrap();
            t.status = Status::Disabled;
            s.update(&t, &[]).unwrap();
        }
        let s = reopen(dir.path());
        t.status = Status::Enabled;
        s.update(&t, &[]).unwrap();
        for seed in 1..=3 {
            assert_eq!(s.find_refresh(&SecretHash([seed; 32])).unwrap(), None);
        }
        assert!(s.find_refresh(&SecretHash([9; 32])).unwrap().is_some());
        assert!(s.grant_keys(t.id).unwrap().is_empty(), "index emptied too");
    }

    /// The last-use writer finds tokens where the token endpoint found them (the cache) and
    /// keeps them cached, showing the use, instead of dropping them (which sent the endpoint
    /// back to sled for every used token after each flush). A token deleted before the flush,
    /// or deleted and created again under its name, gets no entry.
    #[test]
    fn last_uses_keep_used_tokens_cached() {
        use crate::store::conformance::{use_of, used};
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let cached = |name: &str| s.hot.get(&name_key("default", name)).flatten();
        let a = token("default", "used");
        let gone = token("default", "gone");
        let old = token("default", "again");
        for t in [&a, &gone, &old] {
            s.create(t, &[]).unwrap();
            s.find_by_name("default", t.name.as_str()).unwrap();
        }
        s.delete("default", gone.id, &[]).unwrap();
        s.delete("default", old.id, &[]).unwrap();
        let new = token("default", "again");
        s.create(&new, &[]).unwrap();
        s.find_by_name("default", "again").unwrap();

        let at = used(t0() + Duration::minutes(1), "192.0.2.1");
        let uses = [use_of(&a, at), use_of(&gone, at), use_of(&old, at)];
        assert_eq!(s.record_uses(&uses).unwrap(), 1);
        let shown = cached("used").expect("a used token stays cached");
        assert_eq!(shown.last_used, Some(at));
        assert_eq!(s.find_by_name("default", "used").unwrap(), Some(shown));
        assert!(s.last_uses.get(gone.id.as_bytes()).unwrap().is_none());
        assert!(s.last_uses.get(old.id.as_bytes()).unwrap().is_none());
        assert_eq!(
            cached("again").unwrap().last_used,
            None,
            "not the old token's use"
        );

        // Not cached: found in sled, and nothing is cached for it by the writer.
        s.hot.clear();
        let later = used(t0() + Duration::minutes(2), "192.0.2.2");
        assert_eq!(s.record_uses(&[use_of(&a, later)]).unwrap(), 1);
        assert!(cached("used").is_none());
        let read = s.find_by_name("default", "used").unwrap().unwrap();
        assert_eq!(read.last_used, Some(later));
        // An older use than the one shown changes nothing.
        assert_eq!(s.record_uses(&[use_of(&a, at)]).unwrap(), 0);
        assert_eq!(cached("used").unwrap().last_used, Some(later));
    }

    /// More uses than one batch holds: every use is written, whether it ends a batch, falls
    /// in the last short one or sits beside uses that are skipped, and the cache shows each.
    #[test]
    fn last_uses_beyond_one_batch_are_all_written() {
        use crate::store::conformance::{use_of, used};
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let tokens: Vec<Token> = (0..2 * USES_PER_BATCH + 3)
            .map(|i| token("default", &format!("ci-{i}")))
            .collect();
        for t in &tokens {
            s.create_unflushed(t).unwrap();
        }
        // Most of them cached, every fifth found in sled.
        for (_, t) in tokens.iter().enumerate().filter(|(i, _)| i % 5 != 4) {
            s.find_by_name("default", t.name.as_str()).unwrap();
        }
        let earlier = used(t0() + Duration::minutes(1), "192.0.2.1");
        let at = used(t0() + Duration::minutes(2), "192.0.2.2");
        // Every seventh token already has a later use: skipped, and not counted.
        let skipped: Vec<&Token> = tokens.iter().step_by(7).collect();
        let first: Vec<TokenUse> = skipped.iter().map(|t| use_of(t, at)).collect();
        assert_eq!(s.record_uses(&first).unwrap(), skipped.len());
        let uses: Vec<TokenUse> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| use_of(t, if i % 7 == 0 { earlier } else { at }))
            .collect();
        assert_eq!(s.record_uses(&uses).unwrap(), tokens.len() - skipped.len());
        for (i, t) in tokens.iter().enumerate() {
            let entry = s.last_uses.get(t.id.as_bytes()).unwrap();
            let stored = decode_last_use(t.id, &entry.expect("every use written")).unwrap();
            assert_eq!(stored, at, "token {i}");
            if i % 5 != 4 {
                let cached = s.hot.get(&name_key("default", t.name.as_str())).flatten();
                assert_eq!(cached.unwrap().last_used, Some(at), "cached token {i}");
            }
        }
    }

    #[test]
    fn cached_lookups_see_every_committed_write() {
        use crate::domain::Status;
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let find = |name: &str| s.find_by_name("default", name).unwrap().as_deref().cloned();
        let cached = |name: &str| s.hot.get(&name_key("default", name)).is_some();

        let mut t = token("default", "cached");
        s.create(&t, &[]).unwrap();
        assert!(!cached("cached"));
        assert_eq!(find("cached"), Some(t.clone()));
        assert!(cached("cached"), "a found token is cached");
        // update (disable)
        t.status = Status::Disabled;
        s.update(&t, &[]).unwrap();
        assert_eq!(find("cached"), Some(t.clone()), "update seen at once");
        // delete, then a new token under the same name
        assert!(cached("cached"));
        assert!(s.delete("default", t.id, &[]).unwrap());
        assert_eq!(find("cached"), None, "delete seen at once");
        let again = token("default", "cached");
        s.create(&again, &[]).unwrap();
        assert_eq!(
            find("cached"),
            Some(again.clone()),
            "re-created token, new id"
        );
        // expiry sweep
        let mut e = expiring("default", "short-lived", t0() + Duration::minutes(5));
        s.create(&e, &[]).unwrap();
        assert_eq!(find("short-lived"), Some(e.clone()));
        assert_eq!(
            s.delete_expired(t0() + Duration::minutes(6), &[]).unwrap(),
            vec![e.clone()]
        );
        assert_eq!(
            find("short-lived"),
            None,
            "expired token swept and not served from cache"
        );
        // update that moves the expiry (and leaves the name)
        e.expiry = Some(t0() + Duration::days(1));
        s.create(&e, &[]).unwrap();
        assert_eq!(find("short-lived"), Some(e.clone()));
        e.expiry = None;
        s.update(&e, &[]).unwrap();
        assert_eq!(find("short-lived"), Some(e));
        // unknown names are cached as absent, and a create makes them visible at once
        assert_eq!(find("nobody"), None);
        assert!(matches!(
            s.hot.get(&name_key("default", "nobody")),
            Some(None)
        ));
        assert_eq!(find("nobody"), None, "served from the cache");
        let nobody = token("default", "nobody");
        s.create(&nobody, &[]).unwrap();
        assert_eq!(find("nobody"), Some(nobody), "create seen at once");
    }

    /// Readers hammer the name while a writer changes it: right after each write returns, the
    /// writer's own lookup sees that write; a stale value cached by a racing reader would fail.
    #[test]
    fn racing_lookups_never_cache_a_stale_token() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let mut t = token("default", "contended");
        s.create(&t, &[]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = s.find_by_name("default", "contended").unwrap();
                    }
                })
            })
            .collect();
        for i in 0..300 {
            t.modified_by = format!("writer-{i}");
            s.update(&t, &[]).unwrap();
            for _ in 0..20 {
                let seen = s.find_by_name("default", "contended").unwrap().unwrap();
                assert_eq!(
                    seen.modified_by, t.modified_by,
                    "stale token after write {i}"
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }

    /// The same with creates and deletes: an absence cached by a reader that raced a create
    /// must never hide the created token (nor a token cached before a delete survive it).
    #[test]
    fn racing_lookups_never_cache_a_stale_absence() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = s.find_by_name("default", "flicker").unwrap();
                    }
                })
            })
            .collect();
        for i in 0..150 {
            let t = token("default", "flicker");
            s.create_unflushed(&t).unwrap();
            for _ in 0..20 {
                let seen = s.find_by_name("default", "flicker").unwrap();
                assert_eq!(seen.map(|t| t.id), Some(t.id), "absent after create {i}");
            }
            assert!(s.delete("default", t.id, &[]).unwrap());
            for _ in 0..20 {
                let seen = s.find_by_name("default", "flicker").unwrap();
                assert!(seen.is_none(), "present after delete {i}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }

    fn has_tree(s: &Engine, name: &str) -> bool {
        s.db.tree_names().iter().any(|n| &n[..] == name.as_bytes())
    }

    /// 600 tokens in two registries, with ids spread over every pass of [`reindex`].
    fn many_tokens() -> Vec<Token> {
        (0..600)
            .map(|i| token(["default", "other"][i % 2], &format!("tok-{i}")))
            .collect()
    }

    /// Every token of `tokens` is found by id in its own registry only, and nothing else is.
    fn assert_found_by_id(s: &Engine, tokens: &[Token]) {
        for t in tokens {
            let found = s.get(&t.registry, t.id).unwrap();
            assert_eq!(found.map(|f| f.name), Some(t.name.clone()), "{}", t.id);
            let elsewhere = if t.registry == "default" {
                "other"
            } else {
                "default"
            };
            assert_eq!(s.get(elsewhere, t.id).unwrap(), None);
        }
        assert_eq!(s.get("default", Uuid::new_v4()).unwrap(), None);
    }

    /// Issue 22: a store written with one index entry per id (tree `ids`) is moved into
    /// buckets when it is opened, once; every token is then found, changed and deleted by id.
    #[test]
    fn an_index_of_one_entry_per_id_is_moved_into_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = many_tokens();
        write_old_layout(dir.path(), &tokens, |_| {});
        let s = reopen(dir.path());
        assert_eq!(s.reindexed, Some(600));
        assert!(!has_tree(&s, OLD_ID_TREE), "the old index is dropped");
        assert!(s.ids.len() <= 600 && s.ids.len() > 500, "{}", s.ids.len());
        assert_found_by_id(&s, &tokens);
        // Writes go through the buckets.
        let changed = Token {
            status: Status::Disabled,
            ..tokens[0].clone()
        };
        s.update(&changed, &[]).unwrap();
        assert_eq!(
            s.get("default", changed.id).unwrap().unwrap().status,
            Status::Disabled
        );
        assert!(s.delete("other", tokens[1].id, &[]).unwrap());
        assert_eq!(s.get("other", tokens[1].id).unwrap(), None);
        let fresh = token("default", "after-the-move");
        s.create(&fresh, &[]).unwrap();
        drop(s);

        let s = reopen(dir.path());
        assert_eq!(s.reindexed, None, "moved once");
        assert_found_by_id(&s, &tokens[2..]);
        assert_found_by_id(&s, &[fresh]);
        assert_eq!(s.count().unwrap(), 600);
    }

    /// A move cut short by a crash (some buckets written, the old index still there) is done
    /// again at the next start; and a store opened by an older regauth in between (a new
    /// `ids` tree holding only the tokens that version created) keeps the ids of both.
    #[test]
    fn a_move_cut_short_or_an_older_version_in_between_loses_no_id() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = many_tokens();
        write_old_layout(dir.path(), &tokens, |db| {
            // The first try wrote one bucket before the crash.
            let buckets = db.open_tree(ID_INDEX_TREE).unwrap();
            let t = &tokens[0];
            let key = name_key(&t.registry, t.name.as_str());
            let first = id_bucket::with(None, t.id, &key).unwrap();
            buckets.insert(id_bucket::key(t.id), first).unwrap();
        });
        let s = reopen(dir.path());
        assert_eq!(s.reindexed, Some(600));
        assert_found_by_id(&s, &tokens);
        assert!(!has_tree(&s, OLD_ID_TREE));
        drop(s);

        // An older regauth creates a token: record, old index entry. Its id shares a bucket
        // with a token of the first move.
        let mut id = *tokens[5].id.as_bytes();
        (id[1], id[15]) = (id[1] ^ 1, id[15] ^ 1);
        let older = Token {
            id: Uuid::from_bytes(id),
            ..token("default", "made-by-an-older-version")
        };
        assert_eq!(id_bucket::key(older.id), id_bucket::key(tokens[5].id));
        {
            let open = || sled::Config::new().path(dir.path()).open();
            let db = crate::testing::reopen_sled(|| open().map_err(|e| open_error(dir.path(), e)));
            let key = name_key("default", older.name.as_str());
            db.open_tree("tokens")
                .unwrap()
                .insert(&key, encode(&older).unwrap())
                .unwrap();
            db.open_tree(OLD_ID_TREE)
                .unwrap()
                .insert(older.id.as_bytes(), key)
                .unwrap();
            db.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.reindexed, Some(1));
        assert_found_by_id(&s, &tokens);
        assert_found_by_id(&s, &[older]);
    }

    /// Tokens whose ids share a bucket are kept apart: each is found, renamed and deleted
    /// without touching the other.
    #[test]
    fn ids_sharing_a_bucket_are_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let a = Token {
            id: Uuid::from_u128(1),
            ..token("default", "first")
        };
        let b = Token {
            id: Uuid::from_u128(1 << 16),
            ..token("default", "second")
        };
        assert_eq!(id_bucket::key(a.id), id_bucket::key(b.id));
        s.create(&a, &[]).unwrap();
        s.create(&b, &[]).unwrap();
        assert_eq!(s.ids.len(), 1, "one bucket");
        let taken = Token {
            id: a.id,
            ..token("default", "third")
        };
        assert!(matches!(s.create(&taken, &[]), Err(StoreError::IdTaken(id)) if id == a.id));
        assert_found_by_id(&s, &[a.clone(), b.clone()]);
        let renamed = Token {
            name: "renamed".parse().unwrap(),
            ..a.clone()
        };
        s.update(&renamed, &[]).unwrap();
        assert_found_by_id(&s, &[renamed.clone(), b.clone()]);
        assert!(s.delete("default", b.id, &[]).unwrap());
        assert_found_by_id(&s, std::slice::from_ref(&renamed));
        assert_eq!(s.get("default", b.id).unwrap(), None);
        assert!(s.delete("default", a.id, &[]).unwrap());
        assert!(s.ids.is_empty(), "the empty bucket goes");
    }

    /// Issue 22: a store written before the `last_uses` tree (the last use inside the token's
    /// record, no such tree) opens with its last uses; later uses go to the tree as small
    /// entries without rewriting the record, survive a reopen, and go with their token.
    #[test]
    fn last_uses_of_a_store_without_the_tree_are_kept() {
        use crate::store::conformance::{use_of, used};
        let dir = tempfile::tempdir().unwrap();
        let first = used(t0() + Duration::minutes(1), "192.0.2.1");
        let a = Token {
            last_used: Some(first),
            ..token("default", "used-before")
        };
        let b = token("default", "never-used");
        let a_key = name_key("default", "used-before");
        let a_record = encode(&a).unwrap();
        // The record holds the last use; no `last_uses`.
        write_old_layout(dir.path(), &[a.clone(), b.clone()], |_| {});
        let s = reopen(dir.path());
        assert_eq!(
            s.get("default", a.id).unwrap().unwrap().last_used,
            Some(first)
        );
        let found = s.find_by_name("default", "used-before").unwrap().unwrap();
        assert_eq!(found.last_used, Some(first));
        let listed = s.list("default", 0, 10).unwrap().items;
        // By name: never-used, used-before.
        assert_eq!(
            listed.iter().map(|t| t.last_used).collect::<Vec<_>>(),
            [None, Some(first)]
        );

        // Never backwards, also against a use held by the record only.
        let earlier = used(t0(), "192.0.2.2");
        assert_eq!(s.record_uses(&[use_of(&a, earlier)]).unwrap(), 0);
        let later = used(t0() + Duration::minutes(2), "2001:db8::1");
        assert_eq!(
            s.record_uses(&[use_of(&a, later), use_of(&b, first)])
                .unwrap(),
            2
        );
        assert_eq!(
            s.tokens.get(&a_key).unwrap().as_deref(),
            Some(&a_record[..]),
            "the token's record is not rewritten for a use"
        );
        assert!(s.last_uses.get(a.id.as_bytes()).unwrap().unwrap().len() < 32);
        // An admin update from a read before the use keeps the later use.
        s.update(
            &Token {
                status: Status::Disabled,
                ..a.clone()
            },
            &[],
        )
        .unwrap();
        drop(s);

        let s = reopen(dir.path());
        let a_now = s.find_by_name("default", "used-before").unwrap().unwrap();
        assert_eq!(
            (a_now.status, a_now.last_used),
            (Status::Disabled, Some(later))
        );
        assert_eq!(
            s.get("default", b.id).unwrap().unwrap().last_used,
            Some(first)
        );
        assert!(s.delete("default", a.id, &[]).unwrap());
        assert_eq!(
            s.last_uses.get(a.id.as_bytes()).unwrap(),
            None,
            "gone with its token"
        );
        assert_eq!(s.last_uses.len(), 1);
    }

    #[test]
    fn survives_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t = expiring("default", "durable", t0() + Duration::hours(2));
        let other = token("staging", "also-durable");
        {
            let s = engine(dir.path());
            s.create(&t, &[]).unwrap();
            s.create(&other, &[]).unwrap();
            s.add_refresh(&grant(&t, 3, t0()), 5).unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(
            s.find_by_name("default", "durable")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(t.clone())
        );
        assert_eq!(s.get("staging", other.id).unwrap(), Some(other));
        assert_eq!(
            s.find_refresh(&SecretHash([3; 32])).unwrap(),
            Some(grant(&t, 3, t0()))
        );
        assert_eq!(s.count().unwrap(), 2);
        assert_eq!(s.list("default", 0, 10).unwrap().total, 1);
        // The expiry index came back too.
        assert_eq!(
            s.delete_expired(t0() + Duration::hours(2), &[]).unwrap(),
            vec![t]
        );
    }

    #[test]
    fn backend_errors_keep_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        s.tokens
            .insert(name_key("default", "broken"), &b"{not json"[..])
            .unwrap();
        let err = s.find_by_name("default", "broken").map(drop).unwrap_err();
        let source = std::error::Error::source(&err).expect("the decoder's error is kept");
        // The context names the key; the source is the decoder's own message, not repeated.
        assert!(err.to_string().contains("default/broken"), "{err}");
        assert!(!err.to_string().contains(&source.to_string()), "{err}");

        // A sled failure is kept as the sled error itself.
        let err = backend(sled::Error::Unsupported("test".into()));
        let source = std::error::Error::source(&err).expect("sled's error is kept");
        assert!(source.downcast_ref::<sled::Error>().is_some(), "{source:?}");
        assert!(Chain(&err).to_string().contains("test"), "{}", Chain(&err));
    }

    #[test]
    fn undecodable_records_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        s.tokens
            .insert(name_key("default", "broken"), &b"{not json"[..])
            .unwrap();
        s.refresh.insert([0xab; 32], &b"[]"[..]).unwrap();
        s.counts.insert("default", &b"x"[..]).unwrap();

        let backend_message = |r: Result<_, StoreError>| match r {
            Err(e @ StoreError::Backend { .. }) => Chain(&e).to_string(),
            other => panic!("expected Backend, got {other:?}"),
        };
        let m = backend_message(s.find_by_name("default", "broken").map(drop));
        assert!(m.contains("default/broken") && m.contains("tokens"), "{m}");
        let m = backend_message(s.find_refresh(&SecretHash([0xab; 32])).map(drop));
        assert!(m.contains(&"ab".repeat(32)) && m.contains("refresh"), "{m}");
        let m = backend_message(s.count().map(drop));
        assert!(m.contains("counts"), "{m}");
        let m = backend_message(s.list("default", 0, 10).map(drop));
        assert!(m.contains("counts"), "{m}");
        let id = Uuid::from_u128(7);
        s.ids.insert(id_bucket::key(id), &[1, 0][..]).unwrap();
        let m = backend_message(s.get("default", id).map(drop));
        assert!(
            m.contains("malformed bucket 0007 in tree id_buckets: truncated entry"),
            "{m}"
        );
        let m = backend_message(s.delete("default", id, &[]).map(drop));
        assert!(m.contains("bucket 0007"), "{m}");
    }

    #[test]
    fn registry_with_nul_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let t = token("bad\0registry", "name");
        assert!(matches!(s.create(&t, &[]), Err(StoreError::Backend { .. })));
        assert_eq!(
            s.find_by_name("bad\0registry", "name")
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
        assert_eq!(s.count().unwrap(), 0);
    }

    /// The grant lock is what keeps grants from outliving their token (a grant added between
    /// delete's scan and its commit would be missed); black-box races rarely hit that
    /// window, so check directly that every write scanning grants waits for the lock.
    #[test]
    fn grant_scanning_writes_take_the_grant_lock() {
        use std::sync::mpsc;
        use std::time::Duration as Wait;

        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        let t = token("default", "locked");
        let due = expiring("default", "due", t0() + Duration::hours(2));
        s.create(&t, &[]).unwrap();
        s.create(&due, &[]).unwrap();

        type Write<'a> = Box<dyn Fn(&Engine) + Send + Sync + 'a>;
        let writes: Vec<(&str, Write<'_>)> = vec![
            (
                "add_refresh",
                Box::new(|s| s.add_refresh(&grant(&t, 1, t0()), 5).unwrap()),
            ),
            (
                "delete_expired",
                Box::new(|s| {
                    assert_eq!(
                        s.delete_expired(t0() + Duration::hours(2), &[])
                            .unwrap()
                            .len(),
                        1
                    )
                }),
            ),
            (
                "delete",
                Box::new(|s| assert!(s.delete("default", t.id, &[]).unwrap())),
            ),
        ];
        for (what, write) in &writes {
            let held = s.lock_grants();
            let (done_tx, done_rx) = mpsc::channel();
            std::thread::scope(|scope| {
                let s = &s;
                scope.spawn(move || {
                    write(s);
                    done_tx.send(()).unwrap();
                });
                let early = done_rx.recv_timeout(Wait::from_millis(200));
                assert!(
                    early.is_err(),
                    "{what} finished while the grant lock was held"
                );
                drop(held);
                done_rx.recv_timeout(Wait::from_secs(10)).unwrap();
            });
        }
        assert_eq!(s.find_refresh(&SecretHash([1; 32])).unwrap(), None);
        assert_eq!(s.count().unwrap(), 0);
    }

    #[test]
    fn millis_keys_sort_numerically() {
        let values = [i64::MIN, -86_400_000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let keys: Vec<_> = values.iter().map(|m| millis_key(*m)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn expiry_scan_stops_at_now() {
        let dir = tempfile::tempdir().unwrap();
        let s = engine(dir.path());
        for h in 1..=5 {
            s.create(
                &expiring("default", &format!("e-{h}"), t0() + Duration::hours(h)),
                &[],
            )
            .unwrap();
        }
        let mut upper = millis_key((t0() + Duration::hours(2)).timestamp_millis()).to_vec();
        upper.extend_from_slice(&[0xff; ID_LEN]);
        assert_eq!(s.expiry.range(..=upper).count(), 2);
        assert_eq!(
            s.delete_expired(t0() + Duration::hours(2), &[])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(s.expiry.len(), 3);
    }
}
