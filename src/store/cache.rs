//! A bounded cache of decoded tokens in front of sled's `tokens` tree (and PostgreSQL's
//! `regauth_tokens` table), for name lookups (the token endpoint's one store read). Part of
//! `store`; used by `sled.rs` and `postgres`. Depends on `domain` and `quick_cache`. How
//! PostgreSQL replicas keep it coherent with each other: `postgres/listener.rs`.
//!
//! Why: at 1 000 000 tokens, sled's lookup (page table, B-tree nodes, LRU bookkeeping) costs
//! about three times what it costs at 10 000, all of it CPU-cache misses, plus decoding the
//! record. Tokens that CI fleets use over and over are served from here instead; a name that
//! is not here costs one sled read, as before.
//!
//! Coherence, which must hold for a security decision (a disabled or deleted token must stop
//! working at once):
//! - every write that changes or removes a record in `tokens` calls [`TokenCache::invalidate`]
//!   with its key *after* its transaction has committed;
//! - a lookup that missed reads the epoch *before* reading sled, and inserts what it read only
//!   if the epoch is unchanged, checked under the same mutex under which `invalidate` removes
//!   the entry and moves the epoch on. So a value read before a write committed is never
//!   cached after that write's invalidation: either the insert happened first (and the
//!   invalidation removes it) or the insert sees the new epoch (and is skipped);
//! - unknown names are cached too, as "absent" (so that an unknown name costs what a known one
//!   costs: no sled read, no timing difference to probe names with); a create therefore
//!   invalidates its name key like every other write, after its commit, and the epoch rule
//!   above keeps an "absent" read before the create from being cached after it.
//!
//! A spray of unknown names fills the cache with small "absent" entries (about a tenth of a
//! token's weight): memory stays bounded by the byte budget, and quick_cache's admission (new
//! entries start in a small probationary queue) keeps one-off names from evicting the tokens
//! that are used over and over.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use uuid::Uuid;

use super::RefreshGrant;
use crate::domain::{LastUse, Token};

/// Memory the cached tokens may take, by [`TokenWeight`]'s estimate: about 20 000 tokens
/// with a few scopes each, fewer with many scopes.
pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Approximate heap bytes of a cached token: the fixed part, the strings and the scopes.
#[derive(Clone)]
struct TokenWeight;

impl Weighter<Vec<u8>, Option<Arc<Token>>> for TokenWeight {
    fn weight(&self, key: &Vec<u8>, token: &Option<Arc<Token>>) -> u64 {
        let Some(token) = token else {
            return (32 + key.len()) as u64;
        };
        let strings = token.registry.len()
            + token.name.as_str().len()
            + token.created_by.len()
            + token.modified_by.len();
        let scopes: usize = token.scopes.iter().map(|s| 48 + s.name_str().len()).sum();
        (256 + key.len() + strings + scopes) as u64
    }
}

/// Name key (`registry \0 name`) -> decoded token, or `None`: no token has that name.
pub struct TokenCache {
    map: Cache<Vec<u8>, Option<Arc<Token>>, TokenWeight>,
    /// Moves on at every invalidation.
    epoch: AtomicU64,
    /// Held for "check the epoch, insert" and for "remove, move the epoch on".
    guard: Mutex<()>,
}

impl TokenCache {
    /// A cache holding up to about `bytes` of tokens; with 0 it holds none.
    pub fn new(bytes: u64) -> TokenCache {
        TokenCache {
            map: Cache::with_weighter((bytes / 512).max(1) as usize, bytes.max(1), TokenWeight),
            epoch: AtomicU64::new(0),
            guard: Mutex::new(()),
        }
    }

    /// What is cached at `key`: `Some(Some(token))`, `Some(None)` (known absent) or `None`
    /// (not cached: read sled).
    pub fn get(&self, key: &[u8]) -> Option<Option<Arc<Token>>> {
        self.map.get(key)
    }

    /// To be read before a lookup that may be cached with [`TokenCache::insert_if_current`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches `token` (or its absence), read from sled at `key` after [`TokenCache::epoch`]
    /// returned `epoch`, unless some record was invalidated since.
    pub fn insert_if_current(&self, key: &[u8], token: Option<Arc<Token>>, epoch: u64) {
        let _held = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.map.insert(key.to_vec(), token);
        }
    }

    /// Drops `key`'s entry; call after a committed write (a create included) to the record at
    /// `key`.
    pub fn invalidate(&self, key: &[u8]) {
        let _held = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
        self.map.remove(key);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every entry (and moves the epoch on, so no read that started before is cached).
    pub fn clear(&self) {
        let _held = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
        self.map.clear();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// After `last_use` of token `id` was written: the cached token at `key`, if it is that
    /// token, shows it (when later than what it shows); anything else cached there is left
    /// alone. Unlike [`TokenCache::invalidate`] the token stays cached, so the last-use
    /// writer's flush of thousands of uses does not send the token endpoint back to sled for
    /// each of them. Under the lock `invalidate` takes, so it never brings back an entry a
    /// committed write dropped, and it moves the epoch on like `invalidate`, so a lookup that
    /// read sled before the use was written does not cache what it read.
    pub fn show_last_use(&self, key: &[u8], id: Uuid, last_use: LastUse) {
        let _held = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Some(cached)) = self.map.get(key) {
            if cached.id == id && cached.last_used.is_none_or(|old| old.at < last_use.at) {
                let mut token = Token::clone(&cached);
                token.last_used = Some(last_use);
                self.map.insert(key.to_vec(), Some(Arc::new(token)));
            }
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Number of cached tokens.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// Refresh grants by the hash of their secret, for PostgreSQL's `find_refresh` (docker's
/// identity-token requests). Only grants that exist are cached (an unknown secret is never
/// remembered: a spray of guesses fills nothing). Coherence is the token cache's epoch rule,
/// but coarser: every change to any token (a notice from another replica, or this replica's
/// own write) and every grant trimmed beyond the cap drops every cached grant, as grants are
/// revoked by their token's disable or delete, which names the token, not its grants.
pub struct GrantCache {
    map: Cache<[u8; 32], Arc<RefreshGrant>>,
    epoch: AtomicU64,
    guard: Mutex<()>,
}

/// Grants kept by [`GrantCache::new`]'s default: about 2 MB.
pub const DEFAULT_GRANTS: usize = 8192;

impl GrantCache {
    /// A cache of up to `capacity` grants (0: none).
    pub fn new(capacity: usize) -> GrantCache {
        GrantCache {
            map: Cache::new(capacity.max(1)),
            epoch: AtomicU64::new(0),
            guard: Mutex::new(()),
        }
    }

    /// The cached grant of `hash`, if any.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Arc<RefreshGrant>> {
        self.map.get(hash)
    }

    /// To be read before a lookup that may be cached with [`GrantCache::insert_if_current`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches `grant`, read after [`GrantCache::epoch`] returned `epoch`, unless the cache
    /// was cleared since.
    pub fn insert_if_current(&self, grant: Arc<RefreshGrant>, epoch: u64) {
        let _held = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.map.insert(grant.hash.0, grant);
        }
    }

    /// Drops every grant (and moves the epoch on, so no read that started before is cached).
    pub fn clear(&self) {
        let _held = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
        self.map.clear();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> Arc<Token> {
        Arc::new(crate::testing::token("default", name))
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let cache = TokenCache::new(DEFAULT_CACHE_BYTES);
        let before = cache.epoch();
        // ... the reader reads the old record from sled; meanwhile a write commits:
        cache.invalidate(b"k");
        cache.insert_if_current(b"k", Some(token("old")), before);
        assert!(cache.get(b"k").is_none(), "a stale read must not be cached");
        // A read that started after the invalidation is cached.
        let after = cache.epoch();
        cache.insert_if_current(b"k", Some(token("new")), after);
        assert_eq!(cache.get(b"k").unwrap().unwrap().name.as_str(), "new");
        cache.invalidate(b"k");
        assert!(cache.get(b"k").is_none());
    }

    #[test]
    fn an_absence_read_before_a_create_is_not_cached_after_it() {
        let cache = TokenCache::new(DEFAULT_CACHE_BYTES);
        let before = cache.epoch();
        // ... the reader finds no token in sled; meanwhile a create commits and invalidates:
        cache.invalidate(b"k");
        cache.insert_if_current(b"k", None, before);
        assert!(
            cache.get(b"k").is_none(),
            "a stale absence must not be cached"
        );
        let after = cache.epoch();
        cache.insert_if_current(b"k", None, after);
        assert!(
            matches!(cache.get(b"k"), Some(None)),
            "a known absence is cached"
        );
        cache.invalidate(b"k");
        assert!(
            cache.get(b"k").is_none(),
            "a create makes the name visible at once"
        );
    }

    #[test]
    fn a_zero_byte_cache_holds_nothing() {
        let cache = TokenCache::new(0);
        let epoch = cache.epoch();
        cache.insert_if_current(b"default\0abc", Some(token("abc")), epoch);
        assert!(cache.get(b"default\0abc").is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn memory_is_bounded_by_weight() {
        let cache = TokenCache::new(64 * 1024);
        for i in 0..10_000 {
            let key = format!("default\0tok{i}");
            let epoch = cache.epoch();
            cache.insert_if_current(key.as_bytes(), Some(token(&format!("tok{i}"))), epoch);
        }
        // ~300 bytes each by the weigher: at most ~220 fit in 64 KiB.
        assert!(cache.len() <= 250, "{} tokens cached", cache.len());
        assert!(cache.len() >= 50, "{} tokens cached", cache.len());
    }
}
