//! Fixtures for the CLI tests: a real `regauth serve` on an OS-chosen port in a temp dir, the
//! CLI run as a subprocess, Debian's `docker-registry` and a private `dockerd`. Every process
//! is stopped on drop.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

/// The binary under test: server and CLI alike.
pub const BIN: &str = env!("CARGO_BIN_EXE_regauth");
/// The admin token of the test servers (unless a test removes it from the config).
pub const ADMIN: &str = "cli-test-admin-token-0123456789";
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const DOCKERD_BIN: &str = "/usr/sbin/dockerd";
/// Debian's docker client (the one in /usr/local/bin on this machine is another).
pub const DOCKER_BIN: &str = "/usr/bin/docker";

/// Environment variables regauth reads; cleared for every child so the caller's shell cannot
/// leak into a test.
const REGAUTH_VARS: [&str; 8] = [
    "REGAUTH_URL",
    "REGAUTH_ADMIN_TOKEN",
    "REGAUTH_CONFIG",
    "REGAUTH_REGISTRY",
    "REGAUTH_LISTEN",
    "REGAUTH_DATA_DIR",
    "REGAUTH_PUBLIC_URL",
    "REGAUTH_LOG",
];

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rgcli-")
        .tempdir()
        .expect("temp dir")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Fails the test with a hint when a peer program is missing.
pub fn require_bin(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install the test peers (Debian packages docker-registry, docker.io, \
         containerd, docker-compose) and run the tests as root"
    );
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl From<(String, Output)> for Out {
    fn from((what, o): (String, Output)) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what,
        }
    }
}

impl Out {
    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "`{}` failed\nstdout:\n{}\nstderr:\n{}",
            self.what, self.stdout, self.stderr
        );
        self
    }

    /// Asserts the CLI's failure contract: exit `code`, nothing on stdout, exactly one line
    /// on stderr (`regauth: ...`), which is returned without the prefix.
    #[track_caller]
    pub fn fails(&self, code: i32) -> String {
        assert_eq!(
            self.code, code,
            "`{}`: exit status\nstdout:\n{}\nstderr:\n{}",
            self.what, self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "`{}`: stdout on failure", self.what);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}`: stderr is not one line: {:?}",
            self.what,
            self.stderr
        );
        lines[0]
            .strip_prefix("regauth: ")
            .unwrap_or_else(|| panic!("`{}`: no `regauth: ` prefix: {:?}", self.what, lines[0]))
            .to_string()
    }

    /// stdout as JSON (the whole of it).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}`: stdout is not JSON ({e}):\n{}",
                self.what, self.stdout
            )
        })
    }
}

/// Runs the regauth binary with `args` and exactly the REGAUTH_* variables in `env`, in `cwd`.
pub fn regauth_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for v in REGAUTH_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run regauth");
    (format!("regauth {}", args.join(" ")), out).into()
}

/// A running `regauth serve`.
pub struct Server {
    child: Child,
    pub url: String,
    pub config_path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// A server with the test admin token, key and certificate in its temp dir and the
    /// built-in default registry.
    pub fn start() -> Server {
        Server::start_with(|_| {})
    }

    /// As [`Server::start`], with `edit` applied to the config before it is written.
    pub fn start_with(edit: impl FnOnce(&mut toml::Table)) -> Server {
        let dir = temp_dir();
        let port = free_port();
        let d = dir.path();
        let mut config: toml::Table = toml::from_str(&format!(
            r#"
            listen = "127.0.0.1:{port}"
            data_dir = "{data}"
            [admin]
            token = "{ADMIN}"
            [jwt]
            key = "{key}"
            certificate = "{cert}"
            "#,
            data = d.join("data").display(),
            key = d.join("signing.key").display(),
            cert = d.join("signing.crt").display(),
        ))
        .expect("test config");
        edit(&mut config);
        Server::start_config(dir, port, &config)
    }

    /// A server on `port` with exactly `config`, written into `dir`.
    pub fn start_config(dir: tempfile::TempDir, port: u16, config: &toml::Table) -> Server {
        let config_path = dir.path().join("regauth.toml");
        std::fs::write(&config_path, toml::to_string(config).expect("toml")).expect("write config");
        let log = std::fs::File::create(dir.path().join("regauth.log")).expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for v in REGAUTH_VARS {
            cmd.env_remove(v);
        }
        let child = cmd.spawn().expect("start regauth serve");
        let mut s = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            config_path,
            dir,
        };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&mut self) {
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("regauth serve exited with {status}:\n{}", self.log());
            }
            if client
                .get(format!("{}/health", self.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "regauth did not become healthy:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        tail(&self.dir.path().join("regauth.log"), 40)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("signing.crt")
    }

    /// The CLI against this server, with `--server` and `--admin-token`.
    pub fn cli(&self, args: &[&str]) -> Out {
        let mut all = vec!["--server", &self.url, "--admin-token", ADMIN];
        all.extend_from_slice(args);
        regauth_in(self.dir.path(), &all, &[])
    }

    /// The CLI with only `args` and `env` (for the fallback tests).
    pub fn bare_cli(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        regauth_in(self.dir.path(), args, env)
    }

    /// Creates a token through the CLI and returns its password.
    #[track_caller]
    pub fn create(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let mut args = vec!["--output", "json", "token", "create", name];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        let v = self.cli(&args).ok().json();
        (
            v["id"].as_str().expect("id").to_string(),
            v["properties"]["credentials"]["password"]
                .as_str()
                .expect("password")
                .to_string(),
        )
    }

    /// `GET /auth` as `user`: the status and, on 200, the JWT's claims.
    pub fn grant(&self, user: &str, password: &str, scopes: &[&str]) -> (u16, Value) {
        self.grant_for("registry.local", user, password, scopes)
    }

    pub fn grant_for(
        &self,
        service: &str,
        user: &str,
        password: &str,
        scopes: &[&str],
    ) -> (u16, Value) {
        let mut query = vec![("service", service)];
        query.extend(scopes.iter().map(|s| ("scope", *s)));
        let resp = http()
            .get(format!("{}/auth", self.url))
            .basic_auth(user, Some(password))
            .query(&query)
            .send()
            .expect("GET /auth");
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if status != 200 {
            return (status, body);
        }
        (status, jwt_claims(body["token"].as_str().expect("token")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// The claims of a JWT (no verification: the registry tests verify signatures).
pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

/// The actions a JWT grants on `(type, name)`.
pub fn granted(claims: &Value, kind: &str, name: &str) -> Vec<String> {
    claims["access"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == kind && a["name"] == name)
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// A background process with its log, killed (or TERMed, for dockerd) on drop.
pub struct Daemon {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
    /// SIGTERM and wait instead of SIGKILL (dockerd must stop its containerd).
    pub graceful: bool,
}

impl Daemon {
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            child,
            name,
            log,
            graceful: false,
        }
    }

    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited with {status}:\n{}",
                self.name,
                tail(&self.log, 40)
            );
        }
    }

    /// Polls `ready` until it is true; panics with the log after `timeout`.
    #[track_caller]
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} not ready after {timeout:?}:\n{}",
                self.name,
                tail(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.graceful {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's `docker-registry` serving `config` (YAML) with extra environment overrides, in
/// `dir`, on `port`. Ready once `/v2/` answers.
pub fn start_registry(dir: &Path, config: &Path, port: u16, env: &[(&str, String)]) -> Daemon {
    require_bin(REGISTRY_BIN);
    let mut cmd = Command::new(REGISTRY_BIN);
    cmd.arg("serve")
        .arg(config)
        .current_dir(dir)
        .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env(
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            dir.join("registry-storage"),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut d = Daemon::spawn("docker-registry", cmd, dir.join("registry.log"));
    let client = http();
    let url = format!("http://127.0.0.1:{port}/v2/");
    d.wait_until(Duration::from_secs(30), || client.get(&url).send().is_ok());
    d
}
