//! Public repositories: with `[[registries]] public`, docker pulls a public
//! repository without logging in; anonymous push, private pulls and the catalog are refused
//! by the registry (catalog and delete checked over plain HTTP), because the anonymous token
//! grants pull on public repositories only.

use reqwest::StatusCode;

use crate::common::{http, jwt_claims, repo, DockerClient, Regauth, Registry, Verifier, REFUSED};

on_every_verifier!(anonymous_docker_pulls_public_repositories_only);

fn anonymous_docker_pulls_public_repositories_only(verifier: Verifier) {
    let regauth = Regauth::builder()
        .registry("default", "registry.local", "localhost:5000")
        .edit(|config| {
            let registries = config["registries"].as_array_mut().expect("registries");
            registries[0]
                .as_table_mut()
                .expect("registry table")
                .insert(
                    "public".into(),
                    toml::Value::Array(vec!["library/*".into()]),
                );
        })
        .start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let host = registry.host();
    let publisher = regauth.create_token(
        "default",
        "publisher",
        &[
            repo("library/*", &["pull", "push"]),
            repo("team/*", &["pull", "push"]),
        ],
    );
    let public = format!("{host}/library/app:1");
    let private = format!("{host}/team/app:1");

    // Pushing takes a token, as always.
    let pusher = DockerClient::new();
    pusher.login_ok(&host, &publisher.name, publisher.password());
    let image = pusher.import_image();
    for remote in [&public, &private] {
        pusher.tag(&image, remote);
        pusher
            .docker(&["push", remote])
            .expect_success(&format!("docker push {remote} with the token"));
    }
    pusher.rmi(&[&public, &private, &image]);

    // Anonymous: pull of the public repository only.
    let anonymous = DockerClient::new();
    anonymous
        .docker(&["pull", &public])
        .expect_success("anonymous docker pull of a public repository");
    anonymous
        .docker(&["pull", &private])
        .expect_refused("anonymous docker pull of a private repository", REFUSED);
    let pushed_anonymously = format!("{host}/library/app:2");
    anonymous.tag(&public, &pushed_anonymously);
    anonymous
        .docker(&["push", &pushed_anonymously])
        .expect_refused("anonymous docker push to a public repository", REFUSED);
    anonymous.rmi(&[&public, &pushed_anonymously]);

    // Plain HTTP: an anonymous token for the catalog and a delete holds nothing of either,
    // and the registry refuses the catalog with it.
    let resp = http()
        .get(regauth.realm())
        .query(&[
            ("service", "registry.local"),
            ("scope", "registry:catalog:*"),
            ("scope", "repository:library/app:pull,push,delete"),
        ])
        .send()
        .expect("GET /auth");
    assert_eq!(resp.status(), StatusCode::OK);
    let jwt = resp.json::<serde_json::Value>().expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let claims = jwt_claims(&jwt);
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type": "repository", "name": "library/app", "actions": ["pull"]}]),
        "{claims}"
    );
    let (status, body) = registry.get_with_jwt("/v2/_catalog", &jwt);
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "anonymous catalog: {body}"
    );
    // The public image is there for anonymous pulls, and cannot be deleted with the same
    // token (nor a tag pushed over it: see the refused docker push above).
    let manifest = http()
        .head(format!("{}/v2/library/app/manifests/1", registry.url()))
        .bearer_auth(&jwt)
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .expect("HEAD manifest");
    assert_eq!(
        manifest.status(),
        StatusCode::OK,
        "anonymous HEAD of a public manifest"
    );
    let digest = manifest.headers()["docker-content-digest"]
        .to_str()
        .expect("digest")
        .to_owned();
    let deleted = http()
        .delete(format!(
            "{}/v2/library/app/manifests/{digest}",
            registry.url()
        ))
        .bearer_auth(&jwt)
        .send()
        .expect("DELETE manifest");
    assert_eq!(
        deleted.status(),
        StatusCode::UNAUTHORIZED,
        "anonymous delete"
    );

    // Every one of these requests is in the log, anonymous ones included, and the start-up
    // log says which repositories are public.
    let log = regauth.log();
    assert!(
        log.contains("anyone may pull these repositories without credentials")
            && log.contains("public=library/*"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("grant_type=\"anonymous\"")
            && l.contains("granted=repository:library/app:pull")),
        "{log}"
    );
}
