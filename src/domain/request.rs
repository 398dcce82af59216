//! Parsing of requested scopes (`scope=` on the token endpoint), per distribution's scope.md.
//!
//! `resourcescope := type ':' name ':' action (',' action)*`, several separated by spaces;
//! `type` may carry `(class)`; `name` may contain one `:` (host:port).
//!
//! The shape is checked here, and the name: a `repository` name must follow distribution's
//! reference grammar ([`RepositoryName`]), any other name must be at most 255 printable
//! characters. A request the registry could never send (a 60 KB name, a newline) is refused
//! with the rule it breaks rather than granted nothing. What the actions mean is for
//! [`super::decide`]: a well-formed request for something the token cannot have is granted
//! nothing rather than refused.

use std::borrow::Cow;

use super::{Action, RepositoryName};
use crate::text::{split_ascii, split_once_ascii};

/// One parsed resource scope as the client asked for it. Actions are kept as strings
/// (`*` and unknown actions included); [`super::decide`] interprets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// `repository`, `registry`, ... (without the class).
    pub kind: Cow<'static, str>,
    pub class: Option<String>,
    pub name: String,
    /// Borrowed for the actions of the protocol, owned for others: a scope costs one
    /// allocation for its name and one for this list.
    pub actions: Vec<Cow<'static, str>>,
}

impl std::fmt::Display for ResourceRequest {
    /// Scope-string form, `type(class):name:action,action`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kind)?;
        if let Some(class) = &self.class {
            f.write_str("(")?;
            f.write_str(class)?;
            f.write_str(")")?;
        }
        f.write_str(":")?;
        f.write_str(&self.name)?;
        f.write_str(":")?;
        super::access::write_actions(f, &self.actions)
    }
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
pub fn parse_scope(s: &str) -> Result<Vec<ResourceRequest>, ScopeParseError> {
    let mut out = Vec::new();
    parse_scope_into(s, &mut out)?;
    Ok(out)
}

/// As [`parse_scope`], appending to `out` (the token endpoint collects every `scope` value
/// of a request into one list). On an error `out` may hold the scopes before the bad one.
pub fn parse_scope_into(s: &str, out: &mut Vec<ResourceRequest>) -> Result<(), ScopeParseError> {
    if s.len() > MAX_SCOPE_LEN {
        return Err(ScopeParseError {
            scope: excerpt(s),
            reason: format!(
                "a scope value may be at most {MAX_SCOPE_LEN} bytes, got {}",
                s.len()
            ),
        });
    }
    for piece in split_ascii(s, b' ').filter(|piece| !piece.is_empty()) {
        let request = parse_resource_scope(piece).map_err(|reason| ScopeParseError {
            scope: excerpt(piece),
            reason,
        })?;
        out.push(request);
    }
    Ok(())
}

/// Longest `scope` value accepted (64 KiB), far beyond what any client sends.
pub const MAX_SCOPE_LEN: usize = 64 * 1024;

/// How much of a bad scope an error quotes.
const EXCERPT_LEN: usize = 100;

/// The start of `s`, cut at a character boundary, so errors stay short.
fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT_LEN {
        return s.to_string();
    }
    let mut end = EXCERPT_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `type ':' name ':' action (',' action)*`; the error is the reason.
fn parse_resource_scope(piece: &str) -> Result<ResourceRequest, String> {
    let bytes = piece.as_bytes();
    let colon = |b: &u8| *b == b':';
    let (Some(first), Some(last)) = (bytes.iter().position(colon), bytes.iter().rposition(colon))
    else {
        return Err("expected type:name:actions, found no ':'".into());
    };
    if first == last {
        return Err("expected type:name:actions, found only one ':'".into());
    }
    let (kind, class) = parse_type(&piece[..first])?;
    let name = &piece[first + 1..last];
    if name.is_empty() {
        return Err("the resource name is empty".into());
    }
    check_name(kind, name)?;
    let actions = split_ascii(&piece[last + 1..], b',')
        .map(|action| {
            if action.is_empty() {
                Err("an action is empty (expected action(,action)*)".to_string())
            } else if action.bytes().all(|b| b.is_ascii_lowercase() || b == b'*') {
                Ok(action_name(action))
            } else {
                Err(format!(
                    "action {:?} may contain only lowercase letters a-z or '*'",
                    excerpt(action)
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ResourceRequest {
        kind: known(kind, KINDS),
        class: class.map(str::to_string),
        name: name.to_string(),
        actions,
    })
}

/// The resource types the registry asks for.
const KINDS: &[&str] = &["repository", "registry"];

/// A requested action: the protocol's ([`Action`]) and `*` (which the catalog needs)
/// borrowed, any other word kept as sent (it grants nothing).
fn action_name(a: &str) -> Cow<'static, str> {
    if a == "*" {
        return Cow::Borrowed("*");
    }
    match Action::ALL.iter().find(|action| action.as_str() == a) {
        Some(action) => Cow::Borrowed(action.as_str()),
        None => Cow::Owned(a.to_string()),
    }
}

/// `s`, borrowed when it is one of `common`.
fn known(s: &str, common: &'static [&'static str]) -> Cow<'static, str> {
    match common.iter().find(|c| **c == s) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(s.to_string()),
    }
}

/// Longest resource name of any type (distribution's limit for repository names).
const MAX_NAME_LEN: usize = 255;

/// A `repository` name follows the reference grammar; other types (only `registry:catalog`
/// means anything) must at least be short and printable, so nothing odd reaches the log.
fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if kind == "repository" {
        return RepositoryName::check(name)
            .map_err(|e| format!("invalid repository name: {}", e.rule));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "a resource name must be at most {MAX_NAME_LEN} characters, got {}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "a resource name must not contain whitespace or control characters, found {c:?}"
        ));
    }
    Ok(())
}

/// `[a-z0-9]+` optionally followed by `(` `[a-zA-Z0-9]+` `)`.
fn parse_type(t: &str) -> Result<(&str, Option<&str>), String> {
    let (kind, class) = match split_once_ascii(t, b'(') {
        Some((kind, rest)) => match rest.strip_suffix(')') {
            Some(class) => (kind, Some(class)),
            None => return Err(format!("resource type {t:?} has an unclosed '(class)'")),
        },
        None => (t, None),
    };
    if kind.is_empty() {
        return Err("the resource type is empty".into());
    }
    if !kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "resource type {kind:?} may contain only lowercase letters a-z and digits"
        ));
    }
    if let Some(class) = class {
        if class.is_empty() || !class.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "resource class {class:?} must be one or more letters and digits"
            ));
        }
    }
    Ok((kind, class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_actions_are_borrowed_and_other_words_kept() {
        let mut out = Vec::new();
        parse_scope_into("repository:a:pull,push,delete,*,frobnicate", &mut out).unwrap();
        let actions = &out[0].actions;
        assert_eq!(actions, &["pull", "push", "delete", "*", "frobnicate"]);
        let borrowed: Vec<bool> = actions
            .iter()
            .map(|a| matches!(a, Cow::Borrowed(_)))
            .collect();
        assert_eq!(borrowed, [true, true, true, true, false]);
    }

    fn req(kind: &str, class: Option<&str>, name: &str, actions: &[&str]) -> ResourceRequest {
        ResourceRequest {
            kind: kind.to_string().into(),
            class: class.map(Into::into),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string().into()).collect(),
        }
    }

    #[test]
    fn parses_well_formed_scopes() {
        let cases: Vec<(&str, Vec<ResourceRequest>)> = vec![
            ("", vec![]),
            ("   ", vec![]),
            (
                "repository:team/app:pull",
                vec![req("repository", None, "team/app", &["pull"])],
            ),
            (
                "repository:team/app:push,pull",
                vec![req("repository", None, "team/app", &["push", "pull"])],
            ),
            (
                "repository:localhost:5000/team/app:pull",
                vec![req(
                    "repository",
                    None,
                    "localhost:5000/team/app",
                    &["pull"],
                )],
            ),
            (
                "registry:catalog:*",
                vec![req("registry", None, "catalog", &["*"])],
            ),
            ("repository:a:*", vec![req("repository", None, "a", &["*"])]),
            (
                "repository(plugin):team/app:pull",
                vec![req("repository", Some("plugin"), "team/app", &["pull"])],
            ),
            (
                "repository(Plugin2):a:pull",
                vec![req("repository", Some("Plugin2"), "a", &["pull"])],
            ),
            // Unknown types and actions are well-formed; decide() ignores them.
            ("foo9:bar:baz", vec![req("foo9", None, "bar", &["baz"])]),
            // Several, separated by one or more spaces.
            (
                "repository:a:pull  repository:b:push,pull ",
                vec![
                    req("repository", None, "a", &["pull"]),
                    req("repository", None, "b", &["push", "pull"]),
                ],
            ),
            (
                " registry:catalog:* repository:a:pull,pull",
                vec![
                    req("registry", None, "catalog", &["*"]),
                    req("repository", None, "a", &["pull", "pull"]),
                ],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_scope(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_malformed_scopes_quoting_the_bad_one() {
        // (input, quoted resource scope, part of the reason)
        let cases = [
            ("repository", "repository", "no ':'"),
            ("repository:a", "repository:a", "only one ':'"),
            ("repository::pull", "repository::pull", "name is empty"),
            (":a:pull", ":a:pull", "type is empty"),
            (
                "Repository:a:pull",
                "Repository:a:pull",
                "\"Repository\" may contain only",
            ),
            ("repo-x:a:pull", "repo-x:a:pull", "may contain only"),
            ("repository(:a:pull", "repository(:a:pull", "unclosed"),
            ("repository():a:pull", "repository():a:pull", "class \"\""),
            (
                "repository(a-b):a:pull",
                "repository(a-b):a:pull",
                "class \"a-b\"",
            ),
            ("(x):a:pull", "(x):a:pull", "type is empty"),
            ("repository:a:", "repository:a:", "action is empty"),
            (
                "repository:a:pull,",
                "repository:a:pull,",
                "action is empty",
            ),
            (
                "repository:a:,pull",
                "repository:a:,pull",
                "action is empty",
            ),
            (
                "repository:a:pull,,push",
                "repository:a:pull,,push",
                "action is empty",
            ),
            ("repository:a:Pull", "repository:a:Pull", "action \"Pull\""),
            (
                "repository:a:pull\tpush",
                "repository:a:pull\tpush",
                "action",
            ),
            // Names: the reference grammar for repositories, printable and short for others.
            (
                "repository:Not..Valid:pull",
                "repository:Not..Valid:pull",
                "invalid repository name: path component",
            ),
            (
                "repository:team/*:pull",
                "repository:team/*:pull",
                "invalid repository name",
            ),
            (
                "repository:team/app\nx:pull",
                "repository:team/app\nx:pull",
                "invalid repository name",
            ),
            (
                "registry:cata\nlog:*",
                "registry:cata\nlog:*",
                "control characters, found '\\n'",
            ),
            // The good scope before it does not hide the bad one.
            (
                "repository:a:pull repository:b",
                "repository:b",
                "only one ':'",
            ),
        ];
        for (input, quoted, reason) in cases {
            let e = parse_scope(input).unwrap_err();
            assert_eq!(e.scope, quoted, "input {input:?}");
            assert!(e.reason.contains(reason), "input {input:?}: {}", e.reason);
            // Display quotes with escapes, so control characters cannot garble a log line.
            assert!(e.to_string().contains(&format!("{quoted:?}")), "{e}");
        }
    }

    #[test]
    fn limits_size_and_quotes_briefly() {
        let unit = "repository:a:pull ";
        let n = MAX_SCOPE_LEN / unit.len();
        let ok = unit.repeat(n) + &" ".repeat(MAX_SCOPE_LEN - n * unit.len());
        assert_eq!(ok.len(), MAX_SCOPE_LEN);
        assert_eq!(parse_scope(&ok).map(|v| v.len()), Ok(n));

        let too_big = format!("repository:{}:pull", "a".repeat(MAX_SCOPE_LEN - 15));
        let e = parse_scope(&too_big).unwrap_err();
        assert!(
            e.reason.contains("at most 65536 bytes, got 65537"),
            "{}",
            e.reason
        );
        assert!(
            e.scope.len() <= EXCERPT_LEN + 3,
            "error quotes {} bytes",
            e.scope.len()
        );

        let long_bad = format!("repository:{}", "é".repeat(200));
        let e = parse_scope(&long_bad).unwrap_err();
        assert!(e.scope.ends_with("..."));
        assert!(long_bad.starts_with(e.scope.trim_end_matches("...")));

        // A 60 KB name is refused for its length, quoted briefly.
        let huge = format!("repository:{}:pull", "a".repeat(60 * 1024));
        let e = parse_scope(&huge).unwrap_err();
        assert!(
            e.reason.contains("at most 255 characters, got 61440"),
            "{}",
            e.reason
        );
        assert!(e.scope.len() <= EXCERPT_LEN + 3);
        let huge = format!("registry:{}:*", "a".repeat(256));
        let e = parse_scope(&huge).unwrap_err();
        assert!(
            e.reason.contains("at most 255 characters, got 256"),
            "{}",
            e.reason
        );
    }
}
