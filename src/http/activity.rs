//! Registry activity over HTTP: `POST /events/{registryId}`, where a registry's notifications
//! arrive (authenticated by the registry's events secret, not the admin token), and the admin
//! API's reads, `GET /api/v1/registries/{registryId}/activity` and
//! `GET /api/v1/registries/{registryId}/tokens/{tokenId}/activity`.
use axum::body::HttpBody;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::admin::{AdminRefusals, StoreUnavailable};
use super::error::ApiError;
use super::extract::{bearer_token, last, parse_query, KnownRegistry, Pairs, TokenId};
use super::state::AppState;
use crate::api::{self, ErrorBody, ResourceType};
use crate::domain::activity::{validate_digest, ActivityQuery, Event, EventAction};
use crate::domain::RepoPattern;
use crate::outcome::EventDrop;
use crate::service::activity::{ReceiveError, MAX_BODY_BYTES};
use crate::store::StoreError;

pub(super) fn store_error(e: StoreError) -> ApiError {
    match e {
        e @ StoreError::Unavailable { .. } => ApiError::Unavailable(Box::new(e)),
        e => ApiError::Internal(Box::new(e)),
    }
}

/// Receive a registry's notification envelope.
///
/// The body is distribution's envelope (`{"events": [...]}`, sent as
/// `application/vnd.docker.distribution.events.v1+json` by distribution 2.x, `…v2+json` by
/// 3.x; `application/json` is taken too, any other content type is refused with 415).
/// Events about manifests, tags and deletes are stored, each event id once; blob events are
/// dropped. The batch is durable before the 200.
#[utoipa::path(
    post, path = "/events/{registryId}", tag = "activity", operation_id = "eventsPost",
    security(("eventsSecret" = [])),
    params(("registryId" = String, Path, description = "The registry's id.")),
    request_body(content = String, content_type = "application/vnd.docker.distribution.events.v1+json",
        description = "distribution's notification envelope."),
    responses(
        (status = 200, description = "The envelope's image events are stored.", body = api::EventsReceived),
        (status = 400, description = "Not an envelope, an invalid event (the message names it: \
            `events[3].action: \"copy\" is not one of push, pull, delete, mount`), or more than 1000 \
            events. Nothing of it is stored.", body = ErrorBody),
        (status = 401, description = "Missing or wrong events secret. Nothing is stored.", body = ErrorBody),
        (status = 404, description = "No such registry.", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time.", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB. Nothing is stored.", body = ErrorBody),
        (status = 415, description = "The content type is none of `application/vnd.docker.distribution.events.v1+json`, \
            `application/vnd.docker.distribution.events.v2+json` and `application/json`. Nothing is stored.", body = ErrorBody),
        (status = 503, description = "The store is unreachable or too slow; the registry retries.", body = ErrorBody),
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    Path(registry): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let client = super::limits::request_client(&state, &req);
    let shown = client.map(|a| a.to_string()).unwrap_or_default();
    let (parts, body) = req.into_parts();
    if state.config.registry(&registry).is_none() {
        return ApiError::NotFound(format!("registry {registry:?} not found")).into_response();
    }
    let authorized =
        bearer_token(&parts.headers).is_some_and(|t| state.activity.check_secret(&registry, t));
    if !authorized {
        // Rationed per address (as refused admin logins are), so a client cannot flood the log.
        if state.throttle.admin_log().admit(client) {
            tracing::warn!(registry = %registry, client = %shown,
                "registry events refused: missing or wrong events secret (is the registry's notifications block current? `regauth registry-config`)");
        }
        return ApiError::Unauthorized.into_response();
    }
    if let Err(e) = check_media_type(&parts.headers) {
        tracing::warn!(registry = %registry, client = %shown, error = %e,
            "registry events refused: not a notification envelope's content type");
        state
            .metrics
            .registry_events(1, 0, &[(EventDrop::UnsupportedMediaType, 1)]);
        return e.into_response();
    }
    if HttpBody::size_hint(&body).lower() > MAX_BODY_BYTES as u64 {
        state
            .metrics
            .registry_events(1, 0, &[(EventDrop::TooLarge, 1)]);
        return too_large(&registry, &shown);
    }
    let timeout = state.body_timeout();
    let bytes =
        match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                state
                    .metrics
                    .registry_events(1, 0, &[(EventDrop::TooLarge, 1)]);
                return too_large(&registry, &shown);
            }
            Err(_) => return ApiError::BodyTimeout(timeout.as_secs()).into_response(),
        };
    match state.activity.receive(&registry, &bytes).await {
        Ok(r) => {
            tracing::debug!(registry = %registry, client = %shown, received = r.received, kept = r.kept,
                stored = r.stored, "registry events received");
            let n = |v: usize| v as u64;
            state.metrics.registry_events(
                n(r.received),
                n(r.stored),
                &[
                    (EventDrop::Blob, n(r.received.saturating_sub(r.kept))),
                    (EventDrop::Duplicate, n(r.kept.saturating_sub(r.stored))),
                ],
            );
            (
                StatusCode::OK,
                Json(api::EventsReceived {
                    received: r.received,
                    kept: r.kept,
                    stored: r.stored,
                }),
            )
                .into_response()
        }
        Err(ReceiveError::Envelope(e)) => {
            tracing::warn!(registry = %registry, client = %shown, error = %e,
                "registry events refused: bad envelope");
            let n = count_or_one(&bytes);
            state
                .metrics
                .registry_events(n, 0, &[(EventDrop::BadEnvelope, n)]);
            ApiError::BadRequest(e.to_string()).into_response()
        }
        Err(ReceiveError::Store(e)) => {
            tracing::error!(registry = %registry, error = %crate::error::Chain(&e),
                "cannot store registry events; the registry will retry");
            let n = count_or_one(&bytes);
            state
                .metrics
                .registry_events(n, 0, &[(EventDrop::StoreFailed, n)]);
            store_error(e).into_response()
        }
    }
}

/// The content types an envelope may come as: distribution 2.x sends v1, 3.x sends v2 (the
/// same envelope).
const ENVELOPE_TYPES: [&str; 3] = [
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
];

/// 415 unless the request's content type (parameters aside) is one of [`ENVELOPE_TYPES`].
fn check_media_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = given
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    if essence
        .as_deref()
        .is_some_and(|e| ENVELOPE_TYPES.contains(&e))
    {
        return Ok(());
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "Content-Type: {} is not one of {}",
        given.map_or_else(|| "none given".to_string(), |g| format!("{g:?}")),
        ENVELOPE_TYPES.join(", ")
    )))
}

/// The events in a refused envelope, for the metrics: as many as can be counted, else one.
fn count_or_one(body: &[u8]) -> u64 {
    #[derive(serde::Deserialize)]
    struct Count {
        events: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Count>(body).map_or(1, |c| c.events.len().max(1) as u64)
}

fn too_large(registry: &str, client: &str) -> Response {
    tracing::warn!(registry = %registry, client = %client, limit = MAX_BODY_BYTES,
        "registry events refused: body too large");
    ApiError::TooLarge(MAX_BODY_BYTES).into_response()
}

fn event_out(e: Event) -> api::ActivityEvent {
    api::ActivityEvent {
        id: e.id,
        time: e.time,
        action: e.action.to_string(),
        repository: e.repository,
        tag: e.tag,
        digest: e.digest,
        media_type: e.media_type,
        size: e.size,
        actor: e.actor,
        client_addr: e.client_addr,
        user_agent: e.user_agent,
        instance: e.instance,
    }
}

pub(super) fn number(
    pairs: &Pairs<'_>,
    key: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match last(pairs, key) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{key}: must be an integer from {min} to {max}, got {v:?}"
                ))
            }),
    }
}

fn nonempty<'a>(pairs: &'a Pairs<'_>, key: &str) -> Option<&'a str> {
    last(pairs, key).filter(|v| !v.is_empty())
}

/// The filters of the query string; `since` is relative to `now`.
fn query_of(
    pairs: &Pairs<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ActivityQuery, ApiError> {
    let mut q = ActivityQuery::default();
    if let Some(a) = nonempty(pairs, "action") {
        q.action = Some(
            a.parse::<EventAction>()
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        );
    }
    if let Some(r) = nonempty(pairs, "repository") {
        q.repository = Some(
            r.parse::<RepoPattern>()
                .map_err(|e| ApiError::BadRequest(format!("repository: {}", e.rule)))?,
        );
    }
    if let Some(d) = nonempty(pairs, "digest") {
        validate_digest("digest", d).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        q.digest = Some(d.to_string());
    }
    if let Some(t) = nonempty(pairs, "tag") {
        q.tag = Some(t.to_string());
    }
    if let Some(a) = nonempty(pairs, "actor") {
        q.actor = Some(a.to_string());
    }
    if let Some(s) = nonempty(pairs, "since") {
        q.since = Some(since(s, now)?);
    }
    Ok(q)
}

/// `since`: an RFC 3339 time, or a duration back from now (`7d`).
fn since(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = api::parse_duration(text)
        .map_err(|e| ApiError::BadRequest(format!("since: not an RFC 3339 time, and {e}")))?;
    Ok(now
        .checked_sub_signed(d)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
}

async fn page(
    state: &AppState,
    registry: &str,
    id: String,
    href: String,
    pairs: &Pairs<'_>,
    query: ActivityQuery,
) -> Result<Json<api::ActivityPage>, ApiError> {
    let offset = number(pairs, "offset", 0, 0, usize::MAX / 2)?;
    let limit = number(pairs, "limit", api::DEFAULT_LIMIT, 1, api::MAX_LIMIT)?;
    let found = state
        .activity
        .events(registry, &query, offset, limit)
        .await
        .map_err(store_error)?;
    // The filters as given, for the links.
    let mut filter = String::new();
    for key in ["action", "repository", "tag", "digest", "actor", "since"] {
        if let Some(v) = nonempty(pairs, key) {
            let encoded: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            filter.push_str(&format!("&{key}={encoded}"));
        }
    }
    let link = |o: usize| format!("{href}?offset={o}&limit={limit}{filter}");
    let count = found.items.len();
    let links = api::Links {
        this: link(offset),
        next: (offset + count < found.total).then(|| link(offset + count)),
        previous: (offset > 0).then(|| link(offset.min(found.total).saturating_sub(limit))),
    };
    Ok(Json(api::ActivityPage {
        id,
        kind: ResourceType::Collection,
        href,
        items: found.items.into_iter().map(event_out).collect(),
        offset,
        limit,
        count,
        total: found.total,
        total_is_lower_bound: found.total_is_lower_bound,
        links,
    }))
}

/// A registry's events, newest first: who pushed, pulled or deleted what.
#[utoipa::path(
    get, path = "/api/v1/registries/{registryId}/activity", tag = "activity",
    operation_id = "registriesActivityGet",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("offset" = Option<u64>, Query, description = "Index of the first event (default 0)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1 to 1000 (default 100)."),
        ("repository" = Option<String>, Query, description = "Only repositories matching this pattern (`*` any run, `?` one character): `team/*`."),
        ("tag" = Option<String>, Query, description = "Only this tag."),
        ("digest" = Option<String>, Query, description = "Only this digest (`sha256:…`)."),
        ("action" = Option<String>, Query, description = "Only `push`, `pull`, `delete` or `mount`."),
        ("actor" = Option<String>, Query, description = "Only events of this actor (a token's name)."),
        ("since" = Option<String>, Query, description = "Only events at or after this RFC 3339 time, or this far back (`7d`)."),
    ),
    responses(
        (status = 200, description = "One page of events, newest first.", body = api::ActivityPage),
        (status = 400, description = "A filter, `offset` or `limit` is malformed; the message names it.", body = ErrorBody),
        (status = 404, description = "No such registry.", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
    )
)]
pub async fn registry_activity(
    State(state): State<AppState>,
    KnownRegistry(r): KnownRegistry,
    RawQuery(query): RawQuery,
) -> Result<Json<api::ActivityPage>, ApiError> {
    let pairs = parse_query(query.as_deref().unwrap_or(""));
    let q = query_of(&pairs, state.clock.now())?;
    let href = format!(
        "{}/api/v1/registries/{}/activity",
        state.config.public_url, r.id
    );
    page(&state, &r.id, format!("{}-activity", r.id), href, &pairs, q).await
}

/// A token's events (those whose actor is the token's name), newest first.
#[utoipa::path(
    get, path = "/api/v1/registries/{registryId}/tokens/{tokenId}/activity", tag = "activity",
    operation_id = "registriesTokensActivityGet",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("tokenId" = uuid::Uuid, Path, description = "The token's id."),
        ("offset" = Option<u64>, Query, description = "Index of the first event (default 0)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1 to 1000 (default 100)."),
        ("action" = Option<String>, Query, description = "Only `push`, `pull`, `delete` or `mount`."),
        ("since" = Option<String>, Query, description = "Only events at or after this RFC 3339 time, or this far back (`7d`)."),
    ),
    responses(
        (status = 200, description = "One page of the token's events, newest first.", body = api::ActivityPage),
        (status = 400, description = "`tokenId` is not a UUID, or a filter, `offset` or `limit` is malformed.", body = ErrorBody),
        (status = 404, description = "No such registry or token.", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
    )
)]
pub async fn token_activity(
    State(state): State<AppState>,
    KnownRegistry(r): KnownRegistry,
    TokenId(id): TokenId,
    RawQuery(query): RawQuery,
) -> Result<Json<api::ActivityPage>, ApiError> {
    let pairs = parse_query(query.as_deref().unwrap_or(""));
    let mut q = ActivityQuery::default();
    if let Some(a) = nonempty(&pairs, "action") {
        q.action = Some(
            a.parse::<EventAction>()
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        );
    }
    if let Some(s) = nonempty(&pairs, "since") {
        q.since = Some(since(s, state.clock.now())?);
    }
    let token = state
        .admin
        .get(&r.id, id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::NotFound(format!("token {id} not found")))?;
    q.actor = Some(token.name.to_string());
    let href = format!(
        "{}/api/v1/registries/{}/tokens/{id}/activity",
        state.config.public_url, r.id
    );
    page(&state, &r.id, format!("{id}-activity"), href, &pairs, q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-06-08T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            since("7d", now).unwrap().to_rfc3339(),
            "2026-06-01T00:00:00+00:00"
        );
        assert_eq!(
            since("2026-06-02T00:00:00Z", now).unwrap().to_rfc3339(),
            "2026-06-02T00:00:00+00:00"
        );
        assert!(since("last week", now).is_err());
    }
}
