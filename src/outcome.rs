//! The outcome vocabulary: how a token request or an admin write ended. The services decide
//! these, the log lines and the metrics observe them, so they live apart from all three and
//! import nothing of ours: neither side can pull the other into a cycle.
//!
//! Every enum here has an `ALL` constant that the metrics iterate to create their series; a
//! unit test below checks, through an exhaustive `match`, that `ALL` names every variant.

/// Why a client failed to authenticate. Logged as the `reason` of the decision, never sent:
/// the HTTP reply is identical for every one, so a client cannot probe which names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// No token has this name in the service's registry (or it is no valid token name).
    UnknownName,
    /// The token exists; the password is not its secret.
    WrongSecret,
    /// The right secret (or a live refresh token) of a disabled token.
    Disabled,
    /// The right secret (or a live refresh token) of an expired token.
    Expired,
    /// A refresh token that was never issued, or was revoked: its token was disabled or
    /// deleted, or newer logins pushed it out.
    DeadRefresh,
    /// A refresh token issued for another service.
    ForeignRefresh,
    /// The token was disabled or deleted while this login was storing its refresh token.
    GoneDuringLogin,
    /// The right secret (or a live refresh token) of a token limited to networks that do not
    /// include the client's address, or from a client whose address is unknown.
    AddressNotAllowed,
    /// A federated token's ID token was refused (the log line's `detail` says why: unknown
    /// key, bad signature, wrong audience, expired, a claim condition...).
    IdTokenRefused,
    /// A federated login's session has ended: its refresh token or temporary password is
    /// past `sessionSeconds`.
    SessionEnded,
    /// A token exchange names a token that has a password, not a federation.
    NotFederated,
}

impl Denial {
    /// Every denial.
    pub const ALL: [Denial; 11] = [
        Denial::UnknownName,
        Denial::WrongSecret,
        Denial::Disabled,
        Denial::Expired,
        Denial::DeadRefresh,
        Denial::ForeignRefresh,
        Denial::GoneDuringLogin,
        Denial::AddressNotAllowed,
        Denial::IdTokenRefused,
        Denial::SessionEnded,
        Denial::NotFederated,
    ];

    /// The `reason` field of the log line: a fixed string, so logging it allocates nothing.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::UnknownName => "unknown name",
            Denial::WrongSecret => "wrong secret",
            Denial::Disabled => "token disabled",
            Denial::Expired => "token expired",
            Denial::DeadRefresh => "refresh token revoked or unknown",
            Denial::ForeignRefresh => "refresh token issued for another service",
            Denial::GoneDuringLogin => "token disabled or deleted during login",
            Denial::AddressNotAllowed => "client address not allowed",
            Denial::IdTokenRefused => "ID token refused",
            Denial::SessionEnded => "federated session ended",
            Denial::NotFederated => "token exchange for a token without a federation",
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one token request, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Something granted, or nothing asked for (a login).
    Issued,
    /// Authenticated; none of what was asked for is covered by the token's scopes.
    NothingGranted,
    Denied(Denial),
    /// 400: the `service` names no registry.
    UnknownService,
    /// Anonymous (no credentials): something granted from the public repositories, or
    /// nothing asked for.
    Anonymous,
    /// Anonymous: none of what was asked for is public.
    AnonymousNothingGranted,
    /// Anonymous, refused: over `[limits] anonymous_per_minute` (429).
    AnonymousLimited,
    /// No credentials, and the registry has no public repositories (401).
    NoCredentials,
    /// 500.
    Error,
    /// 503: an ID token could not be checked: its issuer is unreachable and none of its
    /// keys are cached.
    IssuerUnreachable,
}

/// The decisions that carry no denial.
const PLAIN_DECISIONS: [Decision; 9] = [
    Decision::Issued,
    Decision::NothingGranted,
    Decision::UnknownService,
    Decision::Anonymous,
    Decision::AnonymousNothingGranted,
    Decision::AnonymousLimited,
    Decision::NoCredentials,
    Decision::Error,
    Decision::IssuerUnreachable,
];

/// How a token request authenticated (or tried to), as the metrics count decisions by grant
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// A token's password (Basic auth or `grant_type=password`).
    Password,
    /// A refresh token.
    Refresh,
    /// A federated token's OIDC ID token as the password.
    IdToken,
    /// An RFC 8693 token exchange (an ID token for a temporary password).
    Exchange,
    /// A temporary password from a token exchange.
    Temporary,
}

impl GrantType {
    /// Every grant type.
    pub const ALL: [GrantType; 5] = [
        GrantType::Password,
        GrantType::Refresh,
        GrantType::IdToken,
        GrantType::Exchange,
        GrantType::Temporary,
    ];

    /// The metrics label: `password`, `refresh`, `id_token`, `exchange`, `temporary`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::Refresh => "refresh",
            GrantType::IdToken => "id_token",
            GrantType::Exchange => "exchange",
            GrantType::Temporary => "temporary",
        }
    }
}

impl Decision {
    /// Every decision: the plain ones, then one per [`Denial::ALL`] (built at compile time,
    /// so a new denial is in it without another list to keep).
    pub const ALL: [Decision; PLAIN_DECISIONS.len() + Denial::ALL.len()] = {
        let mut all = [Decision::Error; PLAIN_DECISIONS.len() + Denial::ALL.len()];
        let mut i = 0;
        while i < PLAIN_DECISIONS.len() {
            all[i] = PLAIN_DECISIONS[i];
            i += 1;
        }
        let mut j = 0;
        while j < Denial::ALL.len() {
            all[i + j] = Decision::Denied(Denial::ALL[j]);
            j += 1;
        }
        all
    };
}

/// A write of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminAction {
    /// `POST /registries/{r}/tokens`, or a `PUT` that created the token.
    Create,
    /// `PUT /registries/{r}/tokens/{id}` of an existing token (or one that failed).
    Replace,
    /// `PATCH /registries/{r}/tokens/{id}`.
    Patch,
    /// `POST /registries/{r}/tokens/{id}/credentials`.
    Rotate,
    /// `DELETE /registries/{r}/tokens/{id}`.
    Delete,
    /// `POST /registries/{r}/offboarding?owner=`: one line per token disabled.
    Disable,
}

impl AdminAction {
    /// Every action.
    pub const ALL: [AdminAction; 6] = [
        AdminAction::Create,
        AdminAction::Replace,
        AdminAction::Patch,
        AdminAction::Rotate,
        AdminAction::Delete,
        AdminAction::Disable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminAction::Create => "create",
            AdminAction::Replace => "replace",
            AdminAction::Patch => "patch",
            AdminAction::Rotate => "rotate",
            AdminAction::Delete => "delete",
            AdminAction::Disable => "disable",
        }
    }
}

/// How an admin write ended, from its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminOutcome {
    /// 2xx.
    Ok,
    /// 400, 413 and any other 4xx but 404 and 409: a malformed or rule-breaking request.
    Invalid,
    /// 404: no such registry or token (also a token deleted while it was being changed).
    NotFound,
    /// 409: the name (or id) is taken.
    Conflict,
    /// 5xx.
    Error,
}

impl AdminOutcome {
    /// Every outcome.
    pub const ALL: [AdminOutcome; 5] = [
        AdminOutcome::Ok,
        AdminOutcome::Invalid,
        AdminOutcome::NotFound,
        AdminOutcome::Conflict,
        AdminOutcome::Error,
    ];

    /// The outcome of a reply with `status`.
    pub fn of_status(status: u16) -> AdminOutcome {
        match status {
            200..=299 => AdminOutcome::Ok,
            404 => AdminOutcome::NotFound,
            409 => AdminOutcome::Conflict,
            500.. => AdminOutcome::Error,
            _ => AdminOutcome::Invalid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdminOutcome::Ok => "ok",
            AdminOutcome::Invalid => "invalid",
            AdminOutcome::NotFound => "not found",
            AdminOutcome::Conflict => "conflict",
            AdminOutcome::Error => "error",
        }
    }
}

/// Why an admin request was refused before it reached a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminAuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer token that is not the admin token.
    Wrong,
}

impl AdminAuthFailure {
    /// Every failure.
    pub const ALL: [AdminAuthFailure; 2] = [AdminAuthFailure::Missing, AdminAuthFailure::Wrong];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminAuthFailure::Missing => "no admin token",
            AdminAuthFailure::Wrong => "wrong admin token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// `ALL` holds every variant once: the `match` is exhaustive, so a new variant does not
    /// compile until it is given a place here, and then the count check fails until it is in
    /// `ALL` too.
    #[test]
    fn every_all_constant_names_every_variant_once() {
        fn denial(d: Denial) -> u8 {
            match d {
                Denial::UnknownName
                | Denial::WrongSecret
                | Denial::Disabled
                | Denial::Expired
                | Denial::DeadRefresh
                | Denial::ForeignRefresh
                | Denial::GoneDuringLogin
                | Denial::AddressNotAllowed
                | Denial::IdTokenRefused
                | Denial::SessionEnded
                | Denial::NotFederated => 11,
            }
        }
        fn decision(d: Decision) -> usize {
            match d {
                Decision::Denied(d) => usize::from(denial(d)),
                Decision::Issued
                | Decision::NothingGranted
                | Decision::UnknownService
                | Decision::Anonymous
                | Decision::AnonymousNothingGranted
                | Decision::AnonymousLimited
                | Decision::NoCredentials
                | Decision::Error
                | Decision::IssuerUnreachable => 9,
            }
        }
        fn action(a: AdminAction) -> usize {
            match a {
                AdminAction::Create
                | AdminAction::Replace
                | AdminAction::Patch
                | AdminAction::Rotate
                | AdminAction::Delete
                | AdminAction::Disable => 6,
            }
        }
        fn outcome(o: AdminOutcome) -> usize {
            match o {
                AdminOutcome::Ok
                | AdminOutcome::Invalid
                | AdminOutcome::NotFound
                | AdminOutcome::Conflict
                | AdminOutcome::Error => 5,
            }
        }
        fn failure(f: AdminAuthFailure) -> usize {
            match f {
                AdminAuthFailure::Missing | AdminAuthFailure::Wrong => 2,
            }
        }
        fn distinct<T: std::hash::Hash + Eq + Copy>(all: &[T]) -> usize {
            all.iter().copied().collect::<HashSet<T>>().len()
        }
        assert_eq!(distinct(&Denial::ALL), usize::from(denial(Denial::ALL[0])));
        assert_eq!(
            distinct(&Decision::ALL),
            decision(Decision::Issued) + decision(Decision::Denied(Denial::ALL[0]))
        );
        assert_eq!(distinct(&AdminAction::ALL), action(AdminAction::ALL[0]));
        assert_eq!(distinct(&AdminOutcome::ALL), outcome(AdminOutcome::ALL[0]));
        assert_eq!(
            distinct(&AdminAuthFailure::ALL),
            failure(AdminAuthFailure::ALL[0])
        );
    }

    #[test]
    fn each_denial_has_its_own_reason() {
        let reasons: HashSet<&str> = Denial::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(reasons.len(), Denial::ALL.len());
    }
}
