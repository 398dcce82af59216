//! Configuration: built-in defaults, then the TOML file, then environment variables
//! (docs/configuration.md).
//! Depends on nothing else in the crate; `server` turns it into running state.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where `regauth serve` looks for a config file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/regauth.toml";
/// Tokens never live shorter than this (clients raise anything lower to 60 anyway).
pub const MIN_TTL_SECONDS: u64 = 60;
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
    /// `[store]`: the embedded sled store (default) or PostgreSQL.
    pub store: StoreConfig,
    /// The file this was read from, if any.
    pub source: Option<PathBuf>,
}

/// `[tokens]`: token lifecycle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokensConfig {
    /// What happens to a token when its expiry is reached (`on_expiry`).
    pub on_expiry: OnExpiry,
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
}

/// One `[[registries]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub id: String,
    pub service: String,
    pub hostname: String,
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
    store: Option<FileStore>,
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
        };
        if jwt.issuer.is_empty() {
            return Err(ConfigError::Invalid {
                key: "jwt.issuer".into(),
                message: "must not be empty".into(),
            });
        }
        let registries = match file.registries {
            Some(r) if !r.is_empty() => r,
            _ => vec![RegistryConfig {
                id: "default".into(),
                service: "registry.local".into(),
                hostname: "localhost:5000".into(),
            }],
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
        let store = resolve_store(file.store.unwrap_or_default(), &env)?;
        Ok(Config {
            listen,
            public_url,
            data_dir,
            admin_token,
            jwt,
            registries,
            tokens: TokensConfig { on_expiry },
            store,
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
