//! The parts of a compact JWS ID token (`header.payload.signature`), decoded but not yet
//! trusted, and the time rules of its claims.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::jwk::Algorithm;
use super::Refusal;

/// Longest ID token read, in bytes (GitHub's are about 1.5 KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The leeway of `exp`, `nbf` and `iat` for clocks that differ.
pub const LEEWAY: TimeDelta = TimeDelta::seconds(60);

/// A decoded, unverified ID token.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// `header.payload`, the signed bytes.
    pub signed: &'a [u8],
    pub signature: Vec<u8>,
    /// The header's `alg`, as written.
    pub alg: String,
    /// The header's `kid` (the empty string when absent, which matches no key).
    pub kid: String,
    pub claims: Map<String, Value>,
}

fn malformed(what: impl Into<String>) -> Refusal {
    Refusal::Malformed(what.into())
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(malformed(format!("the {what} is not a JSON object"))),
    }
}

/// Splits and decodes `token`. The header's `jku`, `x5u`, `jwk` and `x5c` are ignored: keys
/// come only from the issuer's JWKS or the federation's inline one. A `crit` header names
/// extensions regauth does not understand, so it refuses the token (RFC 7515, 4.1.11).
pub fn parse(token: &str) -> Result<Parsed<'_>, Refusal> {
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!("longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not a JWT of three dot-separated parts"));
    };
    let header = decode_object(h, "header")?;
    let claims = decode_object(p, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| malformed("the signature is not base64url"))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(malformed("the header has no \"alg\"")),
    };
    if header.contains_key("crit") {
        return Err(malformed(
            "the header has \"crit\" extensions regauth does not support",
        ));
    }
    let kid = match header.get("kid") {
        None => String::new(),
        Some(Value::String(k)) => k.clone(),
        Some(_) => return Err(malformed("the header's \"kid\" is not a string")),
    };
    Ok(Parsed {
        signed: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature,
        alg,
        kid,
        claims,
    })
}

/// The header's algorithm, if accepted.
pub fn algorithm(alg: &str) -> Result<Algorithm, Refusal> {
    Algorithm::parse(alg).ok_or_else(|| Refusal::UnsupportedAlgorithm(alg.to_string()))
}

/// A NumericDate claim (seconds since 1970, fractions allowed); `Ok(None)` when absent.
pub fn date(claims: &Map<String, Value>, name: &str) -> Result<Option<DateTime<Utc>>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && s.abs() < 1e11)
            .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0) as i64))
            .map(Some)
            .ok_or_else(|| malformed(format!("\"{name}\" is not a NumericDate"))),
    }
}

/// The token's audiences: `aud` as one string or an array of strings.
pub fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_token_splits_into_header_claims_and_signature() {
        let t = format!(
            "{}.{}.{}",
            b64(&json!({"alg": "RS256", "kid": "k1", "jku": "https://evil.example/keys"})),
            b64(&json!({"sub": "x"})),
            URL_SAFE_NO_PAD.encode(b"sig")
        );
        let p = parse(&t).unwrap();
        assert_eq!((p.alg.as_str(), p.kid.as_str()), ("RS256", "k1"));
        assert_eq!(p.claims["sub"], "x");
        assert_eq!(p.signature, b"sig");
        assert_eq!(p.signed, t.rsplit_once('.').unwrap().0.as_bytes());
    }

    #[test]
    fn damaged_tokens_are_malformed_and_say_why() {
        let h = b64(&json!({"alg": "ES256"}));
        let c = b64(&json!({}));
        for (token, why) in [
            ("abc".to_string(), "three"),
            (format!("{h}.{c}"), "three"),
            (format!("{h}.{c}.x.y"), "three"),
            (format!("!!.{c}.AA"), "header is not base64url"),
            (
                format!("{}.{c}.AA", b64(&json!([1]))),
                "header is not a JSON object",
            ),
            (
                format!("{h}.{}.AA", URL_SAFE_NO_PAD.encode("nope")),
                "payload is not a JSON",
            ),
            (format!("{h}.{c}.a+b"), "signature is not base64url"),
            (
                format!("{}.{c}.AA", b64(&json!({"kid": "k"}))),
                "no \"alg\"",
            ),
            (
                format!("{}.{c}.AA", b64(&json!({"alg": "ES256", "crit": ["b64"]}))),
                "crit",
            ),
            (
                format!("{}.{c}.AA", b64(&json!({"alg": "ES256", "kid": 7}))),
                "kid",
            ),
            ("a".repeat(MAX_TOKEN_BYTES + 1), "longer"),
        ] {
            match parse(&token) {
                Err(Refusal::Malformed(m)) => assert!(m.contains(why), "{m} lacks {why}"),
                other => panic!("{token}: {other:?}"),
            }
        }
    }

    #[test]
    fn dates_and_audiences_are_read_as_the_rfc_writes_them() {
        let c =
            json!({"exp": 1700000000, "nbf": 1700000000.5, "iat": "soon", "aud": ["a", 1, "b"]});
        let c = c.as_object().unwrap();
        assert_eq!(date(c, "exp").unwrap().unwrap().timestamp(), 1_700_000_000);
        assert_eq!(
            date(c, "nbf").unwrap().unwrap().timestamp_subsec_millis(),
            500
        );
        assert!(matches!(date(c, "iat"), Err(Refusal::Malformed(_))));
        assert_eq!(date(c, "missing").unwrap(), None);
        assert_eq!(audiences(c), ["a", "b"]);
        assert_eq!(audiences(json!({"aud": "x"}).as_object().unwrap()), ["x"]);
        assert!(audiences(&Map::new()).is_empty());
        assert!(matches!(algorithm("none"), Err(Refusal::UnsupportedAlgorithm(a)) if a == "none"));
        assert!(matches!(
            algorithm("HS256"),
            Err(Refusal::UnsupportedAlgorithm(_))
        ));
    }
}
