//! Configuration: one struct tree, read in layers (docs/configuration.md): the built-in
//! defaults (`#[serde(default)]`), then the TOML file, then the `REGAUTH_*` variables, merged
//! by `figment`, then checked once by [`Config::validate`]. Every key of the file is also a
//! variable (`REGAUTH_SECTION__KEY`, see [`env`]); errors name the key and, for a value from
//! the file, its line with a caret under it, or the variable it came from ([`locate`]).
//!
//! A new section: a `#[serde(default, deny_unknown_fields)]` struct with a `Default`, a field
//! of [`Config`] with its `[section]` name, and its checks called from [`Config::validate`].
//! A list of tables (`[[webhooks]]`) is a `Vec` field; name its keys `webhooks[0].url` in
//! errors and they get their line and caret too. Document each key in docs/configuration.md.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer};

use crate::store::StoreConfig;

mod env;
mod locate;

/// Where `regauth serve` looks for a config file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/regauth.toml";
/// Tokens never live shorter than this (clients raise anything lower to 60 anyway).
pub const MIN_TTL_SECONDS: u64 = 60;

/// Longest lifetime of a certificate regauth generates (`[jwt] certificate_days`): ten years.
pub const MAX_CERTIFICATE_DAYS: u32 = 3650;
/// Shortest admin token accepted, wherever it comes from (file, environment, data dir).
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The admin token rule, the one place it is checked: `Err` says what is wrong.
pub fn check_admin_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(format!("must be at least {MIN_ADMIN_TOKEN_LEN} characters"));
    }
    Ok(())
}

/// The configuration: the file's tree, every key defaulted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "socket_address")]
    pub listen: SocketAddr,
    /// Base URL users and registries reach regauth at, without a trailing `/`; empty in the
    /// file means `http://<listen>` (filled in by [`Config::validate`]).
    pub public_url: String,
    pub data_dir: PathBuf,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[jwt]`.
    pub jwt: JwtConfig,
    /// `[[registries]]`; none declared means the one default registry.
    pub registries: Vec<RegistryConfig>,
    /// `[tokens]`.
    pub tokens: TokensConfig,
    /// `[limits]`: throttling of failed authentication, connection limits and timeouts.
    pub limits: LimitsConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[store]`: the embedded sled store (default) or PostgreSQL.
    pub store: StoreConfig,
    /// `[activity]`: the registries' events regauth keeps.
    pub activity: ActivityConfig,
    /// `[federation]`: the OIDC issuers of federated tokens (keyless CI).
    pub federation: crate::domain::federation::FederationConfig,
    /// `[[webhooks]]` as written; checked into [`Config::webhooks`] by [`Config::validate`].
    #[serde(rename = "webhooks")]
    pub webhook_entries: Vec<crate::domain::webhook::WebhookEntry>,
    /// `[webhook_delivery]`.
    pub webhook_delivery: crate::domain::webhook::DeliverySettings,
    /// The checked webhooks and their delivery settings (docs/webhooks.md).
    #[serde(skip)]
    pub webhooks: crate::domain::webhook::WebhookConfig,
    /// The file this was read from, if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5001)),
            public_url: String::new(),
            data_dir: PathBuf::from("data"),
            admin: AdminConfig::default(),
            jwt: JwtConfig::default(),
            registries: vec![RegistryConfig::new(
                "default",
                "registry.local",
                "localhost:5000",
            )],
            tokens: TokensConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            store: StoreConfig::default(),
            activity: ActivityConfig::default(),
            federation: crate::domain::federation::FederationConfig::default(),
            webhook_entries: Vec::new(),
            webhook_delivery: crate::domain::webhook::DeliverySettings::default(),
            webhooks: crate::domain::webhook::WebhookConfig::default(),
            source: None,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Admin bearer token; `None` (or empty) means "use or create `<data_dir>/admin-token`".
    pub token: Option<String>,
}

/// `[activity]`: how long registry events are kept (docs/activity.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActivityConfig {
    /// `retention`: events older than this are pruned (default 30 days), at least an hour.
    #[serde(deserialize_with = "retention")]
    pub retention: chrono::TimeDelta,
    /// `max_events_per_registry`: beyond this many, a registry's oldest events are pruned.
    pub max_events_per_registry: usize,
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            retention: chrono::TimeDelta::days(30),
            max_events_per_registry: 1_000_000,
        }
    }
}

/// `[tokens]`: token lifecycle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// What happens to a token when its expiry is reached (`on_expiry`).
    pub on_expiry: OnExpiry,
}

/// `[limits]`: how much a client may fail and hold (docs/configuration.md, "Limits";
/// docs/security.md says why the defaults are what they are).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Failed token-endpoint authentications from one address within `failure_window_seconds`
    /// after which that address is refused (429) for `lockout_seconds`. 0: no limit.
    pub auth_failures: u32,
    /// Failed authentications for one token name (from all addresses) within the window after
    /// which the addresses that failed for that name are refused for it. 0: no limit.
    pub name_failures: u32,
    /// Failed admin API authentications from one address within the window. 0: no limit.
    pub admin_failures: u32,
    /// Failed authentications from one network (IPv4 /24, IPv6 /56 and /48) within the window
    /// after which the network is refused for `lockout_seconds`. 0: no limit.
    pub network_failures: u32,
    /// Failed authentications from all clients within the window after which every network
    /// that fails is refused at once (the server is under attack). 0: no limit.
    pub global_failures: u32,
    pub failure_window_seconds: u64,
    pub lockout_seconds: u64,
    /// Most (address, name) counters kept; the least used are forgotten beyond this.
    pub throttle_entries: usize,
    /// Denials logged one by one per address and interval; the rest are summed up in one line.
    pub denial_log_lines: u32,
    pub denial_log_interval_seconds: u64,
    /// Peers whose `X-Forwarded-For` names the client (a reverse proxy on the same host): a
    /// list, or (from a variable) addresses separated by commas.
    #[serde(deserialize_with = "ip_addresses")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Connections served at once; more wait in the listen queue. 0 (the default): derived at
    /// start from the raised open-files limit, `min(limit - reserve, 65 536)`.
    pub max_connections: usize,
    /// Connections one address may hold; more are refused. 0: no limit.
    pub max_connections_per_address: usize,
    /// A request's head must arrive within this many seconds of the connection being opened
    /// or of the previous response (so this is also the keep-alive idle timeout).
    pub header_timeout_seconds: u64,
    /// A request's body must arrive within this many seconds.
    pub body_timeout_seconds: u64,
    /// How long SIGTERM waits for requests in flight before the server exits.
    pub shutdown_timeout_seconds: u64,
    /// Anonymous token requests (public repositories) one address may make per minute;
    /// more are refused (429). 0: no limit.
    pub anonymous_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            auth_failures: 30,
            name_failures: 100,
            admin_failures: 10,
            network_failures: 100,
            global_failures: 1000,
            failure_window_seconds: 180,
            lockout_seconds: 900,
            throttle_entries: 65_536,
            denial_log_lines: 10,
            denial_log_interval_seconds: 60,
            trusted_proxies: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            max_connections: 0,
            max_connections_per_address: 128,
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            shutdown_timeout_seconds: 10,
            anonymous_per_minute: 300,
        }
    }
}

/// Longest duration any `[limits] *_seconds` key may have: a year. Longer ones are surely
/// mistakes, and bounding them keeps every deadline computable.
pub const MAX_LIMIT_SECONDS: u64 = 365 * 24 * 3600;

impl LimitsConfig {
    /// Each bounded key with its value, least and greatest allowed value.
    fn bounds(&self) -> [(&'static str, u64, u64, u64); 7] {
        let year = MAX_LIMIT_SECONDS;
        [
            (
                "failure_window_seconds",
                self.failure_window_seconds,
                1,
                year,
            ),
            ("lockout_seconds", self.lockout_seconds, 1, year),
            (
                "throttle_entries",
                self.throttle_entries as u64,
                16,
                u64::MAX,
            ),
            (
                "denial_log_interval_seconds",
                self.denial_log_interval_seconds,
                1,
                year,
            ),
            (
                "header_timeout_seconds",
                self.header_timeout_seconds,
                1,
                year,
            ),
            ("body_timeout_seconds", self.body_timeout_seconds, 1, year),
            (
                "shutdown_timeout_seconds",
                self.shutdown_timeout_seconds,
                0,
                year,
            ),
        ]
    }
}

/// `[log]`: how `serve` writes its log (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `format`: one line of text per event, or one JSON object per line.
    pub format: LogFormat,
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `time LEVEL target: message name=value ...`, every value from a request quoted and
    /// escaped when it holds anything but printable ASCII.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message` and the fields).
    Json,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `listen`: the address of the separate listener that serves `GET /metrics`; `None`
    /// (the default, or an empty value) serves no metrics.
    #[serde(deserialize_with = "optional_socket_address")]
    pub listen: Option<SocketAddr>,
}

/// `[tokens] on_expiry`: what an expired token becomes. Either way it authenticates nothing
/// from its expiry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExpiry {
    /// Deleted (the default, as in the IONOS API this models): expired = deleted.
    #[default]
    Delete,
    /// Kept, listed with status `expired`, until deleted or given a later expiry.
    Disable,
}

/// `[jwt]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    pub issuer: String,
    pub ttl_seconds: u64,
    pub key: PathBuf,
    pub certificate: PathBuf,
    /// Lifetime in days of the certificate regauth generates for a new key
    /// (`regauth key add`).
    pub certificate_days: u32,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            issuer: "regauth".into(),
            ttl_seconds: 300,
            key: PathBuf::from("certs/signing.key"),
            certificate: PathBuf::from("certs/signing.crt"),
            certificate_days: crate::jwt::keystore::DEFAULT_CERTIFICATE_DAYS,
        }
    }
}

/// One `[[registries]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub id: String,
    pub service: String,
    pub hostname: String,
    /// Repository patterns anyone may pull without credentials (`public`); checked as
    /// scope patterns at start.
    #[serde(default)]
    pub public: Vec<String>,
    /// `max_token_lifetime` (`"90d"`): every token of the registry must expire, at most this
    /// far ahead of a create, update or enable. `None`: no limit.
    #[serde(default, deserialize_with = "lifetime")]
    pub max_token_lifetime: Option<chrono::TimeDelta>,
    /// How regauth itself reaches the registry (`http://host:5000`), for `regauth key check`
    /// and guarded activation; unset: the registry is not probed.
    #[serde(default)]
    pub url: Option<String>,
}

impl RegistryConfig {
    /// A registry with no public repositories, no lifetime rule and no probe `url`: what a `[[registries]]`
    /// entry with only these three keys means.
    pub fn new(id: &str, service: &str, hostname: &str) -> Self {
        RegistryConfig {
            id: id.into(),
            service: service.into(),
            hostname: hostname.into(),
            public: Vec::new(),
            max_token_lifetime: None,
            url: None,
        }
    }
}

// Values read from text, with messages that say what was expected (serde's own say
// "invalid socket address syntax"). A variable's value is always text; the file's may be too.

/// `listen`: an IP address and a port.
fn socket_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!("{text:?} is not an address like 127.0.0.1:5001"))
    })
}

/// `[metrics] listen`: as `listen`; empty means unset.
fn optional_socket_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!("{text:?} is not an address like 127.0.0.1:9464"))
    })
}

/// `[limits] trusted_proxies`: a list of IP addresses, or one text of them separated by
/// commas (the variable's form; empty: none).
fn ip_addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a list of IP addresses, or a text of them separated by commas"
    )]
    enum Addresses {
        List(Vec<String>),
        Text(String),
    }
    let items = match Addresses::deserialize(d)? {
        Addresses::List(list) => list,
        Addresses::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
    };
    items
        .iter()
        .map(|t| {
            t.parse().map_err(|_| {
                serde::de::Error::custom(format!(
                    "{t:?} is not an IP address like 127.0.0.1 or ::1"
                ))
            })
        })
        .collect()
}

/// A duration like `90d` (`api`'s syntax), at least an hour; `why` ends the message then.
fn hours_or_more<E: serde::de::Error>(text: &str, why: &str) -> Result<chrono::TimeDelta, E> {
    let d = crate::api::parse_duration(text).map_err(E::custom)?;
    if d < chrono::TimeDelta::hours(1) {
        return Err(E::custom(format!("{text:?} is shorter than an hour{why}")));
    }
    Ok(d)
}

/// `[activity] retention`.
fn retention<'de, D: Deserializer<'de>>(d: D) -> Result<chrono::TimeDelta, D::Error> {
    hours_or_more(&String::deserialize(d)?, "")
}

/// `max_token_lifetime`: at least an hour, the shortest expiry a token may be given.
fn lifetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<chrono::TimeDelta>, D::Error> {
    let text = String::deserialize(d)?;
    hours_or_more(&text, ", the shortest expiry a token may have").map(Some)
}

/// A configuration problem; the message names the file, key or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not TOML at all: the parser's message, with the line and a caret.
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    /// A key or value refused: `key` is the key (`limits.lockout_seconds`,
    /// `registries[0].id`) or the variable that set it; `at` is empty or, for a value from
    /// the file, the file's line with a caret under the value.
    #[error("{key}: {message}{at}")]
    Invalid {
        key: String,
        message: String,
        at: String,
    },
}

impl ConfigError {
    /// A refused value at `key` (dotted, with `[i]` for list items), not yet located.
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
            at: String::new(),
        }
    }
}

impl Config {
    /// Loads defaults, then `path` (or [`DEFAULT_CONFIG_PATH`] when it exists), then the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(
            path,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// As [`Config::load`], with the environment given as `vars` (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => Some(p),
            None => Some(Path::new(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let name = path.map_or("<none>".to_string(), |p| p.display().to_string());
        let mut config = Self::layered(&text, &name, vars)?;
        config.source = path.map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses TOML text (no environment applied). Errors name the unknown or bad key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::layered(text, "<inline>", Vec::new())
    }

    /// The defaults, then the file's `text` (named `name` in errors), then `vars`; checked.
    fn layered(
        text: &str,
        name: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = locate::File::parse(text, name)?;
        let env = env::Environment::new(vars);
        let figment = Figment::new().merge(Toml::string(text)).merge(&env);
        // Lossy: a variable's value is text, and `"7"` must fill a number.
        let config: Config = figment
            .extract_lossy()
            .map_err(|e| locate::extraction(e, &env, &file))?;
        config
            .validate()
            .map_err(|e| locate::validation(e, &env, &file))
    }

    /// The one check of the whole tree, after every layer is merged; fills in what is
    /// derived (`public_url` from `listen`, the default registry). Errors name the key.
    pub fn validate(mut self) -> Result<Config, ConfigError> {
        if self.public_url.is_empty() {
            self.public_url = format!("http://{}", self.listen);
        }
        self.public_url = self.public_url.trim_end_matches('/').to_string();
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "public_url",
                format!("{:?} must start with http:// or https://", self.public_url),
            ));
        }
        self.admin.token = self.admin.token.filter(|t| !t.is_empty());
        if let Some(t) = &self.admin.token {
            check_admin_token(t).map_err(|m| ConfigError::invalid("admin.token", m))?;
        }
        self.jwt.validate()?;
        if self.registries.is_empty() {
            self.registries = Config::default().registries;
        }
        validate_registries(&self.registries)?;
        for (key, value, min, max) in self.limits.bounds() {
            if value < min {
                return Err(ConfigError::invalid(
                    format!("limits.{key}"),
                    format!("must be at least {min}, got {value}"),
                ));
            }
            if value > max {
                return Err(ConfigError::invalid(
                    format!("limits.{key}"),
                    format!("must be at most {max} (a year), got {value}"),
                ));
            }
        }
        self.store = validate_store(self.store)?;
        if self.activity.max_events_per_registry == 0 {
            return Err(ConfigError::invalid(
                "activity.max_events_per_registry",
                "must be at least 1",
            ));
        }
        self.federation
            .validate()
            .map_err(|e| ConfigError::invalid(e.field, e.rule))?;
        self.webhooks = crate::domain::webhook::WebhookConfig::validate(
            self.webhook_entries.clone(),
            self.webhook_delivery,
        )
        .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        Ok(self)
    }

    /// Where a generated admin token is kept.
    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join("admin-token")
    }

    /// The registry with `id`.
    pub fn registry(&self, id: &str) -> Option<&RegistryConfig> {
        self.registries.iter().find(|r| r.id == id)
    }

    /// The token endpoint URL a registry's `realm` should point at.
    pub fn realm(&self) -> String {
        format!("{}/auth", self.public_url)
    }

    /// This configuration once the listener is bound to `bound`: `listen` becomes the bound
    /// address and, when `public_url` is the default `http://<listen>` of a port-0 listen
    /// address (never reachable), it becomes `http://<bound>`, so the realm given to
    /// registries is right. An explicit `public_url` is kept.
    pub fn with_bound_address(mut self, bound: SocketAddr) -> Config {
        if self.listen.port() == 0 && self.public_url == format!("http://{}", self.listen) {
            self.public_url = format!("http://{bound}");
        }
        self.listen = bound;
        self
    }
}

impl JwtConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl_seconds < MIN_TTL_SECONDS {
            return Err(ConfigError::invalid(
                "jwt.ttl_seconds",
                format!(
                    "must be at least {MIN_TTL_SECONDS}, got {}",
                    self.ttl_seconds
                ),
            ));
        }
        if !(1..=MAX_CERTIFICATE_DAYS).contains(&self.certificate_days) {
            return Err(ConfigError::invalid(
                "jwt.certificate_days",
                format!(
                    "must be between 1 and {MAX_CERTIFICATE_DAYS}, got {}",
                    self.certificate_days
                ),
            ));
        }
        if self.issuer.is_empty() {
            return Err(ConfigError::invalid("jwt.issuer", "must not be empty"));
        }
        Ok(())
    }
}

/// `[store]`: an empty `url` or `ca_file` counts as unset.
fn validate_store(mut store: StoreConfig) -> Result<StoreConfig, ConfigError> {
    store.url = store.url.filter(|u| !u.is_empty());
    store.ca_file = store.ca_file.filter(|f| !f.as_os_str().is_empty());
    if let Some(u) = &store.url {
        if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            // Never echo the URL: it may hold a password.
            return Err(ConfigError::invalid(
                "store.url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
    }
    for (key, value) in [
        ("pool_size", store.pool_size as u64),
        ("connect_timeout_ms", store.connect_timeout_ms),
        ("statement_timeout_ms", store.statement_timeout_ms),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(
                format!("store.{key}"),
                "must be at least 1",
            ));
        }
    }
    Ok(store)
}

fn validate_registries(registries: &[RegistryConfig]) -> Result<(), ConfigError> {
    for (i, r) in registries.iter().enumerate() {
        let key = |k: &str| format!("registries[{i}].{k}");
        let slug_ok = !r.id.is_empty()
            && r.id.len() <= 63
            && r.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug_ok {
            return Err(ConfigError::invalid(
                key("id"),
                format!("{:?} must be 1-63 of a-z, 0-9 and '-'", r.id),
            ));
        }
        if r.service.is_empty() {
            return Err(ConfigError::invalid(key("service"), "must not be empty"));
        }
        if r.hostname.is_empty() {
            return Err(ConfigError::invalid(key("hostname"), "must not be empty"));
        }
        if let Some(url) = &r.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    key("url"),
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
        }
        for (j, pattern) in r.public.iter().enumerate() {
            pattern.parse::<crate::domain::RepoPattern>().map_err(|e| {
                ConfigError::invalid(
                    format!("registries[{i}].public[{j}]"),
                    format!("{pattern:?} is not a repository pattern: {}", e.rule),
                )
            })?;
        }
        if registries[..i].iter().any(|o| o.id == r.id) {
            return Err(ConfigError::invalid(
                key("id"),
                format!("{:?} is declared twice", r.id),
            ));
        }
        if registries[..i].iter().any(|o| o.service == r.service) {
            return Err(ConfigError::invalid(
                key("service"),
                format!("{:?} is used by two registries", r.service),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Tls;

    /// `text` as the file, then `vars` as the environment.
    fn layered(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::layered(text, "x", vars)
    }

    #[test]
    fn activity_retention_is_read_and_checked() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.activity, ActivityConfig::default());
        assert_eq!(c.activity.retention, chrono::TimeDelta::days(30));
        let c = Config::from_toml("[activity]\nretention = \"7d\"\nmax_events_per_registry = 10")
            .unwrap();
        assert_eq!(c.activity.retention, chrono::TimeDelta::days(7));
        assert_eq!(c.activity.max_events_per_registry, 10);
        for (toml, want) in [
            (
                "[activity]\nretention = \"30m\"",
                "activity.retention: \"30m\" is shorter than an hour",
            ),
            (
                "[activity]\nretention = \"soon\"",
                "activity.retention: \"soon\" is not a duration",
            ),
            (
                "[activity]\nmax_events_per_registry = 0",
                "activity.max_events_per_registry: must be at least 1",
            ),
        ] {
            let e = Config::from_toml(toml).unwrap_err().to_string();
            assert!(e.contains(want), "{toml}: {e}");
        }
    }

    #[test]
    fn certificate_days_and_registry_urls_are_read_and_checked() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.jwt.certificate_days, 365);
        assert_eq!(c.registries[0].url, None);
        let c = Config::from_toml(
            "[jwt]\ncertificate_days = 30\n[[registries]]\nid = \"a\"\nservice = \"s\"\n\
             hostname = \"h\"\nurl = \"http://127.0.0.1:5000\"\n",
        )
        .unwrap();
        assert_eq!(c.jwt.certificate_days, 30);
        assert_eq!(
            c.registries[0].url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        for (toml, key) in [
            ("[jwt]\ncertificate_days = 0", "jwt.certificate_days"),
            ("[jwt]\ncertificate_days = 3651", "jwt.certificate_days"),
            (
                "[[registries]]\nid = \"a\"\nservice = \"s\"\nhostname = \"h\"\nurl = \"h:5000\"",
                "registries[0].url",
            ),
        ] {
            let err = Config::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn port_0_gives_the_bound_address_as_default_public_url() {
        let bound: SocketAddr = "127.0.0.1:43210".parse().unwrap();
        let c = Config::from_toml("listen = \"127.0.0.1:0\"").unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:0");
        let c = c.with_bound_address(bound);
        assert_eq!(c.listen, bound);
        assert_eq!(c.public_url, "http://127.0.0.1:43210");
        assert_eq!(c.realm(), "http://127.0.0.1:43210/auth");

        // an explicit public_url is what clients reach: kept
        let c =
            Config::from_toml("listen = \"127.0.0.1:0\"\npublic_url = \"https://auth.example\"")
                .unwrap()
                .with_bound_address(bound);
        assert_eq!(c.public_url, "https://auth.example");
        // a fixed port: nothing to learn from the bound address
        let c = Config::from_toml("listen = \"127.0.0.1:5001\"")
            .unwrap()
            .with_bound_address("127.0.0.1:5001".parse().unwrap());
        assert_eq!(c.public_url, "http://127.0.0.1:5001");
    }

    #[test]
    fn defaults_without_file() {
        let c = layered("", &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:5001");
        assert_eq!(c.public_url, "http://127.0.0.1:5001");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.admin.token, None);
        assert_eq!(c.jwt.issuer, "regauth");
        assert_eq!(c.jwt.ttl_seconds, 300);
        assert_eq!(c.jwt.key, PathBuf::from("certs/signing.key"));
        assert_eq!(c.jwt.certificate, PathBuf::from("certs/signing.crt"));
        assert_eq!(c.registries.len(), 1);
        assert_eq!(c.registries[0].id, "default");
        assert_eq!(c.registries[0].service, "registry.local");
        assert_eq!(c.registries[0].hostname, "localhost:5000");
        assert_eq!(c.realm(), "http://127.0.0.1:5001/auth");
    }

    #[test]
    fn max_token_lifetime_per_registry() {
        let reg = |extra: &str| {
            format!("[[registries]]\nid=\"a\"\nservice=\"s\"\nhostname=\"h\"\n{extra}")
        };
        let c = Config::from_toml(&reg("max_token_lifetime = \"90d\"")).unwrap();
        assert_eq!(
            c.registries[0].max_token_lifetime,
            Some(chrono::TimeDelta::days(90))
        );
        let c = Config::from_toml(&reg("")).unwrap();
        assert_eq!(c.registries[0].max_token_lifetime, None);
        for (bad, says) in [
            ("max_token_lifetime = \"90x\"", "unknown unit"),
            ("max_token_lifetime = \"30m\"", "shorter than an hour"),
            ("max_token_lifetime = 90", "max_token_lifetime"),
        ] {
            let e = Config::from_toml(&reg(bad)).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn file_then_env() {
        let text = r#"
            listen = "0.0.0.0:6000"
            public_url = "https://auth.example.com/"
            data_dir = "/var/lib/regauth"
            [admin]
            token = "file-token-0123456789"
            [jwt]
            issuer = "corp"
            ttl_seconds = 900
            [[registries]]
            id = "prod"
            service = "registry.prod"
            hostname = "registry.example.com"
        "#;
        let c = layered(
            text,
            &[
                ("REGAUTH_LISTEN", "127.0.0.1:7000"),
                ("REGAUTH_ADMIN_TOKEN", "env-token-0123456789"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.public_url, "https://auth.example.com");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/regauth"));
        assert_eq!(c.admin.token.as_deref(), Some("env-token-0123456789"));
        assert_eq!(c.jwt.issuer, "corp");
        assert_eq!(c.jwt.ttl_seconds, 900);
        assert_eq!(c.registry("prod").unwrap().service, "registry.prod");
        assert!(c.registry("default").is_none());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("listen = \"127.0.0.1:1\"\nlisten_port = 5\n").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = Config::from_toml("[jwt]\nalgorithm = \"ES256\"\n").unwrap_err();
        assert!(err.to_string().contains("algorithm"), "{err}");
        let err =
            Config::from_toml("[[registries]]\nid=\"a\"\nservice=\"s\"\nhostname=\"h\"\nport=1\n")
                .unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        for (text, key) in [
            ("listen = \"nope\"", "listen"),
            ("public_url = \"ftp://x\"", "public_url"),
            ("[jwt]\nttl_seconds = 30", "jwt.ttl_seconds"),
            ("[admin]\ntoken = \"short\"", "admin.token"),
            ("[[registries]]\nid = \"Bad_Id\"\nservice = \"s\"\nhostname = \"h\"", "registries[0].id"),
            (
                "[[registries]]\nid=\"a\"\nservice=\"s\"\nhostname=\"h\"\n[[registries]]\nid=\"b\"\nservice=\"s\"\nhostname=\"h\"",
                "registries[1].service",
            ),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.to_string().starts_with(key), "{text:?} gave {err}");
        }
    }

    /// `public` holds scope patterns, checked at start; the error names the key and the rule.
    #[test]
    fn public_repositories_are_scope_patterns() {
        let text = "[[registries]]\nid=\"a\"\nservice=\"s\"\nhostname=\"h\"\npublic=[\"library/*\", \"docs/*\"]\n";
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.registries[0].public, ["library/*", "docs/*"]);
        assert!(Config::from_toml("").unwrap().registries[0]
            .public
            .is_empty());
        let bad = "[[registries]]\nid=\"a\"\nservice=\"s\"\nhostname=\"h\"\npublic=[\"library/*\", \"Team/*\"]\n";
        let err = Config::from_toml(bad).unwrap_err().to_string();
        assert!(
            err.starts_with("registries[0].public[1]: \"Team/*\" is not a repository pattern"),
            "{err}"
        );
        let c = Config::from_toml("[limits]\nanonymous_per_minute = 7").unwrap();
        assert_eq!(c.limits.anonymous_per_minute, 7);
    }

    /// `[log] format` and `[metrics] listen`, each overridden by its variable; bad values are
    /// named by where they came from.
    #[test]
    fn log_format_and_metrics_listen_from_file_then_env() {
        let c = Config::from_toml("").unwrap();
        assert_eq!((c.log.format, c.metrics.listen), (LogFormat::Text, None));
        let text = "[log]\nformat = \"json\"\n[metrics]\nlisten = \"127.0.0.1:9464\"\n";
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
        let c = layered(
            text,
            &[
                ("REGAUTH_LOG_FORMAT", "text"),
                ("REGAUTH_METRICS_LISTEN", "0.0.0.0:1"),
            ],
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.metrics.listen, Some("0.0.0.0:1".parse().unwrap()));
        for (env, key) in [
            (("REGAUTH_LOG_FORMAT", "yaml"), "REGAUTH_LOG_FORMAT"),
            (("REGAUTH_METRICS_LISTEN", "9464"), "REGAUTH_METRICS_LISTEN"),
        ] {
            let err = layered("", &[env]).unwrap_err();
            assert!(err.to_string().starts_with(key), "{err}");
        }
        let err = Config::from_toml("[metrics]\nlisten = \"nope\"").unwrap_err();
        assert!(err.to_string().starts_with("metrics.listen"), "{err}");
        let err = Config::from_toml("[log]\nformat = \"xml\"").unwrap_err();
        assert!(err.to_string().contains("format"), "{err}");
    }

    /// Issue 10: a TOML error keeps its lines, so the caret still points at the mistake.
    #[test]
    fn toml_errors_keep_their_caret() {
        let err = Config::from_toml("listen = \"127.0.0.1:5001\"\nlisten_port = 1\n")
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines.len() >= 4, "{err}");
        let quoted = lines
            .iter()
            .position(|l| l.contains("| listen_port = 1"))
            .unwrap_or_else(|| panic!("the line is quoted: {err}"));
        let caret = lines[quoted + 1];
        let column = |l: &str, what: &str| l.find(what).unwrap();
        assert_eq!(
            column(caret, "^"),
            column(lines[quoted], "listen_port"),
            "the caret is under the key: {err}"
        );
        assert!(err.contains("line 2"), "{err}");
    }

    /// Issue 10: a bad admin token from the environment is reported under the variable's
    /// name, one from the file under its key.
    #[test]
    fn a_bad_admin_token_is_named_by_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regauth.toml");
        std::fs::write(&path, "[admin]\ntoken = \"0123456789abcdef-long-enough\"\n").unwrap();
        let env = [("REGAUTH_ADMIN_TOKEN".to_string(), "short".to_string())];
        let err = Config::load_with_env(Some(&path), env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("REGAUTH_ADMIN_TOKEN: must be at least 16 characters"),
            "{err}"
        );
        std::fs::write(&path, "[admin]\ntoken = \"short\"\n").unwrap();
        let err = Config::load_with_env(Some(&path), Vec::new()).unwrap_err();
        assert!(err.to_string().starts_with("admin.token: "), "{err}");
    }

    #[test]
    fn on_expiry_from_file_then_env() {
        assert_eq!(
            Config::from_toml("").unwrap().tokens.on_expiry,
            OnExpiry::Delete
        );
        let file = "[tokens]\non_expiry = \"disable\"";
        assert_eq!(
            Config::from_toml(file).unwrap().tokens.on_expiry,
            OnExpiry::Disable
        );
        let c = layered(file, &[("REGAUTH_TOKENS_ON_EXPIRY", "delete")]).unwrap();
        assert_eq!(c.tokens.on_expiry, OnExpiry::Delete);
        let err = Config::from_toml("[tokens]\non_expiry = \"keep\"").unwrap_err();
        assert!(err.to_string().contains("keep"), "{err}");
        let err = layered("", &[("REGAUTH_TOKENS_ON_EXPIRY", "nope")]).unwrap_err();
        assert!(
            err.to_string().starts_with("REGAUTH_TOKENS_ON_EXPIRY"),
            "{err}"
        );
    }

    #[test]
    fn limits_from_file_then_env_with_named_errors() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.limits, LimitsConfig::default());
        let file = "[limits]\nauth_failures = 5\nheader_timeout_seconds = 2\ntrusted_proxies = [\"10.0.0.1\"]";
        let c = Config::from_toml(file).unwrap();
        assert_eq!(c.limits.auth_failures, 5);
        assert_eq!(c.limits.header_timeout_seconds, 2);
        assert_eq!(
            c.limits.trusted_proxies,
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        let c = layered(
            file,
            &[
                ("REGAUTH_LIMITS_AUTH_FAILURES", "7"),
                ("REGAUTH_LIMITS_TRUSTED_PROXIES", "127.0.0.1, ::1"),
                ("REGAUTH_LIMITS_MAX_CONNECTIONS_PER_ADDRESS", "0"),
            ],
        )
        .unwrap();
        assert_eq!(c.limits.auth_failures, 7);
        assert_eq!(c.limits.header_timeout_seconds, 2);
        assert_eq!(c.limits.max_connections_per_address, 0);
        assert_eq!(c.limits.trusted_proxies.len(), 2);
        for (text, key) in [
            (
                "[limits]\nheader_timeout_seconds = 0",
                "limits.header_timeout_seconds",
            ),
            (
                "[limits]\ntrusted_proxies = [\"proxy\"]",
                "limits.trusted_proxies",
            ),
            (
                "[limits]\nlockout_seconds = 99999999999",
                "limits.lockout_seconds",
            ),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.to_string().starts_with(key), "{text:?} gave {err}");
        }
        let err = layered("", &[("REGAUTH_LIMITS_LOCKOUT_SECONDS", "soon")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("REGAUTH_LIMITS_LOCKOUT_SECONDS: \"soon\""),
            "{err}"
        );
        let err = Config::from_toml("[limits]\nmax_conections = 5").unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
    }

    #[test]
    fn store_from_file_then_env() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.store, StoreConfig::default());
        assert_eq!(c.store.url, None, "sled is the default");
        let file = "[store]\nurl = \"postgres://regauth:pw@db:5432/regauth\"\ntls = \"verify-full\"\nca_file = \"/etc/ssl/db-ca.pem\"\npool_size = 4\nconnect_timeout_ms = 500\nstatement_timeout_ms = 900\ntoken_cache_bytes = 0";
        let c = Config::from_toml(file).unwrap().store;
        assert_eq!(
            c.url.as_deref(),
            Some("postgres://regauth:pw@db:5432/regauth")
        );
        assert_eq!(c.tls, Tls::VerifyFull);
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/etc/ssl/db-ca.pem")));
        assert_eq!(
            (
                c.pool_size,
                c.connect_timeout_ms,
                c.statement_timeout_ms,
                c.token_cache_bytes
            ),
            (4, 500, 900, 0)
        );
        let c = layered(
            file,
            &[
                ("REGAUTH_STORE_URL", "postgresql://other/db"),
                ("REGAUTH_STORE_TLS", "require"),
                ("REGAUTH_STORE_CA_FILE", "/ca.pem"),
            ],
        )
        .unwrap()
        .store;
        assert_eq!(c.url.as_deref(), Some("postgresql://other/db"));
        assert_eq!(c.tls, Tls::Require);
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        for (mode, tls) in [
            ("disable", Tls::Disable),
            ("prefer", Tls::Prefer),
            ("require", Tls::Require),
            ("verify-full", Tls::VerifyFull),
        ] {
            let c = Config::from_toml(&format!("[store]\ntls = \"{mode}\"")).unwrap();
            assert_eq!(c.store.tls, tls);
        }

        let err = Config::from_toml("[store]\ntls = \"verify-ca\"").unwrap_err();
        assert!(err.to_string().contains("verify-ca"), "{err}");
        let err = layered("", &[("REGAUTH_STORE_TLS", "on")]).unwrap_err();
        assert!(err.to_string().starts_with("REGAUTH_STORE_TLS"), "{err}");
        let err = Config::from_toml("[store]\nurl = \"mysql://u:secret@h/db\"").unwrap_err();
        assert!(err.to_string().starts_with("store.url: "), "{err}");
        assert!(
            !err.to_string().contains("secret"),
            "no password in errors: {err}"
        );
        let err = layered("", &[("REGAUTH_STORE_URL", "sqlite:x")]).unwrap_err();
        assert!(err.to_string().starts_with("REGAUTH_STORE_URL: "), "{err}");
        let err = Config::from_toml("[store]\npool_size = 0").unwrap_err();
        assert!(err.to_string().starts_with("store.pool_size: "), "{err}");
        let err = Config::from_toml("[store]\nhost = \"db\"").unwrap_err();
        assert!(err.to_string().contains("host"), "{err}");
    }

    #[test]
    fn example_config_file_is_valid_and_equals_the_defaults() {
        let example = Config::from_toml(include_str!("../../config/regauth.toml")).unwrap();
        assert_eq!(example, Config::from_toml("").unwrap());
    }

    #[test]
    fn explicit_missing_file_is_an_error_naming_it() {
        let err = Config::load_with_env(Some(Path::new("/nonexistent/regauth.toml")), Vec::new())
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/regauth.toml"),
            "{err}"
        );
    }
    /// Every key of the example file is also a variable, `REGAUTH_SECTION__KEY`: set to the
    /// example's value it changes nothing, set to nonsense it is refused under its name or
    /// changes the key (a text key takes any text).
    #[test]
    fn every_key_is_a_variable() {
        let example = include_str!("../../config/regauth.toml");
        let table: toml::Table = toml::from_str(example).unwrap();
        let defaults = Config::from_toml("").unwrap();
        // The keys without a default, commented out in the example.
        let mut keys: Vec<(Vec<String>, toml::Value)> = [
            ("admin", "token", "a-long-enough-admin-token"),
            ("metrics", "listen", ""),
            ("store", "url", ""),
            ("store", "ca_file", ""),
        ]
        .iter()
        .map(|(s, k, v)| (vec![s.to_string(), k.to_string()], toml::Value::from(*v)))
        .collect();
        for (k, v) in &table {
            match v {
                toml::Value::Table(t) => keys.extend(
                    t.iter()
                        // [[federation.issuers]]: lists of tables have no variable
                        .filter(|(_, v)| {
                            !matches!(v, toml::Value::Array(a) if a.iter().any(toml::Value::is_table))
                        })
                        .map(|(s, v)| (vec![k.clone(), s.clone()], v.clone())),
                ),
                toml::Value::Array(_) => {} // [[registries]]: lists of tables have no variable
                v => keys.push((vec![k.clone()], v.clone())),
            }
        }
        assert!(keys.len() > 35, "{keys:?}");
        for (path, value) in keys {
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            let var = env::variable_of(&parts);
            let text = match &value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Array(a) => a
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                v => v.to_string(),
            };
            let c = layered("", &[(&var, &text)]).unwrap_or_else(|e| panic!("{var}={text}: {e}"));
            if path != ["admin", "token"] {
                assert_eq!(c, defaults, "{var}={text}");
            }
            match layered("", &[(&var, "\u{1}nonsense")]) {
                Err(e) => assert!(e.to_string().starts_with(&format!("{var}: ")), "{e}"),
                Ok(c) => assert_ne!(c, defaults, "{var} was not read"),
            }
        }
    }

    /// The file, then the variables, for any key; a variable overrides only its own key.
    #[test]
    fn layers_file_then_variables_for_any_key() {
        let file = "[jwt]\nissuer = \"corp\"\nttl_seconds = 900\n[store]\npool_size = 4\n[activity]\nretention = \"7d\"";
        let c = layered(
            file,
            &[
                ("REGAUTH_JWT__TTL_SECONDS", "600"),
                ("REGAUTH_STORE__STATEMENT_TIMEOUT_MS", "1500"),
                ("REGAUTH_ACTIVITY__RETENTION", "2w"),
                ("REGAUTH_LOG__FORMAT", "json"),
                ("REGAUTH_LIMITS__TRUSTED_PROXIES", "10.0.0.1, 10.0.0.2"),
                ("HOME", "/root"),
                ("REGAUTH_LOG", "debug"),
                ("REGAUTH_URL", "http://elsewhere"),
            ],
        )
        .unwrap();
        assert_eq!((c.jwt.issuer.as_str(), c.jwt.ttl_seconds), ("corp", 600));
        assert_eq!((c.store.pool_size, c.store.statement_timeout_ms), (4, 1500));
        assert_eq!(c.activity.retention, chrono::TimeDelta::weeks(2));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.limits.trusted_proxies.len(), 2);
        // Empty: nobody is trusted (as the alias documents).
        let c = layered("", &[("REGAUTH_LIMITS__TRUSTED_PROXIES", "")]).unwrap();
        assert!(c.limits.trusted_proxies.is_empty());
    }

    /// The variables documented before the `__` rule set the same keys; when both spellings
    /// are set, the `__` one wins.
    #[test]
    fn the_older_variables_are_aliases() {
        for (alias, key) in env::ALIASES {
            let parts: Vec<&str> = key.split('.').collect();
            let uniform = env::variable_of(&parts);
            assert_ne!(*alias, uniform.as_str());
            for var in [*alias, uniform.as_str()] {
                match layered("", &[(var, "\u{1}nonsense")]) {
                    Err(e) => assert!(e.to_string().starts_with(&format!("{var}: ")), "{e}"),
                    Ok(c) => assert_ne!(c, Config::from_toml("").unwrap(), "{var} was not read"),
                }
            }
        }
        let c = layered(
            "",
            &[
                ("REGAUTH_LIMITS_AUTH_FAILURES", "7"),
                ("REGAUTH_STORE_URL", "postgres://db/a"),
                ("REGAUTH_STORE__URL", "postgres://db/b"),
            ],
        )
        .unwrap();
        assert_eq!(c.limits.auth_failures, 7);
        assert_eq!(c.store.url.as_deref(), Some("postgres://db/b"));
    }

    /// A value from the file is refused with its key, line and a caret under it, whether its
    /// type is wrong or a check refuses it; from a variable, with the variable's name.
    #[test]
    fn errors_show_the_line_or_name_the_variable() {
        let err =
            Config::from_toml("listen = \"127.0.0.1:1\"\n[limits]\nanonymous_per_minute = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("limits.anonymous_per_minute: \"x\" is not a whole number"),
            "{err}"
        );
        assert!(err.contains("line 3, column 24"), "{err}");
        assert!(
            err.ends_with("3 | anonymous_per_minute = \"x\"\n  |                        ^^^"),
            "{err}"
        );
        let err = Config::from_toml("[jwt]\nttl_seconds = 30")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("jwt.ttl_seconds: must be at least 60, got 30"),
            "{err}"
        );
        assert!(
            err.ends_with("2 | ttl_seconds = 30\n  |               ^^"),
            "{err}"
        );
        let err = Config::from_toml("[[registries]]\nid = \"a\"\nservice = \"s\"\nhostname = \"h\"\npublic = [\"ok/*\", \"Bad\"]")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("registries[0].public[1]: "), "{err}");
        assert!(err.ends_with("  |                   ^^^^^"), "{err}");
        // The file's line is not shown for a value that may hold a secret.
        let err = Config::from_toml("[admin]\ntoken = \"short-secret\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2, column 9") && !err.contains("short-secret"),
            "{err}"
        );

        for (var, value, says) in [
            (
                "REGAUTH_LIMITS__ANONYMOUS_PER_MINUTE",
                "x",
                "\"x\" is not a whole number",
            ),
            (
                "REGAUTH_JWT__TTL_SECONDS",
                "30",
                "must be at least 60, got 30",
            ),
            (
                "REGAUTH_LIMITS__PER_MINUTE",
                "5",
                "unknown key `limits.per_minute`",
            ),
            ("REGAUTH_JWT__ISSUER__NAME", "x", ""),
            ("REGAUTH_STORE__TLS", "on", "\"on\" must be one of"),
        ] {
            let err = layered("[jwt]\nttl_seconds = 300", &[(var, value)])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{var}: {says}")), "{err}");
            assert!(!err.contains(" | "), "no file line for a variable: {err}");
        }
    }
}
