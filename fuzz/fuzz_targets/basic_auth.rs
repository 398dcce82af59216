//! The `Authorization` header of the token endpoint: Basic credentials (and the Bearer token
//! the admin API reads), from any header value hyper would accept.
//!
//! Invariants: decoded credentials re-encode to the same pair; the username has no `:`;
//! "no Basic header" only for another scheme; every error names the header.
#![no_main]
use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use regauth::domain::TokenName;
use regauth::http::extract::{basic_credentials, bearer_token};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return; // hyper would not have accepted it either
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value.clone());
    match basic_credentials(&headers) {
        Ok(Some((user, pass))) => {
            assert!(!user.contains(':'), "username {user:?} holds ':'");
            let text = value.to_str().expect("decoded, so ASCII");
            let (scheme, _) = text.split_once(' ').expect("decoded, so has a space");
            assert!(scheme.eq_ignore_ascii_case("basic"), "{text:?}");
            // What docker sends for this pair decodes to the same pair.
            let again = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&again).expect("base64 is a valid header value"),
            );
            assert_eq!(basic_credentials(&h), Ok(Some((user.clone(), pass))));
            // The username check of the token endpoint takes any decoded text.
            let _ = TokenName::check(&user);
        }
        Ok(None) => {
            let text = value.to_str().expect("Ok(None) only for ASCII");
            let (scheme, _) = text.split_once(' ').expect("Ok(None) only with a scheme");
            assert!(!scheme.eq_ignore_ascii_case("basic"), "{text:?}");
        }
        Err(message) => {
            assert!(message.starts_with("Authorization header"), "{message:?}");
        }
    }
    if let Some(token) = bearer_token(&headers) {
        assert_eq!(token, token.trim(), "bearer token keeps surrounding spaces");
    }
});
