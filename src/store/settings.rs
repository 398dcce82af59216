//! `[store]`: the one statement of the store's settings, read by `config` from the file and
//! the environment and handed whole to [`super::PgStore::open`] (docs/configuration.md).
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[store]`: where tokens live. Without `url`, in sled under `data_dir` (one process); with
/// a `postgres://` URL, in PostgreSQL (any number of replicas; docs/high-availability.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database`; `None` for the embedded sled store.
    pub url: Option<String>,
    /// How the connection to PostgreSQL is encrypted and checked.
    pub tls: Tls,
    /// PEM file of the CA certificates that `verify-full` trusts (default: the public web
    /// roots built into regauth).
    pub ca_file: Option<PathBuf>,
    /// Connections to PostgreSQL per replica (the listener connection not counted).
    pub pool_size: usize,
    /// Longest wait for a connection, from the pool or a new one, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Longest a store operation may take (PostgreSQL's `statement_timeout` and regauth's own
    /// limit), in milliseconds. Past it, the request gets 503.
    pub statement_timeout_ms: u64,
    /// Memory for the cache of decoded tokens (sled's or PostgreSQL's), per process; 0: no
    /// cache (every token request reads the store), and with PostgreSQL no cache of refresh
    /// grants either.
    pub token_cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            tls: Tls::default(),
            ca_file: None,
            pool_size: 16,
            connect_timeout_ms: 2_000,
            statement_timeout_ms: 5_000,
            token_cache_bytes: super::cache::DEFAULT_CACHE_BYTES,
        }
    }
}

impl StoreConfig {
    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// `statement_timeout_ms` as a duration.
    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.statement_timeout_ms)
    }
}

/// `[store] tls`: TLS to PostgreSQL, named like libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tls {
    /// Plain TCP (or a unix socket).
    Disable,
    /// TLS if the server offers it, else plain; the certificate is not checked (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (protects against eavesdropping,
    /// not against an active attacker).
    Require,
    /// TLS, the certificate chain checked against `ca_file` (or the built-in web roots) and the
    /// host name against the certificate.
    VerifyFull,
}
