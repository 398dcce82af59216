//! Repository names as distribution's reference grammar defines them (max 255).
//!
//! ```text
//! name      := [domain '/'] component ('/' component)*
//! component := [a-z0-9]+ (separator [a-z0-9]+)*      separator := '.' | '_' | '__' | '-'+
//! domain    := host (':' [0-9]+)?                    host := label ('.' label)*
//! label     := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! ```
//!
//! As in distribution's `splitDockerDomain`, the first `/`-separated component is read as a
//! domain only when it contains `.` or `:` or is `localhost`; otherwise it is an ordinary path
//! component (so `Foo/bar` is invalid). A first component that contains `.` but is not a valid
//! domain (`a_b.c/x`) is still accepted when it is a valid path component, because the
//! registry's own route pattern accepts it.
//!
//! Written by hand: it runs on every requested scope and needs no regex engine.
use std::fmt;
use std::str::FromStr;

use super::ValidationError;
use crate::text::split_once_ascii;

/// A valid repository name, e.g. `team/app` or `localhost:5000/team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryName(String);

const MAX_LEN: usize = 255;

impl FromStr for RepositoryName {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RepositoryName::check(s)?;
        Ok(RepositoryName(s.to_string()))
    }
}

impl RepositoryName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `s` is a repository name, without keeping it: what parsing checks, with no
    /// allocation (the token endpoint checks every requested name twice).
    pub fn check(s: &str) -> Result<(), ValidationError> {
        let err = |rule: String| Err(ValidationError::new("name", rule));
        if s.is_empty() {
            return err("a repository name must not be empty".into());
        }
        if s.len() > MAX_LEN {
            return err(format!(
                "a repository name must be at most {MAX_LEN} characters, got {}",
                s.len()
            ));
        }
        let (domain, path) = match split_once_ascii(s, b'/') {
            Some((first, rest)) if looks_like_domain(first) => (Some(first), rest),
            _ => (None, s),
        };
        if let Some(domain) = domain {
            // `a_b.c/x`: not a domain, but a fine path component.
            if !is_domain(domain) && !is_path_component(domain) {
                return err(format!(
                    "{domain:?} is not a valid registry host[:port] (labels of letters, digits \
                     and inner '-', separated by '.', optional numeric port)"
                ));
            }
        }
        if is_path(path) {
            return Ok(());
        }
        // Only now split the path, to name the component that is wrong.
        let component = path
            .split('/')
            .find(|c| !is_path_component(c))
            .unwrap_or(path);
        err(format!(
            "path component {component:?} must be lowercase letters and digits, \
             optionally joined by single '.', '_', '__' or runs of '-'"
        ))
    }
}

/// distribution's rule for splitting off a registry host: the first component is one iff it
/// contains `.` or `:` or is `localhost`.
fn looks_like_domain(first: &str) -> bool {
    first.bytes().any(|b| b == b'.' || b == b':') || first == "localhost"
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separator `.`, `_`, `__` or one or more `-`.
fn is_path_component(c: &str) -> bool {
    !c.contains('/') && is_path(c)
}

/// `component ('/' component)*` in one pass: `/` is one more separator that must be followed
/// by `[a-z0-9]+`, as every separator must (the token endpoint checks every requested name;
/// splitting it first cost more than the check).
fn is_path(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        if i == start {
            // Empty component, leading separator, or a separator not followed by [a-z0-9].
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' | b'/' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `label ('.' label)* (':' [0-9]+)?`.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (d, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && host.split('.').all(is_domain_label)
}

/// `[a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_label(l: &str) -> bool {
    let b = l.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// One pass over the path reads it as splitting at `/` and checking each component.
        #[test]
        fn a_path_is_its_components(p in "[a0._/A-]{0,12}") {
            proptest::prop_assert_eq!(is_path(&p), p.split('/').all(is_path_component));
        }
    }

    #[test]
    fn valid_names() {
        let long_ok = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        for ok in [
            "a",
            "app",
            "team/app",
            "team/sub/app",
            "a0/b1/c2",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a--b",
            "a---b",
            "a.b_c__d-e--f",
            "library/ubuntu",
            "localhost/app",
            "localhost:5000/team/app",
            "registry.example.com/team/app",
            "Registry.Example.COM:443/team/app",
            "my-host.example/app",
            "1.2.3.4:5000/app",
            "example.com",
            "localhost",
            "a_b.c/app",
            "foo.bar/baz",
            long_ok.as_str(),
        ] {
            let n: RepositoryName = ok.parse().unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            assert_eq!(n.as_str(), ok);
            assert_eq!(n.to_string(), ok);
        }
    }

    #[test]
    fn invalid_names() {
        let too_long = format!("{}/{}", "a".repeat(128), "b".repeat(127));
        for bad in [
            "",
            "a___b",
            "a..b",
            "a._b",
            "a_.b",
            "a.-b",
            "a-_b",
            "foo/Bar",
            "Foo",
            "Foo/bar",
            "FOO",
            "/a",
            "a/",
            "a//b",
            "-a",
            "a-",
            ".a",
            "a.",
            "_a",
            "a_",
            "team/*",
            "*",
            "team/ap?",
            "a b",
            "a:b",
            "localhost:5000",
            "localhost:/app",
            "localhost:50a0/app",
            "localhost:5000:1/app",
            "-host.com/app",
            "host-.com/app",
            "host..com/app",
            ".host.com/app",
            "host.com:/app",
            "host.com/",
            "host.com//app",
            "host.com/App",
            "é/app",
            "team/é",
            too_long.as_str(),
        ] {
            let e = bad.parse::<RepositoryName>().unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
        }
    }

    #[test]
    fn length_limit_counts_the_domain() {
        let at_limit = format!("host.com/{}", "a".repeat(255 - 9));
        assert!(at_limit.parse::<RepositoryName>().is_ok());
        let over = format!("host.com/{}", "a".repeat(255 - 8));
        let e = over.parse::<RepositoryName>().unwrap_err();
        assert_eq!(
            e.rule,
            "a repository name must be at most 255 characters, got 256"
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = "team/a..b".parse::<RepositoryName>().unwrap_err();
        assert!(e.rule.contains("\"a..b\""), "{}", e.rule);
        let e = "host-.com/app".parse::<RepositoryName>().unwrap_err();
        assert!(e.rule.contains("\"host-.com\""), "{}", e.rule);
    }
}
