//! Token administration: create, replace, change, rotate, delete, read, list. Validates the
//! rules that need the clock or the store (expiry ahead, unique names); shapes are validated
//! when wire values are parsed into domain types.
//!
//! Expiry follows `[tokens] on_expiry`: by default an expired token is deleted (swept, and
//! never returned even before the sweep: expired = deleted); with `disable` it stays, is
//! returned (the HTTP layer shows it as `expired`) and still authenticates nothing.
//! Tokens read here carry their latest last use, including one noted by the token endpoint
//! but not yet written ([`UsageRecorder`]).
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tracing::info;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::{OnExpiry, RegistryConfig};
use crate::domain::federation::{Federation, FederationConfig};
use crate::domain::secret::{try_new_secret, PASSWORD_PREFIX};
use crate::domain::webhook::WebhookEvent;
use crate::domain::{
    check_lifetime, validate_expiry, validate_scope_list, Description, Network, Owner, Patch,
    Scope, SecretHash, Status, Token, TokenName, ValidationError,
};
use crate::error::BoxError;
use crate::service::usage::UsageRecorder;
use crate::service::webhook::WebhookService;
use crate::store::{Page, Store, StoreError, TokenWrite};

/// What ran an expiry sweep, as its log lines say (`by=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepTrigger {
    /// The server's periodic sweeper.
    Timer,
    /// A token list, which sweeps first so that it never lists an expired token.
    List,
}

impl SweepTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepTrigger::Timer => "sweeper",
            SweepTrigger::List => "list",
        }
    }
}

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
    /// Empty: anywhere.
    pub networks: Vec<Network>,
    pub owner: Option<Owner>,
    pub description: Option<Description>,
    /// A federated token's federation (no password then).
    pub federation: Option<Federation>,
}

/// A partial change (PATCH). `expiry: Patch::Null` removes the expiry; `owner` and
/// `description` likewise.
#[derive(Debug, Clone, Default)]
pub struct TokenChanges {
    pub status: Option<Status>,
    pub expiry: Patch<DateTime<Utc>>,
    pub scopes: Option<Vec<Scope>>,
    /// Replaces the whole list; empty: anywhere.
    pub networks: Option<Vec<Network>>,
    pub owner: Patch<Owner>,
    pub description: Patch<Description>,
    /// A federated token's new federation.
    pub federation: Option<Federation>,
}

/// What a token list selects beyond paging (combined with AND).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Names containing this text.
    pub name: Option<String>,
    /// Owner exactly this.
    pub owner: Option<String>,
    /// Only tokens that break the registry's `max_token_lifetime` now.
    pub violations: bool,
}

/// What a PUT did.
#[derive(Debug)]
pub enum PutOutcome {
    /// A new token, with its one-time password (none for a federated token).
    Created(Token, Option<String>),
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
    /// 500: the store failed; the whole chain is logged, none of it returned.
    #[error(transparent)]
    Store(StoreError),
    /// 503: the store is unreachable or too slow (PostgreSQL); nothing was acknowledged.
    #[error(transparent)]
    Unavailable(StoreError),
    /// 500: anything else (no system randomness, a token that vanished mid-operation).
    #[error("{context}")]
    Internal {
        context: &'static str,
        #[source]
        source: Option<BoxError>,
    },
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken(_) | StoreError::IdTaken(_) => {
                AdminError::Conflict(e.to_string())
            }
            // Writes of a token that may have been deleted go through `AdminService::update`,
            // which answers 404; anything else not found is a broken store.
            StoreError::NotFound => AdminError::Internal {
                context: "token vanished during the operation",
                source: Some(Box::new(e)),
            },
            StoreError::Unavailable { .. } => AdminError::Unavailable(e),
            StoreError::Backend { .. } => AdminError::Store(e),
        }
    }
}

/// Token administration over a store. Writes are blocking (they fsync): call from a blocking
/// thread.
#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    clock: Clock,
    on_expiry: OnExpiry,
    /// Last uses not yet written, shown with the tokens read.
    usage: Option<Arc<UsageRecorder>>,
    /// `max_token_lifetime` of each registry that has one.
    lifetimes: Arc<HashMap<String, TimeDelta>>,
    /// Who acts: written to `created_by` and `modified_by` ([`ADMIN_ACTOR`] by default).
    actor: Arc<str>,
    /// The issuers federated tokens may name, and their kinds.
    federation: Arc<FederationConfig>,
    /// Where token events go (`[[webhooks]]`); none in tests that do not ask for them.
    webhooks: Option<WebhookService>,
}

impl AdminService {
    /// The same service acting as the admin `name` (its writes carry that name).
    pub fn acting_as(&self, name: &str) -> AdminService {
        let mut s = self.clone();
        if !name.is_empty() {
            s.actor = Arc::from(name);
        }
        s
    }

    /// Deletes expired tokens; shows stored last uses only.
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        AdminService {
            store,
            clock,
            on_expiry: OnExpiry::Delete,
            usage: None,
            lifetimes: Arc::default(),
            actor: Arc::from(ADMIN_ACTOR),
            federation: Arc::default(),
            webhooks: None,
        }
    }

    /// Federated tokens may name the issuers of `config` (by default the two of
    /// [`FederationConfig::default`]).
    pub fn with_federation(mut self, config: &FederationConfig) -> Self {
        self.federation = Arc::new(config.clone());
        self
    }

    /// The rules of a federation and of the scopes beside it, for a token that will have
    /// `federation` and `scopes`: the issuer is configured, the federation pins an identity
    /// for its issuer's kind, and `${claim}` scopes only on a federated token. `prefix` is
    /// where the fields are in the request (`properties.` or nothing).
    fn check_federation(
        &self,
        federation: Option<&Federation>,
        scopes: &[Scope],
        prefix: &str,
    ) -> Result<(), ValidationError> {
        let Some(fed) = federation else {
            if let Some(i) = scopes.iter().position(|s| match &s.target {
                crate::domain::ScopeTarget::Repository(p) => p.is_template(),
                crate::domain::ScopeTarget::Registry(_) => false,
            }) {
                return Err(ValidationError::new(
                    format!("{prefix}scopes[{i}].name"),
                    "a ${claim} placeholder needs a federated token (properties.federation): \
                     a password token has no claims to fill it with",
                ));
            }
            return Ok(());
        };
        let field = format!("{prefix}federation");
        let Some(kind) = self.federation.kind_of(&fed.issuer) else {
            return Err(ValidationError::new(
                format!("{field}.issuer"),
                format!(
                    "{:?} is not one of this server's issuers ([[federation.issuers]]: {}); \
                     regauth fetches keys only from those",
                    fed.issuer,
                    self.federation
                        .issuers
                        .iter()
                        .map(|i| i.url.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        fed.validate(kind).map_err(|e| e.within(&field))
    }

    /// Writes token events to `webhooks`' outbox after each change.
    pub fn with_webhooks(mut self, webhooks: WebhookService) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// The webhooks this service writes token events to.
    pub fn webhooks(&self) -> Option<&WebhookService> {
        self.webhooks.as_ref()
    }

    /// Makes the store write `write` together with the deliveries of the token event `kind`
    /// about `token` (as it is after the write), in one transaction; returns whether the write
    /// happened (see [`Store::write`]).
    async fn write_reporting(
        &self,
        write: TokenWrite<'_>,
        kind: WebhookEvent,
        token: &Token,
    ) -> Result<bool, StoreError> {
        let deliveries = match &self.webhooks {
            Some(w) => w.token_deliveries(kind, token, &self.actor),
            None => Vec::new(),
        };
        let done = self.store.write(write, &deliveries).await?;
        if let (true, Some(w)) = (done, &self.webhooks) {
            w.queued(&deliveries);
        }
        Ok(done)
    }

    /// Enforces each registry's `max_token_lifetime`.
    pub fn with_lifetimes(mut self, registries: &[RegistryConfig]) -> Self {
        self.lifetimes = Arc::new(
            registries
                .iter()
                .filter_map(|r| r.max_token_lifetime.map(|l| (r.id.clone(), l)))
                .collect(),
        );
        self
    }

    /// The `max_token_lifetime` of `registry`, if it has one.
    pub fn lifetime(&self, registry: &str) -> Option<TimeDelta> {
        self.lifetimes.get(registry).copied()
    }

    /// The lifetime rule for a token a write leaves behind: an enabled token must expire
    /// within the registry's limit. A disabled one is checked when it is enabled, so that
    /// disabling a token that breaks the rule (offboarding) always works.
    fn check_rule(
        &self,
        token_registry: &str,
        status: Status,
        expiry: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        prefix: Option<&str>,
    ) -> Result<(), ValidationError> {
        if status != Status::Enabled {
            return Ok(());
        }
        check_lifetime(expiry, self.lifetime(token_registry), now).map_err(|e| match prefix {
            Some(p) => e.within(p),
            None => e,
        })
    }

    /// Treats expired tokens as `on_expiry` says.
    pub fn with_on_expiry(mut self, on_expiry: OnExpiry) -> Self {
        self.on_expiry = on_expiry;
        self
    }

    /// Shows last uses noted in `usage` and not yet written.
    pub fn with_usage(mut self, usage: Arc<UsageRecorder>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// What expired tokens become.
    pub fn on_expiry(&self) -> OnExpiry {
        self.on_expiry
    }

    /// The current instant of this service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn shown(&self, token: Token) -> Token {
        match &self.usage {
            Some(u) => u.overlay(token),
            None => token,
        }
    }

    /// Whether a token is gone for the API: expired while expired means deleted.
    fn hidden(&self, token: &Token, now: DateTime<Utc>) -> bool {
        self.on_expiry == OnExpiry::Delete && token.is_expired(now)
    }

    /// Creates a token with a fresh password; returns it with the password (shown once). A
    /// federated token gets a random secret that nobody is given: no password is returned.
    pub async fn create(
        &self,
        registry: &str,
        id: Option<Uuid>,
        new: NewToken,
    ) -> Result<(Token, Option<String>), AdminError> {
        let now = self.clock.now();
        check_new(&new, now)?;
        self.check_federation(new.federation.as_ref(), &new.scopes, "properties.")?;
        self.check_rule(registry, new.status, new.expiry, now, Some("properties"))?;
        let password = try_new_secret(PASSWORD_PREFIX).map_err(|_| AdminError::Internal {
            context: "no system randomness for a password",
            source: None,
        })?;
        let token = Token {
            id: id.unwrap_or_else(Uuid::new_v4),
            registry: registry.to_string(),
            name: new.name,
            status: new.status,
            expiry: new.expiry,
            scopes: new.scopes,
            networks: new.networks,
            owner: new.owner,
            description: new.description,
            secret_hash: SecretHash::of(&password),
            created: now,
            created_by: self.actor.to_string(),
            modified: now,
            modified_by: self.actor.to_string(),
            previous: None,
            last_used: None,
            federation: new.federation.map(Box::new),
        };
        self.write_reporting(
            TokenWrite::Create(&token),
            WebhookEvent::TokenCreated,
            &token,
        )
        .await?;
        let password = token.federation.is_none().then_some(password);
        Ok((token, password))
    }

    /// Creates the token with `id` or replaces it entirely (keeping its secret). The name of
    /// an existing token cannot change.
    pub async fn put(
        &self,
        registry: &str,
        id: Uuid,
        new: NewToken,
    ) -> Result<PutOutcome, AdminError> {
        let now = self.clock.now();
        let Some(existing) = self.get(registry, id).await? else {
            let (t, pw) = self.create(registry, Some(id), new).await?;
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
        keeps_its_kind(&existing, new.federation.is_some(), "properties.federation")?;
        self.check_federation(new.federation.as_ref(), &new.scopes, "properties.")?;
        if new.expiry != existing.expiry {
            if let Some(exp) = new.expiry {
                validate_expiry(exp, now).map_err(|e| e.within("properties"))?;
            }
        }
        self.check_rule(registry, new.status, new.expiry, now, Some("properties"))?;
        let was = existing.status;
        let mut token = Token {
            expiry: new.expiry,
            scopes: new.scopes,
            networks: new.networks,
            owner: new.owner,
            description: new.description,
            federation: new.federation.map(Box::new),
            modified: now,
            modified_by: self.actor.to_string(),
            ..existing
        };
        token.set_status(new.status);
        self.update(&token, changed(was, &token)).await?;
        Ok(PutOutcome::Replaced(token))
    }

    /// Applies a partial change.
    pub async fn patch(
        &self,
        registry: &str,
        id: Uuid,
        changes: TokenChanges,
    ) -> Result<Token, AdminError> {
        let now = self.clock.now();
        let mut token = self
            .get(registry, id)
            .await?
            .ok_or(AdminError::NotFound(id))?;
        let was = token.status;
        if let Some(status) = changes.status {
            token.set_status(status);
        }
        if let Patch::Value(exp) = changes.expiry {
            if Some(exp) != token.expiry {
                validate_expiry(exp, now)?;
            }
        }
        changes.expiry.apply_to(&mut token.expiry);
        if let Some(scopes) = changes.scopes {
            validate_scope_list(&scopes)?;
            token.scopes = scopes;
        }
        if let Some(networks) = changes.networks {
            token.networks = networks;
        }
        changes.owner.apply_to(&mut token.owner);
        changes.description.apply_to(&mut token.description);
        if let Some(federation) = changes.federation {
            keeps_its_kind(&token, true, "federation")?;
            token.federation = Some(Box::new(federation));
        }
        self.check_federation(token.federation.as_deref(), &token.scopes, "")?;
        self.check_rule(registry, token.status, token.expiry, now, None)?;
        token.modified = now;
        token.modified_by = self.actor.to_string();
        self.update(&token, changed(was, &token)).await?;
        Ok(token)
    }

    /// Disables every enabled token of `owner` in `registry`, as a PATCH to `disabled` does
    /// (their refresh tokens end, a rotation's grace period ends); returns them as they are
    /// now, sorted by name. Tokens already disabled are left alone. A token deleted meanwhile
    /// is skipped. When the store fails part-way, the tokens disabled before the failure come
    /// back with the error (so that each is still audited).
    pub async fn disable_owner(
        &self,
        registry: &str,
        owner: &str,
    ) -> (Vec<Token>, Option<AdminError>) {
        let now = self.clock.now();
        let page = match self
            .store
            .list_by_owner(registry, owner, 0, usize::MAX)
            .await
        {
            Ok(page) => page,
            Err(e) => return (Vec::new(), Some(e.into())),
        };
        let mut disabled = Vec::new();
        for mut token in page.items {
            if token.status == Status::Disabled || self.hidden(&token, now) {
                continue;
            }
            token.set_status(Status::Disabled);
            token.modified = now;
            token.modified_by = self.actor.to_string();
            match self.update(&token, WebhookEvent::TokenDisabled).await {
                Ok(()) => disabled.push(self.shown(token)),
                Err(AdminError::NotFound(_)) => {}
                Err(e) => return (disabled, Some(e)),
            }
        }
        (disabled, None)
    }

    /// A page of the tokens `filter` selects, sorted by name (with `owner` or `violations`:
    /// reads every token of the registry, or the owner's).
    pub async fn list_filtered(
        &self,
        registry: &str,
        filter: &ListFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Page, AdminError> {
        if filter.owner.is_none() && !filter.violations {
            return match &filter.name {
                Some(n) => self.list_matching(registry, n, offset, limit).await,
                None => self.list(registry, offset, limit).await,
            };
        }
        self.sweep(SweepTrigger::List).await?;
        let now = self.clock.now();
        let all = match &filter.owner {
            Some(o) => self.store.list_by_owner(registry, o, 0, usize::MAX).await?,
            None => self.store.list(registry, 0, usize::MAX).await?,
        };
        let limit_rule = self.lifetime(registry);
        let matching: Vec<Token> = all
            .items
            .into_iter()
            .filter(|t| !self.hidden(t, now))
            .filter(|t| {
                filter
                    .name
                    .as_ref()
                    .is_none_or(|n| t.name.as_str().contains(n.as_str()))
            })
            .filter(|t| {
                !filter.violations
                    || (limit_rule.is_some() && check_lifetime(t.expiry, limit_rule, now).is_err())
            })
            .collect();
        let total = matching.len();
        let items = matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|t| self.shown(t))
            .collect();
        Ok(Page { items, total })
    }

    /// Deletes a token (and its refresh tokens); returns it as it was.
    pub async fn delete(&self, registry: &str, id: Uuid) -> Result<Token, AdminError> {
        let token = self
            .get(registry, id)
            .await?
            .ok_or(AdminError::NotFound(id))?;
        let delete = TokenWrite::Delete { registry, id };
        if self
            .write_reporting(delete, WebhookEvent::TokenDeleted, &token)
            .await?
        {
            Ok(token)
        } else {
            Err(AdminError::NotFound(id))
        }
    }

    /// Writes a changed token, with its event `kind`. A token deleted since it was read (a
    /// DELETE racing this PUT, PATCH or rotation) is not found, as if the DELETE had come
    /// first.
    async fn update(&self, token: &Token, kind: WebhookEvent) -> Result<(), AdminError> {
        self.write_reporting(TokenWrite::Update(token), kind, token)
            .await
            .map(drop)
            .map_err(|e| match e {
                StoreError::NotFound => AdminError::NotFound(token.id),
                e => AdminError::from(e),
            })
    }

    /// Counts what the store holds, for the metrics: tokens per registry (for each of
    /// `registries`), refresh tokens, and tokens that expire within `within` from now and have
    /// not expired yet. Reads the per-registry counts, the expiry index and the refresh tokens'
    /// keys; never decodes every token.
    pub async fn store_stats(
        &self,
        registries: &[String],
        within: TimeDelta,
    ) -> Result<crate::metrics::StoreStats, AdminError> {
        let now = self.clock.now();
        let mut tokens = Vec::with_capacity(registries.len());
        let mut expiring = Vec::with_capacity(registries.len());
        let soon = self.store.expiring(now + within).await?;
        for r in registries {
            tokens.push((r.clone(), self.store.list(r, 0, 0).await?.total as u64));
            let n = soon
                .iter()
                .filter(|t| &t.registry == r && !t.is_expired(now))
                .count();
            expiring.push((r.clone(), n as u64));
        }
        Ok(crate::metrics::StoreStats {
            tokens,
            expiring,
            refresh_tokens: self.store.refresh_count().await? as u64,
        })
    }

    /// The token, unless it does not exist or has expired while expired means deleted
    /// (swept or not).
    pub async fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, AdminError> {
        let now = self.clock.now();
        Ok(self
            .store
            .get(registry, id)
            .await?
            .filter(|t| !self.hidden(t, now))
            .map(|t| self.shown(t)))
    }

    /// A page of tokens sorted by name. Sweeps expired tokens first so they are never listed
    /// (when expired means deleted).
    pub async fn list(
        &self,
        registry: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, AdminError> {
        self.sweep(SweepTrigger::List).await?;
        let page = self.store.list(registry, offset, limit).await?;
        Ok(Page {
            items: page.items.into_iter().map(|t| self.shown(t)).collect(),
            total: page.total,
        })
    }

    /// Like [`AdminService::list`], only the tokens whose name contains `needle`.
    pub async fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, AdminError> {
        self.sweep(SweepTrigger::List).await?;
        let page = self
            .store
            .list_matching(registry, needle, offset, limit)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(|t| self.shown(t)).collect(),
            total: page.total,
        })
    }

    /// A page of the tokens of `registry` whose expiry is within `within` from now (and whose
    /// name contains `needle`, if given), sorted by name; with `on_expiry = "disable"` the
    /// already expired ones too. Reads the expiry index, not every token.
    pub async fn list_expiring(
        &self,
        registry: &str,
        within: TimeDelta,
        needle: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Page, AdminError> {
        let now = self.clock.now();
        let until = now
            .checked_add_signed(within)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut all: Vec<Token> = self
            .store
            .expiring(until)
            .await?
            .into_iter()
            .filter(|t| t.registry == registry && !self.hidden(t, now))
            .filter(|t| needle.is_none_or(|n| t.name.as_str().contains(n)))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let total = all.len();
        let items = all
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|t| self.shown(t))
            .collect();
        Ok(Page { items, total })
    }

    /// Tokens of every registry that expire within `within` from now and have not expired yet,
    /// soonest first (for the expiry warnings).
    pub async fn expiring_soon(&self, within: TimeDelta) -> Result<Vec<Token>, AdminError> {
        let now = self.clock.now();
        Ok(self
            .store
            .expiring(now + within)
            .await?
            .into_iter()
            .filter(|t| !t.is_expired(now))
            .collect())
    }

    /// Every token whose expiry is at or before `within` from now, expired ones included
    /// (for the expiry webhooks).
    pub async fn expiring_until(&self, within: TimeDelta) -> Result<Vec<Token>, AdminError> {
        Ok(self.store.expiring(self.clock.now() + within).await?)
    }

    /// Whether the store can serve requests now (`/ready`).
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store.ready().await
    }

    /// Deletes expired tokens and returns them, when expired means deleted; otherwise does
    /// nothing. Logs one line per deleted token (`expired token deleted`, with `by=` the
    /// trigger), whichever sweep deleted it, so the log accounts for every expiry.
    pub async fn sweep(&self, by: SweepTrigger) -> Result<Vec<Token>, AdminError> {
        let deleted = match (self.on_expiry, &self.webhooks) {
            (OnExpiry::Disable, _) => Vec::new(),
            // Each deletion commits with its `token.expired` deliveries.
            (OnExpiry::Delete, Some(w)) => {
                let report = |t: &Token| w.expired_deliveries(t);
                let deleted = self
                    .store
                    .delete_expired_reporting(self.clock.now(), &report)
                    .await?;
                if !deleted.is_empty() {
                    w.wake();
                }
                deleted
            }
            (OnExpiry::Delete, None) => self.store.delete_expired(self.clock.now()).await?,
        };
        for t in &deleted {
            let expiry = t.expiry.map(|e| e.to_rfc3339()).unwrap_or_default();
            info!(token = %t.name, registry = %t.registry, id = %t.id, expiry, by = by.as_str(), "expired token deleted");
        }
        Ok(deleted)
    }

    /// Gives the token a new password, keeping its name, id, scopes, status and expiry. With a
    /// positive `grace` (at most 7 days) the old password keeps working until now + `grace`;
    /// a password from an earlier rotation stops at once. Refresh tokens stay valid. Returns
    /// the token with the new password (shown once).
    pub async fn rotate(
        &self,
        registry: &str,
        id: Uuid,
        grace: TimeDelta,
    ) -> Result<(Token, String), AdminError> {
        let now = self.clock.now();
        let mut token = self
            .get(registry, id)
            .await?
            .ok_or(AdminError::NotFound(id))?;
        if token.federation.is_some() {
            return Err(ValidationError::new(
                "credentials",
                "a federated token has no password to rotate: it authenticates with the ID \
                 tokens its federation describes (properties.federation)",
            )
            .into());
        }
        let password = try_new_secret(PASSWORD_PREFIX).map_err(|_| AdminError::Internal {
            context: "no system randomness for a password",
            source: None,
        })?;
        token.rotate(SecretHash::of(&password), grace, now)?;
        token.modified = now;
        token.modified_by = self.actor.to_string();
        self.update(&token, WebhookEvent::TokenRotated).await?;
        Ok((token, password))
    }
}

/// The event of a write that leaves `token` as it is: `token.disabled` when it disabled the
/// token (it was enabled before), else `token.updated`.
fn changed(was: Status, token: &Token) -> WebhookEvent {
    if was == Status::Enabled && token.status == Status::Disabled {
        WebhookEvent::TokenDisabled
    } else {
        WebhookEvent::TokenUpdated
    }
}

/// A token stays what it was created as: a password token gets no federation, a federated
/// token keeps one (a change of kind would hand out or silently drop a password).
fn keeps_its_kind(existing: &Token, federated: bool, field: &str) -> Result<(), ValidationError> {
    match (existing.federation.is_some(), federated) {
        (false, true) => Err(ValidationError::new(
            field,
            "a password token cannot become federated: create a new token with a federation",
        )),
        (true, false) => Err(ValidationError::new(
            field,
            "a federated token keeps its federation: send it (changed if you like), or create \
             a new password token",
        )),
        _ => Ok(()),
    }
}

fn check_new(new: &NewToken, now: DateTime<Utc>) -> Result<(), ValidationError> {
    validate_scope_list(&new.scopes).map_err(|e| e.within("properties"))?;
    if let Some(exp) = new.expiry {
        validate_expiry(exp, now).map_err(|e| e.within("properties"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GrantKind, LastUse};
    use crate::store::conformance::expiring;
    use crate::store::MemoryStore;
    use crate::testing::{t0, token, Fault, FaultStore, Method};

    fn service(on_expiry: OnExpiry) -> (AdminService, Arc<MemoryStore>, Clock) {
        let store = Arc::new(MemoryStore::new());
        let clock = Clock::manual(t0());
        let admin = AdminService::new(store.clone(), clock.clone()).with_on_expiry(on_expiry);
        (admin, store, clock)
    }

    #[tokio::test]
    async fn rotate_keeps_everything_but_the_secret() {
        let (admin, store, clock) = service(OnExpiry::Delete);
        let t = expiring("default", "ci-bot", t0() + TimeDelta::days(30));
        store.create(&t).await.unwrap();
        clock.advance(TimeDelta::minutes(1));
        let (rotated, password) = admin
            .rotate("default", t.id, TimeDelta::hours(1))
            .await
            .unwrap();
        assert!(password.starts_with("rga_"));
        assert_eq!(rotated.secret_hash, SecretHash::of(&password));
        assert_eq!(
            rotated.previous_valid_until(clock.now()),
            Some(clock.now() + TimeDelta::hours(1))
        );
        assert_eq!(
            (
                rotated.id,
                &rotated.name,
                rotated.status,
                rotated.expiry,
                &rotated.scopes
            ),
            (t.id, &t.name, t.status, t.expiry, &t.scopes)
        );
        assert_eq!(rotated.modified, clock.now());
        assert_eq!(
            store.get("default", t.id).await.unwrap(),
            Some(rotated.clone())
        );
        assert!(rotated.secret_matches(&t.secret_hash, clock.now()));

        let e = admin
            .rotate("default", t.id, TimeDelta::days(8))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, AdminError::Invalid(v) if v.field == "gracePeriodSeconds"),
            "{e:?}"
        );
        assert_eq!(
            store.get("default", t.id).await.unwrap(),
            Some(rotated),
            "unchanged"
        );
        assert!(matches!(
            admin
                .rotate("default", Uuid::new_v4(), TimeDelta::zero())
                .await,
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            admin.rotate("staging", t.id, TimeDelta::zero()).await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn expired_means_deleted_by_default_and_visible_when_disabled() {
        for on_expiry in [OnExpiry::Delete, OnExpiry::Disable] {
            let (admin, store, clock) = service(on_expiry);
            let t = expiring("default", "brief", t0() + TimeDelta::hours(2));
            store.create(&t).await.unwrap();
            clock.advance(TimeDelta::hours(2));
            let kept = on_expiry == OnExpiry::Disable;
            assert_eq!(admin.get("default", t.id).await.unwrap().is_some(), kept);
            assert_eq!(
                admin.list("default", 0, 10).await.unwrap().total,
                usize::from(kept)
            );
            assert_eq!(
                store.get("default", t.id).await.unwrap().is_some(),
                kept,
                "swept"
            );
            if kept {
                // Revived by a later expiry.
                let changes = TokenChanges {
                    expiry: Patch::Value(clock.now() + TimeDelta::days(1)),
                    ..TokenChanges::default()
                };
                let t = admin.patch("default", t.id, changes).await.unwrap();
                assert!(t.is_usable(clock.now()));
            }
        }
    }

    /// Captures what `f` logs, as `serve`'s text format writes it.
    async fn logged(f: impl std::future::Future<Output = ()>) -> String {
        use tracing::instrument::WithSubscriber as _;
        let buf = crate::testing::Captured::default();
        f.with_subscriber(crate::logging::text_capture(buf.clone()))
            .await;
        buf.text()
    }

    /// Every expired token deleted is one log line, whichever sweep deleted it: the periodic
    /// sweeper or the one a token list runs first.
    #[tokio::test]
    async fn every_sweep_logs_each_token_it_deletes() {
        let (admin, store, clock) = service(OnExpiry::Delete);
        let a = expiring("default", "brief-a", t0() + TimeDelta::hours(2));
        let b = expiring("default", "brief-b", t0() + TimeDelta::hours(3));
        let lasting = expiring("default", "lasting", t0() + TimeDelta::days(3));
        for t in [&a, &b, &lasting] {
            store.create(t).await.unwrap();
        }
        clock.advance(TimeDelta::hours(2));
        let by_list =
            logged(async { assert_eq!(admin.list("default", 0, 10).await.unwrap().total, 2) })
                .await;
        let lines: Vec<&str> = by_list.lines().collect();
        assert_eq!(lines.len(), 1, "{by_list}");
        assert!(
            lines[0].contains("expired token deleted")
                && lines[0].contains("token=brief-a")
                && lines[0].contains(&format!("id={}", a.id))
                && lines[0].contains("registry=default")
                && lines[0].contains("by=\"list\""),
            "{by_list}"
        );
        clock.advance(TimeDelta::hours(1));
        let by_timer = logged(async {
            let deleted = admin.sweep(SweepTrigger::Timer).await.unwrap();
            assert_eq!(deleted.len(), 1);
        })
        .await;
        let lines: Vec<&str> = by_timer.lines().collect();
        assert_eq!(lines.len(), 1, "{by_timer}");
        assert!(
            lines[0].contains("token=brief-b") && lines[0].contains("by=\"sweeper\""),
            "{by_timer}"
        );
        // Nothing expired: nothing deleted, nothing logged.
        assert_eq!(
            logged(async { drop(admin.sweep(SweepTrigger::Timer).await.unwrap()) }).await,
            ""
        );
    }

    #[tokio::test]
    async fn list_expiring_filters_by_registry_and_window() {
        for on_expiry in [OnExpiry::Delete, OnExpiry::Disable] {
            let (admin, store, _) = service(on_expiry);
            for t in [
                expiring("default", "zulu-soon", t0() + TimeDelta::days(1)),
                expiring("default", "alpha-soon", t0() + TimeDelta::days(6)),
                expiring("default", "past", t0() - TimeDelta::minutes(1)),
                expiring("default", "later", t0() + TimeDelta::days(8)),
                expiring("staging", "elsewhere", t0() + TimeDelta::days(1)),
                token("default", "never"),
            ] {
                store.create(&t).await.unwrap();
            }
            let page = admin
                .list_expiring("default", TimeDelta::days(7), None, 0, 10)
                .await
                .unwrap();
            let names: Vec<&str> = page.items.iter().map(|t| t.name.as_str()).collect();
            if on_expiry == OnExpiry::Disable {
                assert_eq!(names, ["alpha-soon", "past", "zulu-soon"]);
            } else {
                assert_eq!(names, ["alpha-soon", "zulu-soon"]);
            }
            assert_eq!(page.total, names.len());
            let paged = admin
                .list_expiring("default", TimeDelta::days(7), None, 1, 1)
                .await
                .unwrap();
            assert_eq!(paged.items.len(), 1);
            assert_eq!(paged.items[0].name, page.items[1].name);
            assert_eq!(paged.total, page.total);
        }
    }

    fn owned(name: &str, owner: &str) -> Token {
        Token {
            owner: Some(owner.parse().unwrap()),
            ..token("default", name)
        }
    }

    /// Offboarding disables the owner's enabled tokens only, ends a grace period, and when
    /// the store fails part-way returns what it disabled before the failure with the error.
    #[tokio::test]
    async fn disable_owner_skips_disabled_tokens_and_reports_partial_work() {
        let (admin, store, clock) = service(OnExpiry::Delete);
        let mut rotated = owned("a-rotated", "al");
        rotated.previous = Some(crate::domain::PreviousSecret {
            hash: SecretHash([1; 32]),
            until: t0() + TimeDelta::hours(1),
        });
        let already = Token {
            status: Status::Disabled,
            ..owned("b-already", "al")
        };
        for t in [
            &rotated,
            &already,
            &owned("c-plain", "al"),
            &owned("other", "bo"),
        ] {
            store.create(t).await.unwrap();
        }
        clock.advance(TimeDelta::minutes(1));
        let (done, err) = admin.disable_owner("default", "al").await;
        assert!(err.is_none());
        let names: Vec<&str> = done.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a-rotated", "c-plain"]);
        let a = store.get("default", rotated.id).await.unwrap().unwrap();
        assert_eq!(
            (a.status, a.previous, a.modified),
            (Status::Disabled, None, clock.now())
        );
        assert_eq!(
            store
                .get("default", already.id)
                .await
                .unwrap()
                .unwrap()
                .modified,
            t0(),
            "left alone"
        );
        assert_eq!(
            store
                .find_by_name("default", "other")
                .await
                .unwrap()
                .unwrap()
                .status,
            Status::Enabled
        );

        let failing = Arc::new(FaultStore::default());
        failing.on(Method::Update, |n| {
            if n >= 1 {
                Fault::Fail(StoreError::message("disk on fire"))
            } else {
                Fault::Pass
            }
        });
        for t in [owned("one", "al"), owned("two", "al"), owned("three", "al")] {
            failing.create(&t).await.unwrap();
        }
        let admin = AdminService::new(failing.clone(), Clock::manual(t0()));
        let (done, err) = admin.disable_owner("default", "al").await;
        assert_eq!(done.len(), 1, "the first (by name) was disabled");
        assert_eq!(done[0].name.as_str(), "one");
        assert!(matches!(err, Some(AdminError::Store(_))), "{err:?}");
    }

    #[tokio::test]
    async fn reads_show_last_uses_not_yet_written() {
        let (admin, store, _) = service(OnExpiry::Delete);
        let usage = Arc::new(UsageRecorder::new(store.clone()));
        let admin = admin.with_usage(usage.clone());
        let t = Arc::new(token("default", "ci-bot"));
        store.create(&t).await.unwrap();
        let used = LastUse {
            at: t0(),
            client: None,
            grant: GrantKind::Password,
        };
        usage.record(&t, used);
        assert_eq!(
            admin.get("default", t.id).await.unwrap().unwrap().last_used,
            Some(used)
        );
        assert_eq!(
            admin.list("default", 0, 1).await.unwrap().items[0].last_used,
            Some(used)
        );
        assert_eq!(
            store.get("default", t.id).await.unwrap().unwrap().last_used,
            None
        );
    }
}
