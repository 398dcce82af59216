//! A token's scopes: what it may do, as `{type, name, actions}`.
//!
//! Parsed and validated once, when a token is created or changed; the access decision
//! ([`super::decide`]) then trusts them.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{RepoPattern, ValidationError, MAX_SCOPES};

/// One registry action. `delete` is shown as "Admin" in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    /// Every action, in the order pull, push, delete.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The wire name: `pull`, `push` or `delete`.
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
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            _ => Err(ValidationError::new(
                "actions",
                format!("must be 'pull', 'push' or 'delete', got {s:?}"),
            )),
        }
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
    /// No actions.
    pub const EMPTY: ActionSet = ActionSet(0);
    /// pull, push and delete.
    pub const ALL: ActionSet = ActionSet(0b111);

    /// pull = 1, push = 2, delete = 4.
    const fn bit(a: Action) -> u8 {
        match a {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }

    /// Adds `a`.
    pub fn insert(&mut self, a: Action) {
        self.0 |= Self::bit(a);
    }
    /// Whether `a` is in the set.
    pub fn contains(&self, a: Action) -> bool {
        self.0 & Self::bit(a) != 0
    }
    /// Whether the set holds no action.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// Actions in either set.
    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }
    /// Actions in both sets.
    pub fn intersect(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & other.0)
    }
    /// The set as bits (pull = 1, push = 2, delete = 4), for compact storage.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// The set of `bits` (see [`ActionSet::bits`]); `None` if a bit names no action.
    pub fn from_bits(bits: u8) -> Option<ActionSet> {
        (bits & !Self::ALL.0 == 0).then_some(ActionSet(bits))
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
    pub fn parse(kind: &str, name: &str, actions: &[String]) -> Result<Scope, ValidationError> {
        let target = match kind {
            REPOSITORY => ScopeTarget::Repository(name.parse()?),
            REGISTRY => ScopeTarget::Registry(match name {
                "catalog" => RegistryTarget::Catalog,
                "*" => RegistryTarget::Any,
                _ => {
                    return Err(ValidationError::new(
                        "name",
                        "a registry scope's name must be 'catalog' or '*'",
                    ))
                }
            }),
            _ => {
                return Err(ValidationError::new(
                    "type",
                    "must be 'repository' or 'registry'",
                ))
            }
        };
        let actions = actions
            .iter()
            .map(|a| a.parse::<Action>())
            .collect::<Result<ActionSet, _>>()?;
        Scope::new(target, actions)
    }

    /// A scope from already-typed parts (the store's compact records). Applies the action
    /// rules of [`Scope::parse`]: at least one action, `push` only with `pull`.
    pub fn new(target: ScopeTarget, actions: ActionSet) -> Result<Scope, ValidationError> {
        if actions.is_empty() {
            return Err(ValidationError::new(
                "actions",
                "must list at least one of 'pull', 'push', 'delete'",
            ));
        }
        if actions.contains(Action::Push) && !actions.contains(Action::Pull) {
            return Err(ValidationError::new(
                "actions",
                "push requires pull in the same scope",
            ));
        }
        Ok(Scope { target, actions })
    }

    /// `repository` or `registry`.
    pub fn kind_str(&self) -> &'static str {
        match self.target {
            ScopeTarget::Repository(_) => REPOSITORY,
            ScopeTarget::Registry(_) => REGISTRY,
        }
    }

    /// The pattern, `catalog` or `*`.
    pub fn name_str(&self) -> &str {
        match &self.target {
            ScopeTarget::Repository(p) => p.as_str(),
            ScopeTarget::Registry(RegistryTarget::Catalog) => "catalog",
            ScopeTarget::Registry(RegistryTarget::Any) => "*",
        }
    }
}

const REPOSITORY: &str = "repository";
const REGISTRY: &str = "registry";

/// Validates a whole scope list: at most [`super::MAX_SCOPES`], at most one per (type, name).
/// Errors use field `scopes` or `scopes[i]`.
pub fn validate_scope_list(scopes: &[Scope]) -> Result<(), ValidationError> {
    if scopes.len() > MAX_SCOPES {
        return Err(ValidationError::new(
            "scopes",
            format!(
                "must hold at most {MAX_SCOPES} scopes, got {}",
                scopes.len()
            ),
        ));
    }
    // At most 100 entries: a quadratic scan is cheaper than hashing.
    for (i, scope) in scopes.iter().enumerate() {
        let key = (scope.kind_str(), scope.name_str());
        if scopes[..i]
            .iter()
            .any(|s| (s.kind_str(), s.name_str()) == key)
        {
            return Err(ValidationError::new(
                format!("scopes[{i}]"),
                format!(
                    "duplicate scope for type {:?} and name {:?}: at most one scope per type \
                     and name (merge their actions)",
                    key.0, key.1
                ),
            ));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn scope(kind: &str, name: &str, actions: &[&str]) -> Scope {
        Scope::parse(kind, name, &strings(actions)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn action_from_str_is_exact() {
        assert_eq!("pull".parse::<Action>(), Ok(Action::Pull));
        assert_eq!("push".parse::<Action>(), Ok(Action::Push));
        assert_eq!("delete".parse::<Action>(), Ok(Action::Delete));
        for bad in ["", "Pull", "PUSH", " pull", "admin", "*", "pull,push"] {
            let e = bad.parse::<Action>().unwrap_err();
            assert_eq!(e.field, "actions");
            assert!(e.rule.contains("'pull', 'push' or 'delete'"), "{}", e.rule);
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert_eq!(a.to_string(), a.as_str());
        }
    }

    #[test]
    fn action_set_bits_round_trip_and_reject_unknown_bits() {
        for bits in 0..=7u8 {
            assert_eq!(ActionSet::from_bits(bits).map(ActionSet::bits), Some(bits));
        }
        for bits in [8u8, 9, 0x80, 0xff] {
            assert_eq!(ActionSet::from_bits(bits), None, "{bits:#x}");
        }
        let pull_push: ActionSet = [Action::Pull, Action::Push].into_iter().collect();
        assert_eq!(pull_push.bits(), 3);
    }

    #[test]
    fn scope_new_applies_the_action_rules() {
        let any = || ScopeTarget::Registry(RegistryTarget::Any);
        let e = Scope::new(any(), ActionSet::EMPTY).unwrap_err();
        assert_eq!(e.field, "actions");
        let push_only: ActionSet = [Action::Push].into_iter().collect();
        let e = Scope::new(any(), push_only).unwrap_err();
        assert!(e.rule.contains("push requires pull"), "{}", e.rule);
        let s = Scope::new(any(), ActionSet::ALL).unwrap();
        assert_eq!(s, scope("registry", "*", &["pull", "push", "delete"]));
    }

    #[test]
    fn action_set_operations() {
        let mut s = ActionSet::EMPTY;
        assert!(s.is_empty());
        s.insert(Action::Delete);
        assert!(s.contains(Action::Delete));
        assert!(!s.contains(Action::Pull) && !s.contains(Action::Push));
        s.insert(Action::Pull);
        s.insert(Action::Pull);
        assert_eq!(s.iter().collect::<Vec<_>>(), [Action::Pull, Action::Delete]);
        let push: ActionSet = [Action::Push].into_iter().collect();
        assert_eq!(s.union(push), ActionSet::ALL);
        assert_eq!(s.intersect(push), ActionSet::EMPTY);
        assert_eq!(
            ActionSet::ALL.iter().collect::<Vec<_>>(),
            [Action::Pull, Action::Push, Action::Delete]
        );
        // Each action has its own bit.
        for a in Action::ALL {
            let one: ActionSet = [a].into_iter().collect();
            for b in Action::ALL {
                assert_eq!(one.contains(b), a == b);
            }
        }
    }

    #[test]
    fn parse_valid_scopes() {
        let s = scope("repository", "team/*", &["pull", "push"]);
        assert_eq!(s.target, ScopeTarget::Repository("team/*".parse().unwrap()));
        assert_eq!(
            s.actions,
            [Action::Pull, Action::Push].into_iter().collect()
        );
        assert_eq!((s.kind_str(), s.name_str()), ("repository", "team/*"));

        // Duplicates merge; order does not matter.
        let s = scope("repository", "a", &["push", "pull", "push"]);
        assert_eq!(
            s.actions,
            [Action::Pull, Action::Push].into_iter().collect()
        );

        let s = scope("registry", "catalog", &["pull"]);
        assert_eq!(s.target, ScopeTarget::Registry(RegistryTarget::Catalog));
        assert_eq!((s.kind_str(), s.name_str()), ("registry", "catalog"));

        let s = scope("registry", "*", &["pull"]);
        assert_eq!(s.target, ScopeTarget::Registry(RegistryTarget::Any));
        assert_eq!((s.kind_str(), s.name_str()), ("registry", "*"));

        assert_eq!(
            scope("repository", "x", &["delete"]).actions.iter().count(),
            1
        );
    }

    #[test]
    fn parse_rejects_with_field_and_rule() {
        // (type, name, actions, field, part of the rule)
        let cases: &[(&str, &str, &[&str], &str, &str)] = &[
            (
                "repo",
                "a",
                &["pull"],
                "type",
                "must be 'repository' or 'registry'",
            ),
            (
                "Repository",
                "a",
                &["pull"],
                "type",
                "must be 'repository' or 'registry'",
            ),
            (
                "",
                "a",
                &["pull"],
                "type",
                "must be 'repository' or 'registry'",
            ),
            ("repository", "", &["pull"], "name", "1 to 255 characters"),
            (
                "repository",
                "Team/*",
                &["pull"],
                "name",
                "may contain only",
            ),
            ("registry", "other", &["pull"], "name", "'catalog' or '*'"),
            ("registry", "", &["pull"], "name", "'catalog' or '*'"),
            ("repository", "a", &[], "actions", "at least one"),
            ("registry", "catalog", &[], "actions", "at least one"),
            ("repository", "a", &["admin"], "actions", "got \"admin\""),
            ("repository", "a", &["pull", "*"], "actions", "got \"*\""),
            (
                "repository",
                "a",
                &["push"],
                "actions",
                "push requires pull in the same scope",
            ),
            (
                "repository",
                "a",
                &["push", "delete"],
                "actions",
                "push requires pull in the same scope",
            ),
            (
                "registry",
                "*",
                &["push"],
                "actions",
                "push requires pull in the same scope",
            ),
        ];
        for (kind, name, actions, field, rule) in cases {
            let e = Scope::parse(kind, name, &strings(actions)).unwrap_err();
            assert_eq!(e.field, *field, "{kind} {name} {actions:?}");
            assert!(
                e.rule.contains(rule),
                "{kind} {name} {actions:?}: {}",
                e.rule
            );
        }
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let s = scope("repository", "team/*", &["push", "pull"]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"type":"repository","name":"team/*","actions":["pull","push"]}"#
        );
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);

        let s = scope("registry", "catalog", &["pull"]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"type":"registry","name":"catalog","actions":["pull"]}"#
        );
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);

        let bad = r#"{"type":"repository","name":"a","actions":["push"]}"#;
        let e = serde_json::from_str::<Scope>(bad).unwrap_err();
        assert!(e.to_string().contains("push requires pull"), "{e}");
    }

    #[test]
    fn scope_list_limits() {
        let many: Vec<Scope> = (0..MAX_SCOPES)
            .map(|i| scope("repository", &format!("r{i}"), &["pull"]))
            .collect();
        assert_eq!(validate_scope_list(&many), Ok(()));
        assert_eq!(validate_scope_list(&[]), Ok(()));

        let mut too_many = many.clone();
        too_many.push(scope("repository", "extra", &["pull"]));
        let e = validate_scope_list(&too_many).unwrap_err();
        assert_eq!(e.field, "scopes");
        assert_eq!(e.rule, "must hold at most 100 scopes, got 101");
    }

    #[test]
    fn scope_list_rejects_duplicate_type_and_name() {
        let list = [
            scope("repository", "team/*", &["pull"]),
            scope("registry", "catalog", &["pull"]),
            // Same name, other type: fine.
            scope("repository", "catalog", &["pull"]),
            // `*` and `catalog` are different names.
            scope("registry", "*", &["pull"]),
            // Same type and name as [0], other actions: duplicate.
            scope("repository", "team/*", &["delete"]),
        ];
        assert_eq!(validate_scope_list(&list[..4]), Ok(()));
        let e = validate_scope_list(&list).unwrap_err();
        assert_eq!(e.field, "scopes[4]");
        assert!(e.rule.contains("\"repository\""), "{}", e.rule);
        assert!(e.rule.contains("\"team/*\""), "{}", e.rule);
    }
}
