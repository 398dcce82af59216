//! Keeps each replica's token cache coherent with the database: `LISTEN regauth_tokens` on a
//! connection of its own. Part of `store::postgres`; depends on `tokio-postgres` and the
//! cache.
//!
//! - Every write that creates, changes or removes a token sends `pg_notify('regauth_tokens',
//!   'registry/name')` in its own transaction, so the notice goes out exactly when the write
//!   commits (PostgreSQL delivers notifications at commit, never for a rolled-back write).
//!   Each replica drops that name from its cache when the notice arrives (`*` drops all), and
//!   every cached refresh grant (`GrantCache`): a disable or delete revokes the token's
//!   grants, and an `add_refresh` that trims grants beyond the cap notifies too.
//! - The cache is trusted only while this connection is up and listening ([`Shared::trusted`]).
//!   When it breaks (or misses its heartbeat), lookups read through to the database and
//!   nothing is cached; after `LISTEN` succeeds again, the cache is emptied and trusted again.
//!   So a notice lost while disconnected can never leave a stale entry behind.
//! - The heartbeat (an empty query every [`HEARTBEAT`], answer within [`HEARTBEAT_TIMEOUT`])
//!   finds a connection that died silently (a network partition, a frozen server).
//! - Last-use times are the exception: `record_uses` invalidates only its own replica's cache,
//!   as a stale last use decides nothing (it is shown, and only ever moves forward).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Config};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{info, warn};

use crate::store::cache::{GrantCache, TokenCache};

/// The notification channel.
pub const CHANNEL: &str = "regauth_tokens";
/// The channel of keyring changes (payload: the keyring's new version).
pub const KEYS_CHANNEL: &str = "regauth_keys";
/// The payload that empties every replica's cache.
pub const ALL: &str = "*";
/// The payload of a change to the named admins: each replica reloads them on next use.
pub const ADMINS: &str = "@admins";
/// How often the listener checks that its connection is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the heartbeat may take before the connection counts as dead.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The cache and whether it may be trusted, shared by the store and its listener.
pub struct Shared {
    pub cache: TokenCache,
    /// Refresh grants; dropped whole on every token notice (see `GrantCache`).
    pub grants: GrantCache,
    trusted: AtomicBool,
    /// Bumped by every admins notice and every loss of the connection, so that a replica's
    /// cache of named admins (`service::admins`) knows to reload.
    admins_generation: AtomicU64,
    /// Called with the new version when another replica (or this one) changed the keyring.
    on_keys: std::sync::Mutex<Option<KeysHook>>,
}

/// What to do when the keyring changed (see [`Shared::set_keys_hook`]).
pub type KeysHook = Arc<dyn Fn(i64) + Send + Sync>;

impl Shared {
    pub fn new(cache: TokenCache, grants: GrantCache) -> Shared {
        Shared {
            cache,
            grants,
            trusted: AtomicBool::new(false),
            admins_generation: AtomicU64::new(0),
            on_keys: std::sync::Mutex::new(None),
        }
    }

    /// Sets the hook run on every keyring notice, and on every (re)connection of the
    /// listener (with version 0), since a notice may have been missed while it was down.
    pub fn set_keys_hook(&self, hook: KeysHook) {
        match self.on_keys.lock() {
            Ok(mut g) => *g = Some(hook),
            Err(p) => *p.into_inner() = Some(hook),
        }
    }

    fn keys_changed(&self, version: i64) {
        let hook = match self.on_keys.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        if let Some(hook) = hook {
            hook(version);
        }
    }

    /// Whether the listener is connected and listening, so that cached tokens are current.
    pub fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    fn distrust(&self) {
        self.trusted.store(false, Ordering::Release);
        self.cache.clear();
        self.grants.clear();
        self.admins_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The admins' generation while the listener is up; `None` (cache nothing) otherwise.
    pub fn admins_generation(&self) -> Option<u64> {
        let generation = self.admins_generation.load(Ordering::Acquire);
        self.trusted().then_some(generation)
    }

    /// Applies one notification payload.
    fn apply(&self, payload: &str) {
        if payload == ADMINS {
            self.admins_generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        // A token changed (disabled, deleted, its grants trimmed): its grants may be gone.
        self.grants.clear();
        match payload.split_once('/') {
            Some((registry, name)) if payload != ALL => {
                self.cache.invalidate(&super::name_key(registry, name));
            }
            _ => self.cache.clear(),
        }
    }
}

/// Listens forever, reconnecting after failures; a task on the runtime that opened the store.
pub async fn run(
    config: Config,
    tls: MakeRustlsConnect,
    connect_timeout: Duration,
    shared: Arc<Shared>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut was_up = true;
    loop {
        let ended = session(&config, tls.clone(), connect_timeout, &shared).await;
        shared.distrust();
        match ended {
            Ok(()) => {}
            Err(SessionEnd::Lost(why)) => {
                warn!(error = %why, "PostgreSQL notification connection lost: reading every token from the database (no cache) until it is back");
                backoff = Duration::from_millis(50);
                was_up = true;
            }
            Err(SessionEnd::NoConnection(why)) => {
                if was_up {
                    warn!(error = %why, "cannot open the PostgreSQL notification connection; retrying (tokens are read from the database meanwhile)");
                    was_up = false;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum SessionEnd {
    NoConnection(String),
    Lost(String),
}

/// One connection: connect, `LISTEN`, trust the cache, apply notices until the connection fails.
async fn session(
    config: &Config,
    tls: MakeRustlsConnect,
    connect_timeout: Duration,
    shared: &Arc<Shared>,
) -> Result<(), SessionEnd> {
    let (client, mut connection) =
        match tokio::time::timeout(connect_timeout, config.connect(tls)).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                return Err(SessionEnd::NoConnection(
                    crate::error::Chain(&e).to_string(),
                ))
            }
            Err(_) => {
                return Err(SessionEnd::NoConnection(format!(
                    "no connection within {connect_timeout:?}"
                )))
            }
        };
    let for_driver = shared.clone();
    let mut driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == KEYS_CHANNEL => {
                    let version = n.payload().parse().unwrap_or(0);
                    let shared = for_driver.clone();
                    // The hook reads the database and writes files: not on the driver.
                    tokio::task::spawn_blocking(move || shared.keys_changed(version));
                }
                Some(Ok(AsyncMessage::Notification(n))) => for_driver.apply(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return crate::error::Chain(&e).to_string(),
                None => return "connection closed".to_string(),
            }
        }
    });
    let listen = tokio::time::timeout(
        HEARTBEAT_TIMEOUT,
        client.batch_execute(&format!("LISTEN {CHANNEL}; LISTEN {KEYS_CHANNEL}")),
    )
    .await;
    if !matches!(listen, Ok(Ok(()))) {
        driver.abort();
        return Err(SessionEnd::NoConnection("LISTEN failed".into()));
    }
    // Notices from now on reach us: what the cache held before may be stale.
    shared.cache.clear();
    shared.grants.clear();
    shared.trusted.store(true, Ordering::Release);
    info!("PostgreSQL notification connection up: token cache in use");
    // A keyring change may have been missed while the connection was down: re-read it.
    let resync = shared.clone();
    tokio::task::spawn_blocking(move || resync.keys_changed(0));
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            ended = &mut driver => {
                let why = ended.unwrap_or_else(|e| e.to_string());
                return Err(SessionEnd::Lost(why));
            }
            _ = tick.tick() => {
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        driver.abort();
                        return Err(SessionEnd::Lost(crate::error::Chain(&e).to_string()));
                    }
                    Err(_) => {
                        driver.abort();
                        return Err(SessionEnd::Lost(format!(
                            "heartbeat unanswered for {HEARTBEAT_TIMEOUT:?}"
                        )));
                    }
                }
            }
        }
    }
}
