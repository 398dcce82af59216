//! Registries: configured in regauth's config file, read-only in the API.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::token::{Metadata, ResourceType};

/// The `auth: token:` settings that make a distribution registry trust this regauth
/// (regauth's addition to the IONOS shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuth {
    /// The token endpoint's URL.
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// Path on the regauth host of the bundle of every published signing key's certificate
    /// (read by the registry at start only: restart it after a key is added or retired).
    pub rootcertbundle: String,
    /// The JWS algorithms regauth signs with (`ES256` or `RS256`): distribution 3.x's
    /// `signingalgorithms`, which 2.8 ignores. Empty from a server that does not say.
    #[serde(default)]
    pub signingalgorithms: Vec<String>,
    /// Path of the JWK Set of every published signing key on the regauth host, for
    /// distribution 3.x's `jwks`. Absent from a server without key rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
}

/// A registry's properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryProperties {
    pub name: String,
    /// Where docker clients reach the registry (`host[:port]`).
    pub hostname: String,
    /// The `service` the registry names in its token requests.
    pub service: String,
    /// Empty: regauth has no locations.
    pub location: String,
    pub token_auth: TokenAuth,
    /// Where the registry sends its notifications (registry activity, docs/activity.md).
    /// Absent from a server without activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::Notifications>,
}

/// A registry that regauth issues tokens for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Registry {
    pub id: String,
    /// Always `registry`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub href: String,
    pub metadata: Metadata,
    pub properties: RegistryProperties,
}

/// Every registry, in the config file's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryList {
    /// Always `registries`.
    pub id: String,
    /// Always `collection`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub href: String,
    pub items: Vec<Registry>,
}
