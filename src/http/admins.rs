//! Named admins with roles: which permission each admin route needs ([`permission_of`],
//! checked once in `admin::require_admin` for every route, so a new route is guarded by
//! default) and the `/api/v1/admins` handlers (owner only, except `GET /admins/me`).
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::admin::page_param;
use super::error::ApiError;
use super::extract::{parse_query, AppJson};
use super::state::AppState;
use crate::api::admins::{AdminCreate, AdminList, AdminOut};
use crate::api::{ErrorBody, Links, ResourceType, DEFAULT_LIMIT, MAX_LIMIT};
use crate::domain::{Admin, Permission, Principal, Role};
use crate::service::admins::{AdminsError, NewAdmin};
use crate::service::audit;

/// The permission a request needs, and the registry it concerns (if one). `path` is under
/// `/api/v1`. Reads are GET and HEAD; anything else on a registry writes tokens.
pub fn permission_of<'p>(method: &Method, path: &'p str) -> (Permission, Option<&'p str>) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let read = method == Method::GET || method == Method::HEAD;
    match segments.as_slice() {
        ["admins", "me"] => (Permission::WhoAmI, None),
        ["admins", ..] => (Permission::ManageAdmins, None),
        ["keys", ..] => (Permission::ManageKeys, None),
        // The delivery log spans every registry's tokens: owners of all of them, as for keys.
        ["webhooks", ..] => (Permission::ManageKeys, None),
        ["registries", r, ..] if read => (Permission::ReadTokens, Some(r)),
        ["registries", r, ..] => (Permission::WriteTokens, Some(r)),
        _ if read => (Permission::ReadTokens, None),
        _ => (Permission::WriteTokens, None),
    }
}

impl From<AdminsError> for ApiError {
    fn from(e: AdminsError) -> Self {
        match e {
            AdminsError::Invalid(v) => ApiError::Validation(v),
            AdminsError::NotFound(_) => ApiError::NotFound(e.to_string()),
            AdminsError::Conflict(_) => ApiError::Conflict(e.to_string()),
            AdminsError::Store(s) => ApiError::from(crate::service::AdminError::from(s)),
            AdminsError::Random => ApiError::Internal(Box::new(e)),
        }
    }
}

fn admin_out(a: Admin, secret: Option<String>) -> AdminOut {
    AdminOut {
        name: a.name.to_string(),
        role: a.role.to_string(),
        registries: a.registries,
        secret,
        created_date: Some(a.created),
        created_by: Some(a.created_by),
        last_rotated_date: a.rotated,
    }
}

/// A service call's outcome as the API's.
fn served<T>(result: Result<T, AdminsError>) -> Result<T, ApiError> {
    result.map_err(ApiError::from)
}

/// Writes the audit line of an admin change and returns the response.
fn audited(
    who: &Principal,
    client: Option<std::net::IpAddr>,
    action: &str,
    target: &str,
    role: &str,
    registries: &str,
    result: Result<Response, ApiError>,
) -> Response {
    let resp = result.into_response();
    audit::admin_managed(
        &who.name,
        action,
        target,
        role,
        registries,
        client,
        resp.status().as_u16(),
    );
    resp
}

/// Who is signed in: name, role and registries (any role).
#[utoipa::path(
    get, path = "/api/v1/admins/me", tag = "admins", operation_id = "adminsMe",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "The admin this credential belongs to (no secret).", body = AdminOut),
        super::admin::AdminRefusals,
    )
)]
pub async fn me(Extension(who): Extension<Principal>) -> Json<AdminOut> {
    Json(AdminOut {
        name: who.name,
        role: who.role.to_string(),
        registries: who.registries,
        secret: None,
        created_date: None,
        created_by: None,
        last_rotated_date: None,
    })
}

/// List the named admins (owner only), one page at a time. The bootstrap token is not listed.
#[utoipa::path(
    get, path = "/api/v1/admins", tag = "admins", operation_id = "adminsGet",
    security(("adminToken" = [])),
    params(
        ("offset" = Option<u64>, Query, description = "Index of the first admin (default 0)."),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000,
            description = "Page size, 1 to 1000 (default 100)."),
    ),
    responses(
        (status = 200, description = "One page of the named admins, sorted by name; never a secret.", body = AdminList),
        (status = 400, description = "`offset` or `limit` out of range.", body = ErrorBody),
        super::admin::AdminRefusals,
        super::admin::StoreUnavailable,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<AdminList>, ApiError> {
    let pairs = parse_query(query.as_deref().unwrap_or(""));
    let offset = page_param(&pairs, "offset", 0, 0, usize::MAX / 2)?;
    let limit = page_param(&pairs, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let admins = served(state.admins.list().await)?;
    let total = admins.len();
    let items: Vec<AdminOut> = admins
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|a| admin_out(a, None))
        .collect();
    let href = format!("{}/api/v1/admins", state.config.public_url);
    let link = |o: usize| format!("{href}?offset={o}&limit={limit}");
    let count = items.len();
    let links = Links {
        this: link(offset),
        next: (offset + count < total).then(|| link(offset + count)),
        // Past the end, `previous` is the last page that has items (as the token list).
        previous: (offset > 0).then(|| link(offset.min(total).saturating_sub(limit))),
    };
    Ok(Json(AdminList {
        id: "admins".into(),
        kind: ResourceType::Collection,
        href,
        items,
        offset,
        limit,
        count,
        total,
        links,
    }))
}

/// Create a named admin (owner only). The reply is the only one that carries its secret.
#[utoipa::path(
    post, path = "/api/v1/admins", tag = "admins", operation_id = "adminsPost",
    security(("adminToken" = [])),
    request_body = AdminCreate,
    responses(
        (status = 201, description = "Created; `secret` is shown this once.", body = AdminOut),
        (status = 400, description = "Malformed JSON, a bad name or role, or an unknown registry.", body = ErrorBody),
        super::admin::AdminRefusals,
        super::admin::StoreUnavailable,
        (status = 409, description = "An admin of that name exists.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    req: Request,
) -> Response {
    let client = super::limits::request_client(&state, &req);
    let body = match AppJson::<AdminCreate>::from_request(req, &state).await {
        Ok(AppJson(b)) => b,
        Err(e) => return audited(&who, client, "create", "", "", "", Err(e)),
    };
    let (name, role_text, regs) = (
        body.name.clone(),
        body.role.clone(),
        body.registries.join(","),
    );
    let result = async {
        let role: Role = body.role.parse()?;
        if let Some(r) = body
            .registries
            .iter()
            .find(|r| !state.config.registries.iter().any(|c| &c.id == *r))
        {
            return Err(ApiError::BadRequest(format!(
                "registries: no registry {r:?} in the config"
            )));
        }
        let new = NewAdmin {
            name: body.name,
            role,
            registries: body.registries,
        };
        let by = who.name.clone();
        let (admin, secret) = served(state.admins.create(new, &by).await)?;
        Ok((StatusCode::CREATED, Json(admin_out(admin, Some(secret)))).into_response())
    }
    .await;
    audited(&who, client, "create", &name, &role_text, &regs, result)
}

/// Give a named admin a new secret (owner only); the old one stops at once.
#[utoipa::path(
    post, path = "/api/v1/admins/{name}/credentials", tag = "admins",
    operation_id = "adminsCredentialsPost",
    security(("adminToken" = [])),
    params(("name" = String, Path, description = "The admin's name.")),
    responses(
        (status = 200, description = "The admin with its new `secret`, shown this once.", body = AdminOut),
        super::admin::AdminRefusals,
        super::admin::StoreUnavailable,
        (status = 404, description = "No such admin.", body = ErrorBody),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let client = super::limits::request_client(&state, &req);
    let n = name.clone();
    let result = served(state.admins.rotate(&n).await)
        .map(|(admin, secret)| Json(admin_out(admin, Some(secret))).into_response());
    audited(&who, client, "rotate", &name, "", "", result)
}

/// Delete a named admin (owner only); its secret stops at once.
#[utoipa::path(
    delete, path = "/api/v1/admins/{name}", tag = "admins", operation_id = "adminsDelete",
    security(("adminToken" = [])),
    params(("name" = String, Path, description = "The admin's name.")),
    responses(
        (status = 204, description = "Deleted."),
        super::admin::AdminRefusals,
        super::admin::StoreUnavailable,
        (status = 404, description = "No such admin.", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let client = super::limits::request_client(&state, &req);
    let n = name.clone();
    let result =
        served(state.admins.delete(&n).await).map(|()| StatusCode::NO_CONTENT.into_response());
    audited(&who, client, "delete", &name, "", "", result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_its_permission() {
        use Permission::*;
        let id = "0b7e9bde-2a37-4a4e-9c3c-4f3c2a1e6b10";
        let token = format!("/registries/dev/tokens/{id}");
        let cases: Vec<(Method, String, Permission, Option<&str>)> = vec![
            (Method::GET, "/registries".into(), ReadTokens, None),
            (
                Method::GET,
                "/registries/dev".into(),
                ReadTokens,
                Some("dev"),
            ),
            (
                Method::GET,
                "/registries/dev/tokens".into(),
                ReadTokens,
                Some("dev"),
            ),
            (
                Method::POST,
                "/registries/dev/tokens".into(),
                WriteTokens,
                Some("dev"),
            ),
            (Method::PUT, token.clone(), WriteTokens, Some("dev")),
            (Method::PATCH, token.clone(), WriteTokens, Some("dev")),
            (Method::DELETE, token.clone(), WriteTokens, Some("dev")),
            (
                Method::POST,
                format!("{token}/credentials"),
                WriteTokens,
                Some("dev"),
            ),
            (
                Method::POST,
                "/registries/dev/offboarding".into(),
                WriteTokens,
                Some("dev"),
            ),
            (Method::GET, "/admins".into(), ManageAdmins, None),
            (Method::POST, "/admins".into(), ManageAdmins, None),
            (Method::DELETE, "/admins/alice".into(), ManageAdmins, None),
            (Method::GET, "/admins/me".into(), WhoAmI, None),
            (Method::GET, "/keys".into(), ManageKeys, None),
            (Method::POST, "/keys/x".into(), ManageKeys, None),
            (Method::POST, "/nowhere".into(), WriteTokens, None),
        ];
        for (method, path, want, reg) in cases {
            assert_eq!(
                permission_of(&method, &path),
                (want, reg),
                "{method} {path}"
            );
        }
    }
}
