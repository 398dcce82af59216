//! The token entity and its lifecycle rules (status, expiry).
//!
//! Time is always passed in (`now`), so callers use an injectable clock and tests never sleep.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Scope, SecretHash, TokenName, ValidationError};

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
}

impl Token {
    /// Expired at `now` (expiry reached: from that instant it authenticates nothing).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiry.is_some_and(|t| now >= t)
    }

    /// Enabled and not expired.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Enabled && !self.is_expired(now)
    }
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
            registry: "default".into(),
            name: "ci-bot".parse().unwrap(),
            status,
            expiry,
            scopes: vec![],
            secret_hash: SecretHash::of("rga_x"),
            created: now(),
            created_by: "admin".into(),
            modified: now(),
            modified_by: "admin".into(),
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
    fn token_serde_round_trip() {
        let t = token(Status::Disabled, Some(now() + TimeDelta::hours(2)));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Token>(&json).unwrap(), t);
    }
}
