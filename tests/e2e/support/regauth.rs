//! The regauth server under test: the real binary, its own config file, data
//! directory and signing key in a temp dir, on a free port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::process::Daemon;
use super::{free_port, http, run, temp_dir, wait_for, CmdOutput};

/// Registry service name that the default registry uses.
pub const DEFAULT_SERVICE: &str = "registry.local";

/// One `[[registries]]` entry.
#[derive(Clone, Debug)]
pub struct RegistryDecl {
    pub id: String,
    pub service: String,
    pub hostname: String,
}

/// Settings for a [`Regauth`]; `start()` launches it.
pub struct RegauthBuilder {
    registries: Vec<RegistryDecl>,
    ttl_seconds: Option<u64>,
    issuer: String,
    admin_token: Option<String>,
    env: Vec<(String, String)>,
    extra_top_level: String,
    signing_key_pem: Option<PathBuf>,
}

impl RegauthBuilder {
    /// Declares a registry (replaces the implicit `default` one).
    pub fn registry(mut self, id: &str, service: &str, hostname: &str) -> Self {
        self.registries.push(RegistryDecl {
            id: id.to_owned(),
            service: service.to_owned(),
            hostname: hostname.to_owned(),
        });
        self
    }

    pub fn ttl_seconds(mut self, ttl: u64) -> Self {
        self.ttl_seconds = Some(ttl);
        self
    }

    /// No `[admin] token` in the config: regauth generates one into
    /// `<data_dir>/admin-token`, which the fixture then reads.
    pub fn without_admin_token(mut self) -> Self {
        self.admin_token = None;
        self
    }

    /// The `[admin] token` to write into the config file.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// An environment variable for the server process (e.g. `REGAUTH_*`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Raw TOML added among the top-level keys of the config file.
    pub fn extra_config(mut self, toml: &str) -> Self {
        self.extra_top_level.push_str(toml);
        self.extra_top_level.push('\n');
        self
    }

    /// Installs this PEM key as the signing key before the first start (the
    /// certificate is left for regauth to create).
    pub fn signing_key(mut self, pem: &Path) -> Self {
        self.signing_key_pem = Some(pem.to_owned());
        self
    }

    /// Writes the config and starts regauth, waiting for `/health`.
    pub fn start(self) -> Regauth {
        let mut r = self.prepare();
        r.spawn();
        r
    }

    /// Runs regauth on a config that must make it fail at start-up; returns
    /// its output (it is killed if it is still running after 20 s).
    pub fn start_expecting_failure(self) -> CmdOutput {
        let r = self.prepare();
        let out = run(r.command(), None, Duration::from_secs(20));
        drop(r);
        out
    }

    fn prepare(self) -> Regauth {
        // E2E_REGAUTH_BIN runs the suite against another build of the server.
        let bin = std::env::var("E2E_REGAUTH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_regauth").to_owned());
        let dir = temp_dir("rga-");
        let port = free_port();
        let listen_env = self
            .env
            .iter()
            .find(|(k, _)| k == "REGAUTH_LISTEN")
            .map(|(_, v)| v.clone());
        // where the process really listens: REGAUTH_LISTEN wins over the file
        let url = format!(
            "http://{}",
            listen_env.unwrap_or_else(|| format!("127.0.0.1:{port}"))
        );
        let registries = if self.registries.is_empty() {
            vec![RegistryDecl {
                id: "default".into(),
                service: DEFAULT_SERVICE.into(),
                hostname: "localhost:5000".into(),
            }]
        } else {
            self.registries
        };
        let root = dir.path();
        let config = root.join("regauth.toml");
        let key = root.join("certs/signing.key");
        let cert = root.join("certs/signing.crt");
        let data = root.join("data");
        if let Some(pem) = &self.signing_key_pem {
            std::fs::create_dir_all(root.join("certs")).expect("mkdir certs");
            std::fs::copy(pem, &key)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", pem.display(), key.display()));
        }
        let mut toml = String::new();
        toml += &format!("listen = {}\n", q(&format!("127.0.0.1:{port}")));
        toml += &format!("public_url = {}\n", q(&format!("http://127.0.0.1:{port}")));
        toml += &format!("data_dir = {}\n", q_path(&data));
        toml += &self.extra_top_level;
        if let Some(token) = &self.admin_token {
            toml += "\n[admin]\n";
            toml += &format!("token = {}\n", q(token));
        }
        toml += "\n[jwt]\n";
        toml += &format!("issuer = {}\n", q(&self.issuer));
        if let Some(ttl) = self.ttl_seconds {
            toml += &format!("ttl_seconds = {ttl}\n");
        }
        toml += &format!("key = {}\n", q_path(&key));
        toml += &format!("certificate = {}\n", q_path(&cert));
        for r in &registries {
            toml += "\n[[registries]]\n";
            toml += &format!("id = {}\n", q(&r.id));
            toml += &format!("service = {}\n", q(&r.service));
            toml += &format!("hostname = {}\n", q(&r.hostname));
        }
        std::fs::write(&config, toml).expect("write regauth.toml");
        let env_admin = self
            .env
            .iter()
            .find(|(k, _)| k == "REGAUTH_ADMIN_TOKEN")
            .map(|(_, v)| v.clone());

        Regauth {
            bin: bin.into(),
            config,
            cert,
            url,
            admin_token: env_admin.or(self.admin_token).unwrap_or_default(),
            issuer: self.issuer,
            registries,
            env: self.env,
            daemon: None,
            client: http(),
            dir,
        }
    }
}

fn q(s: &str) -> String {
    // A TOML basic string; test values never hold control characters.
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn q_path(p: &Path) -> String {
    q(&p.to_string_lossy())
}

/// A running regauth. Dropping it kills the process and removes its directory.
pub struct Regauth {
    bin: PathBuf,
    config: PathBuf,
    cert: PathBuf,
    url: String,
    admin_token: String,
    issuer: String,
    registries: Vec<RegistryDecl>,
    env: Vec<(String, String)>,
    daemon: Option<Daemon>,
    client: reqwest::blocking::Client,
    // Last: dropped after the process is gone.
    dir: tempfile::TempDir,
}

/// A token as returned by the create call (the only time the password is shown).
#[derive(Clone, Debug)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    pub password: String,
    pub registry: String,
    pub body: Value,
}

impl Regauth {
    pub fn builder() -> RegauthBuilder {
        RegauthBuilder {
            registries: Vec::new(),
            ttl_seconds: None,
            issuer: "regauth".into(),
            admin_token: Some(format!("e2e-admin-{}", super::unique("t"))),
            env: Vec::new(),
            extra_top_level: String::new(),
            signing_key_pem: None,
        }
    }

    /// regauth with the implicit `default` registry (service `registry.local`).
    pub fn start() -> Regauth {
        Self::builder().start()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .env_remove("REGAUTH_LISTEN")
            .env_remove("REGAUTH_DATA_DIR")
            .env_remove("REGAUTH_PUBLIC_URL")
            .env_remove("REGAUTH_ADMIN_TOKEN")
            // plain text in the log file, which failing tests print
            .env("NO_COLOR", "1")
            .env(
                "REGAUTH_LOG",
                std::env::var("E2E_REGAUTH_LOG").unwrap_or_else(|_| "info".into()),
            );
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&mut self) {
        let log = self.dir.path().join("regauth.log");
        self.daemon = Some(Daemon::spawn("regauth", self.command(), &log));
        self.wait_healthy();
        if self.admin_token.is_empty() {
            // generated at first start
            let path = self.data_dir().join("admin-token");
            let token = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "no admin token configured, and {} is unreadable: {e}\n{}",
                    path.display(),
                    self.log_tail()
                )
            });
            self.admin_token = token.trim().to_owned();
        }
    }

    fn wait_healthy(&mut self) {
        let health = format!("{}/health", self.url);
        let client = self.client.clone();
        let daemon = self.daemon.as_mut().expect("started");
        wait_for(
            Duration::from_secs(60),
            || {
                daemon.assert_running();
                match client.get(&health).timeout(Duration::from_secs(2)).send() {
                    Ok(r) if r.status() == StatusCode::OK => Some(()),
                    _ => None,
                }
            },
            || format!("regauth never answered 200 on {health}"),
        );
        // the certificate must exist once the server is up: the registry needs it
        assert!(
            self.cert.is_file(),
            "regauth is up but did not create its certificate at {}\n{}",
            self.cert.display(),
            self.log_tail()
        );
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token endpoint (the registry's `realm`).
    pub fn realm(&self) -> String {
        format!("{}/auth", self.url)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// PEM certificate of the signing key (the registry's `rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `data_dir` as written in the config file.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The signing key's path as written in the config file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("certs/signing.key")
    }

    pub fn registries(&self) -> &[RegistryDecl] {
        &self.registries
    }

    /// The service of registry `id`.
    pub fn service_of(&self, id: &str) -> String {
        self.registries
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no registry {id} declared"))
            .service
            .clone()
    }

    /// The whole log so far. regauth writes its log in batches, at most a few milliseconds
    /// after each line is logged (`logging::writer::BATCH_WINDOW`), so this waits until the
    /// file has stopped growing for several batch windows (at most 5 s) before reading it.
    pub fn log(&self) -> String {
        let path = self.dir.path().join("regauth.log");
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = size();
        let mut stable_since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let now = size();
            if now != last {
                last = now;
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= Duration::from_millis(50) {
                break;
            }
        }
        std::fs::read_to_string(&path).unwrap_or_default()
    }

    /// Decision events (`token decision` lines) of the log for one token name.
    pub fn decisions_for(&self, name: &str) -> Vec<String> {
        let log = self.log();
        let needle = format!("token={name} ");
        log.lines()
            .filter(|l| l.contains("token decision") && l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    pub fn log_tail(&self) -> String {
        super::tail(&self.dir.path().join("regauth.log"), 80)
    }

    /// SIGKILL the server (no graceful shutdown); data dir and port are kept.
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill9();
        }
    }

    /// Stops the server if it runs (SIGTERM), then starts it again on the same
    /// port, config and data dir.
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(10));
        }
        self.spawn();
    }

    // ---- HTTP helpers ---------------------------------------------------

    /// An admin API request; returns the status and the JSON body (Null when empty).
    pub fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let url = format!("{}/api/v1{path}", self.url);
        let mut req = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", self.log_tail()));
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Creates an enabled token without expiry in registry `registry`.
    #[track_caller]
    pub fn create_token(&self, registry: &str, name: &str, scopes: &[Value]) -> CreatedToken {
        self.create_token_with(
            registry,
            json!({"properties": {
                "name": name,
                "scopes": scopes,
                "status": "enabled",
                "expiryDate": null,
            }}),
        )
    }

    /// POSTs `body` to the token collection and expects 201.
    #[track_caller]
    pub fn create_token_with(&self, registry: &str, body: Value) -> CreatedToken {
        let (status, v) = self.admin(
            Method::POST,
            &format!("/registries/{registry}/tokens"),
            Some(&body),
        );
        assert_eq!(
            status,
            StatusCode::CREATED,
            "create token {body}: unexpected reply {v}\n{}",
            self.log_tail()
        );
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let password = v["properties"]["credentials"]["password"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!id.is_empty(), "created token has no id: {v}");
        assert!(
            password.starts_with("rga_"),
            "created token's password should start with rga_: {v}"
        );
        CreatedToken {
            id,
            name: v["properties"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            password,
            registry: registry.to_owned(),
            body: v,
        }
    }

    /// PATCHes a token and expects 200.
    #[track_caller]
    pub fn patch_token(&self, token: &CreatedToken, patch: Value) -> Value {
        let (status, v) = self.admin(
            Method::PATCH,
            &format!("/registries/{}/tokens/{}", token.registry, token.id),
            Some(&patch),
        );
        assert_eq!(
            status,
            StatusCode::OK,
            "patch {patch} of token {}: unexpected reply {v}",
            token.name
        );
        v
    }

    /// Sets a token's status to `disabled`.
    #[track_caller]
    pub fn disable_token(&self, token: &CreatedToken) {
        let v = self.patch_token(token, json!({"status": "disabled"}));
        assert_eq!(v["properties"]["status"], "disabled", "after PATCH: {v}");
    }

    /// DELETEs a token and expects 204.
    #[track_caller]
    pub fn delete_token(&self, token: &CreatedToken) {
        let (status, v) = self.admin(
            Method::DELETE,
            &format!("/registries/{}/tokens/{}", token.registry, token.id),
            None,
        );
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "delete token {}: unexpected reply {v}",
            token.name
        );
    }

    /// GET /auth with Basic credentials, a service and scopes (repeated
    /// `scope` parameters), plus extra query parameters.
    pub fn get_auth(
        &self,
        user: &str,
        password: &str,
        service: &str,
        scopes: &[&str],
        extra: &[(&str, &str)],
    ) -> Response {
        let mut query: Vec<(&str, &str)> = vec![("service", service)];
        for s in scopes {
            query.push(("scope", s));
        }
        query.extend_from_slice(extra);
        self.client
            .get(self.realm())
            .query(&query)
            .basic_auth(user, Some(password))
            .send()
            .unwrap_or_else(|e| panic!("GET /auth: {e}\n{}", self.log_tail()))
    }

    /// GET /auth that must succeed; returns the JSON reply.
    #[track_caller]
    pub fn token_for(&self, user: &str, password: &str, service: &str, scopes: &[&str]) -> Value {
        let resp = self.get_auth(user, password, service, scopes, &[]);
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::OK,
            "GET /auth as {user} for {scopes:?}: {body}\n{}",
            self.log_tail()
        );
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/auth reply is not JSON ({e}): {body}"))
    }

    /// POST /auth with a form body given as ordered pairs (keys may repeat).
    pub fn post_auth(&self, form: &[(&str, &str)]) -> Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        self.client
            .post(self.realm())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("POST /auth: {e}\n{}", self.log_tail()))
    }
}

impl Drop for Regauth {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!(
                "regauth at {} ({}):\n{}",
                self.url,
                self.dir.path().display(),
                self.log_tail()
            );
        }
    }
}
