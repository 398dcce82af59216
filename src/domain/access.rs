//! The access decision: a pure function from (token scopes, requested scopes) to granted access.
//!
//! Partial or empty grants are not errors: the caller signs whatever comes out, and the
//! registry refuses what is missing.
use std::borrow::Cow;

use serde::Serialize;

use super::{Action, ActionSet, RepoPattern, RepositoryName, ResourceRequest, Scope, ScopeTarget};

/// One entry of the JWT `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// The resource name exactly as requested.
    pub name: String,
    /// Granted actions; `["*"]` for the catalog. Borrowed when the decision makes them, so a
    /// grant costs one allocation for its name and one for this list.
    pub actions: Vec<Cow<'static, str>>,
}

impl std::fmt::Display for Grant {
    /// Scope-string form, `type:name:action,action` (as in the POST reply's `scope`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kind)?;
        f.write_str(":")?;
        f.write_str(&self.name)?;
        f.write_str(":")?;
        write_actions(f, &self.actions)
    }
}

/// Writes actions comma-separated, without allocating.
pub(crate) fn write_actions(
    f: &mut std::fmt::Formatter<'_>,
    actions: &[Cow<'_, str>],
) -> std::fmt::Result {
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        f.write_str(a)?;
    }
    Ok(())
}

/// Space-separated scope strings of a list (`Display` of each item), formatted lazily.
pub struct ScopeList<'a, T>(pub &'a [T]);

impl<T: std::fmt::Display> std::fmt::Display for ScopeList<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            item.fmt(f)?;
        }
        Ok(())
    }
}

/// Decides what to grant (docs/concepts.md, "Access decision"). Requests for one (type, name) are merged;
/// output order follows first appearance in `requests`; resources with nothing granted are
/// left out. Repository actions come out in the order pull, push, delete.
pub fn decide(scopes: &[Scope], requests: &[ResourceRequest]) -> Vec<Grant> {
    decide_with_public(scopes, &[], requests)
}

/// As [`decide`], with the registry's public repositories (`[[registries]] public`) held for
/// pull on top of `scopes`: what an anonymous request gets (with no `scopes`), and what
/// every authenticated token gets in addition to its own. Public patterns grant pull only:
/// never push, delete or the catalog.
pub fn decide_with_public(
    scopes: &[Scope],
    public: &[RepoPattern],
    requests: &[ResourceRequest],
) -> Vec<Grant> {
    merge(requests)
        .into_iter()
        .filter_map(|(kind, name, wanted)| {
            let (kind, granted) = match kind {
                "repository" => ("repository", repository_grant(scopes, public, name, wanted)),
                "registry" if name == "catalog" => ("registry", catalog_grant(scopes, wanted)),
                _ => return None,
            };
            (!granted.is_empty()).then(|| Grant {
                kind: Cow::Borrowed(kind),
                name: name.to_string(),
                actions: granted,
            })
        })
        .collect()
}

/// What was asked of one resource, over all its requests: the actions of the protocol, and
/// whether `*` was among them. Unknown actions are not errors; they simply grant nothing.
#[derive(Clone, Copy, Default)]
struct Wanted {
    actions: ActionSet,
    star: bool,
}

/// Requests grouped by (type, name) in order of first appearance, with the union of their
/// actions. The class takes no part: the registry matches on type and name only.
fn merge(requests: &[ResourceRequest]) -> Vec<(&str, &str, Wanted)> {
    let mut merged: Vec<(&str, &str, Wanted)> = Vec::with_capacity(requests.len());
    for r in requests {
        let i = match merged
            .iter()
            .position(|(k, n, _)| *k == r.kind && *n == r.name)
        {
            Some(i) => i,
            None => {
                merged.push((&r.kind, &r.name, Wanted::default()));
                merged.len() - 1
            }
        };
        let wanted = &mut merged[i].2;
        for a in &r.actions {
            match a.as_ref() {
                "*" => wanted.star = true,
                a => {
                    if let Ok(action) = a.parse::<Action>() {
                        wanted.actions.insert(action);
                    }
                }
            }
        }
    }
    merged
}

/// What one scope action lets a token do: `push` needs `pull` to be usable, so it brings it.
fn implied(actions: ActionSet) -> ActionSet {
    let mut held = actions;
    if actions.contains(Action::Push) {
        held.insert(Action::Pull);
    }
    held
}

fn repository_grant(
    scopes: &[Scope],
    public: &[RepoPattern],
    name: &str,
    requested: Wanted,
) -> Vec<Cow<'static, str>> {
    // Never match a glob against something that is not a plain repository name: the
    // grammar has no `*` or `?`, so a name containing them is refused here too.
    if RepositoryName::check(name).is_err() {
        return Vec::new();
    }
    let mut held = scopes
        .iter()
        .filter(|s| matches!(&s.target, ScopeTarget::Repository(p) if p.matches(name)))
        .fold(ActionSet::EMPTY, |acc, s| acc.union(implied(s.actions)));
    if public.iter().any(|p| p.matches(name)) {
        held.insert(Action::Pull);
    }
    if held.is_empty() {
        return Vec::new();
    }
    // `*` asks for whatever the token holds.
    let wanted = if requested.star {
        held
    } else {
        requested.actions
    };
    wanted
        .intersect(held)
        .iter()
        .map(|a| Cow::Borrowed(a.as_str()))
        .collect()
}

/// `registry:catalog:*`: the registry demands the literal action `*`, which any registry
/// scope (`catalog` or `*`) allows.
fn catalog_grant(scopes: &[Scope], requested: Wanted) -> Vec<Cow<'static, str>> {
    let has_registry_scope = scopes
        .iter()
        .any(|s| matches!(s.target, ScopeTarget::Registry(_)));
    if has_registry_scope && requested.star {
        vec![Cow::Borrowed("*")]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{parse_scope, RegistryTarget};

    type Spec<'a> = (&'a str, &'a str, &'a [&'a str]);

    struct Case<'a> {
        what: &'a str,
        /// The token's scopes as (type, name, actions).
        token: &'a [Spec<'a>],
        /// Requested `scope` values (each may hold several space-separated scopes).
        request: &'a [&'a str],
        /// Expected grants as (type, name, actions).
        want: &'a [Spec<'a>],
    }

    const PULL: &[&str] = &["pull"];
    const PULL_PUSH: &[&str] = &["pull", "push"];
    const DELETE: &[&str] = &["delete"];
    const ALL: &[&str] = &["pull", "push", "delete"];
    const STAR: &[&str] = &["*"];

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // Exact patterns.
        Case { what: "exact match", token: &[("repository", "team/app", PULL)],
               request: &["repository:team/app:pull"], want: &[("repository", "team/app", PULL)] },
        Case { what: "exact pattern, other name", token: &[("repository", "team/app", PULL)],
               request: &["repository:team/app2:pull"], want: &[] },
        Case { what: "exact pattern is not a prefix", token: &[("repository", "team", ALL)],
               request: &["repository:team/app:pull"], want: &[] },
        Case { what: "no scopes, no grants", token: &[],
               request: &["repository:a:pull registry:catalog:*"], want: &[] },
        Case { what: "no request, no grants", token: &[("repository", "*", ALL)],
               request: &[""], want: &[] },
        // Globs.
        Case { what: "* alone matches every repository", token: &[("repository", "*", PULL)],
               request: &["repository:a:pull repository:x/y/z:pull"],
               want: &[("repository", "a", PULL), ("repository", "x/y/z", PULL)] },
        Case { what: "* crosses /", token: &[("repository", "team/*", PULL)],
               request: &["repository:team/a/b/c:pull"], want: &[("repository", "team/a/b/c", PULL)] },
        Case { what: "glob does not match outside its prefix", token: &[("repository", "team/*", PULL)],
               request: &["repository:other/app:pull repository:team:pull"], want: &[] },
        Case { what: "? matches one character", token: &[("repository", "app-?", PULL)],
               request: &["repository:app-1:pull repository:app-12:pull"],
               want: &[("repository", "app-1", PULL)] },
        Case { what: "* matches host:port names", token: &[("repository", "*", PULL)],
               request: &["repository:localhost:5000/team/app:pull"],
               want: &[("repository", "localhost:5000/team/app", PULL)] },
        Case { what: "team/* does not match a host-prefixed name", token: &[("repository", "team/*", PULL)],
               request: &["repository:localhost:5000/team/app:pull"], want: &[] },
        // Action semantics.
        Case { what: "push implies pull", token: &[("repository", "a", PULL_PUSH)],
               request: &["repository:a:push,pull"], want: &[("repository", "a", PULL_PUSH)] },
        Case { what: "push alone still brings pull", token: &[("repository", "a", &["push"])],
               request: &["repository:a:pull"], want: &[("repository", "a", PULL)] },
        Case { what: "push from one scope, pull from none", token: &[("repository", "a", &["push"]), ("repository", "b", PULL)],
               request: &["repository:a:*"], want: &[("repository", "a", PULL_PUSH)] },
        Case { what: "pull-only token asking push,pull gets pull", token: &[("repository", "a", PULL)],
               request: &["repository:a:push,pull"], want: &[("repository", "a", PULL)] },
        Case { what: "pull-only token asking push gets nothing", token: &[("repository", "a", PULL)],
               request: &["repository:a:push"], want: &[] },
        Case { what: "delete only via delete", token: &[("repository", "a", PULL_PUSH)],
               request: &["repository:a:delete"], want: &[] },
        Case { what: "delete alone grants delete, not pull", token: &[("repository", "a", DELETE)],
               request: &["repository:a:pull,delete"], want: &[("repository", "a", DELETE)] },
        Case { what: "* requested = every held action, listed", token: &[("repository", "a", PULL_PUSH)],
               request: &["repository:a:*"], want: &[("repository", "a", PULL_PUSH)] },
        Case { what: "* with delete held", token: &[("repository", "a", ALL)],
               request: &["repository:a:*"], want: &[("repository", "a", ALL)] },
        Case { what: "* with nothing held", token: &[("repository", "b", ALL)],
               request: &["repository:a:*"], want: &[] },
        Case { what: "held is the union of matching scopes",
               token: &[("repository", "team/*", PULL), ("repository", "team/app", DELETE),
                        ("repository", "*/app", PULL_PUSH)],
               request: &["repository:team/app:*"], want: &[("repository", "team/app", ALL)] },
        Case { what: "non-matching scopes add nothing",
               token: &[("repository", "team/*", PULL), ("repository", "other/*", ALL)],
               request: &["repository:team/app:*"], want: &[("repository", "team/app", PULL)] },
        Case { what: "unknown actions are ignored", token: &[("repository", "a", ALL)],
               request: &["repository:a:pull,admin"], want: &[("repository", "a", PULL)] },
        Case { what: "output order is pull, push, delete", token: &[("repository", "a", ALL)],
               request: &["repository:a:delete,push,pull"], want: &[("repository", "a", ALL)] },
        // Catalog.
        Case { what: "catalog with registry:catalog scope", token: &[("registry", "catalog", PULL)],
               request: &["registry:catalog:*"], want: &[("registry", "catalog", STAR)] },
        Case { what: "catalog with registry:* scope", token: &[("registry", "*", PULL)],
               request: &["registry:catalog:*"], want: &[("registry", "catalog", STAR)] },
        Case { what: "catalog without registry scope", token: &[("repository", "*", ALL)],
               request: &["registry:catalog:*"], want: &[] },
        Case { what: "catalog needs the literal *", token: &[("registry", "catalog", PULL)],
               request: &["registry:catalog:pull"], want: &[] },
        Case { what: "catalog * among others", token: &[("registry", "catalog", PULL)],
               request: &["registry:catalog:pull,*"], want: &[("registry", "catalog", STAR)] },
        Case { what: "other registry names grant nothing", token: &[("registry", "*", ALL)],
               request: &["registry:other:*"], want: &[] },
        Case { what: "registry scope grants no repository", token: &[("registry", "*", ALL)],
               request: &["repository:a:pull"], want: &[] },
        Case { what: "unknown types grant nothing", token: &[("repository", "*", ALL)],
               request: &["foo:a:pull"], want: &[] },
        // Names that are not valid references grant nothing.
        Case { what: "a..b is not a name", token: &[("repository", "*", ALL)],
               request: &["repository:a..b:pull"], want: &[] },
        Case { what: "uppercase is not a name", token: &[("repository", "*", ALL)],
               request: &["repository:Foo:pull repository:foo/Bar:pull"], want: &[] },
        Case { what: "a name with * is never matched", token: &[("repository", "*", ALL)],
               request: &["repository:team/*:pull repository:*:pull"], want: &[] },
        Case { what: "a name with ? is never matched", token: &[("repository", "team/???", ALL)],
               request: &["repository:team/???:pull"], want: &[] },
        Case { what: "over 255 characters is not a name", token: &[("repository", "*", ALL)],
               request: &[concat!("repository:",
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                   ":pull")], want: &[] },
        // Merging.
        Case { what: "pull,push and push,pull merge", token: &[("repository", "a", PULL_PUSH)],
               request: &["repository:a:pull,push", "repository:a:push,pull"],
               want: &[("repository", "a", PULL_PUSH)] },
        Case { what: "separate requests for one repo merge", token: &[("repository", "*", ALL)],
               request: &["repository:a:pull", "repository:b:pull repository:a:delete"],
               want: &[("repository", "a", &["pull", "delete"]), ("repository", "b", PULL)] },
        Case { what: "class does not split a resource", token: &[("repository", "a", ALL)],
               request: &["repository(plugin):a:pull repository:a:push"],
               want: &[("repository", "a", PULL_PUSH)] },
        Case { what: "empty grants are left out, order kept", token: &[("repository", "b*", PULL)],
               request: &["repository:a:pull repository:b2:pull repository:b1:pull"],
               want: &[("repository", "b2", PULL), ("repository", "b1", PULL)] },
        Case { what: "mount: target push, source pull",
               token: &[("repository", "team/*", PULL_PUSH), ("repository", "base/*", PULL)],
               request: &["repository:team/app:pull,push", "repository:base/img:pull"],
               want: &[("repository", "team/app", PULL_PUSH), ("repository", "base/img", PULL)] },
    ];

    /// Built field by field rather than through `Scope::parse`, so the table can also hold a
    /// scope that parse refuses (push without pull) and show decide() does not rely on parse.
    fn to_scope((kind, name, actions): &Spec) -> Scope {
        let target = match (*kind, *name) {
            ("repository", pattern) => ScopeTarget::Repository(pattern.parse().unwrap()),
            ("registry", "catalog") => ScopeTarget::Registry(RegistryTarget::Catalog),
            ("registry", "*") => ScopeTarget::Registry(RegistryTarget::Any),
            other => panic!("bad test scope {other:?}"),
        };
        let actions = actions
            .iter()
            .map(|a| a.parse::<Action>().unwrap())
            .collect();
        Scope { target, actions }
    }

    /// Requests split without the parser's name check, so the table can show that decide()
    /// does not rely on the parser to refuse names that are not references.
    fn raw_requests(s: &str) -> Vec<ResourceRequest> {
        s.split(' ')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (first, last) = (p.find(':').unwrap(), p.rfind(':').unwrap());
                ResourceRequest {
                    kind: p[..first].to_string().into(),
                    class: None,
                    name: p[first + 1..last].to_string(),
                    actions: p[last + 1..]
                        .split(',')
                        .map(|a| a.to_string().into())
                        .collect(),
                }
            })
            .collect()
    }

    #[test]
    fn public_patterns_grant_pull_only() {
        let public: Vec<RepoPattern> =
            vec!["library/*".parse().unwrap(), "docs/*".parse().unwrap()];
        let req = |s: &str| parse_scope(s).unwrap();
        let repo = |n: &str, a: &[&str]| Grant {
            kind: "repository".into(),
            name: n.into(),
            actions: a.iter().map(|s| s.to_string().into()).collect(),
        };
        // Anonymous: the public subset, pull only, never push, delete or catalog.
        let asked = req(
            "repository:library/alpine:pull,push,delete repository:team/app:pull \
                         registry:catalog:* repository:docs/x:*",
        );
        assert_eq!(
            decide_with_public(&[], &public, &asked),
            vec![repo("library/alpine", PULL), repo("docs/x", PULL)]
        );
        assert_eq!(
            decide_with_public(&[], &public, &req("repository:library/a:push")),
            vec![]
        );
        assert_eq!(
            decide_with_public(&[], &[], &req("repository:library/a:pull")),
            vec![]
        );
        // Authenticated: the token's scopes plus public pull, in one grant per repository.
        let token = [to_scope(&("repository", "team/*", PULL_PUSH))];
        assert_eq!(
            decide_with_public(
                &token,
                &public,
                &req("repository:team/app:pull,push repository:library/a:pull,push")
            ),
            vec![repo("team/app", PULL_PUSH), repo("library/a", PULL)]
        );
        // A token's own push on a public repository is kept, public adds nothing to it.
        let token = [to_scope(&("repository", "library/a", PULL_PUSH))];
        assert_eq!(
            decide_with_public(&token, &public, &req("repository:library/a:*")),
            vec![repo("library/a", PULL_PUSH)]
        );
    }

    #[test]
    fn access_decision_table() {
        for case in CASES {
            let scopes: Vec<Scope> = case.token.iter().map(to_scope).collect();
            let requests: Vec<ResourceRequest> = case
                .request
                .iter()
                .flat_map(|s| parse_scope(s).unwrap_or_else(|_| raw_requests(s)))
                .collect();
            let want: Vec<Grant> = case
                .want
                .iter()
                .map(|(kind, name, actions)| Grant {
                    kind: kind.to_string().into(),
                    name: name.to_string(),
                    actions: actions.iter().map(|a| a.to_string().into()).collect(),
                })
                .collect();
            assert_eq!(decide(&scopes, &requests), want, "case: {}", case.what);
        }
    }

    #[test]
    fn long_name_case_really_is_over_the_limit() {
        let case = CASES
            .iter()
            .find(|c| c.what == "over 255 characters is not a name")
            .unwrap();
        let name = &raw_requests(case.request[0])[0].name;
        assert_eq!(name.len(), 256);
        // Only the length is wrong.
        assert!(name[1..].parse::<RepositoryName>().is_ok());
    }

    #[test]
    fn grant_serialises_as_the_access_claim() {
        let g = Grant {
            kind: "repository".into(),
            name: "team/app".into(),
            actions: vec!["pull".into(), "push".into()],
        };
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"type":"repository","name":"team/app","actions":["pull","push"]}"#
        );
    }

    #[test]
    fn grants_display_as_scope_strings() {
        let g = |n: &str, a: &[&str]| Grant {
            kind: "repository".into(),
            name: n.into(),
            actions: a.iter().map(|s| s.to_string().into()).collect(),
        };
        let list = [g("team/app", &["pull", "push"]), g("b", &["pull"])];
        assert_eq!(list[0].to_string(), "repository:team/app:pull,push");
        assert_eq!(
            ScopeList(&list).to_string(),
            "repository:team/app:pull,push repository:b:pull"
        );
        assert_eq!(ScopeList::<Grant>(&[]).to_string(), "");
    }
}
