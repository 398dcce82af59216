//! A token's scopes: what it may do, as `{type, name, actions}`.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{RepoPattern, ValidationError};

/// One registry action. `delete` is shown as "Admin" in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

impl FromStr for Action {
    type Err = ValidationError;
    /// Exactly `pull`, `push` or `delete`. Field name in errors: `actions`.
    fn from_str(_s: &str) -> Result<Self, Self::Err> {
        todo!("domain helper")
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small set of actions; iterates in the order pull, push, delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    pub const EMPTY: ActionSet = ActionSet(0);

    pub fn insert(&mut self, _a: Action) {
        todo!("domain helper")
    }
    pub fn contains(&self, _a: Action) -> bool {
        todo!("domain helper")
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }
    pub fn intersect(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & other.0)
    }
    /// Actions in the set, in the order pull, push, delete.
    pub fn iter(&self) -> impl Iterator<Item = Action> + '_ {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        let mut s = ActionSet::EMPTY;
        for a in iter {
            s.insert(a);
        }
        s
    }
}

/// Target of a registry-type scope: `catalog` or `*` (both allow listing the catalog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryTarget {
    Catalog,
    Any,
}

/// What a scope applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeTarget {
    Repository(RepoPattern),
    Registry(RegistryTarget),
}

/// One validated scope of a token. Serialised as `{"type","name","actions"}` (the IONOS shape);
/// deserialisation re-applies [`Scope::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub target: ScopeTarget,
    pub actions: ActionSet,
}

impl Scope {
    /// Parses and validates one scope from its wire parts. Errors name the field
    /// (`type`, `name` or `actions`) and the rule: unknown type, bad pattern, registry name
    /// other than `catalog`/`*`, empty or unknown actions, `push` without `pull`.
    pub fn parse(_kind: &str, _name: &str, _actions: &[String]) -> Result<Scope, ValidationError> {
        todo!("domain helper")
    }

    /// `repository` or `registry`.
    pub fn kind_str(&self) -> &'static str {
        todo!("domain helper")
    }

    /// The pattern, `catalog` or `*`.
    pub fn name_str(&self) -> &str {
        todo!("domain helper")
    }
}

/// Validates a whole scope list: at most [`super::MAX_SCOPES`], at most one per (type, name).
/// Errors use field `scopes` or `scopes[i]`.
pub fn validate_scope_list(_scopes: &[Scope]) -> Result<(), ValidationError> {
    todo!("domain helper")
}

/// The wire/storage shape of a scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScopeWire {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ScopeWire {
            kind: self.kind_str().to_string(),
            name: self.name_str().to_string(),
            actions: self
                .actions
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ScopeWire::deserialize(d)?;
        Scope::parse(&w.kind, &w.name, &w.actions).map_err(serde::de::Error::custom)
    }
}
