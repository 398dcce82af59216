//! Registry JWTs: header `{typ, alg, kid}`, claims `iss sub aud exp nbf iat jti access`.
//!
//! Shaped for what registry 2.8 decodes (docs/token-endpoint.md): `aud` is a single
//! JSON string, `exp`/`nbf`/`iat` are JSON integers, all three parts are base64url without
//! padding.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::{KeyError, SigningKey};
use crate::domain::Grant;

/// Random bytes in a `jti` (128 bits, 22 base64url characters).
const JTI_BYTES: usize = 16;

#[derive(Serialize)]
struct Header<'a> {
    typ: &'static str,
    alg: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    access: &'a [Grant],
}

/// Signs access tokens for one issuer name and lifetime.
pub struct Issuer {
    key: SigningKey,
    issuer: String,
    ttl_seconds: u64,
    /// The base64url header: it depends only on the key, so it is encoded once.
    header_b64: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("key", &self.key)
            .field("issuer", &self.issuer)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer signing with `key`, naming itself `issuer` (the registry's
    /// `auth.token.issuer`), handing out tokens valid for `ttl_seconds`.
    pub fn new(key: SigningKey, issuer: String, ttl_seconds: u64) -> Issuer {
        let header = Header {
            typ: "JWT",
            alg: key.alg(),
            kid: key.kid(),
        };
        // Serializing a struct of strings to JSON cannot fail (no maps with non-string keys,
        // no fallible `Serialize` impls), so this `expect` is unreachable.
        let header_json = serde_json::to_vec(&header).expect("JWT header serializes");
        let header_b64 = URL_SAFE_NO_PAD.encode(header_json);
        Issuer {
            key,
            issuer,
            ttl_seconds,
            header_b64,
            rng: SystemRandom::new(),
        }
    }

    /// Lifetime of issued tokens in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// The signing key (for its `kid`, public key or [`SigningKey::verify_jwt`]).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// A signed JWT for `subject` (token name) and `audience` (service) carrying `access`.
    ///
    /// `iat` = `nbf` = `now` (whole seconds), `exp` = `iat` + TTL; `jti` is 128 random bits.
    pub fn issue(
        &self,
        subject: &str,
        audience: &str,
        access: &[Grant],
        now: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        let iat = now.timestamp();
        let ttl = i64::try_from(self.ttl_seconds).unwrap_or(i64::MAX);
        let mut jti = [0u8; JTI_BYTES];
        self.rng.fill(&mut jti).map_err(|_| KeyError::Sign)?;
        let claims = Claims {
            iss: &self.issuer,
            sub: subject,
            aud: audience,
            exp: iat.saturating_add(ttl),
            nbf: iat,
            iat,
            jti: URL_SAFE_NO_PAD.encode(jti),
            access,
        };
        // Same as for the header: strings, integers and `Grant` (derived, all strings) always
        // serialize; mapping the impossible error keeps this path free of panics.
        let claims_json = serde_json::to_vec(&claims).map_err(|_| KeyError::Sign)?;

        let mut jwt =
            String::with_capacity(self.header_b64.len() + claims_json.len() * 4 / 3 + 360);
        jwt.push_str(&self.header_b64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims_json, &mut jwt);
        let signature = self.key.sign(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
        Ok(jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::signing::tests::{openssl_spki, verify_with_spki, ES256_KEY, RS256_KEY};
    use chrono::TimeZone;
    use serde_json::{json, Value};

    fn grants() -> Vec<Grant> {
        vec![
            Grant {
                kind: "repository".into(),
                name: "team/app".into(),
                actions: vec!["pull".into(), "push".into()],
            },
            Grant {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            },
        ]
    }

    fn decode(part: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(part).unwrap()
    }

    /// Issues a token and checks every header and claim field, their JSON types and the
    /// signature (with ring and the openssl-written public key).
    fn check_token(pem: &str, alg: &str) {
        let key = SigningKey::from_pkcs8_pem(pem).unwrap();
        let kid = key.kid().to_string();
        let issuer = Issuer::new(key, "regauth".into(), 300);
        assert_eq!(issuer.ttl_seconds(), 300);
        let now = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()
            + chrono::Duration::milliseconds(999);
        let jwt = issuer
            .issue("ci-bot", "registry.local", &grants(), now)
            .unwrap();

        assert!(jwt
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')));
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);

        let header = String::from_utf8(decode(parts[0])).unwrap();
        assert_eq!(
            header,
            format!(r#"{{"typ":"JWT","alg":"{alg}","kid":"{kid}"}}"#)
        );

        let claims: Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        let obj = claims.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["access", "aud", "exp", "iat", "iss", "jti", "nbf", "sub"]
        );
        assert_eq!(claims["iss"], "regauth");
        assert_eq!(claims["sub"], "ci-bot");
        assert!(claims["aud"].is_string());
        assert_eq!(claims["aud"], "registry.local");
        let iat = now.timestamp();
        for (name, value) in [("iat", iat), ("nbf", iat), ("exp", iat + 300)] {
            assert!(claims[name].is_i64(), "{name} must be a JSON integer");
            assert_eq!(claims[name].as_i64(), Some(value), "{name}");
        }
        assert_eq!(decode(claims["jti"].as_str().unwrap()).len(), JTI_BYTES);
        assert_eq!(
            claims["access"],
            json!([
                {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
                {"type": "registry", "name": "catalog", "actions": ["*"]},
            ])
        );

        let signing_input = &jwt[..parts[0].len() + 1 + parts[1].len()];
        let sig = decode(parts[2]);
        let spki = openssl_spki(alg);
        assert!(verify_with_spki(alg, &spki, signing_input.as_bytes(), &sig));

        let (h, c) = issuer.key().verify_jwt(&jwt).unwrap();
        assert_eq!((h["kid"].as_str(), c), (Some(kid.as_str()), claims));
    }

    #[test]
    fn es256_token_has_every_field_and_verifies() {
        check_token(ES256_KEY, "ES256");
    }

    #[test]
    fn rs256_token_has_every_field_and_verifies() {
        check_token(RS256_KEY, "RS256");
    }

    #[test]
    fn empty_access_is_an_empty_array_and_jti_is_fresh() {
        let issuer = Issuer::new(
            SigningKey::from_pkcs8_pem(ES256_KEY).unwrap(),
            "i".into(),
            60,
        );
        let now = Utc::now();
        let a = issuer.issue("", "svc", &[], now).unwrap();
        let b = issuer.issue("", "svc", &[], now).unwrap();
        let claims = |jwt: &str| -> Value {
            serde_json::from_slice(&decode(jwt.split('.').nth(1).unwrap())).unwrap()
        };
        let raw = String::from_utf8(decode(a.split('.').nth(1).unwrap())).unwrap();
        assert!(raw.ends_with(r#","access":[]}"#), "{raw}");
        assert_ne!(claims(&a)["jti"], claims(&b)["jti"]);
        assert_eq!(claims(&a)["sub"], "");
    }

    #[test]
    fn tampered_tokens_fail_verification() {
        let issuer = Issuer::new(
            SigningKey::from_pkcs8_pem(ES256_KEY).unwrap(),
            "i".into(),
            60,
        );
        let jwt = issuer.issue("me", "svc", &grants(), Utc::now()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert!(issuer.key().verify_jwt(&forged).is_err());
        assert!(issuer.key().verify_jwt(&parts[..2].join(".")).is_err());
        let other = Issuer::new(SigningKey::generate_es256().unwrap().0, "i".into(), 60);
        assert!(other.key().verify_jwt(&jwt).is_err());
    }
}
