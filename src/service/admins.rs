//! Named admins over the store: authenticate an `rgadm_` secret (one hash, one lookup in a
//! cache of the admins, a constant-time compare), list, create, rotate and delete. Async, as
//! the store is.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::clock::Clock;
use crate::domain::admin::{new_admin_secret, parse_admin_name, ADMIN_SECRET_PREFIX};
use crate::domain::{Admin, Principal, Role, SecretHash, ValidationError};
use crate::store::{Store, StoreError};

/// Why an admin-management operation failed; the HTTP layer maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum AdminsError {
    /// 400
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// 404
    #[error("admin {0:?} not found")]
    NotFound(String),
    /// 409
    #[error("an admin named {0:?} already exists")]
    Conflict(String),
    /// 500 or 503, as for tokens.
    #[error(transparent)]
    Store(StoreError),
    /// 500: no system randomness.
    #[error("no system randomness for a new admin secret")]
    Random,
}

/// What a new admin is to be.
#[derive(Debug, Clone)]
pub struct NewAdmin {
    pub name: String,
    pub role: Role,
    pub registries: Vec<String>,
}

type ByHash = HashMap<[u8; 32], Admin>;
/// The admins by hash with the store's admins generation they were read at.
type Cached = Option<(u64, Arc<ByHash>)>;

/// Named admins, with a cache by secret hash that every write here (and [`Self::invalidate`])
/// drops, and that is reloaded when the store's admins generation moves (another replica
/// changed them: PostgreSQL's notice) or not kept while the store cannot tell.
#[derive(Clone)]
pub struct AdminsService {
    store: Arc<dyn Store>,
    clock: Clock,
    /// The admins by secret hash, with the store's admins generation they were read at.
    cache: Arc<RwLock<Cached>>,
}

impl AdminsService {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> AdminsService {
        AdminsService {
            store,
            clock,
            cache: Arc::default(),
        }
    }

    /// Forgets the cached admins (after a write, or a change made elsewhere).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.write() {
            *c = None;
        }
    }

    async fn by_hash(&self) -> Result<Arc<ByHash>, StoreError> {
        // Read before loading: a change noticed during the load makes the next call reload.
        let generation = self.store.admins_generation();
        if let (Some(g), Ok(c)) = (generation, self.cache.read()) {
            if let Some((cached, map)) = c.as_ref() {
                if *cached == g {
                    return Ok(map.clone());
                }
            }
        }
        let map: Arc<ByHash> = Arc::new(
            self.store
                .admins()
                .await?
                .into_iter()
                .map(|a| (a.secret_hash.0, a))
                .collect(),
        );
        if let (Some(g), Ok(mut c)) = (generation, self.cache.write()) {
            *c = Some((g, map.clone()));
        }
        Ok(map)
    }

    /// The admin whose secret this is, if any. Secrets without the `rgadm_` prefix are not
    /// looked up at all.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        if !secret.starts_with(ADMIN_SECRET_PREFIX) {
            return Ok(None);
        }
        let hash = SecretHash::of(secret);
        let map = self.by_hash().await?;
        Ok(map
            .get(&hash.0)
            .filter(|a| a.secret_hash.ct_eq(&hash))
            .map(Admin::principal))
    }

    /// Every named admin, sorted by name.
    pub async fn list(&self) -> Result<Vec<Admin>, AdminsError> {
        self.store.admins().await.map_err(AdminsError::Store)
    }

    /// Creates an admin; returns it with its secret, shown this once.
    pub async fn create(&self, new: NewAdmin, by: &str) -> Result<(Admin, String), AdminsError> {
        let name = parse_admin_name(&new.name)?;
        let secret = new_admin_secret().map_err(|_| AdminsError::Random)?;
        let mut registries = new.registries;
        registries.sort();
        registries.dedup();
        let admin = Admin {
            name,
            role: new.role,
            registries,
            secret_hash: SecretHash::of(&secret),
            created: self.clock.now(),
            created_by: by.to_string(),
            rotated: None,
        };
        let result = self.store.put_admin(&admin, false).await;
        self.invalidate();
        result.map_err(|e| match e {
            StoreError::NameTaken(n) => AdminsError::Conflict(n),
            e => AdminsError::Store(e),
        })?;
        Ok((admin, secret))
    }

    /// Gives an admin a new secret; the old one stops working at once.
    pub async fn rotate(&self, name: &str) -> Result<(Admin, String), AdminsError> {
        let mut admin = self
            .list()
            .await?
            .into_iter()
            .find(|a| a.name.as_str() == name)
            .ok_or_else(|| AdminsError::NotFound(name.to_string()))?;
        let secret = new_admin_secret().map_err(|_| AdminsError::Random)?;
        admin.secret_hash = SecretHash::of(&secret);
        admin.rotated = Some(self.clock.now());
        let result = self.store.put_admin(&admin, true).await;
        self.invalidate();
        result.map_err(|e| match e {
            StoreError::NotFound => AdminsError::NotFound(name.to_string()),
            e => AdminsError::Store(e),
        })?;
        Ok((admin, secret))
    }

    /// Deletes an admin; its secret stops working at once.
    pub async fn delete(&self, name: &str) -> Result<(), AdminsError> {
        let result = self.store.delete_admin(name).await;
        self.invalidate();
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(AdminsError::NotFound(name.to_string())),
            Err(e) => Err(AdminsError::Store(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn service() -> AdminsService {
        AdminsService::new(Arc::new(MemoryStore::new()), Clock::system())
    }

    #[tokio::test]
    async fn create_authenticate_rotate_delete() {
        let s = service();
        let new = NewAdmin {
            name: "alice".into(),
            role: Role::Editor,
            registries: vec!["dev".into(), "dev".into()],
        };
        let (admin, secret) = s.create(new.clone(), "bootstrap").await.unwrap();
        assert_eq!(admin.registries, vec!["dev".to_string()]);
        assert!(secret.starts_with("rgadm_"));
        let who = s.authenticate(&secret).await.unwrap().unwrap();
        assert_eq!((who.name.as_str(), who.role), ("alice", Role::Editor));
        assert!(matches!(
            s.create(new, "x").await,
            Err(AdminsError::Conflict(_))
        ));
        assert_eq!(s.authenticate("rgadm_wrong").await.unwrap(), None);
        assert_eq!(s.authenticate("admin-token").await.unwrap(), None);

        let (_, fresh) = s.rotate("alice").await.unwrap();
        assert_eq!(
            s.authenticate(&secret).await.unwrap(),
            None,
            "old secret ends"
        );
        assert!(s.authenticate(&fresh).await.unwrap().is_some());
        s.delete("alice").await.unwrap();
        assert_eq!(
            s.authenticate(&fresh).await.unwrap(),
            None,
            "deleted admin ends"
        );
        assert!(matches!(
            s.delete("alice").await,
            Err(AdminsError::NotFound(_))
        ));
        assert!(matches!(
            s.rotate("alice").await,
            Err(AdminsError::NotFound(_))
        ));
    }
}
