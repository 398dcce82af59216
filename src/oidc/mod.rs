//! Verification of OIDC ID tokens for federated tokens (keyless CI, docs/keyless-ci.md).
//!
//! [`Verifier::verify`] checks an ID token against a token's [`Federation`]: the header
//! (RS256 or ES256 only; `jku`, `x5u` and `jwk` ignored), the signature with the issuer's
//! keys (discovery and the JWKS cache of [`cache`], or the federation's inline JWK Set with no
//! network at all), `iss` exactly, `aud`, `exp`/`nbf`/`iat` with 60 seconds of leeway, the
//! lifetime limit, then the claim conditions. A warm cache costs one signature and no network
//! call. [`Verifier::diagnose`] runs the same checks and collects every failure, for the
//! check endpoint.
//!
//! Only issuers of `[federation]` are ever contacted: regauth never fetches a URL an API
//! caller made up.
pub mod cache;
pub mod jwk;
#[cfg(test)]
mod tests;
pub mod token;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::federation::{ClaimFailure, Federation, FederationConfig, IssuerKind};
use crate::domain::ValidationError;
use crate::metrics::Metrics;
use cache::{Fetcher, IssuerCache, FETCH_TIMEOUT};
use jwk::{Key, KeySet};
use token::LEEWAY;

/// An ID token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedIdToken {
    /// Every claim of the token (claims are not secrets; the token itself is).
    pub claims: Map<String, Value>,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
    /// `iat`.
    pub issued_at: DateTime<Utc>,
    /// `sub`, if a string.
    pub subject: Option<String>,
}

/// Why an ID token was refused. [`Refusal::reason`] is the stable label of logs and metrics;
/// `Display` is the message for people (never the token itself).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Not a JWT, or a part of it cannot be read; says which.
    Malformed(String),
    /// An `alg` other than RS256 and ES256 (`none`, HS256…), or one the key does not fit.
    UnsupportedAlgorithm(String),
    /// No key of the issuer has this `kid` (after the one refetch allowed).
    UnknownKey { kid: String },
    /// The signature does not verify with the key.
    BadSignature,
    /// `iss` is not the federation's issuer.
    WrongIssuer { got: String },
    /// `aud` names none of the federation's audiences.
    WrongAudience { got: Vec<String> },
    /// `exp` (plus the leeway) has passed.
    Expired,
    /// `nbf` (minus the leeway) is still ahead.
    NotYetValid,
    /// `iat` is ahead of now by more than the leeway.
    IssuedInFuture,
    /// `exp - iat` is longer than `maxIdTokenLifetimeSeconds`.
    LifetimeTooLong { seconds: i64, max: i64 },
    /// Claim conditions that do not hold.
    Claims(Vec<ClaimFailure>),
    /// The federation's issuer is no longer in `[[federation.issuers]]`.
    IssuerNotConfigured { issuer: String },
    /// No usable key: the issuer could not be fetched and nothing is cached. Not the
    /// client's fault: the HTTP layer answers 503 with `Retry-After`.
    IssuerUnreachable { retry_after_seconds: u64 },
}

impl Refusal {
    /// Every reason label, for metrics series created up front.
    pub const REASONS: [&'static str; 13] = [
        "malformed",
        "unsupported_algorithm",
        "unknown_key",
        "bad_signature",
        "wrong_issuer",
        "wrong_audience",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "lifetime_too_long",
        "claim_mismatch",
        "issuer_not_configured",
        "issuer_unreachable",
    ];

    /// A stable snake_case label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        let i = match self {
            Refusal::Malformed(_) => 0,
            Refusal::UnsupportedAlgorithm(_) => 1,
            Refusal::UnknownKey { .. } => 2,
            Refusal::BadSignature => 3,
            Refusal::WrongIssuer { .. } => 4,
            Refusal::WrongAudience { .. } => 5,
            Refusal::Expired => 6,
            Refusal::NotYetValid => 7,
            Refusal::IssuedInFuture => 8,
            Refusal::LifetimeTooLong { .. } => 9,
            Refusal::Claims(_) => 10,
            Refusal::IssuerNotConfigured { .. } => 11,
            Refusal::IssuerUnreachable { .. } => 12,
        };
        Self::REASONS[i]
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(m) => write!(f, "the ID token is malformed: {m}"),
            Refusal::UnsupportedAlgorithm(a) => {
                write!(f, "algorithm {a:?} is not accepted (RS256 or ES256 with a key of its type)")
            }
            Refusal::UnknownKey { kid } => write!(f, "unknown key: no key of the issuer has kid {kid:?}"),
            Refusal::BadSignature => f.write_str("bad signature: the ID token's signature does not verify"),
            Refusal::WrongIssuer { got } => write!(f, "wrong issuer: iss {got:?} is not the federation's issuer"),
            Refusal::WrongAudience { got } => {
                write!(f, "wrong audience: aud {got:?} names none of the federation's audiences")
            }
            Refusal::Expired => f.write_str("expired: the ID token's exp has passed"),
            Refusal::NotYetValid => f.write_str("not yet valid: the ID token's nbf is ahead"),
            Refusal::IssuedInFuture => f.write_str("issued in the future: the ID token's iat is ahead"),
            Refusal::LifetimeTooLong { seconds, max } => write!(
                f,
                "lifetime too long: exp - iat is {seconds} s, more than maxIdTokenLifetimeSeconds {max}"
            ),
            Refusal::Claims(failures) => {
                for (i, c) in failures.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{c}")?;
                }
                Ok(())
            }
            Refusal::IssuerNotConfigured { issuer } => {
                write!(f, "issuer {issuer:?} is not in [[federation.issuers]]")
            }
            Refusal::IssuerUnreachable { retry_after_seconds } => write!(
                f,
                "issuer unreachable: no signing key could be fetched; retry in {retry_after_seconds} s"
            ),
        }
    }
}

/// Every failure of an ID token against a federation, for the check endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub valid: bool,
    /// One message per failure (each claim condition on its own).
    pub failures: Vec<String>,
    /// The token's claims as it states them (empty when it cannot be read).
    pub claims: Map<String, Value>,
}

/// A problem with `[federation]` found at start.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("federation.ca_file: cannot read {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("federation: cannot build the HTTPS client: {0}")]
    Client(String),
}

/// Verifies ID tokens; cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: FederationConfig,
    /// One cache per configured issuer, made at start: nothing else is ever fetched.
    caches: HashMap<String, Arc<IssuerCache>>,
    fetcher: Fetcher,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The certificates of a PEM file.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, VerifierError> {
    let err = |message: String| VerifierError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let blocks = pem::parse_many(&text).map_err(|e| err(e.to_string()))?;
    let certs: Vec<_> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| reqwest::Certificate::from_der(b.contents()).map_err(|e| err(e.to_string())))
        .collect::<Result<_, _>>()?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

impl Verifier {
    /// A verifier for the issuers of `config` (validated here), trusting the public web roots
    /// and `ca_file`'s certificates. Fetches nothing yet.
    pub fn new(
        config: &FederationConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Verifier, VerifierError> {
        Self::with_timeout(config, metrics, FETCH_TIMEOUT)
    }

    /// As [`Verifier::new`] with another timeout per request to an issuer (tests).
    pub fn with_timeout(
        config: &FederationConfig,
        metrics: Arc<Metrics>,
        timeout: std::time::Duration,
    ) -> Result<Verifier, VerifierError> {
        config.validate()?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("regauth/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            for cert in read_ca_file(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| VerifierError::Client(crate::error::Chain(&e).to_string()))?;
        for issuer in &config.issuers {
            metrics.jwks_issuer(&issuer.url);
        }
        let caches = config
            .issuers
            .iter()
            .map(|i| (i.url.clone(), Arc::new(IssuerCache::new(&i.url))))
            .collect();
        Ok(Verifier {
            inner: Arc::new(Inner {
                config: config.clone(),
                caches,
                fetcher: Fetcher { client, metrics },
            }),
        })
    }

    /// The kind of the configured issuer `issuer_url` (exact match); `None` when it is not
    /// configured, and the admin API answers 400.
    pub fn issuer_kind(&self, issuer_url: &str) -> Option<IssuerKind> {
        self.inner.config.kind_of(issuer_url)
    }

    /// The key `kid` for `fed`: from its inline JWK Set, or from its issuer's cache.
    async fn key(&self, fed: &Federation, kid: &str, now: DateTime<Utc>) -> Result<Key, Refusal> {
        let unknown = || Refusal::UnknownKey {
            kid: kid.to_string(),
        };
        let Some(cache) = self.inner.caches.get(&fed.issuer) else {
            return Err(Refusal::IssuerNotConfigured {
                issuer: fed.issuer.clone(),
            });
        };
        match &fed.jwks {
            Some(jwks) => KeySet::parse(jwks)
                .map_err(|e| Refusal::Malformed(format!("the federation's jwks: {e}")))?
                .get(kid)
                .cloned()
                .ok_or_else(unknown),
            None => cache.key(&self.inner.fetcher, kid, now).await,
        }
    }

    /// Checks `id_token` against `fed` at `now`: the first failure, or the verified token.
    /// No network call when the issuer's keys are cached (or `fed.jwks` is set).
    pub async fn verify(
        &self,
        fed: &Federation,
        id_token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedIdToken, Refusal> {
        let mut failures = Vec::new();
        let verified = self.check(fed, id_token, now, &mut failures, false).await;
        match failures.into_iter().next() {
            Some(refusal) => Err(refusal),
            None => verified.ok_or_else(|| Refusal::Malformed("no claims".into())),
        }
    }

    /// Every failure of `id_token` against `fed` at `now` that can be found, and its claims.
    pub async fn diagnose(
        &self,
        fed: &Federation,
        id_token: &str,
        now: DateTime<Utc>,
    ) -> Diagnosis {
        let mut failures = Vec::new();
        let verified = self.check(fed, id_token, now, &mut failures, true).await;
        let claims = token::parse(id_token).map(|p| p.claims).unwrap_or_default();
        let messages = failures
            .iter()
            .flat_map(|f| match f {
                Refusal::Claims(list) => list.iter().map(ToString::to_string).collect(),
                other => vec![other.to_string()],
            })
            .collect();
        Diagnosis {
            valid: verified.is_some() && failures.is_empty(),
            failures: messages,
            claims,
        }
    }

    /// The checks in order: the header, `iss`, the key and signature, `aud`, the times, the
    /// lifetime, the claims. Pushes failures to `out`; stops at the first unless `all` (then
    /// it stops only where nothing further can be read). The token when nothing failed.
    async fn check(
        &self,
        fed: &Federation,
        id_token: &str,
        now: DateTime<Utc>,
        out: &mut Vec<Refusal>,
        all: bool,
    ) -> Option<VerifiedIdToken> {
        macro_rules! fail {
            ($r:expr) => {{
                out.push($r);
                if !all {
                    return None;
                }
            }};
        }
        let parsed = match token::parse(id_token) {
            Ok(p) => p,
            Err(r) => {
                out.push(r);
                return None;
            }
        };
        let alg = match token::algorithm(&parsed.alg) {
            Ok(a) => Some(a),
            Err(r) => {
                fail!(r);
                None
            }
        };
        let claims = &parsed.claims;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let right_issuer = iss == fed.issuer;
        if !right_issuer {
            fail!(Refusal::WrongIssuer {
                got: iss.to_string()
            });
        }
        // The issuer's keys are only consulted for a token that claims to be the issuer's.
        if let (Some(alg), true) = (alg, right_issuer) {
            match self.key(fed, &parsed.kid, now).await {
                Ok(key) if !key.fits(alg) => fail!(Refusal::UnsupportedAlgorithm(format!(
                    "{} with a key of another type (kid {:?})",
                    alg.as_str(),
                    parsed.kid
                ))),
                Ok(key) => {
                    if !key.verify(alg, parsed.signed, &parsed.signature) {
                        fail!(Refusal::BadSignature);
                    }
                }
                Err(r) => fail!(r),
            }
        }
        let aud = token::audiences(claims);
        if !aud.iter().any(|a| fed.audiences.contains(a)) {
            fail!(Refusal::WrongAudience { got: aud });
        }
        let (exp, nbf, iat) = match (
            token::date(claims, "exp"),
            token::date(claims, "nbf"),
            token::date(claims, "iat"),
        ) {
            (Ok(Some(exp)), Ok(nbf), Ok(Some(iat))) => (exp, nbf, iat),
            (Ok(None), ..) => {
                out.push(Refusal::Malformed("no \"exp\" claim".into()));
                return None;
            }
            (_, _, Ok(None)) => {
                out.push(Refusal::Malformed("no \"iat\" claim".into()));
                return None;
            }
            (Err(r), ..) | (_, Err(r), _) | (.., Err(r)) => {
                out.push(r);
                return None;
            }
        };
        if now > exp + LEEWAY {
            fail!(Refusal::Expired);
        }
        if nbf.is_some_and(|nbf| now + LEEWAY < nbf) {
            fail!(Refusal::NotYetValid);
        }
        if iat > now + LEEWAY {
            fail!(Refusal::IssuedInFuture);
        }
        let lifetime = exp - iat;
        if lifetime > fed.max_id_token_lifetime {
            fail!(Refusal::LifetimeTooLong {
                seconds: lifetime.num_seconds(),
                max: fed.max_id_token_lifetime.num_seconds(),
            });
        }
        let failures = fed.check_claims(claims);
        if !failures.is_empty() {
            fail!(Refusal::Claims(failures));
        }
        Some(VerifiedIdToken {
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            claims: parsed.claims,
            expires_at: exp,
            issued_at: iat,
        })
    }
}
