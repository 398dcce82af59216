//! The server under test: the real `regauth` binary with its own config file, data
//! directory and signing key in a temp dir, listening on port 0 and reporting the address it
//! bound through `--bound-address-file`. Also the regauth CLI, run against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::admin_client::{AdminCall, CreatedToken, NewToken, Reply};
use super::process::Daemon;
use super::{http, jwt_claims, run, tail, temp_dir, CmdOutput};

/// The binary under test: server and CLI alike.
pub const BIN: &str = env!("CARGO_BIN_EXE_regauth");
/// The admin token of the test servers (unless a test sets another or none).
pub const ADMIN: &str = "fixture-admin-token-0123456789";
/// Service of the registry regauth declares when the config declares none.
pub const DEFAULT_SERVICE: &str = "registry.local";

/// Clears every `REGAUTH_*` variable of the caller for `cmd` (every configuration key is
/// one, `REGAUTH_SECTION__KEY`), so the caller's shell cannot leak into a test.
pub fn clear_regauth_vars(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("REGAUTH_") {
            cmd.env_remove(name);
        }
    }
}

/// How long a start may take before it counts as hung (the machine is shared and slow).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the regauth binary (as the CLI) with `args` and exactly the REGAUTH_* variables in
/// `env`, in `cwd`.
pub fn regauth_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd);
    clear_regauth_vars(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, None, Duration::from_secs(60))
}

/// One `[[registries]]` entry.
#[derive(Clone, Debug)]
pub struct RegistryDecl {
    pub id: String,
    pub service: String,
    pub hostname: String,
}

/// Settings for a [`Regauth`]; `start()` launches it. The config starts as
/// `listen = "127.0.0.1:0"`, a data dir, key and certificate in the temp dir, and
/// `[admin] token = ADMIN`; the built-in default registry unless one is declared.
pub struct RegauthBuilder {
    dir: tempfile::TempDir,
    config: toml::Table,
    env: Vec<(String, String)>,
    signing_key_pem: Option<PathBuf>,
    unread_log: bool,
    signing_cert_pem: Option<PathBuf>,
    open_files: Option<u64>,
}

impl RegauthBuilder {
    /// Runs the server with this open-files limit, soft and hard (through `prlimit`), to see
    /// what happens when descriptors run out.
    pub fn open_files(mut self, n: u64) -> Self {
        self.open_files = Some(n);
        self
    }

    /// The temp dir the server will run in (for paths in a config given to [`Self::config`]).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Declares a registry (the first one replaces the implicit `default`).
    pub fn registry(mut self, id: &str, service: &str, hostname: &str) -> Self {
        let mut t = toml::Table::new();
        t.insert("id".into(), id.into());
        t.insert("service".into(), service.into());
        t.insert("hostname".into(), hostname.into());
        let list = self
            .config
            .entry("registries")
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        list.as_array_mut()
            .expect("registries is an array")
            .push(toml::Value::Table(t));
        self
    }

    pub fn ttl_seconds(mut self, ttl: u64) -> Self {
        self.jwt().insert("ttl_seconds".into(), (ttl as i64).into());
        self
    }

    /// No `[admin] token` in the config: regauth generates one into
    /// `<data_dir>/admin-token`, which the fixture then reads.
    pub fn without_admin_token(mut self) -> Self {
        self.config.remove("admin");
        self
    }

    /// The `[admin] token` to write into the config file.
    pub fn admin_token(mut self, token: &str) -> Self {
        let mut t = toml::Table::new();
        t.insert("token".into(), token.into());
        self.config.insert("admin".into(), toml::Value::Table(t));
        self
    }

    /// An environment variable for the server process (e.g. `REGAUTH_*`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets `[limits] key = value` in the config.
    pub fn limit(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.config
            .entry("limits")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[limits] is a table")
            .insert(key.into(), value.into());
        self
    }

    /// The server's log (stderr) goes into a pipe that nobody reads: a stalled log reader.
    /// [`Regauth::log`] is then empty.
    pub fn unread_log(mut self) -> Self {
        self.unread_log = true;
        self
    }

    /// Changes the config before it is written.
    pub fn edit(mut self, edit: impl FnOnce(&mut toml::Table)) -> Self {
        edit(&mut self.config);
        self
    }

    /// Exactly this config (paths in it may point into [`Self::dir`]).
    pub fn config(mut self, config: toml::Table) -> Self {
        self.config = config;
        self
    }

    /// Installs this PEM key as the signing key before the first start (the certificate is
    /// left for regauth to create).
    pub fn signing_key(mut self, pem: &Path) -> Self {
        self.signing_key_pem = Some(pem.to_owned());
        self
    }

    /// Installs this key and certificate (e.g. another replica's) before the first start: every
    /// replica on one PostgreSQL database must sign with the same key.
    pub fn signing_files(mut self, key: &Path, cert: &Path) -> Self {
        self.signing_key_pem = Some(key.to_owned());
        self.signing_cert_pem = Some(cert.to_owned());
        self
    }

    /// Stores tokens in PostgreSQL at `url` (`[store] url`, no TLS) instead of sled.
    pub fn postgres(self, url: &str) -> Self {
        let url = url.to_owned();
        self.edit(move |c| {
            let mut store = toml::Table::new();
            store.insert("url".into(), url.into());
            store.insert("tls".into(), "disable".into());
            c.insert("store".into(), toml::Value::Table(store));
        })
    }

    fn jwt(&mut self) -> &mut toml::Table {
        self.config
            .entry("jwt")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[jwt] is a table")
    }

    /// Writes the config and starts regauth, waiting for `/health`.
    pub fn start(self) -> Regauth {
        let mut r = self.prepare();
        r.spawn();
        r
    }

    /// Runs regauth on a config that must make it fail at start-up; returns its output (it
    /// is killed if it is still running after 20 s).
    pub fn start_expecting_failure(self) -> CmdOutput {
        let r = self.prepare();
        let out = run(r.command(), None, Duration::from_secs(20));
        drop(r);
        out
    }

    fn prepare(mut self) -> Regauth {
        // E2E_REGAUTH_BIN runs the suites against another build of the server.
        let bin = std::env::var("E2E_REGAUTH_BIN").unwrap_or_else(|_| BIN.to_owned());
        let jwt = self.jwt().clone();
        let path_of = |key: &str| PathBuf::from(jwt[key].as_str().expect("a path"));
        let (key, cert) = (path_of("key"), path_of("certificate"));
        if let Some(pem) = &self.signing_key_pem {
            std::fs::create_dir_all(key.parent().expect("key dir")).expect("mkdir for the key");
            std::fs::copy(pem, &key)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", pem.display(), key.display()));
        }
        if let Some(pem) = &self.signing_cert_pem {
            std::fs::create_dir_all(cert.parent().expect("cert dir")).expect("mkdir for the cert");
            std::fs::copy(pem, &cert)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", pem.display(), cert.display()));
        }
        let issuer = jwt
            .get("issuer")
            .and_then(|v| v.as_str())
            .unwrap_or("regauth")
            .to_owned();
        let registries = registries_of(&self.config);
        let config_path = self.dir.path().join("regauth.toml");
        write_toml(&config_path, &self.config);
        let env_value = |name: &str| {
            self.env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let admin_token = env_value("REGAUTH_ADMIN_TOKEN")
            .or_else(|| {
                self.config
                    .get("admin")
                    .and_then(|a| a.get("token"))
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let data_dir = self
            .config
            .get("data_dir")
            .and_then(|d| d.as_str())
            .map(PathBuf::from)
            .unwrap_or_else(|| self.dir.path().join("data"));
        Regauth {
            bin: bin.into(),
            config_path,
            config: self.config,
            key,
            cert,
            data_dir,
            addr: None,
            url: String::new(),
            admin_token,
            issuer,
            registries,
            env: self.env,
            unread_log: self.unread_log,
            open_files: self.open_files,
            daemon: None,
            client: http(),
            dir: self.dir,
        }
    }
}

/// The `[[registries]]` of a config, or the built-in default registry.
fn registries_of(config: &toml::Table) -> Vec<RegistryDecl> {
    match config.get("registries").and_then(|v| v.as_array()) {
        Some(list) => list
            .iter()
            .map(|r| {
                let field = |k: &str| r[k].as_str().expect("registry field").to_owned();
                RegistryDecl {
                    id: field("id"),
                    service: field("service"),
                    hostname: field("hostname"),
                }
            })
            .collect(),
        None => vec![RegistryDecl {
            id: "default".into(),
            service: DEFAULT_SERVICE.into(),
            hostname: "localhost:5000".into(),
        }],
    }
}

fn write_toml(path: &Path, config: &toml::Table) {
    std::fs::write(path, toml::to_string(config).expect("config as TOML"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A running regauth. Dropping it stops the process and removes its directory.
pub struct Regauth {
    bin: PathBuf,
    config_path: PathBuf,
    config: toml::Table,
    key: PathBuf,
    cert: PathBuf,
    data_dir: PathBuf,
    addr: Option<SocketAddr>,
    url: String,
    admin_token: String,
    issuer: String,
    registries: Vec<RegistryDecl>,
    env: Vec<(String, String)>,
    unread_log: bool,
    open_files: Option<u64>,
    daemon: Option<Daemon>,
    client: reqwest::blocking::Client,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl Regauth {
    pub fn builder() -> RegauthBuilder {
        let dir = temp_dir("rga-");
        let d = dir.path();
        let config: toml::Table = toml::from_str(&format!(
            r#"
            listen = "127.0.0.1:0"
            data_dir = {data}
            [admin]
            token = "{ADMIN}"
            [jwt]
            key = {key}
            certificate = {cert}
            "#,
            data = toml::Value::from(d.join("data").display().to_string()),
            key = toml::Value::from(d.join("certs/signing.key").display().to_string()),
            cert = toml::Value::from(d.join("certs/signing.crt").display().to_string()),
        ))
        .expect("test config");
        RegauthBuilder {
            dir,
            config,
            env: Vec::new(),
            signing_key_pem: None,
            unread_log: false,
            signing_cert_pem: None,
            open_files: None,
        }
    }

    /// regauth with the implicit `default` registry (service `registry.local`).
    pub fn start() -> Regauth {
        Self::builder().start()
    }

    fn bound_address_file(&self) -> PathBuf {
        self.dir.path().join("bound-address")
    }

    fn command(&self) -> Command {
        let mut cmd = match self.open_files {
            // prlimit execs the server: the same process, with the limit.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--bound-address-file")
            .arg(self.bound_address_file())
            .current_dir(self.dir.path());
        clear_regauth_vars(&mut cmd);
        // plain text in the log file, which failing tests print
        cmd.env("NO_COLOR", "1").env(
            "REGAUTH_LOG",
            std::env::var("E2E_REGAUTH_LOG").unwrap_or_else(|_| "info".into()),
        );
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&mut self) {
        let bound_file = self.bound_address_file();
        // a file left by the previous run must not be taken for this one's address
        let _ = std::fs::remove_file(&bound_file);
        let log = self.dir.path().join("regauth.log");
        let mut daemon = if self.unread_log {
            Daemon::spawn_with_unread_stderr("regauth", self.command(), &log)
        } else {
            Daemon::spawn("regauth", self.command(), &log)
        };
        let addr: SocketAddr = daemon.wait_until(START_TIMEOUT, || {
            std::fs::read_to_string(&bound_file)
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        self.daemon = Some(daemon);
        self.addr = Some(addr);
        self.url = format!("http://{addr}");
        self.wait_healthy();
        if self.admin_token.is_empty() {
            // generated at first start, in the data dir in use
            let data_dir = self
                .env
                .iter()
                .find(|(k, _)| k == "REGAUTH_DATA_DIR")
                .map_or_else(|| self.data_dir.clone(), |(_, v)| PathBuf::from(v));
            let path = data_dir.join("admin-token");
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
        daemon.wait_until(START_TIMEOUT, || {
            match client.get(&health).timeout(Duration::from_secs(2)).send() {
                Ok(r) if r.status() == StatusCode::OK => Some(()),
                _ => None,
            }
        });
        // the certificate must exist once the server is up: the registry needs it
        assert!(
            self.cert.is_file(),
            "regauth is up but did not create its certificate at {}\n{}",
            self.cert.display(),
            self.log_tail()
        );
    }

    /// `http://<the address regauth bound>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address regauth bound (port 0 in the config: the port the OS chose).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("regauth was started")
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

    /// The signing key's path as written in the config file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `data_dir` as written in the config file.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The config file the server was started with (`listen` has port 0).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// A copy of the config file whose `listen` is the address the server bound, so that a
    /// client reading it (the CLI's `public_url` default) reaches this server.
    pub fn client_config(&self) -> PathBuf {
        let mut config = self.config.clone();
        config.insert("listen".into(), self.addr().to_string().into());
        let path = self.dir.path().join("regauth-client.toml");
        write_toml(&path, &config);
        path
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
    /// after each line is logged, so this waits until the file has stopped growing for
    /// several batch windows (at most 5 s) before reading it.
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
        tail(&self.dir.path().join("regauth.log"), 80)
    }

    /// SIGTERM, then waits up to `timeout` for the server to exit by itself: how long it took,
    /// or `None` (it was then killed).
    pub fn terminate_within(&mut self, timeout: Duration) -> Option<Duration> {
        self.daemon.take()?.terminate_within(timeout)
    }

    /// SIGKILL the server (no graceful shutdown); the data dir is kept.
    pub fn kill9(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill9();
        }
    }

    /// Stops the server if it runs (SIGTERM), then starts it again with the same config and
    /// data dir, on a port the OS chooses anew ([`Self::url`] follows it).
    pub fn restart(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(10));
        }
        self.spawn();
    }

    /// Stops the server, applies `edit` to its config file, and starts it again on the
    /// address it had: for a peer started after it with its URL (a registry's realm) whose
    /// own address regauth's config must name (a registry's hostname). The port was bound by
    /// this server until a moment before, and is bound again at once.
    pub fn restart_with(&mut self, edit: impl FnOnce(&mut toml::Table)) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(10));
        }
        self.config
            .insert("listen".into(), self.addr().to_string().into());
        edit(&mut self.config);
        self.registries = registries_of(&self.config);
        write_toml(&self.config_path, &self.config);
        self.spawn();
    }

    // ---- the CLI ------------------------------------------------------------

    /// The CLI against this server, with `--server` and `--admin-token`.
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        let mut all = vec!["--server", &self.url, "--admin-token", &self.admin_token];
        all.extend_from_slice(args);
        regauth_in(self.dir.path(), &all, &[])
    }

    /// The CLI with only `args` and `env` (for the fallback tests), in the server's dir.
    pub fn bare_cli(&self, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
        regauth_in(self.dir.path(), args, env)
    }

    /// Creates a token through the CLI; returns its id and password.
    #[track_caller]
    pub fn create(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let mut args = vec!["--output", "json", "token", "create", name];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        // The CLI prints the API's reply.
        let token = CreatedToken::parse("default", self.cli(&args).ok().json());
        let password = token.password().to_owned();
        (token.id, password)
    }

    /// What `regauth registry-config --registry ID` prints: the `auth: token:` block a
    /// registry of that id is configured with.
    #[track_caller]
    pub fn registry_config(&self, registry_id: &str) -> String {
        self.cli(&["registry-config", "--registry", registry_id])
            .ok()
            .stdout
    }

    // ---- HTTP ---------------------------------------------------------------

    /// An admin API call (see [`AdminCall`]) with the admin token.
    pub fn call(&self, call: AdminCall) -> Reply {
        let url = format!("{}/api/v1{}", self.url, call.path);
        let mut req = self
            .client
            .request(call.method.clone(), &url)
            .bearer_auth(&self.admin_token);
        if let Some(b) = &call.body {
            req = req.json(b);
        }
        let request = format!("{} {url}", call.method);
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{request}: {e}\n{}", self.log_tail()));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
        Reply {
            request,
            status,
            headers,
            body,
        }
    }

    /// An admin API request; returns the status and the JSON body (Null when empty).
    pub fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let reply = self.call(AdminCall::new(method, path, body.cloned()));
        (reply.status, reply.value())
    }

    /// Creates an enabled token without expiry in registry `registry`.
    #[track_caller]
    pub fn create_token(&self, registry: &str, name: &str, scopes: &[Value]) -> CreatedToken {
        self.create_token_with(
            registry,
            &NewToken::named(name)
                .scopes(scopes)
                .status("enabled")
                .no_expiry(),
        )
    }

    /// Creates `token` in `registry` and expects 201 with a password.
    #[track_caller]
    pub fn create_token_with(&self, registry: &str, token: &NewToken) -> CreatedToken {
        let token = self.create_token_replied(registry, token);
        assert!(
            token.password().starts_with("rga_"),
            "created token's password should start with rga_: {}",
            token.body
        );
        token
    }

    /// Creates `token` in `registry` and expects 201, with or without a password (a
    /// federated token has none).
    #[track_caller]
    pub fn create_token_replied(&self, registry: &str, token: &NewToken) -> CreatedToken {
        self.call(AdminCall::create_token(registry, token))
            .created(registry)
    }

    /// The token `id` of `registry` (expects 200).
    #[track_caller]
    pub fn get_token(&self, registry: &str, id: &str) -> Value {
        self.call(AdminCall::get_token(registry, id)).expect_ok()
    }

    /// PATCHes a token and expects 200.
    #[track_caller]
    pub fn patch_token(&self, token: &CreatedToken, patch: Value) -> Value {
        self.call(AdminCall::patch_token(&token.registry, &token.id, patch))
            .expect_ok()
    }

    /// Sets a token's status to `disabled`.
    #[track_caller]
    pub fn disable_token(&self, token: &CreatedToken) {
        let v = self
            .call(AdminCall::disable_token(&token.registry, &token.id))
            .expect_ok();
        assert_eq!(v["properties"]["status"], "disabled", "after PATCH: {v}");
    }

    /// DELETEs a token and expects 204.
    #[track_caller]
    pub fn delete_token(&self, token: &CreatedToken) {
        self.call(AdminCall::delete_token(&token.registry, &token.id))
            .expect(StatusCode::NO_CONTENT);
    }

    /// GET /auth with Basic credentials, a service and scopes (repeated `scope` parameters),
    /// plus extra query parameters.
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

    /// `GET /auth` for the default service as `user`: the status and, on 200, the JWT's
    /// claims (else the error body).
    pub fn grant(&self, user: &str, password: &str, scopes: &[&str]) -> (u16, Value) {
        self.grant_for(DEFAULT_SERVICE, user, password, scopes)
    }

    /// [`Self::grant`] for another service.
    pub fn grant_for(
        &self,
        service: &str,
        user: &str,
        password: &str,
        scopes: &[&str],
    ) -> (u16, Value) {
        let resp = self.get_auth(user, password, service, scopes, &[]);
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if status != 200 {
            return (status, body);
        }
        (status, jwt_claims(body["token"].as_str().expect("token")))
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
