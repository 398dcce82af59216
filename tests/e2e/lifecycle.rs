//! Issue 12 with the real docker CLI: a push loop keeps working across a password rotation
//! with a grace period, the old password works until the grace period ends and then stops,
//! and a token's last use changes after a `docker pull` and survives a restart.
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{repo, AdminCall, CreatedToken, DockerClient, Regauth, Registry, REFUSED};

fn token_json(regauth: &Regauth, token: &CreatedToken) -> Value {
    regauth.get_token(&token.registry, &token.id)
}

#[test]
fn a_docker_push_loop_keeps_working_across_a_rotation_with_a_grace_period() {
    let regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let token = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let docker = DockerClient::new();
    let host = registry.host();
    docker.login_ok(&host, &token.name, token.password());
    let image = docker.import_image();
    const GRACE: u64 = 6;

    let mut rotated: Option<(String, Instant)> = None;
    for i in 0..6 {
        let remote = format!("{host}/team/app:{i}");
        docker.tag(&image, &remote);
        docker
            .docker(&["push", &remote])
            .expect_success(&format!("docker push {remote} (round {i})"));
        if i == 1 {
            let v = regauth
                .call(AdminCall::rotate_password(
                    &token.registry,
                    &token.id,
                    Some(json!({"gracePeriodSeconds": GRACE})),
                ))
                .expect_ok();
            assert!(
                v["properties"]["previousPasswordExpiryDate"].is_string(),
                "{v}"
            );
            let new = v["properties"]["credentials"]["password"]
                .as_str()
                .expect("new password")
                .to_string();
            rotated = Some((new, Instant::now()));
        }
        if i == 2 {
            // Within the grace period both passwords log in.
            docker
                .login(&host, &token.name, token.password())
                .expect_success("docker login with the old password during the grace period");
        }
        if i == 3 {
            let (new, _) = rotated.as_ref().expect("rotated");
            docker
                .login(&host, &token.name, new)
                .expect_success("docker login with the new password");
        }
    }

    let (new, at) = rotated.expect("rotated");
    let over = at + Duration::from_secs(GRACE + 1);
    std::thread::sleep(over.saturating_duration_since(Instant::now()));
    docker
        .login(&host, &token.name, token.password())
        .expect_refused(
            "docker login with the old password after the grace period",
            REFUSED,
        );
    docker.login_ok(&host, &token.name, &new);
    let remote = format!("{host}/team/app:after");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push with the new password after the grace period");
    let v = token_json(&regauth, &token);
    assert!(
        v["properties"].get("previousPasswordExpiryDate").is_none(),
        "{v}"
    );
}

#[test]
fn last_used_changes_after_a_docker_pull_and_survives_a_restart() {
    let mut regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let token = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let v = token_json(&regauth, &token);
    assert!(
        v["metadata"].get("lastUsedDate").is_none(),
        "never used: {v}"
    );

    let docker = DockerClient::new();
    let host = registry.host();
    docker.login_ok(&host, &token.name, token.password());
    let image = docker.import_image();
    let remote = format!("{host}/team/app:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push");
    let after_push = token_json(&regauth, &token)["metadata"].clone();
    let pushed_at = after_push["lastUsedDate"]
        .as_str()
        .unwrap_or_else(|| panic!("no lastUsedDate after a push: {after_push}"))
        .to_string();

    // The API shows whole seconds: let one pass.
    std::thread::sleep(Duration::from_millis(1100));
    docker.rmi(&[&remote]);
    docker
        .docker(&["pull", &remote])
        .expect_success("docker pull");
    let after_pull = token_json(&regauth, &token)["metadata"].clone();
    let pulled_at = after_pull["lastUsedDate"].as_str().expect("lastUsedDate");
    assert!(
        pulled_at > pushed_at.as_str(),
        "{pulled_at} after {pushed_at}"
    );
    assert_eq!(after_pull["lastUsedFrom"], "127.0.0.1", "{after_pull}");
    assert!(after_pull["lastUsedGrantType"].is_string(), "{after_pull}");

    // SIGTERM writes what was noted; the restarted server reads it from the store.
    regauth.restart();
    let restarted = token_json(&regauth, &token)["metadata"].clone();
    assert_eq!(
        restarted["lastUsedDate"], after_pull["lastUsedDate"],
        "{restarted}"
    );
    assert_eq!(restarted["lastUsedFrom"], after_pull["lastUsedFrom"]);
    assert_eq!(
        restarted["lastUsedGrantType"],
        after_pull["lastUsedGrantType"]
    );
}
