//! The token endpoint (`realm`): `GET /auth` with Basic credentials and `POST /auth` OAuth2
//! form grants, as distribution's token.md and oauth.md describe them and real clients use them.
//! Parses the wire into a [`TokenRequest`], calls [`crate::service::AuthService`], shapes the reply.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::AuthHttpError;
use super::extract::{all, basic_credentials, last, parse_pairs, parse_query, read_body, Pairs};
use super::state::AppState;
use crate::api::{self, AccessToken};
use crate::domain::{parse_scope_into, ResourceRequest, ScopeList};
use crate::service::{AnonymousRequest, Credentials, Issued, TokenRequest};

/// The token endpoint's success reply for `issued`; `with_scope` adds the granted scope (the
/// OAuth2 POST form). Also the shape of the load benchmark's baseline (`bench.rs`).
pub(super) fn reply(issued: &Issued, with_scope: bool) -> Response {
    // Borrows the JWT rather than copying it twice.
    let body = AccessToken {
        token: issued.jwt.as_str().into(),
        access_token: issued.jwt.as_str().into(),
        expires_in: issued.expires_in,
        issued_at: issued.issued_at,
        scope: with_scope.then(|| ScopeList(&issued.granted).to_string()),
        refresh_token: issued.refresh_token.as_deref().map(Into::into),
    };
    let mut resp = Json(body).into_response();
    // Tokens are credentials: never cache them.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A browser's request from another site is refused before anything else: a web page must
/// not be able to spend its visitors' failures.
fn refuse_cross_site(state: &AppState, req: &Request) -> Result<(), AuthHttpError> {
    let Some(why) = super::limits::cross_site(req.headers(), &state.config.public_url) else {
        return Ok(());
    };
    let client = super::limits::request_client(state, req);
    if state.throttle.log().admit(client) {
        tracing::info!(client = %client.map(|a| a.to_string()).unwrap_or_default(), outcome = "refused",
            reason = %why, "cross-site token request refused");
    }
    Err(AuthHttpError::Forbidden(why))
}

/// The 200 reply of `POST /auth` (schema only): a token, or a token exchange's password.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum TokenPostReply<'a> {
    Token(api::AccessToken<'a>),
    Exchanged(api::ExchangedToken),
}

fn scopes<'a>(
    values: impl Iterator<Item = &'a str>,
) -> Result<Vec<ResourceRequest>, AuthHttpError> {
    let mut out = Vec::new();
    for v in values {
        parse_scope_into(v, &mut out).map_err(|e| AuthHttpError::InvalidRequest(e.to_string()))?;
    }
    Ok(out)
}

fn required<'a>(pairs: &'a Pairs<'_>, key: &str) -> Result<&'a str, AuthHttpError> {
    match last(pairs, key) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(AuthHttpError::InvalidRequest(format!(
            "missing required parameter {key:?}"
        ))),
    }
}

fn flag(pairs: &Pairs<'_>, key: &str, yes: &str) -> bool {
    last(pairs, key).is_some_and(|v| v.eq_ignore_ascii_case(yes))
}

/// `GET /auth?service=S&scope=..&account=U&client_id=C&offline_token=true` with Basic auth.
#[utoipa::path(
    get, path = "/auth", tag = "token endpoint", operation_id = "tokenGet",
    summary = "Get a registry token with Basic credentials (docker's way), or anonymously for public repositories.",
    description = "Without an `Authorization` header the request is anonymous: when the registry has public \
        repositories (`[[registries]] public`) the token grants pull on the public subset of what was asked \
        for (possibly nothing); otherwise 401. Wrong credentials are always 401, never anonymous.",
    security(("tokenCredentials" = [])),
    params(
        ("service" = String, Query, description = "The registry's service name."),
        ("scope" = Option<Vec<String>>, Query, explode = true,
            description = "Repeatable: `repository:NAME:ACTIONS` or `registry:catalog:*`. \
                A scope the token does not hold is left out of the JWT, not refused."),
        ("account" = Option<String>, Query,
            description = "When given, must equal the Basic username."),
        ("client_id" = Option<String>, Query, description = "The client's name, logged."),
        ("offline_token" = Option<bool>, Query, description = "`true` asks for a refresh token."),
    ),
    responses(
        (status = 200, description = "A signed JWT for the granted scopes.", body = api::AccessToken,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "A parameter or the Authorization header is malformed (a requested repository \
            name must follow distribution's reference grammar, at most 255 characters), or the service is unknown.",
            body = api::RegistryErrors),
        (status = 403, description = "A browser's cross-site request (`Sec-Fetch-Site`, `Origin`): not tried, not counted.",
            body = api::RegistryErrors),
        (status = 401, description = "Unknown, wrong, disabled or expired credentials (one reply for all), \
            or no credentials when the registry has no public repositories.",
            body = api::RegistryErrors,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"regauth\"`."),
                ("Cache-Control" = String, description = "`no-store`."))),
        (status = 429, description = "Too many failed authentications from this address, or for this name from it: \
            not tried; or, without credentials, more than `[limits] anonymous_per_minute` requests from \
            this address. `Retry-After` says when to try again.", body = api::RegistryErrors,
            headers(("Retry-After" = u64, description = "Seconds until the lockout ends."))),
        (status = 503, description = "The token store (PostgreSQL) is unreachable or too slow, or a federated \
            token's ID token cannot be checked because its issuer is unreachable and none of its keys are cached.",
            body = api::RegistryErrors,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    )
)]
pub async fn get_token(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, AuthHttpError> {
    refuse_cross_site(&state, &req)?;
    let pairs = parse_query(req.uri().query().unwrap_or(""));
    let service = required(&pairs, "service")?.to_string();
    let scopes = scopes(all(&pairs, "scope"))?;
    let Some((username, password)) =
        basic_credentials(req.headers()).map_err(AuthHttpError::InvalidRequest)?
    else {
        // No credentials: the public repositories' subset, or 401 (logged either way).
        let request = AnonymousRequest {
            service,
            scopes,
            client_id: last(&pairs, "client_id").map(str::to_string),
            client_addr: super::limits::request_client(&state, &req),
        };
        let issued = state.auth.issue_anonymous(request)?;
        return Ok(reply(&issued, false));
    };
    if let Some(account) = last(&pairs, "account") {
        if !account.is_empty() && account != username {
            return Err(AuthHttpError::InvalidRequest(
                "account must equal the username of the Basic credentials".into(),
            ));
        }
    }
    let request = TokenRequest {
        service,
        credentials: Credentials::Password { username, password },
        scopes,
        want_refresh: flag(&pairs, "offline_token", "true"),
        client_id: last(&pairs, "client_id").map(str::to_string),
        client_addr: super::limits::request_client(&state, &req),
        grant_type: "basic",
    };
    let issued = state.auth.issue(request).await?;
    Ok(reply(&issued, false))
}

/// `POST /auth`, form-encoded: `grant_type=password`, `grant_type=refresh_token`, or an RFC
/// 8693 token exchange (an ID token for a federated token's temporary password).
#[utoipa::path(
    post, path = "/auth", tag = "token endpoint", operation_id = "tokenPost",
    summary = "Get a registry token with an OAuth2 password or refresh-token grant, or a temporary password by token exchange.",
    description = "With `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, \
        `subject_token=<ID token>`, `subject_token_type=urn:ietf:params:oauth:token-type:id_token`, \
        `audience=<federated token name>` and `service`, the reply is an `ExchangedToken`: a temporary \
        password for that token's name, valid for at most the federation's `sessionSeconds`.",
    request_body(content = api::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A signed JWT for the granted scopes, with `scope`; for a token exchange, \
            the temporary password.",
            body = inline(TokenPostReply),
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, description = "A field is missing or malformed, the grant type is unsupported, or the service is unknown.",
            body = api::RegistryErrors),
        (status = 403, description = "A browser's cross-site request (`Sec-Fetch-Site`, `Origin`): not tried, not counted.",
            body = api::RegistryErrors),
        (status = 401, description = "Unknown, wrong, disabled or expired credentials or refresh token (one reply for all).",
            body = api::RegistryErrors,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"regauth\"`."),
                ("Cache-Control" = String, description = "`no-store`."))),
        (status = 413, description = "The form is over 64 KiB.", body = api::RegistryErrors),
        (status = 408, description = "The form did not arrive within `[limits] body_timeout_seconds`.", body = api::RegistryErrors),
        (status = 429, description = "Too many failed authentications from this address, or for this name from it: \
            not tried. `Retry-After` says when to try again.", body = api::RegistryErrors,
            headers(("Retry-After" = u64, description = "Seconds until the lockout ends."))),
        (status = 503, description = "The token store (PostgreSQL) is unreachable or too slow, or a federated \
            token's ID token cannot be checked because its issuer is unreachable and none of its keys are cached.",
            body = api::RegistryErrors,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))),
    )
)]
pub async fn post_token(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, AuthHttpError> {
    refuse_cross_site(&state, &req)?;
    let client_addr = super::limits::request_client(&state, &req);
    let body = read_body(req.into_body(), state.body_timeout()).await?;
    let pairs = parse_pairs(&body);
    let service = required(&pairs, "service")?.to_string();
    let grant = required(&pairs, "grant_type")?;
    // `scope` is space-separated, or repeated (containers/image), or both.
    let scopes = scopes(all(&pairs, "scope"))?;
    let (credentials, grant_type, want_refresh) = match grant {
        "password" => {
            let username = required(&pairs, "username")?.to_string();
            let password = last(&pairs, "password").unwrap_or_default().to_string();
            if password.is_empty() {
                return Err(AuthHttpError::InvalidRequest(
                    "missing required parameter \"password\"".into(),
                ));
            }
            (
                Credentials::Password { username, password },
                "password",
                flag(&pairs, "access_type", "offline"),
            )
        }
        "refresh_token" => {
            let refresh_token = required(&pairs, "refresh_token")?.to_string();
            (
                Credentials::Refresh { refresh_token },
                "refresh_token",
                false,
            )
        }
        TOKEN_EXCHANGE => {
            let subject_token_type = required(&pairs, "subject_token_type")?;
            if subject_token_type != ID_TOKEN_TYPE {
                return Err(AuthHttpError::InvalidRequest(format!(
                    "unsupported subject_token_type {subject_token_type:?}: use {ID_TOKEN_TYPE:?} \
                     (an OIDC ID token)"
                )));
            }
            let subject_token = required(&pairs, "subject_token")?.to_string();
            let audience = required(&pairs, "audience")?.to_string();
            (
                Credentials::Exchange {
                    audience,
                    subject_token,
                },
                "token_exchange",
                false,
            )
        }
        other => {
            return Err(AuthHttpError::InvalidRequest(format!(
                "unsupported grant_type {other:?}: use \"password\", \"refresh_token\" or \
                 {TOKEN_EXCHANGE:?}"
            )))
        }
    };
    let request = TokenRequest {
        service,
        credentials,
        scopes,
        want_refresh,
        client_id: last(&pairs, "client_id").map(str::to_string),
        client_addr,
        grant_type,
    };
    let issued = state.auth.issue(request).await?;
    match &issued.temporary_password {
        Some(password) => Ok(exchanged(password, issued.expires_in)),
        None => Ok(reply(&issued, true)),
    }
}

/// RFC 8693's grant type.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's token type of an OIDC ID token.
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// A token exchange's reply: the temporary password, never cached.
fn exchanged(password: &str, expires_in: u64) -> Response {
    let body = api::ExchangedToken {
        access_token: password.to_string(),
        issued_token_type: "urn:ietf:params:oauth:token-type:access_token".into(),
        token_type: "N_A".into(),
        expires_in,
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
