//! Running the server: what it creates at first start, what survives a
//! restart, environment overrides, config errors, and an RSA signing key
//! that the real registry accepts.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use base64::Engine as _;
use reqwest::{Method, StatusCode};

use crate::common::{oci, repo, temp_dir, Regauth, Registry, Skopeo};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn first_start_creates_an_admin_token_and_a_key_that_a_restart_keeps() {
    let mut regauth = Regauth::builder().without_admin_token().start();
    let token_file = regauth.data_dir().join("admin-token");
    assert_eq!(
        mode(&token_file),
        0o600,
        "{} must be private",
        token_file.display()
    );
    assert_eq!(
        mode(regauth.key_path()),
        0o600,
        "the signing key must be private"
    );
    let admin = regauth.admin_token().to_owned();
    assert!(
        admin.len() >= 32,
        "a generated admin token should be long: {admin:?}"
    );
    let (status, v) = regauth.admin(Method::GET, "/registries", None);
    assert_eq!(
        status,
        StatusCode::OK,
        "admin API with the generated token: {v}"
    );
    assert_eq!(v["items"][0]["id"], "default", "{v}");
    let (status, v) = regauth.admin(Method::GET, "/registries/default", None);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["properties"]["service"], "registry.local", "{v}");

    let cert = std::fs::read(regauth.cert_path()).expect("read certificate");
    let key = std::fs::read(regauth.key_path()).expect("read key");
    regauth.restart();
    assert_eq!(
        std::fs::read_to_string(&token_file)
            .expect("admin-token")
            .trim(),
        admin,
        "a restart must keep the generated admin token"
    );
    assert_eq!(
        std::fs::read(regauth.key_path()).expect("key"),
        key,
        "a restart must keep the key"
    );
    assert_eq!(
        std::fs::read(regauth.cert_path()).expect("cert"),
        cert,
        "a restart must keep the certificate (the registry's rootcertbundle)"
    );
    let (status, v) = regauth.admin(Method::GET, "/registries", None);
    assert_eq!(status, StatusCode::OK, "admin API after the restart: {v}");
}

#[test]
fn environment_variables_override_the_config_file() {
    let elsewhere = temp_dir("rgd-");
    let data = elsewhere.path().join("env-data");
    // The file says 127.0.0.1:0; the environment another loopback address, also port 0.
    let public_url = "https://regauth-from-the-environment.example";
    let regauth = Regauth::builder()
        .admin_token("admin-token-from-the-file")
        .env("REGAUTH_LISTEN", "127.0.0.2:0")
        .env("REGAUTH_PUBLIC_URL", public_url)
        .env("REGAUTH_ADMIN_TOKEN", "admin-token-from-the-environment")
        .env("REGAUTH_DATA_DIR", &data.to_string_lossy())
        .start();
    // regauth bound REGAUTH_LISTEN's address, and the fixture got /health there
    assert_eq!(regauth.addr().ip().to_string(), "127.0.0.2");
    // REGAUTH_PUBLIC_URL is the realm registries are told
    let (status, v) = regauth.admin(Method::GET, "/registries/default", None);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["properties"]["tokenAuth"]["realm"],
        format!("{public_url}/auth"),
        "{v}"
    );
    let token = regauth.create_token("default", "env-bot", &[repo("team/*", &["pull"])]);
    assert!(
        data.is_dir(),
        "REGAUTH_DATA_DIR={} should be the data directory",
        data.display()
    );
    assert!(
        !regauth.data_dir().exists(),
        "the config file's data_dir must not be used when REGAUTH_DATA_DIR is set"
    );
    let reply = regauth.token_for(&token.name, token.password(), "registry.local", &[]);
    assert!(reply["token"].is_string(), "{reply}");

    // the admin token of the file no longer works, only the environment's
    let resp = crate::common::http()
        .get(format!("{}/api/v1/registries", regauth.url()))
        .bearer_auth("admin-token-from-the-file")
        .send()
        .expect("GET /api/v1/registries");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn an_unknown_config_key_stops_the_start_and_is_named() {
    let out = Regauth::builder()
        .edit(|c| {
            c.insert("colour".into(), "blue".into());
        })
        .start_expecting_failure();
    assert!(
        !out.timed_out,
        "regauth kept running with an unknown config key:\n{out}"
    );
    assert!(
        !out.success(),
        "regauth accepted an unknown config key:\n{out}"
    );
    assert!(
        out.text_lower().contains("colour"),
        "the error should name the unknown key `colour`:\n{out}"
    );
}

#[test]
fn an_rsa_signing_key_gives_rs256_tokens_that_the_registry_accepts() {
    let key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rs256.key");
    let regauth = Regauth::builder().signing_key(&key).start();
    // the registry asks at /auth/token, the other path of the token endpoint
    let registry = Registry::start_with_realm(
        &regauth,
        "default",
        &format!("{}/auth/token", regauth.url()),
    );
    let pusher = regauth.create_token("default", "pusher", &[repo("team/*", &["pull", "push"])]);

    let reply = regauth.token_for(
        &pusher.name,
        pusher.password(),
        registry.service(),
        &["repository:team/app:pull"],
    );
    let jwt = reply["token"].as_str().expect("token");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap_or_default())
            .expect("JWT header is base64url"),
    )
    .expect("JWT header is JSON");
    assert_eq!(
        header["alg"], "RS256",
        "JWT header with an RSA key: {header}"
    );

    let skopeo = Skopeo::new();
    let src = oci::image_layout(skopeo.dir(), "rs256 test\n");
    let creds = format!("{}:{}", pusher.name, pusher.password());
    skopeo
        .copy_to(
            &src,
            None,
            &format!("{}/team/app:1", registry.host()),
            &creds,
        )
        .expect_success("skopeo push with RS256 tokens and realm /auth/token");
    skopeo
        .inspect(&format!("{}/team/app:1", registry.host()), &creds)
        .expect_success("skopeo inspect with RS256 tokens");
}
