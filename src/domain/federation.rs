//! Federated tokens (keyless CI): a token whose password is a CI job's own OIDC ID token.
//!
//! The rules that need no network and no storage: the shape of a [`Federation`] and its
//! validation (audiences, claim conditions, limits, and the pinning rule that keeps a GitHub
//! federation from admitting every repository on GitHub), the claim conditions themselves
//! ([`Federation::check_claims`]), `${claim}` templating of scope paths
//! ([`expand_template`]), and the `[federation]` configuration ([`FederationConfig`]).
//! Fetching keys and checking signatures is `oidc`'s job.
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::pattern::matches_text;
use super::{RepoPattern, ValidationError};

/// `maxIdTokenLifetimeSeconds` when not given: ID tokens whose `exp - iat` is longer are refused.
pub const DEFAULT_MAX_ID_TOKEN_LIFETIME: TimeDelta = TimeDelta::hours(1);
/// The longest `maxIdTokenLifetimeSeconds` allowed: a day.
pub const MAX_ID_TOKEN_LIFETIME: TimeDelta = TimeDelta::days(1);
/// `sessionSeconds` when not given: how long a login made with an ID token stays usable.
pub const DEFAULT_SESSION: TimeDelta = TimeDelta::hours(1);
/// The longest `sessionSeconds` allowed: a day.
pub const MAX_SESSION: TimeDelta = TimeDelta::days(1);
/// Most audiences of one federation.
pub const MAX_AUDIENCES: usize = 16;
/// Most claim conditions of one federation.
pub const MAX_CLAIMS: usize = 32;
/// Longest issuer, audience, claim name or pattern, in characters.
pub const MAX_TEXT: usize = 1024;
/// Most keys in an inline JWK Set.
pub const MAX_INLINE_KEYS: usize = 32;

/// Which identity claims an issuer's federations must pin (`[[federation.issuers]] kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuerKind {
    /// GitHub Actions: an exact `repository_id` or `repository_owner_id`.
    Github,
    /// GitLab CI: an exact `project_id` or `namespace_id`.
    Gitlab,
    /// Any other issuer (Kubernetes, a self-hosted one): an exact `sub`.
    Generic,
}

impl IssuerKind {
    /// The config spelling: `github`, `gitlab`, `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Github => "github",
            IssuerKind::Gitlab => "gitlab",
            IssuerKind::Generic => "generic",
        }
    }

    /// The claims of which one must be pinned exactly, and whether they are numeric ids.
    pub fn pinning_claims(self) -> (&'static [&'static str], bool) {
        match self {
            IssuerKind::Github => (&["repository_id", "repository_owner_id"], true),
            IssuerKind::Gitlab => (&["project_id", "namespace_id"], true),
            IssuerKind::Generic => (&["sub"], false),
        }
    }
}

impl fmt::Display for IssuerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's federation: which ID tokens are its password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Federation {
    /// The issuer, exactly as in the ID tokens' `iss` (and in `[[federation.issuers]] url`).
    pub issuer: String,
    /// The ID token's `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Claim name → exact value or pattern (`*`, `?`); every condition must hold.
    pub claims: BTreeMap<String, String>,
    /// ID tokens whose `exp - iat` is longer are refused.
    #[serde(with = "seconds")]
    pub max_id_token_lifetime: TimeDelta,
    /// How long a login made with an ID token stays usable (refresh tokens, temporary passwords).
    #[serde(with = "seconds")]
    pub session: TimeDelta,
    /// An inline JWK Set used instead of discovery (no network call then). Stored as its JSON
    /// text so that every store encoding (postcard included) can hold it.
    #[serde(with = "json_text")]
    pub jwks: Option<Value>,
}

/// A claim condition that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFailure {
    /// The claim's name.
    pub claim: String,
    /// The claim's value as text; `None` when the token has no such claim.
    pub value: Option<String>,
    /// The condition's exact value or pattern.
    pub pattern: String,
}

impl fmt::Display for ClaimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "claim {}: {v:?} does not match {:?}",
                self.claim, self.pattern
            ),
            None => write!(f, "claim {}: missing", self.claim),
        }
    }
}

/// A claim's value as the conditions and templates compare it: strings as they are, numbers
/// in decimal, booleans as `true`/`false`; `None` for a missing or `null` claim or one of
/// another type (an array or object compares as its JSON text, which no condition written as
/// a plain value matches by accident).
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

impl Federation {
    /// A federation with the default lifetime and session and no inline keys.
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        claims: BTreeMap<String, String>,
    ) -> Federation {
        Federation {
            issuer: issuer.into(),
            audiences,
            claims,
            max_id_token_lifetime: DEFAULT_MAX_ID_TOKEN_LIFETIME,
            session: DEFAULT_SESSION,
            jwks: None,
        }
    }

    /// Every rule a stored federation keeps, for an issuer of `kind`. Field names in errors
    /// are those of the admin API below `federation` (`audiences`, `claims.ref`,
    /// `maxIdTokenLifetimeSeconds`, `sessionSeconds`, `jwks`).
    pub fn validate(&self, kind: IssuerKind) -> Result<(), ValidationError> {
        check_text("issuer", &self.issuer)?;
        if self.audiences.is_empty() {
            return Err(ValidationError::new(
                "audiences",
                "at least one audience is required: the ID token's `aud` must name this registry",
            ));
        }
        if self.audiences.len() > MAX_AUDIENCES {
            return Err(ValidationError::new(
                "audiences",
                format!(
                    "at most {MAX_AUDIENCES} audiences, got {}",
                    self.audiences.len()
                ),
            ));
        }
        for (i, a) in self.audiences.iter().enumerate() {
            check_text(&format!("audiences[{i}]"), a)?;
        }
        if self.claims.len() > MAX_CLAIMS {
            return Err(ValidationError::new(
                "claims",
                format!(
                    "at most {MAX_CLAIMS} claim conditions, got {}",
                    self.claims.len()
                ),
            ));
        }
        for (name, pattern) in &self.claims {
            check_claim_name(name)?;
            check_text(&format!("claims.{name}"), pattern)?;
        }
        check_pinning(&self.claims, kind)?;
        check_limit(
            "maxIdTokenLifetimeSeconds",
            self.max_id_token_lifetime,
            MAX_ID_TOKEN_LIFETIME,
        )?;
        check_limit("sessionSeconds", self.session, MAX_SESSION)?;
        if let Some(jwks) = &self.jwks {
            check_jwks_shape(jwks)?;
        }
        Ok(())
    }

    /// Every claim condition that does not hold for `claims`, in claim-name order; empty
    /// when all hold.
    pub fn check_claims(&self, claims: &Map<String, Value>) -> Vec<ClaimFailure> {
        self.claims
            .iter()
            .filter_map(|(name, pattern)| {
                let value = claim_text(claims, name);
                match &value {
                    Some(v) if matches_text(pattern, v) => None,
                    _ => Some(ClaimFailure {
                        claim: name.clone(),
                        value,
                        pattern: pattern.clone(),
                    }),
                }
            })
            .collect()
    }
}

fn check_text(field: &str, text: &str) -> Result<(), ValidationError> {
    let len = text.chars().count();
    if len == 0 || len > MAX_TEXT {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_TEXT} characters, got {len}"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Claim names as issuers write them: letters, digits, `_`, `-`, `.`, `:`, `/`.
fn check_claim_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            format!("claims.{name}"),
            "a claim name is 1 to 128 of a-z, A-Z, 0-9, '_', '-', '.', ':', '/'",
        ))
    }
}

/// The pinning rule: a condition that names one identity that cannot be re-registered.
fn check_pinning(
    claims: &BTreeMap<String, String>,
    kind: IssuerKind,
) -> Result<(), ValidationError> {
    let (pins, numeric) = kind.pinning_claims();
    let exact = |name: &&&str| claims.get(**name).is_some_and(|v| !v.contains(['*', '?']));
    match pins.iter().find(exact) {
        None => Err(ValidationError::new(
            "claims",
            format!(
                "a federation with a {kind} issuer must pin an identity that cannot be \
                 re-registered: an exact (no '*' or '?') {}",
                pins.join(" or ")
            ),
        )),
        Some(name) if numeric => {
            let value = claims.get(*name).map(String::as_str).unwrap_or_default();
            if value.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err(ValidationError::new(
                    format!("claims.{name}"),
                    format!(
                        "{name} is the numeric id (e.g. from `gh api users/OWNER --jq .id` \
                         on GitHub), got {value:?}"
                    ),
                ))
            }
        }
        Some(_) => Ok(()),
    }
}

fn check_limit(field: &str, value: TimeDelta, max: TimeDelta) -> Result<(), ValidationError> {
    if value < TimeDelta::seconds(1) || value > max {
        return Err(ValidationError::new(
            field,
            format!(
                "must be between 1 and {} seconds, got {}",
                max.num_seconds(),
                value.num_seconds()
            ),
        ));
    }
    Ok(())
}

/// The shape of an inline JWK Set: `{"keys": [...]}` with 1 to [`MAX_INLINE_KEYS`] keys, each
/// an RSA (`n`, `e`) or P-256 EC (`x`, `y`) public key. Whether the numbers make a key is
/// checked by `oidc` when it reads them.
fn check_jwks_shape(jwks: &Value) -> Result<(), ValidationError> {
    let err = |field: String, rule: &str| Err(ValidationError::new(field, rule.to_string()));
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return err(
            "jwks".into(),
            "must be a JWK Set: an object with a \"keys\" array",
        );
    };
    if keys.is_empty() || keys.len() > MAX_INLINE_KEYS {
        return Err(ValidationError::new(
            "jwks.keys",
            format!("must hold 1 to {MAX_INLINE_KEYS} keys, got {}", keys.len()),
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        let field = format!("jwks.keys[{i}]");
        let text = |name: &str| key.get(name).and_then(Value::as_str);
        match text("kty") {
            Some("RSA") if text("n").is_some() && text("e").is_some() => {}
            Some("EC")
                if text("crv") == Some("P-256") && text("x").is_some() && text("y").is_some() => {}
            Some("RSA") => return err(field, "an RSA key needs \"n\" and \"e\""),
            Some("EC") => return err(field, "an EC key must be P-256 with \"x\" and \"y\""),
            _ => {
                return err(
                    field,
                    "\"kty\" must be \"RSA\" or \"EC\" (public keys for RS256 or ES256)",
                )
            }
        }
        if text("kid").is_none_or(str::is_empty) {
            return err(field, "needs a \"kid\": an ID token names its key by kid");
        }
        if key.get("d").is_some() {
            return err(field, "is a private key: give the public key only");
        }
    }
    Ok(())
}

/// Whether a scope's repository path holds a `${claim}` template.
pub fn is_template(scope_name: &str) -> bool {
    scope_name.contains("${")
}

/// Checks a templated scope path: each `${name}` is closed and names a claim, and the path
/// with every template filled by a plain value is a valid pattern. Field name: `name`.
pub fn validate_template(scope_name: &str) -> Result<(), ValidationError> {
    let filled = fill(scope_name, |name| {
        check_claim_name(name).ok().map(|()| "x".to_string())
    })
    .map_err(|rule| ValidationError::new("name", rule))?;
    match filled {
        Some(path) => path.parse::<RepoPattern>().map(drop),
        None => Err(ValidationError::new(
            "name",
            format!("{scope_name:?}: a template is `${{claim}}` with a claim name of a-z, A-Z, 0-9, '_', '-', '.', ':', '/'"),
        )),
    }
}

/// `scope_name` with each `${claim}` replaced by the claim's text, lowercased. `None` (grant
/// nothing) when a claim is missing or empty, when a value holds `*` or `?` (a claim must not
/// widen the pattern), or when the result is not a valid repository pattern.
pub fn expand_template(scope_name: &str, claims: &Map<String, Value>) -> Option<String> {
    let filled = fill(scope_name, |name| {
        let value = claim_text(claims, name)?.to_lowercase();
        (!value.is_empty() && !value.contains(['*', '?'])).then_some(value)
    })
    .ok()??;
    filled.parse::<RepoPattern>().ok().map(String::from)
}

/// `text` with each `${name}` replaced by `value(name)`; `Ok(None)` when a value is `None`,
/// `Err` when a `${` is not closed.
fn fill(
    text: &str,
    mut value: impl FnMut(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{text:?}: `${{` is not closed by `}}`"));
        };
        match value(&after[..end]) {
            Some(v) => out.push_str(&v),
            None => return Ok(None),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// `[federation]`: the issuers regauth may contact, and extra trust roots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// `ca_file`: PEM certificates trusted for issuers on a private PKI, beside the public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `[[federation.issuers]]`; when the key is absent, GitHub Actions and gitlab.com.
    #[serde(default = "default_issuers")]
    pub issuers: Vec<IssuerConfig>,
}

/// One `[[federation.issuers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer URL, exactly as in its ID tokens' `iss` (`https://` only).
    pub url: String,
    /// Which identity claims its federations must pin.
    pub kind: IssuerKind,
}

/// GitHub Actions' issuer.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// gitlab.com's issuer.
pub const GITLAB_ISSUER: &str = "https://gitlab.com";

fn default_issuers() -> Vec<IssuerConfig> {
    vec![
        IssuerConfig {
            url: GITHUB_ISSUER.into(),
            kind: IssuerKind::Github,
        },
        IssuerConfig {
            url: GITLAB_ISSUER.into(),
            kind: IssuerKind::Gitlab,
        },
    ]
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            ca_file: None,
            issuers: default_issuers(),
        }
    }
}

impl FederationConfig {
    /// The rules checked at start: issuers are `https://` URLs with a host and no query or
    /// fragment, each listed once. Field names are the config keys
    /// (`federation.issuers[1].url`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (i, issuer) in self.issuers.iter().enumerate() {
            let field = format!("federation.issuers[{i}].url");
            let url = &issuer.url;
            let parsed = url::Url::parse(url)
                .map_err(|e| ValidationError::new(&field, format!("{url:?} is not a URL: {e}")))?;
            if parsed.scheme() != "https" {
                return Err(ValidationError::new(
                    field,
                    format!("{url:?}: issuers are https:// only"),
                ));
            }
            if parsed.host_str().is_none_or(str::is_empty)
                || parsed.query().is_some()
                || parsed.fragment().is_some()
                || !parsed.username().is_empty()
                || parsed.password().is_some()
            {
                return Err(ValidationError::new(
                    field,
                    format!("{url:?}: an issuer is https://host[:port][/path], without user, query or fragment"),
                ));
            }
            if self.issuers[..i].iter().any(|o| o.url == *url) {
                return Err(ValidationError::new(
                    field,
                    format!("{url:?} is listed twice"),
                ));
            }
        }
        Ok(())
    }

    /// The kind of the configured issuer `url` (exact match); `None` if it is not configured.
    pub fn kind_of(&self, url: &str) -> Option<IssuerKind> {
        self.issuers.iter().find(|i| i.url == url).map(|i| i.kind)
    }
}

/// A [`TimeDelta`] as whole seconds.
mod seconds {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let secs = i64::deserialize(d)?;
        TimeDelta::try_seconds(secs)
            .ok_or_else(|| serde::de::Error::custom(format!("{secs} seconds is out of range")))
    }
}

/// An optional JSON value as its JSON text.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().map(Value::to_string).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| serde_json::from_str(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn conditions(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn github(pairs: &[(&str, &str)]) -> Federation {
        Federation::new(
            GITHUB_ISSUER,
            vec!["https://registry.example.com".into()],
            conditions(pairs),
        )
    }

    #[test]
    fn a_pinned_github_federation_is_valid_with_defaults() {
        let f = github(&[
            ("repository_owner_id", "1234567"),
            ("ref", "refs/heads/main"),
        ]);
        assert_eq!(f.validate(IssuerKind::Github), Ok(()));
        assert_eq!(f.max_id_token_lifetime, TimeDelta::seconds(3600));
        assert_eq!(f.session, TimeDelta::seconds(3600));
        let f = github(&[("repository_id", "42")]);
        assert_eq!(f.validate(IssuerKind::Github), Ok(()));
    }

    #[test]
    fn the_pinning_rule_names_the_claims_each_kind_needs() {
        // Only a repository pattern: admits every repository called acme/* of anyone.
        let f = github(&[("repository", "acme/*")]);
        let e = f.validate(IssuerKind::Github).unwrap_err();
        assert_eq!(e.field, "claims");
        assert!(
            e.rule.contains("repository_id or repository_owner_id"),
            "{e}"
        );
        assert!(e.rule.contains("github"), "{e}");
        // A wildcard in the pinned claim does not pin.
        let e = github(&[("repository_owner_id", "12*")])
            .validate(IssuerKind::Github)
            .unwrap_err();
        assert!(e.rule.contains("exact"), "{e}");
        let e = github(&[("repository_owner_id", "12?")])
            .validate(IssuerKind::Github)
            .unwrap_err();
        assert_eq!(e.field, "claims");
        // A name where the number belongs.
        let e = github(&[("repository_owner_id", "acme")])
            .validate(IssuerKind::Github)
            .unwrap_err();
        assert_eq!(e.field, "claims.repository_owner_id");
        assert!(e.rule.contains("numeric id"), "{e}");
        // GitLab.
        let gl = |pairs: &[(&str, &str)]| {
            let mut f = github(pairs);
            f.issuer = GITLAB_ISSUER.into();
            f.validate(IssuerKind::Gitlab)
        };
        assert!(gl(&[("project_id", "99")]).is_ok());
        assert!(gl(&[("namespace_id", "7")]).is_ok());
        let e = gl(&[("repository_owner_id", "7")]).unwrap_err();
        assert!(e.rule.contains("project_id or namespace_id"), "{e}");
        // Generic: an exact sub, any text.
        let gen = |pairs: &[(&str, &str)]| github(pairs).validate(IssuerKind::Generic);
        assert!(gen(&[("sub", "system:serviceaccount:ci:builder")]).is_ok());
        let e = gen(&[("sub", "system:serviceaccount:ci:*")]).unwrap_err();
        assert!(e.rule.contains("exact") && e.rule.contains("sub"), "{e}");
        assert!(gen(&[]).is_err());
    }

    #[test]
    fn audiences_limits_names_and_patterns_are_checked() {
        let mut f = github(&[("repository_id", "1")]);
        f.audiences.clear();
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "audiences"
        );
        f.audiences = vec!["".into()];
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "audiences[0]"
        );
        f.audiences = vec!["a".into(); MAX_AUDIENCES + 1];
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "audiences"
        );
        f.audiences = vec!["a".into()];
        f.issuer = String::new();
        assert_eq!(f.validate(IssuerKind::Github).unwrap_err().field, "issuer");

        let mut f = github(&[("repository_id", "1"), ("bad name", "x")]);
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "claims.bad name"
        );
        f.claims = conditions(&[("repository_id", "1"), ("ref", "")]);
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "claims.ref"
        );
        f.claims = conditions(&[("repository_id", "1"), ("ref", "a\nb")]);
        assert!(f
            .validate(IssuerKind::Github)
            .unwrap_err()
            .rule
            .contains("control"));
        f.claims = (0..=MAX_CLAIMS)
            .map(|i| (format!("c{i}"), "x".into()))
            .collect();
        assert_eq!(f.validate(IssuerKind::Github).unwrap_err().field, "claims");

        let mut f = github(&[("repository_id", "1")]);
        f.session = TimeDelta::seconds(86_401);
        let e = f.validate(IssuerKind::Github).unwrap_err();
        assert_eq!(e.field, "sessionSeconds");
        assert!(e.rule.contains("86400"), "{e}");
        f.session = TimeDelta::seconds(86_400);
        assert!(f.validate(IssuerKind::Github).is_ok());
        f.session = TimeDelta::zero();
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "sessionSeconds"
        );
        f.session = DEFAULT_SESSION;
        f.max_id_token_lifetime = TimeDelta::seconds(0);
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "maxIdTokenLifetimeSeconds"
        );
        f.max_id_token_lifetime = TimeDelta::days(2);
        assert_eq!(
            f.validate(IssuerKind::Github).unwrap_err().field,
            "maxIdTokenLifetimeSeconds"
        );
    }

    #[test]
    fn inline_jwks_must_be_a_set_of_public_rsa_or_p256_keys() {
        let mut f = github(&[("repository_id", "1")]);
        let check = |f: &mut Federation, jwks: Value| {
            f.jwks = Some(jwks);
            f.validate(IssuerKind::Github)
        };
        assert!(check(
            &mut f,
            json!({"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}]})
        )
        .is_ok());
        assert!(check(
            &mut f,
            json!({"keys": [{"kty": "EC", "kid": "e", "crv": "P-256", "x": "AA", "y": "AA"}]})
        )
        .is_ok());
        let e = check(
            &mut f,
            json!({"keys": [{"kty": "RSA", "n": "A", "e": "A"}]}),
        )
        .unwrap_err();
        assert!(e.rule.contains("kid"), "{e}");
        assert_eq!(check(&mut f, json!([])).unwrap_err().field, "jwks");
        assert_eq!(
            check(&mut f, json!({"keys": []})).unwrap_err().field,
            "jwks.keys"
        );
        let e = check(&mut f, json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).unwrap_err();
        assert_eq!(e.field, "jwks.keys[0]");
        let e = check(
            &mut f,
            json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "A", "y": "A"}]}),
        )
        .unwrap_err();
        assert!(e.rule.contains("P-256"), "{e}");
        let e = check(&mut f, json!({"keys": [{"kty": "RSA", "n": "A"}]})).unwrap_err();
        assert!(e.rule.contains("\"e\""), "{e}");
        let e = check(
            &mut f,
            json!({"keys": [{"kty": "RSA", "kid": "k", "n": "A", "e": "A", "d": "A"}]}),
        )
        .unwrap_err();
        assert!(e.rule.contains("private"), "{e}");
    }

    #[test]
    fn claims_compare_as_text_with_patterns_and_a_missing_claim_fails() {
        let f = github(&[
            ("repository_owner_id", "1234567"),
            ("repository", "acme/*"),
            ("ref", "refs/heads/main"),
            ("ref_protected", "true"),
            ("run_attempt", "?"),
        ]);
        let good = claims(json!({
            "repository_owner_id": 1234567,
            "repository": "acme/app",
            "ref": "refs/heads/main",
            "ref_protected": true,
            "run_attempt": "1",
        }));
        assert_eq!(f.check_claims(&good), []);
        let bad = claims(json!({
            "repository_owner_id": "1234567",
            "repository": "other/app",
            "ref": "refs/heads/dev",
            "ref_protected": false,
            "run_attempt": null,
        }));
        let failures = f.check_claims(&bad);
        let text: Vec<String> = failures.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "claim ref: \"refs/heads/dev\" does not match \"refs/heads/main\"",
                "claim ref_protected: \"false\" does not match \"true\"",
                "claim repository: \"other/app\" does not match \"acme/*\"",
                "claim run_attempt: missing",
            ]
        );
        assert_eq!(failures[3].value, None);
        // Case matters; an array never equals a plain value.
        let f = github(&[("repository_id", "1"), ("environment", "prod")]);
        let c = claims(json!({"repository_id": "1", "environment": "Prod"}));
        assert_eq!(f.check_claims(&c).len(), 1);
        let c = claims(json!({"repository_id": "1", "environment": ["prod"]}));
        assert_eq!(f.check_claims(&c)[0].value.as_deref(), Some("[\"prod\"]"));
        // A decimal number and a float compare as their text.
        let f = github(&[("repository_id", "1"), ("x", "1.5")]);
        assert_eq!(
            f.check_claims(&claims(json!({"repository_id": 1, "x": 1.5}))),
            []
        );
    }

    #[test]
    fn templates_take_lowercased_claims_and_grant_nothing_when_the_path_is_bad() {
        let c = claims(json!({
            "repository": "Acme/App",
            "empty": "",
            "star": "a*",
            "space": "a b",
            "id": 42,
        }));
        assert_eq!(
            expand_template("ci/${repository}/*", &c).as_deref(),
            Some("ci/acme/app/*")
        );
        assert_eq!(expand_template("ci/${id}", &c).as_deref(), Some("ci/42"));
        assert_eq!(
            expand_template("plain/path", &c).as_deref(),
            Some("plain/path")
        );
        assert_eq!(expand_template("ci/${missing}/*", &c), None);
        // An empty value or a wildcard would widen the grant.
        assert_eq!(expand_template("${empty}*", &c), None);
        assert_eq!(expand_template("ci/${star}", &c), None);
        assert_eq!(expand_template("ci/${space}", &c), None);
        assert_eq!(expand_template("ci/${repository", &c), None);
        assert!(is_template("ci/${repository}/*"));
        assert!(!is_template("ci/*"));
    }

    #[test]
    fn a_template_is_checked_when_the_scope_is_written() {
        assert_eq!(validate_template("ci/${repository}/*"), Ok(()));
        assert_eq!(validate_template("${project_path}"), Ok(()));
        assert!(validate_template("ci/${repository")
            .unwrap_err()
            .rule
            .contains("not closed"));
        assert!(validate_template("ci/${}/x").is_err());
        assert!(validate_template("ci/${a b}/x").is_err());
        assert_eq!(
            validate_template("CI/${repository}").unwrap_err().field,
            "name"
        );
    }

    #[test]
    fn a_federation_round_trips_through_json_and_postcard() {
        let mut f = github(&[("repository_id", "1")]);
        f.session = TimeDelta::seconds(600);
        f.jwks = Some(json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}));
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains("\"session\":600"), "{text}");
        assert_eq!(serde_json::from_str::<Federation>(&text).unwrap(), f);
        let bytes = postcard::to_stdvec(&f).unwrap();
        assert_eq!(postcard::from_bytes::<Federation>(&bytes).unwrap(), f);
    }

    #[test]
    fn the_config_defaults_to_github_and_gitlab_and_refuses_plain_http() {
        let c = FederationConfig::default();
        assert_eq!(c.kind_of(GITHUB_ISSUER), Some(IssuerKind::Github));
        assert_eq!(c.kind_of(GITLAB_ISSUER), Some(IssuerKind::Gitlab));
        assert_eq!(c.kind_of("https://gitlab.com/"), None);
        assert_eq!(c.validate(), Ok(()));
        let c: FederationConfig = toml::from_str("ca_file = \"/x.pem\"").unwrap();
        assert_eq!(c.issuers.len(), 2);
        let c: FederationConfig = toml::from_str("issuers = []").unwrap();
        assert!(c.issuers.is_empty());
        let with = |url: &str| FederationConfig {
            ca_file: None,
            issuers: vec![IssuerConfig {
                url: url.into(),
                kind: IssuerKind::Generic,
            }],
        };
        let e = with("http://issuer.example").validate().unwrap_err();
        assert_eq!(e.field, "federation.issuers[0].url");
        assert!(e.rule.contains("https:// only"), "{e}");
        assert!(with("https://a.example/?x=1").validate().is_err());
        assert!(with("https://u@a.example").validate().is_err());
        assert!(with("not a url").validate().is_err());
        assert!(with("https://kubernetes.default.svc.cluster.local")
            .validate()
            .is_ok());
        let mut twice = with("https://a.example");
        twice.issuers.push(twice.issuers[0].clone());
        assert!(twice.validate().unwrap_err().rule.contains("twice"));
        assert!(toml::from_str::<FederationConfig>(
            "[[issuers]]\nurl = \"https://a\"\nkind = \"other\""
        )
        .is_err());
        assert!(toml::from_str::<FederationConfig>("cafile = \"x\"").is_err());
    }
}
