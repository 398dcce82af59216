//! Signing keys (`/api/v1/keys`): regauth's addition to the IONOS shape, for key rotation
//! (docs/key-rotation.md).
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One signing key. Times are RFC 3339 with whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    /// RFC 7638 thumbprint of the public key (the `kid` of its JWK Set entry).
    pub id: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    /// `next` (published, not signing), `active` (signing) or `retiring` (published, no longer
    /// signing).
    pub state: String,
    /// The libtrust key id tokens signed by this key carry in their `kid` header.
    pub libtrust_kid: String,
    /// The certificate's not-after.
    pub not_after: String,
    /// Whole days until `notAfter` (negative once expired).
    pub days_left: i64,
    pub created: String,
    #[serde(default)]
    pub activated: Option<String>,
    #[serde(default)]
    pub deactivated: Option<String>,
    /// From when `DELETE` retires the key; `null` for the active key.
    #[serde(default)]
    pub retirable_at: Option<String>,
}

/// Every signing key, in creation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<Key>,
}

/// `POST /api/v1/keys`: a new key in state `next`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    /// `ES256` (the default).
    #[serde(default)]
    pub algorithm: Option<String>,
}

/// Whether one registry trusts a key: the answer of `GET <url>/v2/` to a token signed by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyProbe {
    /// The registry's id from the config file.
    pub registry: String,
    /// Its `url`.
    pub url: String,
    /// `true` when the registry answered 200.
    pub trusted: bool,
    /// The status, or why the registry could not be reached.
    pub detail: String,
}

/// `POST /api/v1/keys/{keyId}/check`: every registry with a `url`, probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyCheck {
    pub id: String,
    pub registries: Vec<KeyProbe>,
    /// `true` when every probed registry trusts the key.
    pub trusted: bool,
}
