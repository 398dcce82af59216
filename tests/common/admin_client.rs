//! The typed client of the admin API (`/api/v1`) that both test crates use: the in-process
//! API tests (`tests/api`, through `TestApp` in `tests/api/support.rs`, async) and the
//! end-to-end tests (`tests/e2e`, and `tests/cli`, through [`Regauth`](super::Regauth),
//! blocking HTTP against the running binary).
//!
//! It does no I/O. A request is an [`AdminCall`] (method, path under `/api/v1`, JSON body),
//! made by the typed constructors here: [`AdminCall::create_token`] (with a [`NewToken`]),
//! `get_token`, `list_tokens`, `replace_token`, `patch_token`, `disable_token`,
//! `rotate_password`, `delete_token` and `create_admin`. A reply is a [`Reply`] (status,
//! headers, body), read by the typed parsers here: [`Reply::expect`] and its `expect_*`
//! variants, [`Reply::created`] into a [`CreatedToken`], [`Reply::error`] into an
//! [`ApiError`]. A transport only sends the one and returns the other: `TestApp::call` drives
//! the router in-process, `Regauth::call` goes over HTTP; the typed conveniences of each
//! (`create_token`, …) are these pieces put together, so no request shape and no reply
//! parsing is written twice.
//!
//! Tests that send malformed input on purpose keep the raw calls (`TestApp::api_raw`, …).

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// One admin API request: `method` on `/api/v1{path}` with `body` as JSON (none: no body).
#[derive(Clone, Debug)]
pub struct AdminCall {
    pub method: Method,
    /// Relative to `/api/v1`, with its query string: `/registries/default/tokens?limit=2`.
    pub path: String,
    pub body: Option<Value>,
}

/// `/registries/{registry}/tokens`.
fn tokens_path(registry: &str) -> String {
    format!("/registries/{registry}/tokens")
}

/// `/registries/{registry}/tokens/{id}`.
fn token_path(registry: &str, id: &str) -> String {
    format!("{}/{id}", tokens_path(registry))
}

impl AdminCall {
    pub fn new(method: Method, path: impl Into<String>, body: Option<Value>) -> Self {
        AdminCall {
            method,
            path: path.into(),
            body,
        }
    }

    /// `POST /registries/{registry}/tokens`: creates `token`.
    pub fn create_token(registry: &str, token: &NewToken) -> Self {
        Self::new(Method::POST, tokens_path(registry), Some(token.body()))
    }

    /// `GET /registries/{registry}/tokens/{id}`.
    pub fn get_token(registry: &str, id: &str) -> Self {
        Self::new(Method::GET, token_path(registry, id), None)
    }

    /// `GET /registries/{registry}/tokens`, with `query` (`offset=2&limit=2`) unless empty.
    pub fn list_tokens(registry: &str, query: &str) -> Self {
        let path = if query.is_empty() {
            tokens_path(registry)
        } else {
            format!("{}?{query}", tokens_path(registry))
        };
        Self::new(Method::GET, path, None)
    }

    /// `PUT /registries/{registry}/tokens/{id}`: creates or replaces the token `id` with
    /// `token`.
    pub fn replace_token(registry: &str, id: &str, token: &NewToken) -> Self {
        Self::new(Method::PUT, token_path(registry, id), Some(token.body()))
    }

    /// `PATCH /registries/{registry}/tokens/{id}` with `patch` (the fields to change).
    pub fn patch_token(registry: &str, id: &str, patch: Value) -> Self {
        Self::new(Method::PATCH, token_path(registry, id), Some(patch))
    }

    /// [`Self::patch_token`] that sets the status to `disabled`.
    pub fn disable_token(registry: &str, id: &str) -> Self {
        Self::patch_token(registry, id, json!({"status": "disabled"}))
    }

    /// `POST /registries/{registry}/tokens/{id}/credentials`: a new password, with `body`
    /// (`{"gracePeriodSeconds": N}`) when given.
    pub fn rotate_password(registry: &str, id: &str, body: Option<Value>) -> Self {
        Self::new(
            Method::POST,
            format!("{}/credentials", token_path(registry, id)),
            body,
        )
    }

    /// `DELETE /registries/{registry}/tokens/{id}`.
    pub fn delete_token(registry: &str, id: &str) -> Self {
        Self::new(Method::DELETE, token_path(registry, id), None)
    }

    /// `POST /admins`: a named admin with `role`, limited to `registries` (empty: all).
    pub fn create_admin(name: &str, role: &str, registries: &[&str]) -> Self {
        Self::new(
            Method::POST,
            "/admins",
            Some(json!({"name": name, "role": role, "registries": registries})),
        )
    }
}

/// The body of a token create: `{"properties": {...}}`, built up from a name or given whole.
/// Only what is set is sent (the server's defaults apply to the rest).
#[derive(Clone, Debug)]
pub struct NewToken {
    body: Value,
}

impl NewToken {
    /// `{"properties": {"name": name}}`.
    pub fn named(name: &str) -> Self {
        Self::from_properties(json!({ "name": name }))
    }

    /// `{"properties": properties}`, whatever `properties` holds.
    pub fn from_properties(properties: Value) -> Self {
        Self::from_body(json!({ "properties": properties }))
    }

    /// The whole request body as given.
    pub fn from_body(body: Value) -> Self {
        NewToken { body }
    }

    /// Sets the property `key` (`owner`, `allowedNetworks`, `federation`, …).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.body["properties"][key] = value.into();
        self
    }

    /// Sets `scopes` (a JSON array, or a slice of scope objects).
    pub fn scopes(self, scopes: impl Into<Value>) -> Self {
        self.with("scopes", scopes)
    }

    /// Sets `expiryDate` (RFC 3339).
    pub fn expiry(self, date: &str) -> Self {
        self.with("expiryDate", date)
    }

    /// Sets `expiryDate` to null: never expires.
    pub fn no_expiry(self) -> Self {
        self.with("expiryDate", Value::Null)
    }

    /// Sets `status` (`enabled`, `disabled`).
    pub fn status(self, status: &str) -> Self {
        self.with("status", status)
    }

    /// The request body.
    pub fn body(&self) -> Value {
        self.body.clone()
    }
}

/// A reply: status, headers and the body as received.
#[derive(Debug)]
pub struct Reply {
    /// What was asked (`POST /api/v1/registries/default/tokens`), for failure messages.
    pub request: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the text when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.request, self.text()))
    }

    /// The body as JSON, `Null` when empty, or the text as a JSON string when not JSON.
    pub fn value(&self) -> Value {
        let text = self.text();
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }

    /// This reply, after asserting its status is `status` (else panics with the body).
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected reply {}",
            self.request,
            self.text()
        );
        self
    }

    /// The JSON body of a 200.
    #[track_caller]
    pub fn expect_ok(self) -> Value {
        self.expect(StatusCode::OK).json()
    }

    /// Asserts a 204 with no body.
    #[track_caller]
    pub fn expect_no_content(self) {
        let r = self.expect(StatusCode::NO_CONTENT);
        assert!(r.body.is_empty(), "{}: a 204 with a body", r.request);
    }

    /// The error of a reply with status `status`.
    #[track_caller]
    pub fn expect_error(self, status: StatusCode) -> ApiError {
        self.expect(status).error()
    }

    /// The token of a 201 to a create in `registry`.
    #[track_caller]
    pub fn created(self, registry: &str) -> CreatedToken {
        CreatedToken::parse(registry, self.expect(StatusCode::CREATED).json())
    }

    /// The admin API's error (IONOS shape), asserting that shape and that its `httpStatus`
    /// is the reply's.
    #[track_caller]
    pub fn error(&self) -> ApiError {
        ApiError::parse(self.status, &self.json())
    }

    /// The admin API error's message, asserting the error shape.
    #[track_caller]
    pub fn api_error(&self) -> String {
        self.error().message
    }

    /// The registry-protocol error (code, message) of the token endpoint.
    #[track_caller]
    pub fn registry_error(&self) -> (String, String) {
        let v = self.json();
        (
            v["errors"][0]["code"].as_str().unwrap().to_string(),
            v["errors"][0]["message"].as_str().unwrap().to_string(),
        )
    }
}

/// An admin API error: `{"httpStatus": 404, "messages": [{"errorCode": "…", "message": "…"}]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_code: String,
    pub message: String,
}

impl ApiError {
    /// The error in `body`, which a reply with `status` carried; panics unless the body is
    /// one with that `httpStatus`.
    #[track_caller]
    pub fn parse(status: StatusCode, body: &Value) -> Self {
        assert_eq!(body["httpStatus"], status.as_u16(), "{body}");
        let first = &body["messages"][0];
        let error_code = first["errorCode"]
            .as_str()
            .unwrap_or_else(|| panic!("no errorCode: {body}"))
            .to_owned();
        let message = first["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {body}"))
            .to_owned();
        ApiError {
            status,
            error_code,
            message,
        }
    }
}

/// A token as the create call returns it (the only time its password is shown).
#[derive(Clone, Debug)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    /// None for a federated token, which has none.
    pub password: Option<String>,
    /// The registry it was created in.
    pub registry: String,
    /// The whole reply.
    pub body: Value,
}

impl CreatedToken {
    /// The token in `body`, a create's reply in `registry`; panics when it has no id.
    #[track_caller]
    pub fn parse(registry: &str, body: Value) -> Self {
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        assert!(!id.is_empty(), "created token has no id: {body}");
        CreatedToken {
            id,
            name: body["properties"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            password: body["properties"]["credentials"]["password"]
                .as_str()
                .map(str::to_owned),
            registry: registry.to_owned(),
            body,
        }
    }

    /// The password; panics when the token has none (a federated one).
    #[track_caller]
    pub fn password(&self) -> &str {
        self.password
            .as_deref()
            .unwrap_or_else(|| panic!("token {} has no password: {}", self.name, self.body))
    }

    /// `/registries/{registry}/tokens/{id}`.
    pub fn path(&self) -> String {
        token_path(&self.registry, &self.id)
    }
}
