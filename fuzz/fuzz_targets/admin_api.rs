//! The admin API's inputs, through the whole router over a fresh in-memory store holding one
//! token: the JSON bodies of POST (create), PUT (replace or create), PATCH and the rotation,
//! the list's query string and the path's token id and registry id.
//!
//! Input: one letter naming the request, then its body, query or path text:
//! `C` POST tokens, `U` PUT the existing token, `N` PUT a new id, `P` PATCH, `R` rotate,
//! `L` GET tokens?QUERY, `I` GET tokens/ID, `G` GET registries/ID. Anything else is a POST body.
//!
//! Invariants: never a 5xx; every error has the API's error shape with a message; a refused
//! request changes nothing in the store; an accepted create/replace/patch is stored as the
//! reply shows it and as the body asked; a password in a reply has a valid checksum and is
//! the one stored (by hash).
#![no_main]
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use regauth::api;
use regauth::domain::secret::has_valid_checksum;
use regauth::domain::{Scope, SecretHash, Token};
use regauth::store::Store;
use regauth_fuzz::{fresh_state, runtime, send, Reply, ADMIN, TOKEN_ID};

const TOKENS: &str = "/api/v1/registries/default/tokens";
const NEW_ID: &str = "0b7d2f7e-3f0a-4c39-9d2e-5b1c7f9e6a11";

fn request(method: Method, uri: &str, body: &[u8]) -> Option<Request<Body>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .ok() // not a URI hyper would have accepted
}

fn snapshot(store: &dyn Store) -> Vec<Token> {
    runtime()
        .block_on(store.list("default", 0, usize::MAX))
        .expect("memory store")
        .items
}

/// (type, name, actions as a sorted set) of a wire scope.
fn key(s: &api::Scope) -> (String, String, Vec<String>) {
    let mut actions = s.actions.clone();
    actions.sort();
    actions.dedup();
    (s.kind.clone(), s.name.clone(), actions)
}

fn same_scopes(asked: &[api::Scope], got: &[api::Scope]) {
    let asked: Vec<_> = asked.iter().map(key).collect();
    let got: Vec<_> = got.iter().map(key).collect();
    assert_eq!(asked, got, "stored scopes differ from the body's");
}

/// The reply's token is the stored one; returns it.
fn stored_as_shown(store: &dyn Store, reply: &Reply) -> (api::Token, Token) {
    let shown: api::Token = serde_json::from_slice(&reply.body).expect("a token reply");
    let stored = runtime()
        .block_on(store.get("default", shown.id))
        .expect("memory store")
        .expect("the reply's token is stored");
    assert_eq!(shown.properties.name, stored.name.as_str());
    assert_eq!(shown.properties.expiry_date, stored.expiry);
    let stored_scopes: Vec<_> = stored
        .scopes
        .iter()
        .map(|s: &Scope| api::Scope {
            kind: s.kind_str().into(),
            name: s.name_str().into(),
            actions: s.actions.iter().map(|a| a.as_str().to_string()).collect(),
        })
        .collect();
    assert_eq!(shown.properties.scopes, stored_scopes);
    if let Some(password) = &shown.properties.credentials.password {
        assert!(has_valid_checksum(password), "{password:?}");
        assert_eq!(SecretHash::of(password), stored.secret_hash);
    }
    (shown, stored)
}

fuzz_target!(|data: &[u8]| {
    let (op, rest) = match data.split_first() {
        Some((&op, rest)) if b"CUNPRLIG".contains(&op) => (op, rest),
        _ => (b'C', data),
    };
    let text = String::from_utf8_lossy(rest);
    let encoded: String = form_urlencoded::byte_serialize(rest).collect();
    let one = format!("{TOKENS}/{TOKEN_ID}");
    let req = match op {
        b'C' => request(Method::POST, TOKENS, rest),
        b'U' => request(Method::PUT, &one, rest),
        b'N' => request(Method::PUT, &format!("{TOKENS}/{NEW_ID}"), rest),
        b'P' => request(Method::PATCH, &one, rest),
        b'R' => request(Method::POST, &format!("{one}/credentials"), rest),
        b'L' => request(Method::GET, &format!("{TOKENS}?{text}"), b""),
        b'I' => request(Method::GET, &format!("{TOKENS}/{encoded}"), b""),
        _ => request(Method::GET, &format!("/api/v1/registries/{encoded}"), b""),
    };
    let Some(req) = req else {
        return;
    };
    let (state, store) = fresh_state();
    let before = snapshot(&*store);
    let reply = send(&state, req);
    let status = reply.status;
    assert!(
        !status.is_server_error(),
        "{status} for {:?}: {}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&reply.body)
    );
    if !status.is_success() {
        assert!(
            [400, 404, 409, 413].contains(&status.as_u16()),
            "unexpected {status}"
        );
        reply.api_error();
        assert_eq!(
            snapshot(&*store),
            before,
            "a refused request changed the store"
        );
        return;
    }
    match op {
        b'C' | b'U' | b'N' => {
            let asked: api::TokenCreate =
                serde_json::from_slice(rest).expect("accepted, so it parses");
            let (shown, _) = stored_as_shown(&*store, &reply);
            assert_eq!(shown.properties.name, asked.properties.name);
            same_scopes(
                &asked.properties.scopes.unwrap_or_default(),
                &shown.properties.scopes,
            );
            if op == b'C' {
                assert_eq!(status, StatusCode::CREATED);
                assert!(shown.properties.credentials.password.is_some());
            }
        }
        b'P' => {
            let asked: api::TokenPatch =
                serde_json::from_slice(rest).expect("accepted, so it parses");
            let (shown, _) = stored_as_shown(&*store, &reply);
            assert_eq!(shown.id, TOKEN_ID);
            if let Some(scopes) = &asked.scopes {
                same_scopes(scopes, &shown.properties.scopes);
            }
            if let Some(status) = &asked.status {
                assert_eq!(&shown.properties.status.to_string(), status);
            }
            assert!(shown.properties.credentials.password.is_none());
        }
        b'R' => {
            let (shown, stored) = stored_as_shown(&*store, &reply);
            assert!(shown.properties.credentials.password.is_some());
            assert_ne!(stored.secret_hash, SecretHash::of(regauth_fuzz::PASSWORD));
        }
        b'L' => {
            let page: api::TokenPage = serde_json::from_slice(&reply.body).expect("a page");
            assert_eq!(page.count, page.items.len());
            assert!(page.count <= page.limit && page.count <= page.total);
            assert!(page
                .items
                .iter()
                .all(|t| t.properties.credentials.password.is_none()));
        }
        b'I' => {
            let t: api::Token = serde_json::from_slice(&reply.body).expect("a token");
            assert_eq!(t.id, TOKEN_ID);
            assert!(t.properties.credentials.password.is_none());
        }
        _ => {
            let r: api::Registry = serde_json::from_slice(&reply.body).expect("a registry");
            assert_eq!(r.id, "default");
        }
    }
    if op != b'C' && op != b'N' && op != b'U' && op != b'P' && op != b'R' {
        assert_eq!(snapshot(&*store), before, "a read changed the store");
    }
});
