//! `GET /bench/sign`: the baseline of the load benchmark (issue 5, `scripts/bench/load.sh`).
//!
//! It does only the part of a token request that cannot be avoided: sign one JWT with the
//! server's issuer (its key, issuer name and TTL) and return it through the token endpoint's
//! own reply. No credentials, no store read, no access decision. The claims are fixed and
//! shaped like what the load test's `/auth` requests are granted (same subject length, same
//! two grants), so both routes sign and send the same number of bytes.
//!
//! Compiled in only with the `bench-baseline` feature; never part of a release.
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use tracing::error;

use super::auth::reply;
use super::state::AppState;
use crate::clock::Clock;
use crate::domain::Grant;
use crate::service::{AuthService, Issued};

/// The subject of the baseline token: as long as the load test's seeded token names.
const SUBJECT: &str = "bench-0000000";

/// What the baseline route needs, built once when the router is.
struct Baseline {
    auth: Arc<AuthService>,
    service: String,
    access: Vec<Grant>,
    clock: Clock,
}

/// The `GET /bench/sign` route.
pub fn sign_route(state: &AppState) -> MethodRouter<AppState> {
    let grant = |name: &str, actions: &[&str]| Grant {
        kind: "repository".into(),
        name: name.into(),
        actions: actions.iter().map(|a| a.to_string().into()).collect(),
    };
    let baseline = Arc::new(Baseline {
        auth: state.auth.clone(),
        service: state
            .config
            .registries
            .first()
            .map(|r| r.service.clone())
            .unwrap_or_default(),
        access: vec![
            grant("bench/app", &["pull", "push"]),
            grant("bench/base", &["pull"]),
        ],
        clock: state.clock.clone(),
    });
    get(move || sign(baseline.clone()))
}

async fn sign(b: Arc<Baseline>) -> Response {
    let now = b.clock.now();
    let issuer = b.auth.issuer();
    let jwt = match issuer.issue(SUBJECT, &b.service, &b.access, now) {
        Ok(jwt) => jwt,
        Err(e) => {
            error!(error = %e, "bench/sign: signing failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let issued = Issued {
        jwt,
        expires_in: issuer.ttl_seconds(),
        issued_at: now,
        granted: Vec::new(),
        refresh_token: None,
        temporary_password: None,
    };
    reply(&issued, false)
}
