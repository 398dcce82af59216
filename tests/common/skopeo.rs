//! skopeo (containers/image) with a private HOME and auth file, so only the `--creds` a test
//! gives are used.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{require_bin, run, temp_dir, CmdOutput};

/// skopeo with a private HOME and auth file, so only `--creds` given by the
/// test is used.
pub struct Skopeo {
    home: tempfile::TempDir,
}

pub const SKOPEO_BIN: &str = "/usr/bin/skopeo";

impl Default for Skopeo {
    fn default() -> Self {
        Self::new()
    }
}

impl Skopeo {
    pub fn new() -> Skopeo {
        require_bin(SKOPEO_BIN);
        Skopeo {
            home: temp_dir("rgs-"),
        }
    }

    /// A scratch directory that lives as long as this value.
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// `skopeo ARGS` (add `--tls-verify=false` etc. yourself).
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        let mut c = Command::new(SKOPEO_BIN);
        c.args(args)
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.home.path())
            .env("REGISTRY_AUTH_FILE", self.home.path().join("auth.json"));
        run(c, None, Duration::from_secs(120))
    }

    /// `skopeo inspect` of `docker://REF` with credentials.
    pub fn inspect(&self, reference: &str, creds: &str) -> CmdOutput {
        self.run(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            creds,
            &format!("docker://{reference}"),
        ])
    }

    /// `skopeo copy SRC docker://DST`, SRC a full transport reference.
    pub fn copy_to(
        &self,
        src: &str,
        src_creds: Option<&str>,
        dst: &str,
        dst_creds: &str,
    ) -> CmdOutput {
        let dst = format!("docker://{dst}");
        let mut args = vec![
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            dst_creds,
        ];
        if let Some(c) = src_creds {
            args.push("--src-creds");
            args.push(c);
        }
        args.push(src);
        args.push(&dst);
        self.run(&args)
    }

    /// `skopeo delete docker://REF`.
    pub fn delete(&self, reference: &str, creds: &str) -> CmdOutput {
        self.run(&[
            "delete",
            "--tls-verify=false",
            "--creds",
            creds,
            &format!("docker://{reference}"),
        ])
    }
}
