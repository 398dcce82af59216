//! The admin API's bearer token as the server checks it: either fixed (configured in
//! `[admin] token` or `REGAUTH_ADMIN_TOKEN`) or kept in a file (`<data_dir>/admin-token`) that
//! `regauth admin-token rotate` replaces. A file-kept token is re-read when the file changes
//! (checked with one `stat` per admin request), so after a rotation the old token stops
//! working at once without a restart, and nothing else is disturbed.
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tracing::{info, warn};

use crate::config::check_admin_token;
use crate::domain::SecretHash;

/// The admin token, by its hash (compared in constant time, so neither the token nor its
/// length leaks).
pub struct AdminToken {
    source: Source,
}

enum Source {
    Fixed(SecretHash),
    File {
        path: PathBuf,
        /// The file's identity when last read, and the hash of what it held.
        current: Mutex<(Option<Stamp>, SecretHash)>,
    },
}

/// What changes when the file is replaced or rewritten.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: m.ino(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// The token in `text` (a token file's contents), if it is acceptable as an admin token.
pub fn parse_file_contents(text: &str) -> Option<&str> {
    let t = text.trim();
    check_admin_token(t).ok().map(|()| t)
}

impl AdminToken {
    /// A token that never changes while the server runs.
    pub fn fixed(token: &str) -> AdminToken {
        AdminToken {
            source: Source::Fixed(SecretHash::of(token)),
        }
    }

    /// The token kept in `path`, whose contents at start-up were `token`.
    pub fn file(path: PathBuf, token: &str) -> AdminToken {
        AdminToken {
            source: Source::File {
                current: Mutex::new((stamp(&path), SecretHash::of(token))),
                path,
            },
        }
    }

    /// Whether `presented` is the admin token now. A file that cannot be read or holds no
    /// valid token leaves the last good token in force (logged), so a half-edited file does
    /// not lock the operator out.
    pub fn matches(&self, presented: &str) -> bool {
        let presented = SecretHash::of(presented);
        match &self.source {
            Source::Fixed(hash) => hash.ct_eq(&presented),
            Source::File { path, current } => {
                let now = stamp(path);
                let mut cur = current.lock().unwrap_or_else(PoisonError::into_inner);
                if now != cur.0 {
                    match std::fs::read_to_string(path) {
                        Ok(text) => match parse_file_contents(&text) {
                            Some(t) => {
                                *cur = (now, SecretHash::of(t));
                                info!(file = %path.display(), "admin token file changed; the new token is in force");
                            }
                            None => warn!(file = %path.display(),
                                "admin token file holds no acceptable token; keeping the previous one"),
                        },
                        Err(e) => warn!(file = %path.display(), error = %e,
                            "cannot read the admin token file; keeping the previous token"),
                    }
                }
                cur.1.ct_eq(&presented)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "rgadm_old-token-0123456789";
    const NEW: &str = "rgadm_new-token-0123456789";

    #[test]
    fn fixed_token() {
        let t = AdminToken::fixed(OLD);
        assert!(t.matches(OLD));
        assert!(!t.matches(NEW));
        assert!(!t.matches(""));
    }

    #[test]
    fn a_replaced_file_takes_effect_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, format!("{OLD}\n")).unwrap();
        let t = AdminToken::file(path.clone(), OLD);
        assert!(t.matches(OLD));

        // Replaced by rename, as `admin-token rotate` does.
        let tmp = dir.path().join("admin-token.new");
        std::fs::write(&tmp, NEW).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(!t.matches(OLD), "the old token stops working");
        assert!(t.matches(NEW));

        // A file holding no valid token keeps the last good one.
        std::fs::write(&path, "short").unwrap();
        assert!(t.matches(NEW));
        std::fs::remove_file(&path).unwrap();
        assert!(t.matches(NEW));
        assert!(!t.matches(OLD));
    }

    #[test]
    fn file_contents() {
        assert_eq!(parse_file_contents(&format!("  {OLD}\n")), Some(OLD));
        assert_eq!(parse_file_contents("too-short\n"), None);
        assert_eq!(parse_file_contents(""), None);
    }
}
