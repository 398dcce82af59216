//! Persistence of tokens and refresh grants behind one trait, so a second backend fits
//! without touching handlers. Depends on `domain` only; knows nothing of HTTP.
//!
//! Contract for every implementation:
//! - every write is durable (flushed to disk, for disk backends) before the method returns;
//! - names are unique per registry, ids unique overall, also under concurrent creates
//!   (exactly one of two racing creates of one name succeeds);
//! - each write is atomic: no partially written token is ever visible.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{SecretHash, Token};

pub mod memory;
pub mod sled;

pub use self::memory::MemoryStore;
pub use self::sled::SledStore;

/// Failures of the store. The handler maps `NameTaken`/`IdTaken` to 409, `NotFound` to 404,
/// `Backend` to 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a token named {0:?} already exists in this registry")]
    NameTaken(String),
    #[error("a token with id {0} already exists")]
    IdTaken(Uuid),
    #[error("token not found")]
    NotFound,
    #[error("storage failure: {0}")]
    Backend(String),
}

/// One page of a registry's tokens, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Token>,
    /// Number of tokens in the registry.
    pub total: usize,
}

/// A refresh token handed out by the token endpoint, stored by the hash of its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub hash: SecretHash,
    /// The token it was issued for; it dies with that token.
    pub token_id: Uuid,
    pub registry: String,
    pub token_name: String,
    /// The only service it is valid for.
    pub service: String,
    pub created: DateTime<Utc>,
}

/// The storage interface. Methods are synchronous (sled is); callers on async paths that
/// write (and so fsync) run them on a blocking thread.
pub trait Store: Send + Sync + 'static {
    /// The token named `name` in `registry`. The token endpoint's one read.
    fn find_by_name(&self, registry: &str, name: &str) -> Result<Option<Token>, StoreError>;

    /// The token with `id`, if it belongs to `registry`.
    fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError>;

    /// Tokens of `registry` sorted by name, skipping `offset`, at most `limit`.
    fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, StoreError>;

    /// Inserts a new token. `NameTaken` if the name exists in its registry, `IdTaken` if the id
    /// exists anywhere.
    fn create(&self, token: &Token) -> Result<(), StoreError>;

    /// Replaces the token with `token.id` in `token.registry`. `NotFound` if absent. The name
    /// cannot change (callers check; the store keeps its name index consistent regardless).
    fn update(&self, token: &Token) -> Result<(), StoreError>;

    /// Deletes a token and all its refresh grants. Returns whether it existed.
    fn delete(&self, registry: &str, id: Uuid) -> Result<bool, StoreError>;

    /// Deletes every token whose expiry is at or before `now` (and their refresh grants);
    /// returns the deleted tokens.
    fn delete_expired(&self, now: DateTime<Utc>) -> Result<Vec<Token>, StoreError>;

    /// Stores a refresh grant. Keeps at most `cap_per_token` grants per token: the oldest
    /// ones beyond that are deleted.
    fn add_refresh(&self, grant: &RefreshGrant, cap_per_token: usize) -> Result<(), StoreError>;

    /// The refresh grant whose secret hashes to `hash`.
    fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError>;

    /// Number of tokens in all registries (for start-up logging and benchmarks).
    fn count(&self) -> Result<usize, StoreError>;
}
