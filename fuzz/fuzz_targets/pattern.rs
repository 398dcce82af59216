//! Repository patterns of token scopes (`team/*`, `a?c`): parsing, and matching against any
//! name, compared with the `wildmatch` crate (the oracle the unit tests use too).
//!
//! Input: the pattern, a newline, the name.
//!
//! Invariants: a pattern is accepted iff it is 1-255 characters of `a-z 0-9 . _ - / * ?` and
//! `${claim}` placeholders (a federated token's templated scope: each `${` closed by the next
//! `}`, the claim name 1-128 of `a-z A-Z 0-9 _ - . : /`); it prints as itself; `matches` agrees with wildmatch for every name (also non-ASCII, also
//! names that are not valid repository names); a literal pattern matches only itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use regauth::domain::RepoPattern;
use wildmatch::WildMatch;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, name) = text.split_once('\n').unwrap_or((text, ""));
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/' | '*' | '?');
    let len = pattern.chars().count();
    let expect_ok = (1..=255).contains(&len) && template_ok(pattern, allowed);
    match pattern.parse::<RepoPattern>() {
        Ok(p) => {
            assert!(expect_ok, "accepted {pattern:?}");
            assert_eq!(p.to_string(), pattern);
            let want = WildMatch::new(pattern).matches(name);
            assert_eq!(p.matches(name), want, "pattern {pattern:?} name {name:?}");
            if p.is_literal() {
                assert_eq!(p.matches(name), pattern == name);
            }
        }
        Err(e) => {
            assert!(!expect_ok, "refused {pattern:?}: {e}");
            assert_eq!(e.field, "name");
            assert!(!e.to_string().contains(['\n', '\r']), "{e}");
        }
    }
});

/// The pattern's characters outside `${claim}` placeholders are all `allowed`, and each
/// placeholder is closed and names a claim. Written apart from the crate's own parser.
fn template_ok(pattern: &str, allowed: impl Fn(char) -> bool) -> bool {
    let claim_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/');
    let mut rest = pattern;
    while let Some(at) = rest.find("${") {
        if !rest[..at].chars().all(&allowed) {
            return false;
        }
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return false;
        };
        let name = &after[..end];
        if name.is_empty() || name.len() > 128 || !name.chars().all(claim_char) {
            return false;
        }
        rest = &after[end + 1..];
    }
    rest.chars().all(allowed)
}
