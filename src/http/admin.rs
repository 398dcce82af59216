//! The admin API under `/api/v1`, shaped like the IONOS Cloud Container Registry token API so
//! its SDKs work unchanged. Each handler is an extractor chain (admin token by middleware,
//! then [`KnownRegistry`], [`TokenId`], [`AppJson`]), a parse of the wire body ([`crate::api`])
//! into domain types (errors name the JSON field), an awaited call to
//! [`crate::service::AdminService`], and a conversion of the result into the wire types.
//!
//! The `#[utoipa::path]` on each handler is its entry in the OpenAPI document
//! (`super::openapi`), so the document and the routes sit side by side.

use axum::body::Body;
use axum::extract::{OriginalUri, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use super::audit::AuditDetails;
use super::error::ApiError;
use super::extract::{
    bearer_token, last, parse_json, parse_query, read_body, AppJson, KnownRegistry, Pairs, TokenId,
};
use super::state::AppState;
use crate::api::{self, ErrorBody, ResourceType};
use crate::config::RegistryConfig;
use crate::domain::federation::Federation;
use crate::domain::{
    parse_networks, validate_grace, Description, Network, Owner, Patch, Principal, Scope, Status,
    Token, TokenName, ValidationError,
};
use crate::service::audit::{self, AdminAction, AdminAuthFailure};
use crate::service::throttle::Endpoint;
use crate::service::{ListFilter, NewToken, PutOutcome, TokenChanges};

pub use crate::api::{DEFAULT_LIMIT, MAX_LIMIT};

// ---------- wire -> domain ----------

/// Puts a domain error under the JSON object it came from (`properties` on POST/PUT, the top
/// level on PATCH).
fn under(e: ValidationError, prefix: Option<&str>) -> ValidationError {
    match prefix {
        Some(p) => e.within(p),
        None => e,
    }
}

fn parse_status(s: Option<&str>, prefix: Option<&str>) -> Result<Option<Status>, ValidationError> {
    s.map(|s| s.parse::<Status>().map_err(|e| under(e, prefix)))
        .transpose()
}

fn parse_expiry(text: &str, field: &str) -> Result<DateTime<Utc>, ValidationError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc).trunc_subsecs(0))
        .map_err(|_| {
            ValidationError::new(
                field,
                format!("{text:?} is not an RFC 3339 timestamp like 2026-12-01T10:00:00Z"),
            )
        })
}

fn parse_scopes(
    scopes: Option<Vec<api::Scope>>,
    prefix: &str,
) -> Result<Option<Vec<Scope>>, ValidationError> {
    let Some(scopes) = scopes else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(scopes.len());
    for (i, s) in scopes.iter().enumerate() {
        out.push(
            Scope::parse(&s.kind, &s.name, &s.actions)
                .map_err(|e| e.within(&format!("{prefix}scopes[{i}]")))?,
        );
    }
    Ok(Some(out))
}

fn networks(list: &[String], prefix: Option<&str>) -> Result<Vec<Network>, ValidationError> {
    parse_networks(list).map_err(|e| under(e, prefix))
}

fn text<T: std::str::FromStr<Err = ValidationError>>(
    v: Option<&str>,
    prefix: Option<&str>,
) -> Result<Option<T>, ValidationError> {
    v.map(|v| v.parse::<T>().map_err(|e| under(e, prefix)))
        .transpose()
}

/// A federation from the wire: the defaults filled in, the seconds made durations. Its rules
/// (issuer configured, pinning, limits) are the admin service's to check.
fn federation(f: api::Federation, field: &str) -> Result<Federation, ValidationError> {
    let seconds = |v: Option<i64>, default: TimeDelta, key: &str| match v {
        None => Ok(default),
        Some(s) => TimeDelta::try_seconds(s)
            .filter(|d| *d > TimeDelta::zero())
            .ok_or_else(|| {
                ValidationError::new(
                    format!("{field}.{key}"),
                    format!("must be a positive number of seconds, got {s}"),
                )
            }),
    };
    let mut fed = Federation::new(f.issuer, f.audiences, f.claims);
    fed.max_id_token_lifetime = seconds(
        f.max_id_token_lifetime_seconds,
        fed.max_id_token_lifetime,
        "maxIdTokenLifetimeSeconds",
    )?;
    fed.session = seconds(f.session_seconds, fed.session, "sessionSeconds")?;
    fed.jwks = f.jwks;
    Ok(fed)
}

fn federation_out(f: &Federation) -> api::Federation {
    api::Federation {
        issuer: f.issuer.clone(),
        audiences: f.audiences.clone(),
        claims: f.claims.clone(),
        max_id_token_lifetime_seconds: Some(f.max_id_token_lifetime.num_seconds()),
        session_seconds: Some(f.session.num_seconds()),
        jwks: f.jwks.clone(),
    }
}

fn new_token(p: api::TokenPropertiesInput) -> Result<NewToken, ValidationError> {
    let name: TokenName = p.name.parse().map_err(|e| under(e, Some("properties")))?;
    let props = Some("properties");
    Ok(NewToken {
        federation: p
            .federation
            .map(|f| federation(f, "properties.federation"))
            .transpose()?,
        networks: networks(p.allowed_networks.as_deref().unwrap_or_default(), props)?,
        owner: text::<Owner>(p.owner.as_deref(), props)?,
        description: text::<Description>(p.description.as_deref(), props)?,
        name,
        status: parse_status(p.status.as_deref(), Some("properties"))?.unwrap_or_default(),
        expiry: p
            .expiry_date
            .as_deref()
            .map(|t| parse_expiry(t, "properties.expiryDate"))
            .transpose()?,
        scopes: parse_scopes(p.scopes, "properties.")?.unwrap_or_default(),
    })
}

fn changes(p: api::TokenPatch) -> Result<TokenChanges, ValidationError> {
    Ok(TokenChanges {
        status: parse_status(p.status.as_deref(), None)?,
        expiry: p.expiry_date.try_map(|t| parse_expiry(&t, "expiryDate"))?,
        scopes: parse_scopes(p.scopes, "")?,
        networks: match &p.allowed_networks {
            Patch::Absent => None,
            Patch::Null => Some(Vec::new()),
            Patch::Value(list) => Some(networks(list, None)?),
        },
        owner: p.owner.try_map(|o| o.parse::<Owner>())?,
        description: p.description.try_map(|d| d.parse::<Description>())?,
        federation: p
            .federation
            .map(|f| federation(f, "federation"))
            .transpose()?,
    })
}

// ---------- domain -> wire ----------

fn tokens_href(state: &AppState, registry: &str) -> String {
    format!(
        "{}/api/v1/registries/{registry}/tokens",
        state.config.public_url
    )
}

fn scope_out(s: &Scope) -> api::Scope {
    api::Scope {
        kind: s.kind_str().to_string(),
        name: s.name_str().to_string(),
        actions: s.actions.iter().map(|a| a.as_str().to_string()).collect(),
    }
}

/// `expired` wins: only tokens kept past their expiry (`on_expiry = "disable"`) show it.
fn status_out(t: &Token, now: DateTime<Utc>) -> api::TokenStatus {
    if t.is_expired(now) {
        return api::TokenStatus::Expired;
    }
    match t.status {
        Status::Enabled => api::TokenStatus::Enabled,
        Status::Disabled => api::TokenStatus::Disabled,
    }
}

fn token_out(state: &AppState, t: Token, password: Option<String>) -> api::Token {
    let now = state.clock.now();
    api::Token {
        id: t.id,
        kind: ResourceType::Token,
        href: format!("{}/{}", tokens_href(state, &t.registry), t.id),
        metadata: api::Metadata {
            created_by: t.created_by.clone(),
            created_date: t.created,
            last_modified_by: t.modified_by.clone(),
            last_modified_date: t.modified,
            state: "AVAILABLE".into(),
            last_used_date: t.last_used.map(|u| u.at),
            last_used_from: t.last_used.and_then(|u| u.client).map(|a| a.to_string()),
            last_used_grant_type: t.last_used.map(|u| u.grant.as_str().to_string()),
        },
        properties: api::TokenProperties {
            credentials: api::Credentials {
                username: t.name.to_string(),
                password,
            },
            name: t.name.to_string(),
            expiry_date: t.expiry,
            scopes: t.scopes.iter().map(scope_out).collect(),
            status: status_out(&t, now),
            previous_password_expiry_date: t.previous_valid_until(now),
            allowed_networks: t.networks.iter().map(|n| n.to_string()).collect(),
            owner: t.owner.map(String::from),
            description: t.description.map(String::from),
            federation: t.federation.as_deref().map(federation_out),
        },
    }
}

/// `who` sees the registry's events secret when it may change tokens (editor or owner).
fn registry_out(state: &AppState, r: &RegistryConfig, who: &Principal) -> api::Registry {
    let show_secret = crate::domain::allows(who.role, crate::domain::Permission::WriteTokens);
    let started = state.clock.now();
    api::Registry {
        id: r.id.clone(),
        kind: ResourceType::Registry,
        href: format!("{}/api/v1/registries/{}", state.config.public_url, r.id),
        metadata: api::Metadata {
            created_by: "config".into(),
            created_date: started,
            last_modified_by: "config".into(),
            last_modified_date: started,
            state: "AVAILABLE".into(),
            last_used_date: None,
            last_used_from: None,
            last_used_grant_type: None,
        },
        properties: api::RegistryProperties {
            name: r.id.clone(),
            hostname: r.hostname.clone(),
            service: r.service.clone(),
            location: String::new(),
            token_auth: api::TokenAuth {
                realm: state.config.realm(),
                service: r.service.clone(),
                issuer: state.config.jwt.issuer.clone(),
                rootcertbundle: state.certificate.display().to_string(),
                signingalgorithms: super::keys::signing_algorithms(state),
                jwks: super::keys::jwks_path(state),
            },
            notifications: Some(api::Notifications {
                url: format!("{}/events/{}", state.config.public_url, r.id),
                secret: show_secret
                    .then(|| state.activity.secret(&r.id).map(str::to_string))
                    .flatten(),
            }),
        },
    }
}

// ---------- middleware and helpers ----------

/// Requires `Authorization: Bearer <admin token>`, compared in constant time (over hashes, so
/// the length of the configured token does not leak either).
///
/// Failed attempts are counted per client address ([`Throttle`](crate::service::Throttle));
/// over `[limits] admin_failures` the address gets 429 with `Retry-After` until its lockout
/// ends, without its token being looked at. A refusal is an audit line
/// (`service::audit::admin_auth_failed`, rationed per address like the token endpoint's
/// denials) and a metric.
pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let addr = super::limits::request_client(&state, &req);
    let peer = super::limits::request_peer(&req);
    let path = |req: &Request| {
        req.extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().path(), |u| u.0.path())
            .to_owned()
    };
    let throttle = &state.throttle;
    // A browser's request from another site: refused before the token is looked at, and not
    // counted: a web page must not be able to lock its visitors out.
    if let Some(why) = super::limits::cross_site(req.headers(), &state.config.public_url) {
        if throttle.admin_log().admit(addr) {
            tracing::warn!(client = %addr.map(|a| a.to_string()).unwrap_or_default(), method = %req.method(), path = %path(&req),
                reason = %why, "cross-site admin request refused");
        }
        return ApiError::Forbidden(why).into_response();
    }
    let ticket = match throttle.check(Endpoint::Admin, addr, None) {
        Ok(ticket) => ticket,
        Err(refused) => {
            state.metrics.throttled("admin").inc();
            if throttle.admin_log().admit(addr) {
                audit::admin_auth_throttled(
                    addr,
                    peer,
                    req.method().as_str(),
                    &path(&req),
                    refused.retry_after_seconds(),
                );
            }
            return ApiError::TooManyRequests(refused).into_response();
        }
    };
    // The bootstrap admin token is the `bootstrap` owner; any other bearer is looked up as a
    // named admin's secret (one hash, one lookup in the admins' cache).
    let found = match bearer_token(req.headers()) {
        None => Err(AdminAuthFailure::Missing),
        Some(t) if state.admin_token.matches(t) => Ok(Principal::bootstrap()),
        Some(t) => match state.admins.authenticate(t).await {
            Ok(Some(who)) => Ok(who),
            Ok(None) => Err(AdminAuthFailure::Wrong),
            Err(e) => return ApiError::from(crate::service::AdminError::from(e)).into_response(),
        },
    };
    let why = match found {
        Ok(who) => {
            // The right admin credential forgives this address's failed attempts.
            throttle.succeeded(ticket, "");
            return authorized(&state, who, addr, req, next).await;
        }
        Err(why) => why,
    };
    // A request without credentials guesses nothing (a browser, a probe): not a failure.
    if why != AdminAuthFailure::Missing {
        throttle.failed(ticket, None, None);
    }
    state.metrics.admin_auth_failed(why);
    if throttle.admin_log().admit(addr) {
        audit::admin_auth_failed(addr, peer, req.method().as_str(), &path(&req), why);
    }
    ApiError::Unauthorized.into_response()
}

/// Checks the authenticated admin's role and registry restriction against the route
/// ([`super::admins::permission_of`]) and passes the admin on in the request's extensions.
async fn authorized(
    state: &AppState,
    who: Principal,
    addr: Option<std::net::IpAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let (permission, registry) = super::admins::permission_of(req.method(), &path);
    // An unknown registry is the handler's 404, not a 403 that would confirm nothing.
    let registry = registry.filter(|r| state.config.registries.iter().any(|c| c.id == *r));
    if let Err(refusal) = who.check(permission, registry) {
        let reason = refusal.to_string();
        audit::admin_refused(
            &who.name,
            who.role.as_str(),
            req.method().as_str(),
            &path,
            &reason,
            addr,
        );
        return ApiError::Forbidden(reason).into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

/// Known paths under `/api/v1` with a method they do not have.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Unknown paths under `/api/v1`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource in the admin API".into())
}

/// A service call's outcome as the API's.
fn served<T>(result: Result<T, crate::service::AdminError>) -> Result<T, ApiError> {
    result.map_err(ApiError::from)
}

fn created(state: &AppState, token: Token, password: Option<String>) -> Response {
    let out = token_out(state, token, password);
    let location = HeaderValue::from_str(&out.href).ok();
    let mut resp = (StatusCode::CREATED, Json(out)).into_response();
    if let Some(v) = location {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

pub(super) fn page_param(
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

// ---------- handlers ----------

/// The replies every admin endpoint may give before its handler runs (`require_admin`):
/// one set, so the OpenAPI document says the same of every operation.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its derived OpenAPI description is used
pub(crate) enum AdminRefusals {
    /// Missing or wrong admin token.
    #[response(status = 401, description = "Missing or wrong admin token.")]
    Unauthorized(ErrorBody),
    /// A browser's cross-site request.
    #[response(
        status = 403,
        description = "A browser's cross-site request (`Sec-Fetch-Site` other than `same-origin` or `none`, \
            or a foreign `Origin`): refused before the admin token is looked at, and not counted. \
            Or the admin's role does not allow the request (the message names the role needed: \
            `this needs the editor role; alice is a viewer`), or the admin is limited to other registries."
    )]
    Forbidden(ErrorBody),
    /// Throttled.
    #[response(
        status = 429,
        description = "Too many failed admin authentications from this address; `Retry-After` says when to try again.",
        headers(("Retry-After" = u64, description = "Seconds until the lockout ends."))
    )]
    TooManyRequests(ErrorBody),
}

/// The reply of an endpoint that reads or writes the store while PostgreSQL is away.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its derived OpenAPI description is used
pub(crate) enum StoreUnavailable {
    /// The store is unreachable.
    #[response(
        status = 503,
        description = "The token store (PostgreSQL) is unreachable or too slow; retry after `Retry-After` seconds."
    )]
    Unavailable(ErrorBody),
}

/// List the registries regauth issues tokens for.
#[utoipa::path(
    get, path = "/api/v1/registries", tag = "registries", operation_id = "registriesGet",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "Every configured registry.", body = api::RegistryList),
        AdminRefusals,
    )
)]
pub async fn list_registries(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Json<api::RegistryList> {
    Json(api::RegistryList {
        id: "registries".into(),
        kind: ResourceType::Collection,
        href: format!("{}/api/v1/registries", state.config.public_url),
        items: state
            .config
            .registries
            .iter()
            .filter(|r| who.sees(&r.id))
            .map(|r| registry_out(&state, r, &who))
            .collect(),
    })
}

/// Get a registry, with the `auth: token:` settings that make it trust this regauth.
#[utoipa::path(
    get, path = "/api/v1/registries/{registryId}", tag = "registries",
    operation_id = "registriesFindById",
    security(("adminToken" = [])),
    params(("registryId" = String, Path, description = "The registry's id from the config file.")),
    responses(
        (status = 200, description = "The registry.", body = api::Registry),
        (status = 400, description = "The path does not decode.", body = ErrorBody),
        (status = 404, description = "No such registry.", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn get_registry(
    State(state): State<AppState>,
    KnownRegistry(r): KnownRegistry,
    Extension(who): Extension<Principal>,
) -> Json<api::Registry> {
    Json(registry_out(&state, &r, &who))
}

/// The `filter.name` query parameter: a substring of the names to list, compared in
/// lowercase (names are lowercase). At most a name's length.
fn name_filter(pairs: &Pairs<'_>) -> Result<Option<String>, ApiError> {
    match last(pairs, "filter.name") {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > 63 => Err(ApiError::BadRequest(format!(
            "filter.name: must be at most 63 characters (the longest name), got {}",
            v.chars().count()
        ))),
        Some(v) => Ok(Some(v.to_lowercase())),
    }
}

/// The `filter.owner` query parameter: an owner, matched exactly.
fn owner_filter(pairs: &Pairs<'_>) -> Result<Option<String>, ApiError> {
    match last(pairs, "filter.owner") {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<Owner>()
            .map(|o| Some(String::from(o)))
            .map_err(|e| ApiError::BadRequest(format!("filter.{e}"))),
    }
}

/// The `filter.violations` query parameter: `true` or `false` (the default).
fn violations_filter(pairs: &Pairs<'_>) -> Result<bool, ApiError> {
    match last(pairs, "filter.violations") {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::BadRequest(format!(
            "filter.violations: must be true or false, got {v:?}"
        ))),
    }
}

/// List a registry's tokens, sorted by name, one page at a time.
#[utoipa::path(
    get, path = "/api/v1/registries/{registryId}/tokens", tag = "tokens",
    operation_id = "registriesTokensGet",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("offset" = Option<u64>, Query, description = "Index of the first token (default 0)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000,
            description = "Page size, 1 to 1000 (default 100)."),
        ("filter.name" = Option<String>, Query, max_length = 63,
            description = "Only tokens whose name contains this text (case-insensitive); \
                `total` counts the matches."),
        ("expiringWithin" = Option<String>, Query,
            description = "Only tokens whose expiryDate is at most this far ahead: whole seconds \
                (`604800`) or a number with a unit s, m, h, d, w (`7d`). With `on_expiry = \"disable\"` \
                tokens already expired are included. Combines with `filter.name`."),
        ("filter.owner" = Option<String>, Query, max_length = 128,
            description = "Only tokens whose owner is exactly this. Combines with `filter.name` \
                and `filter.violations`, not with `expiringWithin`."),
        ("filter.violations" = Option<bool>, Query,
            description = "`true`: only tokens that break the registry's `max_token_lifetime` now \
                (no expiry, or an expiry further ahead than the limit), enabled or not; none when \
                the registry has no limit. Combines with `filter.name` and `filter.owner`, not \
                with `expiringWithin`."),
    ),
    responses(
        (status = 200, description = "One page of tokens; never a password.", body = api::TokenPage),
        (status = 400, description = "`offset`, `limit`, a filter or `expiringWithin` out of range, or `expiringWithin` with `filter.owner` or `filter.violations`.", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry.", body = ErrorBody),
    )
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    KnownRegistry(r): KnownRegistry,
    RawQuery(query): RawQuery,
) -> Result<Json<api::TokenPage>, ApiError> {
    let reg = r.id;
    let pairs = parse_query(query.as_deref().unwrap_or(""));
    let offset = page_param(&pairs, "offset", 0, 0, usize::MAX / 2)?;
    let limit = page_param(&pairs, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let name = name_filter(&pairs)?;
    let within = match last(&pairs, "expiringWithin") {
        None => None,
        Some(text) => Some(
            api::parse_duration(text)
                .map_err(|e| ApiError::BadRequest(format!("expiringWithin: {e}")))?,
        ),
    };
    let owner = owner_filter(&pairs)?;
    let violations = violations_filter(&pairs)?;
    if within.is_some() && (owner.is_some() || violations) {
        return Err(ApiError::BadRequest(
            "expiringWithin: cannot be combined with filter.owner or filter.violations".into(),
        ));
    }
    let r = reg.clone();
    let filter = ListFilter {
        name: name.clone(),
        owner: owner.clone(),
        violations,
    };
    let page = served(match within {
        Some(w) => {
            state
                .admin
                .list_expiring(&r, w, filter.name.as_deref(), offset, limit)
                .await
        }
        None => state.admin.list_filtered(&r, &filter, offset, limit).await,
    })?;
    let href = tokens_href(&state, &reg);
    let mut filter: String = name
        .map(|n| {
            let encoded: String = form_urlencoded::byte_serialize(n.as_bytes()).collect();
            format!("&filter.name={encoded}")
        })
        .unwrap_or_default();
    if let Some(o) = &owner {
        let encoded: String = form_urlencoded::byte_serialize(o.as_bytes()).collect();
        filter.push_str(&format!("&filter.owner={encoded}"));
    }
    if violations {
        filter.push_str("&filter.violations=true");
    }
    // The window as given (it parsed, so it is digits and a unit: nothing to escape).
    if let Some(w) = last(&pairs, "expiringWithin") {
        filter.push_str(&format!("&expiringWithin={}", w.trim()));
    }
    let link = |o: usize| format!("{href}?offset={o}&limit={limit}{filter}");
    let count = page.items.len();
    let links = api::Links {
        this: link(offset),
        next: (offset + count < page.total).then(|| link(offset + count)),
        // Past the end, `previous` is the last page that has items.
        previous: (offset > 0).then(|| link(offset.min(page.total).saturating_sub(limit))),
    };
    Ok(Json(api::TokenPage {
        id: format!("{reg}-tokens"),
        kind: ResourceType::Collection,
        href: href.clone(),
        items: page
            .items
            .into_iter()
            .map(|t| token_out(&state, t, None))
            .collect(),
        offset,
        limit,
        count,
        total: page.total,
        links,
    }))
}

/// Create a token. The reply is the only one that carries its password (a federated token
/// has none: it authenticates with ID tokens).
#[utoipa::path(
    post, path = "/api/v1/registries/{registryId}/tokens", tag = "tokens",
    operation_id = "registriesTokensPost",
    security(("adminToken" = [])),
    params(("registryId" = String, Path, description = "The registry's id.")),
    request_body = api::TokenCreate,
    responses(
        (status = 201, description = "Created; `properties.credentials.password` is shown this once \
            (absent for a federated token).",
            body = api::Token,
            headers(("Location" = String, description = "The token's URL."))),
        (status = 400, description = "Malformed JSON, an unknown field, or a broken rule; the message names the field \
            (a federation's issuer not in `[[federation.issuers]]`, or a federation that pins no identity, names the rule).",
            body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry.", body = ErrorBody),
        (status = 409, description = "The registry has a token of that name.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    KnownRegistry(r): KnownRegistry,
    AppJson(input): AppJson<api::TokenCreate>,
) -> Result<Response, ApiError> {
    let new = new_token(input.properties)?;
    let mut details = AuditDetails {
        token: new.name.to_string(),
        changes: audit::changes_of_new(&new),
        ..AuditDetails::default()
    };
    let result = served(
        state
            .admin
            .acting_as(&who.name)
            .create(&r.id, None, new)
            .await,
    );
    let result = result.map(|(token, password)| {
        details.id = Some(token.id);
        created(&state, token, password)
    });
    Ok(details.attach(result))
}

/// Get a token (never its password).
#[utoipa::path(
    get, path = "/api/v1/registries/{registryId}/tokens/{tokenId}", tag = "tokens",
    operation_id = "registriesTokensFindById",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("tokenId" = uuid::Uuid, Path, description = "The token's id."),
    ),
    responses(
        (status = 200, description = "The token.", body = api::Token),
        (status = 400, description = "`tokenId` is not a UUID.", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry or token.", body = ErrorBody),
    )
)]
pub async fn get_token(
    State(state): State<AppState>,
    KnownRegistry(r): KnownRegistry,
    TokenId(id): TokenId,
) -> Result<Json<api::Token>, ApiError> {
    let token = served(state.admin.get(&r.id, id).await)?
        .ok_or_else(|| ApiError::NotFound(format!("token {id} not found")))?;
    Ok(Json(token_out(&state, token, None)))
}

/// Create a token with this id (201, with its password) or replace the token (200).
#[utoipa::path(
    put, path = "/api/v1/registries/{registryId}/tokens/{tokenId}", tag = "tokens",
    operation_id = "registriesTokensPut",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("tokenId" = uuid::Uuid, Path, description = "The token's id."),
    ),
    request_body = api::TokenCreate,
    responses(
        (status = 200, description = "Replaced; the password is unchanged and not shown.", body = api::Token),
        (status = 201, description = "Created; `properties.credentials.password` is shown this once.",
            body = api::Token,
            headers(("Location" = String, description = "The token's URL."))),
        (status = 400, description = "`tokenId` is not a UUID, or the body is malformed or breaks a rule.",
            body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry.", body = ErrorBody),
        (status = 409, description = "Another token of the registry has that name.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
    )
)]
pub async fn put_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    KnownRegistry(r): KnownRegistry,
    TokenId(id): TokenId,
    AppJson(input): AppJson<api::TokenCreate>,
) -> Result<Response, ApiError> {
    let new = new_token(input.properties)?;
    let mut details = AuditDetails {
        token: new.name.to_string(),
        id: Some(id),
        changes: audit::changes_of_new(&new),
        ..AuditDetails::default()
    };
    let result =
        served(state.admin.acting_as(&who.name).put(&r.id, id, new).await).map(|outcome| {
            match outcome {
                PutOutcome::Created(token, password) => {
                    details.action = Some(AdminAction::Create);
                    created(&state, token, password)
                }
                PutOutcome::Replaced(token) => Json(token_out(&state, token, None)).into_response(),
            }
        });
    Ok(details.attach(result))
}

/// Change some of a token's properties.
#[utoipa::path(
    patch, path = "/api/v1/registries/{registryId}/tokens/{tokenId}", tag = "tokens",
    operation_id = "registriesTokensPatch",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("tokenId" = uuid::Uuid, Path, description = "The token's id."),
    ),
    request_body = api::TokenPatch,
    responses(
        (status = 200, description = "The changed token.", body = api::Token),
        (status = 400, description = "`tokenId` is not a UUID, or the body is malformed or breaks a rule.",
            body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry or token.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
    )
)]
pub async fn patch_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    KnownRegistry(r): KnownRegistry,
    TokenId(id): TokenId,
    AppJson(input): AppJson<api::TokenPatch>,
) -> Result<Response, ApiError> {
    let changes = changes(input)?;
    let mut details = AuditDetails {
        id: Some(id),
        changes: audit::changes_of_patch(&changes),
        ..AuditDetails::default()
    };
    let result = served(
        state
            .admin
            .acting_as(&who.name)
            .patch(&r.id, id, changes)
            .await,
    )
    .map(|token| {
        details.token = token.name.to_string();
        Json(token_out(&state, token, None))
    });
    Ok(details.attach(result))
}

/// Rotate a token's password: a new one, shown in this reply only, while name, id, scopes,
/// status, expiry and refresh tokens stay. With `gracePeriodSeconds` (up to 7 days) the
/// previous password keeps working until `properties.previousPasswordExpiryDate`; a password
/// from an earlier rotation stops at once.
#[utoipa::path(
    post, path = "/api/v1/registries/{registryId}/tokens/{tokenId}/credentials", tag = "tokens",
    operation_id = "registriesTokensCredentialsPost",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("tokenId" = uuid::Uuid, Path, description = "The token's id."),
    ),
    request_body(content = api::TokenRotate, description = "Optional; an empty body means no grace period."),
    responses(
        (status = 200, description = "The token with its new password in `properties.credentials.password`.",
            body = api::Token),
        (status = 400, description = "`tokenId` is not a UUID, or the body is malformed or `gracePeriodSeconds` is out of range, \
            or the token is federated (it has no password).",
            body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry or token.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
    )
)]
pub async fn rotate_credentials(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    KnownRegistry(r): KnownRegistry,
    TokenId(id): TokenId,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.body_timeout()).await?;
    let input: api::TokenRotate = if bytes.iter().all(u8::is_ascii_whitespace) {
        api::TokenRotate::default()
    } else {
        parse_json(&bytes).map_err(ApiError::BadRequest)?
    };
    let grace = grace_period(input.grace_period_seconds)?;
    let mut details = AuditDetails {
        id: Some(id),
        changes: audit::changes_of_rotation(grace),
        ..AuditDetails::default()
    };
    let result = served(
        state
            .admin
            .acting_as(&who.name)
            .rotate(&r.id, id, grace)
            .await,
    )
    .map(|(token, password)| {
        details.token = token.name.to_string();
        Json(token_out(&state, token, Some(password)))
    });
    Ok(details.attach(result))
}

/// Check an ID token against a federated token's federation without logging in: whether it
/// would be accepted, every reason it would not (each claim condition on its own), and its
/// claims. Nothing is stored; the ID token is not logged.
#[utoipa::path(
    post, path = "/api/v1/registries/{registryId}/tokens/{tokenId}/federation/check", tag = "tokens",
    operation_id = "registriesTokensFederationCheck",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("tokenId" = uuid::Uuid, Path, description = "The token's id."),
    ),
    request_body = api::FederationCheck,
    responses(
        (status = 200, description = "The verdict, the failures and the ID token's claims.",
            body = api::FederationCheckResult),
        (status = 400, description = "`tokenId` is not a UUID, the body is malformed, or the token is not federated.",
            body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry or token.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
    )
)]
pub async fn check_federation(
    State(state): State<AppState>,
    KnownRegistry(r): KnownRegistry,
    TokenId(id): TokenId,
    AppJson(input): AppJson<api::FederationCheck>,
) -> Result<Json<api::FederationCheckResult>, ApiError> {
    let token = served(state.admin.get(&r.id, id).await)?
        .ok_or_else(|| ApiError::NotFound(format!("token {id} not found")))?;
    let Some(fed) = &token.federation else {
        return Err(ApiError::Validation(ValidationError::new(
            "tokenId",
            format!(
                "token {:?} has a password, not a federation: there is nothing to check an ID token against",
                token.name.as_str()
            ),
        )));
    };
    let now = state.clock.now();
    let diagnosis = match state.auth.verifier() {
        Some(v) => v.diagnose(fed, &input.id_token, now).await,
        None => crate::oidc::Diagnosis {
            valid: false,
            failures: vec!["federated logins are not set up on this server".into()],
            claims: serde_json::Map::new(),
        },
    };
    Ok(Json(api::FederationCheckResult {
        valid: diagnosis.valid,
        failures: diagnosis.failures,
        claims: diagnosis.claims,
    }))
}

fn grace_period(seconds: Option<i64>) -> Result<TimeDelta, ValidationError> {
    let seconds = seconds.unwrap_or(0);
    let grace = TimeDelta::try_seconds(seconds).ok_or_else(|| {
        ValidationError::new("gracePeriodSeconds", format!("{seconds} is out of range"))
    })?;
    validate_grace(grace)?;
    Ok(grace)
}

/// Offboarding: disable every enabled token of an owner in one request. Each token ends as
/// a PATCH to `disabled` leaves it: its refresh tokens end and a rotation's grace period
/// ends. One audit line per token disabled (`action=disable`).
#[utoipa::path(
    post, path = "/api/v1/registries/{registryId}/offboarding", tag = "tokens",
    operation_id = "registriesTokensDisableByOwner",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("owner" = String, Query, max_length = 128,
            description = "The owner whose tokens to disable, matched exactly."),
    ),
    responses(
        (status = 200, description = "The tokens disabled (possibly none).", body = api::DisabledTokens),
        (status = 400, description = "`owner` is missing or not a valid owner.", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry.", body = ErrorBody),
    )
)]
pub async fn disable_by_owner(
    State(state): State<AppState>,
    KnownRegistry(r): KnownRegistry,
    RawQuery(query): RawQuery,
    req: Request,
) -> Result<Response, ApiError> {
    let client = super::limits::request_client(&state, &req);
    let peer = super::limits::request_peer(&req);
    let actor = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let pairs = parse_query(query.as_deref().unwrap_or(""));
    let owner: Owner = match last(&pairs, "owner") {
        None | Some("") => {
            return Err(ApiError::BadRequest(
                "owner: required (the owner whose tokens to disable)".into(),
            ))
        }
        Some(v) => v.parse().map_err(ApiError::Validation)?,
    };
    let reg = r.id.clone();
    let o = owner.clone();
    let admin = state.admin.acting_as(&actor);
    let (disabled, failure) = admin.disable_owner(&r.id, o.as_str()).await;
    let failure = failure.map(ApiError::from);
    let changes = audit::changes_of_offboarding(owner.as_str());
    let line = |token: &str, id: &str, outcome: audit::AdminOutcome, status: u16| {
        audit::admin_action(&audit::AdminRecord {
            admin: &actor,
            action: AdminAction::Disable,
            registry: &reg,
            token,
            id,
            changes: &changes,
            client,
            peer,
            outcome,
            status,
        });
        state
            .metrics
            .admin_action(&actor, AdminAction::Disable, outcome);
    };
    // Every token disabled is audited, also when the store failed after it.
    for t in &disabled {
        line(
            t.name.as_str(),
            &t.id.to_string(),
            audit::AdminOutcome::Ok,
            200,
        );
    }
    if let Some(e) = failure {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        line("", "", audit::AdminOutcome::of_status(status), status);
        return Ok(resp);
    }
    let href = format!(
        "{}/api/v1/registries/{reg}/offboarding",
        state.config.public_url
    );
    Ok(Json(api::DisabledTokens {
        id: format!("{reg}-tokens-disabled"),
        kind: ResourceType::Collection,
        href,
        items: disabled
            .into_iter()
            .map(|t| token_out(&state, t, None))
            .collect(),
    })
    .into_response())
}

/// Delete a token: it authenticates nothing from now on.
#[utoipa::path(
    delete, path = "/api/v1/registries/{registryId}/tokens/{tokenId}", tag = "tokens",
    operation_id = "registriesTokensDelete",
    security(("adminToken" = [])),
    params(
        ("registryId" = String, Path, description = "The registry's id."),
        ("tokenId" = uuid::Uuid, Path, description = "The token's id."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`tokenId` is not a UUID.", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
        (status = 404, description = "No such registry or token.", body = ErrorBody),
    )
)]
pub async fn delete_token(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    KnownRegistry(r): KnownRegistry,
    TokenId(id): TokenId,
) -> Response {
    let result = served(state.admin.acting_as(&who.name).delete(&r.id, id).await);
    let details = AuditDetails {
        id: Some(id),
        token: result
            .as_ref()
            .map(|t| t.name.to_string())
            .unwrap_or_default(),
        ..AuditDetails::default()
    };
    details.attach(result.map(|_| StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Patch;

    #[test]
    fn patch_expiry_absent_null_or_value() {
        let c = changes(api::TokenPatch::default()).unwrap();
        assert_eq!(c.expiry, Patch::Absent);
        let c = changes(api::TokenPatch {
            expiry_date: Patch::Null,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.expiry, Patch::Null);
        let c = changes(api::TokenPatch {
            expiry_date: Patch::Value("2026-12-01T11:00:00.9+01:00".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.expiry.into_option().map(crate::api::rfc3339).as_deref(),
            Some("2026-12-01T10:00:00Z")
        );
        let e = changes(api::TokenPatch {
            expiry_date: Patch::Value("soon".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "expiryDate");
    }
}
