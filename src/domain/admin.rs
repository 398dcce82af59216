//! Named administrators: their roles, what each role may do ([`allows`]), the optional
//! registry restriction, and the stored record ([`Admin`]). Pure: no HTTP, no storage.
//!
//! The bootstrap admin token (config, `REGAUTH_ADMIN_TOKEN`, `data/admin-token`) is the
//! [`BOOTSTRAP`] owner; named admins authenticate with an `rgadm_` secret of their own.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{SecretHash, TokenName, ValidationError};

/// The name the bootstrap admin token acts under.
pub const BOOTSTRAP: &str = "bootstrap";

/// Prefix of a named admin's secret.
pub const ADMIN_SECRET_PREFIX: &str = "rgadm_";

/// What an admin may do. Ordered: each role may do everything the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads registries and tokens.
    Viewer,
    /// Also creates, changes, rotates and deletes tokens, and offboards owners.
    Editor,
    /// Also manages admins and signing keys.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "owner" => Ok(Role::Owner),
            _ => Err(ValidationError::new(
                "role",
                format!("must be viewer, editor or owner, got {s:?}"),
            )),
        }
    }
}

/// Something an admin request does, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read registries and tokens.
    ReadTokens,
    /// Create, change, rotate or delete tokens; offboard an owner.
    WriteTokens,
    /// List, create, rotate or delete admins.
    ManageAdmins,
    /// Read or change signing keys.
    ManageKeys,
    /// Read who one is (`GET /api/v1/admins/me`).
    WhoAmI,
}

impl Permission {
    /// The least role that has this permission.
    pub fn needs(self) -> Role {
        match self {
            Permission::ReadTokens | Permission::WhoAmI => Role::Viewer,
            Permission::WriteTokens => Role::Editor,
            Permission::ManageAdmins | Permission::ManageKeys => Role::Owner,
        }
    }
}

/// Whether `role` may do `action`: the one rule every admin route is checked against.
pub fn allows(role: Role, action: Permission) -> bool {
    role >= action.needs()
}

/// An authenticated admin: who acts, with which role, limited to which registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Empty: every registry.
    pub registries: Vec<String>,
}

/// Why a [`Principal`] may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this needs the {needed} role; {name} is {article} {role}")]
    Role {
        needed: Role,
        name: String,
        article: &'static str,
        role: Role,
    },
    /// Managing admins or keys concerns every registry: a registry-limited owner could
    /// otherwise create an unlimited one.
    #[error("this needs an owner of every registry; {name} is limited to registries {allowed}")]
    Everywhere { name: String, allowed: String },
    #[error("{name} is limited to registries {allowed}; not {registry}")]
    Registry {
        name: String,
        allowed: String,
        registry: String,
    },
}

impl Principal {
    /// The bootstrap owner.
    pub fn bootstrap() -> Principal {
        Principal {
            name: BOOTSTRAP.into(),
            role: Role::Owner,
            registries: Vec::new(),
        }
    }

    /// Whether this admin may see `registry` at all.
    pub fn sees(&self, registry: &str) -> bool {
        self.registries.is_empty() || self.registries.iter().any(|r| r == registry)
    }

    /// Checks `action`, on `registry` when it concerns one.
    pub fn check(&self, action: Permission, registry: Option<&str>) -> Result<(), Refusal> {
        if !allows(self.role, action) {
            return Err(Refusal::Role {
                needed: action.needs(),
                name: self.name.clone(),
                article: if self.role == Role::Viewer { "a" } else { "an" },
                role: self.role,
            });
        }
        let global = matches!(action, Permission::ManageAdmins | Permission::ManageKeys);
        if global && !self.registries.is_empty() {
            return Err(Refusal::Everywhere {
                name: self.name.clone(),
                allowed: self.registries.join(", "),
            });
        }
        match registry {
            Some(r) if !self.sees(r) => Err(Refusal::Registry {
                name: self.name.clone(),
                allowed: self.registries.join(", "),
                registry: r.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// A named admin as stored: never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    pub name: TokenName,
    pub role: Role,
    /// Empty: every registry.
    pub registries: Vec<String>,
    pub secret_hash: SecretHash,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub rotated: Option<DateTime<Utc>>,
}

impl Admin {
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.to_string(),
            role: self.role,
            registries: self.registries.clone(),
        }
    }
}

/// Parses an admin's name: the rules of token names, and never the bootstrap's name.
pub fn parse_admin_name(s: &str) -> Result<TokenName, ValidationError> {
    if s == BOOTSTRAP {
        return Err(ValidationError::new(
            "name",
            format!("{BOOTSTRAP:?} is the bootstrap admin token's name"),
        ));
    }
    // `/api/v1/admins/me` is who one is, so no admin can be called that.
    if s == "me" {
        return Err(ValidationError::new("name", "\"me\" is reserved"));
    }
    s.parse()
}

/// A new admin secret (`rgadm_` + 256 random bits in base62 + checksum).
pub fn new_admin_secret() -> Result<String, ring::error::Unspecified> {
    super::secret::try_new_secret(ADMIN_SECRET_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_against_each_permission() {
        use Permission::*;
        let table = [
            (ReadTokens, [true, true, true]),
            (WhoAmI, [true, true, true]),
            (WriteTokens, [false, true, true]),
            (ManageAdmins, [false, false, true]),
            (ManageKeys, [false, false, true]),
        ];
        for (action, expected) in table {
            for (role, want) in [Role::Viewer, Role::Editor, Role::Owner]
                .into_iter()
                .zip(expected)
            {
                assert_eq!(allows(role, action), want, "{role} {action:?}");
            }
        }
    }

    #[test]
    fn refusal_names_the_role_needed() {
        let alice = Principal {
            name: "alice".into(),
            role: Role::Viewer,
            registries: vec![],
        };
        let e = alice.check(Permission::WriteTokens, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "this needs the editor role; alice is a viewer"
        );
        let bob = Principal {
            name: "bob".into(),
            role: Role::Editor,
            registries: vec!["dev".into()],
        };
        assert!(bob.check(Permission::WriteTokens, Some("dev")).is_ok());
        let e = bob.check(Permission::ManageAdmins, None).unwrap_err();
        assert_eq!(e.to_string(), "this needs the owner role; bob is an editor");
        let e = bob.check(Permission::ReadTokens, Some("prod")).unwrap_err();
        assert_eq!(e.to_string(), "bob is limited to registries dev; not prod");
        assert!(Principal::bootstrap()
            .check(Permission::ManageKeys, Some("x"))
            .is_ok());
        let limited_owner = Principal {
            name: "olga".into(),
            role: Role::Owner,
            registries: vec!["dev".into()],
        };
        assert!(limited_owner
            .check(Permission::WriteTokens, Some("dev"))
            .is_ok());
        let e = limited_owner
            .check(Permission::ManageAdmins, None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "this needs an owner of every registry; olga is limited to registries dev"
        );
        assert!(limited_owner.check(Permission::ManageKeys, None).is_err());
        assert!(limited_owner.check(Permission::WhoAmI, None).is_ok());
    }

    #[test]
    fn names_and_roles_parse() {
        assert!(parse_admin_name("bootstrap").is_err());
        assert!(parse_admin_name("me").is_err());
        assert!(parse_admin_name("alice").is_ok());
        assert!(parse_admin_name("Alice").is_err());
        assert_eq!("owner".parse::<Role>().unwrap(), Role::Owner);
        assert!("admin".parse::<Role>().is_err());
        let s = new_admin_secret().unwrap();
        assert!(s.starts_with("rgadm_"));
        assert!(s.len() > 48);
    }
}
