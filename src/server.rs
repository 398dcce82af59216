//! Start-up: assembles the running server from a [`Config`]: first-start provisioning (a
//! private data dir, signing key and certificate, admin token), the store, the [`AppState`],
//! the expiry sweeper, the listener, and the metrics listener with its periodic store count.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use ring::rand::SecureRandom;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::error::Chain;
use crate::http::admin_token::AdminToken;
use crate::http::listener::{self, ConnectionLimits};
use crate::http::AppState;
use crate::jwt;
use crate::metrics::{self, Metrics};
use crate::service::{expiry, usage, AdminService, SweepTrigger};
use crate::store::{PgStore, SledStore, Store};

/// How often expired tokens are deleted. Expired tokens are refused at once anyway; the
/// sweeper only reclaims them.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Provisions what is missing (data dir, key, certificate, admin token) and opens the store
/// (sled, or PostgreSQL with `[store] url`): everything `serve` needs before it listens.
pub fn open(config: Config) -> anyhow::Result<AppState> {
    // Started from another directory, regauth finds no config and would quietly make a second
    // store, key and admin token: say which file is in use, or that none is.
    match &config.source {
        Some(file) => info!(config = %file.display(), "config file in use"),
        None => warn!(
            looked_for = crate::config::DEFAULT_CONFIG_PATH,
            cwd = %std::env::current_dir().unwrap_or_default().display(),
            listen = %config.listen, data_dir = %config.data_dir.display(),
            "no config file found (pass --config): using the defaults and REGAUTH_* variables"
        ),
    }
    create_data_dir(&config.data_dir)?;
    // An unreadable `[federation] ca_file` stops the start here, not each federated login.
    crate::oidc::Verifier::new(&config.federation, Arc::new(crate::metrics::Metrics::new()))
        .context("[federation] is not usable")?;
    // With PostgreSQL the keyring's state is in the database: the store opens first.
    let pg = match &config.store.url {
        Some(url) => Some((open_pg_unchecked(&config, url)?, url.clone())),
        None => None,
    };
    let new_key = !config.jwt.key.exists();
    let keys = match &pg {
        Some((pg, url)) => {
            // The installation's key (made when missing) must be the other replicas' one.
            jwt::provision::load_or_create(&config.jwt.key, &config.jwt.certificate)
                .context("cannot open the signing key")?;
            check_certificate(&config, url, pg)?;
            open_shared_keys(&config, pg)?
        }
        None => open_keys(&config)?,
    };
    if new_key {
        warn!(key = %config.jwt.key.display(), certificate = %config.jwt.certificate.display(),
            "created a new signing key and certificate: registries must trust this certificate");
    }
    {
        let issuer = keys.current().get();
        let key = issuer.key();
        info!(key = %key.thumbprint(), alg = key.alg(), kid = key.kid(),
            bundle = %keys.options().bundle.display(), jwks = %keys.options().jwks.display(),
            "signing key ready");
    }
    let admin_token = admin_token(&config)?;
    // After the token store: a second `serve` on this data dir fails there, saying who holds it.
    let (store, activity) = match pg {
        Some((pg, _)) => {
            let activity = open_activity(&config, Some(&pg), None)?;
            (pg as Arc<dyn Store>, activity)
        }
        None => {
            let store = open_store(&config)?;
            let activity = open_activity(&config, None, Some(&store))?;
            (store, activity)
        }
    };
    let from_file = config
        .admin
        .token
        .is_none()
        .then(|| config.admin_token_file());
    let state = AppState::with_keys(config, store, keys, &admin_token, Clock::system())
        .with_activity(activity);
    Ok(match from_file {
        // Re-read when `regauth admin-token rotate` replaces the file.
        Some(path) => state.with_admin_token(AdminToken::file(path, &admin_token)),
        None => state,
    })
}

/// The registries' events: in PostgreSQL beside the tokens, else in their own sled database
/// (`<data_dir>/activity`); each registry's events secret from its file (made when missing).
/// (The webhooks' outbox is the token store's: [`Store::outbox`].)
/// With the sled `store`, webhook deliveries left in the activity database move into it.
fn open_activity(
    config: &Config,
    pg: Option<&Arc<PgStore>>,
    store: Option<&Arc<dyn Store>>,
) -> anyhow::Result<crate::service::activity::ActivityService> {
    use crate::store::activity::{ActivityStore, SledActivity};
    let activity: Arc<dyn ActivityStore> = match pg {
        Some(pg) => pg.clone(),
        None => {
            let path = config.data_dir.join("activity");
            let sled = SledActivity::open(&path)
                .with_context(|| format!("cannot open the activity store in {}", path.display()))?;
            if let Some(store) = store {
                move_old_outbox(&sled, store).with_context(|| {
                    format!("cannot move the webhook outbox out of {}", path.display())
                })?;
            }
            Arc::new(sled)
        }
    };
    let mut secrets =
        crate::service::activity::load_or_create_secrets(&config.data_dir, &config.registries)
            .map_err(anyhow::Error::msg)?;
    // With replicas, the first one's secret is everyone's (and is kept in each data dir, for an
    // offline `registry-config`).
    if let Some(pg) = pg {
        for (registry, secret) in secrets.iter_mut() {
            let shared = pg
                .events_secret(registry, secret)
                .context("cannot read the events secret from PostgreSQL")?;
            if shared != *secret {
                crate::service::activity::keep_secret(&config.data_dir, registry, &shared)
                    .map_err(anyhow::Error::msg)?;
                *secret = shared;
            }
        }
    }
    Ok(crate::service::activity::ActivityService::new(
        activity,
        secrets,
        config.activity,
    ))
}

/// Moves webhook deliveries left in the activity database's outbox (where versions before
/// the transactional outbox kept it) into the token store's, once: pending ones are then
/// sent, finished ones stay in the delivery log. Runs on the blocking thread of [`open`].
fn move_old_outbox(
    activity: &crate::store::activity::SledActivity,
    store: &Arc<dyn Store>,
) -> Result<(), crate::store::StoreError> {
    let old = activity.outbox()?;
    let to = store.clone().outbox();
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| crate::store::StoreError::backend("no runtime to move the outbox on", e))?;
    let moved = runtime.block_on(old.move_into(&*to))?;
    if moved > 0 {
        info!(
            deliveries = moved,
            "moved the webhook outbox into the token store"
        );
    }
    Ok(())
}

/// Where the keyring's files are for `config` (`[jwt]` and the data dir): what `serve`
/// publishes, and what `registry-config` reads without a server.
pub fn key_options(config: &Config) -> jwt::keystore::KeyOptions {
    jwt::keystore::KeyOptions::new(
        &config.data_dir,
        &config.jwt.key,
        &config.jwt.certificate,
        config.jwt.issuer.clone(),
        config.jwt.ttl_seconds,
        config.jwt.certificate_days,
    )
}

/// The keyring (`jwt::keystore`): the installation's key becomes its active key on first
/// start; refuses to start when this process cannot sign with the active key.
pub fn open_keys(config: &Config) -> anyhow::Result<Arc<jwt::keystore::KeyStore>> {
    let options = key_options(config);
    let keys = jwt::keystore::KeyStore::open(options, chrono::Utc::now())
        .context("cannot open the signing keys")?;
    Ok(Arc::new(keys))
}

/// The keyring whose state is in PostgreSQL, shared by every replica: a change on another
/// replica reaches this one by the store's notification connection.
pub fn open_shared_keys(
    config: &Config,
    pg: &Arc<PgStore>,
) -> anyhow::Result<Arc<jwt::keystore::KeyStore>> {
    let options = key_options(config);
    let shared: Arc<dyn jwt::keystore::SharedState> = pg.clone();
    let keys = Arc::new(
        jwt::keystore::KeyStore::open_shared(options, shared, chrono::Utc::now())
            .context("cannot open the signing keys (state in PostgreSQL)")?,
    );
    let weak = Arc::downgrade(&keys);
    pg.on_keyring_change(Arc::new(move |version| {
        if let Some(keys) = weak.upgrade() {
            if let Err(e) = keys.refresh(version) {
                tracing::error!(error = %crate::error::Chain(&e), version,
                    "cannot apply the signing keyring changed by another replica; still using the previous one");
            }
        }
    }));
    Ok(keys)
}

/// The configured store: sled in `<data_dir>/store`, or PostgreSQL at `[store] url` (schema
/// migrated, signing certificate checked against the one every replica must share).
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let Some(url) = &config.store.url else {
        return Ok(Arc::new(open_sled(config)?));
    };
    let store: Arc<dyn Store> = open_pg(config, url)?;
    Ok(store)
}

/// The sled store in `<data_dir>/store`, with `[store] token_cache_bytes` of decoded tokens
/// cached in front of it.
fn open_sled(config: &Config) -> anyhow::Result<SledStore> {
    let path = config.data_dir.join("store");
    if !path.exists() {
        warn!(path = %path.display(), "creating a new, empty token store");
    }
    let cache = config.store.token_cache_bytes;
    let store = SledStore::open_with_caches(&path, crate::store::sled::DEFAULT_CACHE_BYTES, cache)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    info!(store = "sled", path = %path.display(), token_cache_bytes = cache, "store open");
    if let Some(ids) = store.reindexed() {
        info!(
            ids,
            "moved the index of token ids into buckets (an older regauth cannot find these \
             tokens by id; see docs/deployment.md)"
        );
    }
    Ok(store)
}

/// The PostgreSQL store at `url`, its signing certificate checked.
fn open_pg(config: &Config, url: &str) -> anyhow::Result<Arc<PgStore>> {
    let store = open_pg_unchecked(config, url)?;
    check_certificate(config, url, &store)?;
    Ok(store)
}

/// Called on a blocking thread of the server's runtime (see [`run`]): the store's connections
/// and listener are tasks of that runtime.
fn open_pg_unchecked(config: &Config, url: &str) -> anyhow::Result<Arc<PgStore>> {
    let runtime = tokio::runtime::Handle::try_current()
        .context("the PostgreSQL store needs the server's runtime")?;
    let store = runtime
        .block_on(PgStore::open(url, &config.store))
        .with_context(|| format!("cannot open the PostgreSQL store at {}", redact(url)))?;
    Ok(Arc::new(store))
}

/// Records the signing certificate, or refuses one that is not the other replicas'.
fn check_certificate(config: &Config, url: &str, store: &PgStore) -> anyhow::Result<()> {
    let where_ = redact(url);
    let fingerprint = certificate_fingerprint(&config.jwt.certificate)?;
    let recorded = store
        .blocking(store.record_certificate(&fingerprint))
        .context("cannot record the signing certificate in PostgreSQL")?;
    anyhow::ensure!(
        recorded == fingerprint,
        "the signing certificate {} (SHA-256 {fingerprint}) is not the one the other replicas \
         use (SHA-256 {recorded}, recorded in the database): every replica must sign with the same \
         key, so give this one the same [jwt] key and certificate files (docs/high-availability.md). \
         If the key was replaced on purpose, stop every replica and delete the record: DELETE FROM \
         regauth_settings WHERE key = '{}'",
        config.jwt.certificate.display(),
        crate::store::postgres::CERTIFICATE_SETTING,
    );
    info!(store = "postgresql", database = %where_, tls = ?config.store.tls,
        pool_size = config.store.pool_size, certificate_sha256 = %fingerprint, "store open");
    Ok(())
}

/// `url` without its password, for logs and messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// SHA-256 (hex) of the first certificate in the PEM file at `path`.
pub fn certificate_fingerprint(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let blocks = pem::parse_many(&text)
        .with_context(|| format!("{}: not a PEM certificate", path.display()))?;
    let cert = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .with_context(|| format!("{}: no CERTIFICATE block", path.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.contents());
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs the server until SIGINT/SIGTERM. `listen` may have port 0: the address the OS
/// chose is logged (`regauth listening listen=...`) and, with `bound_address_file`, written to
/// that file (replaced atomically, so a reader never sees half of it) before the first
/// request is served.
pub async fn run(config: Config, bound_address_file: Option<PathBuf>) -> anyhow::Result<()> {
    let listen = config.listen;
    raise_open_files_limit(config.limits.max_connections)?;
    // On a blocking thread: opening reads and writes files (keys, admin token, sled), may
    // generate a key, and with PostgreSQL waits for the database (`open_pg_unchecked`).
    let state = tokio::task::spawn_blocking(move || open(config)).await??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("cannot read the address bound for {listen}"))?;
    let config = (*state.config).clone().with_bound_address(bound);
    let state = state.with_config(config);
    if let Some(path) = &bound_address_file {
        crate::files::write_replacing(path, format!("{bound}\n").as_bytes())
            .context("cannot write the bound address file")?;
    }
    let cfg = &state.config;
    info!(listen = %bound, public_url = %cfg.public_url, "regauth listening");
    for r in &cfg.registries {
        info!(
            registry = %r.id, hostname = %r.hostname,
            "point the registry at regauth with auth.token: realm={} service={} issuer={} rootcertbundle={}",
            cfg.realm(), r.service, cfg.jwt.issuer, state.certificate.display()
        );
        if !r.public.is_empty() {
            info!(registry = %r.id, public = %r.public.join(" "),
                anonymous_per_minute = cfg.limits.anonymous_per_minute,
                "anyone may pull these repositories without credentials");
        }
    }
    if let Some(addr) = cfg.metrics.listen {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} for the metrics ([metrics] listen)")
        })?;
        let bound = listener
            .local_addr()
            .with_context(|| format!("cannot read the address bound for {addr}"))?;
        info!(listen = %bound, "metrics at http://{bound}/metrics");
        let app = crate::http::metrics_app(state.clone());
        // The main listener's timeouts and a small fixed cap: idle connections to it cannot
        // take the file descriptors `/auth` and `/health` need.
        let limits = ConnectionLimits::metrics(&cfg.limits);
        tokio::spawn(listener::serve(
            listener,
            app,
            limits,
            std::future::pending(),
        ));
        let registries = cfg.registries.iter().map(|r| r.id.clone()).collect();
        tokio::spawn(store_stats(
            state.admin.clone(),
            state.metrics.clone(),
            registries,
            metrics::STATS_INTERVAL,
        ));
    }
    tokio::spawn(sweeper(state.admin.clone(), SWEEP_INTERVAL));
    tokio::spawn(crate::service::activity::run_pruner(
        state.activity.clone(),
        cfg.registries.iter().map(|r| r.id.clone()).collect(),
        state.clock.clone(),
        crate::service::activity::PRUNE_INTERVAL,
    ));
    if let Some(keys) = state.keys.clone() {
        tokio::spawn(certificate_warner(keys, CERTIFICATE_CHECK_INTERVAL));
    }
    tokio::spawn(expiry::run_warner(
        state.admin.clone(),
        expiry::CHECK_INTERVAL,
    ));
    if state.webhooks.active() {
        info!(
            webhooks = cfg.webhooks.hooks.len(),
            "sending token events to the configured webhooks"
        );
        tokio::spawn(crate::service::webhook::run_deliverer(
            state.webhooks.clone(),
        ));
        tokio::spawn(expiry::run_webhook_watch(
            state.admin.clone(),
            expiry::WEBHOOK_CHECK_INTERVAL,
        ));
    }
    tokio::spawn(crate::service::throttle::run_summariser(
        state.throttle.clone(),
    ));
    tokio::spawn(crate::service::anonymous::run_summariser(
        state.auth.anonymous().clone(),
        std::time::Duration::from_secs(state.config.limits.denial_log_interval_seconds),
    ));
    let usage = state.auth.usage().clone();
    let flusher = tokio::spawn(usage::run_flusher(usage.clone(), usage::FLUSH_INTERVAL));
    let limits = ConnectionLimits::from_config(&state.config.limits, RESERVED_FILES);
    info!(
        max_connections = limits.max_connections,
        "serving at most {} connections at once", limits.max_connections
    );
    let throttle = state.throttle.clone();
    let app = crate::http::app(state);
    listener::serve(listener, app, limits, shutdown_signal()).await;
    // Denials counted since the last summary: summed up now rather than lost.
    throttle.summarise();
    // Last uses noted since the last background write: written once more before exiting.
    flusher.abort();
    match usage.flush().await {
        Ok(written) => info!(tokens = written, "last uses written"),
        Err(e) => warn!(error = %Chain(&e), "writing last uses at shutdown failed"),
    }
    info!("regauth stopped");
    Ok(())
}

/// File descriptors kept for everything but connections: the store's files, the log, the
/// listener, the key files read at start.
pub const RESERVED_FILES: u64 = 64;

/// Raises the soft open-files limit to the hard limit, and fails when even that is too low for
/// `max_connections` connections: better a clear refusal at start than a server that stops
/// accepting once the limit is reached.
fn raise_open_files_limit(max_connections: usize) -> anyhow::Result<()> {
    // 0: derived from the limit once raised, so whatever it is suffices.
    let needed = max_connections as u64
        + RESERVED_FILES
        + (listener::METRICS_CONNECTIONS + listener::HEALTH_RESERVE) as u64;
    let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let now = increase_nofile_limit(u64::MAX)
        .context("cannot raise the open-files limit (RLIMIT_NOFILE)")?;
    if let Some(soft) = before.current {
        if now > soft {
            info!(
                from = soft,
                to = now,
                hard = before.maximum,
                "raised the open-files limit"
            );
        }
    }
    anyhow::ensure!(
        max_connections == 0 || now >= needed,
        "the open-files limit is {now} (its hard limit), too low for [limits] max_connections = \
         {max_connections}, which needs {needed}: raise the hard limit (LimitNOFILE= in the \
         systemd unit, ulimit -Hn, docker run --ulimit nofile=...) or lower max_connections"
    );
    Ok(())
}

/// Raises the soft open-files limit towards `to`, at most to the hard limit, and returns the
/// soft limit now in force (`u64::MAX` for no limit). Never lowers it.
pub fn increase_nofile_limit(to: u64) -> std::io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // `None` is no limit.
    let soft = current.unwrap_or(u64::MAX);
    let target = to.min(maximum.unwrap_or(u64::MAX));
    if soft >= target {
        return Ok(soft);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum,
        },
    )?;
    Ok(target)
}

/// Makes every file and directory this process creates private to its user (mode 0700 for
/// directories, 0600 for files, whatever the modes asked for): sled creates the store's files
/// itself, with 0644. Called once at the start of `serve`, before any file is created. The
/// signing certificate is then made readable (0644) on purpose: the registry reads it.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates the data directory (0700) with its missing parents; warns when an existing one is
/// open to other users (its tokens' hashes and refresh tokens are in it).
fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("cannot read data directory {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        warn!(dir = %dir.display(), mode = %format!("{:o}", mode & 0o777),
            "the data directory is open to other users; make it private: chmod 700");
    }
    Ok(())
}

/// Counts the store's contents for the metrics now and every `every`, forever.
async fn store_stats(
    admin: AdminService,
    metrics: Arc<Metrics>,
    registries: Vec<String>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let within = chrono::TimeDelta::days(metrics::EXPIRING_WITHIN_DAYS);
        match admin.store_stats(&registries, within).await {
            Ok(stats) => {
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                metrics.set_store_stats(&stats, at);
            }
            Err(e) => warn!(error = %Chain(&e), "counting the store for the metrics failed"),
        }
    }
}

/// How often the signing certificates' expiry is checked (and warned about within 30 days).
pub const CERTIFICATE_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Warns now and every `every` about signing certificates that expire within 30 days.
async fn certificate_warner(keys: Arc<jwt::keystore::KeyStore>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let keys = keys.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || keys.warn_expiring(chrono::Utc::now())).await
        {
            warn!(error = %e, "certificate expiry check task failed");
        }
    }
}

/// Deletes expired tokens every `every`, forever.
async fn sweeper(admin: AdminService, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        // The service logs each deletion.
        if let Err(e) = admin.sweep(SweepTrigger::Timer).await {
            warn!(error = %Chain(&e), "expiry sweep failed");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The configured admin token, or the one in `<data_dir>/admin-token`, created (0600) when
/// missing. The token itself is never logged; its file is.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(t) = &config.admin.token {
        return Ok(t.clone());
    }
    let path = config.admin_token_file();
    if path.exists() {
        let t = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let t = t.trim().to_string();
        crate::config::check_admin_token(&t)
            .map_err(|why| anyhow::anyhow!("{}: admin token {why}", path.display()))?;
        return Ok(t);
    }
    let token = new_admin_token()?;
    crate::files::write_new_file(&path, token.as_bytes(), 0o600)
        .context("cannot create the admin token file")?;
    warn!(file = %path.display(), "generated a new admin token; read it from this file (mode 0600)");
    Ok(token)
}

fn new_admin_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(format!(
        "rgadm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// `regauth admin-token rotate`: replaces `<data_dir>/admin-token` with a new random token
/// (written to a temporary file, synced, renamed over the old one, so the file is never
/// half-written). A running server re-reads the file at its next admin request, so the old
/// token stops working at once; tokens, sessions and keys are untouched. Refused when the
/// admin token is configured (`[admin] token`, `REGAUTH_ADMIN_TOKEN`): change it there.
/// Returns the file's path.
pub fn rotate_admin_token(config: &Config) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        config.admin.token.is_none(),
        "the admin token is set in the configuration ([admin] token or REGAUTH_ADMIN_TOKEN); change it there and restart"
    );
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let path = config.admin_token_file();
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    crate::files::write_new_file(&tmp, new_admin_token()?.as_bytes(), 0o600)
        .context("cannot write the new admin token file")?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Token;
    use crate::store::MemoryStore;
    use chrono::{TimeZone, Utc};

    /// `[store] token_cache_bytes` sizes the sled store's cache of decoded tokens too: with 0
    /// every lookup reads sled and nothing is cached; by default a looked-up token is cached.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sled_store_caches_as_many_tokens_as_configured() {
        for (setting, cached) in [("", 1), ("[store]\ntoken_cache_bytes = 0", 0)] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = Config::from_toml(setting).unwrap();
            config.data_dir = dir.path().to_path_buf();
            let store = open_sled(&config).unwrap();
            let token = crate::testing::token("default", "ci-job");
            store.create(&token).await.unwrap();
            for _ in 0..2 {
                let found = store.find_by_name("default", "ci-job").await.unwrap();
                assert_eq!(found.map(|t| t.id), Some(token.id), "{setting:?}");
            }
            assert_eq!(store.cached_tokens(), cached, "{setting:?}");
        }
    }

    /// Issue 22: the start that moves an older store's index of ids into buckets says so,
    /// with the number of ids; later starts do not.
    #[test]
    fn opening_a_store_with_the_old_index_of_ids_logs_the_move() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::from_toml("").unwrap();
        config.data_dir = dir.path().to_path_buf();
        let tokens = [
            crate::testing::token("default", "first"),
            crate::testing::token("default", "second"),
        ];
        crate::store::sled::write_old_layout(&dir.path().join("store"), &tokens, |_| {});
        let open = || {
            let buf = crate::testing::Captured::default();
            // Retried while the store dropped just before still holds its lock.
            let store = crate::testing::reopen_sled(|| {
                let subscriber = crate::logging::text_capture(buf.clone());
                tracing::subscriber::with_default(subscriber, || open_sled(&config))
                    .map_err(|e| crate::store::StoreError::message(format!("{e:#}")))
            });
            (store, buf.text())
        };
        let (store, log) = open();
        assert!(
            log.contains("moved the index of token ids into buckets") && log.contains("ids=2"),
            "{log}"
        );
        drop(store);
        let (_, log) = open();
        assert!(!log.contains("moved the index"), "{log}");
    }

    /// The fingerprint is the lower-case hex SHA-256 of the certificate's DER (what the
    /// replicas compare and the log shows).
    #[test]
    fn the_certificate_fingerprint_is_the_hex_sha256_of_its_der() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        // "abc" as the DER: its SHA-256 is the FIPS 180-2 example.
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nYWJj\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert_eq!(
            certificate_fingerprint(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// The soft open-files limit goes up to the hard limit at most, and never down.
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit_and_never_lowered() {
        use rustix::process::{getrlimit, Resource};
        let before = getrlimit(Resource::Nofile);
        let soft = before.current.unwrap_or(u64::MAX);
        assert_eq!(increase_nofile_limit(1).unwrap(), soft, "never lowered");
        assert_eq!(getrlimit(Resource::Nofile).current, before.current);
        if let Some(hard) = before.maximum {
            assert_eq!(increase_nofile_limit(u64::MAX).unwrap(), hard);
            let after = getrlimit(Resource::Nofile);
            assert_eq!(after.current, Some(hard));
            assert_eq!(after.maximum, Some(hard), "the hard limit is kept");
        }
    }

    fn token(name: &str, expiry: Option<chrono::DateTime<Utc>>) -> Token {
        Token {
            expiry,
            ..crate::testing::token("default", name)
        }
    }

    #[tokio::test]
    async fn passwords_are_redacted_from_store_urls() {
        assert_eq!(
            redact("postgres://regauth:s3cret@db:5432/regauth"),
            "postgres://regauth:***@db:5432/regauth"
        );
        assert_eq!(redact("postgres://regauth@db/x"), "postgres://regauth@db/x");
        assert_eq!(redact("postgresql://db/x"), "postgresql://db/x");
        assert_eq!(
            redact("postgres://u:p@ss@db/x"),
            "postgres://u:***@db/x",
            "an @ in the password"
        );
    }

    #[tokio::test]
    async fn the_sweeper_deletes_expired_tokens_from_the_store() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = Clock::manual(t0);
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let brief = token("brief", Some(t0 + chrono::Duration::hours(2)));
        let lasting = token("lasting", None);
        store.create(&brief).await.unwrap();
        store.create(&lasting).await.unwrap();
        let task = tokio::spawn(sweeper(
            AdminService::new(store.clone(), clock.clone()),
            Duration::from_millis(20),
        ));

        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            store.get("default", brief.id).await.unwrap().is_some(),
            "not expired yet"
        );
        clock.advance(chrono::Duration::hours(2));
        let mut gone = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if store.get("default", brief.id).await.unwrap().is_none() {
                gone = true;
                break;
            }
        }
        task.abort();
        assert!(gone, "the sweeper should have deleted the expired token");
        assert!(store.get("default", lasting.id).await.unwrap().is_some());
    }

    /// A sled installation from before the transactional outbox: its deliveries are moved
    /// from the activity database into the token store's outbox at the start, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_moves_the_old_outbox_into_the_token_store() {
        use crate::domain::webhook::{Delivery, WebhookEvent};
        use crate::store::outbox::Outbox;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::from_toml("").unwrap();
        config.data_dir = dir.path().join("data");
        config.jwt.key = dir.path().join("signing.key");
        config.jwt.certificate = dir.path().join("signing.crt");
        let old = Delivery::new(
            uuid::Uuid::from_bytes([7; 16]),
            WebhookEvent::TokenDeleted,
            "http://hook.test/",
            "{}".into(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        );
        {
            std::fs::create_dir_all(&config.data_dir).unwrap();
            let activity =
                crate::store::activity::SledActivity::open(&config.data_dir.join("activity"))
                    .unwrap();
            activity
                .outbox()
                .unwrap()
                .enqueue(vec![old.clone()])
                .await
                .unwrap();
        }
        let c = config.clone();
        let state = tokio::task::spawn_blocking(move || open(c))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            state.webhooks.deliveries(10).await.unwrap(),
            std::slice::from_ref(&old)
        );
        drop(state);
        let activity =
            crate::store::activity::SledActivity::open(&config.data_dir.join("activity")).unwrap();
        assert_eq!(
            activity.outbox().unwrap().pending().await.unwrap(),
            0,
            "moved, not copied"
        );
    }
}
