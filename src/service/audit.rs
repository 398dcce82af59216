//! The audit trail of the admin API: one log line per admin write (create, replace, patch,
//! rotate, delete) and per failed admin authentication, under the log target
//! [`TARGET`] (`regauth::audit`), so that `REGAUTH_LOG` or a log shipper can keep them apart.
//!
//! A line names the action, the registry, the token's name and id, the fields written with
//! their new values (never a password or a hash: a rotation says `password` and nothing
//! more), the client's address (`client`: the TCP peer, or the `X-Forwarded-For` client
//! when the peer is a trusted proxy; then also `peer`, the proxy), the outcome and the HTTP
//! status. A failed admin
//! authentication names the address, method, path and why (no token, or a wrong one), never
//! the token presented.
//!
//! The lines are written from `http`, which knows the client, the path and the status.
use std::fmt::Write as _;
use std::net::IpAddr;

use tracing::{info, warn};

use crate::domain::{Description, Network, Owner, Patch, Scope, Status};
use crate::service::admin::{NewToken, TokenChanges};

/// The outcome vocabulary of admin requests, re-exported where the audit lines use it.
pub use crate::outcome::{AdminAction, AdminAuthFailure, AdminOutcome};

/// The log target of every audit line.
pub const TARGET: &str = "regauth::audit";

/// One admin write, as the audit line shows it.
#[derive(Debug)]
pub struct AdminRecord<'a> {
    /// The admin who acted (`bootstrap` for the bootstrap admin token).
    pub admin: &'a str,
    pub action: AdminAction,
    pub registry: &'a str,
    /// The token's name, when the request got far enough to know it.
    pub token: &'a str,
    /// The token's id (from the path or the created token), when known.
    pub id: &'a str,
    /// The fields written, `name=value` separated by spaces ([`changes_of_new`] and friends).
    pub changes: &'a str,
    /// The client: the TCP peer, or from a trusted proxy the `X-Forwarded-For` client.
    pub client: Option<IpAddr>,
    /// The TCP peer; logged as `peer` only when it is not `client` (a trusted proxy).
    pub peer: Option<IpAddr>,
    pub outcome: AdminOutcome,
    pub status: u16,
}

/// Writes the audit line of one admin write.
pub fn admin_action(r: &AdminRecord<'_>) {
    let peer = differing_peer(r.client, r.peer);
    let client = OptionalAddr(r.client);
    info!(
        target: TARGET,
        admin = %r.admin, action = r.action.as_str(), registry = %r.registry, token = %r.token, id = %r.id,
        changes = %r.changes, client = %client, peer, outcome = r.outcome.as_str(),
        status = r.status, "admin action"
    );
}

/// The TCP peer as a log field, only when it is not the client (a trusted proxy in between).
fn differing_peer(
    client: Option<IpAddr>,
    peer: Option<IpAddr>,
) -> Option<tracing::field::DisplayValue<IpAddr>> {
    peer.filter(|p| Some(*p) != client)
        .map(tracing::field::display)
}

/// Writes the audit line of a signing-key change (`/api/v1/keys`): add, activate (and
/// whether forced), retire; whatever the outcome.
pub fn key_action(action: &str, key: &str, forced: bool, client: Option<IpAddr>, status: u16) {
    let client = OptionalAddr(client);
    let outcome = AdminOutcome::of_status(status);
    info!(
        target: TARGET,
        action, key = %key, forced, client = %client, outcome = outcome.as_str(), status,
        "signing key action"
    );
}

/// Writes the audit line of a refused admin request: the one place it is written, so that a
/// flood of them can be summarised here. Never logs the token presented.
pub fn admin_auth_failed(
    client: Option<IpAddr>,
    peer: Option<IpAddr>,
    method: &str,
    path: &str,
    why: AdminAuthFailure,
) {
    let peer = differing_peer(client, peer);
    let client = OptionalAddr(client);
    warn!(
        target: TARGET,
        client = %client, peer, method = %method, path = %path, reason = why.as_str(),
        outcome = "denied", "admin authentication failed"
    );
}

/// One admin request refused by the throttle (too many failed admin authentications from
/// `client`), without its token being looked at.
pub fn admin_auth_throttled(
    client: Option<IpAddr>,
    peer: Option<IpAddr>,
    method: &str,
    path: &str,
    retry_after: u64,
) {
    let peer = differing_peer(client, peer);
    let client = OptionalAddr(client);
    warn!(
        target: TARGET,
        client = %client, peer, method = %method, path = %path, retry_after,
        outcome = "throttled",
        "admin request refused: too many failed admin authentications from this address"
    );
}

/// The client's address, or nothing.
struct OptionalAddr(Option<IpAddr>);

impl std::fmt::Display for OptionalAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => Ok(()),
        }
    }
}

fn push_status(out: &mut String, s: Status) {
    let _ = write!(out, " status={s}");
}

fn push_expiry(out: &mut String, e: Option<chrono::DateTime<chrono::Utc>>) {
    match e {
        Some(at) => {
            let _ = write!(
                out,
                " expiryDate={}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
        None => out.push_str(" expiryDate=none"),
    }
}

fn push_scopes(out: &mut String, scopes: &[Scope]) {
    out.push_str(" scopes=[");
    for (i, s) in scopes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let actions: Vec<&str> = s.actions.iter().map(|a| a.as_str()).collect();
        let _ = write!(
            out,
            "{}:{}:{}",
            s.kind_str(),
            s.name_str(),
            actions.join(",")
        );
    }
    out.push(']');
}

fn push_networks(out: &mut String, networks: &[Network]) {
    out.push_str(" allowedNetworks=[");
    for (i, n) in networks.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{n}");
    }
    out.push(']');
}

/// Free text, quoted (Debug form: quotes and backslashes escaped; control characters cannot
/// occur, the domain refuses them).
fn push_text(out: &mut String, key: &str, value: Option<&str>) {
    match value {
        Some(v) => {
            let _ = write!(out, " {key}={v:?}");
        }
        None => {
            let _ = write!(out, " {key}=none");
        }
    }
}

/// The fields of a create or a replace: every one, with its value (networks, owner and
/// description only when set: a replace leaves out what it clears, as its body does).
pub fn changes_of_new(new: &NewToken) -> String {
    let mut out = format!("name={}", new.name);
    push_status(&mut out, new.status);
    push_expiry(&mut out, new.expiry);
    push_scopes(&mut out, &new.scopes);
    if !new.networks.is_empty() {
        push_networks(&mut out, &new.networks);
    }
    if let Some(o) = &new.owner {
        push_text(&mut out, "owner", Some(o.as_str()));
    }
    if let Some(d) = &new.description {
        push_text(&mut out, "description", Some(d.as_str()));
    }
    if let Some(f) = &new.federation {
        push_federation(&mut out, f);
    }
    out
}

/// A federation as the audit line shows it: issuer, audiences, claim conditions, limits,
/// and whether it has inline keys (not the keys).
fn push_federation(out: &mut String, f: &crate::domain::federation::Federation) {
    let claims: Vec<String> = f.claims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = format!(
        "issuer={} audiences=[{}] claims=[{}] maxIdTokenLifetimeSeconds={} sessionSeconds={}{}",
        f.issuer,
        f.audiences.join(" "),
        claims.join(" "),
        f.max_id_token_lifetime.num_seconds(),
        f.session.num_seconds(),
        if f.jwks.is_some() { " jwks=inline" } else { "" }
    );
    push_text(out, "federation", Some(&text));
}

/// A token disabled by an offboarding (`POST .../offboarding?owner=`).
pub fn changes_of_offboarding(owner: &str) -> String {
    format!("status=disabled byOwner={owner:?}")
}

/// The fields a PATCH sets, with their new values.
pub fn changes_of_patch(c: &TokenChanges) -> String {
    let mut out = String::new();
    if let Some(s) = c.status {
        push_status(&mut out, s);
    }
    match c.expiry {
        Patch::Absent => {}
        Patch::Null => push_expiry(&mut out, None),
        Patch::Value(at) => push_expiry(&mut out, Some(at)),
    }
    if let Some(scopes) = &c.scopes {
        push_scopes(&mut out, scopes);
    }
    if let Some(networks) = &c.networks {
        push_networks(&mut out, networks);
    }
    match &c.owner {
        Patch::Absent => {}
        o => push_text(
            &mut out,
            "owner",
            o.as_ref().into_option().map(Owner::as_str),
        ),
    }
    match &c.description {
        Patch::Absent => {}
        d => push_text(
            &mut out,
            "description",
            d.as_ref().into_option().map(Description::as_str),
        ),
    }
    if let Some(f) = &c.federation {
        push_federation(&mut out, f);
    }
    out.trim_start().to_string()
}

/// A rotation: the password changed (never its value), and the grace period.
pub fn changes_of_rotation(grace: chrono::TimeDelta) -> String {
    format!("password gracePeriodSeconds={}", grace.num_seconds())
}

/// One line per change to a named admin (create, rotate, delete), whatever its outcome:
/// who acted (`admin`), on whom (`target`), with which role and registries.
pub fn admin_managed(
    admin: &str,
    action: &str,
    target: &str,
    role: &str,
    registries: &str,
    client: Option<IpAddr>,
    status: u16,
) {
    let client = OptionalAddr(client);
    info!(
        target: TARGET,
        admin = %admin, action, target_admin = %target, role, registries = %registries,
        client = %client, outcome = AdminOutcome::of_status(status).as_str(), status,
        "admin managed"
    );
}

/// A request an authenticated admin's role or registry restriction does not allow.
pub fn admin_refused(
    admin: &str,
    role: &str,
    method: &str,
    path: &str,
    reason: &str,
    client: Option<IpAddr>,
) {
    let client = OptionalAddr(client);
    warn!(
        target: TARGET,
        admin = %admin, role, method, path = %path, reason = %reason, client = %client,
        "admin request refused by role"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_fields_are_audited() {
        let new = NewToken {
            name: "ci-bot".parse().unwrap(),
            status: Status::Enabled,
            expiry: None,
            scopes: vec![],
            networks: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            owner: Some("al \"x\"".parse().unwrap()),
            description: Some("pushes".parse().unwrap()),
            federation: None,
        };
        assert_eq!(
            changes_of_new(&new),
            "name=ci-bot status=enabled expiryDate=none scopes=[] \
             allowedNetworks=[10.0.0.0/8 ::1/128] owner=\"al \\\"x\\\"\" description=\"pushes\""
        );
        let patch = TokenChanges {
            networks: Some(vec![]),
            owner: Patch::Null,
            description: Patch::Value("d".parse().unwrap()),
            ..TokenChanges::default()
        };
        assert_eq!(
            changes_of_patch(&patch),
            "allowedNetworks=[] owner=none description=\"d\""
        );
        assert_eq!(
            changes_of_offboarding("bob"),
            "status=disabled byOwner=\"bob\""
        );
    }

    #[test]
    fn outcomes_follow_the_status() {
        for (status, outcome) in [
            (200, AdminOutcome::Ok),
            (201, AdminOutcome::Ok),
            (204, AdminOutcome::Ok),
            (400, AdminOutcome::Invalid),
            (413, AdminOutcome::Invalid),
            (404, AdminOutcome::NotFound),
            (409, AdminOutcome::Conflict),
            (500, AdminOutcome::Error),
            (503, AdminOutcome::Error),
        ] {
            assert_eq!(AdminOutcome::of_status(status), outcome, "{status}");
        }
        let names: std::collections::HashSet<&str> =
            AdminOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(names.len(), AdminOutcome::ALL.len());
        let names: std::collections::HashSet<&str> =
            AdminAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), AdminAction::ALL.len());
    }
}
