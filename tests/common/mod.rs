//! The one fixture library of every test binary (`tests/api`, `tests/cli`, `tests/e2e`), each
//! of which includes it with `#[path = "../common/mod.rs"] mod common;`.
//!
//! - `process`: a child process logging to a file, stopped when dropped ([`Daemon`]).
//! - `command`: a client command run to completion with a timeout ([`run`], [`CmdOutput`]).
//! - `http`: a blocking HTTP client, Basic credentials, JWT decoding, scope values, and a
//!   port that refuses connections ([`ClosedPort`]).
//! - Launchers, one per program: `regauth` (the server under test, and its CLI),
//!   `registry` (CNCF distribution 2.8, 3.0 or the 3.1 verifier), `dockerd` (shared by the
//!   tests running at the same time, with a docker client and `ctr`), `skopeo`, and `oci`
//!   (an image layout written from scratch), `postgres` (a private PostgreSQL cluster), and
//!   `oidc` (a real OpenID Connect issuer, oidc-provider under node, with its CA, minting ID
//!   tokens; and forged ones for the keyless-CI tests).
//! - `admin_client`: the typed admin API client ([`AdminCall`] requests, [`Reply`] replies,
//!   [`CreatedToken`], [`ApiError`]) that `TestApp` (in-process) and [`Regauth`] (over HTTP)
//!   both send through.
//! - `webhook`: a webhook receiver that records requests, holds them, or is down a while.
//! - `images`: local stand-ins, built on a dockerd, for the base images the Dockerfile and
//!   compose files name (debootstrap's Debian, a Rust builder, registry, PostgreSQL, haproxy);
//!   `compose`: a project of the repository's compose files on a dockerd of its own, one at
//!   a time per machine.
//!
//! No fixture picks a port and hopes it stays free (except `postgres`: PostgreSQL cannot listen
//! on port 0, so it starts on a port the OS just handed out and retries on another if that
//! start fails): regauth and the registries listen on port
//! 0 and report the port the OS chose (regauth with `--bound-address-file`, the registries in
//! their `listening on` log line); dockerd listens on unix sockets in its own temp dir.
//!
//! A new launcher is a module here that makes a [`temp_dir`], starts the
//! program with [`Daemon::spawn`] listening on port 0 (or a unix socket in that dir), learns
//! where it listens with [`wait_for`] (a file it writes, or [`Daemon::wait_for_log`]), and
//! checks with [`require_bin`] that the program is installed.
//!
//! Depends on the regauth binary only as a program (and on `regauth::config` nowhere).

#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub mod admin_client;
pub mod command;
pub mod compose;
pub mod dockerd;
pub mod http;
pub mod images;
pub mod oci;
pub mod oidc;
pub mod postgres;
pub mod process;
pub mod regauth;
pub mod registry;
pub mod skopeo;
pub mod webhook;

use std::path::Path;
use std::time::{Duration, Instant};

pub use admin_client::{AdminCall, ApiError, CreatedToken, NewToken, Reply};
pub use command::{run, CmdOutput};
pub use dockerd::{DockerClient, Dockerd};
pub use http::{
    access, basic, connect_from, granted, http, jwt_claims, jwt_header, repo, scope, ClosedPort,
};
pub use postgres::PgCluster;
pub use process::Daemon;
pub use regauth::{regauth_in, Regauth, ADMIN};
pub use registry::{Registry, Verifier};
pub use skopeo::Skopeo;

/// What clients print when the registry or regauth refuses them (docker:
/// "denied: requested access to the resource is denied", "unauthorized: ...";
/// containerd: "insufficient_scope: authorization failed").
pub const REFUSED: &[&str] = &[
    "denied",
    "unauthorized",
    "authentication required",
    "insufficient_scope",
    "authorization failed",
];

/// Printed when a peer program is missing: the tests never skip.
pub const INSTALL_HINT: &str = "run `bash scripts/test/install-deps.sh` (as root) first: \
     it installs the peers (Debian's docker-registry, docker.io, containerd, skopeo, \
     docker-compose, debootstrap) and the Python SDK";

/// Panics with an install hint when `path` is not an executable file.
#[track_caller]
pub fn require_bin(path: impl AsRef<Path>) {
    let path = path.as_ref();
    let ok = std::fs::metadata(path)
        .map(|m| m.is_file())
        .unwrap_or(false);
    assert!(ok, "{} not found: {INSTALL_HINT}", path.display());
}

/// A fresh temporary directory under /tmp with a short name (unix socket paths must stay
/// below 108 bytes), removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temp dir in /tmp")
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` with the message from
/// `describe` (called only on failure).
#[track_caller]
pub fn wait_for<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    describe: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?}: {}", describe());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A name unique within this test run, for tags and namespaces.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Last `n` lines of a log file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let lines: Vec<&str> = s.lines().collect();
            let start = lines.len().saturating_sub(n);
            format!(
                "--- last {} lines of {} ---\n{}",
                lines.len() - start,
                path.display(),
                lines[start..].join("\n")
            )
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The repository's root directory.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
