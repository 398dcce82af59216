//! The token entity and its lifecycle rules (status, expiry).
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
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
    fn from_str(_s: &str) -> Result<Self, Self::Err> {
        todo!("domain helper")
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
    pub fn is_expired(&self, _now: DateTime<Utc>) -> bool {
        todo!("domain helper")
    }

    /// Enabled and not expired.
    pub fn is_usable(&self, _now: DateTime<Utc>) -> bool {
        todo!("domain helper")
    }
}

/// An expiry set by a create or update must be at least one hour after `now`.
/// Field name in errors: `expiryDate`.
pub fn validate_expiry(_expiry: DateTime<Utc>, _now: DateTime<Utc>) -> Result<(), ValidationError> {
    todo!("domain helper")
}
