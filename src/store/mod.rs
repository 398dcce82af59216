//! Persistence of tokens and refresh grants behind one trait, so a second backend fits
//! without touching handlers.
//!
//! Dependency direction: `http -> {auth, admin services} -> store -> domain`. The store
//! depends on `domain` only (it stores [`Token`]s and [`RefreshGrant`]s as they are); it
//! knows nothing of HTTP, JWT or configuration, and it applies no business rules beyond
//! uniqueness and the refresh-grant cap.
//!
//! Implementations: [`SledStore`] (the embedded default, see its module for the on-disk
//! layout), [`PgStore`] (PostgreSQL, for replicas; see its module for schema, caching and
//! coherence) and [`MemoryStore`] (tests). All pass one conformance suite (`tests` below).
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

use crate::domain::{Admin, LastUse, SecretHash, Token};
use crate::error::BoxError;

pub mod activity;
mod cache;
pub mod memory;
pub mod migrate;
pub mod postgres;
pub(crate) mod record;
pub mod sled;

pub use self::memory::MemoryStore;
pub use self::postgres::PgStore;
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
}

/// A token's last use, to be written by [`Store::record_uses`].
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUse {
    pub registry: String,
    pub id: Uuid,
    pub last_use: LastUse,
}

/// The storage interface. Methods are synchronous (sled is); callers on async paths that
/// write (and so fsync) run them on a blocking thread.
pub trait Store: Send + Sync + 'static {
    /// The token named `name` in `registry`. The token endpoint's one read; shared (`Arc`)
    /// so that a cached token is handed out without copying it.
    fn find_by_name(&self, registry: &str, name: &str) -> Result<Option<Arc<Token>>, StoreError>;

    /// The token with `id`, if it belongs to `registry`.
    fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError>;

    /// Tokens of `registry` sorted by name, skipping `offset`, at most `limit`.
    fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, StoreError>;

    /// Like [`Store::list`], but only the tokens whose name contains `needle` (compared
    /// byte for byte); `total` counts the matches. An empty needle matches every token.
    ///
    /// The default reads the whole registry; backends override it to skip decoding the
    /// tokens that do not match.
    fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let all = self.list(registry, 0, usize::MAX)?;
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
    fn list_by_owner(
        &self,
        registry: &str,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let all = self.list(registry, 0, usize::MAX)?;
        let matching: Vec<Token> = all
            .items
            .into_iter()
            .filter(|t| t.owner.as_ref().is_some_and(|o| o.as_str() == owner))
            .collect();
        let total = matching.len();
        let items = matching.into_iter().skip(offset).take(limit).collect();
        Ok(Page { items, total })
    }

    /// Inserts a new token. `NameTaken` if the name exists in its registry, `IdTaken` if the id
    /// exists anywhere.
    fn create(&self, token: &Token) -> Result<(), StoreError>;

    /// Replaces the token with `token.id` in `token.registry`. `NotFound` if absent. The name
    /// cannot change (callers check; the store keeps its name index consistent regardless).
    /// If `token` is disabled, its refresh grants are deleted in the same write.
    fn update(&self, token: &Token) -> Result<(), StoreError>;

    /// Deletes a token and all its refresh grants. Returns whether it existed.
    fn delete(&self, registry: &str, id: Uuid) -> Result<bool, StoreError>;

    /// Deletes every token whose expiry is at or before `now` (and their refresh grants);
    /// returns the deleted tokens.
    fn delete_expired(&self, now: DateTime<Utc>) -> Result<Vec<Token>, StoreError>;

    /// Stores a refresh grant. Keeps at most `cap_per_token` grants per token: the oldest
    /// ones beyond that are deleted. `NotFound` if the token does not exist or is disabled.
    fn add_refresh(&self, grant: &RefreshGrant, cap_per_token: usize) -> Result<(), StoreError>;

    /// The refresh grant whose secret hashes to `hash`.
    fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError>;

    /// Number of tokens in all registries (for start-up logging and benchmarks).
    fn count(&self) -> Result<usize, StoreError>;

    /// Number of refresh tokens stored, all registries (for the metrics, counted once a
    /// minute: may walk the refresh tokens' keys).
    fn refresh_count(&self) -> Result<usize, StoreError>;

    /// Sets `last_used` of each token in `uses` (by registry and id) that still exists, unless
    /// its stored last use is later; changes nothing else. Tokens that are gone are skipped.
    /// Durable once, for the whole batch. Returns how many tokens were written.
    fn record_uses(&self, uses: &[TokenUse]) -> Result<usize, StoreError>;

    /// Every token, in all registries, whose expiry is at or before `until` (expired ones
    /// not yet deleted included), soonest first. Reads the expiry index, not every token.
    fn expiring(&self, until: DateTime<Utc>) -> Result<Vec<Token>, StoreError>;

    /// Whether the store can serve requests now (`/ready`). Embedded stores always can; a
    /// database store asks its database, within its timeouts.
    fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Every named admin, sorted by name.
    fn admins(&self) -> Result<Vec<Admin>, StoreError> {
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
    fn put_admin(&self, admin: &Admin, replace: bool) -> Result<(), StoreError> {
        let _ = (admin, replace);
        Err(StoreError::message(
            "this store backend does not keep named admins",
        ))
    }

    /// Deletes the admin `name`; whether it existed.
    fn delete_admin(&self, name: &str) -> Result<bool, StoreError> {
        let _ = name;
        Ok(false)
    }
}

/// The conformance suite: every [`Store`] implementation must pass each function here.
/// `memory` and `sled` below instantiate it; backend-specific tests live beside each backend.
#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Barrier;

    use chrono::{DateTime, Duration, Utc};
    use uuid::Uuid;

    use super::{RefreshGrant, Store, StoreError};
    use crate::domain::{SecretHash, Status, Token};

    /// A fixed "now" so expiry is tested without a clock.
    pub(crate) fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
    }

    /// A token with no scopes (scope parsing is not the store's business).
    pub(crate) fn token(registry: &str, name: &str) -> Token {
        Token {
            id: Uuid::new_v4(),
            registry: registry.to_string(),
            name: name.parse().expect("valid token name"),
            status: Status::Enabled,
            expiry: None,
            scopes: vec![],
            secret_hash: SecretHash([7; 32]),
            created: t0(),
            created_by: "admin".to_string(),
            modified: t0(),
            modified_by: "admin".to_string(),
            previous: None,
            last_used: None,
            networks: vec![],
            owner: None,
            description: None,
        }
    }

    /// Named admins: create, unique names, replace, list sorted, delete.
    pub(crate) fn admins_create_replace_delete(s: &dyn Store) {
        use crate::domain::{Admin, Role};
        let admin = |name: &str, role: Role| Admin {
            name: name.parse().unwrap(),
            role,
            registries: vec!["dev".into()],
            secret_hash: SecretHash([3; 32]),
            created: t0(),
            created_by: "bootstrap".into(),
            rotated: None,
        };
        assert!(s.admins().unwrap().is_empty());
        s.put_admin(&admin("zed", Role::Viewer), false).unwrap();
        s.put_admin(&admin("alice", Role::Editor), false).unwrap();
        assert!(matches!(
            s.put_admin(&admin("alice", Role::Owner), false),
            Err(StoreError::NameTaken(n)) if n == "alice"
        ));
        assert!(matches!(
            s.put_admin(&admin("nobody", Role::Owner), true),
            Err(StoreError::NotFound)
        ));
        let mut rotated = admin("alice", Role::Editor);
        rotated.secret_hash = SecretHash([4; 32]);
        rotated.rotated = Some(t0());
        s.put_admin(&rotated, true).unwrap();
        let all = s.admins().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], rotated);
        assert_eq!(all[1].name.as_str(), "zed");
        assert!(s.delete_admin("zed").unwrap());
        assert!(!s.delete_admin("zed").unwrap());
        assert_eq!(s.admins().unwrap(), vec![rotated]);
    }

    pub(crate) fn expiring(registry: &str, name: &str, at: DateTime<Utc>) -> Token {
        Token {
            expiry: Some(at),
            ..token(registry, name)
        }
    }

    pub(crate) fn grant(t: &Token, seed: u8, created: DateTime<Utc>) -> RefreshGrant {
        RefreshGrant {
            hash: SecretHash([seed; 32]),
            token_id: t.id,
            registry: t.registry.clone(),
            token_name: t.name.to_string(),
            service: "registry.local".to_string(),
            created,
        }
    }

    fn names(tokens: &[Token]) -> Vec<String> {
        tokens.iter().map(|t| t.name.to_string()).collect()
    }

    pub(crate) fn create_get_find(s: &dyn Store) {
        let t = expiring("default", "ci-bot", t0() + Duration::hours(2));
        s.create(&t).unwrap();
        assert_eq!(s.get("default", t.id).unwrap(), Some(t.clone()));
        assert_eq!(
            s.find_by_name("default", "ci-bot")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(t.clone())
        );
        assert_eq!(
            s.get("other", t.id).unwrap(),
            None,
            "id in another registry"
        );
        assert_eq!(s.get("default", Uuid::new_v4()).unwrap(), None);
        assert_eq!(
            s.find_by_name("default", "nobody")
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
        assert_eq!(
            s.find_by_name("other", "ci-bot")
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
        // A registry whose id is a prefix of another's must not see its tokens.
        assert_eq!(
            s.find_by_name("defaul", "tci-bot")
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
        assert_eq!(s.list("defaul", 0, 10).unwrap().total, 0);
    }

    /// Networks, owner and description are stored as given, through create and update, and
    /// the owner filter matches exactly.
    pub(crate) fn policy_fields_round_trip(s: &dyn Store) {
        let mut t = token("default", "owned");
        t.networks = vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
            "192.0.2.7".parse().unwrap(),
        ];
        t.owner = Some("alice@example.com".parse().unwrap());
        t.description = Some("CI pushes to team/* — rotated monthly".parse().unwrap());
        s.create(&t).unwrap();
        assert_eq!(s.get("default", t.id).unwrap(), Some(t.clone()));
        assert_eq!(
            s.find_by_name("default", "owned")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(t.clone())
        );
        let mut other = token("default", "also-owned");
        other.owner = t.owner.clone();
        s.create(&other).unwrap();
        s.create(&token("default", "nobodys")).unwrap();
        let mut elsewhere = token("staging", "owned");
        elsewhere.owner = t.owner.clone();
        s.create(&elsewhere).unwrap();
        let mut similar = token("default", "similar");
        similar.owner = Some("alice@example.co".parse().unwrap());
        s.create(&similar).unwrap();

        let page = s
            .list_by_owner("default", "alice@example.com", 0, 10)
            .unwrap();
        assert_eq!(page.total, 2);
        assert_eq!(names(&page.items), ["also-owned", "owned"]);
        let page = s
            .list_by_owner("default", "alice@example.com", 1, 10)
            .unwrap();
        assert_eq!(
            (page.total, names(&page.items)),
            (2, vec!["owned".to_string()])
        );
        assert_eq!(s.list_by_owner("default", "alice", 0, 10).unwrap().total, 0);

        // Changed and removed by an update.
        let mut changed = t.clone();
        changed.networks = vec!["::1".parse().unwrap()];
        changed.owner = Some("bob".parse().unwrap());
        changed.description = None;
        s.update(&changed).unwrap();
        assert_eq!(s.get("default", t.id).unwrap(), Some(changed.clone()));
        assert_eq!(
            names(
                &s.list_by_owner("default", "alice@example.com", 0, 10)
                    .unwrap()
                    .items
            ),
            ["also-owned"]
        );
        assert_eq!(
            names(&s.list_by_owner("default", "bob", 0, 10).unwrap().items),
            ["owned"]
        );
        changed.networks.clear();
        changed.owner = None;
        s.update(&changed).unwrap();
        assert_eq!(s.get("default", t.id).unwrap(), Some(changed));
        assert_eq!(s.list_by_owner("default", "bob", 0, 10).unwrap().total, 0);
    }

    pub(crate) fn name_unique_per_registry(s: &dyn Store) {
        let a = token("default", "deploy");
        s.create(&a).unwrap();
        let clash = token("default", "deploy");
        assert!(matches!(s.create(&clash), Err(StoreError::NameTaken(n)) if n == "deploy"));
        let elsewhere = token("staging", "deploy");
        s.create(&elsewhere).unwrap();
        assert_eq!(
            s.find_by_name("default", "deploy")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(a)
        );
        assert_eq!(
            s.find_by_name("staging", "deploy")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(elsewhere)
        );
        assert_eq!(s.count().unwrap(), 2);
    }

    pub(crate) fn id_unique_everywhere(s: &dyn Store) {
        let a = token("default", "first");
        s.create(&a).unwrap();
        let same_id = Token {
            id: a.id,
            ..token("staging", "second")
        };
        assert!(matches!(s.create(&same_id), Err(StoreError::IdTaken(id)) if id == a.id));
        assert_eq!(
            s.find_by_name("staging", "second")
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
        assert_eq!(s.count().unwrap(), 1);
    }

    pub(crate) fn list_sorted_paged(s: &dyn Store) {
        for name in ["delta", "alpha", "echo", "charlie", "bravo"] {
            s.create(&token("default", name)).unwrap();
        }
        s.create(&token("other", "aaa")).unwrap();
        s.create(&token("default-2", "zzz")).unwrap();

        let all = s.list("default", 0, 100).unwrap();
        assert_eq!(all.total, 5);
        assert_eq!(
            names(&all.items),
            ["alpha", "bravo", "charlie", "delta", "echo"]
        );

        let page = s.list("default", 1, 2).unwrap();
        assert_eq!(page.total, 5);
        assert_eq!(names(&page.items), ["bravo", "charlie"]);

        let tail = s.list("default", 4, 10).unwrap();
        assert_eq!(names(&tail.items), ["echo"]);
        let past = s.list("default", 9, 10).unwrap();
        assert!(past.items.is_empty());
        assert_eq!(past.total, 5);
        assert!(s.list("default", 0, 0).unwrap().items.is_empty());

        let empty = s.list("nowhere", 0, 10).unwrap();
        assert_eq!((empty.items.len(), empty.total), (0, 0));
        assert_eq!(s.count().unwrap(), 7);
    }

    pub(crate) fn list_matching_filters_by_substring(s: &dyn Store) {
        for name in ["ci-bot", "ci-pusher", "deploy-bot", "reader", "bot-one"] {
            s.create(&token("default", name)).unwrap();
        }
        s.create(&token("other", "other-bot")).unwrap();

        let bots = s.list_matching("default", "bot", 0, 100).unwrap();
        assert_eq!(bots.total, 3);
        assert_eq!(names(&bots.items), ["bot-one", "ci-bot", "deploy-bot"]);

        let page = s.list_matching("default", "bot", 1, 1).unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(names(&page.items), ["ci-bot"]);
        let past = s.list_matching("default", "bot", 5, 10).unwrap();
        assert_eq!((past.items.len(), past.total), (0, 3));

        let ci = s.list_matching("default", "ci-", 0, 100).unwrap();
        assert_eq!(names(&ci.items), ["ci-bot", "ci-pusher"]);
        let none = s.list_matching("default", "zzz", 0, 100).unwrap();
        assert_eq!((none.items.len(), none.total), (0, 0));
        let all = s.list_matching("default", "", 0, 2).unwrap();
        assert_eq!(names(&all.items), ["bot-one", "ci-bot"]);
        assert_eq!(all.total, 5);
        assert_eq!(s.list_matching("nowhere", "bot", 0, 10).unwrap().total, 0);
    }

    pub(crate) fn update_replaces_and_reindexes(s: &dyn Store) {
        let t = expiring("default", "rotating", t0() + Duration::hours(2));
        s.create(&t).unwrap();

        // Move the expiry later: the old instant must no longer delete it.
        let later = Token {
            status: Status::Disabled,
            expiry: Some(t0() + Duration::hours(5)),
            modified: t0() + Duration::minutes(1),
            modified_by: "ops".to_string(),
            ..t.clone()
        };
        s.update(&later).unwrap();
        assert_eq!(s.get("default", t.id).unwrap(), Some(later.clone()));
        assert_eq!(
            s.find_by_name("default", "rotating")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(later.clone())
        );
        assert!(s
            .delete_expired(t0() + Duration::hours(3))
            .unwrap()
            .is_empty());

        // Remove the expiry altogether: never deleted by expiry.
        let forever = Token {
            expiry: None,
            ..later.clone()
        };
        s.update(&forever).unwrap();
        assert!(s
            .delete_expired(t0() + Duration::days(3650))
            .unwrap()
            .is_empty());

        // Set one again: now it is indexed.
        let soon = Token {
            expiry: Some(t0() + Duration::hours(1)),
            ..forever
        };
        s.update(&soon).unwrap();
        assert_eq!(
            s.delete_expired(t0() + Duration::hours(1)).unwrap(),
            vec![soon]
        );
        assert_eq!(s.count().unwrap(), 0);
    }

    pub(crate) fn update_not_found(s: &dyn Store) {
        let t = token("default", "ghost");
        assert!(matches!(s.update(&t), Err(StoreError::NotFound)));
        s.create(&t).unwrap();
        let wrong_registry = Token {
            registry: "staging".to_string(),
            ..t.clone()
        };
        assert!(matches!(
            s.update(&wrong_registry),
            Err(StoreError::NotFound)
        ));
        assert_eq!(s.get("default", t.id).unwrap(), Some(t));
        assert_eq!(s.count().unwrap(), 1);
    }

    /// Callers forbid renames; if one slips through, the indexes still agree.
    pub(crate) fn update_rename_keeps_indexes(s: &dyn Store) {
        let t = token("default", "old-name");
        let taken = token("default", "taken");
        s.create(&t).unwrap();
        s.create(&taken).unwrap();
        let clash = Token {
            name: "taken".parse().unwrap(),
            ..t.clone()
        };
        assert!(matches!(s.update(&clash), Err(StoreError::NameTaken(_))));
        assert_eq!(
            s.find_by_name("default", "old-name")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(t.clone())
        );

        let renamed = Token {
            name: "new-name".parse().unwrap(),
            ..t.clone()
        };
        s.update(&renamed).unwrap();
        assert_eq!(
            s.find_by_name("default", "old-name")
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
        assert_eq!(
            s.find_by_name("default", "new-name")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(renamed.clone())
        );
        assert_eq!(s.get("default", t.id).unwrap(), Some(renamed));
        assert_eq!(s.list("default", 0, 10).unwrap().total, 2);
        assert_eq!(s.count().unwrap(), 2);
    }

    pub(crate) fn delete_removes_token_and_grants(s: &dyn Store) {
        let t = expiring("default", "doomed", t0() + Duration::hours(2));
        let other = token("default", "survivor");
        s.create(&t).unwrap();
        s.create(&other).unwrap();
        s.add_refresh(&grant(&t, 1, t0()), 10).unwrap();
        s.add_refresh(&grant(&other, 2, t0()), 10).unwrap();

        assert!(!s.delete("staging", t.id).unwrap(), "wrong registry");
        assert!(s.get("default", t.id).unwrap().is_some());

        assert!(s.delete("default", t.id).unwrap());
        assert!(!s.delete("default", t.id).unwrap(), "second delete");
        assert!(!s.delete("default", Uuid::new_v4()).unwrap());
        assert_eq!(s.get("default", t.id).unwrap(), None);
        assert_eq!(
            s.find_by_name("default", "doomed")
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
        assert_eq!(s.find_refresh(&SecretHash([1; 32])).unwrap(), None);
        assert!(s.find_refresh(&SecretHash([2; 32])).unwrap().is_some());
        assert_eq!(s.list("default", 0, 10).unwrap().total, 1);
        assert_eq!(s.count().unwrap(), 1);
        // Its expiry entry went with it.
        assert!(s
            .delete_expired(t0() + Duration::days(1))
            .unwrap()
            .is_empty());

        // The name and the id are free again.
        s.create(&t).unwrap();
        assert_eq!(
            s.find_by_name("default", "doomed")
                .unwrap()
                .as_deref()
                .cloned(),
            Some(t)
        );
    }

    pub(crate) fn delete_expired_boundaries(s: &dyn Store) {
        let now = t0() + Duration::days(1);
        let past = expiring("default", "past", now - Duration::hours(1));
        let exactly = expiring("staging", "exactly-now", now);
        let sub_ms_before = expiring(
            "default",
            "sub-ms-before",
            now - Duration::microseconds(300),
        );
        let sub_ms_after = expiring("default", "sub-ms-after", now + Duration::microseconds(300));
        let future = expiring("default", "future", now + Duration::milliseconds(1));
        let pre_epoch = expiring(
            "default",
            "pre-epoch",
            DateTime::UNIX_EPOCH - Duration::days(1),
        );
        let never = token("default", "never");
        for t in [
            &past,
            &exactly,
            &sub_ms_before,
            &sub_ms_after,
            &future,
            &pre_epoch,
            &never,
        ] {
            s.create(t).unwrap();
        }
        s.add_refresh(&grant(&past, 9, t0()), 10).unwrap();

        let mut gone = s.delete_expired(now).unwrap();
        gone.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            names(&gone),
            ["exactly-now", "past", "pre-epoch", "sub-ms-before"]
        );
        assert_eq!(gone.iter().find(|t| t.id == past.id), Some(&past));

        for t in [&past, &exactly, &sub_ms_before, &pre_epoch] {
            assert_eq!(s.get(&t.registry, t.id).unwrap(), None, "{}", t.name);
            assert_eq!(
                s.find_by_name(&t.registry, t.name.as_str())
                    .unwrap()
                    .as_deref()
                    .cloned(),
                None
            );
        }
        for t in [&sub_ms_after, &future, &never] {
            assert_eq!(
                s.get("default", t.id).unwrap().as_ref(),
                Some(t),
                "{}",
                t.name
            );
        }
        assert_eq!(s.find_refresh(&SecretHash([9; 32])).unwrap(), None);
        assert_eq!(s.list("default", 0, 10).unwrap().total, 3);
        assert_eq!(s.list("staging", 0, 10).unwrap().total, 0);
        assert_eq!(s.count().unwrap(), 3);

        assert!(s.delete_expired(now).unwrap().is_empty(), "idempotent");
        let later = s.delete_expired(now + Duration::seconds(1)).unwrap();
        assert_eq!(names(&later), ["sub-ms-after", "future"]);
        assert_eq!(s.count().unwrap(), 1);
    }

    pub(crate) fn refresh_add_find_cap(s: &dyn Store) {
        let t = token("default", "with-grants");
        let other = token("default", "other");
        s.create(&t).unwrap();
        s.create(&other).unwrap();

        // Added out of order: eviction goes by creation time, not insertion order.
        let created = [3, 1, 4, 2, 5].map(|m| t0() + Duration::minutes(m));
        for (i, at) in created.iter().enumerate() {
            s.add_refresh(&grant(&t, 10 + i as u8, *at), 3).unwrap();
        }
        s.add_refresh(&grant(&other, 99, t0()), 3).unwrap();

        let alive: Vec<u8> = (10..15)
            .filter(|seed| s.find_refresh(&SecretHash([*seed; 32])).unwrap().is_some())
            .collect();
        // Minutes 3, 4, 5 survive (seeds 10, 12, 14); minutes 1 and 2 were the oldest.
        assert_eq!(alive, [10, 12, 14]);
        assert_eq!(
            s.find_refresh(&SecretHash([14; 32])).unwrap(),
            Some(grant(&t, 14, created[4]))
        );
        assert!(
            s.find_refresh(&SecretHash([99; 32])).unwrap().is_some(),
            "other token's"
        );
        assert_eq!(s.find_refresh(&SecretHash([0; 32])).unwrap(), None);

        // Re-adding a grant under the same hash replaces it rather than counting twice.
        s.add_refresh(&grant(&t, 14, created[4]), 3).unwrap();
        for seed in [10, 12, 14] {
            assert!(s.find_refresh(&SecretHash([seed; 32])).unwrap().is_some());
        }

        // A grant for a token that does not exist is refused: it could never die with it.
        let ghost = token("default", "ghost");
        assert!(matches!(
            s.add_refresh(&grant(&ghost, 50, t0()), 3),
            Err(StoreError::NotFound)
        ));
        let wrong_name = RefreshGrant {
            token_name: "other".to_string(),
            ..grant(&t, 51, t0())
        };
        assert!(matches!(
            s.add_refresh(&wrong_name, 3),
            Err(StoreError::NotFound)
        ));
        assert_eq!(s.find_refresh(&SecretHash([50; 32])).unwrap(), None);

        // Deleting the token takes the surviving grants with it.
        assert!(s.delete("default", t.id).unwrap());
        for seed in 10..15 {
            assert_eq!(s.find_refresh(&SecretHash([seed; 32])).unwrap(), None);
        }
        assert!(s.find_refresh(&SecretHash([99; 32])).unwrap().is_some());
    }

    fn used(at: DateTime<Utc>, client: &str) -> crate::domain::LastUse {
        crate::domain::LastUse {
            at,
            client: Some(client.parse().unwrap()),
            grant: crate::domain::GrantKind::Password,
        }
    }

    fn use_of(t: &Token, last_use: crate::domain::LastUse) -> super::TokenUse {
        super::TokenUse {
            registry: t.registry.clone(),
            id: t.id,
            last_use,
        }
    }

    pub(crate) fn record_uses_sets_last_use_only(s: &dyn Store) {
        let a = token("default", "used");
        let b = token("default", "also-used");
        let untouched = token("default", "idle");
        for t in [&a, &b, &untouched] {
            s.create(t).unwrap();
        }
        // Read once so a cache in front of the store holds the old value.
        assert_eq!(
            s.find_by_name("default", "used")
                .unwrap()
                .unwrap()
                .last_used,
            None
        );

        let first = used(t0() + Duration::minutes(1), "192.0.2.1");
        let ghost = token("default", "ghost");
        let wrong_registry = Token {
            registry: "staging".into(),
            ..a.clone()
        };
        let written = s
            .record_uses(&[
                use_of(&a, first),
                use_of(&b, first),
                use_of(&ghost, first),
                use_of(&wrong_registry, first),
            ])
            .unwrap();
        assert_eq!(written, 2, "gone or foreign tokens are skipped");
        let expect_a = Token {
            last_used: Some(first),
            ..a.clone()
        };
        assert_eq!(s.get("default", a.id).unwrap(), Some(expect_a.clone()));
        assert_eq!(
            s.find_by_name("default", "used").unwrap().as_deref(),
            Some(&expect_a)
        );
        assert_eq!(s.get("default", untouched.id).unwrap(), Some(untouched));
        assert_eq!(s.find_by_name("default", "ghost").unwrap(), None);

        // Never backwards.
        let earlier = used(t0(), "192.0.2.2");
        assert_eq!(s.record_uses(&[use_of(&a, earlier)]).unwrap(), 0);
        assert_eq!(
            s.get("default", a.id).unwrap().unwrap().last_used,
            Some(first)
        );

        // An admin update made from a read before the use keeps the later use.
        let disabled = Token {
            status: Status::Disabled,
            ..a.clone()
        };
        s.update(&disabled).unwrap();
        let stored = s.get("default", a.id).unwrap().unwrap();
        assert_eq!(stored.status, Status::Disabled);
        assert_eq!(stored.last_used, Some(first));
        // An update carrying a later use stores it.
        let later = used(t0() + Duration::minutes(2), "2001:db8::1");
        s.update(&Token {
            last_used: Some(later),
            ..stored
        })
        .unwrap();
        assert_eq!(
            s.find_by_name("default", "used")
                .unwrap()
                .unwrap()
                .last_used,
            Some(later)
        );
        assert_eq!(s.record_uses(&[]).unwrap(), 0);
    }

    pub(crate) fn expiring_reads_the_expiry_index(s: &dyn Store) {
        let soon = expiring("default", "soon", t0() + Duration::days(2));
        let sooner = expiring("staging", "sooner", t0() + Duration::days(1));
        let at_limit = expiring("default", "at-limit", t0() + Duration::days(7));
        let past = expiring("default", "past", t0() - Duration::hours(1));
        let later = expiring("default", "later", t0() + Duration::days(8));
        let never = token("default", "never");
        for t in [&soon, &sooner, &at_limit, &past, &later, &never] {
            s.create(t).unwrap();
        }
        let found = s.expiring(t0() + Duration::days(7)).unwrap();
        assert_eq!(names(&found), ["past", "sooner", "soon", "at-limit"]);
        assert_eq!(found[1], sooner);
        assert!(s.expiring(t0() - Duration::days(1)).unwrap().is_empty());
        // Moving an expiry moves it in the index.
        s.update(&Token {
            expiry: Some(t0() + Duration::days(30)),
            ..soon
        })
        .unwrap();
        assert_eq!(
            names(&s.expiring(t0() + Duration::days(7)).unwrap()),
            ["past", "sooner", "at-limit"]
        );
    }

    pub(crate) fn count_across_registries(s: &dyn Store) {
        assert_eq!(s.count().unwrap(), 0);
        let tokens: Vec<Token> = (0..7)
            .map(|i| token(["a", "b", "c"][i % 3], &format!("token-{i}")))
            .collect();
        for t in &tokens {
            s.create(t).unwrap();
        }
        assert_eq!(s.count().unwrap(), 7);
        assert_eq!(s.list("a", 0, 100).unwrap().total, 3);
        assert!(s.delete("b", tokens[1].id).unwrap());
        assert_eq!(s.count().unwrap(), 6);
        assert_eq!(s.list("b", 0, 100).unwrap().total, 1);
    }

    pub(crate) fn racing_creates_one_winner(s: &dyn Store) {
        const THREADS: usize = 8;
        let barrier = Barrier::new(THREADS);
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        let t = token("default", "contested");
                        barrier.wait();
                        s.create(&t)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wins = results.iter().filter(|r| r.is_ok()).count();
        let taken = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::NameTaken(_))))
            .count();
        assert_eq!((wins, taken), (1, THREADS - 1), "{results:?}");
        assert_eq!(s.count().unwrap(), 1);
        let page = s.list("default", 0, 100).unwrap();
        assert_eq!((page.items.len(), page.total), (1, 1));
        let winner = &page.items[0];
        assert_eq!(s.get("default", winner.id).unwrap().as_ref(), Some(winner));
    }

    /// Concurrent grants for one token never leave more than the cap.
    pub(crate) fn racing_grants_respect_cap(s: &dyn Store) {
        const THREADS: u8 = 8;
        const CAP: usize = 5;
        let t = token("default", "busy");
        s.create(&t).unwrap();
        let barrier = Barrier::new(THREADS.into());
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (t, barrier) = (&t, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for i in 0..10u8 {
                        let at = t0() + Duration::milliseconds(i64::from(thread * 10 + i));
                        s.add_refresh(&grant(t, thread * 10 + i + 1, at), CAP)
                            .unwrap();
                    }
                });
            }
        });
        let alive = (1..=THREADS * 10)
            .filter(|seed| s.find_refresh(&SecretHash([*seed; 32])).unwrap().is_some())
            .count();
        assert_eq!(alive, CAP);
    }

    /// Grants added while their token is deleted either fail or die with it: none outlives it.
    pub(crate) fn grants_racing_delete_die_with_token(s: &dyn Store) {
        for round in 0..20 {
            let t = token("default", &format!("round-{round}"));
            s.create(&t).unwrap();
            let barrier = Barrier::new(5);
            let added: Vec<u8> = std::thread::scope(|scope| {
                let adders: Vec<_> = (0..4u8)
                    .map(|thread| {
                        let (t, barrier) = (&t, &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            (0..25u8)
                                .map(|i| thread * 25 + i + 1)
                                .filter(|seed| {
                                    let at = t0() + Duration::milliseconds(i64::from(*seed));
                                    match s.add_refresh(&grant(t, *seed, at), 1000) {
                                        Ok(()) => true,
                                        Err(StoreError::NotFound) => false,
                                        Err(e) => panic!("{e}"),
                                    }
                                })
                                .collect::<Vec<u8>>()
                        })
                    })
                    .collect();
                barrier.wait();
                assert!(s.delete("default", t.id).unwrap());
                adders.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            for seed in added {
                assert_eq!(
                    s.find_refresh(&SecretHash([seed; 32])).unwrap(),
                    None,
                    "{round}"
                );
            }
        }
    }

    /// Disabling deletes every grant of the token in the same write; enabling again revives
    /// none; a disabled token takes no new grant; other tokens keep theirs.
    pub(crate) fn disable_revokes_refresh_grants(s: &dyn Store) {
        let t = token("default", "laptop-login");
        let other = token("default", "other");
        s.create(&t).unwrap();
        s.create(&other).unwrap();
        for seed in 1..=3 {
            s.add_refresh(&grant(&t, seed, t0() + Duration::minutes(seed.into())), 10)
                .unwrap();
        }
        s.add_refresh(&grant(&other, 9, t0()), 10).unwrap();
        let alive = |seed: u8| s.find_refresh(&SecretHash([seed; 32])).unwrap().is_some();

        // An update that leaves the token enabled keeps its grants.
        let renamed_by = Token {
            modified_by: "ops".to_string(),
            ..t.clone()
        };
        s.update(&renamed_by).unwrap();
        assert!((1..=3).all(alive));

        let disabled = Token {
            status: Status::Disabled,
            ..t.clone()
        };
        s.update(&disabled).unwrap();
        assert_eq!(s.get("default", t.id).unwrap(), Some(disabled.clone()));
        assert!(!(1..=3).any(alive), "disable revokes every grant");
        assert!(alive(9), "another token's grant survives");
        assert!(matches!(
            s.add_refresh(&grant(&t, 4, t0()), 10),
            Err(StoreError::NotFound)
        ));
        assert!(!alive(4), "a disabled token takes no grant");
        // Updating a disabled token again (say, its scopes) is harmless.
        s.update(&disabled).unwrap();

        s.update(&t).unwrap();
        assert!(!(1..=4).any(alive), "enabling again revives none");
        s.add_refresh(&grant(&t, 5, t0()), 10).unwrap();
        assert!(alive(5), "a new login after enabling works");
        // The grant index was emptied too: the cap counts only the new grant.
        for seed in 6..=7 {
            s.add_refresh(&grant(&t, seed, t0() + Duration::minutes(seed.into())), 3)
                .unwrap();
        }
        assert!([5, 6, 7].into_iter().all(alive));
        // Deleting still takes the grants with it.
        assert!(s.delete("default", t.id).unwrap());
        assert!(![5, 6, 7].into_iter().any(alive));
    }

    /// Grants added while their token is disabled either fail or are revoked with it: none
    /// survives the disable.
    pub(crate) fn grants_racing_disable_never_survive(s: &dyn Store) {
        for round in 0..20 {
            let t = token("default", &format!("round-{round}"));
            s.create(&t).unwrap();
            let barrier = Barrier::new(5);
            let added: Vec<u8> = std::thread::scope(|scope| {
                let adders: Vec<_> = (0..4u8)
                    .map(|thread| {
                        let (t, barrier) = (&t, &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            (0..25u8)
                                .map(|i| thread * 25 + i + 1)
                                .filter(|seed| {
                                    let at = t0() + Duration::milliseconds(i64::from(*seed));
                                    match s.add_refresh(&grant(t, *seed, at), 1000) {
                                        Ok(()) => true,
                                        Err(StoreError::NotFound) => false,
                                        Err(e) => panic!("{e}"),
                                    }
                                })
                                .collect::<Vec<u8>>()
                        })
                    })
                    .collect();
                barrier.wait();
                s.update(&Token {
                    status: Status::Disabled,
                    ..t.clone()
                })
                .unwrap();
                adders.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            for seed in added {
                assert_eq!(
                    s.find_refresh(&SecretHash([seed; 32])).unwrap(),
                    None,
                    "{round}"
                );
            }
        }
    }

    /// One `#[test]` per suite function, for a backend built by `$make` (an expression
    /// evaluating to `(store, guard)`; the guard lives as long as the test, e.g. a temp dir).
    macro_rules! conformance {
        ($make:expr) => {
            conformance!(@tests $make;
                create_get_find, policy_fields_round_trip, name_unique_per_registry, id_unique_everywhere,
                list_sorted_paged, list_matching_filters_by_substring,
                update_replaces_and_reindexes, update_not_found,
                update_rename_keeps_indexes, delete_removes_token_and_grants,
                delete_expired_boundaries, refresh_add_find_cap, count_across_registries,
                racing_creates_one_winner, racing_grants_respect_cap,
                grants_racing_delete_die_with_token, disable_revokes_refresh_grants,
                grants_racing_disable_never_survive, record_uses_sets_last_use_only,
                expiring_reads_the_expiry_index);
        };
        (@tests $make:expr; $($name:ident),+) => {
            $(
                #[test]
                fn $name() {
                    let (store, _guard) = $make;
                    super::$name(&store);
                }
            )+
        };
    }

    mod memory {
        use crate::store::MemoryStore;
        conformance!((MemoryStore::new(), ()));

        #[test]
        fn admins_create_replace_delete() {
            super::admins_create_replace_delete(&MemoryStore::new());
        }
    }

    mod sled {
        use crate::store::SledStore;

        fn open() -> (SledStore, tempfile::TempDir) {
            let dir = tempfile::tempdir().unwrap();
            (SledStore::open(dir.path()).unwrap(), dir)
        }
        conformance!(open());

        #[test]
        fn admins_create_replace_delete() {
            let (store, _dir) = open();
            super::admins_create_replace_delete(&store);
        }
    }

    /// On a private PostgreSQL cluster (one per test binary), a database per test.
    mod postgres {
        conformance!(crate::store::postgres::tests::open());

        #[test]
        fn admins_create_replace_delete() {
            let (store, _guard) = crate::store::postgres::tests::open();
            super::admins_create_replace_delete(&store);
        }
    }
}
