//! Token administration: create, replace, change, delete, read, list. Validates the rules
//! that need the clock or the store (expiry ahead, unique names); shapes are validated when
//! wire values are parsed into domain types.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::secret::{try_new_secret, PASSWORD_PREFIX};
use crate::domain::{
    validate_expiry, validate_scope_list, Scope, SecretHash, Status, Token, TokenName,
    ValidationError,
};
use crate::store::{Page, Store, StoreError};

/// Who made a change, recorded in `createdBy`/`lastModifiedBy`. The admin API has a single
/// shared admin token, so there is one actor.
pub const ADMIN_ACTOR: &str = "admin";

/// A token as a create or a full replace (PUT) describes it.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: TokenName,
    pub status: Status,
    pub expiry: Option<DateTime<Utc>>,
    pub scopes: Vec<Scope>,
}

/// A partial change (PATCH). `expiry: Some(None)` removes the expiry.
#[derive(Debug, Clone, Default)]
pub struct TokenChanges {
    pub status: Option<Status>,
    pub expiry: Option<Option<DateTime<Utc>>>,
    pub scopes: Option<Vec<Scope>>,
}

/// What a PUT did.
#[derive(Debug)]
pub enum PutOutcome {
    /// A new token, with its one-time password.
    Created(Token, String),
    Replaced(Token),
}

/// Why an admin operation failed; the HTTP layer maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 400
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// 404
    #[error("token {0} not found")]
    NotFound(Uuid),
    /// 409
    #[error("{0}")]
    Conflict(String),
    /// 500
    #[error("storage failure: {0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken(_) | StoreError::IdTaken(_) => {
                AdminError::Conflict(e.to_string())
            }
            StoreError::NotFound => {
                AdminError::Internal("token vanished during the operation".into())
            }
            StoreError::Backend(m) => AdminError::Internal(m),
        }
    }
}

/// Token administration over a store. Writes are blocking (they fsync): call from a blocking
/// thread.
#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    clock: Clock,
}

impl AdminService {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        AdminService { store, clock }
    }

    /// Creates a token with a fresh password; returns it with the password (shown once).
    pub fn create(
        &self,
        registry: &str,
        id: Option<Uuid>,
        new: NewToken,
    ) -> Result<(Token, String), AdminError> {
        let now = self.clock.now();
        check_new(&new, now)?;
        let password = try_new_secret(PASSWORD_PREFIX)
            .map_err(|_| AdminError::Internal("no system randomness for a password".into()))?;
        let token = Token {
            id: id.unwrap_or_else(Uuid::new_v4),
            registry: registry.to_string(),
            name: new.name,
            status: new.status,
            expiry: new.expiry,
            scopes: new.scopes,
            secret_hash: SecretHash::of(&password),
            created: now,
            created_by: ADMIN_ACTOR.into(),
            modified: now,
            modified_by: ADMIN_ACTOR.into(),
        };
        self.store.create(&token)?;
        Ok((token, password))
    }

    /// Creates the token with `id` or replaces it entirely (keeping its secret). The name of
    /// an existing token cannot change.
    pub fn put(&self, registry: &str, id: Uuid, new: NewToken) -> Result<PutOutcome, AdminError> {
        let now = self.clock.now();
        let Some(existing) = self.get(registry, id)? else {
            let (t, pw) = self.create(registry, Some(id), new)?;
            return Ok(PutOutcome::Created(t, pw));
        };
        if existing.name != new.name {
            return Err(ValidationError::new(
                "properties.name",
                format!(
                    "cannot be changed (token {id} is named {:?})",
                    existing.name.as_str()
                ),
            )
            .into());
        }
        validate_scope_list(&new.scopes).map_err(|e| e.within("properties"))?;
        if new.expiry != existing.expiry {
            if let Some(exp) = new.expiry {
                validate_expiry(exp, now).map_err(|e| e.within("properties"))?;
            }
        }
        let token = Token {
            status: new.status,
            expiry: new.expiry,
            scopes: new.scopes,
            modified: now,
            modified_by: ADMIN_ACTOR.into(),
            ..existing
        };
        self.store.update(&token)?;
        Ok(PutOutcome::Replaced(token))
    }

    /// Applies a partial change.
    pub fn patch(
        &self,
        registry: &str,
        id: Uuid,
        changes: TokenChanges,
    ) -> Result<Token, AdminError> {
        let now = self.clock.now();
        let mut token = self.get(registry, id)?.ok_or(AdminError::NotFound(id))?;
        if let Some(status) = changes.status {
            token.status = status;
        }
        if let Some(expiry) = changes.expiry {
            if let Some(exp) = expiry {
                if Some(exp) != token.expiry {
                    validate_expiry(exp, now)?;
                }
            }
            token.expiry = expiry;
        }
        if let Some(scopes) = changes.scopes {
            validate_scope_list(&scopes)?;
            token.scopes = scopes;
        }
        token.modified = now;
        token.modified_by = ADMIN_ACTOR.into();
        self.store.update(&token)?;
        Ok(token)
    }

    /// Deletes a token (and its refresh tokens).
    pub fn delete(&self, registry: &str, id: Uuid) -> Result<(), AdminError> {
        if self.get(registry, id)?.is_none() {
            return Err(AdminError::NotFound(id));
        }
        if self.store.delete(registry, id)? {
            Ok(())
        } else {
            Err(AdminError::NotFound(id))
        }
    }

    /// The token, unless it does not exist or has expired (an expired token is deleted, swept
    /// or not).
    pub fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, AdminError> {
        let now = self.clock.now();
        Ok(self.store.get(registry, id)?.filter(|t| !t.is_expired(now)))
    }

    /// A page of tokens sorted by name. Sweeps expired tokens first so they are never listed.
    pub fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, AdminError> {
        self.sweep()?;
        Ok(self.store.list(registry, offset, limit)?)
    }

    /// Like [`AdminService::list`], only the tokens whose name contains `needle`.
    pub fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, AdminError> {
        self.sweep()?;
        Ok(self.store.list_matching(registry, needle, offset, limit)?)
    }

    /// Deletes expired tokens; returns them.
    pub fn sweep(&self) -> Result<Vec<Token>, AdminError> {
        Ok(self.store.delete_expired(self.clock.now())?)
    }
}

fn check_new(new: &NewToken, now: DateTime<Utc>) -> Result<(), ValidationError> {
    validate_scope_list(&new.scopes).map_err(|e| e.within("properties"))?;
    if let Some(exp) = new.expiry {
        validate_expiry(exp, now).map_err(|e| e.within("properties"))?;
    }
    Ok(())
}
