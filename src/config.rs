//! Configuration: built-in defaults, then the TOML file, then environment variables
//! (docs/configuration.md).
//! `[[registries]] public` patterns are checked here, at start; `server` turns the result
//! into running state.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

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

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base URL users and registries reach regauth at, without a trailing `/`.
    pub public_url: String,
    pub data_dir: PathBuf,
    /// Admin bearer token; `None` means "use or create `<data_dir>/admin-token`".
    pub admin_token: Option<String>,
    pub jwt: JwtConfig,
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
    /// The file this was read from, if any.
    pub source: Option<PathBuf>,
}

/// `[activity]`: how long registry events are kept (docs/activity.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityConfig {
    /// `retention`: events older than this are pruned (default 30 days).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokensConfig {
    /// What happens to a token when its expiry is reached (`on_expiry`).
    pub on_expiry: OnExpiry,
}

/// `[limits]`: how much a client may fail and hold (docs/configuration.md, "Limits";
/// docs/security.md says why the defaults are what they are).
#[derive(Debug, Clone, PartialEq)]
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
    /// Peers whose `X-Forwarded-For` names the client (a reverse proxy on the same host).
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

/// `[store]`: where tokens live. Without `url`, in sled under `data_dir` (one process); with
/// a `postgres://` URL, in PostgreSQL (any number of replicas; docs/high-availability.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database`; `None` for the embedded sled store.
    pub url: Option<String>,
    /// How the connection to PostgreSQL is encrypted and checked.
    pub tls: TlsMode,
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
    /// Memory for the cache of tokens read from PostgreSQL, per replica; 0: no cache (every
    /// token request reads the database).
    pub token_cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            tls: TlsMode::default(),
            ca_file: None,
            pool_size: 16,
            connect_timeout_ms: 2_000,
            statement_timeout_ms: 5_000,
            token_cache_bytes: 8 * 1024 * 1024,
        }
    }
}

/// `[log]`: how `serve` writes its log (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `format`: one line of text per event, or one JSON object per line.
    pub format: LogFormat,
}

/// `[log] format` / `REGAUTH_LOG_FORMAT`.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    /// `listen`: the address of the separate listener that serves `GET /metrics`; `None`
    /// (the default) serves no metrics.
    pub listen: Option<SocketAddr>,
}

/// `[store] tls`: TLS to PostgreSQL, named like libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
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

impl TlsMode {
    /// Parses the config or environment spelling.
    pub fn parse(s: &str) -> Option<TlsMode> {
        Some(match s {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }
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
#[derive(Debug, Clone, PartialEq)]
pub struct JwtConfig {
    pub issuer: String,
    pub ttl_seconds: u64,
    pub key: PathBuf,
    pub certificate: PathBuf,
    /// Lifetime in days of the certificate regauth generates for a new key
    /// (`regauth key add`).
    pub certificate_days: u32,
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

/// `max_token_lifetime`: a duration like `90d`, at least an hour (the shortest expiry a token
/// may be given).
fn lifetime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<chrono::TimeDelta>, D::Error> {
    let text = String::deserialize(d)?;
    let limit = crate::api::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("max_token_lifetime: {e}")))?;
    if limit < chrono::TimeDelta::hours(1) {
        return Err(serde::de::Error::custom(format!(
            "max_token_lifetime: {text:?} is shorter than an hour, the shortest expiry a token may have"
        )));
    }
    Ok(Some(limit))
}

fn resolve_activity(file: FileActivity) -> Result<ActivityConfig, ConfigError> {
    let defaults = ActivityConfig::default();
    let retention = match file.retention {
        None => defaults.retention,
        Some(text) => {
            let d = crate::api::parse_duration(&text).map_err(|e| ConfigError::Invalid {
                key: "activity.retention".into(),
                message: e,
            })?;
            if d < chrono::TimeDelta::hours(1) {
                return Err(ConfigError::Invalid {
                    key: "activity.retention".into(),
                    message: format!("{text:?} is shorter than an hour"),
                });
            }
            d
        }
    };
    let max_events_per_registry = file
        .max_events_per_registry
        .unwrap_or(defaults.max_events_per_registry);
    if max_events_per_registry == 0 {
        return Err(ConfigError::Invalid {
            key: "activity.max_events_per_registry".into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(ActivityConfig {
        retention,
        max_events_per_registry,
    })
}

/// A configuration problem; the message names the file, key or variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    admin: Option<FileAdmin>,
    jwt: Option<FileJwt>,
    registries: Option<Vec<RegistryConfig>>,
    tokens: Option<FileTokens>,
    limits: Option<FileLimits>,
    log: Option<FileLog>,
    metrics: Option<FileMetrics>,
    store: Option<FileStore>,
    activity: Option<FileActivity>,
    federation: Option<crate::domain::federation::FederationConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileActivity {
    retention: Option<String>,
    max_events_per_registry: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    auth_failures: Option<u32>,
    network_failures: Option<u32>,
    global_failures: Option<u32>,
    name_failures: Option<u32>,
    admin_failures: Option<u32>,
    failure_window_seconds: Option<u64>,
    lockout_seconds: Option<u64>,
    throttle_entries: Option<usize>,
    denial_log_lines: Option<u32>,
    denial_log_interval_seconds: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    header_timeout_seconds: Option<u64>,
    body_timeout_seconds: Option<u64>,
    shutdown_timeout_seconds: Option<u64>,
    anonymous_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<LogFormat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    url: Option<String>,
    tls: Option<TlsMode>,
    ca_file: Option<PathBuf>,
    pool_size: Option<usize>,
    connect_timeout_ms: Option<u64>,
    statement_timeout_ms: Option<u64>,
    token_cache_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTokens {
    on_expiry: Option<OnExpiry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJwt {
    issuer: Option<String>,
    ttl_seconds: Option<u64>,
    key: Option<PathBuf>,
    certificate: Option<PathBuf>,
    certificate_days: Option<u32>,
}

impl Config {
    /// Loads defaults, then `path` (or [`DEFAULT_CONFIG_PATH`] when it exists), then the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, |k| std::env::var(k).ok())
    }

    /// As [`Config::load`], with the environment supplied by `env` (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (file, source) = match path {
            Some(p) => (Self::read_file(p)?, Some(p.to_path_buf())),
            None => {
                let p = Path::new(DEFAULT_CONFIG_PATH);
                if p.exists() {
                    (Self::read_file(p)?, Some(p.to_path_buf()))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        Self::resolve(file, source, env)
    }

    /// Parses TOML text (no environment applied). Errors name the unknown or bad key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file = parse_file(text, "<inline>")?;
        Self::resolve(file, None, |_| None)
    }

    fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        parse_file(&text, &path.display().to_string())
    }

    fn resolve(
        file: FileConfig,
        source: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let listen_text = env("REGAUTH_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:5001".to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Invalid {
            key: "listen".into(),
            message: format!("{listen_text:?} is not an address like 127.0.0.1:5001"),
        })?;
        let public_url = env("REGAUTH_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = public_url.trim_end_matches('/').to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "public_url".into(),
                message: format!("{public_url:?} must start with http:// or https://"),
            });
        }
        let data_dir = env("REGAUTH_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let admin_env = env("REGAUTH_ADMIN_TOKEN");
        // Errors name where the bad value came from.
        let admin_key = if admin_env.is_some() {
            "REGAUTH_ADMIN_TOKEN"
        } else {
            "admin.token"
        };
        let admin_token = admin_env
            .or(file.admin.and_then(|a| a.token))
            .filter(|t| !t.is_empty());
        if let Some(t) = &admin_token {
            check_admin_token(t).map_err(|message| ConfigError::Invalid {
                key: admin_key.into(),
                message,
            })?;
        }
        let jwt = file.jwt.unwrap_or_default();
        let ttl_seconds = jwt.ttl_seconds.unwrap_or(300);
        if ttl_seconds < MIN_TTL_SECONDS {
            return Err(ConfigError::Invalid {
                key: "jwt.ttl_seconds".into(),
                message: format!("must be at least {MIN_TTL_SECONDS}, got {ttl_seconds}"),
            });
        }
        let jwt = JwtConfig {
            issuer: jwt.issuer.unwrap_or_else(|| "regauth".to_string()),
            ttl_seconds,
            key: jwt
                .key
                .unwrap_or_else(|| PathBuf::from("certs/signing.key")),
            certificate: jwt
                .certificate
                .unwrap_or_else(|| PathBuf::from("certs/signing.crt")),
            certificate_days: jwt
                .certificate_days
                .unwrap_or(crate::jwt::keystore::DEFAULT_CERTIFICATE_DAYS),
        };
        if !(1..=MAX_CERTIFICATE_DAYS).contains(&jwt.certificate_days) {
            return Err(ConfigError::Invalid {
                key: "jwt.certificate_days".into(),
                message: format!(
                    "must be between 1 and {MAX_CERTIFICATE_DAYS}, got {}",
                    jwt.certificate_days
                ),
            });
        }
        if jwt.issuer.is_empty() {
            return Err(ConfigError::Invalid {
                key: "jwt.issuer".into(),
                message: "must not be empty".into(),
            });
        }
        let registries = match file.registries {
            Some(r) if !r.is_empty() => r,
            _ => vec![RegistryConfig::new(
                "default",
                "registry.local",
                "localhost:5000",
            )],
        };
        validate_registries(&registries)?;
        let on_expiry = match env("REGAUTH_TOKENS_ON_EXPIRY") {
            Some(v) => match v.as_str() {
                "delete" => OnExpiry::Delete,
                "disable" => OnExpiry::Disable,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "REGAUTH_TOKENS_ON_EXPIRY".into(),
                        message: format!("{v:?} must be \"delete\" or \"disable\""),
                    })
                }
            },
            None => file.tokens.and_then(|t| t.on_expiry).unwrap_or_default(),
        };
        let limits = resolve_limits(file.limits.unwrap_or_default(), &env)?;
        let format = match env("REGAUTH_LOG_FORMAT") {
            Some(v) => match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "REGAUTH_LOG_FORMAT".into(),
                        message: format!("{v:?} must be \"text\" or \"json\""),
                    })
                }
            },
            None => file.log.and_then(|l| l.format).unwrap_or_default(),
        };
        let (metrics_key, metrics_text) = match env("REGAUTH_METRICS_LISTEN") {
            Some(v) => ("REGAUTH_METRICS_LISTEN", Some(v)),
            None => ("metrics.listen", file.metrics.and_then(|m| m.listen)),
        };
        let metrics_listen = match metrics_text.filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(t.parse::<SocketAddr>().map_err(|_| ConfigError::Invalid {
                key: metrics_key.into(),
                message: format!("{t:?} is not an address like 127.0.0.1:9464"),
            })?),
        };
        let store = resolve_store(file.store.unwrap_or_default(), &env)?;
        let activity = resolve_activity(file.activity.unwrap_or_default())?;
        let federation = file.federation.unwrap_or_default();
        federation.validate().map_err(|e| ConfigError::Invalid {
            key: e.field,
            message: e.rule,
        })?;
        Ok(Config {
            listen,
            public_url,
            data_dir,
            admin_token,
            jwt,
            registries,
            tokens: TokensConfig { on_expiry },
            limits,
            log: LogConfig { format },
            metrics: MetricsConfig {
                listen: metrics_listen,
            },
            store,
            activity,
            federation,
            source,
        })
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

fn parse_file(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_string(),
        // toml's message already names the unknown or mistyped key and its line, and points
        // at it with a caret under a copy of the line: keep its line breaks.
        message: e.to_string().trim_end().to_string(),
    })
}

/// `[limits] KEY` from the variable `var`, then the file, then `default`; at least `min`.
fn limit<T>(
    env: &impl Fn(&str) -> Option<String>,
    (key, var): (&str, &str),
    file: Option<T>,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let (value, source) = match env(var) {
        Some(text) => match text.trim().parse::<T>() {
            Ok(v) => (v, var.to_string()),
            Err(_) => {
                return Err(ConfigError::Invalid {
                    key: var.into(),
                    message: format!("{text:?} is not a whole number"),
                })
            }
        },
        None => (file.unwrap_or(default), format!("limits.{key}")),
    };
    if value < min {
        return Err(ConfigError::Invalid {
            key: source,
            message: format!("must be at least {min}, got {value}"),
        });
    }
    Ok(value)
}

/// Longest duration any `[limits] *_seconds` key may have: a year. Longer ones are surely
/// mistakes, and bounding them keeps every deadline computable.
pub const MAX_LIMIT_SECONDS: u64 = 365 * 24 * 3600;

fn resolve_limits(
    file: FileLimits,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<LimitsConfig, ConfigError> {
    let limits = read_limits(file, env)?;
    for (key, value) in [
        ("failure_window_seconds", limits.failure_window_seconds),
        ("lockout_seconds", limits.lockout_seconds),
        (
            "denial_log_interval_seconds",
            limits.denial_log_interval_seconds,
        ),
        ("header_timeout_seconds", limits.header_timeout_seconds),
        ("body_timeout_seconds", limits.body_timeout_seconds),
        ("shutdown_timeout_seconds", limits.shutdown_timeout_seconds),
    ] {
        if value > MAX_LIMIT_SECONDS {
            return Err(ConfigError::Invalid {
                key: format!("limits.{key}"),
                message: format!("must be at most {MAX_LIMIT_SECONDS} (a year), got {value}"),
            });
        }
    }
    Ok(limits)
}

fn read_limits(
    file: FileLimits,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<LimitsConfig, ConfigError> {
    let d = LimitsConfig::default();
    let trusted_proxies = match env("REGAUTH_LIMITS_TRUSTED_PROXIES") {
        Some(text) => parse_addresses(
            text.split(',').map(str::trim).filter(|t| !t.is_empty()),
            "REGAUTH_LIMITS_TRUSTED_PROXIES",
        )?,
        None => match file.trusted_proxies {
            Some(list) => {
                parse_addresses(list.iter().map(String::as_str), "limits.trusted_proxies")?
            }
            None => d.trusted_proxies,
        },
    };
    Ok(LimitsConfig {
        auth_failures: limit(
            env,
            ("auth_failures", "REGAUTH_LIMITS_AUTH_FAILURES"),
            file.auth_failures,
            d.auth_failures,
            0,
        )?,
        name_failures: limit(
            env,
            ("name_failures", "REGAUTH_LIMITS_NAME_FAILURES"),
            file.name_failures,
            d.name_failures,
            0,
        )?,
        admin_failures: limit(
            env,
            ("admin_failures", "REGAUTH_LIMITS_ADMIN_FAILURES"),
            file.admin_failures,
            d.admin_failures,
            0,
        )?,
        network_failures: limit(
            env,
            ("network_failures", "REGAUTH_LIMITS_NETWORK_FAILURES"),
            file.network_failures,
            d.network_failures,
            0,
        )?,
        global_failures: limit(
            env,
            ("global_failures", "REGAUTH_LIMITS_GLOBAL_FAILURES"),
            file.global_failures,
            d.global_failures,
            0,
        )?,
        failure_window_seconds: limit(
            env,
            (
                "failure_window_seconds",
                "REGAUTH_LIMITS_FAILURE_WINDOW_SECONDS",
            ),
            file.failure_window_seconds,
            d.failure_window_seconds,
            1,
        )?,
        lockout_seconds: limit(
            env,
            ("lockout_seconds", "REGAUTH_LIMITS_LOCKOUT_SECONDS"),
            file.lockout_seconds,
            d.lockout_seconds,
            1,
        )?,
        throttle_entries: limit(
            env,
            ("throttle_entries", "REGAUTH_LIMITS_THROTTLE_ENTRIES"),
            file.throttle_entries,
            d.throttle_entries,
            16,
        )?,
        denial_log_lines: limit(
            env,
            ("denial_log_lines", "REGAUTH_LIMITS_DENIAL_LOG_LINES"),
            file.denial_log_lines,
            d.denial_log_lines,
            0,
        )?,
        denial_log_interval_seconds: limit(
            env,
            (
                "denial_log_interval_seconds",
                "REGAUTH_LIMITS_DENIAL_LOG_INTERVAL_SECONDS",
            ),
            file.denial_log_interval_seconds,
            d.denial_log_interval_seconds,
            1,
        )?,
        trusted_proxies,
        // 0 (the default): derived from the open-files limit at start.
        max_connections: limit(
            env,
            ("max_connections", "REGAUTH_LIMITS_MAX_CONNECTIONS"),
            file.max_connections,
            d.max_connections,
            0,
        )?,
        max_connections_per_address: limit(
            env,
            (
                "max_connections_per_address",
                "REGAUTH_LIMITS_MAX_CONNECTIONS_PER_ADDRESS",
            ),
            file.max_connections_per_address,
            d.max_connections_per_address,
            0,
        )?,
        header_timeout_seconds: limit(
            env,
            (
                "header_timeout_seconds",
                "REGAUTH_LIMITS_HEADER_TIMEOUT_SECONDS",
            ),
            file.header_timeout_seconds,
            d.header_timeout_seconds,
            1,
        )?,
        body_timeout_seconds: limit(
            env,
            (
                "body_timeout_seconds",
                "REGAUTH_LIMITS_BODY_TIMEOUT_SECONDS",
            ),
            file.body_timeout_seconds,
            d.body_timeout_seconds,
            1,
        )?,
        shutdown_timeout_seconds: limit(
            env,
            (
                "shutdown_timeout_seconds",
                "REGAUTH_LIMITS_SHUTDOWN_TIMEOUT_SECONDS",
            ),
            file.shutdown_timeout_seconds,
            d.shutdown_timeout_seconds,
            0,
        )?,
        anonymous_per_minute: limit(
            env,
            (
                "anonymous_per_minute",
                "REGAUTH_LIMITS_ANONYMOUS_PER_MINUTE",
            ),
            file.anonymous_per_minute,
            d.anonymous_per_minute,
            0,
        )?,
    })
}

fn parse_addresses<'a>(
    items: impl Iterator<Item = &'a str>,
    key: &str,
) -> Result<Vec<IpAddr>, ConfigError> {
    items
        .map(|t| {
            t.parse::<IpAddr>().map_err(|_| ConfigError::Invalid {
                key: key.into(),
                message: format!("{t:?} is not an IP address like 127.0.0.1 or ::1"),
            })
        })
        .collect()
}

/// `[store]` from the file, then `REGAUTH_STORE_URL`, `REGAUTH_STORE_TLS`,
/// `REGAUTH_STORE_CA_FILE`.
fn resolve_store(
    file: FileStore,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<StoreConfig, ConfigError> {
    let defaults = StoreConfig::default();
    let url_env = env("REGAUTH_STORE_URL").filter(|u| !u.is_empty());
    let url_key = if url_env.is_some() {
        "REGAUTH_STORE_URL"
    } else {
        "store.url"
    };
    let url = url_env.or(file.url.filter(|u| !u.is_empty()));
    if let Some(u) = &url {
        if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                key: url_key.into(),
                // Never echo the URL: it may hold a password.
                message: "must be a postgres:// or postgresql:// URL".into(),
            });
        }
    }
    let tls = match env("REGAUTH_STORE_TLS") {
        Some(v) => TlsMode::parse(&v).ok_or_else(|| ConfigError::Invalid {
            key: "REGAUTH_STORE_TLS".into(),
            message: format!(
                "{v:?} must be \"disable\", \"prefer\", \"require\" or \"verify-full\""
            ),
        })?,
        None => file.tls.unwrap_or(defaults.tls),
    };
    let ca_file = env("REGAUTH_STORE_CA_FILE")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .or(file.ca_file);
    let positive = |key: &str, v: Option<u64>, default: u64| match v {
        Some(0) => Err(ConfigError::Invalid {
            key: key.into(),
            message: "must be at least 1".into(),
        }),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let pool_size = positive(
        "store.pool_size",
        file.pool_size.map(|v| v as u64),
        defaults.pool_size as u64,
    )? as usize;
    Ok(StoreConfig {
        url,
        tls,
        ca_file,
        pool_size,
        connect_timeout_ms: positive(
            "store.connect_timeout_ms",
            file.connect_timeout_ms,
            defaults.connect_timeout_ms,
        )?,
        statement_timeout_ms: positive(
            "store.statement_timeout_ms",
            file.statement_timeout_ms,
            defaults.statement_timeout_ms,
        )?,
        token_cache_bytes: file.token_cache_bytes.unwrap_or(defaults.token_cache_bytes),
    })
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
            return Err(ConfigError::Invalid {
                key: key("id"),
                message: format!("{:?} must be 1-63 of a-z, 0-9 and '-'", r.id),
            });
        }
        if r.service.is_empty() {
            return Err(ConfigError::Invalid {
                key: key("service"),
                message: "must not be empty".into(),
            });
        }
        if r.hostname.is_empty() {
            return Err(ConfigError::Invalid {
                key: key("hostname"),
                message: "must not be empty".into(),
            });
        }
        if let Some(url) = &r.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: key("url"),
                    message: format!("{url:?} must start with http:// or https://"),
                });
            }
        }
        for (j, pattern) in r.public.iter().enumerate() {
            pattern
                .parse::<crate::domain::RepoPattern>()
                .map_err(|e| ConfigError::Invalid {
                    key: format!("registries[{i}].public[{j}]"),
                    message: format!("{pattern:?} is not a repository pattern: {}", e.rule),
                })?;
        }
        if registries[..i].iter().any(|o| o.id == r.id) {
            return Err(ConfigError::Invalid {
                key: key("id"),
                message: format!("{:?} is declared twice", r.id),
            });
        }
        if registries[..i].iter().any(|o| o.service == r.service) {
            return Err(ConfigError::Invalid {
                key: key("service"),
                message: format!("{:?} is used by two registries", r.service),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
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
        let c = Config::resolve(FileConfig::default(), None, |_| None).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:5001");
        assert_eq!(c.public_url, "http://127.0.0.1:5001");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.admin_token, None);
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
        let file = parse_file(text, "x").unwrap();
        let c = Config::resolve(
            file,
            None,
            env_of(&[
                ("REGAUTH_LISTEN", "127.0.0.1:7000"),
                ("REGAUTH_ADMIN_TOKEN", "env-token-0123456789"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.public_url, "https://auth.example.com");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/regauth"));
        assert_eq!(c.admin_token.as_deref(), Some("env-token-0123456789"));
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
        let file = parse_file(text, "x").unwrap();
        let c = Config::resolve(
            file,
            None,
            env_of(&[
                ("REGAUTH_LOG_FORMAT", "text"),
                ("REGAUTH_METRICS_LISTEN", "0.0.0.0:1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.metrics.listen, Some("0.0.0.0:1".parse().unwrap()));
        for (env, key) in [
            (("REGAUTH_LOG_FORMAT", "yaml"), "REGAUTH_LOG_FORMAT"),
            (("REGAUTH_METRICS_LISTEN", "9464"), "REGAUTH_METRICS_LISTEN"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([env]));
            let err = Config::resolve(FileConfig::default(), None, env_of(pairs)).unwrap_err();
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
        let err = Config::load_with_env(Some(&path), |k| {
            (k == "REGAUTH_ADMIN_TOKEN").then(|| "short".to_string())
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("REGAUTH_ADMIN_TOKEN: must be at least 16 characters"),
            "{err}"
        );
        std::fs::write(&path, "[admin]\ntoken = \"short\"\n").unwrap();
        let err = Config::load_with_env(Some(&path), |_| None).unwrap_err();
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
        let c = Config::resolve(
            parse_file(file, "x").unwrap(),
            None,
            env_of(&[("REGAUTH_TOKENS_ON_EXPIRY", "delete")]),
        )
        .unwrap();
        assert_eq!(c.tokens.on_expiry, OnExpiry::Delete);
        let err = Config::from_toml("[tokens]\non_expiry = \"keep\"").unwrap_err();
        assert!(err.to_string().contains("keep"), "{err}");
        let err = Config::resolve(
            FileConfig::default(),
            None,
            env_of(&[("REGAUTH_TOKENS_ON_EXPIRY", "nope")]),
        )
        .unwrap_err();
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
        let c = Config::resolve(
            parse_file(file, "x").unwrap(),
            None,
            env_of(&[
                ("REGAUTH_LIMITS_AUTH_FAILURES", "7"),
                ("REGAUTH_LIMITS_TRUSTED_PROXIES", "127.0.0.1, ::1"),
                ("REGAUTH_LIMITS_MAX_CONNECTIONS_PER_ADDRESS", "0"),
            ]),
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
        let err = Config::resolve(
            FileConfig::default(),
            None,
            env_of(&[("REGAUTH_LIMITS_LOCKOUT_SECONDS", "soon")]),
        )
        .unwrap_err();
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
        assert_eq!(c.tls, TlsMode::VerifyFull);
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
        let c = Config::resolve(
            parse_file(file, "x").unwrap(),
            None,
            env_of(&[
                ("REGAUTH_STORE_URL", "postgresql://other/db"),
                ("REGAUTH_STORE_TLS", "require"),
                ("REGAUTH_STORE_CA_FILE", "/ca.pem"),
            ]),
        )
        .unwrap()
        .store;
        assert_eq!(c.url.as_deref(), Some("postgresql://other/db"));
        assert_eq!(c.tls, TlsMode::Require);
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/ca.pem")));
        for mode in ["disable", "prefer", "require", "verify-full"] {
            let c = Config::from_toml(&format!("[store]\ntls = \"{mode}\"")).unwrap();
            assert_eq!(Some(c.store.tls), TlsMode::parse(mode));
        }

        let err = Config::from_toml("[store]\ntls = \"verify-ca\"").unwrap_err();
        assert!(err.to_string().contains("verify-ca"), "{err}");
        let err = Config::resolve(
            FileConfig::default(),
            None,
            env_of(&[("REGAUTH_STORE_TLS", "on")]),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("REGAUTH_STORE_TLS"), "{err}");
        let err = Config::from_toml("[store]\nurl = \"mysql://u:secret@h/db\"").unwrap_err();
        assert!(err.to_string().starts_with("store.url: "), "{err}");
        assert!(
            !err.to_string().contains("secret"),
            "no password in errors: {err}"
        );
        let err = Config::resolve(
            FileConfig::default(),
            None,
            env_of(&[("REGAUTH_STORE_URL", "sqlite:x")]),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("REGAUTH_STORE_URL: "), "{err}");
        let err = Config::from_toml("[store]\npool_size = 0").unwrap_err();
        assert!(err.to_string().starts_with("store.pool_size: "), "{err}");
        let err = Config::from_toml("[store]\nhost = \"db\"").unwrap_err();
        assert!(err.to_string().contains("host"), "{err}");
    }

    #[test]
    fn federation_issuers_default_to_github_and_gitlab_and_errors_name_the_key() {
        use crate::domain::federation::IssuerKind;
        let c = Config::from_toml("").unwrap();
        assert_eq!(
            c.federation
                .kind_of("https://token.actions.githubusercontent.com"),
            Some(IssuerKind::Github)
        );
        assert_eq!(
            c.federation.kind_of("https://gitlab.com"),
            Some(IssuerKind::Gitlab)
        );
        let c = Config::from_toml(
            "[federation]\nca_file = \"/etc/ca.pem\"\n\
             [[federation.issuers]]\nurl = \"https://gitlab.example\"\nkind = \"gitlab\"\n",
        )
        .unwrap();
        assert_eq!(c.federation.issuers.len(), 1);
        assert_eq!(c.federation.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.federation.kind_of("https://gitlab.com"), None);
        let err = Config::from_toml(
            "[[federation.issuers]]\nurl = \"http://gitlab.example\"\nkind = \"gitlab\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("federation.issuers[0].url: ")
                && err.to_string().contains("https:// only"),
            "{err}"
        );
        let err = Config::from_toml(
            "[[federation.issuers]]\nurl = \"https://a\"\nkind = \"bitbucket\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("bitbucket"), "{err}");
    }

    #[test]
    fn example_config_file_is_valid_and_equals_the_defaults() {
        let example = Config::from_toml(include_str!("../config/regauth.toml")).unwrap();
        assert_eq!(example, Config::from_toml("").unwrap());
    }

    #[test]
    fn explicit_missing_file_is_an_error_naming_it() {
        let err = Config::load_with_env(Some(Path::new("/nonexistent/regauth.toml")), |_| None)
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/regauth.toml"),
            "{err}"
        );
    }
}
