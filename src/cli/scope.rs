//! The CLI's `SCOPE` arguments (`repository:PATTERN:ACTIONS`, `registry:catalog:ACTIONS`) and
//! the scope-list edits behind `scope add/remove/clear`.
//!
//! Parsing here is deliberately shallow: it catches what can only be a typo (unknown type,
//! missing parts, unknown action) before any request is made. The rules on patterns and action
//! combinations (e.g. `push` needs `pull`) belong to the server, which checks them again and whose
//! message the CLI shows; repeating them here would let the two drift apart. The CLI only adds
//! to that message: for `push` without `pull`, the scope to write instead ([`with_push_hint`]).
use std::fmt;
use std::str::FromStr;

use super::CliError;
use crate::api::Scope as ApiScope;
use crate::domain::Action;

/// What a scope applies to: `(type, name)`, the key under which a token holds at most one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeTarget {
    /// `repository` or `registry`.
    pub kind: &'static str,
    pub name: String,
}

impl ScopeTarget {
    fn matches(&self, s: &ApiScope) -> bool {
        s.kind == self.kind && s.name == self.name
    }
}

impl fmt::Display for ScopeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// A `--scope`/`scope add` argument: `TYPE:NAME:ACTIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeArg {
    pub target: ScopeTarget,
    /// Non-empty, without repeats, in the order pull, push, delete.
    pub actions: Vec<Action>,
}

/// A `scope remove` argument: `TYPE:NAME`, optionally `:ACTIONS` to remove only those actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeSelector {
    pub target: ScopeTarget,
    pub actions: Option<Vec<Action>>,
}

const SYNTAX: &str = "expected repository:PATTERN:ACTIONS or registry:catalog:ACTIONS, \
                      ACTIONS a comma-separated list of pull, push, delete (or admin)";

fn parse_target(kind: &str, name: &str) -> Result<ScopeTarget, String> {
    let kind = match kind {
        "repository" => "repository",
        "registry" => "registry",
        other => {
            return Err(format!(
                "unknown scope type {other:?}: use repository or registry"
            ))
        }
    };
    if name.is_empty() {
        return Err(format!("the {kind} name is empty; {SYNTAX}"));
    }
    if kind == "registry" && name != "catalog" && name != "*" {
        return Err(format!(
            "a registry scope's name is catalog (or *), not {name:?}"
        ));
    }
    Ok(ScopeTarget {
        kind,
        name: name.to_string(),
    })
}

/// Parses `pull,push,delete`; `admin` (the console's word) means `delete`. Case-insensitive.
pub fn parse_actions(text: &str) -> Result<Vec<Action>, String> {
    let mut out = Vec::new();
    for word in text.split(',').map(str::trim) {
        let action = match word.to_ascii_lowercase().as_str() {
            "pull" => Action::Pull,
            "push" => Action::Push,
            "delete" | "admin" => Action::Delete,
            "" => return Err(format!("empty action in {text:?}; {SYNTAX}")),
            _ => {
                return Err(format!(
                    "unknown action {word:?}: use pull, push, delete (or admin)"
                ))
            }
        };
        if !out.contains(&action) {
            out.push(action);
        }
    }
    out.sort();
    Ok(out)
}

/// Splits `TYPE:NAME[:ACTIONS]`. Patterns cannot contain `:`, so the first and last colons are
/// the separators.
fn split(text: &str) -> Result<(&str, &str, Option<&str>), String> {
    let Some((kind, rest)) = text.split_once(':') else {
        return Err(format!("{text:?}: {SYNTAX}"));
    };
    Ok(match rest.rsplit_once(':') {
        Some((name, actions)) => (kind, name, Some(actions)),
        None => (kind, rest, None),
    })
}

impl FromStr for ScopeArg {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, name, actions) = split(text)?;
        let Some(actions) = actions else {
            return Err(format!("{text:?} has no actions; {SYNTAX}"));
        };
        Ok(ScopeArg {
            target: parse_target(kind, name)?,
            actions: parse_actions(actions)?,
        })
    }
}

impl FromStr for ScopeSelector {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, name, actions) = split(text)?;
        Ok(ScopeSelector {
            target: parse_target(kind, name)?,
            actions: actions.map(parse_actions).transpose()?,
        })
    }
}

fn names(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.as_str().to_string()).collect()
}

/// Actions of an existing wire scope that this CLI knows, plus `extra`, in canonical order.
/// Unknown words from the server are kept (after the known ones) rather than dropped.
fn union(existing: &[String], extra: &[Action]) -> Vec<String> {
    let mut known: Vec<Action> = extra.to_vec();
    let mut unknown = Vec::new();
    for word in existing {
        match parse_actions(word) {
            Ok(a) => known.extend(a),
            Err(_) => unknown.push(word.clone()),
        }
    }
    known.sort();
    known.dedup();
    let mut out = names(&known);
    out.extend(unknown);
    out
}

/// What [`add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new scope was appended.
    New,
    /// The token already had a scope for this target; the actions were merged into it.
    Merged,
}

/// Adds `arg` to `scopes`. A scope for the same (type, name) already present gets the new
/// actions merged into its own (nothing is taken away); otherwise a new scope is appended.
pub fn add(scopes: &mut Vec<ApiScope>, arg: &ScopeArg) -> Added {
    if let Some(s) = scopes.iter_mut().find(|s| arg.target.matches(s)) {
        s.actions = union(&s.actions, &arg.actions);
        Added::Merged
    } else {
        scopes.push(ApiScope {
            kind: arg.target.kind.to_string(),
            name: arg.target.name.clone(),
            actions: names(&arg.actions),
        });
        Added::New
    }
}

/// Merges repeated targets among `args` (as [`add`] would) into a scope list for a create.
pub fn from_args(args: &[ScopeArg]) -> Vec<ApiScope> {
    let mut scopes = Vec::new();
    for a in args {
        add(&mut scopes, a);
    }
    scopes
}

/// Checks the scopes to send (`merged`, from [`from_args`]) with the server's own rules
/// ([`crate::domain::scope`]) before any request, so a mistake exits 2 in the CLI's terms:
/// `--scope #1 (repository:app:push): push needs pull, write repository:app:pull,push`.
/// `#N` counts the `--scope` arguments from 1 (the first that names the scope's target).
pub fn check(args: &[ScopeArg], merged: &[ApiScope]) -> Result<(), CliError> {
    check_as("--scope", args, merged)
}

/// [`check`], naming the arguments `label` (`scope` for `scope add`'s one positional
/// argument, which gets no `#N`).
pub fn check_as(label: &str, args: &[ScopeArg], merged: &[ApiScope]) -> Result<(), CliError> {
    use crate::domain::scope::{validate_scope_list, Scope};
    let position = |s: &ApiScope| {
        if args.len() < 2 && label != "--scope" {
            return String::new();
        }
        args.iter()
            .position(|a| a.target.matches(s))
            .map_or(String::new(), |i| format!(" #{}", i + 1))
    };
    let mut parsed = Vec::with_capacity(merged.len());
    for s in merged {
        match Scope::parse(&s.kind, &s.name, &s.actions) {
            Ok(scope) => parsed.push(scope),
            Err(e) => {
                let has = |a: &str| s.actions.iter().any(|x| x == a);
                let rule = if has("push") && !has("pull") {
                    let mut fixed = s.clone();
                    fixed.actions.insert(0, "pull".to_string());
                    format!("push needs pull, write {fixed}")
                } else {
                    format!("{}: {}", e.field, e.rule)
                };
                return Err(CliError::Usage(format!(
                    "{label}{} ({}:{}:{}): {rule}",
                    position(s),
                    s.kind,
                    s.name,
                    s.actions.join(",")
                )));
            }
        }
    }
    validate_scope_list(&parsed).map_err(|e| CliError::Usage(format!("{label}: {}", e.rule)))
}

/// The server refuses `push` without `pull`; when `scopes` (what was sent) has such a scope,
/// `err` gets the scope to write instead (`repository:app:pull,push`). Other errors pass.
pub fn with_push_hint(err: CliError, scopes: &[ApiScope]) -> CliError {
    let CliError::Api {
        status: 400,
        message,
    } = err
    else {
        return err;
    };
    let has = |s: &ApiScope, a: &str| s.actions.iter().any(|x| x == a);
    match scopes.iter().find(|s| has(s, "push") && !has(s, "pull")) {
        Some(s) => {
            let mut fixed = s.clone();
            fixed.actions.insert(0, "pull".to_string());
            CliError::Api {
                status: 400,
                message: format!("{message}: push needs pull, write {fixed}"),
            }
        }
        None => CliError::Api {
            status: 400,
            message,
        },
    }
}

/// Removes the selected scope, or only the selected actions of it (the scope goes when none
/// remain). Err (`no scope ...`) when the token has no scope for that target.
pub fn remove(scopes: &mut Vec<ApiScope>, sel: &ScopeSelector) -> Result<(), String> {
    let Some(i) = scopes.iter().position(|s| sel.target.matches(s)) else {
        let held: Vec<String> = scopes
            .iter()
            .map(|s| format!("{}:{}", s.kind, s.name))
            .collect();
        return Err(format!(
            "no scope {}{}",
            sel.target,
            if held.is_empty() {
                " (it has no scopes)".to_string()
            } else {
                format!(" (it has {})", held.join(", "))
            }
        ));
    };
    match &sel.actions {
        None => {
            scopes.remove(i);
        }
        Some(drop) => {
            let drop = names(drop);
            scopes[i].actions.retain(|a| !drop.contains(a));
            if scopes[i].actions.is_empty() {
                scopes.remove(i);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kind: &str, name: &str, actions: &[&str]) -> ApiScope {
        ApiScope {
            kind: kind.into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn parses_repository_and_registry_scopes() {
        let s: ScopeArg = "repository:team/app-*:push,pull".parse().unwrap();
        assert_eq!(s.target.kind, "repository");
        assert_eq!(s.target.name, "team/app-*");
        assert_eq!(s.actions, vec![Action::Pull, Action::Push]);

        let s: ScopeArg = "registry:catalog:pull".parse().unwrap();
        assert_eq!(s.target.to_string(), "registry:catalog");

        let s: ScopeArg = "repository:*:admin,PULL,pull".parse().unwrap();
        assert_eq!(s.actions, vec![Action::Pull, Action::Delete]);
        assert_eq!(s.target.name, "*");
    }

    #[test]
    fn rejects_what_can_only_be_a_typo() {
        for (text, needle) in [
            ("repository", "expected repository:PATTERN:ACTIONS"),
            ("repository:app", "has no actions"),
            ("repo:app:pull", "unknown scope type \"repo\""),
            ("repository::pull", "name is empty"),
            ("repository:app:", "empty action"),
            ("repository:app:pull,,push", "empty action"),
            ("repository:app:read", "unknown action \"read\""),
            ("registry:repos:pull", "catalog"),
        ] {
            let err = text.parse::<ScopeArg>().unwrap_err();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn leaves_server_rules_to_the_server() {
        // push without pull and odd pattern characters are the server's to reject, with its
        // own message; the CLI passes them through.
        assert!("repository:app:push".parse::<ScopeArg>().is_ok());
        assert!("repository:App:pull".parse::<ScopeArg>().is_ok());
    }

    #[test]
    fn selectors_with_and_without_actions() {
        let s: ScopeSelector = "repository:team/*".parse().unwrap();
        assert_eq!(s.target.to_string(), "repository:team/*");
        assert_eq!(s.actions, None);
        let s: ScopeSelector = "repository:team/*:push".parse().unwrap();
        assert_eq!(s.actions, Some(vec![Action::Push]));
        assert!("nope".parse::<ScopeSelector>().is_err());
        assert!("registry:x".parse::<ScopeSelector>().is_err());
    }

    #[test]
    fn add_merges_into_an_existing_target() {
        let mut scopes = vec![scope("repository", "app", &["pull"])];
        let added = add(&mut scopes, &"repository:app:delete,push".parse().unwrap());
        assert_eq!(added, Added::Merged);
        assert_eq!(
            scopes,
            vec![scope("repository", "app", &["pull", "push", "delete"])]
        );

        let added = add(&mut scopes, &"repository:app/*:pull".parse().unwrap());
        assert_eq!(added, Added::New);
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[1], scope("repository", "app/*", &["pull"]));
    }

    #[test]
    fn add_keeps_actions_it_does_not_know() {
        let mut scopes = vec![scope("repository", "app", &["pull", "tag"])];
        add(&mut scopes, &"repository:app:push".parse().unwrap());
        assert_eq!(scopes[0].actions, vec!["pull", "push", "tag"]);
    }

    #[test]
    fn create_merges_repeated_targets() {
        let args: Vec<ScopeArg> = [
            "repository:a:pull",
            "registry:catalog:pull",
            "repository:a:push",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            from_args(&args),
            vec![
                scope("repository", "a", &["pull", "push"]),
                scope("registry", "catalog", &["pull"]),
            ]
        );
    }

    #[test]
    fn remove_whole_scope_or_some_actions() {
        let mut scopes = vec![
            scope("repository", "a", &["pull", "push", "delete"]),
            scope("registry", "catalog", &["pull"]),
        ];
        remove(&mut scopes, &"repository:a:push,delete".parse().unwrap()).unwrap();
        assert_eq!(scopes[0].actions, vec!["pull"]);
        remove(&mut scopes, &"repository:a:pull".parse().unwrap()).unwrap();
        assert_eq!(scopes, vec![scope("registry", "catalog", &["pull"])]);
        let err = remove(&mut scopes, &"repository:a".parse().unwrap()).unwrap_err();
        assert_eq!(err, "no scope repository:a (it has registry:catalog)");
        assert!(err.contains("registry:catalog"), "{err}");
        remove(&mut scopes, &"registry:catalog".parse().unwrap()).unwrap();
        assert!(scopes.is_empty());
    }

    #[test]
    fn displays_in_cli_syntax() {
        assert_eq!(
            scope("repository", "a/*", &["pull", "push"]).to_string(),
            "repository:a/*:pull,push"
        );
    }

    #[test]
    fn push_without_pull_gets_the_scope_to_write() {
        let sent = vec![
            scope("repository", "ok", &["pull", "push"]),
            scope("repository", "team/*", &["push", "delete"]),
        ];
        let refused = || CliError::Api {
            status: 400,
            message: "actions: push requires pull in the same scope".into(),
        };
        let err = with_push_hint(refused(), &sent).to_string();
        assert_eq!(
            err,
            "actions: push requires pull in the same scope: push needs pull, write \
             repository:team/*:pull,push,delete (HTTP 400)"
        );
        // Nothing to hint: unchanged.
        let err = with_push_hint(refused(), &sent[..1]).to_string();
        assert_eq!(
            err,
            "actions: push requires pull in the same scope (HTTP 400)"
        );
        let other = CliError::Api {
            status: 409,
            message: "taken".into(),
        };
        assert_eq!(with_push_hint(other, &sent).to_string(), "taken (HTTP 409)");
    }
}
