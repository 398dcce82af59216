//! Tokens: the resource, its list page, and the POST/PUT/PATCH bodies.
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::time::{option_whole_seconds, whole_seconds};
use super::Patch;

/// The `type` of a resource or collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Token,
    Registry,
    Collection,
}

/// Who created and last changed a resource, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// `admin` for tokens made through the API, `config` for registries.
    pub created_by: String,
    #[serde(with = "whole_seconds")]
    #[schema(value_type = String, format = DateTime, example = "2026-06-01T12:00:00Z")]
    pub created_date: DateTime<Utc>,
    pub last_modified_by: String,
    #[serde(with = "whole_seconds")]
    #[schema(value_type = String, format = DateTime, example = "2026-06-01T12:00:00Z")]
    pub last_modified_date: DateTime<Utc>,
    /// Always `AVAILABLE`: regauth applies every change before it answers.
    #[schema(example = "AVAILABLE")]
    pub state: String,
    /// Tokens only: when the token last authenticated successfully at the token endpoint;
    /// absent when it never did. Shown at once, stored within a minute.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "option_whole_seconds"
    )]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-06-01T12:00:00Z")]
    pub last_used_date: Option<DateTime<Utc>>,
    /// Tokens only: the client address of that authentication, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "192.0.2.10")]
    pub last_used_from: Option<String>,
    /// Tokens only: how it authenticated: `password` or `refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<GrantType>)]
    pub last_used_grant_type: Option<String>,
}

/// How a token authenticated (schema only: the field is text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// With its password (`docker login`, Basic auth).
    Password,
    /// With a refresh token issued to it at a login.
    RefreshToken,
}

/// `enabled` (the default) or `disabled`: a disabled token authenticates nothing. In replies
/// also `expired`, only when the server keeps expired tokens (`[tokens] on_expiry = "disable"`);
/// by default an expired token is deleted (expired = deleted). An expired token authenticates
/// nothing; a later `expiryDate` revives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    #[default]
    Enabled,
    Disabled,
    Expired,
}

impl TokenStatus {
    /// `enabled`, `disabled` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Enabled => "enabled",
            TokenStatus::Disabled => "disabled",
            TokenStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a scope applies to.
// Schema only: `Scope::kind` is text, so the server can name the field in its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeType {
    /// Repositories whose name matches the pattern.
    Repository,
    /// The registry itself; the name is `catalog` (or `*`).
    Registry,
}

/// An action a scope grants. `push` needs `pull`.
// Schema only, like `ScopeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeAction {
    Pull,
    Push,
    Delete,
}

/// A scope: what a token may do to which repositories (or to the registry's catalog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    #[schema(value_type = ScopeType)]
    pub kind: String,
    /// A repository pattern (`*` matches any run of characters, including `/`; `?` one
    /// character), or `catalog` for a registry scope.
    #[schema(example = "team/*")]
    pub name: String,
    /// At least one of `pull`, `push`, `delete`; `push` needs `pull`.
    #[schema(value_type = Vec<ScopeAction>)]
    pub actions: Vec<String>,
}

impl fmt::Display for Scope {
    /// `type:name:a,b`, the syntax the CLI accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// The docker login of a token: the username is the token's name; the password is in the
/// reply to the request that created the token, and in no other reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    pub username: String,
    /// Only in the reply that created the token: regauth keeps only a hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A federated token's federation (keyless CI): the token has no password; it authenticates
/// with a CI job's OIDC ID token that this describes. The ID token is the password of
/// `docker login -u NAME`, or is exchanged for a temporary password (RFC 8693, `POST /auth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Federation {
    /// The ID tokens' issuer (`iss`), exactly; one of the server's `[[federation.issuers]]`
    /// (regauth never fetches keys from a URL an API caller made up).
    #[schema(example = "https://token.actions.githubusercontent.com")]
    pub issuer: String,
    /// The ID token's `aud` must contain one of these (1 to 16).
    #[schema(example = json!(["https://registry.example.com"]))]
    pub audiences: Vec<String>,
    /// Claim name → exact value or pattern (`*` any run, `?` one character); every condition
    /// must hold. Strings, numbers and booleans compare as text; a missing claim fails. The
    /// conditions must pin an identity that cannot be re-registered: an exact
    /// `repository_id` or `repository_owner_id` for a `github` issuer, `project_id` or
    /// `namespace_id` for `gitlab`, `sub` for `generic`.
    #[serde(default)]
    #[schema(example = json!({"repository_owner_id": "1234567", "repository": "acme/*", "ref": "refs/heads/main"}))]
    pub claims: BTreeMap<String, String>,
    /// ID tokens whose `exp - iat` is longer are refused; default 3600, at most 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400, example = 3600)]
    pub max_id_token_lifetime_seconds: Option<i64>,
    /// How long a login made with an ID token stays usable (its refresh token, a temporary
    /// password); default 3600, at most 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400, example = 3600)]
    pub session_seconds: Option<i64>,
    /// An inline JWK Set (public RSA or P-256 keys) used instead of the issuer's discovery:
    /// for issuers regauth cannot reach (a Kubernetes API server, air-gapped sites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
}

/// The body of `POST .../tokens/{tokenId}/federation/check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FederationCheck {
    /// The ID token to check against the token's federation (it is not stored or logged).
    pub id_token: String,
}

/// The reply of `POST .../tokens/{tokenId}/federation/check`: whether the ID token would log
/// in, and if not, every reason found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FederationCheckResult {
    pub valid: bool,
    /// One message per failure, e.g. `claim ref: "refs/heads/dev" does not match
    /// "refs/heads/main"`.
    pub failures: Vec<String>,
    /// The ID token's claims as it states them (empty when it cannot be read).
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// A token's properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenProperties {
    /// The token's name, unique in its registry: 3-63 of `a-z`, `0-9`, `-`.
    #[schema(example = "ci-push")]
    pub name: String,
    pub credentials: Credentials,
    /// When the token stops working; `null` for never. By default the token is deleted then
    /// (expired = deleted).
    #[serde(with = "option_whole_seconds")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T10:00:00Z")]
    pub expiry_date: Option<DateTime<Utc>>,
    pub scopes: Vec<Scope>,
    pub status: TokenStatus,
    /// After a rotation with a grace period: when the previous password stops working;
    /// absent when only the current password works.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "option_whole_seconds"
    )]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-06-01T13:00:00Z")]
    pub previous_password_expiry_date: Option<DateTime<Utc>>,
    /// The networks (CIDR) the token may authenticate from, at the token endpoint and with
    /// refresh tokens; absent when it may authenticate from anywhere. The registry JWTs it
    /// gets are not bound to an address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["10.0.0.0/8", "2001:db8::/32"]))]
    pub allowed_networks: Vec<String>,
    /// Who the token belongs to (a person's email, a service's name); absent when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "alice@example.com")]
    pub owner: Option<String>,
    /// What the token is for; absent when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "CI pushes to team/*")]
    pub description: Option<String>,
    /// A federated token's federation; absent for a password token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,
}

/// The body of `POST .../tokens/{tokenId}/credentials` (rotation); it may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenRotate {
    /// How long the previous password keeps working, 0 to 604800 (7 days); default 0 (it
    /// stops at once). A password from an earlier rotation stops at once either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 604800, example = 3600)]
    pub grace_period_seconds: Option<i64>,
}

/// A token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: Uuid,
    /// Always `token`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    /// The token's URL.
    pub href: String,
    pub metadata: Metadata,
    pub properties: TokenProperties,
}

impl Token {
    /// The token's name.
    pub fn name(&self) -> &str {
        &self.properties.name
    }
}

/// Links between the pages of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Links {
    /// This page.
    #[serde(rename = "self")]
    pub this: String,
    /// The next page, when there are more tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The previous page (past the end: the last page that has items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// One page of a registry's tokens, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenPage {
    /// `<registryId>-tokens`.
    pub id: String,
    /// Always `collection`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub href: String,
    pub items: Vec<Token>,
    /// Index of the first item in the whole list.
    pub offset: usize,
    /// The page size asked for.
    pub limit: usize,
    /// Items on this page.
    pub count: usize,
    /// Tokens in the whole list.
    pub total: usize,
    #[serde(rename = "_links")]
    pub links: Links,
}

/// The body of `POST .../tokens` and `PUT .../tokens/{tokenId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    pub properties: TokenPropertiesInput,
}

/// A token as a create or a full replace describes it. What is left out takes its default:
/// `enabled`, no expiry, no scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenPropertiesInput {
    /// 3-63 of `a-z`, `0-9`, `-`, starting with a letter and not ending with `-`.
    #[schema(example = "ci-push")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TokenStatus>)]
    pub status: Option<String>,
    /// At least an hour ahead; `null` or absent for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T10:00:00Z")]
    pub expiry_date: Option<String>,
    /// At most 100, one per type and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    /// At most 64 networks in CIDR form (`10.0.0.0/8`, `2001:db8::/32`, or a bare address)
    /// with no host bits set; absent or empty for anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["10.0.0.0/8"]))]
    pub allowed_networks: Option<Vec<String>>,
    /// Up to 128 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "alice@example.com")]
    pub owner: Option<String>,
    /// Up to 500 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Makes a federated token: no password (the reply has no `credentials.password`); it
    /// authenticates with ID tokens. A scope's repository path may then use `${claim}`
    /// (`ci/${repository}/*`), filled with the login's claim, lowercased. A token stays
    /// what it was created as: a PUT keeps a password token without and a federated token
    /// with a federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,
}

/// The body of `PATCH .../tokens/{tokenId}`: only what is sent changes; `"expiryDate": null`
/// removes the expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TokenStatus>)]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T10:00:00Z")]
    pub expiry_date: Patch<String>,
    /// Replaces the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    /// Replaces the whole list; `[]` or `null`: anywhere.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["10.0.0.0/8"]))]
    pub allowed_networks: Patch<Vec<String>>,
    /// `null` removes it.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[schema(value_type = Option<String>)]
    pub owner: Patch<String>,
    /// `null` removes it.
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    /// Replaces a federated token's whole federation (a password token cannot get one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<Federation>,
}

/// The reply of `POST .../offboarding?owner=`: the tokens it disabled, sorted by name
/// (tokens of the owner that were disabled already are not in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisabledTokens {
    /// `<registryId>-tokens-disabled`.
    pub id: String,
    /// Always `collection`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub href: String,
    pub items: Vec<Token>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({
            "id": "7c1e1a52-4d7f-4a6e-9a51-0f4b8f5b2f10",
            "type": "token",
            "href": "http://x/api/v1/registries/default/tokens/7c1e1a52-4d7f-4a6e-9a51-0f4b8f5b2f10",
            "metadata": {
                "createdBy": "admin", "createdDate": "2026-01-01T00:00:00Z",
                "lastModifiedBy": "admin", "lastModifiedDate": "2026-01-02T00:00:00Z",
                "state": "AVAILABLE"
            },
            "properties": {
                "name": "ci-push",
                "credentials": {"username": "ci-push"},
                "expiryDate": null,
                "scopes": [{"type": "repository", "name": "team/*", "actions": ["pull", "push"]}],
                "status": "enabled"
            }
        })
    }

    #[test]
    fn a_token_reads_and_writes_the_same_json() {
        let t: Token = serde_json::from_value(sample()).unwrap();
        assert_eq!(t.name(), "ci-push");
        assert_eq!(t.properties.status, TokenStatus::Enabled);
        assert_eq!(
            t.properties.scopes[0].to_string(),
            "repository:team/*:pull,push"
        );
        assert_eq!(serde_json::to_value(&t).unwrap(), sample());
    }

    #[test]
    fn patch_bodies_keep_absent_apart_from_null() {
        let p: TokenPatch = serde_json::from_value(json!({"expiryDate": null})).unwrap();
        assert_eq!(p.expiry_date, Patch::Null);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"expiryDate": null})
        );
        let p: TokenPatch = serde_json::from_value(json!({"status": "disabled"})).unwrap();
        assert_eq!(p.expiry_date, Patch::Absent);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"status": "disabled"})
        );
        let e = serde_json::from_value::<TokenPatch>(json!({"color": "red"})).unwrap_err();
        assert!(e.to_string().contains("color"), "{e}");
    }

    #[test]
    fn create_bodies_leave_out_what_is_not_set() {
        let c = TokenCreate {
            properties: TokenPropertiesInput {
                name: "ci".into(),
                status: None,
                expiry_date: None,
                scopes: None,
                allowed_networks: None,
                owner: None,
                description: None,
                federation: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"properties": {"name": "ci"}})
        );
    }
}
