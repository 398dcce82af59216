//! JSON Web Keys (RFC 7517) as ring verifies them: RSA (`n`, `e`) for RS256 and P-256 EC
//! (`x`, `y`) for ES256. Nothing else is read: no symmetric keys, no `x5c` chains.
//!
//! ring is already the crate's crypto (`jwt` signs with it) and verifies both algorithms from
//! the raw key components, so no second JWT crate is needed; the JOSE part left (splitting the
//! token, base64url, which key fits which `alg`) is small and written in `token.rs` and here.
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// The two algorithms accepted in an ID token's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
}

impl Algorithm {
    /// `RS256` or `ES256`; anything else (`none`, `HS256`, `PS256`, `ES384`…) is `None`.
    pub fn parse(alg: &str) -> Option<Algorithm> {
        match alg {
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            _ => None,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }
}

/// A public key ready to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed P-256 point `04 || x || y`.
    P256 { point: Vec<u8> },
}

/// A key of a JWK Set with its optional `alg` restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub key: PublicKey,
    /// The JWK's `alg`, when it names one: the token's `alg` must then be this.
    pub alg: Option<String>,
}

impl Key {
    /// Whether this key may verify a token of `alg`: the key type fits (RSA for RS256,
    /// P-256 for ES256) and the JWK's own `alg`, if any, is the same.
    pub fn fits(&self, alg: Algorithm) -> bool {
        let type_fits = matches!(
            (&self.key, alg),
            (PublicKey::Rsa { .. }, Algorithm::Rs256) | (PublicKey::P256 { .. }, Algorithm::Es256)
        );
        type_fits && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
    }

    /// Whether `signature` over `message` verifies with this key under `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            PublicKey::P256 { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

/// The keys of a JWK Set by `kid`. Keys without a `kid`, for encryption (`use` other than
/// `sig`), of another type or curve, or damaged, are left out: a token's `kid` must match a
/// key exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: HashMap<String, Key>,
}

impl KeySet {
    /// The usable keys of `jwks` (`{"keys": [...]}`); `Err` when it is not a JWK Set at all.
    pub fn parse(jwks: &Value) -> Result<KeySet, String> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("not a JWK Set: no \"keys\" array")?;
        let keys = list
            .iter()
            .filter_map(|k| {
                let kid = k.get("kid")?.as_str()?.to_string();
                Some((kid, parse_key(k)?))
            })
            .collect();
        Ok(KeySet { keys })
    }

    /// The key with exactly this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.get(kid)
    }

    /// How many usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn b64(v: &Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(v.get(name)?.as_str()?).ok()
}

/// One JWK, if it is a public signing key regauth can use.
fn parse_key(k: &Value) -> Option<Key> {
    if k.get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return None;
    }
    let key = match k.get("kty")?.as_str()? {
        "RSA" => {
            let n = b64(k, "n")?;
            let e = b64(k, "e")?;
            if n.is_empty() || e.is_empty() {
                return None;
            }
            PublicKey::Rsa { n, e }
        }
        "EC" if k.get("crv")?.as_str()? == "P-256" => {
            let x = b64(k, "x")?;
            let y = b64(k, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::P256 { point }
        }
        _ => return None,
    };
    let alg = k.get("alg").and_then(Value::as_str).map(str::to_string);
    Some(Key { key, alg })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_public_signing_keys_with_a_kid_are_kept() {
        let set = KeySet::parse(&json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB", "alg": "RS256"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"},
        ]}))
        .unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.get("r").is_some() && set.get("e").is_some());
        assert!(set.get("R").is_none());
        assert!(KeySet::parse(&json!({"no": []})).is_err());
    }

    #[test]
    fn a_key_fits_only_its_own_algorithm() {
        let rsa = Key {
            key: PublicKey::Rsa {
                n: vec![1],
                e: vec![1],
            },
            alg: None,
        };
        let ec = Key {
            key: PublicKey::P256 { point: vec![4; 65] },
            alg: None,
        };
        assert!(rsa.fits(Algorithm::Rs256) && !rsa.fits(Algorithm::Es256));
        assert!(ec.fits(Algorithm::Es256) && !ec.fits(Algorithm::Rs256));
        let pinned = Key {
            alg: Some("PS256".into()),
            ..rsa.clone()
        };
        assert!(!pinned.fits(Algorithm::Rs256));
        assert!(!ec.verify(Algorithm::Rs256, b"m", b"s"));
        assert_eq!(Algorithm::parse("none"), None);
        assert_eq!(Algorithm::parse("HS256"), None);
        assert_eq!(Algorithm::parse("rs256"), None);
        assert_eq!(Algorithm::parse("ES256"), Some(Algorithm::Es256));
    }
}
