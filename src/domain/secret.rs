//! Token secrets and refresh tokens: generation, checksum and hashing.
//!
//! Passwords are `rga_` + 43 base62 characters (256 random bits) + 6 base62 characters of
//! CRC32 over the preceding text, so a secret scanner can recognise and verify a leaked one.
//! Refresh tokens use the same format with prefix `rgr_`. Only SHA-256 of a secret is stored:
//! with 256 random bits a fast hash is right (a slow password hash would only slow the hot path).
use std::fmt;

use serde::{Deserialize, Serialize};

pub const PASSWORD_PREFIX: &str = "rga_";
pub const REFRESH_PREFIX: &str = "rgr_";

/// SHA-256 of a secret. Serialised as lowercase hex. Compared in constant time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hashes a presented secret.
    pub fn of(_secret: &str) -> SecretHash {
        todo!("domain helper")
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, _other: &SecretHash) -> bool {
        todo!("domain helper")
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl TryFrom<String> for SecretHash {
    type Error = String;
    fn try_from(_s: String) -> Result<Self, Self::Error> {
        todo!("domain helper")
    }
}

impl From<SecretHash> for String {
    fn from(_h: SecretHash) -> String {
        todo!("domain helper")
    }
}

/// A new random password (`rga_...`).
pub fn new_password() -> String {
    todo!("domain helper")
}

/// A new random refresh token (`rgr_...`).
pub fn new_refresh_token() -> String {
    todo!("domain helper")
}

/// Whether `secret` has a known prefix, the right length and a matching checksum.
pub fn has_valid_checksum(_secret: &str) -> bool {
    todo!("domain helper")
}
