//! Repository path patterns: `*` matches any run (crossing `/`), `?` one character,
//! everything else literal. Allowed characters `a-z 0-9 . _ - / * ?`, 1–255 long.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ValidationError;

/// A validated pattern. Field name in errors: `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoPattern(String);

impl RepoPattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` (already a valid repository name) matches.
    pub fn matches(&self, _name: &str) -> bool {
        todo!("domain helper")
    }
}

impl FromStr for RepoPattern {
    type Err = ValidationError;
    fn from_str(_s: &str) -> Result<Self, Self::Err> {
        todo!("domain helper")
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
