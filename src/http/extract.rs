//! Request parsing shared by the handlers: bounded bodies, JSON with our error format,
//! query/form pairs with repeated keys, Basic credentials, and the admin API's extractors
//! ([`KnownRegistry`], [`TokenId`], [`AppJson`]), whose rejections are [`ApiError`]s.
use std::borrow::Cow;

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;

use super::error::{ApiError, AuthHttpError};
use super::state::AppState;
use crate::config::RegistryConfig;
use crate::text::{all_bytes, split_once_ascii};

/// Largest body accepted anywhere (docs/admin-api.md: 413 over 64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (known at once from `Content-Length`, or found while reading).
    TooLarge(usize),
    /// Not received within this many seconds (`[limits] body_timeout_seconds`).
    Timeout(u64),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(n) => ApiError::TooLarge(n),
            BodyError::Timeout(s) => ApiError::BodyTimeout(s),
        }
    }
}

impl From<BodyError> for AuthHttpError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(n) => AuthHttpError::TooLarge(n),
            BodyError::Timeout(s) => AuthHttpError::BodyTimeout(s),
        }
    }
}

/// Reads a whole body of at most [`BODY_LIMIT`] bytes within `timeout`. A `Content-Length`
/// over the limit is refused before anything is read, so a client announcing 10 GB is not
/// waited for.
pub async fn read_body(body: Body, timeout: Duration) -> Result<Bytes, BodyError> {
    if HttpBody::size_hint(&body).lower() > BODY_LIMIT as u64 {
        return Err(BodyError::TooLarge(BODY_LIMIT));
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(BodyError::TooLarge(BODY_LIMIT)),
        Err(_) => Err(BodyError::Timeout(timeout.as_secs())),
    }
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

/// `application/x-www-form-urlencoded` pairs (a form body), repeated keys kept in order:
/// what `form_urlencoded::parse` gives, pair for pair (see [`parse_query`]).
pub fn parse_pairs(input: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    match std::str::from_utf8(input) {
        Ok(text) => parse_query(text),
        Err(_) => form_urlencoded::parse(input).collect(),
    }
}

/// Query-string pairs, repeated keys kept in order: what `form_urlencoded::parse` gives, pair
/// for pair. A pair with nothing to decode (no `%`, no `+`: every pair docker and the
/// registries send) is borrowed as it stands; any other pair goes through `form_urlencoded`.
/// That crate decodes every pair byte by byte and checks it again as UTF-8: an eighth of what
/// the token endpoint added to signing (benches/RESULTS.md; property test
/// `pairs_read_as_form_urlencoded_reads_them`).
pub fn parse_query(text: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let escaped = |s: &str| !all_bytes(s.as_bytes(), |b| (b != b'%') & (b != b'+'));
    let any_escapes = escaped(text);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            if any_escapes && escaped(pair) {
                // One pair, no `&` in it: `form_urlencoded` reads it as exactly one pair.
                return form_urlencoded::parse(pair.as_bytes()).next();
            }
            Some(match pair.split_once('=') {
                Some((key, value)) => (Cow::Borrowed(key), Cow::Borrowed(value)),
                None => (Cow::Borrowed(pair), Cow::Borrowed("")),
            })
        })
        .collect()
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
    let Some((scheme, rest)) = split_once_ascii(value, b' ') else {
        return Err("Authorization header must be \"Basic <base64>\"".into());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| "Authorization header: Basic credentials are not valid base64".to_string())?;
    let mut user = String::from_utf8(decoded)
        .map_err(|_| "Authorization header: Basic credentials are not valid UTF-8".to_string())?;
    let colon = user.bytes().position(|b| b == b':').ok_or_else(|| {
        "Authorization header: Basic credentials must be \"username:password\"".to_string()
    })?;
    // The decoded text becomes the username: one copy, for the password.
    let password = user[colon + 1..].to_string();
    user.truncate(colon);
    Ok(Some((user, password)))
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

#[derive(Deserialize)]
struct RegistryParam {
    registry_id: String,
}

#[derive(Deserialize)]
struct TokenParam {
    token_id: String,
}

/// A path parameter that did not decode (e.g. percent-encoded bytes that are not UTF-8).
fn bad_path(e: axum::extract::rejection::PathRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid path: {}", e.body_text()))
}

/// The `{registry_id}` of the path, when the config has that registry; otherwise the API's
/// 404. Reads only the request head, so it runs before any body is read.
pub struct KnownRegistry(pub RegistryConfig);

impl FromRequestParts<AppState> for KnownRegistry {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(RegistryParam { registry_id }) = Path::from_request_parts(parts, state)
            .await
            .map_err(bad_path)?;
        state
            .config
            .registry(&registry_id)
            .cloned()
            .map(KnownRegistry)
            .ok_or_else(|| ApiError::NotFound(format!("registry {registry_id:?} not found")))
    }
}

/// The `{token_id}` of the path as a UUID; otherwise the API's 400 naming the text.
pub struct TokenId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for TokenId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(TokenParam { token_id }) = Path::from_request_parts(parts, state)
            .await
            .map_err(bad_path)?;
        Uuid::parse_str(&token_id)
            .map(TokenId)
            .map_err(|_| ApiError::BadRequest(format!("tokenId {token_id:?} is not a UUID")))
    }
}

/// A JSON body of at most [`BODY_LIMIT`] bytes, parsed into `T`. Rejections are the admin
/// API's errors: 413 over the limit, 400 naming what is malformed (unknown fields by name).
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req.into_body(), state.body_timeout()).await?;
        parse_json(&bytes)
            .map(AppJson)
            .map_err(ApiError::BadRequest)
    }
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

    proptest::proptest! {
        /// Whatever the bytes, the pairs are the ones `form_urlencoded` reads.
        #[test]
        fn pairs_read_as_form_urlencoded_reads_them(
            input in proptest::collection::vec(
                proptest::sample::select(b"ab=&%+2F3c\xc3\xa9\xff ".to_vec()), 0..40),
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            for bytes in [&input, &raw] {
                let ours = parse_pairs(bytes);
                let theirs: Vec<_> = form_urlencoded::parse(bytes).collect();
                proptest::prop_assert_eq!(&ours, &theirs);
                if let Ok(text) = std::str::from_utf8(bytes) {
                    proptest::prop_assert_eq!(parse_query(text), theirs);
                }
            }
        }
    }

    #[test]
    fn plain_pairs_are_borrowed() {
        let p = parse_query("service=registry.local&scope=repository:a/b:pull,push&x&&y=");
        assert_eq!(
            p,
            [
                ("service".into(), "registry.local".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
                ("x".into(), "".into()),
                ("y".into(), "".into()),
            ]
        );
        assert!(p
            .iter()
            .all(|(k, v)| matches!(k, Cow::Borrowed(_)) && matches!(v, Cow::Borrowed(_))));
        let q = parse_pairs(b"a=b+c&d=%41&e=\xff");
        assert_eq!(
            q,
            [
                ("a".into(), "b c".into()),
                ("d".into(), "A".into()),
                ("e".into(), "\u{fffd}".into()),
            ]
        );
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
