//! docker-compose.yml, deploy/regauth-compose.toml, deploy/registry-compose.yml and the
//! Dockerfile agree with each other and with what `regauth registry-config` prints; and a
//! registry configured exactly as in the compose file (Debian's docker-registry 2.8, the same
//! distribution code as the `registry:2` image) trusts regauth's tokens.
//!
//! No container runs here (no images can be pulled): the files are checked as text, the
//! compose file is parsed by `docker-compose config`, and the services' binaries run directly
//! with the compose settings, paths substituted where compose mounts volumes.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use regauth::config::Config;
use serde_json::Value;

use crate::common::{http, require_bin, CmdOutput, Regauth, Registry, Verifier};

const COMPOSE_BIN: &str = "/usr/bin/docker-compose";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `REGISTRY_AUTH*` variables of docker-compose.yml (`KEY: value` lines).
fn compose_registry_env() -> BTreeMap<String, String> {
    read("docker-compose.yml")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("REGISTRY_AUTH"))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect()
}

/// `ENV` values of the Dockerfile's runtime stage (`KEY=value` words).
fn dockerfile_env() -> BTreeMap<String, String> {
    let text = read("Dockerfile");
    let runtime = text.rsplit("\nFROM ").next().expect("a FROM");
    runtime
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| k.starts_with("REGAUTH_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// deploy/regauth-compose.toml as regauth reads it (no environment applied).
fn compose_config() -> Config {
    Config::load_with_env(Some(&repo("deploy/regauth-compose.toml")), |_| None)
        .expect("deploy/regauth-compose.toml")
}

/// regauth with deploy/regauth-compose.toml, only the listen address, data dir and key paths
/// moved into a temp dir (in compose those are the container's port and volumes).
fn compose_regauth() -> Regauth {
    let builder = Regauth::builder();
    let mut c: toml::Table =
        toml::from_str(&read("deploy/regauth-compose.toml")).expect("compose toml");
    let d = builder.dir();
    c.insert("listen".into(), "127.0.0.1:0".into());
    c.insert(
        "data_dir".into(),
        d.join("data").display().to_string().into(),
    );
    let jwt = c
        .get_mut("jwt")
        .and_then(toml::Value::as_table_mut)
        .expect("[jwt]");
    jwt.insert(
        "key".into(),
        d.join("signing.key").display().to_string().into(),
    );
    jwt.insert(
        "certificate".into(),
        d.join("signing.crt").display().to_string().into(),
    );
    builder.config(c).start()
}

#[test]
fn compose_file_parses() {
    require_bin(COMPOSE_BIN);
    let out = Command::new(COMPOSE_BIN)
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_files_agree_with_each_other() {
    let env = compose_registry_env();
    let config = compose_config();
    let reg = &config.registries[0];
    assert_eq!(env["REGISTRY_AUTH"], "token");
    assert_eq!(env["REGISTRY_AUTH_TOKEN_REALM"], config.realm());
    assert_eq!(env["REGISTRY_AUTH_TOKEN_SERVICE"], reg.service);
    assert_eq!(env["REGISTRY_AUTH_TOKEN_ISSUER"], config.jwt.issuer);
    assert_eq!(
        Path::new(&env["REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE"]),
        config.jwt.certificate,
        "the registry reads the certificate where regauth writes it (same volume, /certs)"
    );
    assert!(config.jwt.certificate.starts_with("/certs"));
    assert!(
        !config.jwt.key.starts_with("/certs"),
        "the private key stays out of the volume the registry mounts"
    );

    // Ports: the host reaches regauth at public_url and the registry at its hostname.
    let compose = read("docker-compose.yml");
    let public_port = config.public_url.rsplit(':').next().unwrap();
    assert_eq!(public_port, config.listen.port().to_string());
    assert!(compose.contains(&format!("\"{public_port}:{}\"", config.listen.port())));
    let registry_port = reg.hostname.rsplit(':').next().unwrap();
    assert!(compose.contains(&format!("\"{registry_port}:5000\"")));
    assert!(read("deploy/registry-compose.yml").contains("addr: :5000"));
    assert!(compose.contains("./deploy/registry-compose.yml:/etc/docker/registry/config.yml:ro"));
    assert!(compose.contains("condition: service_healthy"));
    assert!(compose.contains(&format!(
        "test: [\"CMD\", \"regauth\", \"health\", \"--server\", \"http://127.0.0.1:{}\"]",
        config.listen.port()
    )));

    // The image's environment matches the file it bakes in.
    let docker = dockerfile_env();
    assert_eq!(docker["REGAUTH_CONFIG"], "/etc/regauth/regauth.toml");
    assert_eq!(docker["REGAUTH_LISTEN"], config.listen.to_string());
    assert_eq!(Path::new(&docker["REGAUTH_DATA_DIR"]), config.data_dir);
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("COPY deploy/regauth-compose.toml /etc/regauth/regauth.toml"));
    assert!(dockerfile.contains("VOLUME [\"/data\", \"/certs\"]"));
    assert!(read(".dockerignore").contains("!deploy/regauth-compose.toml"));
}

#[test]
fn compose_registry_settings_equal_registry_config() {
    let env = compose_registry_env();
    let s = compose_regauth();
    let config = s.config_path().to_str().unwrap().to_string();
    // Admin token from <data_dir>/admin-token, as `docker compose exec regauth regauth ...`
    // finds it in the container.
    let v = s
        .bare_cli(
            &[
                "--config",
                &config,
                "--server",
                s.url(),
                "-o",
                "json",
                "registry-config",
            ],
            &[],
        )
        .ok()
        .json();
    let auth = &v["properties"]["tokenAuth"];
    assert_eq!(auth["realm"], env["REGISTRY_AUTH_TOKEN_REALM"].as_str());
    assert_eq!(auth["service"], env["REGISTRY_AUTH_TOKEN_SERVICE"].as_str());
    assert_eq!(auth["issuer"], env["REGISTRY_AUTH_TOKEN_ISSUER"].as_str());
    assert_eq!(auth["rootcertbundle"], s.cert_path().display().to_string());

    let yaml = s
        .bare_cli(
            &["--config", &config, "--server", s.url(), "registry-config"],
            &[],
        )
        .ok()
        .stdout;
    for (key, var) in [
        ("realm", "REGISTRY_AUTH_TOKEN_REALM"),
        ("service", "REGISTRY_AUTH_TOKEN_SERVICE"),
        ("issuer", "REGISTRY_AUTH_TOKEN_ISSUER"),
    ] {
        let line = format!("\n    {key}: {}\n", env[var]);
        assert!(yaml.contains(&line), "{line:?} in\n{yaml}");
    }
}

#[test]
fn registry_configured_as_in_compose_trusts_regauth() {
    let env = compose_registry_env();
    let s = compose_regauth();
    let config = s.config_path().to_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", config.as_str(), "--server", s.url()];
        all.extend_from_slice(args);
        s.bare_cli(&all, &[]).ok()
    };
    let password = |out: CmdOutput| -> String {
        out.json()["properties"]["credentials"]["password"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pusher = password(cli(&[
        "-o",
        "json",
        "token",
        "create",
        "pusher",
        "-s",
        "repository:team/*:pull,push",
    ]));
    let puller = password(cli(&[
        "-o",
        "json",
        "token",
        "create",
        "puller",
        "-s",
        "repository:team/*:pull",
    ]));

    let mut vars: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    // In compose the certificate volume is mounted at the same path regauth writes it to;
    // here the registry reads regauth's temp file.
    for (k, v) in &mut vars {
        if *k == "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE" {
            *v = s.cert_path().display().to_string();
        }
    }
    let registry =
        Registry::start_file(Verifier::V2_8, &repo("deploy/registry-compose.yml"), &vars);
    let client = http();
    let base = registry.url();

    // The challenge sends clients to the compose realm.
    let resp = client.get(format!("{base}/v2/")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            env["REGISTRY_AUTH_TOKEN_REALM"], env["REGISTRY_AUTH_TOKEN_SERVICE"]
        )
    );

    // Tokens regauth signs with the compose settings are accepted, and honoured.
    let service = &env["REGISTRY_AUTH_TOKEN_SERVICE"];
    let token = |user: &str, password: &str| -> String {
        let v: Value = client
            .get(format!("{}/auth", s.url()))
            .basic_auth(user, Some(password))
            .query(&[
                ("service", service.as_str()),
                ("scope", "repository:team/app:pull,push"),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["token"].as_str().expect("token").to_string()
    };
    let upload = |jwt: &str| {
        client
            .post(format!("{base}/v2/team/app/blobs/uploads/"))
            .bearer_auth(jwt)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        upload(&token("pusher", &pusher)),
        202,
        "a push scope may upload"
    );
    assert_eq!(
        upload(&token("puller", &puller)),
        401,
        "a pull-only scope may not"
    );
    let resp = client
        .get(format!("{base}/v2/team/app/tags/list"))
        .bearer_auth(token("puller", &puller))
        .send()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "authorised to pull; the repository is empty"
    );
}
