//! Registry activity end to end: each registry started with the `notifications:` block as
//! `regauth registry-config` prints it; a token's docker push, docker pull and skopeo delete
//! show in `regauth token activity` and `regauth activity --digest` within seconds.

use std::time::Duration;

use serde_json::Value;

use crate::common::{repo, wait_for, DockerClient, Regauth, Registry, Skopeo, Verifier};

on_every_verifier!(push_pull_and_delete_show_as_the_tokens_activity);

fn actions(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| e["action"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn push_pull_and_delete_show_as_the_tokens_activity(verifier: Verifier) {
    let regauth = Regauth::start();
    let block = regauth.registry_config("default");
    assert!(block.contains("notifications:"), "{block}");
    let registry = Registry::start_on(verifier, &regauth, "default");
    let bot = regauth.create_token(
        "default",
        "ci-bot",
        &[repo("team/*", &["pull", "push", "delete"])],
    );
    let docker = DockerClient::new();
    let host = registry.host();
    docker.login_ok(&host, &bot.name, bot.password());
    let image = docker.import_image();
    let remote = format!("{host}/team/app:1");
    docker.tag(&image, &remote);
    let pushed = docker.docker(&["push", &remote]);
    pushed.expect_success("docker push");
    let digest = pushed
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in docker push's output:\n{pushed}"))
        .to_string();
    docker.rmi(&[&remote]);
    docker
        .docker(&["pull", &remote])
        .expect_success("docker pull");
    Skopeo::new()
        .delete(
            &format!("{host}/team/app@{digest}"),
            &format!("{}:{}", bot.name, bot.password()),
        )
        .expect_success("skopeo delete");

    let page = wait_for(
        Duration::from_secs(15),
        || {
            let v = regauth
                .cli(&["token", "activity", "ci-bot", "-o", "json"])
                .ok()
                .json();
            let a = actions(&v);
            ["push", "pull", "delete"]
                .iter()
                .all(|want| a.iter().any(|x| x == want))
                .then_some(v)
        },
        || {
            format!(
                "ci-bot's push, pull and delete never showed: {}\n{}",
                regauth
                    .cli(&["token", "activity", "ci-bot", "-o", "json"])
                    .stdout,
                registry.log_tail()
            )
        },
    );
    assert_eq!(page["items"][0]["action"], "delete", "newest first: {page}");
    for e in page["items"].as_array().unwrap() {
        assert_eq!(e["actor"], "ci-bot", "{e}");
        assert_eq!(e["repository"], "team/app", "{e}");
        // Only image events, no layers: the manifest's digest, or (a tag deleted with the
        // manifest, which distribution reports by tag alone) the tag.
        assert!(
            e["digest"] == digest.as_str() || (e["action"] == "delete" && e["tag"] == "1"),
            "{e}\n{page}"
        );
    }
    for action in ["push", "pull"] {
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action && e["digest"] == digest.as_str()),
            "a {action} of {digest}: {page}"
        );
    }
    // Each event once: the registry sent every envelope once here, and retries add nothing.
    let ids: std::collections::HashSet<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), page["items"].as_array().unwrap().len());

    // Who pushed this image?
    let out = regauth
        .cli(&["activity", "--digest", &digest, "--action", "push"])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("WHEN"), "{}", out.stdout);
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines[1].contains("push") && lines[1].contains("ci-bot") && lines[1].contains("team/app"),
        "{}",
        out.stdout
    );
    let v = regauth
        .cli(&[
            "activity",
            "--repository",
            "team/*",
            "--actor",
            "ci-bot",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert!(v["total"].as_u64().unwrap() >= 3, "{v}");
}

/// Two replicas on one PostgreSQL database: they share the registry's events secret (so the
/// registry may send to either), and events received by A are read on B.
#[test]
fn events_received_by_one_replica_are_read_on_the_other() {
    let cluster = crate::common::PgCluster::start();
    let url = cluster.new_database();
    let a = Regauth::builder().postgres(&url).start();
    let b = Regauth::builder()
        .postgres(&url)
        .signing_files(a.key_path(), a.cert_path())
        .start();
    let header = |r: &Regauth| {
        r.registry_config("default")
            .lines()
            .find(|l| l.contains("Authorization:"))
            .unwrap_or_else(|| panic!("no Authorization header in the notifications block"))
            .to_string()
    };
    assert_eq!(
        header(&a),
        header(&b),
        "one events secret for every replica"
    );

    let registry = Registry::start(&a, "default");
    let bot = a.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let docker = DockerClient::new();
    let host = registry.host();
    docker.login_ok(&host, &bot.name, bot.password());
    let image = docker.import_image();
    let remote = format!("{host}/team/app:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push");

    let v = wait_for(
        Duration::from_secs(15),
        || {
            let v = b
                .cli(&[
                    "activity", "--actor", "ci-bot", "--action", "push", "-o", "json",
                ])
                .ok()
                .json();
            (v["total"] == 1).then_some(v)
        },
        || format!("B never showed A's push:\n{}", registry.log_tail()),
    );
    assert_eq!(v["items"][0]["repository"], "team/app", "{v}");
}

/// regauth down while the registry reports: the registry retries, and once regauth is back
/// (on the same address) the event arrives, once.
#[test]
fn events_sent_while_regauth_is_down_arrive_after_it_restarts() {
    let mut regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let bot = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let docker = DockerClient::new();
    let host = registry.host();
    docker.login_ok(&host, &bot.name, bot.password());
    let image = docker.import_image();
    let remote = format!("{host}/team/app:1");
    docker.tag(&image, &remote);
    let pushed = docker.docker(&["push", &remote]);
    pushed.expect_success("docker push");
    let digest = pushed
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in docker push's output:\n{pushed}"))
        .to_string();
    let reply = regauth.token_for(
        &bot.name,
        bot.password(),
        registry.service(),
        &["repository:team/app:pull"],
    );
    let jwt = reply["token"].as_str().unwrap().to_string();

    regauth.terminate_within(Duration::from_secs(10));
    // A pull with the JWT issued before: the registry reports it to a regauth that is down.
    let resp = crate::common::http()
        .get(format!("{}/v2/team/app/manifests/{digest}", registry.url()))
        .bearer_auth(&jwt)
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "pull while regauth is down");
    regauth.restart_with(|_| {});

    let pulls = |r: &Regauth| {
        r.cli(&[
            "token", "activity", "ci-bot", "--action", "pull", "-o", "json",
        ])
        .ok()
        .json()
    };
    let v = wait_for(
        Duration::from_secs(40),
        || {
            let v = pulls(&regauth);
            (v["total"].as_u64() >= Some(1)).then_some(v)
        },
        || format!("the pull never arrived:\n{}", registry.log_tail()),
    );
    assert_eq!(v["total"], 1, "the pull, once: {v}");
    assert_eq!(v["items"][0]["digest"], digest.as_str(), "{v}");
}
