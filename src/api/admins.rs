//! Wire types of `/api/v1/admins`: named admins with roles, shared by the server, the CLI and
//! the console.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /api/v1/admins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminCreate {
    /// 1 to 63 lowercase letters, digits and `-`, beginning with a letter; not `bootstrap`.
    #[schema(example = "alice")]
    pub name: String,
    /// `viewer` (reads tokens), `editor` (also writes tokens) or `owner` (also manages admins
    /// and signing keys).
    #[schema(example = "editor")]
    pub role: String,
    /// The registries this admin is limited to; empty or absent: all.
    #[serde(default)]
    pub registries: Vec<String>,
}

/// A named admin (never its secret's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminOut {
    pub name: String,
    pub role: String,
    /// Empty: all registries.
    pub registries: Vec<String>,
    /// Only in the replies of create and rotate: the secret, shown this once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_rotated_date: Option<DateTime<Utc>>,
}

/// The reply of `GET /api/v1/admins`: one page of the named admins, sorted by name, in the
/// token list's collection shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdminList {
    /// Always `admins`.
    pub id: String,
    /// Always `collection`.
    #[serde(rename = "type")]
    pub kind: super::token::ResourceType,
    pub href: String,
    pub items: Vec<AdminOut>,
    /// Index of the first item in the whole list.
    pub offset: usize,
    /// The page size asked for.
    pub limit: usize,
    /// Items on this page.
    pub count: usize,
    /// Named admins in the whole list.
    pub total: usize,
    #[serde(rename = "_links")]
    pub links: super::token::Links,
}
