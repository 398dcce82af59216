//! The wire types of regauth's HTTP API: the admin API under `/api/v1` (shaped like the IONOS
//! Cloud Container Registry token API, so its SDKs work unchanged) and the token endpoint's
//! reply and errors. One set of types, used by the server handlers (`http`) to write and
//! by the CLI (`cli`) to read, and the source of the OpenAPI document (`docs/openapi.json`,
//! built in `http::openapi`).
//!
//! Plain serde types: they know nothing of axum, sled, JWT or the store. Conversions from domain values
//! (which need the server's public URL) live in `http::admin`; the CLI reads these types as
//! they are.
//!
//! Inputs (`TokenCreate`, `TokenPatch`) keep `status`, `expiryDate` and scope fields as text:
//! the server parses them into domain types and names the offending field in its error
//! (`properties.scopes[1].actions: ...`), which serde's own enum errors would not. Their OpenAPI
//! schema still lists the accepted values.
//!
//! Adding a field to a reply: make it `Option<T>` with
//! `#[serde(default, skip_serializing_if = "Option::is_none")]`, so older clients and stored
//! test bodies keep working; then regenerate `docs/openapi.json` (`regauth openapi`).
mod activity;
pub mod admins;
mod auth;
mod duration;
mod error;
mod key;
mod registry;
pub mod time;
mod token;

pub use crate::domain::Patch;
pub use activity::{ActivityEvent, ActivityPage, EventsReceived, Notifications};
pub use auth::{AccessToken, ExchangedToken, RegistryError, RegistryErrors, TokenForm};
pub use duration::parse_duration;
pub use error::{ErrorBody, ErrorMessage};
pub use key::{Key, KeyCheck, KeyCreate, KeyList, KeyProbe};
pub use registry::{Registry, RegistryList, RegistryProperties, TokenAuth};
pub use time::rfc3339;
pub use token::{
    Credentials, DisabledTokens, Federation, FederationCheck, FederationCheckResult, GrantType,
    Links, Metadata, ResourceType, Scope, ScopeAction, ScopeType, Token, TokenCreate, TokenPage,
    TokenPatch, TokenProperties, TokenPropertiesInput, TokenRotate, TokenStatus,
};

/// The admin API's path prefix.
pub const PREFIX: &str = "/api/v1";
/// Default page size of the token list.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size of the token list.
pub const MAX_LIMIT: usize = 1000;
