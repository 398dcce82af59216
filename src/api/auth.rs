//! The token endpoint (`GET/POST /auth`): its reply, its form body and its errors, in the
//! registry token protocol's shapes (docs/token-endpoint.md).
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::time::whole_seconds;

/// A successful token reply. `token` and `access_token` are the same JWT: docker reads
/// `access_token`, containers/image `token`.
// `Cow` so the server borrows the JWT when serializing: the hot path does not copy it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessToken<'a> {
    /// The signed JWT (ES256) to send to the registry.
    pub token: Cow<'a, str>,
    /// The same JWT.
    pub access_token: Cow<'a, str>,
    /// Seconds the JWT is valid.
    pub expires_in: u64,
    #[serde(with = "whole_seconds")]
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: DateTime<Utc>,
    /// The granted scope, space-separated (POST only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "repository:team/app:pull,push")]
    pub scope: Option<String>,
    /// A refresh token, when one was asked for (`offline_token=true` on GET,
    /// `access_type=offline` on POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Cow<'a, str>>,
}

/// The reply of a token exchange (RFC 8693) on `POST /auth`: a temporary password of the
/// federated token named by `audience`, for `docker login -u NAME` (or any client that sends
/// Basic credentials), until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExchangedToken {
    /// The temporary password (`rgt_…`).
    pub access_token: String,
    /// `urn:ietf:params:oauth:token-type:access_token`.
    pub issued_token_type: String,
    /// `N_A`: not an OAuth access token to send as a bearer; a password.
    pub token_type: String,
    /// Seconds the password works: at most the federation's `sessionSeconds`.
    pub expires_in: u64,
}

/// The form body of `POST /auth` (`application/x-www-form-urlencoded`). `scope` may be
/// repeated as well as space-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenForm {
    /// `password`, `refresh_token`, or `urn:ietf:params:oauth:grant-type:token-exchange`
    /// (RFC 8693: an ID token for a federated token's temporary password).
    #[schema(example = "password")]
    pub grant_type: String,
    /// The registry's service name.
    pub service: String,
    /// Space-separated `repository:NAME:ACTIONS` or `registry:catalog:*` scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// With `grant_type=password`: the token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// With `grant_type=password`: the token's password (a federated token's: the ID
    /// token, or a temporary password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Token exchange: the CI job's OIDC ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:id_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "urn:ietf:params:oauth:token-type:id_token")]
    pub subject_token_type: Option<String>,
    /// Token exchange: the federated token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "ci-acme")]
    pub audience: Option<String>,
    /// With `grant_type=refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `offline` asks for a refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_type: Option<String>,
    /// The client's name, logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// The token endpoint's error reply: `{"errors":[{code,message}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryErrors<'a> {
    pub errors: Vec<RegistryError<'a>>,
}

/// One token-endpoint error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryError<'a> {
    /// `INVALID_REQUEST`, `UNAUTHORIZED` or `UNKNOWN`.
    #[schema(example = "UNAUTHORIZED")]
    pub code: Cow<'a, str>,
    pub message: Cow<'a, str>,
}
