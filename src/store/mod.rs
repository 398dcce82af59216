//! Persistence of tokens and refresh grants behind one trait, so a second backend fits
//! without touching handlers.
//!
//! The store depends on `domain` only (it stores [`Token`]s and [`RefreshGrant`]s as they are); it
//! knows nothing of HTTP, JWT or configuration, and it applies no business rules beyond
//! uniqueness and the refresh-grant cap.
//!
//! Implementations: [`SledStore`] (the embedded default, see its module for the on-disk
//! layout), [`PgStore`] (PostgreSQL, for replicas; see its module for schema, caching and
//! coherence) and [`MemoryStore`] (tests). All pass one conformance suite (`conformance.rs`).
//! Test doubles are built from `crate::testing` (one fault-injecting store), not by hand.
//! Beside the token store: registry events (`activity.rs`) and the webhooks' outbox
//! (`outbox.rs`), each behind its own trait with its own conformance functions. The outbox
//! lives in the token store's database, so that a token write and the webhook deliveries
//! reporting it commit in one transaction ([`Store::write`]).
//!
//! Contract for every implementation:
//! - every write is durable (flushed to disk, for disk backends) before the method returns;
//! - names are unique per registry, ids unique overall, also under concurrent creates
//!   (exactly one of two racing creates of one name succeeds);
//! - each write is atomic: no partially written token is ever visible;
//! - a token and its indexes (id, expiry, refresh grants) change together: deleting a token
//!   (directly or by expiry) deletes its refresh grants in the same write;
//! - `add_refresh` for a token that does not exist (by id, registry and name) is `NotFound`,
//!   so no grant outlives its token;
//! - a disabled token has no refresh grants: an `update` that leaves the token disabled deletes
//!   its grants in the same write, and `add_refresh` for a disabled token is `NotFound`. So
//!   disabling a token ends its sessions for good: enabling it again revives none of them;
//! - a registry id never contains NUL (they are slugs); writes reject one as `Backend`;
//! - a token's last use only moves forward: `update` keeps a stored `last_used` later than
//!   the one it is given, and `record_uses` changes nothing but `last_used`, so an admin
//!   write and a background write of last uses never undo each other.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::outbox::Outbox;
use crate::domain::webhook::Delivery;
use crate::domain::{Admin, LastUse, SecretHash, Token};
use crate::error::BoxError;

pub mod activity;
mod cache;
pub mod compact;
mod id_bucket;
pub mod memory;
pub mod migrate;
pub mod outbox;
pub mod postgres;
pub(crate) mod record;
pub mod settings;
pub mod sled;

pub use self::memory::MemoryStore;
pub use self::postgres::PgStore;
pub use self::settings::{StoreConfig, Tls};
pub use self::sled::SledStore;

/// Failures of the store. The handler maps `NameTaken`/`IdTaken` to 409, `NotFound` to 404,
/// `Unavailable` to 503, `Backend` to 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a token named {0:?} already exists in this registry")]
    NameTaken(String),
    #[error("a token with id {0} already exists")]
    IdTaken(Uuid),
    #[error("token not found")]
    NotFound,
    /// The database cannot be reached, or did not answer in time (PostgreSQL). Passing: the
    /// same call may work a moment later. A write that fails so may or may not have been
    /// committed (the connection broke before the answer came); it was not acknowledged.
    #[error("store unavailable: {context}")]
    Unavailable {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The storage engine failed, or a record or index is corrupt. `source` is the engine's
    /// (or decoder's) error when there is one.
    #[error("storage failure: {context}")]
    Backend {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// A backend failure caused by `source`.
    pub fn backend(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The database is unreachable or too slow, because of `source` if there is one.
    pub fn unavailable(context: impl Into<String>, source: Option<BoxError>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source,
        }
    }

    /// A backend failure with no underlying error to keep (a corrupt index or key found by
    /// regauth itself, a poisoned lock), or whose cause the message already explains.
    pub fn message(context: impl Into<String>) -> Self {
        StoreError::Backend {
            context: context.into(),
            source: None,
        }
    }
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
    /// For a login made with an OIDC ID token (a federated token): when the grant ends and
    /// what it carries. `None` for a password login's refresh token, which lives as long as
    /// its token.
    #[serde(default)]
    pub federated: Option<FederatedGrant>,
}

/// What a grant made from an ID token adds: a refresh token of a federated login, or a
/// temporary password from a token exchange. Both end at `expires` (the end of the
/// federation's session) and die with their token like any grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederatedGrant {
    /// The instant it stops working.
    pub expires: DateTime<Utc>,
    /// A temporary password (usable with Basic auth), not a refresh token.
    pub temporary: bool,
    /// The ID token's claims, for the `${claim}` templates of the token's scopes once the
    /// ID token itself has expired. Claims are not secrets.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl RefreshGrant {
    /// Whether it still works at `now`: a federated grant until it expires, any other for as
    /// long as it is stored.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.federated.as_ref().is_none_or(|f| now < f.expires)
    }
}

/// A token write of [`Store::write`].
#[derive(Debug, Clone, Copy)]
pub enum TokenWrite<'a> {
    /// [`Store::create`].
    Create(&'a Token),
    /// [`Store::update`].
    Update(&'a Token),
    /// [`Store::delete`].
    Delete { registry: &'a str, id: Uuid },
}

/// What [`Store::delete_expired_reporting`] writes to the outbox for each deleted token.
pub type Report<'a> = dyn Fn(&Token) -> Vec<Delivery> + Send + Sync + 'a;

/// A token's last use, to be written by [`Store::record_uses`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUse {
    pub registry: String,
    pub id: Uuid,
    /// The token's name (which never changes): the sled store finds the token by it, in the
    /// tree the token endpoint keeps warm, instead of by id.
    pub name: String,
    pub last_use: LastUse,
}

/// The storage interface. Methods are async: PostgreSQL awaits its database on the server's
/// runtime, and sled runs its fsyncing writes on a blocking thread inside the store (see
/// each backend), so no caller parks a worker thread or needs `spawn_blocking` for the store.
///
/// Why `async_trait`: `dyn Store` must stay object-safe (`Arc<dyn Store>` in the state, test
/// wrappers around any backend), and native `async fn` in traits is not. The price is one
/// boxed future per call, small next to a hash and a signature. An enum over the closed set
/// of backends would avoid it but close the door on test stores (fault injection).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The token named `name` in `registry`. The token endpoint's one read; shared (`Arc`)
    /// so that a cached token is handed out without copying it.
    async fn find_by_name(
        &self,
        registry: &str,
        name: &str,
    ) -> Result<Option<Arc<Token>>, StoreError>;

    /// The token with `id`, if it belongs to `registry`.
    async fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError>;

    /// Tokens of `registry` sorted by name, skipping `offset`, at most `limit`.
    async fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, StoreError>;

    /// Like [`Store::list`], but only the tokens whose name contains `needle` (compared
    /// byte for byte); `total` counts the matches. An empty needle matches every token.
    ///
    /// The default reads the whole registry; backends override it to skip decoding the
    /// tokens that do not match.
    async fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let all = self.list(registry, 0, usize::MAX).await?;
        let matching: Vec<Token> = all
            .items
            .into_iter()
            .filter(|t| t.name.as_str().contains(needle))
            .collect();
        let total = matching.len();
        let items = matching.into_iter().skip(offset).take(limit).collect();
        Ok(Page { items, total })
    }

    /// Tokens of `registry` whose owner is exactly `owner`, sorted by name, skipping
    /// `offset`, at most `limit`; `total` counts the matches.
    ///
    /// The default reads the whole registry (an admin request, not the token endpoint);
    /// PostgreSQL reads its owner index.
    async fn list_by_owner(
        &self,
        registry: &str,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let all = self.list(registry, 0, usize::MAX).await?;
        let matching: Vec<Token> = all
            .items
            .into_iter()
            .filter(|t| t.owner.as_ref().is_some_and(|o| o.as_str() == owner))
            .collect();
        let total = matching.len();
        let items = matching.into_iter().skip(offset).take(limit).collect();
        Ok(Page { items, total })
    }

    /// Makes the token write `write` and adds the webhook deliveries `outbox` (those that
    /// report it) to [`Store::outbox`], in one transaction: both are committed or neither is,
    /// so a change is never made without its events, nor an event written for a change that
    /// failed. A delivery whose id is already in the outbox is kept as it is. Returns whether
    /// the write happened: always `true` for a create or update (their failures are errors),
    /// for a delete whether the token existed (when it did not, nothing is written).
    async fn write(&self, write: TokenWrite<'_>, outbox: &[Delivery]) -> Result<bool, StoreError>;

    /// Inserts a new token. `NameTaken` if the name exists in its registry, `IdTaken` if the id
    /// exists anywhere.
    async fn create(&self, token: &Token) -> Result<(), StoreError> {
        self.write(TokenWrite::Create(token), &[]).await.map(drop)
    }

    /// Replaces the token with `token.id` in `token.registry`. `NotFound` if absent. The name
    /// cannot change (callers check; the store keeps its name index consistent regardless).
    /// If `token` is disabled, its refresh grants are deleted in the same write.
    async fn update(&self, token: &Token) -> Result<(), StoreError> {
        self.write(TokenWrite::Update(token), &[]).await.map(drop)
    }

    /// Deletes a token and all its refresh grants. Returns whether it existed.
    async fn delete(&self, registry: &str, id: Uuid) -> Result<bool, StoreError> {
        self.write(TokenWrite::Delete { registry, id }, &[]).await
    }

    /// Deletes every token whose expiry is at or before `now` (and their refresh grants);
    /// returns the deleted tokens. For each, the deliveries `report` makes of it are added to
    /// the outbox in the transaction that deletes it (as [`Store::write`] does).
    async fn delete_expired_reporting(
        &self,
        now: DateTime<Utc>,
        report: &Report<'_>,
    ) -> Result<Vec<Token>, StoreError>;

    /// [`Store::delete_expired_reporting`] with no deliveries.
    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<Vec<Token>, StoreError> {
        self.delete_expired_reporting(now, &|_| Vec::new()).await
    }

    /// The webhooks' outbox this store writes deliveries to in [`Store::write`] (in the
    /// same database: the sled store's tree `outbox`, PostgreSQL's deliveries table).
    fn outbox(self: Arc<Self>) -> Arc<dyn Outbox>;

    /// Stores a refresh grant. Keeps at most `cap_per_token` grants per token: the oldest
    /// ones beyond that are deleted. `NotFound` if the token does not exist or is disabled.
    async fn add_refresh(
        &self,
        grant: &RefreshGrant,
        cap_per_token: usize,
    ) -> Result<(), StoreError>;

    /// The refresh grant whose secret hashes to `hash`.
    async fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError>;

    /// Number of tokens in all registries (for start-up logging and benchmarks).
    async fn count(&self) -> Result<usize, StoreError>;

    /// Number of refresh tokens stored, all registries (for the metrics, counted once a
    /// minute: may walk the refresh tokens' keys).
    async fn refresh_count(&self) -> Result<usize, StoreError>;

    /// Sets `last_used` of each token in `uses` (by registry and id) that still exists, unless
    /// its stored last use is later; changes nothing else. Tokens that are gone are skipped.
    /// Durable once, for the whole batch. Returns how many tokens were written.
    async fn record_uses(&self, uses: &[TokenUse]) -> Result<usize, StoreError>;

    /// Every token, in all registries, whose expiry is at or before `until` (expired ones
    /// not yet deleted included), soonest first. Reads the expiry index, not every token.
    async fn expiring(&self, until: DateTime<Utc>) -> Result<Vec<Token>, StoreError>;

    /// Whether the store can serve requests now (`/ready`). Embedded stores always can; a
    /// database store asks its database, within its timeouts.
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Every named admin, sorted by name.
    async fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        Ok(Vec::new())
    }

    /// A number that changes whenever the admins may have changed elsewhere (another
    /// replica), so a cache of them knows to reload; `None`: cache nothing now. An embedded
    /// store has one writer, which drops its own cache: always `Some(0)`.
    fn admins_generation(&self) -> Option<u64> {
        Some(0)
    }

    /// Stores a new admin (`NameTaken` if the name exists) or, with `replace`, replaces one
    /// (`NotFound` if it does not exist).
    async fn put_admin(&self, admin: &Admin, replace: bool) -> Result<(), StoreError> {
        let _ = (admin, replace);
        Err(StoreError::message(
            "this store backend does not keep named admins",
        ))
    }

    /// Deletes the admin `name`; whether it existed.
    async fn delete_admin(&self, name: &str) -> Result<bool, StoreError> {
        let _ = name;
        Ok(false)
    }
}

#[cfg(test)]
pub(crate) mod conformance;
