//! Federated tokens on the command line: the `--oidc-*` options of `token create`, which turn
//! into the token's `properties.federation`, and `token check-oidc`, which asks the server
//! whether an ID token would be accepted and why not.
//!
//! As for scopes, the checks here catch what can only be a mistake (a claim without `=`, a
//! claim named twice, an `http://` issuer, a session over 24 hours, a file that is not a JWK
//! Set or holds no JWT) before any request. What depends on the server (which issuers it
//! trusts, the identity each kind must pin) is the server's to say; its message is shown.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::TimeDelta;
use clap::Args;
use reqwest::Method;

use super::client::CliError;
use super::commands::Ctx;
use super::output::{self, Output};
use crate::api::{Federation, FederationCheck, FederationCheckResult};

/// The longest session and ID token lifetime the server accepts (`sessionSeconds`,
/// `maxIdTokenLifetimeSeconds`): 24 hours.
const MAX_SECONDS: i64 = 86_400;

/// The `--oidc-*` options of `token create`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "CI identity (a federated token: no password)")]
pub struct OidcArgs {
    /// Make a federated token: no password; a CI job logs in with an OIDC ID token from this
    /// issuer (its `iss`, https://): https://token.actions.githubusercontent.com for GitHub
    /// Actions, https://gitlab.com for GitLab.com; it must be one of the server's
    /// [[federation.issuers]].
    #[arg(
        long = "oidc-issuer",
        value_name = "URL",
        value_parser = parse_issuer,
        requires = "oidc_audiences",
        conflicts_with = "password_file"
    )]
    pub oidc_issuer: Option<String>,
    /// An audience the ID token must be for (its `aud`), such as the registry's URL.
    /// Repeatable: one of them is enough.
    #[arg(
        long = "oidc-audience",
        value_name = "AUD",
        value_parser = parse_audience,
        requires = "oidc_issuer"
    )]
    pub oidc_audiences: Vec<String>,
    /// A claim condition: the ID token's claim KEY must match PATTERN (`*` and `?` as in
    /// scopes; numbers and true/false compare as text). Repeatable: all must hold. The
    /// identity must be pinned exactly: repository_id or repository_owner_id (GitHub),
    /// project_id or namespace_id (GitLab), sub (other issuers).
    #[arg(
        long = "oidc-claim",
        value_name = "KEY=PATTERN",
        requires = "oidc_issuer"
    )]
    pub oidc_claims: Vec<ClaimArg>,
    /// How long a docker login made with an ID token lasts (1h, 30m, 8h; at most 24h).
    /// Default: 1h.
    #[arg(
        long = "oidc-session",
        value_name = "DURATION",
        value_parser = parse_session,
        requires = "oidc_issuer"
    )]
    pub oidc_session: Option<i64>,
    /// Refuse ID tokens that live longer than this (exp - iat; 10m, 1h, 6h; at most 24h).
    /// Default: 1h.
    #[arg(
        long = "oidc-max-lifetime",
        value_name = "DURATION",
        value_parser = parse_lifetime,
        requires = "oidc_issuer"
    )]
    pub oidc_max_lifetime: Option<i64>,
    /// Check signatures with this JWK Set file (`{"keys": [...]}`) instead of fetching the
    /// issuer's keys: for issuers regauth cannot reach, such as a Kubernetes API server
    /// (`kubectl get --raw /openid/v1/jwks`).
    #[arg(long = "oidc-jwks", value_name = "FILE", requires = "oidc_issuer")]
    pub oidc_jwks: Option<PathBuf>,
}

impl OidcArgs {
    /// The federation these options describe, `None` without `--oidc-issuer`; reads and
    /// checks the `--oidc-jwks` file.
    pub fn federation(&self) -> Result<Option<Federation>, CliError> {
        let Some(issuer) = &self.oidc_issuer else {
            return Ok(None);
        };
        let mut claims = BTreeMap::new();
        for c in &self.oidc_claims {
            if claims.insert(c.key.clone(), c.pattern.clone()).is_some() {
                return Err(CliError::Usage(format!(
                    "--oidc-claim {}: the claim is given twice; a claim has one pattern",
                    c.key
                )));
            }
        }
        let jwks = self.oidc_jwks.as_deref().map(read_jwks).transpose()?;
        Ok(Some(Federation {
            issuer: issuer.clone(),
            audiences: self.oidc_audiences.clone(),
            claims,
            max_id_token_lifetime_seconds: self.oidc_max_lifetime,
            session_seconds: self.oidc_session,
            jwks,
        }))
    }
}

/// `--oidc-claim KEY=PATTERN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimArg {
    pub key: String,
    pub pattern: String,
}

impl FromStr for ClaimArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((key, pattern)) = s.split_once('=') else {
            return Err(format!(
                "{s:?} is not KEY=PATTERN (for example repository_owner_id=1234567 or \
                 ref=refs/heads/main)"
            ));
        };
        if key.is_empty() {
            return Err(format!("{s:?}: the claim name before '=' is empty"));
        }
        if let Some(bad) = key.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?}: a claim name has no {bad:?}"));
        }
        if pattern.is_empty() {
            return Err(format!("{s:?}: the pattern after '=' is empty"));
        }
        if pattern.chars().any(char::is_control) {
            return Err(format!("{s:?}: the pattern has a control character"));
        }
        Ok(ClaimArg {
            key: key.to_string(),
            pattern: pattern.to_string(),
        })
    }
}

/// `--oidc-issuer`: an `https://` URL with a host (the server trusts no other kind).
fn parse_issuer(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "{text:?}: an issuer is an https:// URL (regauth fetches its keys over TLS only)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?}: the URL has no host"));
    }
    // As typed: the ID token's `iss` must equal it exactly, so no normalising here.
    Ok(text.to_string())
}

/// `--oidc-audience`: any non-empty text without spaces or control characters.
fn parse_audience(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("an audience is not empty".into());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?}: an audience has no spaces"));
    }
    Ok(text.to_string())
}

/// A positive duration in seconds.
fn positive_seconds(text: &str) -> Result<i64, String> {
    let d: TimeDelta = crate::api::parse_duration(text)?;
    if d <= TimeDelta::zero() {
        return Err(format!("{text:?}: must be longer than 0"));
    }
    Ok(d.num_seconds())
}

/// A positive duration of at most 24 hours, in seconds; `what` names it in the error.
fn up_to_a_day(text: &str, what: &str) -> Result<i64, String> {
    let s = positive_seconds(text)?;
    if s > MAX_SECONDS {
        return Err(format!(
            "{text:?}: {what} at most 24h ({MAX_SECONDS} seconds)"
        ));
    }
    Ok(s)
}

/// `--oidc-session`: more than 0, at most 24 hours.
fn parse_session(text: &str) -> Result<i64, String> {
    up_to_a_day(text, "a session lasts")
}

/// `--oidc-max-lifetime`: more than 0, at most 24 hours.
fn parse_lifetime(text: &str) -> Result<i64, String> {
    up_to_a_day(text, "the longest ID token lifetime is")
}

/// Reads a JWK Set file: a JSON object with a non-empty `keys` array.
fn read_jwks(path: &Path) -> Result<serde_json::Value, CliError> {
    let bad = |why: String| CliError::Usage(format!("--oidc-jwks {}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    match v.get("keys").and_then(serde_json::Value::as_array) {
        Some(keys) if !keys.is_empty() => Ok(v),
        Some(_) => Err(bad("the JWK Set has no keys".into())),
        None => Err(bad(
            "not a JWK Set (a JSON object with a \"keys\" array, as \
             `kubectl get --raw /openid/v1/jwks` prints)"
                .into(),
        )),
    }
}

/// Reads the ID token of `--id-token FILE` (`-` for stdin): one JWT, surrounding whitespace
/// ignored. The token itself never appears in an error.
fn read_id_token(path: &Path) -> Result<String, CliError> {
    let name = path.display();
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| CliError::Usage(format!("--id-token {name}: {e}")))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "--id-token {name}: the file is empty"
        )));
    }
    let parts = token.split('.').count();
    let base64url = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if parts != 3 || !token.chars().all(base64url) {
        return Err(CliError::Usage(format!(
            "--id-token {name}: does not hold an ID token (a JWT: three base64url parts \
             separated by '.', on one line)"
        )));
    }
    Ok(token.to_string())
}

/// `token check-oidc NAME --id-token FILE`: whether the federated token would accept the ID
/// token; prints the failures and the claims. Not accepted is an error (exit 1), after the
/// output, so scripts can test it.
pub fn check(ctx: &mut Ctx, token: &str, id_token_file: &Path) -> Result<(), CliError> {
    let id_token = read_id_token(id_token_file)?;
    let reg = ctx.registry()?;
    let t = ctx.find_token(&reg, token)?;
    if t.properties.federation.is_none() {
        return Err(CliError::Usage(format!(
            "token {} has a password, not a CI identity: only a federated token (created with \
             --oidc-issuer) takes ID tokens",
            t.name()
        )));
    }
    let id = t.id.to_string();
    let body = FederationCheck { id_token };
    let d: FederationCheckResult = ctx.client.send_json(
        Method::POST,
        &["registries", &reg, "tokens", &id, "federation", "check"],
        &body,
    )?;
    if ctx.output == Output::Json {
        output::json(ctx.out, &d)?;
    } else {
        output::diagnosis(ctx.out, t.name(), &d)?;
    }
    if d.valid {
        Ok(())
    } else {
        Err(CliError::Other(format!(
            "token {} does not accept this ID token ({} failure{})",
            t.name(),
            d.failures.len(),
            if d.failures.len() == 1 { "" } else { "s" }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_key_equals_pattern() {
        let c: ClaimArg = "ref=refs/heads/main".parse().unwrap();
        assert_eq!(
            (c.key.as_str(), c.pattern.as_str()),
            ("ref", "refs/heads/main")
        );
        // Only the first '=' splits: a pattern may hold one.
        let c: ClaimArg = "sub=repo:acme/app:ref=x".parse().unwrap();
        assert_eq!(c.pattern, "repo:acme/app:ref=x");
        for (bad, why) in [
            ("ref", "is not KEY=PATTERN"),
            ("=main", "claim name before '=' is empty"),
            ("ref=", "pattern after '=' is empty"),
            ("my ref=x", "a claim name has no ' '"),
            ("ref=a\u{7}", "control character"),
        ] {
            let e = bad.parse::<ClaimArg>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn issuers_are_https_urls_kept_as_typed() {
        assert_eq!(
            parse_issuer("https://token.actions.githubusercontent.com").unwrap(),
            "https://token.actions.githubusercontent.com"
        );
        assert_eq!(
            parse_issuer("https://gitlab.example.com/").unwrap(),
            "https://gitlab.example.com/"
        );
        assert!(parse_issuer("http://gitlab.com")
            .unwrap_err()
            .contains("https://"));
        assert!(parse_issuer("gitlab.com")
            .unwrap_err()
            .contains("not a URL"));
    }

    #[test]
    fn sessions_and_lifetimes_are_durations_within_limits() {
        assert_eq!(parse_session("1h"), Ok(3600));
        assert_eq!(parse_session("24h"), Ok(86_400));
        assert!(parse_session("25h").unwrap_err().contains("at most 24h"));
        assert!(parse_session("0").unwrap_err().contains("longer than 0"));
        assert!(parse_session("soon").is_err());
        assert_eq!(parse_lifetime("10m"), Ok(600));
        assert!(parse_lifetime("2d").unwrap_err().contains("at most 24h"));
        assert!(parse_audience("a b").is_err());
    }

    #[test]
    fn a_federation_from_the_options() {
        let args = OidcArgs {
            oidc_issuer: Some("https://gitlab.com".into()),
            oidc_audiences: vec!["https://registry.example.com".into()],
            oidc_claims: vec![
                "namespace_id=4567".parse().unwrap(),
                "ref_protected=true".parse().unwrap(),
            ],
            oidc_session: Some(7200),
            ..OidcArgs::default()
        };
        let f = args.federation().unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({
                "issuer": "https://gitlab.com",
                "audiences": ["https://registry.example.com"],
                "claims": {"namespace_id": "4567", "ref_protected": "true"},
                "sessionSeconds": 7200
            })
        );
        assert_eq!(OidcArgs::default().federation().unwrap(), None);
        let twice = OidcArgs {
            oidc_claims: vec!["ref=a".parse().unwrap(), "ref=b".parse().unwrap()],
            ..args
        };
        let e = twice.federation().unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn jwks_and_id_token_files_are_checked_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let good = write("jwks.json", r#"{"keys": [{"kty": "EC", "kid": "k1"}]}"#);
        assert_eq!(read_jwks(&good).unwrap()["keys"][0]["kid"], "k1");
        for (text, why) in [
            ("not json", "not JSON"),
            (r#"{"keys": []}"#, "has no keys"),
            (r#"[{"kty": "EC"}]"#, "not a JWK Set"),
        ] {
            let e = read_jwks(&write("bad.json", text)).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
        assert!(read_jwks(&dir.path().join("missing.json")).is_err());

        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        assert_eq!(
            read_id_token(&write("t", &format!("{jwt}\n"))).unwrap(),
            jwt
        );
        for (text, why) in [
            ("", "empty"),
            ("  \n", "empty"),
            ("password", "JWT"),
            ("a.b c.d", "JWT"),
        ] {
            let e = read_id_token(&write("t", text)).unwrap_err();
            assert!(e.to_string().contains(why), "{text:?}: {e}");
            assert!(
                !e.to_string().contains("password"),
                "the content is never shown"
            );
        }
    }
}
