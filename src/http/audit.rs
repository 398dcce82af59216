//! The admin API's audit middleware: after every write request under `/api/v1` (POST, PUT,
//! PATCH, DELETE on a token route) it writes the one audit line (`service::audit`), whatever
//! the outcome, including a request refused by an extractor before its handler ran. Handlers
//! add what only they know (the token's name, the fields written) as an [`AuditDetails`]
//! extension of their response; the rest comes from the path, the status and the connection.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::ApiError;
use super::state::AppState;
use crate::service::audit::{self, AdminAction, AdminOutcome, AdminRecord};

/// What a handler knows about its write, for the audit line.
#[derive(Debug, Clone, Default)]
pub struct AuditDetails {
    /// Overrides the action read from the method and path (a PUT that created a token).
    pub action: Option<AdminAction>,
    pub token: String,
    pub id: Option<Uuid>,
    /// `name=value ...` of the fields written ([`crate::service::audit::changes_of_new`]).
    pub changes: String,
}

impl AuditDetails {
    /// `result` as a response carrying these details.
    pub fn attach(self, result: Result<impl IntoResponse, ApiError>) -> Response {
        let mut resp = result.into_response();
        resp.extensions_mut().insert(self);
        resp
    }
}

/// The write a method and a path (below `/api/v1`) name, with the registry and token id
/// segments: `None` for reads and for paths that are no token route.
fn action_of<'p>(method: &Method, path: &'p str) -> Option<(AdminAction, &'p str, &'p str)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["registries", r, "tokens"]) => Some((AdminAction::Create, r, "")),
        (&Method::PUT, ["registries", r, "tokens", id]) => Some((AdminAction::Replace, r, id)),
        (&Method::PATCH, ["registries", r, "tokens", id]) => Some((AdminAction::Patch, r, id)),
        (&Method::DELETE, ["registries", r, "tokens", id]) => Some((AdminAction::Delete, r, id)),
        (&Method::POST, ["registries", r, "tokens", id, "credentials"]) => {
            Some((AdminAction::Rotate, r, id))
        }
        _ => None,
    }
}

/// Writes the audit line of each admin write (and counts it in the metrics). Runs inside the
/// admin-token check: refused requests are logged there.
pub async fn audit_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some((action, registry, path_id)) = action_of(req.method(), &path) else {
        return next.run(req).await;
    };
    let client = super::limits::request_client(&state, &req);
    let peer = super::limits::request_peer(&req);
    let admin = req
        .extensions()
        .get::<crate::domain::Principal>()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let mut resp = next.run(req).await;
    let details = resp
        .extensions_mut()
        .remove::<AuditDetails>()
        .unwrap_or_default();
    let status = resp.status().as_u16();
    let outcome = AdminOutcome::of_status(status);
    let action = details.action.unwrap_or(action);
    let id = details.id.map(|id| id.to_string());
    audit::admin_action(&AdminRecord {
        admin: &admin,
        action,
        registry,
        token: &details.token,
        id: id.as_deref().unwrap_or(path_id),
        changes: &details.changes,
        client,
        peer,
        outcome,
        status,
    });
    state.metrics.admin_action(&admin, action, outcome);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_told_by_method_and_path() {
        let id = "0b7e9bde-2a37-4a4e-9c3c-4f3c2a1e6b10";
        let token = format!("/registries/default/tokens/{id}");
        assert_eq!(
            action_of(&Method::POST, "/registries/default/tokens"),
            Some((AdminAction::Create, "default", ""))
        );
        for (method, action) in [
            (Method::PUT, AdminAction::Replace),
            (Method::PATCH, AdminAction::Patch),
            (Method::DELETE, AdminAction::Delete),
        ] {
            assert_eq!(
                action_of(&method, &token),
                Some((action, "default", id)),
                "{method}"
            );
        }
        assert_eq!(
            action_of(&Method::POST, &format!("{token}/credentials")),
            Some((AdminAction::Rotate, "default", id))
        );
        for (method, path) in [
            (Method::GET, token.as_str()),
            (Method::GET, "/registries/default/tokens"),
            (Method::POST, "/registries"),
            (Method::DELETE, "/registries/default"),
            (Method::POST, "/nowhere"),
        ] {
            assert_eq!(action_of(&method, path), None, "{method} {path}");
        }
    }
}
