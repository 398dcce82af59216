//! docker login / push / pull through the daemon against a registry that
//! trusts regauth: who may log in, where a token may push, what a
//! pull-only token can do.

use crate::common::{repo, DockerClient, Regauth, Registry, Verifier, REFUSED};

on_every_verifier!(
    docker_login_accepts_the_right_password_and_refuses_wrong_ones,
    docker_push_is_allowed_inside_the_scope_pattern_only,
    a_pull_only_token_pulls_but_cannot_push
);

fn docker_login_accepts_the_right_password_and_refuses_wrong_ones(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let token = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let docker = DockerClient::new();
    let host = registry.host();

    let mut wrong = token.password().to_owned();
    wrong.push('x');
    docker
        .login(&host, &token.name, &wrong)
        .expect_refused("docker login with a wrong password", &["unauthorized"]);
    docker
        .login(&host, "no-such-token", token.password())
        .expect_refused("docker login with an unknown user", &["unauthorized"]);

    docker
        .login(&host, &token.name, token.password())
        .expect_success("docker login with the token's password");
    let config = docker.config_json();
    assert!(
        config["auths"][&host].is_object(),
        "docker login should record {host} in config.json: {config}"
    );
}

fn docker_push_is_allowed_inside_the_scope_pattern_only(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let token = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let docker = DockerClient::new();
    let host = registry.host();
    docker.login_ok(&host, &token.name, token.password());
    let image = docker.import_image();

    for path in ["team/app", "team/sub/app"] {
        let remote = format!("{host}/{path}:1");
        docker.tag(&image, &remote);
        docker
            .docker(&["push", &remote])
            .expect_success(&format!("docker push {remote} (inside team/*)"));
        // the registry really has it: list its tags with a pull JWT
        let reply = regauth.token_for(
            &token.name,
            token.password(),
            registry.service(),
            &[&format!("repository:{path}:pull")],
        );
        let tags = registry.get_json(
            &format!("/v2/{path}/tags/list"),
            reply["token"].as_str().expect("token in /auth reply"),
        );
        assert_eq!(tags["tags"], serde_json::json!(["1"]), "tags of {path}");
    }

    let outside = format!("{host}/other/app:1");
    docker.tag(&image, &outside);
    docker
        .docker(&["push", &outside])
        .expect_refused("docker push other/app with a team/* token", REFUSED);
}

fn a_pull_only_token_pulls_but_cannot_push(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let pusher = regauth.create_token("default", "pusher", &[repo("team/*", &["pull", "push"])]);
    let reader = regauth.create_token("default", "reader", &[repo("team/*", &["pull"])]);
    let host = registry.host();
    let remote = format!("{host}/team/app:1");

    let push_client = DockerClient::new();
    push_client.login_ok(&host, &pusher.name, pusher.password());
    let image = push_client.import_image();
    push_client.tag(&image, &remote);
    push_client
        .docker(&["push", &remote])
        .expect_success("docker push with the push token");
    // forget the image locally, so the pull must download it
    push_client.rmi(&[&remote, &image]);

    let pull_client = DockerClient::new();
    pull_client.login_ok(&host, &reader.name, reader.password());
    pull_client
        .docker(&["pull", &remote])
        .expect_success("docker pull with the pull-only token");
    pull_client
        .docker(&["image", "inspect", &remote])
        .expect_success("the pulled image is there");

    let other_tag = format!("{host}/team/app:2");
    pull_client.tag(&remote, &other_tag);
    pull_client
        .docker(&["push", &other_tag])
        .expect_refused("docker push with the pull-only token", REFUSED);
    pull_client.rmi(&[&remote, &other_tag]);
}

#[test]
fn docker_push_with_a_mount_source_outside_the_scope_still_succeeds() {
    // Once docker has pushed layers to one repository, a push of them to
    // another asks for repository:NEW:push,pull AND repository:OLD:pull (to
    // mount). A token without pull on OLD gets a partial grant (not an
    // error), the mount is refused and docker uploads instead.
    let regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    let all = regauth.create_token("default", "all-team", &[repo("team/*", &["pull", "push"])]);
    let only_b = regauth.create_token("default", "only-b", &[repo("team/b", &["pull", "push"])]);

    let first = DockerClient::new();
    first.login_ok(&host, &all.name, all.password());
    let image = first.import_image();
    let a = format!("{host}/team/a:1");
    let b = format!("{host}/team/b:1");
    let c = format!("{host}/team/c:1");
    first.tag(&image, &a);
    first
        .docker(&["push", &a])
        .expect_success("docker push team/a");
    // same token: the mount from team/a is allowed
    first.tag(&image, &c);
    first
        .docker(&["push", &c])
        .expect_success("docker push team/c (mount from team/a)");

    let second = DockerClient::new();
    second.login_ok(&host, &only_b.name, only_b.password());
    second.tag(&image, &b);
    second
        .docker(&["push", &b])
        .expect_success("docker push team/b with a token that cannot read team/a");

    let reply = regauth.token_for(
        &only_b.name,
        only_b.password(),
        registry.service(),
        &["repository:team/b:pull"],
    );
    let tags = registry.get_json(
        "/v2/team/b/tags/list",
        reply["token"].as_str().expect("token"),
    );
    assert_eq!(
        tags["tags"],
        serde_json::json!(["1"]),
        "team/b after the push: {tags}"
    );
    first.rmi(&[&a, &b, &c, &image]);
}
