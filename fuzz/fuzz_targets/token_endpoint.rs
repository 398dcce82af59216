//! The token endpoint as a stranger reaches it: `GET /auth` with any query string and any
//! `Authorization` header, `POST /auth` with any form body, through the whole router over a
//! fresh in-memory store holding one token (`ci-push`, password known to the seeds).
//!
//! Input: `G` then the query, a newline, the header value; or `P` then the form body
//! (anything else is a form body).
//!
//! Invariants: never a 5xx; only 200, 400, 401, 413 or 429; every error has the registry
//! protocol's error shape, a 401 also `WWW-Authenticate`; a 200 only for the token's real
//! password (a refresh token cannot be guessed), with a JWT that verifies, names the token
//! and grants nothing the token's scopes do not hold.
#![no_main]
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;
use regauth::http::extract::{basic_credentials, last, parse_pairs};
use regauth_fuzz::{fresh_state, holds, scopes, send, NAME, PASSWORD};

fuzz_target!(|data: &[u8]| {
    let (get, rest) = match data.split_first() {
        Some((b'G', rest)) => (true, rest),
        Some((b'P', rest)) => (false, rest),
        _ => (false, data),
    };
    let mut authorization = None;
    let req = if get {
        let (query, auth) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(format!("/auth?{}", String::from_utf8_lossy(query)));
        if let Some(auth) = auth {
            let Ok(v) = HeaderValue::from_bytes(auth) else {
                return;
            };
            authorization = Some(v.clone());
            b = b.header(header::AUTHORIZATION, v);
        }
        b.body(Body::empty())
    } else {
        Request::builder()
            .method(Method::POST)
            .uri("/auth")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(rest.to_vec()))
    };
    let Ok(req) = req else {
        return; // not a request hyper would have accepted
    };
    let (state, _store) = fresh_state();
    let reply = send(&state, req);
    let status = reply.status.as_u16();
    assert!(
        [200, 400, 401, 413, 429].contains(&status),
        "{status} for {:?}: {}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&reply.body)
    );
    if status != 200 {
        reply.registry_error();
        if status == 401 {
            assert!(reply.headers.contains_key(header::WWW_AUTHENTICATE));
        }
        return;
    }

    // Issued: only for the real password.
    if get {
        let mut h = HeaderMap::new();
        if let Some(v) = authorization {
            h.insert(header::AUTHORIZATION, v);
        }
        let creds = basic_credentials(&h).expect("issued, so the header decoded");
        assert_eq!(
            creds,
            Some((NAME.to_string(), PASSWORD.to_string())),
            "issued for credentials that are not the token's"
        );
    } else {
        let pairs = parse_pairs(rest);
        assert_eq!(
            last(&pairs, "grant_type"),
            Some("password"),
            "issued for a guessed refresh token"
        );
        assert_eq!(last(&pairs, "username"), Some(NAME));
        assert_eq!(last(&pairs, "password"), Some(PASSWORD));
    }
    let body = reply.json();
    let jwt = body["token"].as_str().expect("token");
    assert_eq!(body["access_token"], body["token"]);
    let (_, claims) = state
        .auth
        .issuer()
        .key()
        .verify_jwt(jwt)
        .expect("the JWT verifies");
    assert_eq!(claims["sub"], NAME);
    let scopes = scopes();
    for entry in claims["access"].as_array().expect("access is an array") {
        let kind = entry["type"].as_str().expect("type");
        let name = entry["name"].as_str().expect("name");
        for action in entry["actions"].as_array().expect("actions") {
            let action = action.as_str().expect("action");
            assert!(
                holds(&scopes, kind, name, action),
                "granted {kind}:{name}:{action}, which no scope holds"
            );
        }
    }
});
