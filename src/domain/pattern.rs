//! Repository path patterns: `*` matches any run (crossing `/`), `?` one character,
//! everything else literal. Allowed characters `a-z 0-9 . _ - / * ?`, 1–255 long.
//!
//! Matching runs on every token request for every scope, so the pattern string is its own
//! compiled form: [`RepoPattern::matches`] walks pattern and name once, without allocating.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// A validated pattern. Field name in errors: `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoPattern(String);

const MAX_LEN: usize = 255;

impl RepoPattern {
    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` (already a valid repository name) matches.
    pub fn matches(&self, name: &str) -> bool {
        wildcard_match(self.0.as_bytes(), name.as_bytes())
    }

    /// Whether the pattern has no `*` or `?`, i.e. matches exactly one name.
    pub fn is_literal(&self) -> bool {
        !self.0.bytes().any(|b| b == b'*' || b == b'?')
    }

    /// Whether the pattern names a claim (`${claim}`): a federated token's scope, expanded
    /// with the claims of each login ([`super::federation::expand_template`]). Unexpanded it
    /// matches nothing, since no repository name contains `$`.
    pub fn is_template(&self) -> bool {
        self.0.contains("${")
    }
}

fn is_pattern_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/' | b'*' | b'?')
}

/// Index of the character after the one starting at `i` in UTF-8 `s` (skips continuation
/// bytes), so that `?` and the star's backtrack step consume whole characters even if a
/// caller passes a non-ASCII name.
fn next_char(s: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < s.len() && s[i] & 0xC0 == 0x80 {
        i += 1;
    }
    i
}

/// Whether `text` matches `pattern` (`*` any run, `?` one character, the rest literal and
/// case-sensitive) over any characters: the claim conditions of a federation
/// ([`super::federation`]), whose values are not repository names.
pub fn matches_text(pattern: &str, text: &str) -> bool {
    wildcard_match(pattern.as_bytes(), text.as_bytes())
}

/// Whole-string wildcard match: `*` any run (also empty, also across `/`), `?` one
/// character, all other bytes literal.
///
/// Greedy with backtracking to the most recent star only: when a later literal fails, that
/// star absorbs one more character and matching resumes after it. Earlier stars never need
/// revisiting, since whatever they could absorb the latest star can absorb too, so the run
/// time is O(pattern × name) in the worst case and linear in practice.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // (position in the pattern just after the latest star, position in the name where
    // that star's run currently ends)
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, n));
                continue;
            }
            Some(b'?') => {
                p += 1;
                n = next_char(name, n);
                continue;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((after_star, run_end)) => {
                let run_end = next_char(name, run_end);
                star = Some((after_star, run_end));
                p = after_star;
                n = run_end;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

impl FromStr for RepoPattern {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let len = s.chars().count();
        if !(1..=MAX_LEN).contains(&len) {
            return Err(ValidationError::new(
                "name",
                format!("a repository pattern must be 1 to {MAX_LEN} characters, got {len}"),
            ));
        }
        // A federated token's `${claim}` scope: its own rules (the placeholders name claims,
        // and the path with them filled in is a pattern).
        if s.contains("${") {
            super::federation::validate_template(s)?;
            return Ok(RepoPattern(s.to_string()));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !c.is_ascii() || !is_pattern_byte(*c as u8))
        {
            return Err(ValidationError::new(
                "name",
                format!(
                    "a repository pattern may contain only a-z, 0-9, '.', '_', '-', '/', '*' \
                     and '?' (and '${{claim}}' placeholders), found {bad:?}"
                ),
            ));
        }
        Ok(RepoPattern(s.to_string()))
    }
}

impl TryFrom<String> for RepoPattern {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RepoPattern> for String {
    fn from(p: RepoPattern) -> String {
        p.0
    }
}

impl fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pat(s: &str) -> RepoPattern {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn matching_table() {
        // (pattern, name, matches)
        let cases = [
            ("*", "a", true),
            ("*", "team/app", true),
            ("*", "localhost:5000/team/app", true),
            ("team/app", "team/app", true),
            ("team/app", "team/app2", false),
            ("team/app", "team/ap", false),
            ("team/app", "xteam/app", false),
            ("team/*", "team/a", true),
            ("team/*", "team/a/b", true),
            ("team/*", "team/", true),
            ("team/*", "team", false),
            ("team/*", "teams/a", false),
            ("team*", "team", true),
            ("team*", "teams/a/b", true),
            ("*/app", "team/app", true),
            ("*/app", "a/b/c/app", true),
            ("*/app", "team/app/x", false),
            ("*app*", "myapplication", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXcYb", false),
            ("a*a*a", "aa", false),
            ("a?c", "abc", true),
            ("a?c", "a/c", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("team/???", "team/app", true),
            ("team/???", "team/ap", false),
            ("?*", "", false),
            ("*?", "x", true),
            ("**", "anything/at/all", true),
            // `.` and `_` are literals, not regex or glob specials.
            ("a.c", "a.c", true),
            ("a.c", "abc", false),
            ("a_c", "a_c", true),
            ("a_c", "abc", false),
            ("a-c", "a-c", true),
        ];
        for (p, name, want) in cases {
            assert_eq!(pat(p).matches(name), want, "pattern {p:?} name {name:?}");
        }
    }

    #[test]
    fn question_mark_consumes_a_whole_character() {
        // Names reaching `matches` are ASCII, but a stray multi-byte one must not match
        // as if it were several characters.
        assert!(pat("a?c").matches("aéc"));
        assert!(!pat("a??c").matches("aéc"));
        assert!(pat("*c").matches("ééc"));
    }

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in [
            "*",
            "?",
            "a",
            "team/app",
            "team/*",
            "a.b_c-d/e?f*",
            &"a".repeat(255),
        ] {
            assert_eq!(pat(ok).as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        let cases: &[(&str, &str)] = &[
            ("", "must be 1 to 255 characters, got 0"),
            (&*"a".repeat(256), "must be 1 to 255 characters, got 256"),
            ("Team/*", "found 'T'"),
            ("host:5000/*", "found ':'"),
            ("a b", "found ' '"),
            ("a[b]", "found '['"),
            ("é", "found 'é'"),
            ("ci/$repository", "found '$'"),
            ("ci/{x}", "found '{'"),
            ("ci/${repository", "is not closed"),
            ("ci/${}/*", "a template is `${claim}`"),
            ("ci/${a b}/*", "a template is `${claim}`"),
            ("ci/${x}/A", "found 'A'"),
            ("ci/${x}}", "found '}'"),
        ];
        for (input, rule_part) in cases {
            let e = input.parse::<RepoPattern>().unwrap_err();
            assert_eq!(e.field, "name");
            assert!(e.rule.contains(rule_part), "{input:?}: {}", e.rule);
        }
    }

    /// Templates parse, say so, and match nothing until expanded.
    #[test]
    fn claim_placeholders() {
        for ok in [
            "ci/${repository}/*",
            "${namespace_id}-${project_id}",
            "a/${Job.ID}",
        ] {
            let p = pat(ok);
            assert!(p.is_template(), "{ok}");
            assert!(!p.matches("ci/acme/app/x"));
        }
        assert!(!pat("ci/*").is_template());
    }

    #[test]
    fn is_literal() {
        assert!(pat("team/app").is_literal());
        assert!(!pat("team/*").is_literal());
        assert!(!pat("team/ap?").is_literal());
    }

    #[test]
    fn serde_validates() {
        assert_eq!(
            serde_json::from_str::<RepoPattern>("\"team/*\"").unwrap(),
            pat("team/*")
        );
        assert!(serde_json::from_str::<RepoPattern>("\"Team\"").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Small alphabet, so that matches and near misses are both frequent.
        #[test]
        fn agrees_with_wildmatch_small_alphabet(p in "[ab/*?]{1,10}", n in "[ab/]{0,12}") {
            prop_assert_eq!(pat(&p).matches(&n), wildmatch::WildMatch::new(&p).matches(&n));
        }

        #[test]
        fn agrees_with_wildmatch_full_alphabet(
            p in "[a-z0-9._/*?-]{1,20}",
            n in "[a-z0-9._/-]{0,30}",
        ) {
            prop_assert_eq!(pat(&p).matches(&n), wildmatch::WildMatch::new(&p).matches(&n));
        }

        /// A pattern built from a name by swapping parts for wildcards matches that name.
        #[test]
        fn generalised_name_matches(n in "[a-z0-9._/-]{1,30}", mask in proptest::collection::vec(0u8..4, 30)) {
            let p: String = n.chars().zip(&mask).map(|(c, m)| match m {
                0 => '?',
                1 => '*',
                _ => c,
            }).collect();
            prop_assert!(pat(&p).matches(&n), "pattern {} name {}", p, n);
        }
    }
}
