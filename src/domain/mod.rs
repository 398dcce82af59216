//! Pure domain types and rules: token names, scopes, repository patterns and names,
//! requested-scope parsing, the access decision, token secrets, [`Patch`] (a field of a
//! partial update), and the federations of keyless CI ([`federation`]).
//!
//! Knows nothing of axum, sled or JWT: values are
//! parsed at the edge into these types and trusted afterwards.
pub mod access;
pub mod activity;
pub mod admin;
pub mod federation;
pub mod name;
pub mod patch;
pub mod pattern;
pub mod policy;
pub mod reference;
pub mod request;
pub mod scope;
pub mod secret;
pub mod token;
pub mod webhook;

pub use access::{decide, decide_with_public, Grant, ScopeList};
pub use admin::{allows, Admin, Permission, Principal, Role};
pub use name::TokenName;
pub use patch::Patch;
pub use pattern::RepoPattern;
pub use policy::{
    check_lifetime, network_allows, parse_networks, Description, Network, Owner, MAX_NETWORKS,
};
pub use reference::RepositoryName;
pub use request::{parse_scope, parse_scope_into, ResourceRequest, ScopeParseError};
pub use scope::{validate_scope_list, Action, ActionSet, RegistryTarget, Scope, ScopeTarget};
pub use secret::SecretHash;
pub use token::{
    expand_scopes, validate_expiry, validate_grace, GrantKind, LastUse, PreviousSecret, Status,
    Token, MAX_GRACE, MAX_SCOPES,
};

/// A rule broken by a client's input. `field` names where (e.g. `properties.scopes[2].actions`),
/// `rule` says what was expected, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    pub field: String,
    pub rule: String,
}

impl ValidationError {
    /// A broken `rule` at `field`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// Prefixes the field path: `scopes[1]` + `actions` -> `scopes[1].actions`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}
