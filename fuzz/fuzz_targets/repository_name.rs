//! Repository names (the NAME of a requested `repository:NAME:ACTIONS` scope), checked
//! against distribution's reference grammar written as regular expressions (path
//! component, domain), with distribution's rule for when the first component is a host.
//!
//! Invariants: the hand-written parser accepts exactly what the regular expressions accept;
//! an accepted name prints as itself; a refusal names the field and says why.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regauth::domain::{RepoPattern, RepositoryName};
use regex::Regex;

struct Grammar {
    path: Regex,
    domain: Regex,
}

fn grammar() -> &'static Grammar {
    static G: OnceLock<Grammar> = OnceLock::new();
    G.get_or_init(|| {
        let component = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
        let label = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain = format!(r"{label}(?:\.{label})*(?::[0-9]+)?");
        Grammar {
            path: Regex::new(&format!("^{component}$")).expect("regex"),
            domain: Regex::new(&format!("^{domain}$")).expect("regex"),
        }
    })
}

fn oracle(s: &str) -> bool {
    let g = grammar();
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    match s.split_once('/') {
        None => g.path.is_match(s),
        Some((first, rest)) => {
            let looks_like_host = first.contains(['.', ':']) || first == "localhost";
            rest.split('/').all(|c| g.path.is_match(c))
                && (g.path.is_match(first) || (looks_like_host && g.domain.is_match(first)))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = s.parse::<RepositoryName>();
    assert_eq!(parsed.is_ok(), oracle(s), "{s:?}: {parsed:?}");
    match parsed {
        Ok(name) => {
            assert_eq!(name.as_str(), s);
            assert_eq!(name.to_string(), s);
            // A valid name without a host is also a literal pattern that matches only itself.
            if let Ok(p) = s.parse::<RepoPattern>() {
                assert!(p.is_literal() && p.matches(s), "{s:?}");
            }
        }
        Err(e) => {
            assert_eq!(e.field, "name");
            assert!(!e.rule.is_empty());
            assert!(!e.to_string().contains(['\n', '\r']), "{e}");
        }
    }
});
