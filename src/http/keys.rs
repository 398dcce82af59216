//! Signing-key rotation over HTTP: the admin API under `/api/v1/keys` (list, add, check,
//! activate, retire; each write audited) and the public JWK Set of every published key
//! (`GET /.well-known/jwks.json`, for tooling; the registries read the files).
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};

use super::error::{ApiError, TaskFailed};
use super::extract::{parse_query, AppJson};
use super::state::AppState;
use crate::api::{self, ErrorBody};
use crate::jwt::keyring::KeyringError;
use crate::jwt::keystore::{KeyStore, KeyStoreError, KeyView};
use crate::service::audit;

fn keys(state: &AppState) -> Result<Arc<KeyStore>, ApiError> {
    state.keys.clone().ok_or_else(|| {
        ApiError::NotFound("this server signs with a single fixed key: no key rotation".into())
    })
}

impl From<KeyStoreError> for ApiError {
    fn from(e: KeyStoreError) -> Self {
        match e {
            KeyStoreError::Rule(KeyringError::NotFound(id)) => {
                ApiError::NotFound(format!("no signing key {id}"))
            }
            KeyStoreError::Rule(rule) => ApiError::Conflict(rule.to_string()),
            KeyStoreError::Unsupported(msg) => ApiError::BadRequest(msg),
            e @ KeyStoreError::Concurrent => ApiError::Conflict(e.to_string()),
            e @ KeyStoreError::Key(_) => ApiError::Internal(Box::new(e)),
        }
    }
}

fn key_out(view: &KeyView, libtrust_kid: String) -> api::Key {
    let r = &view.record;
    let t = |t: DateTime<Utc>| api::time::rfc3339(t);
    api::Key {
        id: r.id.clone(),
        algorithm: r.algorithm.clone(),
        state: r.state.to_string(),
        libtrust_kid,
        not_after: t(r.not_after),
        days_left: view.days_left,
        created: t(r.created),
        activated: r.activated.map(t),
        deactivated: r.deactivated.map(t),
        retirable_at: view.retirable_at.map(t),
    }
}

/// The libtrust kid of key `id`, read from the JWK Set the store publishes.
fn libtrust_kid(keys: &KeyStore, id: &str) -> String {
    keys.libtrust_kid(id).unwrap_or_default()
}

/// Runs a keystore call on a blocking thread: it writes and syncs files, generates keys (an
/// RSA key takes long on a worker) and, with PostgreSQL, waits for the shared keyring
/// synchronously ([`crate::store::PgStore::blocking`]). Not for the store's sake.
async fn blocking<T: Send + 'static>(
    keys: Arc<KeyStore>,
    f: impl FnOnce(&KeyStore) -> Result<T, KeyStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&keys))
        .await
        .map_err(|e| ApiError::Internal(Box::new(TaskFailed(e))))?
        .map_err(ApiError::from)
}

fn client(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    Some(super::limits::client_addr(
        peer,
        &parts.headers,
        &state.config.limits.trusted_proxies,
    ))
}

/// `force=true` in the query string.
fn forced(parts: &Parts) -> Result<bool, ApiError> {
    let query = parts.uri.query().unwrap_or_default();
    let pairs = parse_query(query);
    match super::extract::last(&pairs, "force") {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(v) => Err(ApiError::BadRequest(format!(
            "force: must be true or false, got {v:?}"
        ))),
    }
}

fn audited(
    action: &str,
    key: &str,
    forced: bool,
    client: Option<IpAddr>,
    result: Result<Response, ApiError>,
) -> Response {
    let resp = result.into_response();
    audit::key_action(action, key, forced, client, resp.status().as_u16());
    resp
}

/// List the signing keys with their states and certificate expiry.
#[utoipa::path(
    get, path = "/api/v1/keys", tag = "keys", operation_id = "keysGet",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "Every signing key, in creation order.", body = api::KeyList),
        super::admin::AdminRefusals,
    )
)]
pub async fn list_keys(State(state): State<AppState>) -> Result<Json<api::KeyList>, ApiError> {
    let keys = keys(&state)?;
    let now = state.clock.now();
    let items = keys
        .list(now)
        .iter()
        .map(|v| key_out(v, libtrust_kid(&keys, &v.record.id)))
        .collect();
    Ok(Json(api::KeyList { items }))
}

/// Add a signing key in state `next`: published in the bundle and the JWK Set, not signing.
#[utoipa::path(
    post, path = "/api/v1/keys", tag = "keys", operation_id = "keysPost",
    security(("adminToken" = [])),
    request_body = api::KeyCreate,
    responses(
        (status = 201, description = "The new key; restart the registries so they read the bundle.", body = api::Key),
        (status = 400, description = "Malformed JSON or an algorithm regauth cannot generate.", body = ErrorBody),
        super::admin::AdminRefusals,
        (status = 409, description = "With PostgreSQL: another replica changed the keys at the same time; retry.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    parts: Parts,
    AppJson(input): AppJson<api::KeyCreate>,
) -> Response {
    let client = client(&state, &parts);
    let now = state.clock.now();
    let result = async {
        let keys = keys(&state)?;
        let alg = input.algorithm.unwrap_or_else(|| "ES256".into());
        let view = blocking(keys.clone(), move |k| k.add(&alg, now)).await?;
        let out = key_out(&view, libtrust_kid(&keys, &view.record.id));
        let mut resp = (StatusCode::CREATED, Json(out)).into_response();
        let href = format!("{}/api/v1/keys/{}", state.config.public_url, view.record.id);
        if let Ok(v) = HeaderValue::from_str(&href) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Ok::<_, ApiError>((view.record.id, resp))
    }
    .await;
    match result {
        Ok((id, resp)) => audited("key-add", &id, false, client, Ok(resp)),
        Err(e) => audited("key-add", "", false, client, Err(e)),
    }
}

/// Get one signing key.
#[utoipa::path(
    get, path = "/api/v1/keys/{keyId}", tag = "keys", operation_id = "keysFindById",
    security(("adminToken" = [])),
    params(("keyId" = String, Path, description = "The key's RFC 7638 thumbprint.")),
    responses(
        (status = 200, description = "The key.", body = api::Key),
        super::admin::AdminRefusals,
        (status = 404, description = "No such key.", body = ErrorBody),
    )
)]
pub async fn get_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<api::Key>, ApiError> {
    let keys = keys(&state)?;
    let view = keys.get(&id, state.clock.now())?;
    Ok(Json(key_out(&view, libtrust_kid(&keys, &id))))
}

async fn check(state: &AppState, id: &str) -> Result<api::KeyCheck, ApiError> {
    let keys = keys(state)?;
    let id_owned = id.to_string();
    let issuer = blocking(keys, move |k| k.candidate(&id_owned)).await?;
    let registries =
        crate::service::keys::probe(&issuer, &state.config.registries, state.clock.now()).await;
    Ok(api::KeyCheck {
        id: id.to_string(),
        trusted: registries.iter().all(|p| p.trusted),
        registries,
    })
}

/// Ask every registry with a `url` whether it trusts the key: a token with empty access,
/// signed by the key, is sent to `GET <url>/v2/` (200 = trusted).
#[utoipa::path(
    post, path = "/api/v1/keys/{keyId}/check", tag = "keys", operation_id = "keysCheck",
    security(("adminToken" = [])),
    params(("keyId" = String, Path, description = "The key's RFC 7638 thumbprint.")),
    responses(
        (status = 200, description = "A verdict per registry.", body = api::KeyCheck),
        super::admin::AdminRefusals,
        (status = 404, description = "No such key.", body = ErrorBody),
    )
)]
pub async fn check_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<api::KeyCheck>, ApiError> {
    check(&state, &id).await.map(Json)
}

/// Make the key the one that signs every token. Refused (409, naming them) while a registry
/// with a `url` does not trust it yet, unless `force=true`.
#[utoipa::path(
    post, path = "/api/v1/keys/{keyId}/activate", tag = "keys", operation_id = "keysActivate",
    security(("adminToken" = [])),
    params(
        ("keyId" = String, Path, description = "The key's RFC 7638 thumbprint."),
        ("force" = Option<bool>, Query, description = "Activate without asking the registries."),
    ),
    responses(
        (status = 200, description = "The key, now active.", body = api::Key),
        super::admin::AdminRefusals,
        (status = 400, description = "`force` is not `true` or `false`.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody),
        (status = 409, description = "Already active, registries that do not trust it yet (named), or another replica changed the keys at the same time.", body = ErrorBody),
    )
)]
pub async fn activate_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
) -> Response {
    let client = client(&state, &parts);
    let force = forced(&parts);
    let forced_flag = *force.as_ref().unwrap_or(&false);
    let result = async {
        let force = force?;
        let keys = keys(&state)?;
        if !force {
            keys.get(&id, state.clock.now())?;
            let verdict = check(&state, &id).await?;
            let refusing: Vec<String> = verdict
                .registries
                .iter()
                .filter(|p| !p.trusted)
                .map(|p| format!("{} ({})", p.registry, p.detail))
                .collect();
            if !refusing.is_empty() {
                return Err(ApiError::Conflict(format!(
                    "key {id} is not trusted yet by: {}; restart those registries with the new \
                     bundle, or activate with force=true",
                    refusing.join(", ")
                )));
            }
        }
        let now = state.clock.now();
        let id2 = id.clone();
        let view = blocking(keys.clone(), move |k| k.activate(&id2, now)).await?;
        Ok(Json(key_out(&view, libtrust_kid(&keys, &id))).into_response())
    }
    .await;
    audited("key-activate", &id, forced_flag, client, result)
}

/// Retire a key: removed from the bundle and the JWK Set. Refused (409) for the active key,
/// and until its deactivation + the token lifetime + 60 s, unless `force=true` (after a leak).
#[utoipa::path(
    delete, path = "/api/v1/keys/{keyId}", tag = "keys", operation_id = "keysDelete",
    security(("adminToken" = [])),
    params(
        ("keyId" = String, Path, description = "The key's RFC 7638 thumbprint."),
        ("force" = Option<bool>, Query, description = "Retire before its tokens have expired."),
    ),
    responses(
        (status = 204, description = "Retired; restart the registries to stop trusting it."),
        super::admin::AdminRefusals,
        (status = 400, description = "`force` is not `true` or `false`.", body = ErrorBody),
        (status = 404, description = "No such key.", body = ErrorBody),
        (status = 409, description = "The active key, tokens it signed may still be valid (the message says until when), or another replica changed the keys at the same time.", body = ErrorBody),
    )
)]
pub async fn delete_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    parts: Parts,
) -> Response {
    let client = client(&state, &parts);
    let force = forced(&parts);
    let forced_flag = *force.as_ref().unwrap_or(&false);
    let result = async {
        let force = force?;
        let keys = keys(&state)?;
        let now = state.clock.now();
        let id2 = id.clone();
        blocking(keys, move |k| k.retire(&id2, now, force)).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    audited("key-retire", &id, forced_flag, client, result)
}

/// The JWK Set of every published key (RFC 7638 kids): public, for tooling.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let body = match &state.keys {
        Some(k) => k.jwks().as_str().to_string(),
        None => {
            let key = state.auth.issuer();
            let mut set = serde_json::Map::new();
            set.insert("keys".into(), vec![key.key().jwk()].into());
            serde_json::Value::Object(set).to_string()
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        )],
        body,
    )
        .into_response()
}

/// The algorithms of every published key (3.x's `signingalgorithms` must list each one the
/// registry may meet during a rotation), in first-seen order.
pub fn signing_algorithms(state: &AppState) -> Vec<String> {
    let mut algs: Vec<String> = Vec::new();
    let published = match &state.keys {
        Some(k) => k
            .list(state.clock.now())
            .into_iter()
            .map(|v| v.record.algorithm)
            .collect(),
        None => vec![state.auth.issuer().key().alg().to_string()],
    };
    for alg in published {
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    algs
}

/// Path of the JWK Set file, with a keyring.
pub fn jwks_path(state: &AppState) -> Option<String> {
    state
        .keys
        .as_ref()
        .map(|k| k.options().jwks.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concurrent_change_by_another_replica_is_a_409_saying_so() {
        match ApiError::from(KeyStoreError::Concurrent) {
            ApiError::Conflict(msg) => assert!(msg.contains("another replica"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
