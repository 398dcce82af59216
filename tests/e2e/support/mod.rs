//! Fixtures for the end-to-end tests: real processes (regauth, docker-registry,
//! dockerd) each in its own temporary directory, on ports chosen by the OS,
//! killed when the fixture is dropped; plus helpers to run client commands
//! (docker, skopeo, ctr, python) with a timeout and readable failure messages.

#![allow(dead_code)] // each test uses a different subset of the helpers

pub mod dockerd;
pub mod oci;
pub mod process;
pub mod regauth;
pub mod registry;

use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

pub use dockerd::DockerClient;
pub use regauth::{CreatedToken, Regauth};
pub use registry::Registry;

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
pub const INSTALL_HINT: &str = "run `bash scripts/install-test-deps.sh` (as root) first";

/// Panics with an install hint when `path` is not an executable file.
pub fn require_bin(path: &str) {
    let ok = std::fs::metadata(path)
        .map(|m| m.is_file())
        .unwrap_or(false);
    assert!(ok, "{path} not found: {INSTALL_HINT}");
}

/// A port on 127.0.0.1 that was free a moment ago. Ports handed out by this
/// process are remembered so parallel tests never get the same one.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("could not find a free port");
}

/// A fresh temporary directory under /tmp with a short name (unix socket
/// paths must stay below 108 bytes), removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temp dir in /tmp")
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` with the
/// message from `describe` (called only on failure).
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
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The result of a client command, printable in full for failure messages.
pub struct CmdOutput {
    pub command: String,
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }

    /// stdout and stderr together, lowercased, for "mentions X" checks.
    pub fn text_lower(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }

    /// Panics (showing the whole output) unless the command exited 0.
    #[track_caller]
    pub fn expect_success(&self, what: &str) -> &Self {
        assert!(self.success(), "{what}: expected success, got:\n{self}");
        self
    }

    /// Panics unless the command failed (non-zero exit, not a timeout).
    #[track_caller]
    pub fn expect_failure(&self, what: &str) -> &Self {
        assert!(
            !self.timed_out,
            "{what}: expected a failure, but the command timed out:\n{self}"
        );
        assert!(
            !self.success(),
            "{what}: expected a failure, but the command succeeded:\n{self}"
        );
        self
    }

    /// Panics unless the command failed (non-zero exit, not a timeout) and
    /// its output mentions one of `needles` (case-insensitive).
    #[track_caller]
    pub fn expect_refused(&self, what: &str, needles: &[&str]) -> &Self {
        assert!(
            !self.timed_out,
            "{what}: expected a refusal, but the command timed out:\n{self}"
        );
        assert!(
            !self.success(),
            "{what}: expected a refusal, but the command succeeded:\n{self}"
        );
        let text = self.text_lower();
        assert!(
            needles.iter().any(|n| text.contains(&n.to_lowercase())),
            "{what}: the command failed, but its output mentions none of {needles:?}:\n{self}"
        );
        self
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.timed_out {
            "TIMED OUT (killed)".to_string()
        } else {
            match self.status {
                Some(s) => s.to_string(),
                None => "not run".to_string(),
            }
        };
        writeln!(f, "  $ {}", self.command)?;
        writeln!(f, "  status: {status}")?;
        writeln!(f, "  --- stdout ---\n{}", indent(&self.stdout))?;
        write!(f, "  --- stderr ---\n{}", indent(&self.stderr))
    }
}

fn indent(s: &str) -> String {
    let s = s.trim_end();
    if s.is_empty() {
        return "    (empty)".to_string();
    }
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders a command line for messages (test secrets are throwaway, so
/// passwords in arguments are shown as they are).
pub fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with `stdin` as its input, killing it after
/// `timeout`. Never panics on the command's own failure.
pub fn run(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> CmdOutput {
    let command = describe_command(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot start `{command}`: {e} ({INSTALL_HINT})"),
    };
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let input = input.to_owned();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for `{command}`: {e}"),
        }
    };
    CmdOutput {
        command,
        status,
        timed_out,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// A `{type, name, actions}` scope for the admin API.
pub fn scope(kind: &str, name: &str, actions: &[&str]) -> Value {
    json!({"type": kind, "name": name, "actions": actions})
}

/// Shorthand for a repository scope.
pub fn repo(name: &str, actions: &[&str]) -> Value {
    scope("repository", name, actions)
}

/// The claims of a JWT, decoded without verifying the signature (the
/// registry verifies it; the tests look at what was granted).
pub fn jwt_claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {jwt}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .unwrap_or_else(|e| panic!("JWT payload is not base64url ({e}): {jwt}"));
    serde_json::from_slice(&payload).unwrap_or_else(|e| panic!("JWT payload is not JSON ({e})"))
}

/// The `access` claim as sorted `(type, name, sorted actions)` triples.
pub fn granted(claims: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = claims["access"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|e| {
            let mut actions: Vec<String> = e["actions"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or(&[])
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            actions.sort();
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["name"].as_str().unwrap_or_default().to_owned(),
                actions,
            )
        })
        .filter(|(_, _, actions)| !actions.is_empty())
        .collect();
    out.sort();
    out
}

/// Builds a `(type, name, actions)` triple for comparisons with [`granted`].
pub fn access(kind: &str, name: &str, actions: &[&str]) -> (String, String, Vec<String>) {
    let mut a: Vec<String> = actions.iter().map(|s| s.to_string()).collect();
    a.sort();
    (kind.to_owned(), name.to_owned(), a)
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

/// A blocking HTTP client with a timeout, for talking to regauth and the registry.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build reqwest client")
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
