//! A token that is disabled or deleted stops working on the very next
//! request, for /auth and for a docker client that is already logged in.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{repo, DockerClient, Regauth, Registry, REFUSED};

/// GET /auth must answer 401 with the registry-protocol error body and a
/// Basic challenge.
#[track_caller]
fn assert_auth_refused(regauth: &Regauth, name: &str, password: &str, why: &str) {
    let resp = regauth.get_auth(
        name,
        password,
        "registry.local",
        &["repository:team/app:pull"],
        &[],
    );
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.text().unwrap_or_default();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "/auth for {why}: {body}");
    assert!(
        challenge.starts_with("Basic"),
        "/auth 401 for {why} should carry a Basic challenge, got {challenge:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/auth 401 body is not JSON ({e}): {body}"));
    assert_eq!(
        v["errors"][0]["code"], "UNAUTHORIZED",
        "/auth 401 body: {v}"
    );
}

#[test]
fn disabled_and_deleted_tokens_stop_working_at_once() {
    let regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    let remote = format!("{host}/team/app:1");
    let scopes = [repo("team/*", &["pull", "push"])];
    let to_disable = regauth.create_token("default", "to-disable", &scopes);
    let to_delete = regauth.create_token("default", "to-delete", &scopes);

    let a = DockerClient::new();
    a.login_ok(&host, &to_disable.name, to_disable.password());
    let image = a.import_image();
    a.tag(&image, &remote);
    a.docker(&["push", &remote])
        .expect_success("docker push before disabling");
    a.docker(&["pull", &remote])
        .expect_success("docker pull before disabling");

    let b = DockerClient::new();
    b.login_ok(&host, &to_delete.name, to_delete.password());
    b.docker(&["pull", &remote])
        .expect_success("docker pull before deleting");

    // disable: the next /auth and the next pull fail
    regauth.disable_token(&to_disable);
    assert_auth_refused(
        &regauth,
        &to_disable.name,
        to_disable.password(),
        "a disabled token",
    );
    a.docker(&["pull", &remote])
        .expect_refused("docker pull with a disabled token", REFUSED);
    // the other token is unaffected
    b.docker(&["pull", &remote])
        .expect_success("docker pull with another token");

    // enabling it again restores password logins
    regauth.patch_token(&to_disable, json!({"status": "enabled"}));
    let reply = regauth.token_for(
        &to_disable.name,
        to_disable.password(),
        "registry.local",
        &["repository:team/app:pull"],
    );
    assert!(reply["token"].is_string(), "{reply}");

    // delete: the same
    regauth.delete_token(&to_delete);
    assert_auth_refused(
        &regauth,
        &to_delete.name,
        to_delete.password(),
        "a deleted token",
    );
    b.docker(&["pull", &remote])
        .expect_refused("docker pull with a deleted token", REFUSED);
    b.login(&host, &to_delete.name, to_delete.password())
        .expect_refused("docker login with a deleted token", &["unauthorized"]);

    // a new token with the deleted one's name does not accept the old password
    let reborn = regauth.create_token("default", "to-delete", &scopes);
    assert_ne!(reborn.password(), to_delete.password());
    assert_auth_refused(
        &regauth,
        &to_delete.name,
        to_delete.password(),
        "the old password of a re-created name",
    );
    a.rmi(&[&remote, &image]);
}
