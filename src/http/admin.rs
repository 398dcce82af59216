//! The admin API under `/api/v1`, shaped like the IONOS Cloud Container Registry token API so
//! its SDKs work unchanged. Wire DTOs live here; handlers parse them into domain types (errors
//! name the JSON field), call [`crate::service::AdminService`] on a blocking thread (writes
//! fsync), and render IONOS-shaped JSON.
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{bearer_token, last, parse_json, parse_pairs, read_body, Pairs};
use super::state::AppState;
use crate::config::RegistryConfig;
use crate::domain::{Scope, SecretHash, Status, Token, TokenName, ValidationError};
use crate::service::{AdminService, NewToken, PutOutcome, TokenChanges};

/// Default and maximum page sizes of the token list.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

// ---------- input DTOs ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenInput {
    properties: TokenPropertiesInput,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenPropertiesInput {
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    expiry_date: Option<Option<String>>,
    #[serde(default)]
    scopes: Option<Vec<ScopeInput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchInput {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    expiry_date: Option<Option<String>>,
    #[serde(default)]
    scopes: Option<Vec<ScopeInput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeInput {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

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

fn parse_expiry(
    s: Option<Option<&str>>,
    field: &str,
) -> Result<Option<Option<DateTime<Utc>>>, ValidationError> {
    match s {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(text)) => DateTime::parse_from_rfc3339(text)
            .map(|d| Some(Some(d.with_timezone(&Utc).trunc_subsecs(0))))
            .map_err(|_| {
                ValidationError::new(
                    field,
                    format!("{text:?} is not an RFC 3339 timestamp like 2026-12-01T10:00:00Z"),
                )
            }),
    }
}

fn parse_scopes(
    scopes: Option<Vec<ScopeInput>>,
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

impl TokenPropertiesInput {
    fn into_new_token(self) -> Result<NewToken, ValidationError> {
        let name: TokenName = self
            .name
            .parse()
            .map_err(|e| under(e, Some("properties")))?;
        Ok(NewToken {
            name,
            status: parse_status(self.status.as_deref(), Some("properties"))?.unwrap_or_default(),
            expiry: parse_expiry(
                self.expiry_date.as_ref().map(|o| o.as_deref()),
                "properties.expiryDate",
            )?
            .flatten(),
            scopes: parse_scopes(self.scopes, "properties.")?.unwrap_or_default(),
        })
    }
}

impl PatchInput {
    fn into_changes(self) -> Result<TokenChanges, ValidationError> {
        Ok(TokenChanges {
            status: parse_status(self.status.as_deref(), None)?,
            expiry: parse_expiry(
                self.expiry_date.as_ref().map(|o| o.as_deref()),
                "expiryDate",
            )?,
            scopes: parse_scopes(self.scopes, "")?,
        })
    }
}

// ---------- output DTOs ----------

fn date(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    created_by: String,
    created_date: String,
    last_modified_by: String,
    last_modified_date: String,
    state: &'static str,
}

#[derive(Serialize)]
pub struct Credentials {
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenProperties {
    name: String,
    credentials: Credentials,
    expiry_date: Option<String>,
    scopes: Vec<Scope>,
    status: Status,
}

#[derive(Serialize)]
pub struct TokenOut {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    href: String,
    metadata: Metadata,
    properties: TokenProperties,
}

fn tokens_href(state: &AppState, registry: &str) -> String {
    format!(
        "{}/api/v1/registries/{registry}/tokens",
        state.config.public_url
    )
}

fn token_out(state: &AppState, t: Token, password: Option<String>) -> TokenOut {
    TokenOut {
        id: t.id.to_string(),
        kind: "token",
        href: format!("{}/{}", tokens_href(state, &t.registry), t.id),
        metadata: Metadata {
            created_by: t.created_by,
            created_date: date(t.created),
            last_modified_by: t.modified_by,
            last_modified_date: date(t.modified),
            state: "AVAILABLE",
        },
        properties: TokenProperties {
            credentials: Credentials {
                username: t.name.to_string(),
                password,
            },
            name: t.name.to_string(),
            expiry_date: t.expiry.map(date),
            scopes: t.scopes,
            status: t.status,
        },
    }
}

#[derive(Serialize)]
pub struct Links {
    #[serde(rename = "self")]
    this: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<String>,
}

#[derive(Serialize)]
pub struct TokenList {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    href: String,
    items: Vec<TokenOut>,
    offset: usize,
    limit: usize,
    count: usize,
    total: usize,
    #[serde(rename = "_links")]
    links: Links,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuthBlock {
    realm: String,
    service: String,
    issuer: String,
    rootcertbundle: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryProperties {
    name: String,
    hostname: String,
    service: String,
    location: String,
    /// regauth's own addition: the `auth.token` settings that make this registry trust us.
    token_auth: TokenAuthBlock,
}

#[derive(Serialize)]
pub struct RegistryOut {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    href: String,
    metadata: Metadata,
    properties: RegistryProperties,
}

#[derive(Serialize)]
pub struct RegistryList {
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    href: String,
    items: Vec<RegistryOut>,
}

fn registry_out(state: &AppState, r: &RegistryConfig) -> RegistryOut {
    let started = date(state.clock.now());
    RegistryOut {
        id: r.id.clone(),
        kind: "registry",
        href: format!("{}/api/v1/registries/{}", state.config.public_url, r.id),
        metadata: Metadata {
            created_by: "config".into(),
            created_date: started.clone(),
            last_modified_by: "config".into(),
            last_modified_date: started,
            state: "AVAILABLE",
        },
        properties: RegistryProperties {
            name: r.id.clone(),
            hostname: r.hostname.clone(),
            service: r.service.clone(),
            location: String::new(),
            token_auth: TokenAuthBlock {
                realm: state.config.realm(),
                service: r.service.clone(),
                issuer: state.config.jwt.issuer.clone(),
                rootcertbundle: state.certificate.display().to_string(),
            },
        },
    }
}

// ---------- middleware and helpers ----------

/// Requires `Authorization: Bearer <admin token>`, compared in constant time (over hashes, so
/// the length of the configured token does not leak either).
pub async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ok = bearer_token(req.headers())
        .is_some_and(|t| SecretHash::of(t).ct_eq(&state.admin_token_hash));
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Known paths under `/api/v1` with a method they do not have.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Unknown paths under `/api/v1`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource in the admin API".into())
}

fn registry<'a>(state: &'a AppState, id: &str) -> Result<&'a RegistryConfig, ApiError> {
    state
        .config
        .registry(id)
        .ok_or_else(|| ApiError::NotFound(format!("registry {id:?} not found")))
}

fn token_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::BadRequest(format!("tokenId {text:?} is not a UUID")))
}

async fn json_body<T: serde::de::DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    let bytes = read_body(req.into_body())
        .await
        .map_err(ApiError::TooLarge)?;
    parse_json(&bytes).map_err(ApiError::BadRequest)
}

/// Runs a service call on a blocking thread (writes fsync).
async fn blocking<T: Send + 'static>(
    admin: &AdminService,
    f: impl FnOnce(&AdminService) -> Result<T, crate::service::AdminError> + Send + 'static,
) -> Result<T, ApiError> {
    let admin = admin.clone();
    tokio::task::spawn_blocking(move || f(&admin))
        .await
        .map_err(|e| ApiError::Internal(format!("admin task failed: {e}")))?
        .map_err(ApiError::from)
}

fn created(state: &AppState, token: Token, password: String) -> Response {
    let out = token_out(state, token, Some(password));
    let mut resp = (StatusCode::CREATED, Json(&out)).into_response();
    if let Ok(v) = HeaderValue::from_str(&out.href) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn page_param(
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

/// `GET /registries`
pub async fn list_registries(State(state): State<AppState>) -> Json<RegistryList> {
    Json(RegistryList {
        id: "registries",
        kind: "collection",
        href: format!("{}/api/v1/registries", state.config.public_url),
        items: state
            .config
            .registries
            .iter()
            .map(|r| registry_out(&state, r))
            .collect(),
    })
}

/// `GET /registries/{registryId}`
pub async fn get_registry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RegistryOut>, ApiError> {
    let r = registry(&state, &id)?;
    Ok(Json(registry_out(&state, r)))
}

/// `GET /registries/{registryId}/tokens?offset=&limit=`
pub async fn list_tokens(
    State(state): State<AppState>,
    Path(reg): Path<String>,
    req: Request,
) -> Result<Json<TokenList>, ApiError> {
    registry(&state, &reg)?;
    let pairs = parse_pairs(req.uri().query().unwrap_or("").as_bytes());
    let offset = page_param(&pairs, "offset", 0, 0, usize::MAX / 2)?;
    let limit = page_param(&pairs, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let r = reg.clone();
    let page = blocking(&state.admin, move |a| a.list(&r, offset, limit)).await?;
    let href = tokens_href(&state, &reg);
    let link = |o: usize| format!("{href}?offset={o}&limit={limit}");
    let count = page.items.len();
    let links = Links {
        this: link(offset),
        next: (offset + count < page.total).then(|| link(offset + count)),
        // Past the end, "previous" is the last page that has items.
        // Past the end, `previous` is the last page that has items.
        previous: (offset > 0).then(|| link(offset.min(page.total).saturating_sub(limit))),
    };
    Ok(Json(TokenList {
        id: format!("{reg}-tokens"),
        kind: "collection",
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

/// `POST /registries/{registryId}/tokens`
pub async fn create_token(
    State(state): State<AppState>,
    Path(reg): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    registry(&state, &reg)?;
    let input: TokenInput = json_body(req).await?;
    let new = input.properties.into_new_token()?;
    let (token, password) = blocking(&state.admin, move |a| a.create(&reg, None, new)).await?;
    Ok(created(&state, token, password))
}

/// `GET /registries/{registryId}/tokens/{tokenId}`
pub async fn get_token(
    State(state): State<AppState>,
    Path((reg, id)): Path<(String, String)>,
) -> Result<Json<TokenOut>, ApiError> {
    registry(&state, &reg)?;
    let id = token_id(&id)?;
    let token = blocking(&state.admin, move |a| a.get(&reg, id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("token {id} not found")))?;
    Ok(Json(token_out(&state, token, None)))
}

/// `PUT /registries/{registryId}/tokens/{tokenId}`: 201 when created, 200 when replaced.
pub async fn put_token(
    State(state): State<AppState>,
    Path((reg, id)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    registry(&state, &reg)?;
    let id = token_id(&id)?;
    let input: TokenInput = json_body(req).await?;
    let new = input.properties.into_new_token()?;
    match blocking(&state.admin, move |a| a.put(&reg, id, new)).await? {
        PutOutcome::Created(token, password) => Ok(created(&state, token, password)),
        PutOutcome::Replaced(token) => Ok(Json(token_out(&state, token, None)).into_response()),
    }
}

/// `PATCH /registries/{registryId}/tokens/{tokenId}`
pub async fn patch_token(
    State(state): State<AppState>,
    Path((reg, id)): Path<(String, String)>,
    req: Request,
) -> Result<Json<TokenOut>, ApiError> {
    registry(&state, &reg)?;
    let id = token_id(&id)?;
    let input: PatchInput = json_body(req).await?;
    let changes = input.into_changes()?;
    let token = blocking(&state.admin, move |a| a.patch(&reg, id, changes)).await?;
    Ok(Json(token_out(&state, token, None)))
}

/// `DELETE /registries/{registryId}/tokens/{tokenId}`
pub async fn delete_token(
    State(state): State<AppState>,
    Path((reg, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    registry(&state, &reg)?;
    let id = token_id(&id)?;
    blocking(&state.admin, move |a| a.delete(&reg, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
