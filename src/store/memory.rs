//! In-memory store for tests. Same contract as the sled store, without durability.
//! Part of `store`: depends on `domain` only.
//!
//! One `RwLock` over all maps, so every write is atomic and name uniqueness holds under
//! concurrent creates. Indexes mirror the sled layout (name, id, expiry, refresh grants by
//! token ordered by creation millisecond) so both backends behave identically.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::outbox::{MemoryOutbox, Outbox};
use super::{Page, RefreshGrant, Report, Store, StoreError, TokenUse, TokenWrite};
use crate::domain::webhook::Delivery;
use crate::domain::{Admin, LastUse, SecretHash, Status, Token};

/// (registry, name): ordered by registry, then name, like the sled key `registry \0 name`.
type NameKey = (String, String);

/// Tokens and refresh grants in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    admins: RwLock<BTreeMap<String, Admin>>,
    /// The webhooks' outbox, written with the token changes (see [`Store::write`]).
    outbox: Arc<MemoryOutbox>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: BTreeMap<NameKey, Token>,
    ids: HashMap<Uuid, NameKey>,
    expiry: BTreeSet<(DateTime<Utc>, Uuid)>,
    refresh: HashMap<[u8; 32], RefreshGrant>,
    /// Per token: (created unix millis, hash), oldest first, as in sled's `refresh_by_token`.
    refresh_by_token: HashMap<Uuid, BTreeSet<(i64, [u8; 32])>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>, StoreError> {
        self.inner.read().map_err(|_| poisoned())
    }

    fn write_lock(&self) -> Result<RwLockWriteGuard<'_, Inner>, StoreError> {
        self.inner.write().map_err(|_| poisoned())
    }
}

fn poisoned() -> StoreError {
    StoreError::message("memory store lock poisoned by a panicked writer")
}

fn check_registry(registry: &str) -> Result<(), StoreError> {
    if registry.contains('\0') {
        return Err(StoreError::message(format!(
            "registry id {registry:?} contains NUL"
        )));
    }
    Ok(())
}

impl Inner {
    fn create(&mut self, token: &Token) -> Result<(), StoreError> {
        check_registry(&token.registry)?;
        let key = (token.registry.clone(), token.name.as_str().to_string());
        if self.tokens.contains_key(&key) {
            return Err(StoreError::NameTaken(key.1));
        }
        if self.ids.contains_key(&token.id) {
            return Err(StoreError::IdTaken(token.id));
        }
        self.ids.insert(token.id, key.clone());
        if let Some(expiry) = token.expiry {
            self.expiry.insert((expiry, token.id));
        }
        self.tokens.insert(key, token.clone());
        Ok(())
    }

    fn update(&mut self, token: &Token) -> Result<(), StoreError> {
        let old_key = match self.ids.get(&token.id) {
            Some(key) if key.0 == token.registry => key.clone(),
            _ => return Err(StoreError::NotFound),
        };
        let new_key = (token.registry.clone(), token.name.as_str().to_string());
        if new_key != old_key && self.tokens.contains_key(&new_key) {
            return Err(StoreError::NameTaken(new_key.1));
        }
        let old = self.tokens.remove(&old_key).ok_or(StoreError::NotFound)?;
        if let Some(expiry) = old.expiry {
            self.expiry.remove(&(expiry, old.id));
        }
        if let Some(expiry) = token.expiry {
            self.expiry.insert((expiry, token.id));
        }
        let mut stored = token.clone();
        stored.last_used = LastUse::latest(old.last_used, token.last_used);
        self.ids.insert(token.id, new_key.clone());
        self.tokens.insert(new_key, stored);
        if token.status != Status::Enabled {
            // A disabled token keeps no refresh grants (see the trait).
            for (_, hash) in self.refresh_by_token.remove(&token.id).unwrap_or_default() {
                self.refresh.remove(&hash);
            }
        }
        Ok(())
    }

    fn delete(&mut self, registry: &str, id: Uuid) -> bool {
        let key = match self.ids.get(&id) {
            Some(key) if key.0 == registry => key.clone(),
            _ => return false,
        };
        self.remove_token(&key).is_some()
    }

    /// Removes the token at `key` with everything that hangs off it.
    fn remove_token(&mut self, key: &NameKey) -> Option<Token> {
        let token = self.tokens.remove(key)?;
        self.ids.remove(&token.id);
        if let Some(expiry) = token.expiry {
            self.expiry.remove(&(expiry, token.id));
        }
        for (_, hash) in self.refresh_by_token.remove(&token.id).unwrap_or_default() {
            self.refresh.remove(&hash);
        }
        Some(token)
    }

    fn remove_grant(&mut self, hash: &[u8; 32]) {
        if let Some(old) = self.refresh.remove(hash) {
            if let Some(set) = self.refresh_by_token.get_mut(&old.token_id) {
                set.remove(&(old.created.timestamp_millis(), *hash));
                if set.is_empty() {
                    self.refresh_by_token.remove(&old.token_id);
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        let admins = self.admins.read().map_err(|_| poisoned())?;
        Ok(admins.values().cloned().collect())
    }

    async fn put_admin(&self, admin: &Admin, replace: bool) -> Result<(), StoreError> {
        let mut admins = self.admins.write().map_err(|_| poisoned())?;
        let name = admin.name.to_string();
        match (admins.contains_key(&name), replace) {
            (true, false) => return Err(StoreError::NameTaken(name)),
            (false, true) => return Err(StoreError::NotFound),
            _ => {}
        }
        admins.insert(name, admin.clone());
        Ok(())
    }

    async fn delete_admin(&self, name: &str) -> Result<bool, StoreError> {
        let mut admins = self.admins.write().map_err(|_| poisoned())?;
        Ok(admins.remove(name).is_some())
    }

    async fn find_by_name(
        &self,
        registry: &str,
        name: &str,
    ) -> Result<Option<Arc<Token>>, StoreError> {
        let inner = self.read()?;
        Ok(inner
            .tokens
            .get(&(registry.to_string(), name.to_string()))
            .map(|t| Arc::new(t.clone())))
    }

    async fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError> {
        let inner = self.read()?;
        Ok(inner
            .ids
            .get(&id)
            .filter(|key| key.0 == registry)
            .and_then(|key| inner.tokens.get(key))
            .cloned())
    }

    async fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, StoreError> {
        let inner = self.read()?;
        let all = inner
            .tokens
            .range((registry.to_string(), String::new())..)
            .take_while(|(key, _)| key.0 == registry);
        let total = all.clone().count();
        let items = all
            .skip(offset)
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect();
        Ok(Page { items, total })
    }

    async fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let inner = self.read()?;
        let matching = inner
            .tokens
            .range((registry.to_string(), String::new())..)
            .take_while(|(key, _)| key.0 == registry)
            .filter(|(key, _)| key.1.contains(needle));
        let total = matching.clone().count();
        let items = matching
            .skip(offset)
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect();
        Ok(Page { items, total })
    }

    async fn write(&self, write: TokenWrite<'_>, outbox: &[Delivery]) -> Result<bool, StoreError> {
        let mut inner = self.write_lock()?;
        let done = match write {
            TokenWrite::Create(token) => inner.create(token).map(|()| true)?,
            TokenWrite::Update(token) => inner.update(token).map(|()| true)?,
            TokenWrite::Delete { registry, id } => inner.delete(registry, id),
        };
        if done {
            // Under the token lock: the change and its deliveries appear together.
            self.outbox.add(outbox)?;
        }
        Ok(done)
    }

    fn outbox(self: Arc<Self>) -> Arc<dyn Outbox> {
        self.outbox.clone()
    }

    async fn delete_expired_reporting(
        &self,
        now: DateTime<Utc>,
        report: &Report<'_>,
    ) -> Result<Vec<Token>, StoreError> {
        let mut inner = self.write_lock()?;
        let due: Vec<Uuid> = inner
            .expiry
            .range(..=(now, Uuid::max()))
            .map(|(_, id)| *id)
            .collect();
        let mut deleted = Vec::with_capacity(due.len());
        for id in due {
            if let Some(key) = inner.ids.get(&id).cloned() {
                if let Some(t) = inner.remove_token(&key) {
                    self.outbox.add(&report(&t))?;
                    deleted.push(t);
                }
            }
        }
        Ok(deleted)
    }

    async fn add_refresh(
        &self,
        grant: &RefreshGrant,
        cap_per_token: usize,
    ) -> Result<(), StoreError> {
        let mut inner = self.write_lock()?;
        let key = (grant.registry.clone(), grant.token_name.clone());
        if inner.ids.get(&grant.token_id) != Some(&key) {
            return Err(StoreError::NotFound);
        }
        if inner.tokens.get(&key).map(|t| t.status) != Some(Status::Enabled) {
            // A disabled token takes no grants (see the trait).
            return Err(StoreError::NotFound);
        }
        let hash = grant.hash.0;
        inner.remove_grant(&hash);
        inner.refresh.insert(hash, grant.clone());
        let set = inner.refresh_by_token.entry(grant.token_id).or_default();
        set.insert((grant.created.timestamp_millis(), hash));
        let excess = set.len().saturating_sub(cap_per_token);
        let evicted: Vec<[u8; 32]> = set.iter().take(excess).map(|(_, h)| *h).collect();
        for h in &evicted {
            inner.remove_grant(h);
        }
        Ok(())
    }

    async fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError> {
        Ok(self.read()?.refresh.get(&hash.0).cloned())
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.read()?.tokens.len())
    }

    async fn refresh_count(&self) -> Result<usize, StoreError> {
        Ok(self.read()?.refresh.len())
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<usize, StoreError> {
        let mut inner = self.write_lock()?;
        let mut written = 0;
        for u in uses {
            let Some(key) = inner.ids.get(&u.id).filter(|k| k.0 == u.registry).cloned() else {
                continue;
            };
            if let Some(t) = inner.tokens.get_mut(&key) {
                if t.last_used.is_none_or(|old| u.last_use.at > old.at) {
                    t.last_used = Some(u.last_use);
                    written += 1;
                }
            }
        }
        Ok(written)
    }

    async fn expiring(&self, until: DateTime<Utc>) -> Result<Vec<Token>, StoreError> {
        let inner = self.read()?;
        Ok(inner
            .expiry
            .range(..=(until, Uuid::max()))
            .filter_map(|(_, id)| inner.ids.get(id).and_then(|k| inner.tokens.get(k)))
            .cloned()
            .collect())
    }
}
