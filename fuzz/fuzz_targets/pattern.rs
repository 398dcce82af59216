//! Repository patterns of token scopes (`team/*`, `a?c`): parsing, and matching against any
//! name, compared with the `wildmatch` crate (the oracle the unit tests use too).
//!
//! Input: the pattern, a newline, the name.
//!
//! Invariants: a pattern is accepted iff it is 1-255 characters of `a-z 0-9 . _ - / * ?`;
//! it prints as itself; `matches` agrees with wildmatch for every name (also non-ASCII, also
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
    let expect_ok = (1..=255).contains(&len) && pattern.chars().all(allowed);
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
