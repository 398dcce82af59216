//! Repository names as distribution's reference grammar defines them (max 255).
use std::fmt;
use std::str::FromStr;

use super::ValidationError;

/// A valid repository name, e.g. `team/app` or `localhost:5000/team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RepositoryName {
    type Err = ValidationError;
    fn from_str(_s: &str) -> Result<Self, Self::Err> {
        todo!("domain helper")
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
