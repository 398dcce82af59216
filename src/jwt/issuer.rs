//! Registry JWTs: header `{typ, alg, kid, x5c}`, claims `iss sub aud exp nbf iat jti access`.
//!
//! Shaped for what registry 2.8 decodes (docs/token-endpoint.md): `aud` is a single
//! JSON string, `exp`/`nbf`/`iat` are JSON integers, all three parts are base64url without
//! padding.
//!
//! The header carries `x5c`, the signing certificate chain (standard base64 DER, the key's
//! certificate first), because it is the one way of naming the key that distribution 2.8, 3.0
//! and 3.1 all accept: each verifies the chain against its `rootcertbundle` before it looks at
//! `kid`. The `kid` is the libtrust key id, which 2.8 alone would need; 3.0 accepts neither
//! kid form for P-256 keys (distribution issue #4683), so a kid alone cannot serve every
//! version (docs/registry-versions.md).
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::{KeyError, SigningKey};
use crate::domain::Grant;

/// Random bytes in a `jti` (128 bits, 22 base64url characters).
const JTI_BYTES: usize = 16;

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
    /// The base64url header: it depends only on the key and its certificates, so it is
    /// encoded once.
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
        // A JSON value, not a derived `Serialize` struct: `Value`'s `Display` cannot fail, so
        // start-up needs no "unreachable" error path.
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "JWT".into());
        header.insert("alg".into(), key.alg().into());
        header.insert("kid".into(), key.kid().into());
        // Left out only for a key loaded without its certificate.
        let x5c: Vec<serde_json::Value> = key
            .certificates()
            .iter()
            .map(|der| STANDARD.encode(der).into())
            .collect();
        if !x5c.is_empty() {
            header.insert("x5c".into(), x5c.into());
        }
        let header_json = serde_json::Value::Object(header).to_string();
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

/// The issuer every token is signed by now, swapped when another key is activated. A read
/// costs a lock read and an `Arc` clone, so the token path stays one signature.
#[derive(Debug)]
pub struct CurrentIssuer(std::sync::RwLock<std::sync::Arc<Issuer>>);

impl CurrentIssuer {
    /// Starts with `issuer`.
    pub fn new(issuer: Issuer) -> CurrentIssuer {
        CurrentIssuer(std::sync::RwLock::new(std::sync::Arc::new(issuer)))
    }

    /// The issuer to sign with now.
    pub fn get(&self) -> std::sync::Arc<Issuer> {
        // A writer never panics while holding the lock (it only swaps an `Arc`), so a
        // poisoned lock still holds a whole issuer.
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Signs with `issuer` from now on.
    pub fn set(&self, issuer: Issuer) {
        let issuer = std::sync::Arc::new(issuer);
        match self.0.write() {
            Ok(mut guard) => *guard = issuer,
            Err(poisoned) => *poisoned.into_inner() = issuer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::libtrust_key_id;
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

        // Exactly these members (member order carries no meaning in JSON or JWS).
        let header: Value = serde_json::from_slice(&decode(parts[0])).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"typ": "JWT", "alg": alg, "kid": kid})
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

    /// The fixture key as `serve` loads it: from a key file, with a self-signed certificate
    /// created beside it.
    fn provisioned(pem: &str) -> (SigningKey, Vec<u8>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (key_path, cert_path) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        std::fs::write(&key_path, pem).unwrap();
        let key = crate::jwt::load_or_create(&key_path, &cert_path).unwrap();
        let cert = pem::parse(std::fs::read(&cert_path).unwrap()).unwrap();
        (key, cert.into_contents(), dir)
    }

    /// The header of a provisioned key's token: `typ`, `alg`, the libtrust `kid`, and `x5c`
    /// holding exactly the certificate file's DER (standard base64), whose public key is the
    /// one that verifies the token.
    fn check_x5c_header(pem: &str, alg: &str) {
        let (key, cert_der, _dir) = provisioned(pem);
        let kid = key.kid().to_string();
        let issuer = Issuer::new(key, "regauth".into(), 300);
        let jwt = issuer
            .issue("ci-bot", "registry.local", &grants(), Utc::now())
            .unwrap();
        let header_b64 = jwt.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&decode(header_b64)).unwrap();
        let mut keys: Vec<&str> = header
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["alg", "kid", "typ", "x5c"]);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], alg);
        assert_eq!(header["kid"], kid.as_str());
        assert_eq!(
            kid,
            libtrust_key_id(&openssl_spki(alg)),
            "kid is the libtrust key id"
        );
        let x5c = header["x5c"].as_array().unwrap();
        assert_eq!(x5c.len(), 1);
        let leaf = STANDARD.decode(x5c[0].as_str().unwrap()).unwrap();
        assert_eq!(leaf, cert_der, "x5c[0] is the certificate file's DER");
        let spki = openssl_spki(alg);
        assert!(
            leaf.windows(spki.len()).any(|w| w == spki.as_slice()),
            "the certificate carries the signing key"
        );
        let parts: Vec<&str> = jwt.split('.').collect();
        let signing_input = &jwt[..parts[0].len() + 1 + parts[1].len()];
        assert!(verify_with_spki(
            alg,
            &spki,
            signing_input.as_bytes(),
            &decode(parts[2])
        ));
        // Encoded once: every token of this issuer starts with the same header.
        let again = issuer.issue("x", "y", &[], Utc::now()).unwrap();
        assert!(again.starts_with(&format!("{header_b64}.")));
    }

    #[test]
    fn es256_header_carries_the_certificate_chain() {
        check_x5c_header(ES256_KEY, "ES256");
    }

    #[test]
    fn rs256_header_carries_the_certificate_chain() {
        check_x5c_header(RS256_KEY, "RS256");
    }

    #[test]
    fn x5c_lists_the_keys_certificate_first_then_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (key_path, cert_path) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        std::fs::write(&key_path, ES256_KEY).unwrap();
        let own = crate::jwt::load_or_create(&key_path, &cert_path).unwrap();
        let own_der = own.certificates()[0].clone();
        // Another key's certificate first in the file, as a bundle might list an issuer.
        let (other_key, other_cert, _other_dir) = provisioned(RS256_KEY);
        drop(other_key);
        let bundle = format!(
            "{}{}",
            pem::encode(&pem::Pem::new("CERTIFICATE", other_cert.clone())),
            std::fs::read_to_string(&cert_path).unwrap()
        );
        std::fs::write(&cert_path, bundle).unwrap();
        let key = crate::jwt::load_or_create(&key_path, &cert_path).unwrap();
        assert_eq!(key.certificates(), [own_der.clone(), other_cert.clone()]);
        let jwt = Issuer::new(key, "i".into(), 60)
            .issue("s", "a", &[], Utc::now())
            .unwrap();
        let header: Value =
            serde_json::from_slice(&decode(jwt.split('.').next().unwrap())).unwrap();
        assert_eq!(
            header["x5c"],
            json!([STANDARD.encode(own_der), STANDARD.encode(other_cert)])
        );
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
