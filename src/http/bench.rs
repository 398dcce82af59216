//! `GET /bench/sign`: the baseline of the load benchmark (issue 5, `scripts/bench-load.sh`).
//!
//! It does only the part of a token request that cannot be avoided: sign one JWT with the
//! server's signing key and return it the way the token endpoint does. No credentials, no
//! store read, no access decision. The claims are fixed and shaped like what the load test's
//! `/auth` requests are granted (same subject length, same two grants), so both routes sign
//! and send the same number of bytes.
//!
//! Compiled in only with the `bench-baseline` feature; never part of a release.
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use chrono::SecondsFormat;
use serde::Serialize;
use tracing::{error, warn};

use crate::clock::Clock;
use crate::domain::Grant;
use crate::jwt::{Issuer, SigningKey};
use crate::server::AppState;

/// The subject of the baseline token: as long as the load test's seeded token names.
const SUBJECT: &str = "bench-0000000";

/// The same body as the token endpoint's `GET` reply.
#[derive(Serialize)]
struct SignResponse {
    token: String,
    access_token: String,
    expires_in: u64,
    issued_at: String,
}

/// What the baseline route needs, built once when the router is.
struct Baseline {
    issuer: Issuer,
    service: String,
    access: Vec<Grant>,
    clock: Clock,
}

/// The `GET /bench/sign` route. Reads the signing key the server loaded at start-up from its
/// file (`[jwt] key`) once, here, and signs with it on every request, with the configured
/// issuer name and TTL.
pub fn sign_route(state: &AppState) -> MethodRouter<AppState> {
    let baseline = match baseline(state) {
        Ok(b) => Some(Arc::new(b)),
        Err(e) => {
            warn!(error = %e, "GET /bench/sign disabled: cannot load the signing key");
            None
        }
    };
    get(move || sign(baseline.clone()))
}

fn baseline(state: &AppState) -> anyhow::Result<Baseline> {
    let config = &state.config;
    let pem = std::fs::read_to_string(&config.jwt.key)?;
    let key = SigningKey::from_pkcs8_pem(&pem)?;
    let service = config
        .registries
        .first()
        .map(|r| r.service.clone())
        .unwrap_or_default();
    let grant = |name: &str, actions: &[&str]| Grant {
        kind: "repository".into(),
        name: name.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
    };
    Ok(Baseline {
        issuer: Issuer::new(key, config.jwt.issuer.clone(), config.jwt.ttl_seconds),
        service,
        access: vec![
            grant("bench/app", &["pull", "push"]),
            grant("bench/base", &["pull"]),
        ],
        clock: state.clock.clone(),
    })
}

async fn sign(baseline: Option<Arc<Baseline>>) -> Response {
    let Some(b) = baseline else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let now = b.clock.now();
    let jwt = match b.issuer.issue(SUBJECT, &b.service, &b.access, now) {
        Ok(jwt) => jwt,
        Err(e) => {
            error!(error = %e, "bench/sign: signing failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let body = SignResponse {
        token: jwt.clone(),
        access_token: jwt,
        expires_in: b.issuer.ttl_seconds(),
        issued_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
