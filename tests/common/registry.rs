//! A real CNCF distribution registry whose `auth: token:` block is exactly what
//! `regauth registry-config` prints, run from one of the three token verifiers the tests
//! know ([`Verifier`]). It listens on `127.0.0.1:0` and the fixture reads the port from its
//! `listening on ADDR` log line (every version logs the bound address there), so no port is
//! picked in advance.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::process::Daemon;
use super::{http, repo_root, require_bin, tail, temp_dir, Regauth};

/// A registry build whose token verifier the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verifier {
    /// Debian's `docker-registry`: distribution 2.8.2, the code of `registry:2`.
    V2_8,
    /// distribution 3.0.0, the first `registry:3`.
    V3_0,
    /// distribution 3.0.0 with the token verifier of 3.1.1.
    V3_1,
}

impl Verifier {
    pub const ALL: [Verifier; 3] = [Verifier::V2_8, Verifier::V3_0, Verifier::V3_1];

    /// What the reports call it.
    pub fn name(self) -> &'static str {
        match self {
            Verifier::V2_8 => "distribution 2.8 (Debian's docker-registry)",
            Verifier::V3_0 => "distribution 3.0.0",
            Verifier::V3_1 => "the distribution 3.1.1 token verifier",
        }
    }

    /// The environment variable that names the binary.
    pub fn env_var(self) -> &'static str {
        match self {
            Verifier::V2_8 => "REGAUTH_TEST_REGISTRY_2",
            Verifier::V3_0 => "REGAUTH_TEST_REGISTRY_3_0",
            Verifier::V3_1 => "REGAUTH_TEST_REGISTRY_3_1",
        }
    }

    /// The part of the test names that run on this verifier (`--skip` it to leave them out).
    pub fn test_module(self) -> &'static str {
        match self {
            Verifier::V2_8 => "registry_2_8",
            Verifier::V3_0 => "registry_3_0",
            Verifier::V3_1 => "registry_3_1",
        }
    }

    /// Where the binary is looked for without the environment variable: Debian's for 2.8;
    /// for 3.x `../shared/peers/` beside the repository (for a git worktree, beside its main
    /// checkout too).
    pub fn default_paths(self) -> Vec<PathBuf> {
        let file = match self {
            Verifier::V2_8 => return vec![PathBuf::from("/usr/bin/docker-registry")],
            Verifier::V3_0 => "registry-3.0.0",
            Verifier::V3_1 => "registry-3.0.0-verifier-3.1.1",
        };
        let mut roots = vec![repo_root().to_path_buf()];
        roots.extend(main_checkout());
        roots
            .iter()
            .map(|r| r.join("../shared/peers").join(file))
            .collect()
    }

    /// The binary: the environment variable's value, else the first default path that
    /// exists; `Err` says what was looked for.
    pub fn binary(self) -> Result<PathBuf, String> {
        let candidates = match std::env::var_os(self.env_var()) {
            Some(v) if !v.is_empty() => vec![PathBuf::from(v)],
            _ => self.default_paths(),
        };
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| {
                let tried: Vec<String> =
                    candidates.iter().map(|p| p.display().to_string()).collect();
                format!("{} not found (tried {})", self.name(), tried.join(", "))
            })
    }

    /// The binary, or a failed test that says loudly (also past the test harness's output
    /// capture) that this verifier was not run and how to run or leave it out.
    #[track_caller]
    pub fn require(self) -> PathBuf {
        match self.binary() {
            Ok(p) => p,
            Err(why) => {
                let banner = format!(
                    "\n==== REGISTRY VERIFIER NOT RUN: {why}.\n\
                     ==== Set {var}=/path/to/the/binary, or leave its tests out with\n\
                     ==== `cargo test --test e2e -- --skip {module}`.\n",
                    var = self.env_var(),
                    module = self.test_module(),
                );
                // Straight to fd 2: libtest captures `eprintln!`, not this.
                use std::io::Write as _;
                let _ = std::io::stderr().write_all(banner.as_bytes());
                panic!("{banner}");
            }
        }
    }
}

/// The main checkout of the repository when `repo_root()` is a linked git worktree.
fn main_checkout() -> Option<PathBuf> {
    let dot_git = std::fs::read_to_string(repo_root().join(".git")).ok()?;
    let gitdir = PathBuf::from(dot_git.strip_prefix("gitdir:")?.trim());
    let common = std::fs::read_to_string(gitdir.join("commondir")).ok()?;
    let common = gitdir.join(common.trim());
    Some(std::fs::canonicalize(common).ok()?.parent()?.to_path_buf())
}

/// The `listening on ADDR` address in a registry's log.
fn bound_address(log: &str) -> Option<SocketAddr> {
    let rest = log.split("listening on ").nth(1)?;
    let end = rest
        .find(|c: char| c == '"' || c == ',' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub struct Registry {
    addr: SocketAddr,
    verifier: Verifier,
    daemon: Option<Daemon>,
    service: String,
    client: reqwest::blocking::Client,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Debian's registry (2.8) configured for regauth's registry `registry_id` with the block
    /// `regauth registry-config` prints.
    pub fn start(regauth: &Regauth, registry_id: &str) -> Registry {
        Self::start_on(Verifier::V2_8, regauth, registry_id)
    }

    /// As [`Self::start`], on `verifier`.
    pub fn start_on(verifier: Verifier, regauth: &Regauth, registry_id: &str) -> Registry {
        let block = regauth.registry_config(registry_id);
        Self::start_with_block(verifier, regauth, registry_id, &block)
    }

    /// As [`Self::start`] with another realm URL (e.g. `<url>/auth/token`) in the printed
    /// block.
    pub fn start_with_realm(regauth: &Regauth, registry_id: &str, realm: &str) -> Registry {
        let block: String = regauth
            .registry_config(registry_id)
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("realm:") {
                    format!("    realm: {realm}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        Self::start_with_block(Verifier::V2_8, regauth, registry_id, &block)
    }

    fn start_with_block(
        verifier: Verifier,
        regauth: &Regauth,
        registry_id: &str,
        auth_block: &str,
    ) -> Registry {
        let service = regauth.service_of(registry_id);
        let dir = temp_dir("rgr-");
        let config = dir.path().join("config.yml");
        let yaml = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\n\
             {auth_block}",
            root = dir.path().join("storage").display(),
        );
        std::fs::write(&config, yaml).expect("write registry config");
        let mut registry = Self::spawn(verifier, dir, &config, &[]);
        let challenge = registry.challenge();
        let realm = auth_block
            .lines()
            .find_map(|l| l.trim().strip_prefix("realm:"))
            .expect("a realm in the auth block")
            .trim()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer ")
                && challenge.contains(&format!("realm=\"{realm}\""))
                && challenge.contains(&format!("service=\"{service}\"")),
            "registry challenge should name regauth's realm and service, got: {challenge}"
        );
        registry.service = service;
        registry
    }

    /// `verifier` serving the config file `config` with environment overrides (`REGISTRY_*`)
    /// from `env`; it listens on `127.0.0.1:0` and stores in its temp dir whatever the file
    /// says. Ready once it logs its address.
    pub fn start_file(verifier: Verifier, config: &Path, env: &[(&str, String)]) -> Registry {
        Self::spawn(verifier, temp_dir("rgr-"), config, env)
    }

    fn spawn(
        verifier: Verifier,
        dir: tempfile::TempDir,
        config: &Path,
        env: &[(&str, String)],
    ) -> Registry {
        let bin = verifier.require();
        require_bin(&bin);
        let mut cmd = Command::new(&bin);
        cmd.arg("serve").arg(config).current_dir(dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.path().join("storage"),
            )
            .env("REGISTRY_LOG_LEVEL", "info");
        let mut daemon = Daemon::spawn(verifier.name(), cmd, &dir.path().join("registry.log"));
        let addr = daemon.wait_for_log(Duration::from_secs(30), bound_address);
        Registry {
            addr,
            verifier,
            daemon: Some(daemon),
            service: String::new(),
            client: http(),
            dir,
        }
    }

    /// Stops the registry and starts it again on the same address with the same config file,
    /// so it reads its `rootcertbundle` again (a rolling restart); returns once it serves.
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
        let bin = self.verifier.require();
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .env("REGISTRY_HTTP_ADDR", self.addr.to_string())
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                self.dir.path().join("storage"),
            )
            .env("REGISTRY_LOG_LEVEL", "info");
        let log = self
            .dir
            .path()
            .join(format!("{}.log", super::unique("registry-restart")));
        let mut daemon = Daemon::spawn(self.verifier.name(), cmd, &log);
        let addr = daemon.wait_for_log(Duration::from_secs(30), bound_address);
        assert_eq!(
            addr, self.addr,
            "the restarted registry listens where it did"
        );
        self.daemon = Some(daemon);
        self.challenge();
    }

    /// Waits until `/v2/` answers 401 and returns its `WWW-Authenticate`.
    pub fn challenge(&mut self) -> String {
        let url = format!("{}/v2/", self.url());
        let client = self.client.clone();
        let daemon = self.daemon.as_mut().expect("running");
        daemon.wait_until(Duration::from_secs(30), || {
            let r = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .ok()?;
            (r.status() == StatusCode::UNAUTHORIZED)
                .then(|| {
                    r.headers()
                        .get("www-authenticate")?
                        .to_str()
                        .ok()
                        .map(str::to_owned)
                })
                .flatten()
        })
    }

    pub fn verifier(&self) -> Verifier {
        self.verifier
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The config file the registry runs with (for [`Self::start`]: the fixture's sections,
    /// then the printed `auth:` block).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("registry.log"), 40)
    }

    /// GET `path` (e.g. `/v2/_catalog`) with a Bearer JWT; status and body.
    pub fn get_with_jwt(&self, path: &str, jwt: &str) -> (StatusCode, String) {
        let url = format!("{}{path}", self.url());
        let r = self
            .client
            .get(&url)
            .bearer_auth(jwt)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", self.log_tail()));
        let status = r.status();
        (status, r.text().unwrap_or_default())
    }

    /// Like [`Self::get_with_jwt`], expecting 200 and JSON.
    #[track_caller]
    pub fn get_json(&self, path: &str, jwt: &str) -> Value {
        let (status, body) = self.get_with_jwt(path, jwt);
        assert_eq!(
            status,
            StatusCode::OK,
            "registry GET {path}: {body}\n{}",
            self.log_tail()
        );
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("registry GET {path}: not JSON ({e}): {body}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!(
                "{} at {}:\n{}",
                self.verifier.name(),
                self.host(),
                self.log_tail()
            );
        }
    }
}
