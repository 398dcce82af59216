//! `TestApp`: the whole router over an in-memory store, a manual clock and a key in a temp dir.
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use regauth::clock::Clock;
use regauth::config::Config;
use regauth::store::{MemoryStore, Store};
use regauth::AppState;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub router: Router,
    /// The app's throttle of failed authentications.
    pub throttle: Arc<regauth::service::Throttle>,
    /// The metrics listener's router over the same state.
    pub metrics: Router,
    /// The state both routers share.
    pub state: AppState,
    pub clock: Clock,
    pub config: Config,
    _dir: TempDir,
}

/// A reply of the app: status, headers, body (the shared [`Reply`] of `tests/common`).
pub type Resp = Reply;

pub use crate::common::{basic, AdminCall, CreatedToken, NewToken, Reply};

impl TestApp {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Config)) -> Self {
        Self::with_store(Arc::new(MemoryStore::new()), f)
    }

    /// The app with a keyring (`jwt::keystore`) in its temp dir, as `serve` builds it.
    pub fn with_keys(f: impl FnOnce(&mut Config)) -> Self {
        Self::build(Arc::new(MemoryStore::new()), f, true)
    }

    /// The app over `store` (a wrapper that injects a race, say).
    pub fn with_store(store: Arc<dyn Store>, f: impl FnOnce(&mut Config)) -> Self {
        Self::build(store, f, false)
    }

    fn build(store: Arc<dyn Store>, f: impl FnOnce(&mut Config), keyring: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::from_toml("").unwrap();
        config.data_dir = dir.path().join("data");
        config.jwt.key = dir.path().join("signing.key");
        config.jwt.certificate = dir.path().join("signing.crt");
        config.public_url = "http://regauth.test".into();
        f(&mut config);
        let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap());
        let state = if keyring {
            let keys = regauth::jwt::keystore::KeyStore::open(
                regauth::server::key_options(&config),
                clock.now(),
            )
            .unwrap();
            AppState::with_keys(config.clone(), store, Arc::new(keys), ADMIN, clock.clone())
        } else {
            let key =
                regauth::jwt::load_or_create(&config.jwt.key, &config.jwt.certificate).unwrap();
            AppState::new(config.clone(), store, key, ADMIN, clock.clone())
        };
        TestApp {
            throttle: state.throttle.clone(),
            metrics: regauth::http::metrics_app(state.clone()),
            router: regauth::app(state.clone()),
            state,
            clock,
            config,
            _dir: dir,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let request = format!("{} {}", req.method(), req.uri());
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            request,
            status,
            headers,
            body,
        }
    }

    /// `req` as if it came over a connection from `ip` (the server's `ConnectInfo`).
    pub async fn send_from(&self, ip: &str, mut req: Request<Body>) -> Resp {
        let peer: std::net::SocketAddr = (ip.parse::<std::net::IpAddr>().unwrap(), 40000).into();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        self.send(req).await
    }

    /// `GET uri` without a body, with `authorization` as the `Authorization` header when given.
    pub async fn get(&self, uri: &str, authorization: Option<&str>) -> Resp {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// An admin API call with the admin token.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.send(admin_request(ADMIN, method, path, body)).await
    }

    /// An admin API call with the admin token from the client address `from`.
    pub async fn api_from(
        &self,
        from: std::net::SocketAddr,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut req = admin_request(ADMIN, method, path, body);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(from));
        self.send(req).await
    }

    /// `GET /metrics` of the metrics listener: the OpenMetrics text.
    pub async fn scrape(&self) -> String {
        let req = Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap();
        let resp = self.metrics.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// An admin API call with a raw body.
    pub async fn api_raw(&self, method: Method, path: &str, body: impl Into<Body>) -> Resp {
        let req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.send(req).await
    }

    /// Creates a token in `default`; returns (id, password).
    pub async fn create(&self, name: &str, scopes: Value) -> (String, String) {
        let token = self
            .create_token("default", &NewToken::named(name).scopes(scopes))
            .await;
        let password = token.password().to_owned();
        (token.id, password)
    }

    /// `GET /auth?<query>` with Basic credentials.
    pub async fn auth_get(&self, user: &str, pass: &str, query: &str) -> Resp {
        let req = Request::builder()
            .uri(format!("/auth?{query}"))
            .header(header::AUTHORIZATION, basic(user, pass))
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    /// `POST /auth` with a form body.
    pub async fn auth_post(&self, form: &str) -> Resp {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/auth")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap();
        self.send(req).await
    }
}

impl TestApp {
    /// Verifies a JWT's signature with the app's key and returns (header, claims).
    pub fn verify(&self, jwt: &str) -> (Value, Value) {
        let key = regauth::jwt::load_or_create(&self.config.jwt.key, &self.config.jwt.certificate)
            .unwrap();
        key.verify_jwt(jwt).unwrap()
    }

    /// `GET /auth` and the `access` claim of the verified JWT; panics unless 200.
    pub async fn access(&self, user: &str, pass: &str, query: &str) -> Value {
        let r = self.auth_get(user, pass, query).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{query}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let (_, claims) = self.verify(r.json()["token"].as_str().unwrap());
        claims["access"].clone()
    }
}

/// The admin API request `method path` (under `/api/v1`) with `secret` as the bearer and
/// `body` as JSON.
fn admin_request(secret: &str, method: Method, path: &str, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("/api/v1{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {secret}"));
    let body = match body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    b.body(body).unwrap()
}

/// The in-process transport of the shared admin client (`tests/common/admin_client.rs`), and
/// its typed conveniences.
impl TestApp {
    /// `call` with the admin token.
    pub async fn call(&self, call: AdminCall) -> Reply {
        self.api(call.method, &call.path, call.body).await
    }

    /// `call` with the admin token from the client address `from`.
    pub async fn call_from(&self, from: std::net::SocketAddr, call: AdminCall) -> Reply {
        self.api_from(from, call.method, &call.path, call.body)
            .await
    }

    /// `call` with `secret` (a named admin's) as the bearer.
    pub async fn call_as(&self, secret: &str, call: AdminCall) -> Reply {
        self.send(admin_request(secret, call.method, &call.path, call.body))
            .await
    }

    /// Creates `token` in `registry`; panics unless 201.
    pub async fn create_token(&self, registry: &str, token: &NewToken) -> CreatedToken {
        self.call(AdminCall::create_token(registry, token))
            .await
            .created(registry)
    }

    /// The token `id` of `default`; panics unless 200.
    pub async fn get_token(&self, id: &str) -> Value {
        self.call(AdminCall::get_token("default", id))
            .await
            .expect_ok()
    }

    /// The token list of `default` with `query` (may be empty); panics unless 200.
    pub async fn list_tokens(&self, query: &str) -> Value {
        self.call(AdminCall::list_tokens("default", query))
            .await
            .expect_ok()
    }
}
