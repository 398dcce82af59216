//! Durable creation of the files regauth provisions at first start: the admin token, the
//! signing key, its certificate and the JWK set; and the atomic replacement of the
//! bound-address file `serve --bound-address-file` writes.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file could not be created or written; `path` is the file or directory that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Creates `path` (and its missing parent directories) with permission bits `mode` exactly,
/// whatever the process umask (`serve` runs with 077), never replacing an existing file,
/// writes `contents`, and syncs the file and its directory so the file survives a crash right
/// after start-up. A parent directory created here is 0755, as it was before `serve` set its
/// umask: the certificate beside the key must stay readable by the registry (the key's own
/// mode keeps it private).
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    let at = |p: &Path| {
        let path = p.to_path_buf();
        move |source| WriteError { path, source }
    };
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(at(dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(at(dir))?;
        }
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(at(path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(at(path))?;
    file.write_all(contents).map_err(at(path))?;
    file.sync_all().map_err(at(path))?;
    let dir = parent.unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Replaces `path` with `contents` atomically: a temporary file beside it (`PATH.tmp`), renamed
/// over it, so a reader sees the old contents or the new ones, never a part.
pub fn write_replacing(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, contents).map_err(|source| WriteError {
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, path).map_err(|source| WriteError {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_parents_with_the_mode_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/secret");
        write_new_file(&path, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let err = write_new_file(&path, b"two", 0o600).unwrap_err();
        assert_eq!(err.path, path);
        assert_eq!(err.source.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().starts_with(&path.display().to_string()));
        assert_eq!(fs::read(&path).unwrap(), b"one");
    }

    #[test]
    fn write_replacing_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bound-address");
        write_replacing(&path, b"127.0.0.1:1234567\n").unwrap();
        write_replacing(&path, b"127.0.0.1:1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "127.0.0.1:1\n");
        assert!(!dir.path().join("bound-address.tmp").exists());
        let err = write_replacing(&dir.path().join("no/such/dir"), b"x").unwrap_err();
        assert_eq!(err.path, dir.path().join("no/such/dir.tmp"));
    }
}
