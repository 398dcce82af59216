//! The packaging, run for real: the `Dockerfile` image is built and `docker-compose.yml` and
//! `docker-compose.ha.yml` are started with Debian's docker-compose on a private dockerd, and
//! docker logs in, pushes and pulls through each stack (the HA one also with a replica
//! stopped). The base images are local stand-ins under the names the files use
//! (tests/common/images.rs); the only test-only setting is the build's network
//! (tests/compose/*.yml).
//!
//! Beside that, fast checks without containers: docker-compose.yml,
//! deploy/regauth-compose.toml, deploy/registry-compose.yml and the Dockerfile agree with each
//! other and with what `regauth registry-config` prints; and a registry configured exactly as
//! in the compose file (Debian's docker-registry 2.8) trusts regauth's tokens.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use regauth::config::Config;
use serde_json::Value;

use crate::common::compose::{ComposeStack, COMPOSE_BIN};
use crate::common::{http, images, require_bin, CmdOutput, Regauth, Registry, Verifier, REFUSED};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `REGISTRY_AUTH*` variables of docker-compose.yml (`KEY: value` lines).
fn compose_registry_env() -> BTreeMap<String, String> {
    registry_env_of("docker-compose.yml")
}

/// The `REGISTRY_AUTH*` variables of a compose file.
fn registry_env_of(file: &str) -> BTreeMap<String, String> {
    read(file)
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
    Config::load_with_env(Some(&repo("deploy/regauth-compose.toml")), Vec::new())
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
fn compose_files_parse() {
    require_bin(COMPOSE_BIN);
    for files in [
        &["docker-compose.yml"][..],
        &["docker-compose.ha.yml"],
        &["docker-compose.yml", "tests/compose/build-network.yml"],
        &[
            "docker-compose.ha.yml",
            "tests/compose/build-network.ha.yml",
        ],
    ] {
        let mut c = Command::new(COMPOSE_BIN);
        for f in files {
            c.args(["-f", f]);
        }
        let out = c
            .args(["config", "-q"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("docker-compose");
        assert!(
            out.status.success(),
            "docker-compose {files:?} config:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
        config.jwt.certificate.with_file_name("bundle.crt"),
        "the registry reads the bundle of every published key where regauth writes it, beside \
         the certificate (same volume, /certs)"
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

/// Every file the sources compile in (`include_str!`, `include_bytes!`) is in the image's
/// build context: a file that .dockerignore keeps out breaks `docker build` only.
#[test]
fn dockerignore_lets_through_every_file_the_build_includes() {
    let allowed: Vec<String> = read(".dockerignore")
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|p| p.trim_end_matches('/').to_string())
        .collect();
    let mut stack = vec![repo("src")];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_call in ["include_str!(\"", "include_bytes!(\""] {
                for (_, rest) in text
                    .match_indices(macro_call)
                    .map(|(i, _)| ((), &text[i + macro_call.len()..]))
                {
                    let rel = &rest[..rest.find('"').unwrap()];
                    let mut target = path.parent().unwrap().to_path_buf();
                    for part in Path::new(rel).components() {
                        match part {
                            std::path::Component::ParentDir => {
                                target.pop();
                            }
                            other => target.push(other),
                        }
                    }
                    let inside = target
                        .strip_prefix(repo(""))
                        .unwrap_or_else(|_| {
                            panic!("{} includes {rel}, outside the repository", path.display())
                        })
                        .to_string_lossy()
                        .into_owned();
                    assert!(
                        allowed
                            .iter()
                            .any(|a| inside == *a || inside.starts_with(&format!("{a}/"))),
                        "{} includes {inside}, which .dockerignore keeps out of the image build",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 0,
        "found no include_str!/include_bytes! under src/"
    );
}

#[test]
fn ha_compose_file_agrees_with_the_single_one_and_the_balancer() {
    // The registry trusts the same issuer and certificate, and sends clients to the same
    // realm, now served by the balancer.
    assert_eq!(
        registry_env_of("docker-compose.ha.yml"),
        compose_registry_env()
    );
    let ha = read("docker-compose.ha.yml");
    assert!(ha.contains("image: haproxy:2.6"));
    assert!(ha.contains("./deploy/haproxy-ha.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"));
    assert!(
        ha.contains("\"5001:5001\""),
        "the balancer is published as the realm's port"
    );
    assert!(ha.contains("REGAUTH_STORE_URL: postgres://regauth:regauth@postgres:5432/regauth"));
    assert!(ha.contains("POSTGRES_PASSWORD: regauth"));
    let cfg = read("deploy/haproxy-ha.cfg");
    assert!(cfg.contains("bind :5001"));
    assert!(cfg.contains("option httpchk GET /ready"));
    for replica in ["regauth-a", "regauth-b"] {
        assert!(
            ha.contains(&format!("\n  {replica}:\n")),
            "service {replica}"
        );
        assert!(cfg.contains(&format!("server {replica} {replica}:5001")));
    }
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
    // The registry trusts the bundle of every published key, beside the certificate.
    let bundle = s.cert_path().with_file_name("bundle.crt");
    assert_eq!(auth["rootcertbundle"], bundle.display().to_string());
    assert_eq!(
        env["REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE"],
        "/certs/bundle.crt"
    );

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
            *v = s
                .cert_path()
                .with_file_name("bundle.crt")
                .display()
                .to_string();
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

/// The password of a token created with `regauth -o json token create NAME --scope SCOPE` in
/// `service`'s container (the config and admin token come from the image and its volume).
fn create_token(stack: &ComposeStack, service: &str, name: &str, scope: &str) -> String {
    let out = stack.exec(
        service,
        &[
            "regauth", "-o", "json", "token", "create", name, "--scope", scope,
        ],
    );
    out.json()["properties"]["credentials"]["password"]
        .as_str()
        .unwrap_or_else(|| panic!("no password in\n{out}"))
        .to_string()
}

/// `docker login localhost:5000`, retried while the stack is still settling (the registry
/// starting, the balancer's first health checks): the login must succeed within `within`.
fn login_within(stack: &ComposeStack, user: &str, password: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let out = stack.client().login(REGISTRY, user, password);
        if out.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "docker login {REGISTRY} as {user} still fails after {within:?}:\n{out}\n{}",
            stack.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Pushes a new image as `repo`, removes it locally and pulls it back.
fn push_and_pull(stack: &ComposeStack, repo: &str) {
    let docker = stack.client();
    let image = docker.import_image();
    let remote = format!("{REGISTRY}/{repo}");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success(&format!("docker push {remote}"));
    docker.rmi(&[&remote, &image]);
    docker
        .docker(&["pull", &remote])
        .expect_success(&format!("docker pull {remote}"));
    docker.rmi(&[&remote]);
}

/// The registry as docker-compose.yml and docker-compose.ha.yml publish it on the host.
const REGISTRY: &str = "localhost:5000";

#[test]
fn compose_stack_builds_and_serves_docker_login_push_pull() {
    let stack = ComposeStack::up(
        &["docker-compose.yml", "tests/compose/build-network.yml"],
        &[images::DEBIAN, images::RUST, images::REGISTRY],
    );
    stack.wait_health("regauth", "healthy", Duration::from_secs(60));

    // The image runs as the unprivileged user the Dockerfile names.
    let id = stack.exec("regauth", &["id", "-u"]);
    assert_eq!(id.stdout.trim(), "10001");

    let password = create_token(&stack, "regauth", "ci-bot", "repository:team/*:pull,push");
    login_within(&stack, "ci-bot", &password, Duration::from_secs(60));
    push_and_pull(&stack, "team/compose:1");

    // Refusals come through the stack too: a wrong password, and a push outside the scope.
    stack
        .client()
        .login(REGISTRY, "ci-bot", "rga_not-the-password")
        .expect_refused("docker login with a wrong password", REFUSED);
    login_within(&stack, "ci-bot", &password, Duration::from_secs(5));
    let image = stack.client().import_image();
    let outside = format!("{REGISTRY}/other/compose:1");
    stack.client().tag(&image, &outside);
    stack
        .client()
        .docker(&["push", &outside])
        .expect_refused("a push outside the token's scope", REFUSED);
}

#[test]
fn ha_compose_stack_serves_logins_with_either_replica_stopped() {
    let stack = ComposeStack::up(
        &[
            "docker-compose.ha.yml",
            "tests/compose/build-network.ha.yml",
        ],
        &[
            images::DEBIAN,
            images::RUST,
            images::REGISTRY,
            images::POSTGRES,
            images::HAPROXY,
        ],
    );
    for replica in ["regauth-a", "regauth-b"] {
        stack.wait_health(replica, "healthy", Duration::from_secs(60));
    }

    // Made on A, used through the balancer (and so through either replica).
    let password = create_token(&stack, "regauth-a", "ci-bot", "repository:team/*:pull,push");
    login_within(&stack, "ci-bot", &password, Duration::from_secs(60));
    push_and_pull(&stack, "team/ha:1");
    // B sees what A wrote: both are on the one database.
    let shown = stack.exec(
        "regauth-b",
        &["regauth", "-o", "json", "token", "show", "ci-bot"],
    );
    assert_eq!(shown.json()["properties"]["name"], "ci-bot", "{shown}");

    for (stopped, running) in [("regauth-a", "regauth-b"), ("regauth-b", "regauth-a")] {
        stack
            .compose(&["stop", stopped])
            .expect_success(&format!("docker-compose stop {stopped}"));
        // Every login right after the stop succeeds: the balancer retries a failed
        // connection on the other replica, and its health check soon drops the stopped one.
        for _ in 0..4 {
            stack.client().logout(REGISTRY);
            stack
                .client()
                .login(REGISTRY, "ci-bot", &password)
                .expect_success(&format!("docker login with {stopped} stopped"));
        }
        push_and_pull(&stack, &format!("team/ha-without-{stopped}:1"));
        // The running replica still takes admin writes, and its tokens work.
        let name = format!("made-on-{running}");
        let fresh = create_token(&stack, running, &name, "repository:team/*:pull");
        stack
            .client()
            .login(REGISTRY, &name, &fresh)
            .expect_success(&format!("docker login of a token made on {running}"));
        stack
            .compose(&["start", stopped])
            .expect_success(&format!("docker-compose start {stopped}"));
        stack.wait_health(stopped, "healthy", Duration::from_secs(60));
        // The balancer re-resolves the restarted replica's address and needs two passing
        // health checks (1 s apart) before it routes to it again.
        std::thread::sleep(Duration::from_secs(5));
    }
}
