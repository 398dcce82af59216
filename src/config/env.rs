//! The `REGAUTH_*` variables as a configuration layer (a `figment` provider over a list of
//! variables, so tests give their own and never touch the process environment).
//!
//! Every key is a variable: `REGAUTH_` and the key's path in capitals, sections joined by
//! `__` (`[limits] auth_failures` is `REGAUTH_LIMITS__AUTH_FAILURES`, `listen` is
//! `REGAUTH_LISTEN`). The variables documented before that rule keep working as aliases
//! ([`ALIASES`]); when both spellings are set, the `__` one wins. Other `REGAUTH_*` variables
//! without `__` belong to someone else (`REGAUTH_LOG`, `REGAUTH_CONFIG`, the CLI's) and are
//! left alone; one with `__` names a key, and an unknown key is an error naming it.
use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// The name of this provider in figment's metadata: how an error is known to come from here.
pub(super) const NAME: &str = "REGAUTH_* environment variables";

/// The variables' common prefix.
const PREFIX: &str = "REGAUTH_";

/// Top-level keys, which are variables without a `__`.
const TOP_LEVEL: &[&str] = &["listen", "public_url", "data_dir"];

/// Variables named before the `__` rule, and the key each sets.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("REGAUTH_ADMIN_TOKEN", "admin.token"),
    ("REGAUTH_TOKENS_ON_EXPIRY", "tokens.on_expiry"),
    ("REGAUTH_LOG_FORMAT", "log.format"),
    ("REGAUTH_METRICS_LISTEN", "metrics.listen"),
    ("REGAUTH_STORE_URL", "store.url"),
    ("REGAUTH_STORE_TLS", "store.tls"),
    ("REGAUTH_STORE_CA_FILE", "store.ca_file"),
    ("REGAUTH_LIMITS_AUTH_FAILURES", "limits.auth_failures"),
    ("REGAUTH_LIMITS_NAME_FAILURES", "limits.name_failures"),
    ("REGAUTH_LIMITS_ADMIN_FAILURES", "limits.admin_failures"),
    ("REGAUTH_LIMITS_NETWORK_FAILURES", "limits.network_failures"),
    ("REGAUTH_LIMITS_GLOBAL_FAILURES", "limits.global_failures"),
    (
        "REGAUTH_LIMITS_FAILURE_WINDOW_SECONDS",
        "limits.failure_window_seconds",
    ),
    ("REGAUTH_LIMITS_LOCKOUT_SECONDS", "limits.lockout_seconds"),
    ("REGAUTH_LIMITS_THROTTLE_ENTRIES", "limits.throttle_entries"),
    ("REGAUTH_LIMITS_DENIAL_LOG_LINES", "limits.denial_log_lines"),
    (
        "REGAUTH_LIMITS_DENIAL_LOG_INTERVAL_SECONDS",
        "limits.denial_log_interval_seconds",
    ),
    ("REGAUTH_LIMITS_TRUSTED_PROXIES", "limits.trusted_proxies"),
    ("REGAUTH_LIMITS_MAX_CONNECTIONS", "limits.max_connections"),
    (
        "REGAUTH_LIMITS_MAX_CONNECTIONS_PER_ADDRESS",
        "limits.max_connections_per_address",
    ),
    (
        "REGAUTH_LIMITS_HEADER_TIMEOUT_SECONDS",
        "limits.header_timeout_seconds",
    ),
    (
        "REGAUTH_LIMITS_BODY_TIMEOUT_SECONDS",
        "limits.body_timeout_seconds",
    ),
    (
        "REGAUTH_LIMITS_SHUTDOWN_TIMEOUT_SECONDS",
        "limits.shutdown_timeout_seconds",
    ),
    (
        "REGAUTH_LIMITS_ANONYMOUS_PER_MINUTE",
        "limits.anonymous_per_minute",
    ),
];

/// The variable that sets the key at `path` by the `__` rule.
pub fn variable_of(path: &[&str]) -> String {
    format!("{PREFIX}{}", path.join("__").to_ascii_uppercase())
}

/// The key path a variable sets, if it is a configuration variable.
fn key_of(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix(PREFIX)?;
    if rest.contains("__") {
        return Some(rest.split("__").map(str::to_ascii_lowercase).collect());
    }
    if let Some((_, key)) = ALIASES.iter().find(|(var, _)| *var == name) {
        return Some(key.split('.').map(String::from).collect());
    }
    let key = rest.to_ascii_lowercase();
    TOP_LEVEL.contains(&key.as_str()).then(|| vec![key])
}

/// The configuration variables of an environment, each with the key it sets.
pub struct Environment {
    /// (variable, key path, value); aliases first, so that the `__` spelling wins.
    vars: Vec<(String, Vec<String>, String)>,
}

impl Environment {
    /// The configuration variables among `vars`; the others are ignored.
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Environment {
        let mut vars: Vec<_> = vars
            .into_iter()
            .filter_map(|(name, value)| Some((name.clone(), key_of(&name)?, value)))
            .collect();
        vars.sort_by_key(|(name, _, _)| (name.contains("__"), name.clone()));
        Environment { vars }
    }

    /// The variable that set the key at `path` (the last one applied), or one under it, if
    /// one did.
    pub fn variable(&self, path: &[String]) -> Option<&str> {
        let found = |under: bool| {
            self.vars
                .iter()
                .rev()
                .find(|(_, key, _)| key.as_slice() == path || (under && key.starts_with(path)))
                .map(|(name, _, _)| name.as_str())
        };
        found(false).or_else(|| found(true))
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named(NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut root = Dict::new();
        for (name, path, value) in &self.vars {
            let Some((leaf, parents)) = path.split_last() else {
                continue;
            };
            let mut dict = &mut root;
            for part in parents {
                let entry = dict
                    .entry(part.clone())
                    .or_insert_with(|| Value::from(Dict::new()));
                dict = match entry {
                    Value::Dict(_, d) => d,
                    _ => {
                        return Err(Error::from(format!(
                            "{name}: `{part}` is set by another variable as a value, not a section"
                        )))
                    }
                };
            }
            dict.insert(leaf.clone(), Value::from(value.clone()));
        }
        Ok(Profile::Default.collect(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_variables() {
        let key = |n: &str| key_of(n).map(|k| k.join("."));
        assert_eq!(
            key("REGAUTH_LIMITS__AUTH_FAILURES").as_deref(),
            Some("limits.auth_failures")
        );
        assert_eq!(
            key("REGAUTH_LIMITS_AUTH_FAILURES").as_deref(),
            Some("limits.auth_failures")
        );
        assert_eq!(key("REGAUTH_PUBLIC_URL").as_deref(), Some("public_url"));
        assert_eq!(key("REGAUTH_ADMIN__TOKEN").as_deref(), Some("admin.token"));
        // Not configuration keys: the log filter, the CLI's variables, anything else.
        for other in [
            "REGAUTH_LOG",
            "REGAUTH_CONFIG",
            "REGAUTH_URL",
            "REGAUTH_REGISTRY",
            "PATH",
        ] {
            assert_eq!(key(other), None, "{other}");
        }
        // The test suite's own (REGAUTH_TEST_REGISTRY_3_0 and such) reach `serve` too.
        assert_eq!(key(&format!("{PREFIX}TEST_REGISTRY_3_0")), None);
        assert_eq!(variable_of(&["store", "ca_file"]), "REGAUTH_STORE__CA_FILE");
    }
}
