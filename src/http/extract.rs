//! Request parsing helpers shared by the handlers: bounded bodies, JSON with our error format,
//! query/form pairs with repeated keys, Basic credentials.
use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use base64::Engine;
use serde::de::DeserializeOwned;

/// Largest body accepted anywhere (docs/admin-api.md: 413 over 64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads a whole body, failing with `Err(limit)` when it is larger than [`BODY_LIMIT`].
pub async fn read_body(body: Body) -> Result<Bytes, usize> {
    axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| BODY_LIMIT)
}

/// Parses JSON, with a message that says what is wrong and where.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.is_empty() {
        return Err("request body is empty; a JSON object is required".into());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))
}

/// Decoded key/value pairs; a pair borrows from the input unless it had escapes to decode.
pub type Pairs<'a> = [(Cow<'a, str>, Cow<'a, str>)];

/// `application/x-www-form-urlencoded` or query-string pairs, repeated keys kept in order.
pub fn parse_pairs(input: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(input).collect()
}

/// The last value of `key`, if any.
pub fn last<'a>(pairs: &'a Pairs<'_>, key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_ref())
}

/// Every value of `key`, in order.
pub fn all<'a>(pairs: &'a Pairs<'_>, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_ref())
}

/// Basic credentials from the `Authorization` header: `Ok(None)` when there is no Basic
/// header, `Err` naming what is broken when there is one that does not decode.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, String> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "Authorization header is not visible ASCII".to_string())?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err("Authorization header must be \"Basic <base64>\"".into());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| "Authorization header: Basic credentials are not valid base64".to_string())?;
    let text = String::from_utf8(decoded)
        .map_err(|_| "Authorization header: Basic credentials are not valid UTF-8".to_string())?;
    let (user, pass) = text.split_once(':').ok_or_else(|| {
        "Authorization header: Basic credentials must be \"username:password\"".to_string()
    })?;
    Ok(Some((user.to_string(), pass.to_string())))
}

/// The bearer token from the `Authorization` header, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(v).unwrap(),
        );
        m
    }

    #[test]
    fn basic_parsing() {
        // "user:pa:ss" — the password may contain ':'
        assert_eq!(
            basic_credentials(&h("Basic dXNlcjpwYTpzcw==")).unwrap(),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(&HeaderMap::new()).unwrap(), None);
        assert_eq!(basic_credentials(&h("Bearer abc")).unwrap(), None);
        assert!(basic_credentials(&h("Basic !!!"))
            .unwrap_err()
            .contains("base64"));
        assert!(basic_credentials(&h("Basic dXNlcg=="))
            .unwrap_err()
            .contains("username:password"));
        assert!(basic_credentials(&h("Basic /w=="))
            .unwrap_err()
            .contains("UTF-8"));
        assert!(basic_credentials(&h("Basic"))
            .unwrap_err()
            .contains("Basic <base64>"));
    }

    #[test]
    fn pairs_keep_repeats() {
        let p = parse_pairs(b"scope=a%3Ab%3Apull&scope=c:d:push&service=s+1");
        assert_eq!(
            all(&p, "scope").collect::<Vec<_>>(),
            vec!["a:b:pull", "c:d:push"]
        );
        assert_eq!(last(&p, "service"), Some("s 1"));
        assert_eq!(last(&p, "nope"), None);
    }

    #[test]
    fn bearer() {
        assert_eq!(bearer_token(&h("Bearer xyz")), Some("xyz"));
        assert_eq!(bearer_token(&h("bearer  xyz ")), Some("xyz"));
        assert_eq!(bearer_token(&h("Basic xyz")), None);
    }
}
