//! Parsing of requested scopes (`scope=` on the token endpoint), per distribution's scope.md.
//!
//! `resourcescope := type ':' name ':' action (',' action)*`, several separated by spaces;
//! `type` may carry `(class)`; `name` may contain one `:` (host:port).
use super::ValidationError;

/// One parsed resource scope as the client asked for it. Actions are kept as strings
/// (`*` and unknown actions included); [`super::decide`] interprets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// `repository`, `registry`, ... (without the class).
    pub kind: String,
    pub class: Option<String>,
    pub name: String,
    pub actions: Vec<String>,
}

/// A scope string that does not follow the grammar; the message quotes the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {scope:?}: {reason}")]
pub struct ScopeParseError {
    pub scope: String,
    pub reason: String,
}

/// Parses one `scope` value, which may hold several space-separated resource scopes.
/// Empty input gives an empty list.
pub fn parse_scope(_s: &str) -> Result<Vec<ResourceRequest>, ScopeParseError> {
    todo!("domain helper")
}

#[allow(dead_code)]
fn _uses(_: ValidationError) {}
