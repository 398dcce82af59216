//! [`AppState`], the state every handler receives: configuration, the two services, the admin
//! token's hash, the clock, the certificate path, the throttle of failed authentication and
//! the metrics. Built by `server` at start-up (or by tests directly, over any store); `http`
//! owns the type so it depends on nothing above it.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::http::admin_token::AdminToken;
use crate::jwt::keystore::KeyStore;
use crate::jwt::{CurrentIssuer, Issuer, SigningKey};
use crate::metrics::Metrics;
use crate::service::{AdminService, AuthService, Throttle};
use crate::store::Store;

/// Shared state of the HTTP app: one `Arc`, so the clone axum makes for every request is
/// one reference count, not one per field (about two dozen atomic increments and decrements
/// on counters every worker thread writes; benches/RESULTS.md, issue 22's budget). Read its
/// fields through `Deref`; the `with_*` builders change them before serving.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub auth: Arc<AuthService>,
    pub admin: AdminService,
    /// The admin token (fixed, or kept in a file that is re-read when it changes).
    pub admin_token: Arc<AdminToken>,
    /// Named admins with roles (the bootstrap token is the `bootstrap` owner beside them).
    pub admins: crate::service::admins::AdminsService,
    pub clock: Clock,
    /// Absolute path of the signing certificate (the registry's `rootcertbundle`).
    pub certificate: Arc<Path>,
    /// Failed authentications of the token endpoint and the admin API (shared with `auth`).
    pub throttle: Arc<Throttle>,
    /// Every metric (served by [`crate::http::metrics_app`]).
    pub metrics: Arc<Metrics>,
    /// The signing keys and their rotation (`/api/v1/keys`, `/keys`); `None` when the state
    /// was built around a single key (tests).
    pub keys: Option<Arc<KeyStore>>,
    /// The registries' events (`POST /events/{registryId}`, the activity API).
    pub activity: crate::service::activity::ActivityService,
    pub webhooks: crate::service::webhook::WebhookService,
}

impl AppState {
    /// State over an opened store and a loaded key.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        key: SigningKey,
        admin_token: &str,
        clock: Clock,
    ) -> AppState {
        let issuer = Issuer::new(key, config.jwt.issuer.clone(), config.jwt.ttl_seconds);
        AppState::build(
            config,
            store,
            Arc::new(CurrentIssuer::new(issuer)),
            None,
            admin_token,
            clock,
        )
    }

    /// State over an opened store and keyring: tokens are signed by the keyring's active key,
    /// the bundle it publishes is the registries' `rootcertbundle`.
    pub fn with_keys(
        config: Config,
        store: Arc<dyn Store>,
        keys: Arc<KeyStore>,
        admin_token: &str,
        clock: Clock,
    ) -> AppState {
        AppState::build(
            config,
            store,
            keys.current(),
            Some(keys),
            admin_token,
            clock,
        )
    }

    fn build(
        config: Config,
        store: Arc<dyn Store>,
        issuer: Arc<CurrentIssuer>,
        keys: Option<Arc<KeyStore>>,
        admin_token: &str,
        clock: Clock,
    ) -> AppState {
        let throttle = Arc::new(Throttle::new(&config.limits));
        let metrics = Arc::new(Metrics::new());
        let auth = AuthService::with_current_issuer(
            store.clone(),
            issuer,
            clock.clone(),
            &config.registries,
        )
        .with_throttle(throttle.clone())
        .with_metrics(metrics.clone())
        .with_anonymous(crate::service::anonymous::AnonymousLimiter::new(
            config.limits.anonymous_per_minute,
            config.limits.denial_log_lines,
            std::time::Duration::from_secs(config.limits.denial_log_interval_seconds),
        ));
        // Checked at start (`server`): a `[federation]` whose CA file cannot be read stops
        // the server there. Here (tests building state directly) federated logins are then
        // refused with that reason in the log.
        let auth = match crate::oidc::Verifier::new(&config.federation, metrics.clone()) {
            Ok(verifier) => auth.with_verifier(verifier),
            Err(e) => {
                tracing::error!(error = %e, "federated logins are off: [federation] is not usable");
                auth
            }
        };
        let admins = crate::service::admins::AdminsService::new(store.clone(), clock.clone());
        // The store's own outbox: token changes and their deliveries commit together.
        let webhooks = crate::service::webhook::WebhookService::new(
            store.clone().outbox(),
            config.webhooks.clone(),
            clock.clone(),
            metrics.clone(),
        );
        let activity = crate::service::activity::ActivityService::in_memory(
            &config.registries,
            config.activity,
        )
        .with_webhooks(webhooks.clone());
        let admin = AdminService::new(store, clock.clone())
            .with_on_expiry(config.tokens.on_expiry)
            .with_usage(auth.usage().clone())
            .with_lifetimes(&config.registries)
            .with_federation(&config.federation)
            .with_webhooks(webhooks.clone());
        // With a keyring, the registries trust its bundle of every published key.
        let certificate = match &keys {
            Some(k) => Arc::from(k.options().bundle.clone()),
            None => Arc::from(absolute(&config.jwt.certificate)),
        };
        AppState(Arc::new(Shared {
            config: Arc::new(config),
            auth: Arc::new(auth),
            admin,
            admin_token: Arc::new(AdminToken::fixed(admin_token)),
            admins,
            clock,
            certificate,
            throttle,
            metrics,
            keys,
            activity,
            webhooks,
        }))
    }
}

impl AppState {
    /// The same state with `admin_token` checked instead (e.g. one kept in a file).
    pub fn with_admin_token(mut self, admin_token: AdminToken) -> AppState {
        self.shared().admin_token = Arc::new(admin_token);
        self
    }

    /// The same state with registry events kept by `activity` (the server's store and secrets).
    pub fn with_activity(
        mut self,
        activity: crate::service::activity::ActivityService,
    ) -> AppState {
        let activity = activity.with_webhooks(self.webhooks.clone());
        self.shared().activity = activity;
        self
    }

    /// The same state serving `config` (e.g. with the address it bound).
    pub fn with_config(mut self, config: Config) -> AppState {
        self.shared().config = Arc::new(config);
        self
    }

    /// The fields, to change before serving (copied if a clone of the state is about).
    fn shared(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// How long a request body may take to arrive (`[limits] body_timeout_seconds`).
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.limits.body_timeout_seconds)
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
