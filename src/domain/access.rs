//! The access decision: a pure function from (token scopes, requested scopes) to granted access.
use serde::Serialize;

use super::{ResourceRequest, Scope};

/// One entry of the JWT `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Decides what to grant (SPEC §1 "Access decision"). Requests for one (type, name) are merged;
/// output order follows first appearance in `requests`; resources with nothing granted are
/// left out. Repository actions come out in the order pull, push, delete.
pub fn decide(_scopes: &[Scope], _requests: &[ResourceRequest]) -> Vec<Grant> {
    todo!("domain helper")
}
