//! The PostgreSQL store, for several regauth replicas on one database. Part of `store`:
//! depends on `domain`, the record format (`record.rs`), the token cache (`cache.rs`) and
//! `tokio-postgres`/`deadpool-postgres`; nothing outside `store` sees a PostgreSQL type.
//!
//! # Schema
//!
//! `schema.rs` (versioned, embedded migrations applied at start under an advisory lock):
//! `regauth_tokens` (id, registry, name, enabled, expiry and the token's record),
//! `regauth_refresh_grants` (hash, token id with `ON DELETE CASCADE`, created, record),
//! `regauth_settings` (the signing certificate's fingerprint). Records are the bytes of
//! `record.rs`, as in sled, so a token decodes the same way from either store and
//! `regauth store migrate` copies them unchanged.
//!
//! # Calls
//!
//! Calls are async, on the runtime that opened the store (the server's): the pool's
//! connections and the listener are tasks there, and a call awaiting PostgreSQL parks no
//! thread, so a slow or stopped database holds no worker and a caller that goes away (a
//! client that hangs up) cancels its call. The token endpoint's usual read is a cache hit,
//! which never awaits anything. The shared keyring (`jwt::keystore`) is synchronous code on
//! blocking threads; it reaches the keyring methods through [`PgStore::blocking`].
//!
//! # Caches
//!
//! Decoded tokens by name and refresh grants by hash (`cache.rs`), used only while the
//! listener is up (`listener.rs`), so the token endpoint's usual read, and docker's refresh
//! path, never await the database. Every token notice drops the token's entry and every cached
//! grant.
//!
//! Every statement is prepared once per connection (`prepare_cached`). Every call is bounded:
//! pool wait and connect by `connect_timeout`, each statement by PostgreSQL's
//! `statement_timeout`, the whole call by both; past that it fails with
//! [`StoreError::Unavailable`] (HTTP 503), as does a refused or broken connection.
//!
//! # Writes
//!
//! Each write is one transaction (or one statement), committed before the method returns
//! (PostgreSQL's `synchronous_commit`, on by default, makes that durable). Uniqueness is the
//! table's constraints, so exactly one of racing creates wins. Writes that touch a token's
//! grants lock the token's row first (`FOR UPDATE`), so a grant is never added to a token that
//! is being disabled or deleted. A write that changes or removes a token notifies the other
//! replicas in the same transaction (`listener.rs`). The expiry sweep takes a transaction
//! advisory lock: with several replicas, one sweeps and the others skip that round.
mod activity;
mod listener;
mod outbox;
pub mod schema;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use self::listener::Shared;
use super::cache::{GrantCache, TokenCache};
use super::outbox::Outbox;
use super::{record, Page, RefreshGrant, Report, Store, StoreError, TokenUse, TokenWrite};
use super::{StoreConfig, Tls};
use crate::domain::webhook::Delivery;
use crate::domain::{Admin, LastUse, SecretHash, Status, Token};

pub use self::listener::CHANNEL;

/// Key of the transaction advisory lock of the expiry sweep.
pub const SWEEP_LOCK: i64 = 0x7267_6175_7468_0002;

/// The settings row holding the signing certificate's SHA-256 fingerprint.
pub const CERTIFICATE_SETTING: &str = "signing_certificate_sha256";

/// The keyring as stored in PostgreSQL (`regauth_keyring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKeyring {
    /// Grows by one on every change.
    pub version: i64,
    /// The keyring's JSON (as in `keys.json`).
    pub state: String,
    /// JSON object: key id -> certificate PEM.
    pub certificates: String,
}

/// Tokens and refresh grants in PostgreSQL.
pub struct PgStore {
    /// The runtime that opened the store and drives its connections (for [`PgStore::blocking`]).
    handle: Handle,
    /// The listener task, stopped when the store is dropped.
    listener: tokio::task::AbortHandle,
    pool: Pool,
    shared: Arc<Shared>,
    /// Bound on a whole call.
    call_timeout: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// A failed PostgreSQL call: `Unavailable` when the database is unreachable, shutting down,
/// out of resources or too slow; `Backend` for anything else (a bug or a damaged schema).
pub(crate) fn pg_error(context: impl Into<String>, e: tokio_postgres::Error) -> StoreError {
    let passing = match e.as_db_error() {
        Some(db) => {
            let class = &db.code().code()[..2];
            // 08 connection exception, 53 insufficient resources, 57 operator intervention
            // (shutdown, statement timeout), 58 system error.
            matches!(class, "08" | "53" | "57" | "58")
        }
        // Not an answer from the server: the connection failed, closed or timed out.
        None => {
            e.is_closed()
                || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
                || e.to_string().contains("timed out")
        }
    };
    if passing {
        StoreError::unavailable(context, Some(Box::new(e)))
    } else {
        StoreError::backend(context, e)
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        // No connection, whatever the cause (refused, TLS, authentication): the database is
        // unavailable to this replica; the log says why.
        PoolError::Backend(e) => {
            StoreError::unavailable("connecting to PostgreSQL", Some(Box::new(e)))
        }
        PoolError::Timeout(kind) => {
            StoreError::unavailable(format!("no PostgreSQL connection in time ({kind:?})"), None)
        }
        other => StoreError::backend("PostgreSQL connection pool", other),
    }
}

fn decode_token(bytes: &[u8]) -> Result<Token, StoreError> {
    record::decode_token(bytes).map_err(|e| StoreError::message(format!("token record: {e}")))
}

fn encode_token(token: &Token) -> Result<Vec<u8>, StoreError> {
    record::encode_token(token).map_err(|e| StoreError::message(format!("token record: {e}")))
}

fn check_registry(registry: &str) -> Result<(), StoreError> {
    if registry.contains('\0') {
        return Err(StoreError::message(format!(
            "registry id {registry:?} contains NUL"
        )));
    }
    Ok(())
}

/// The cache key of a token: `registry \0 name`, as in sled.
pub(crate) fn name_key(registry: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(registry.len() + 1 + name.len());
    key.extend_from_slice(registry.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The notification payload of a token: `registry/name`.
fn notice(registry: &str, name: &str) -> String {
    format!("{registry}/{name}")
}

/// `fut` within `limit`; past it, [`StoreError::Unavailable`] naming `what`.
async fn timed<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::unavailable(
            format!("{what}: no answer from PostgreSQL within {limit:?}"),
            None,
        )),
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Connects, migrates the schema (see `schema.rs`) and starts the listener. Fails when the
    /// database cannot be reached within the connect timeout, or its schema is newer than
    /// this regauth knows. The connections and the listener run on the calling runtime.
    /// `url` is the database's (`settings.url` is not read: the caller chose PostgreSQL by it).
    pub async fn open(url: &str, settings: &StoreConfig) -> Result<PgStore, StoreError> {
        let options = settings;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            // The message of a parse error does not repeat the URL (which may hold a password).
            StoreError::backend("the store URL is not a PostgreSQL connection URL", e)
        })?;
        config
            .connect_timeout(options.connect_timeout())
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name("regauth")
            // Notices (e.g. "already exists, skipping") are not worth a log line each.
            .options(format!(
                "-c statement_timeout={} -c client_min_messages=warning",
                options.statement_timeout_ms
            ))
            .ssl_mode(match options.tls {
                Tls::Disable => SslMode::Disable,
                Tls::Prefer => SslMode::Prefer,
                Tls::Require | Tls::VerifyFull => SslMode::Require,
            });
        let tls = tls::connector(options.tls, options.ca_file.as_deref())?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout()))
            .create_timeout(Some(options.connect_timeout()))
            .recycle_timeout(Some(options.connect_timeout()))
            .build()
            .map_err(|e| StoreError::backend("PostgreSQL connection pool", e))?;
        let grants = if options.token_cache_bytes == 0 {
            0
        } else {
            super::cache::DEFAULT_GRANTS
        };
        let shared = Arc::new(Shared::new(
            TokenCache::new(options.token_cache_bytes),
            GrantCache::new(grants),
        ));
        let call_timeout = options.connect_timeout() + options.statement_timeout();
        timed(call_timeout, "migrating the schema", async {
            let mut client = pool.get().await.map_err(pool_error)?;
            schema::migrate(&mut client).await
        })
        .await?;
        let mut listen_config = config;
        listen_config.application_name("regauth-listener");
        let listener = tokio::spawn(listener::run(
            listen_config,
            tls,
            options.connect_timeout(),
            shared.clone(),
        ))
        .abort_handle();
        Ok(PgStore {
            handle: Handle::current(),
            listener,
            pool,
            shared,
            call_timeout,
        })
    }

    /// Runs `fut` within the call timeout.
    async fn call<T: Send>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        timed(self.call_timeout, what, fut).await
    }

    /// Waits for `fut` (a call of this store) from synchronous code: a blocking thread
    /// (`spawn_blocking`) or a thread outside the runtime, as the shared keyring's code runs.
    /// On a worker thread of a multi-threaded runtime it moves the worker's other tasks away
    /// first (`block_in_place`); on a current-thread runtime it refuses, as the connections
    /// it would wait for run on the thread it would block.
    pub fn blocking<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::CurrentThread) => Err(StoreError::message(
                "a synchronous PostgreSQL call on a current-thread runtime would deadlock",
            )),
            Ok(_) => tokio::task::block_in_place(|| self.handle.block_on(fut)),
            Err(_) => self.handle.block_on(fut),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Whether the notification listener is up (so the cache is in use). For tests and logs.
    pub fn cache_trusted(&self) -> bool {
        self.shared.trusted()
    }

    /// Records `fingerprint` as the signing certificate of every replica if none is recorded
    /// yet; returns the recorded one (equal to `fingerprint` unless another replica recorded
    /// a different one).
    pub async fn record_certificate(&self, fingerprint: &str) -> Result<String, StoreError> {
        self.call("recording the signing certificate", async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO regauth_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&CERTIFICATE_SETTING, &fingerprint],
                )
                .await
                .map_err(|e| pg_error("recording the signing certificate", e))?;
            client
                .query_one(
                    "SELECT value FROM regauth_settings WHERE key = $1",
                    &[&CERTIFICATE_SETTING],
                )
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| pg_error("reading the signing certificate", e))
        }).await
    }

    /// The shared keyring (migration 4): its version, state (JSON) and certificates (JSON
    /// map of id to PEM); `None` before the first replica stored one.
    pub async fn load_keyring(&self) -> Result<Option<StoredKeyring>, StoreError> {
        self.call("reading the keyring", async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT version, state, certificates FROM regauth_keyring",
                    &[],
                )
                .await
                .map_err(|e| pg_error("reading the keyring", e))?;
            row.map(|row| {
                Ok(StoredKeyring {
                    version: row.try_get(0)?,
                    state: row.try_get(1)?,
                    certificates: row.try_get(2)?,
                })
            })
            .transpose()
            .map_err(|e| pg_error("reading the keyring", e))
        })
        .await
    }

    /// Stores the keyring as version `expected + 1` if the stored one is still `expected`
    /// (0: none stored yet), and notifies every replica in the same transaction. Returns
    /// `false`, changing nothing, when another replica changed it first.
    pub async fn save_keyring(
        &self,
        expected: i64,
        state: &str,
        certificates: &str,
    ) -> Result<bool, StoreError> {
        self.call("writing the keyring", async {
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| pg_error("writing the keyring: begin", e))?;
            let version = expected + 1;
            let changed = if expected == 0 {
                tx.execute(
                    "INSERT INTO regauth_keyring (version, state, certificates) VALUES ($1, $2, $3) \
                     ON CONFLICT (singleton) DO NOTHING",
                    &[&version, &state, &certificates],
                )
                .await
            } else {
                tx.execute(
                    "UPDATE regauth_keyring SET version = $1, state = $2, certificates = $3, \
                     updated = now() WHERE version = $4",
                    &[&version, &state, &certificates, &expected],
                )
                .await
            }
            .map_err(|e| pg_error("writing the keyring", e))?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&listener::KEYS_CHANNEL, &version.to_string()],
            )
            .await
            .map_err(|e| pg_error("writing the keyring: notify", e))?;
            tx.commit()
                .await
                .map_err(|e| pg_error("writing the keyring: commit", e))?;
            Ok(true)
        }).await
    }

    /// Runs `hook` (on a blocking thread) when the keyring changed, with its new version, and
    /// with 0 whenever the listener (re)connects (a notice may have been missed meanwhile).
    pub fn on_keyring_change(&self, hook: listener::KeysHook) {
        self.shared.set_keys_hook(hook);
    }

    /// Inserts `tokens` and `grants` that are not there yet (same id, same hash), in one
    /// transaction; returns how many of each it inserted. For `regauth store migrate`: a second
    /// run inserts nothing. Grants whose token is absent are skipped.
    pub async fn import(
        &self,
        tokens: &[Token],
        grants: &[RefreshGrant],
    ) -> Result<(usize, usize), StoreError> {
        self.call("importing tokens", async {
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| pg_error("import: begin", e))?;
            // One statement per batch (arrays unnested), not one round trip per token.
            let mut columns = (
                Vec::with_capacity(tokens.len()),
                Vec::with_capacity(tokens.len()),
                Vec::with_capacity(tokens.len()),
                Vec::with_capacity(tokens.len()),
                Vec::with_capacity(tokens.len()),
                Vec::with_capacity(tokens.len()),
                Vec::with_capacity(tokens.len()),
            );
            for t in tokens {
                check_registry(&t.registry)?;
                columns.0.push(t.id);
                columns.1.push(t.registry.as_str());
                columns.2.push(t.name.as_str());
                columns.3.push(t.status == Status::Enabled);
                columns.4.push(t.expiry);
                columns.5.push(encode_token(t)?);
                columns.6.push(t.owner.as_ref().map(|o| o.as_str()));
            }
            let insert_tokens = tx
                .prepare_cached(
                    "INSERT INTO regauth_tokens (id, registry, name, enabled, expiry, record, owner)
                     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[],
                                          $5::timestamptz[], $6::bytea[], $7::text[])
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(|e| pg_error("import: prepare", e))?;
            let new_tokens = tx
                .execute(
                    &insert_tokens,
                    &[
                        &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5,
                        &columns.6,
                    ],
                )
                .await
                .map_err(|e| pg_error("import: tokens", e))? as usize;
            let insert_grant = tx
                .prepare_cached(
                    "INSERT INTO regauth_refresh_grants (hash, token_id, created, record, expires)
                     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM regauth_tokens WHERE id = $2)
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(|e| pg_error("import: prepare", e))?;
            let mut new_grants = 0;
            for g in grants {
                let record = record::encode_grant(g)
                    .map_err(|e| StoreError::message(format!("grant record: {e}")))?;
                new_grants += tx
                    .execute(
                        &insert_grant,
                        &[
                            &&g.hash.0[..],
                            &g.token_id,
                            &g.created,
                            &record,
                            &g.federated.as_ref().map(|f| f.expires),
                        ],
                    )
                    .await
                    .map_err(|e| pg_error("import: refresh grant", e))?
                    as usize;
            }
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &listener::ALL])
                .await
                .map_err(|e| pg_error("import: notify", e))?;
            tx.commit()
                .await
                .map_err(|e| pg_error("import: commit", e))?;
            Ok((new_tokens, new_grants))
        })
        .await
    }

    /// How many of `ids` are tokens here, and how many of `hashes` refresh grants (for
    /// `regauth store migrate`'s check).
    pub async fn count_present(
        &self,
        ids: &[Uuid],
        hashes: &[Vec<u8>],
    ) -> Result<(usize, usize), StoreError> {
        self.call("checking the copy", async {
            let tokens = self
                .count_where(
                    "checking the copy",
                    "SELECT count(*) FROM regauth_tokens WHERE id = ANY($1)",
                    &[&ids],
                )
                .await?;
            let grants = self
                .count_where(
                    "checking the copy",
                    "SELECT count(*) FROM regauth_refresh_grants WHERE hash = ANY($1)",
                    &[&hashes],
                )
                .await?;
            Ok((tokens, grants))
        })
        .await
    }

    /// Number of refresh grants (for `regauth store migrate`'s check).
    pub async fn count_grants(&self) -> Result<usize, StoreError> {
        self.call("counting refresh grants", async {
            let client = self.client().await?;
            let n: i64 = client
                .query_one("SELECT count(*) FROM regauth_refresh_grants", &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_error("counting refresh grants", e))?;
            Ok(n as usize)
        })
        .await
    }

    async fn records(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Token>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| pg_error(what, e))?;
        let rows = client
            .query(&stmt, params)
            .await
            .map_err(|e| pg_error(what, e))?;
        rows.iter()
            .map(|row| {
                let bytes: &[u8] = row.try_get(0).map_err(|e| pg_error(what, e))?;
                decode_token(bytes)
            })
            .collect()
    }

    async fn count_where(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| pg_error(what, e))?;
        let n: i64 = client
            .query_one(&stmt, params)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_error(what, e))?;
        Ok(n as usize)
    }
}

/// Maps a unique violation on create or rename to the store's conflict errors.
/// Locks a token's row (`FOR UPDATE`, until `tx` ends) and reads it: its stored name and its
/// record; `None` when no such token exists.
async fn lock_token(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
    registry: &str,
    what: &'static str,
) -> Result<Option<(String, Token)>, StoreError> {
    let err = |e| pg_error(what, e);
    let lock = tx
        .prepare_cached(
            "SELECT name, record FROM regauth_tokens WHERE id = $1 AND registry = $2 FOR UPDATE",
        )
        .await
        .map_err(err)?;
    let Some(row) = tx.query_opt(&lock, &[&id, &registry]).await.map_err(err)? else {
        return Ok(None);
    };
    let name: String = row.try_get(0).map_err(err)?;
    let token = decode_token(row.try_get(1).map_err(err)?)?;
    Ok(Some((name, token)))
}

fn conflict(e: tokio_postgres::Error, token: &Token, what: &str) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if db.code() == &SqlState::UNIQUE_VIOLATION {
            return match db.constraint() {
                Some("regauth_tokens_pkey") => StoreError::IdTaken(token.id),
                _ => StoreError::NameTaken(token.name.to_string()),
            };
        }
    }
    pg_error(what, e)
}

/// The token writes, each with its webhook deliveries in its transaction.
impl PgStore {
    /// [`Store::create`] with the deliveries `outbox`, in one transaction.
    async fn create_with(&self, token: &Token, outbox: &[Delivery]) -> Result<(), StoreError> {
        check_registry(&token.registry)?;
        let record = encode_token(token)?;
        self.call("creating a token", async {
            let mut client = self.client().await?;
            let err = |e| pg_error("creating a token", e);
            let tx = client.transaction().await.map_err(err)?;
            let stmt = tx
                // One statement, so the notice goes out exactly when the row commits: every
                // replica may have cached the name as unknown.
                .prepare_cached(
                    "WITH created AS (
                         INSERT INTO regauth_tokens (id, registry, name, enabled, expiry, record, owner)
                         VALUES ($1, $2, $3, $4, $5, $6, $8) RETURNING registry, name)
                     SELECT pg_notify($7, registry || '/' || name) FROM created",
                )
                .await
                .map_err(|e| pg_error("creating a token", e))?;
            tx
                .execute(
                    &stmt,
                    &[
                        &token.id,
                        &token.registry,
                        &token.name.as_str(),
                        &(token.status == Status::Enabled),
                        &token.expiry,
                        &record,
                        &CHANNEL,
                        &token.owner.as_ref().map(|o| o.as_str()),
                    ],
                )
                .await
                .map_err(|e| conflict(e, token, "creating a token"))?;
            outbox::insert_deliveries(&*tx, outbox).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(())
        }).await?;
        // This replica's own entry (an unknown name cached) goes now, not when the notice
        // comes back.
        self.shared
            .cache
            .invalidate(&name_key(&token.registry, token.name.as_str()));
        Ok(())
    }

    /// [`Store::update`] with the deliveries `outbox`, in one transaction.
    async fn update_with(&self, token: &Token, outbox: &[Delivery]) -> Result<(), StoreError> {
        check_registry(&token.registry)?;
        let old_name = self
            .call("updating a token", async {
                let mut client = self.client().await?;
                let err = |e| pg_error("updating a token", e);
                let tx = client.transaction().await.map_err(err)?;
                let Some((old_name, stored)) =
                    lock_token(&tx, token.id, &token.registry, "updating a token").await?
                else {
                    return Err(StoreError::NotFound);
                };
                let mut merged = token.clone();
                merged.last_used = LastUse::latest(stored.last_used, token.last_used);
                let record = encode_token(&merged)?;
                let write = tx
                .prepare_cached(
                    "UPDATE regauth_tokens SET name = $2, enabled = $3, expiry = $4, record = $5,
                         owner = $6
                     WHERE id = $1",
                )
                .await
                .map_err(err)?;
                let enabled = token.status == Status::Enabled;
                tx.execute(
                    &write,
                    &[
                        &token.id,
                        &token.name.as_str(),
                        &enabled,
                        &token.expiry,
                        &record,
                        &token.owner.as_ref().map(|o| o.as_str()),
                    ],
                )
                .await
                .map_err(|e| conflict(e, token, "updating a token"))?;
                if !enabled {
                    let revoke = tx
                        .prepare_cached("DELETE FROM regauth_refresh_grants WHERE token_id = $1")
                        .await
                        .map_err(err)?;
                    tx.execute(&revoke, &[&token.id]).await.map_err(err)?;
                }
                let notify = tx
                    .prepare_cached("SELECT pg_notify($1, $2)")
                    .await
                    .map_err(err)?;
                tx.execute(&notify, &[&CHANNEL, &notice(&token.registry, &old_name)])
                    .await
                    .map_err(err)?;
                if old_name != token.name.as_str() {
                    tx.execute(
                        &notify,
                        &[&CHANNEL, &notice(&token.registry, token.name.as_str())],
                    )
                    .await
                    .map_err(err)?;
                }
                outbox::insert_deliveries(&*tx, outbox).await.map_err(err)?;
                tx.commit().await.map_err(err)?;
                Ok(old_name)
            })
            .await?;
        // A disable revoked the token's grants.
        self.shared.grants.clear();
        self.shared
            .cache
            .invalidate(&name_key(&token.registry, &old_name));
        if old_name != token.name.as_str() {
            self.shared
                .cache
                .invalidate(&name_key(&token.registry, token.name.as_str()));
        }
        Ok(())
    }

    /// [`Store::delete`] with the deliveries `outbox`, in one transaction.
    async fn delete_with(
        &self,
        registry: &str,
        id: Uuid,
        outbox: &[Delivery],
    ) -> Result<bool, StoreError> {
        let gone = self.call("deleting a token", async {
            let mut client = self.client().await?;
            let err = |e| pg_error("deleting a token", e);
            let tx = client.transaction().await.map_err(err)?;
            // One statement: the delete (grants cascade) and its notice commit together.
            let stmt = tx
                .prepare_cached(
                    "WITH gone AS (DELETE FROM regauth_tokens WHERE id = $1 AND registry = $2 RETURNING name)
                     SELECT name, pg_notify($3, $2 || '/' || name) FROM gone",
                )
                .await
                .map_err(err)?;
            let row = tx
                .query_opt(&stmt, &[&id, &registry, &CHANNEL])
                .await
                .map_err(err)?;
            let name = row.map(|r| r.try_get::<_, String>(0)).transpose().map_err(err)?;
            if name.is_some() {
                outbox::insert_deliveries(&*tx, outbox).await.map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok(name)
        }).await?;
        if let Some(name) = &gone {
            self.shared.grants.clear();
            self.shared.cache.invalidate(&name_key(registry, name));
        }
        Ok(gone.is_some())
    }

    /// [`Store::delete_expired_reporting`].
    async fn delete_expired_with(
        &self,
        now: DateTime<Utc>,
        report: &Report<'_>,
    ) -> Result<Vec<Token>, StoreError> {
        let deleted = self.call("deleting expired tokens", async {
            let mut client = self.client().await?;
            let err = |e| pg_error("deleting expired tokens", e);
            let tx = client.transaction().await.map_err(err)?;
            let locked: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&SWEEP_LOCK])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(err)?;
            if !locked {
                // Another replica is sweeping right now.
                return Ok(Vec::new());
            }
            let stmt = tx
                .prepare_cached(
                    "WITH gone AS (DELETE FROM regauth_tokens WHERE expiry <= $1 RETURNING registry, name, expiry, id, record)
                     SELECT record, pg_notify($2, registry || '/' || name) FROM gone ORDER BY expiry, id",
                )
                .await
                .map_err(err)?;
            let rows = tx.query(&stmt, &[&now, &CHANNEL]).await.map_err(err)?;
            let tokens = rows
                .iter()
                .map(|r| decode_token(r.try_get(0).map_err(err)?))
                .collect::<Result<Vec<Token>, StoreError>>()?;
            let deliveries: Vec<Delivery> = tokens.iter().flat_map(report).collect();
            outbox::insert_deliveries(&*tx, &deliveries).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(tokens)
        }).await?;
        if !deleted.is_empty() {
            self.shared.grants.clear();
        }
        for t in &deleted {
            self.shared
                .cache
                .invalidate(&name_key(&t.registry, t.name.as_str()));
        }
        Ok(deleted)
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        self.call("reading admins", async {
            let client = self.client().await?;
            let err = |e| pg_error("reading admins", e);
            let rows = client
                .query("SELECT name, record FROM regauth_admins ORDER BY name", &[])
                .await
                .map_err(err)?;
            rows.iter()
                .map(|r| {
                    let name: String = r.try_get(0).map_err(err)?;
                    let record: String = r.try_get(1).map_err(err)?;
                    serde_json::from_str(&record).map_err(|e| {
                        StoreError::backend(format!("undecodable admin record {name:?}"), e)
                    })
                })
                .collect()
        })
        .await
    }

    fn admins_generation(&self) -> Option<u64> {
        self.shared.admins_generation()
    }

    async fn put_admin(&self, admin: &Admin, replace: bool) -> Result<(), StoreError> {
        let name = admin.name.to_string();
        let record = serde_json::to_string(admin)
            .map_err(|e| StoreError::backend(format!("encoding admin {name}"), e))?;
        // One statement: the write and its notice commit together.
        let sql = if replace {
            "WITH w AS (UPDATE regauth_admins SET record = $2 WHERE name = $1 RETURNING name)
             SELECT name, pg_notify($3, $4) FROM w"
        } else {
            "WITH w AS (INSERT INTO regauth_admins (name, record) VALUES ($1, $2)
                        ON CONFLICT (name) DO NOTHING RETURNING name)
             SELECT name, pg_notify($3, $4) FROM w"
        };
        let written = self
            .call("writing an admin", async {
                let client = self.client().await?;
                let err = |e| pg_error("writing an admin", e);
                let stmt = client.prepare_cached(sql).await.map_err(err)?;
                let row = client
                    .query_opt(&stmt, &[&name, &record, &CHANNEL, &listener::ADMINS])
                    .await
                    .map_err(err)?;
                Ok(row.is_some())
            })
            .await?;
        match (written, replace) {
            (true, _) => Ok(()),
            (false, true) => Err(StoreError::NotFound),
            (false, false) => Err(StoreError::NameTaken(name)),
        }
    }

    async fn delete_admin(&self, name: &str) -> Result<bool, StoreError> {
        self.call("deleting an admin", async {
            let client = self.client().await?;
            let err = |e| pg_error("deleting an admin", e);
            let stmt = client
                .prepare_cached(
                    "WITH gone AS (DELETE FROM regauth_admins WHERE name = $1 RETURNING name)
                     SELECT name, pg_notify($2, $3) FROM gone",
                )
                .await
                .map_err(err)?;
            let row = client
                .query_opt(&stmt, &[&name, &CHANNEL, &listener::ADMINS])
                .await
                .map_err(err)?;
            Ok(row.is_some())
        })
        .await
    }

    async fn find_by_name(
        &self,
        registry: &str,
        name: &str,
    ) -> Result<Option<Arc<Token>>, StoreError> {
        if registry.contains('\0') {
            return Ok(None);
        }
        let key = name_key(registry, name);
        let trusted = self.shared.trusted();
        if trusted {
            // A known token, or a name known to be absent (cached too, so that an unknown
            // name costs what a known one does).
            if let Some(cached) = self.shared.cache.get(&key) {
                return Ok(cached);
            }
        }
        let epoch = self.shared.cache.epoch();
        let found = self
            .call("reading a token", async {
                let client = self.client().await?;
                let stmt = client
                    .prepare_cached(
                        "SELECT record FROM regauth_tokens WHERE registry = $1 AND name = $2",
                    )
                    .await
                    .map_err(|e| pg_error("reading a token", e))?;
                let row = client
                    .query_opt(&stmt, &[&registry, &name])
                    .await
                    .map_err(|e| pg_error("reading a token", e))?;
                match row {
                    Some(row) => {
                        let bytes: &[u8] =
                            row.try_get(0).map_err(|e| pg_error("reading a token", e))?;
                        decode_token(bytes).map(|t| Some(Arc::new(t)))
                    }
                    None => Ok(None),
                }
            })
            .await?;
        // Only while notices arrive; `clear` on reconnect moves the epoch on, so a read from
        // before a disconnection is never cached after it. Absent names are cached as well:
        // every create sends a notice for its name.
        if trusted && self.shared.trusted() {
            self.shared
                .cache
                .insert_if_current(&key, found.clone(), epoch);
        }
        Ok(found)
    }

    async fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError> {
        self.call("reading a token", async {
            let mut found = self
                .records(
                    "reading a token",
                    "SELECT record FROM regauth_tokens WHERE id = $1 AND registry = $2",
                    &[&id, &registry],
                )
                .await?;
            Ok(found.pop())
        })
        .await
    }

    async fn list(&self, registry: &str, offset: usize, limit_: usize) -> Result<Page, StoreError> {
        self.list_matching(registry, "", offset, limit_).await
    }

    async fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit_: usize,
    ) -> Result<Page, StoreError> {
        self.call("listing tokens", async {
            let total = self
                .count_where(
                    "counting tokens",
                    "SELECT count(*) FROM regauth_tokens WHERE registry = $1 AND strpos(name, $2) > 0",
                    &[&registry, &needle],
                )
                .await?;
            let items = if limit_ == 0 || offset >= total {
                Vec::new()
            } else {
                self.records(
                    "listing tokens",
                    "SELECT record FROM regauth_tokens WHERE registry = $1 AND strpos(name, $2) > 0
                     ORDER BY name LIMIT $3 OFFSET $4",
                    &[&registry, &needle, &limit(limit_), &limit(offset)],
                )
                .await?
            };
            Ok(Page { items, total })
        }).await
    }

    async fn list_by_owner(
        &self,
        registry: &str,
        owner: &str,
        offset: usize,
        limit_: usize,
    ) -> Result<Page, StoreError> {
        self.call("listing tokens by owner", async {
            let total = self
                .count_where(
                    "counting tokens by owner",
                    "SELECT count(*) FROM regauth_tokens WHERE registry = $1 AND owner = $2",
                    &[&registry, &owner],
                )
                .await?;
            let items = if limit_ == 0 || offset >= total {
                Vec::new()
            } else {
                self.records(
                    "listing tokens by owner",
                    "SELECT record FROM regauth_tokens WHERE registry = $1 AND owner = $2
                     ORDER BY name LIMIT $3 OFFSET $4",
                    &[&registry, &owner, &limit(limit_), &limit(offset)],
                )
                .await?
            };
            Ok(Page { items, total })
        })
        .await
    }

    async fn write(&self, write: TokenWrite<'_>, outbox: &[Delivery]) -> Result<bool, StoreError> {
        match write {
            TokenWrite::Create(token) => self.create_with(token, outbox).await.map(|()| true),
            TokenWrite::Update(token) => self.update_with(token, outbox).await.map(|()| true),
            TokenWrite::Delete { registry, id } => self.delete_with(registry, id, outbox).await,
        }
    }

    fn outbox(self: Arc<Self>) -> Arc<dyn Outbox> {
        self
    }

    async fn delete_expired_reporting(
        &self,
        now: DateTime<Utc>,
        report: &Report<'_>,
    ) -> Result<Vec<Token>, StoreError> {
        self.delete_expired_with(now, report).await
    }

    async fn add_refresh(
        &self,
        grant: &RefreshGrant,
        cap_per_token: usize,
    ) -> Result<(), StoreError> {
        let record = record::encode_grant(grant)
            .map_err(|e| StoreError::message(format!("grant record: {e}")))?;
        let trimmed = self.call("storing a refresh token", async {
            let mut client = self.client().await?;
            let err = |e| pg_error("storing a refresh token", e);
            let tx = client.transaction().await.map_err(err)?;
            // Locks the token: a disable or delete waits for this grant, or this waits for it.
            let lock = tx
                .prepare_cached(
                    "SELECT enabled FROM regauth_tokens WHERE id = $1 AND registry = $2 AND name = $3 FOR UPDATE",
                )
                .await
                .map_err(err)?;
            let enabled = tx
                .query_opt(&lock, &[&grant.token_id, &grant.registry, &grant.token_name])
                .await
                .map_err(err)?
                .map(|r| r.try_get::<_, bool>(0))
                .transpose()
                .map_err(err)?;
            if enabled != Some(true) {
                return Err(StoreError::NotFound);
            }
            let insert = tx
                .prepare_cached(
                    "INSERT INTO regauth_refresh_grants (hash, token_id, created, record, expires)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (hash) DO UPDATE SET token_id = $2, created = $3, record = $4, expires = $5",
                )
                .await
                .map_err(err)?;
            let expires = grant.federated.as_ref().map(|f| f.expires);
            tx.execute(
                &insert,
                &[&&grant.hash.0[..], &grant.token_id, &grant.created, &record, &expires],
            )
            .await
            .map_err(err)?;
            let trim = tx
                .prepare_cached(
                    "DELETE FROM regauth_refresh_grants WHERE hash IN (
                        SELECT hash FROM regauth_refresh_grants WHERE token_id = $1
                        ORDER BY created DESC, hash DESC OFFSET $2)",
                )
                .await
                .map_err(err)?;
            let trimmed = tx
                .execute(&trim, &[&grant.token_id, &limit(cap_per_token)])
                .await
                .map_err(err)?;
            if trimmed > 0 {
                // Other replicas may have cached the grants just deleted.
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&CHANNEL, &notice(&grant.registry, &grant.token_name)],
                )
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok(trimmed > 0)
        })
        .await?;
        if trimmed {
            self.shared.grants.clear();
        }
        Ok(())
    }

    async fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError> {
        // Cached only while notices arrive, as tokens are (`GrantCache`, `listener.rs`).
        let trusted = self.shared.trusted();
        if trusted {
            if let Some(cached) = self.shared.grants.get(&hash.0) {
                return Ok(Some((*cached).clone()));
            }
        }
        let epoch = self.shared.grants.epoch();
        let found = self
            .call("reading a refresh token", async {
                let client = self.client().await?;
                let err = |e| pg_error("reading a refresh token", e);
                let stmt = client
                    .prepare_cached("SELECT record FROM regauth_refresh_grants WHERE hash = $1")
                    .await
                    .map_err(err)?;
                let row = client
                    .query_opt(&stmt, &[&&hash.0[..]])
                    .await
                    .map_err(err)?;
                match row {
                    Some(r) => record::decode_grant(r.try_get(0).map_err(err)?)
                        .map(Some)
                        .map_err(|e| StoreError::message(format!("grant record: {e}"))),
                    None => Ok(None),
                }
            })
            .await?;
        if let Some(grant) = &found {
            if trusted && self.shared.trusted() {
                self.shared
                    .grants
                    .insert_if_current(Arc::new(grant.clone()), epoch);
            }
        }
        Ok(found)
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.call("counting tokens", async {
            self.count_where(
                "counting tokens",
                "SELECT count(*) FROM regauth_tokens",
                &[],
            )
            .await
        })
        .await
    }

    async fn refresh_count(&self) -> Result<usize, StoreError> {
        self.count_grants().await
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<usize, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        // One lock order for every replica: no deadlock between two batches.
        let mut sorted: Vec<&TokenUse> = uses.iter().collect();
        sorted.sort_by_key(|u| u.id);
        let written = self
            .call("writing last uses", async {
                let mut client = self.client().await?;
                let err = |e| pg_error("writing last uses", e);
                let tx = client.transaction().await.map_err(err)?;
                let write = tx
                    .prepare_cached("UPDATE regauth_tokens SET record = $2 WHERE id = $1")
                    .await
                    .map_err(err)?;
                let mut written = Vec::new();
                for u in sorted {
                    let Some((name, mut token)) =
                        lock_token(&tx, u.id, &u.registry, "writing last uses").await?
                    else {
                        continue;
                    };
                    if token.last_used.is_some_and(|old| old.at >= u.last_use.at) {
                        continue;
                    }
                    token.last_used = LastUse::latest(token.last_used, Some(u.last_use));
                    tx.execute(&write, &[&u.id, &encode_token(&token)?])
                        .await
                        .map_err(err)?;
                    written.push((name_key(&u.registry, &name), u.id, u.last_use));
                }
                tx.commit().await.map_err(err)?;
                Ok(written)
            })
            .await?;
        // The cached tokens show their uses and stay cached: dropping them sent the token
        // endpoint back to the database for every used token after each flush.
        for (key, id, last_use) in &written {
            self.shared.cache.show_last_use(key, *id, *last_use);
        }
        Ok(written.len())
    }

    async fn expiring(&self, until: DateTime<Utc>) -> Result<Vec<Token>, StoreError> {
        self.call("reading expiring tokens", async {
            self.records(
                "reading expiring tokens",
                "SELECT record FROM regauth_tokens WHERE expiry <= $1 ORDER BY expiry, id",
                &[&until],
            )
            .await
        })
        .await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.call("readiness check", async {
            let client = self.client().await?;
            client
                .simple_query("")
                .await
                .map(drop)
                .map_err(|e| pg_error("readiness check", e))
        })
        .await
    }
}

#[cfg(test)]
pub(crate) mod tests;
