//! The two wire formats for errors, each from a serde struct in [`crate::api`]:
//! - the registry protocol's `{"errors":[{code,message}]}` on the token endpoint ([`AuthHttpError`],
//!   written as [`api::RegistryErrors`]);
//! - the IONOS-style `{"httpStatus","messages":[{errorCode,message}]}` on the admin API
//!   ([`ApiError`], written as [`api::ErrorBody`]).
//!
//! 5xx details are logged here and replaced by a generic message.
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::{error, warn};

use crate::api;
use crate::domain::ValidationError;
use crate::error::{BoxError, Chain};
use crate::service::anonymous::Limited;
use crate::service::throttle::{Refused, RefusedFor};
use crate::service::{AdminError, AuthError};
use crate::store::StoreError;

/// Errors of the token endpoint.
#[derive(Debug, thiserror::Error)]
pub enum AuthHttpError {
    /// 400 `INVALID_REQUEST`: malformed parameters, scopes, headers, unknown service.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `UNAUTHORIZED` with `WWW-Authenticate: Basic realm="regauth"`; one message for every
    /// cause.
    #[error("authentication required")]
    Unauthorized,
    /// 403 `DENIED`: a browser's request from another site (`Sec-Fetch-Site`, `Origin`);
    /// credentials not looked at, nothing counted.
    #[error("{0}")]
    Forbidden(String),
    /// 413 `INVALID_REQUEST`: form body over the limit.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// 408 `INVALID_REQUEST`: the body did not arrive in time.
    #[error("request body not received within {0} s")]
    BodyTimeout(u64),
    /// 429 `TOOMANYREQUESTS` with `Retry-After`: too many failed authentications.
    #[error("{}", throttled_message(.0))]
    Throttled(Refused),
    /// 429 `TOOMANYREQUESTS` with `Retry-After`: too many anonymous requests from this
    /// address (`[limits] anonymous_per_minute`).
    #[error("too many anonymous token requests from this address; try again in {} s, or log in", .0.retry_after_seconds())]
    AnonymousLimited(Limited),
    /// 503 `UNAVAILABLE` with `Retry-After`: the token store is unreachable or too slow.
    #[error("the token store is unavailable; try again shortly")]
    Unavailable(#[source] BoxError),
    /// 503 `UNAVAILABLE` with `Retry-After` (the seconds): a federated token's ID token
    /// cannot be checked, its issuer is unreachable and none of its keys are cached. Not 401,
    /// so that CI retries instead of reporting bad credentials.
    #[error("the ID token's issuer cannot be reached to fetch its keys; try again in {0} s")]
    IssuerUnavailable(u64),
    /// 500 `UNKNOWN`: the error and its sources are logged, not shown.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl From<AuthError> for AuthHttpError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::UnknownService(s) => AuthHttpError::InvalidRequest(format!(
                "service {s:?} is not a registry served by this regauth"
            )),
            AuthError::Unauthorized(_) | AuthError::NoCredentials => AuthHttpError::Unauthorized,
            AuthError::AnonymousLimited(l) => AuthHttpError::AnonymousLimited(l),
            AuthError::Throttled(r) => AuthHttpError::Throttled(r),
            AuthError::IssuerUnreachable {
                retry_after_seconds,
            } => AuthHttpError::IssuerUnavailable(retry_after_seconds),
            e @ AuthError::Store(StoreError::Unavailable { .. }) => {
                AuthHttpError::Unavailable(Box::new(e))
            }
            e @ (AuthError::Store(_) | AuthError::Signing(_) | AuthError::Internal { .. }) => {
                AuthHttpError::Internal(Box::new(e))
            }
        }
    }
}

impl IntoResponse for AuthHttpError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AuthHttpError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "INVALID_REQUEST"),
            AuthHttpError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            AuthHttpError::Forbidden(_) => (StatusCode::FORBIDDEN, "DENIED"),
            AuthHttpError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "INVALID_REQUEST"),
            AuthHttpError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "INVALID_REQUEST"),
            // The registry protocol's own code for 429 (distribution's errcode).
            AuthHttpError::Throttled(_) | AuthHttpError::AnonymousLimited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS")
            }
            AuthHttpError::Unavailable(detail) => {
                warn!(error = %Chain(&**detail), "token endpoint: store unavailable, answered 503");
                (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
            }
            // Logged by the token decision's line (`reason="issuer unreachable"`).
            AuthHttpError::IssuerUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            AuthHttpError::Internal(detail) => {
                error!(error = %Chain(&**detail), "token endpoint failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN")
            }
        };
        let body = api::RegistryErrors {
            errors: vec![api::RegistryError {
                code: code.into(),
                message: self.to_string().into(),
            }],
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"regauth\""),
            );
            // A refusal of credentials must not be cached by any proxy in between either.
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if let AuthHttpError::Throttled(r) = &self {
            retry_after(&mut resp, r);
        }
        if let AuthHttpError::AnonymousLimited(l) = &self {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(l.retry_after_seconds()),
            );
        }
        if let AuthHttpError::IssuerUnavailable(seconds) = &self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Errors of the admin API. Each variant's status is in its doc.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `VALIDATION_ERROR`: a field broke a rule; the message names field and rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// 400 `BAD_REQUEST`: malformed JSON, unknown fields, bad query or path parameters.
    #[error("{0}")]
    BadRequest(String),
    /// 401 `UNAUTHORIZED`: missing or wrong admin token.
    #[error("a valid admin token is required: Authorization: Bearer <admin token>")]
    Unauthorized,
    /// 403 `FORBIDDEN`: a browser's request from another site (`Sec-Fetch-Site`, `Origin`);
    /// the admin token not looked at, nothing counted.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `NOT_FOUND`: unknown registry, token or path.
    #[error("{0}")]
    NotFound(String),
    /// 405 `METHOD_NOT_ALLOWED`: the path exists, the method does not.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// 409 `CONFLICT`: name (or id) taken.
    #[error("{0}")]
    Conflict(String),
    /// 413 `PAYLOAD_TOO_LARGE`.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// 408 `REQUEST_TIMEOUT`: the body did not arrive in time.
    #[error("request body not received within {0} s")]
    BodyTimeout(u64),
    /// 429 `TOO_MANY_REQUESTS` with `Retry-After`: too many failed admin authentications.
    #[error("{}", throttled_message(.0))]
    TooManyRequests(Refused),
    /// 503 `SERVICE_UNAVAILABLE` with `Retry-After`: the token store is unreachable or too
    /// slow; nothing was changed that the client was told about.
    #[error("the token store is unavailable; try again shortly")]
    Unavailable(#[source] BoxError),
    /// 500 `INTERNAL_ERROR`: the error and its sources are logged, not shown.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// A blocking task of the admin API that panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("admin task failed")]
pub struct TaskFailed(#[source] pub tokio::task::JoinError);

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(v) => ApiError::Validation(v),
            AdminError::NotFound(_) => ApiError::NotFound(e.to_string()),
            AdminError::Conflict(m) => ApiError::Conflict(m),
            e @ AdminError::Unavailable(_) => ApiError::Unavailable(Box::new(e)),
            e @ (AdminError::Store(_) | AdminError::Internal { .. }) => {
                ApiError::Internal(Box::new(e))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
            ApiError::Unavailable(detail) => {
                warn!(error = %Chain(&**detail), "admin API: store unavailable, answered 503");
                (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
            }
            ApiError::Internal(detail) => {
                error!(error = %Chain(&**detail), "admin API failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
        };
        let body = api::ErrorBody {
            http_status: status.as_u16(),
            messages: vec![api::ErrorMessage {
                error_code: code.into(),
                message: self.to_string(),
            }],
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"regauth-admin\""),
            );
        }
        if let ApiError::TooManyRequests(r) = &self {
            retry_after(&mut resp, r);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

fn throttled_message(r: &Refused) -> String {
    let what = match r.what {
        RefusedFor::Name => "for this name from this address",
        RefusedFor::Address => "from this address",
        RefusedFor::Network => "from this network",
    };
    format!(
        "too many failed authentications {what}; retry after {} s",
        r.retry_after_seconds()
    )
}

fn retry_after(resp: &mut Response, r: &Refused) {
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(r.retry_after_seconds()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_failure() -> StoreError {
        StoreError::backend(
            "undecodable record at key \"default/secret-name\" in tree tokens",
            std::io::Error::other("disk sector 42 unreadable"),
        )
    }

    async fn body_of(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn internal_errors_keep_the_store_error_chain() {
        let e = AuthHttpError::from(AuthError::from(store_failure()));
        let chain = Chain(&e).to_string();
        assert!(chain.contains("default/secret-name"), "{chain}");
        assert!(chain.contains("disk sector 42 unreadable"), "{chain}");

        let e = ApiError::from(AdminError::from(store_failure()));
        let chain = Chain(&e).to_string();
        assert!(chain.contains("default/secret-name"), "{chain}");
        assert!(chain.contains("disk sector 42 unreadable"), "{chain}");
    }

    #[tokio::test]
    async fn an_unavailable_store_is_a_503_in_each_usual_body() {
        let down = || StoreError::unavailable("reading a token", None);
        let resp = AuthHttpError::from(AuthError::from(down())).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            body_of(resp).await,
            r#"{"errors":[{"code":"UNAVAILABLE","message":"the token store is unavailable; try again shortly"}]}"#
        );
        let resp = ApiError::from(AdminError::from(down())).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            body_of(resp).await,
            r#"{"httpStatus":503,"messages":[{"errorCode":"SERVICE_UNAVAILABLE","message":"the token store is unavailable; try again shortly"}]}"#
        );
    }

    #[tokio::test]
    async fn the_500_body_stays_generic() {
        let resp = AuthHttpError::from(AuthError::from(store_failure())).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(resp).await;
        assert_eq!(
            body,
            r#"{"errors":[{"code":"UNKNOWN","message":"internal error"}]}"#
        );

        let resp = ApiError::from(AdminError::from(store_failure())).into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(resp).await;
        assert!(
            !body.contains("secret-name") && !body.contains("sector"),
            "{body}"
        );
        assert!(body.contains("\"internal error\""), "{body}");
    }
}
