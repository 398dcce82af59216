//! What the in-process HTTP targets share: an [`AppState`] over an in-memory store with one
//! known token, and a way to send one request through `regauth::app` and read the reply.
//!
//! Mirrors tests/api/support.rs (the in-process test app), without files: the signing key is
//! generated in memory and nothing is written to disk.
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use regauth::clock::Clock;
use regauth::config::Config;
use regauth::domain::{Scope, SecretHash, Status, Token};
use regauth::jwt::SigningKey;
use regauth::store::{MemoryStore, Store};
use regauth::AppState;
use tower::ServiceExt;

/// The admin token of the fuzzed app.
pub const ADMIN: &str = "fuzz-admin-token-0123456789abcdef";
/// The one token's name (its docker username).
pub const NAME: &str = "ci-push";
/// Its password: a real `rga_` password (valid checksum), so seeds can authenticate.
pub const PASSWORD: &str = "rga_9ueI7Dd1CvMuBw0NC9uSyJIAZgRqo7DEBrj4H4J1XWa13dIPy";
/// The service of the configured registry (`default`).
pub const SERVICE: &str = "registry.local";
/// The fixed id of the one token.
pub const TOKEN_ID: uuid::Uuid = uuid::Uuid::from_u128(0x7c1e_1a52_4d7f_4a6e_9a51_0f4b_8f5b_2f10);

/// A client address for the `ConnectInfo` the server would set.
pub fn client() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 40000))
}

/// The manual clock's instant: 2026-06-01T12:00:00Z.
pub fn clock() -> Clock {
    Clock::manual(
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
            .single()
            .unwrap_or_default(),
    )
}

/// The token's scopes: `team/*` pull+push, `base` pull, the catalog.
pub fn scopes() -> Vec<Scope> {
    let s = |kind: &str, name: &str, actions: &[&str]| {
        let actions: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        Scope::parse(kind, name, &actions).expect("fixed scope")
    };
    vec![
        s("repository", "team/*", &["pull", "push"]),
        s("repository", "base", &["pull"]),
        s("registry", "catalog", &["pull"]),
    ]
}

/// The known token, as stored.
pub fn token(clock: &Clock) -> Token {
    let now = clock.now();
    Token {
        id: TOKEN_ID,
        registry: "default".into(),
        name: NAME.parse().expect("fixed name"),
        status: Status::Enabled,
        expiry: None,
        scopes: scopes(),
        secret_hash: SecretHash::of(PASSWORD),
        created: now,
        created_by: "admin".into(),
        modified: now,
        modified_by: "admin".into(),
        previous: None,
        last_used: None,
        networks: vec![],
        owner: None,
        description: None,
        federation: None,
    }
}

fn config() -> Config {
    let mut config = Config::from_toml("").expect("default config");
    config.public_url = "http://regauth.fuzz".into();
    config
}

/// The signing key's PKCS#8 PEM, generated once per process.
fn key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| SigningKey::generate_es256().expect("P-256 key").1)
}

/// A fresh app state over a new in-memory store holding the known token.
pub fn fresh_state() -> (AppState, Arc<dyn Store>) {
    let clock = clock();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    runtime()
        .block_on(store.create(&token(&clock)))
        .expect("store the known token");
    let key = SigningKey::from_pkcs8_pem(key_pem()).expect("key");
    let state = AppState::new(config(), store.clone(), key, ADMIN, clock);
    (state, store)
}

/// A single-threaded runtime that drives the router and the (async) store.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A reply, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; panics (a finding) when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} reply is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the admin API's error shape (`httpStatus`, `messages[].message`) and returns
    /// the first message.
    pub fn api_error(&self) -> String {
        let v = self.json();
        assert_eq!(v["httpStatus"], self.status.as_u16(), "{v}");
        let message = v["messages"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "error without a message: {v}");
        assert!(v["messages"][0]["errorCode"].is_string(), "{v}");
        message.to_string()
    }

    /// Asserts the registry protocol's error shape (`errors[].code`, `.message`) and returns
    /// (code, message).
    pub fn registry_error(&self) -> (String, String) {
        let v = self.json();
        let code = v["errors"][0]["code"].as_str().unwrap_or_default();
        let message = v["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && !message.is_empty(),
            "bad error body: {v}"
        );
        (code.to_string(), message.to_string())
    }
}

/// Sends `req` (from [`client`]) through the whole router of `state`.
pub fn send(state: &AppState, mut req: Request<Body>) -> Reply {
    req.extensions_mut().insert(ConnectInfo(client()));
    let router = regauth::app(state.clone());
    runtime().block_on(async move {
        let resp = router.oneshot(req).await.expect("infallible router");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("in-memory body")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    })
}

/// Whether `scopes` hold `action` on the resource (`kind`, `name`) of a JWT `access` entry,
/// judged independently of the access decision: a repository action needs a scope whose
/// pattern matches the name and that lists the action (or, for `pull`, lists `push`, which
/// brings it); the catalog's `*` needs any registry scope.
pub fn holds(scopes: &[Scope], kind: &str, name: &str, action: &str) -> bool {
    use regauth::domain::{Action, ScopeTarget};
    match kind {
        "repository" => {
            let Ok(action) = action.parse::<Action>() else {
                return false;
            };
            scopes.iter().any(|s| match &s.target {
                ScopeTarget::Repository(p) => {
                    p.matches(name)
                        && (s.actions.contains(action)
                            || (action == Action::Pull && s.actions.contains(Action::Push)))
                }
                ScopeTarget::Registry(_) => false,
            })
        }
        "registry" => {
            name == "catalog"
                && action == "*"
                && scopes
                    .iter()
                    .any(|s| matches!(s.target, ScopeTarget::Registry(_)))
        }
        _ => false,
    }
}
