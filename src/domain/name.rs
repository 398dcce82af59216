//! Token names: 3–63 of `a-z 0-9 -`, starting with a letter, ending with a letter or digit.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

const MIN_LEN: usize = 3;
const MAX_LEN: usize = 63;

/// A valid token name (also the docker username). Field name in errors: `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenName(String);

impl TokenName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `s` against the rules of [`TokenName`] without building one: for the token
    /// endpoint, which only needs to know whether a presented username can name a token.
    pub fn check(s: &str) -> Result<(), ValidationError> {
        let err = |rule: String| ValidationError::new("name", rule);
        let len = s.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(err(format!(
                "must be {MIN_LEN} to {MAX_LEN} characters, got {len}"
            )));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                "may contain only lowercase letters a-z, digits and '-'".into(),
            ));
        }
        // Only ASCII is left, so byte positions are character positions.
        let bytes = s.as_bytes();
        if !bytes[0].is_ascii_lowercase() {
            return Err(err("must begin with a letter a-z".into()));
        }
        if bytes[len - 1] == b'-' {
            return Err(err("must end with a letter or digit".into()));
        }
        Ok(())
    }
}

impl FromStr for TokenName {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TokenName::check(s)?;
        Ok(TokenName(s.to_string()))
    }
}

impl TryFrom<String> for TokenName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TokenName> for String {
    fn from(n: TokenName) -> String {
        n.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in [
            "abc",
            "ci-bot",
            "a1b",
            "a-1",
            "a--b",
            "team-7-pusher",
            &format!("a{}", "b".repeat(62)),
        ] {
            let n: TokenName = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(n.as_str(), ok);
            assert_eq!(n.to_string(), ok);
        }
    }

    #[test]
    fn rejects_invalid_names_with_the_broken_rule() {
        let cases: &[(&str, &str)] = &[
            ("", "must be 3 to 63 characters, got 0"),
            ("ab", "must be 3 to 63 characters, got 2"),
            (&*"a".repeat(64), "must be 3 to 63 characters, got 64"),
            // Counted in characters, not bytes.
            ("aé", "must be 3 to 63 characters, got 2"),
            (
                "abé",
                "may contain only lowercase letters a-z, digits and '-'",
            ),
            (
                "Abc",
                "may contain only lowercase letters a-z, digits and '-'",
            ),
            (
                "ab_c",
                "may contain only lowercase letters a-z, digits and '-'",
            ),
            (
                "ab.c",
                "may contain only lowercase letters a-z, digits and '-'",
            ),
            (
                "ab c",
                "may contain only lowercase letters a-z, digits and '-'",
            ),
            ("1abc", "must begin with a letter a-z"),
            ("-abc", "must begin with a letter a-z"),
            ("abc-", "must end with a letter or digit"),
        ];
        for (input, rule) in cases {
            let e = input.parse::<TokenName>().unwrap_err();
            assert_eq!(e, ValidationError::new("name", *rule), "input {input:?}");
        }
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let n: TokenName = serde_json::from_str("\"ci-bot\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"ci-bot\"");
        assert!(serde_json::from_str::<TokenName>("\"CI\"").is_err());
    }
}
