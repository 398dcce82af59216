//! The HTTP surface: the router, its layers, the shared [`AppState`] (`state`), and the
//! handlers for the token endpoint (`auth`), the admin API (`admin`, with its audit
//! middleware `audit`) and the console's files (`console`); the metrics listener's router
//! ([`metrics_app`]); and the accept loop that serves them with connection limits
//! (`listener`). The only module that knows axum and hyper.
use axum::routing::get;
use axum::Router;

pub mod activity;
pub mod admin;
pub mod admin_token;
pub mod admins;
pub mod audit;
pub mod auth;
#[cfg(feature = "bench-baseline")]
mod bench;
pub mod console;
pub mod error;
pub mod extract;
pub mod headers;
pub mod keys;
pub mod limits;
pub mod listener;
pub mod openapi;
pub mod state;

pub use state::AppState;

/// Readiness: 200 `ready` when the store answers (within its timeouts) and this replica signs
/// with the active key, else 503 naming the cause. `/health` is liveness only: it answers while the process runs.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, String) {
    if let Some(why) = state.keys.as_ref().and_then(|k| k.not_ready()) {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}"),
        );
    }
    match state.admin.ready().await {
        Ok(()) => (axum::http::StatusCode::OK, "ready".into()),
        Err(e) => {
            tracing::warn!(error = %crate::error::Chain(&e), "not ready: store check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {e}"),
            )
        }
    }
}

/// The whole application as a router, so tests can drive it without a socket.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/registries", get(admin::list_registries))
        .route("/registries/{registry_id}", get(admin::get_registry))
        .route(
            "/registries/{registry_id}/tokens",
            get(admin::list_tokens).post(admin::create_token),
        )
        .route(
            "/registries/{registry_id}/offboarding",
            axum::routing::post(admin::disable_by_owner),
        )
        .route(
            "/registries/{registry_id}/tokens/{token_id}",
            get(admin::get_token)
                .put(admin::put_token)
                .patch(admin::patch_token)
                .delete(admin::delete_token),
        )
        .route(
            "/registries/{registry_id}/tokens/{token_id}/credentials",
            axum::routing::post(admin::rotate_credentials),
        )
        .route(
            "/registries/{registry_id}/tokens/{token_id}/federation/check",
            axum::routing::post(admin::check_federation),
        )
        .route(
            "/registries/{registry_id}/activity",
            get(activity::registry_activity),
        )
        .route(
            "/registries/{registry_id}/tokens/{token_id}/activity",
            get(activity::token_activity),
        )
        .route("/keys", get(keys::list_keys).post(keys::create_key))
        .route(
            "/keys/{key_id}",
            get(keys::get_key).delete(keys::delete_key),
        )
        .route("/keys/{key_id}/check", axum::routing::post(keys::check_key))
        .route(
            "/keys/{key_id}/activate",
            axum::routing::post(keys::activate_key),
        )
        .route("/admins", get(admins::list).post(admins::create))
        .route("/admins/me", get(admins::me))
        .route("/admins/{name}", axum::routing::delete(admins::delete))
        .route(
            "/admins/{name}/credentials",
            axum::routing::post(admins::rotate),
        )
        .fallback(admin::not_found)
        .method_not_allowed_fallback(admin::method_not_allowed)
        // Inside the admin token check: only authenticated writes reach it.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::audit_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin::require_admin,
        ))
        // After the admin layer, so outside the admin token: the document is public.
        .route("/openapi.json", get(openapi::serve))
        .layer(axum::middleware::map_response(headers::api_headers));
    let router = Router::new()
        .route("/auth", get(auth::get_token).post(auth::post_token))
        .route("/auth/token", get(auth::get_token).post(auth::post_token))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/.well-known/jwks.json", get(keys::jwks))
        // A registry's notifications: its events secret, not the admin token.
        .route(
            "/events/{registry_id}",
            axum::routing::post(activity::receive),
        )
        .nest("/api/v1", api)
        .merge(console::routes());
    #[cfg(feature = "bench-baseline")]
    let router = router.route("/bench/sign", bench::sign_route(&state));
    router
        .layer(axum::middleware::map_response(headers::nosniff))
        .with_state(state)
}

/// The metrics listener's router (`[metrics] listen`): `GET /metrics` and nothing else, so the
/// main listener never exposes counts to whoever reaches the token endpoint.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                "not found: GET /metrics\n",
            )
        })
        .layer(axum::middleware::map_response(headers::nosniff))
        .with_state(state)
}

/// The OpenMetrics text of every metric.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    if let Some(keys) = &state.keys {
        let certificates: Vec<(String, String, i64)> = keys
            .not_afters()
            .into_iter()
            .map(|(id, st, at)| (id, st, at.timestamp()))
            .collect();
        state.metrics.set_signing_certificates(&certificates);
    }
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}
