//! Registry JWTs: header `{typ, alg, kid}`, claims `iss sub aud exp nbf iat jti access`.
use chrono::{DateTime, Utc};

use super::{KeyError, SigningKey};
use crate::domain::Grant;

/// Signs access tokens for one issuer name and lifetime.
pub struct Issuer {
    _private: (),
}

impl Issuer {
    pub fn new(_key: SigningKey, _issuer: String, _ttl_seconds: u64) -> Issuer {
        todo!("jwt helper")
    }
    /// Lifetime of issued tokens in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        todo!("jwt helper")
    }
    /// A signed JWT for `subject` (token name) and `audience` (service) carrying `access`.
    pub fn issue(
        &self,
        _subject: &str,
        _audience: &str,
        _access: &[Grant],
        _now: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        todo!("jwt helper")
    }
}
