//! The token entity and its lifecycle rules (status, expiry).
//!
//! Time is always passed in (`now`), so callers use an injectable clock and tests never sleep.
//!
//! Rotation: a token has one current secret and at most one previous secret, which also
//! authenticates until its grace period ends ([`Token::rotate`], [`Token::secret_matches`]).
//! Last use: when, from where and how a token last authenticated ([`LastUse`]); recorded by
//! the auth service off the request path.
//! Federation: a token authenticates with its password, or, when it has a [`Federation`], with
//! a CI job's OIDC ID token instead (keyless CI); such a token has no password anyone knows.
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::federation::{expand_template, Federation};
use super::{
    Description, Network, Owner, RepoPattern, Scope, ScopeTarget, SecretHash, TokenName,
    ValidationError,
};

/// At most this many scopes per token.
pub const MAX_SCOPES: usize = 100;

/// `enabled` (default) or `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Enabled,
    Disabled,
}

impl Status {
    /// The wire form: `enabled` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
        }
    }
}

impl FromStr for Status {
    type Err = ValidationError;
    /// `enabled` or `disabled`. Field name in errors: `status`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enabled" => Ok(Status::Enabled),
            "disabled" => Ok(Status::Disabled),
            _ => Err(ValidationError::new(
                "status",
                format!("must be 'enabled' or 'disabled', got {s:?}"),
            )),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest grace period a rotation may give the previous password.
pub const MAX_GRACE: TimeDelta = TimeDelta::days(7);

/// The password a rotation replaced, still accepted until `until` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub hash: SecretHash,
    pub until: DateTime<Utc>,
}

/// How a token authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// With its password (Basic auth or `grant_type=password`).
    Password,
    /// With a refresh token issued to it.
    Refresh,
}

impl GrantKind {
    /// `password` or `refresh_token` (the OAuth2 grant type names).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Password => "password",
            GrantKind::Refresh => "refresh_token",
        }
    }
}

impl fmt::Display for GrantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The last time a token authenticated successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUse {
    pub at: DateTime<Utc>,
    /// The client's address, when the server knew it.
    pub client: Option<IpAddr>,
    pub grant: GrantKind,
}

impl LastUse {
    /// The later of two (by `at`); `a` on a tie.
    pub fn latest(a: Option<LastUse>, b: Option<LastUse>) -> Option<LastUse> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if y.at > x.at { y } else { x }),
            (x, y) => x.or(y),
        }
    }
}

/// A stored access token. The secret exists only as its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: Uuid,
    /// Id of the registry the token belongs to.
    pub registry: String,
    pub name: TokenName,
    pub status: Status,
    pub expiry: Option<DateTime<Utc>>,
    pub scopes: Vec<Scope>,
    pub secret_hash: SecretHash,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub modified: DateTime<Utc>,
    pub modified_by: String,
    /// The password replaced by the last rotation, while it is in its grace period (kept
    /// after it ends until the next rotation; [`Token::previous_valid_until`] hides it).
    pub previous: Option<PreviousSecret>,
    /// The last successful authentication, as last written to the store.
    pub last_used: Option<LastUse>,
    /// The networks the token may authenticate from; empty: anywhere.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Who the token belongs to.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// What the token is for.
    #[serde(default)]
    pub description: Option<Description>,
    /// A federated token's federation: it authenticates with ID tokens that meet it, and
    /// `secret_hash` is then the hash of a random secret nobody was given (never rotated).
    /// Boxed: a password token, read on every request, stays as small as it was.
    #[serde(default)]
    pub federation: Option<Box<Federation>>,
}

impl Token {
    /// Whether `presented` (the SHA-256 of a presented password) is the current password, or
    /// the previous one within its grace period at `now`. Both compares are constant-time
    /// and both always run, so timing says nothing about which one matched.
    pub fn secret_matches(&self, presented: &SecretHash, now: DateTime<Utc>) -> bool {
        let current = self.secret_hash.ct_eq(presented);
        let previous = match &self.previous {
            Some(p) => p.hash.ct_eq(presented) & (now < p.until),
            None => false,
        };
        current | previous
    }

    /// When the previous password stops working, if it still works at `now`.
    pub fn previous_valid_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous.map(|p| p.until).filter(|&until| now < until)
    }

    /// Replaces the password by the one hashing to `new_hash`. With a positive `grace`, the
    /// old password keeps working until `now + grace`; any earlier previous password stops
    /// at once (at most one previous password). Name, id, scopes, status and expiry stay.
    pub fn rotate(
        &mut self,
        new_hash: SecretHash,
        grace: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<(), ValidationError> {
        validate_grace(grace)?;
        self.previous = (grace > TimeDelta::zero()).then_some(PreviousSecret {
            hash: self.secret_hash,
            until: now + grace,
        });
        self.secret_hash = new_hash;
        Ok(())
    }

    /// Sets the status. Disabling also ends a rotation's grace period for good: the previous
    /// password never works again, even if the token is enabled later (a leaked old password
    /// must not return after an emergency disable).
    pub fn set_status(&mut self, status: Status) {
        if status == Status::Disabled {
            self.previous = None;
        }
        self.status = status;
    }

    /// Expired at `now` (expiry reached: from that instant it authenticates nothing).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiry.is_some_and(|t| now >= t)
    }

    /// Enabled and not expired.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Enabled && !self.is_expired(now)
    }
}

/// `scopes` for a login whose ID token had `claims`: each `${claim}` scope with the claims
/// filled in (lowercased); a scope whose claim is missing, or whose result is no valid
/// pattern, grants nothing and is left out. Scopes without a placeholder stay as they are.
pub fn expand_scopes(
    scopes: &[Scope],
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Vec<Scope> {
    scopes
        .iter()
        .filter_map(|s| match &s.target {
            ScopeTarget::Repository(p) if p.is_template() => {
                let pattern: RepoPattern = expand_template(p.as_str(), claims)?.parse().ok()?;
                // A claim whose value looks like a placeholder must not make another one.
                (!pattern.is_template()).then_some(Scope {
                    target: ScopeTarget::Repository(pattern),
                    actions: s.actions,
                })
            }
            _ => Some(s.clone()),
        })
        .collect()
}

/// An expiry set by a create or update must be at least one hour after `now`.
/// Field name in errors: `expiryDate`.
pub fn validate_expiry(expiry: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ValidationError> {
    if expiry >= now + MIN_LIFETIME {
        Ok(())
    } else {
        Err(ValidationError::new(
            "expiryDate",
            "must be at least one hour in the future",
        ))
    }
}

/// A rotation's grace period: from 0 (none) to [`MAX_GRACE`]. Field name in errors:
/// `gracePeriodSeconds`.
pub fn validate_grace(grace: TimeDelta) -> Result<(), ValidationError> {
    if grace < TimeDelta::zero() || grace > MAX_GRACE {
        Err(ValidationError::new(
            "gracePeriodSeconds",
            format!(
                "must be between 0 and {} seconds (7 days), got {}",
                MAX_GRACE.num_seconds(),
                grace.num_seconds()
            ),
        ))
    } else {
        Ok(())
    }
}

/// Shortest lifetime an expiry set by a create or update may leave.
pub const MIN_LIFETIME: TimeDelta = TimeDelta::hours(1);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()
    }

    fn token(status: Status, expiry: Option<DateTime<Utc>>) -> Token {
        Token {
            id: Uuid::nil(),
            status,
            expiry,
            secret_hash: SecretHash::of("rga_x"),
            created: now(),
            modified: now(),
            ..crate::testing::token("default", "ci-bot")
        }
    }

    #[test]
    fn status_from_str() {
        assert_eq!("enabled".parse::<Status>(), Ok(Status::Enabled));
        assert_eq!("disabled".parse::<Status>(), Ok(Status::Disabled));
        for bad in ["", "Enabled", "DISABLED", "active", " enabled"] {
            let e = bad.parse::<Status>().unwrap_err();
            assert_eq!(e.field, "status");
            assert!(
                e.rule.starts_with("must be 'enabled' or 'disabled'"),
                "{}",
                e.rule
            );
        }
        assert_eq!(Status::default(), Status::Enabled);
        assert_eq!(Status::Disabled.to_string(), "disabled");
    }

    #[test]
    fn expiry_and_usability() {
        let second = TimeDelta::seconds(1);
        // (status, expiry, expired, usable)
        let cases = [
            (Status::Enabled, None, false, true),
            (Status::Disabled, None, false, false),
            (Status::Enabled, Some(now() + second), false, true),
            // From the instant it is reached.
            (Status::Enabled, Some(now()), true, false),
            (Status::Enabled, Some(now() - second), true, false),
            (Status::Disabled, Some(now() + second), false, false),
            (Status::Disabled, Some(now() - second), true, false),
        ];
        for (status, expiry, expired, usable) in cases {
            let t = token(status, expiry);
            assert_eq!(t.is_expired(now()), expired, "{status} {expiry:?}");
            assert_eq!(t.is_usable(now()), usable, "{status} {expiry:?}");
        }
    }

    #[test]
    fn expiry_must_be_an_hour_ahead() {
        let hour = TimeDelta::hours(1);
        let ms = TimeDelta::milliseconds(1);
        assert_eq!(validate_expiry(now() + hour, now()), Ok(()));
        assert_eq!(validate_expiry(now() + TimeDelta::days(365), now()), Ok(()));
        for bad in [now() + hour - ms, now(), now() - hour] {
            assert_eq!(
                validate_expiry(bad, now()),
                Err(ValidationError::new(
                    "expiryDate",
                    "must be at least one hour in the future"
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn rotation_keeps_the_previous_password_for_the_grace_period_only() {
        let (old, new, newer) = (
            SecretHash::of("rga_old"),
            SecretHash::of("rga_new"),
            SecretHash::of("rga_newer"),
        );
        let mut t = token(Status::Enabled, None);
        t.secret_hash = old;
        let before = t.clone();
        let hour = TimeDelta::hours(1);
        t.rotate(new, hour, now()).unwrap();
        // Only the secret and the previous one changed.
        assert_eq!(
            Token {
                secret_hash: old,
                previous: None,
                ..t.clone()
            },
            before
        );
        assert!(t.secret_matches(&new, now()));
        assert!(t.secret_matches(&old, now()));
        assert!(t.secret_matches(&old, now() + hour - TimeDelta::milliseconds(1)));
        assert!(
            !t.secret_matches(&old, now() + hour),
            "grace ends at its instant"
        );
        assert!(t.secret_matches(&new, now() + TimeDelta::days(30)));
        assert!(!t.secret_matches(&SecretHash::of("rga_other"), now()));
        assert_eq!(t.previous_valid_until(now()), Some(now() + hour));
        assert_eq!(t.previous_valid_until(now() + hour), None);

        // Rotating again: the first password stops at once, the second gets the new grace.
        let later = now() + TimeDelta::minutes(5);
        t.rotate(newer, TimeDelta::minutes(10), later).unwrap();
        assert!(!t.secret_matches(&old, later));
        assert!(t.secret_matches(&new, later));
        assert!(t.secret_matches(&newer, later));
        assert_eq!(
            t.previous_valid_until(later),
            Some(later + TimeDelta::minutes(10))
        );

        // No grace: only the new password works.
        t.rotate(old, TimeDelta::zero(), later).unwrap();
        assert_eq!(t.previous, None);
        assert!(!t.secret_matches(&newer, later));
        assert!(!t.secret_matches(&new, later));
        assert!(t.secret_matches(&old, later));
    }

    #[test]
    fn disabling_ends_the_grace_period_for_good() {
        let mut t = token(Status::Enabled, None);
        let old = t.secret_hash;
        t.rotate(SecretHash::of("rga_new"), TimeDelta::hours(1), now())
            .unwrap();
        assert!(t.secret_matches(&old, now()));
        t.set_status(Status::Enabled);
        assert!(t.secret_matches(&old, now()), "enabling keeps it");
        t.set_status(Status::Disabled);
        t.set_status(Status::Enabled);
        assert_eq!(t.previous, None);
        assert!(!t.secret_matches(&old, now()));
        assert!(t.secret_matches(&SecretHash::of("rga_new"), now()));
    }

    #[test]
    fn grace_is_at_most_seven_days() {
        assert_eq!(validate_grace(TimeDelta::zero()), Ok(()));
        assert_eq!(validate_grace(MAX_GRACE), Ok(()));
        let mut t = token(Status::Enabled, None);
        for bad in [TimeDelta::seconds(-1), MAX_GRACE + TimeDelta::seconds(1)] {
            let e = t.rotate(SecretHash::of("rga_x"), bad, now()).unwrap_err();
            assert_eq!(e.field, "gracePeriodSeconds");
            assert!(e.rule.contains("between 0 and 604800"), "{}", e.rule);
        }
        assert_eq!(t.secret_hash, SecretHash::of("rga_x"), "refused: unchanged");
    }

    #[test]
    fn latest_use_wins() {
        let at = |m| LastUse {
            at: now() + TimeDelta::minutes(m),
            client: None,
            grant: GrantKind::Password,
        };
        assert_eq!(LastUse::latest(None, None), None);
        assert_eq!(LastUse::latest(Some(at(1)), None), Some(at(1)));
        assert_eq!(LastUse::latest(None, Some(at(1))), Some(at(1)));
        assert_eq!(LastUse::latest(Some(at(1)), Some(at(2))), Some(at(2)));
        assert_eq!(LastUse::latest(Some(at(2)), Some(at(1))), Some(at(2)));
        assert_eq!(GrantKind::Refresh.to_string(), "refresh_token");
    }

    /// Issue 18: `${claim}` scopes confine each repository of an organisation to its own
    /// path; a missing claim or a value that makes no valid path grants nothing.
    #[test]
    fn templated_scopes_expand_per_login() {
        let scopes = vec![
            Scope::parse(
                "repository",
                "ci/${repository}/*",
                &["pull".into(), "push".into()],
            )
            .unwrap(),
            Scope::parse("repository", "base/*", &["pull".into()]).unwrap(),
        ];
        let claims = |v: serde_json::Value| v.as_object().unwrap().clone();
        let names =
            |s: Vec<Scope>| -> Vec<String> { s.iter().map(|s| s.name_str().to_string()).collect() };
        assert_eq!(
            names(expand_scopes(
                &scopes,
                &claims(serde_json::json!({"repository": "Acme/App"}))
            )),
            ["ci/acme/app/*", "base/*"]
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"repository": "acme app"}),
            serde_json::json!({"repository": "*"}),
            serde_json::json!({"repository": "${repository}"}),
        ] {
            assert_eq!(
                names(expand_scopes(&scopes, &claims(bad.clone()))),
                ["base/*"],
                "{bad}"
            );
        }
    }

    #[test]
    fn token_serde_round_trip() {
        let t = token(Status::Disabled, Some(now() + TimeDelta::hours(2)));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Token>(&json).unwrap(), t);
    }
}
