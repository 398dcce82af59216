//! A real CNCF distribution registry (Debian's `docker-registry` 2.8) whose
//! `auth.token` trusts a [`Regauth`].

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::process::Daemon;
use super::{free_port, http, require_bin, temp_dir, wait_for, Regauth};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Registry {
    port: u16,
    daemon: Option<Daemon>,
    service: String,
    client: reqwest::blocking::Client,
    dir: tempfile::TempDir,
}

impl Registry {
    /// A registry for regauth's registry `registry_id` (its service), whose
    /// realm is regauth's `/auth`.
    pub fn start(regauth: &Regauth, registry_id: &str) -> Registry {
        Self::start_with_realm(regauth, registry_id, &regauth.realm())
    }

    /// Like [`Self::start`] with another realm URL (e.g. `<url>/auth/token`).
    pub fn start_with_realm(regauth: &Regauth, registry_id: &str, realm: &str) -> Registry {
        require_bin(REGISTRY_BIN);
        let service = regauth.service_of(registry_id);
        let dir = temp_dir("rgr-");
        let port = free_port();
        let config = dir.path().join("config.yml");
        let yaml = format!(
            r#"version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
auth:
  token:
    realm: {realm}
    service: {service}
    issuer: {issuer}
    rootcertbundle: {cert}
"#,
            root = dir.path().join("storage").display(),
            issuer = regauth.issuer(),
            cert = regauth.cert_path().display(),
        );
        std::fs::write(&config, yaml).expect("write registry config");
        let mut cmd = Command::new(REGISTRY_BIN);
        cmd.arg("serve").arg(&config).current_dir(dir.path());
        let mut daemon = Daemon::spawn("docker-registry", cmd, &dir.path().join("registry.log"));

        let client = http();
        let url = format!("http://127.0.0.1:{port}/v2/");
        let challenge = wait_for(
            Duration::from_secs(30),
            || {
                daemon.assert_running();
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
            },
            || format!("registry never answered 401 on {url}\n{}", tail_of(&dir)),
        );
        assert!(
            challenge.starts_with("Bearer ")
                && challenge.contains(&format!("realm=\"{realm}\""))
                && challenge.contains(&format!("service=\"{service}\"")),
            "registry challenge should name regauth's realm and service, got: {challenge}"
        );
        Registry {
            port,
            daemon: Some(daemon),
            service,
            client,
            dir,
        }
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn log_tail(&self) -> String {
        tail_of(&self.dir)
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

fn tail_of(dir: &tempfile::TempDir) -> String {
    super::tail(&dir.path().join("registry.log"), 40)
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!("registry at {}:\n{}", self.host(), self.log_tail());
        }
    }
}
