//! Refresh tokens and the POST grants: docker keeps an identity token after
//! login and then asks with POST grant_type=refresh_token; containerd's ctr
//! uses POST grant_type=password; containers/image repeats `scope` fields in
//! its POST refresh grant.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{
    access, granted, jwt_claims, repo, DockerClient, Regauth, Registry, Verifier, REFUSED,
};

on_every_verifier!(
    docker_login_keeps_an_identity_token_that_push_and_pull_use,
    ctr_pushes_and_pulls_with_user_and_password
);

/// Issue 10: disabling a token ends its `docker login` sessions for good. Enabling it again
/// does not bring the old identity token back to life; a fresh login works.
#[test]
fn disabling_a_token_ends_its_docker_logins_for_good() {
    let regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    let token = regauth.create_token("default", "laptop", &[repo("team/*", &["pull", "push"])]);

    let docker = DockerClient::new();
    docker.login_ok(&host, &token.name, token.password());
    let old_identity = docker.config_json()["auths"][&host]["identitytoken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !old_identity.is_empty(),
        "docker login keeps an identity token"
    );
    let image = docker.import_image();
    let remote = format!("{host}/team/session:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push with the identity token");
    docker.rmi(&[&remote]);

    regauth.disable_token(&token);
    regauth.patch_token(&token, serde_json::json!({"status": "enabled"}));
    docker.docker(&["pull", &remote]).expect_refused(
        "docker pull with an identity token from before a disable, after enabling again",
        REFUSED,
    );
    // The operator sees why and whose: the refresh token was revoked (its grant is gone, but
    // the refresh token names its token's id, which finds the token).
    let log = regauth.log();
    assert!(
        log.lines().any(|l| l.contains("token decision")
            && l.contains("grant_type=\"refresh_token\"")
            && l.contains("outcome=\"denied\"")
            && l.contains("token=laptop ")
            && l.contains("reason=\"refresh token revoked or unknown\"")),
        "regauth's log should say the identity token was revoked: {}",
        regauth.log_tail()
    );

    docker.login_ok(&host, &token.name, token.password());
    let new_identity = docker.config_json()["auths"][&host]["identitytoken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!new_identity.is_empty() && new_identity != old_identity);
    docker
        .docker(&["pull", &remote])
        .expect_success("docker pull after a fresh login");
    docker.rmi(&[&remote, &image]);
}

fn docker_login_keeps_an_identity_token_that_push_and_pull_use(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let host = registry.host();
    let scopes = [repo("team/*", &["pull", "push"])];
    let token = regauth.create_token("default", "ci-bot", &scopes);
    let doomed = regauth.create_token("default", "doomed", &scopes);

    let docker = DockerClient::new();
    docker.login_ok(&host, &token.name, token.password());
    let config = docker.config_json();
    let entry = &config["auths"][&host];
    assert!(
        entry["identitytoken"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "docker login should store regauth's refresh token as identitytoken: {config}"
    );
    if let Some(auth) = entry["auth"].as_str() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&decoded),
            format!("{}:", token.name),
            "with an identity token docker must not keep the password: {config}"
        );
    }
    assert!(
        !config.to_string().contains(token.password()),
        "the password must not be in config.json: {config}"
    );

    // push and pull now go through POST grant_type=refresh_token
    let image = docker.import_image();
    let remote = format!("{host}/team/app:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push with an identity token");
    docker.rmi(&[&remote, &image]);
    docker
        .docker(&["pull", &remote])
        .expect_success("docker pull with an identity token");
    // What made those work: POST refresh grants, seen in regauth's decision log.
    let decisions = regauth.decisions_for(&token.name);
    assert!(
        decisions.iter().any(|l| l.contains("grant_type=\"basic\"")),
        "docker login uses GET with Basic credentials: {decisions:#?}"
    );
    assert!(
        decisions
            .iter()
            .any(|l| l.contains("grant_type=\"refresh_token\"")
                && l.contains("outcome=\"issued\"")
                && l.contains("repository:team/app:pull,push")),
        "docker push with an identity token must use POST grant_type=refresh_token: {decisions:#?}"
    );
    let outside = format!("{host}/other/app:1");
    docker.tag(&remote, &outside);
    docker.docker(&["push", &outside]).expect_refused(
        "docker push outside the scope with an identity token",
        REFUSED,
    );

    // a second client whose token gets deleted
    let other = DockerClient::new();
    other.login_ok(&host, &doomed.name, doomed.password());
    other
        .docker(&["pull", &remote])
        .expect_success("docker pull with the second identity token");

    regauth.disable_token(&token);
    docker.docker(&["pull", &remote]).expect_refused(
        "docker pull with the identity token of a disabled token",
        REFUSED,
    );

    regauth.delete_token(&doomed);
    other.docker(&["pull", &remote]).expect_refused(
        "docker pull with the identity token of a deleted token",
        REFUSED,
    );
    docker.rmi(&[&remote, &outside]);

    // Every grant type went through regauth above; none of the secrets reached its log.
    let identity = entry["identitytoken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let log = regauth.log();
    assert!(
        log.contains("token decision"),
        "the log should hold the decisions"
    );
    for (what, secret) in [
        ("password", token.password()),
        ("password", doomed.password()),
        ("refresh token", identity.as_str()),
        ("admin token", regauth.admin_token()),
    ] {
        assert!(!secret.is_empty());
        assert!(!log.contains(secret), "a {what} appears in regauth's log");
    }
}

fn ctr_pushes_and_pulls_with_user_and_password(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let host = registry.host();
    let pusher = regauth.create_token("default", "pusher", &[repo("team/*", &["pull", "push"])]);
    let reader = regauth.create_token("default", "reader", &[repo("team/*", &["pull"])]);
    let creds = |t: &crate::common::CreatedToken| format!("{}:{}", t.name, t.password());

    let docker = DockerClient::new();
    let dockerd = docker.dockerd();
    let (image, ns, local) = docker.image_in_containerd();
    let remote = format!("{host}/team/ctr:1");

    dockerd
        .ctr(
            &ns,
            &[
                "images",
                "push",
                "--plain-http",
                "--user",
                &creds(&pusher),
                &remote,
                &local,
            ],
        )
        .expect_success("ctr push with the push token");
    let decisions = regauth.decisions_for(&pusher.name);
    assert!(
        decisions
            .iter()
            .any(|l| l.contains("grant_type=\"password\"") && l.contains("outcome=\"issued\"")),
        "containerd must get its token with POST grant_type=password: {decisions:#?}"
    );
    dockerd
        .ctr(
            &ns,
            &[
                "images",
                "push",
                "--plain-http",
                "--user",
                &creds(&reader),
                &format!("{host}/team/ctr:2"),
                &local,
            ],
        )
        // ctr usually reports "insufficient_scope", but when the registry
        // answers 401 before reading the manifest body it may say only
        // "read/write on closed pipe": check the outcome in the registry.
        .expect_failure("ctr push with the pull-only token");
    let reply = regauth.token_for(
        &reader.name,
        reader.password(),
        registry.service(),
        &["repository:team/ctr:pull"],
    );
    let tags = registry.get_json(
        "/v2/team/ctr/tags/list",
        reply["token"].as_str().expect("token"),
    );
    assert_eq!(
        tags["tags"],
        serde_json::json!(["1"]),
        "only the push token's tag may exist: {tags}"
    );
    dockerd
        .ctr(
            &ns,
            &[
                "images",
                "pull",
                "--plain-http",
                "--user",
                &creds(&reader),
                &remote,
            ],
        )
        .expect_success("ctr pull with the pull-only token");
    dockerd
        .ctr(
            &ns,
            &[
                "images",
                "pull",
                "--plain-http",
                "--user",
                &format!("{}:rga_wrong", reader.name),
                &remote,
            ],
        )
        .expect_refused("ctr pull with a wrong password", &["401", "unauthorized"]);
    docker.rmi(&[&image]);
}

/// Status and JSON body (a JSON string holding the text when it is not JSON).
fn json_of(resp: reqwest::blocking::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

#[test]
fn refresh_and_password_grants_over_post() {
    let regauth = Regauth::builder()
        .registry("default", "registry.local", "localhost:5000")
        .registry("staging", "registry.staging", "localhost:5002")
        .start();
    let registry = Registry::start(&regauth, "default");
    let service = registry.service().to_owned();
    let token = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);

    // docker login's GET: no scope, offline_token=true -> a refresh token
    let (status, login) = json_of(regauth.get_auth(
        &token.name,
        token.password(),
        &service,
        &[],
        &[
            ("account", &token.name),
            ("client_id", "docker"),
            ("offline_token", "true"),
        ],
    ));
    assert_eq!(
        status,
        StatusCode::OK,
        "GET /auth offline_token=true: {login}"
    );
    let refresh = login["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("offline_token=true must return a refresh_token: {login}"))
        .to_owned();
    assert!(!refresh.is_empty());
    assert!(
        !refresh.contains(token.password()),
        "the refresh token must not be the password"
    );

    // containers/image: POST refresh grant with REPEATED scope fields
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", &service),
        ("client_id", "containers/image"),
        ("scope", "repository:team/a:pull"),
        ("scope", "repository:team/b:push,pull"),
    ]));
    assert_eq!(status, StatusCode::OK, "POST refresh grant: {v}");
    let jwt = v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token: {v}"));
    assert_eq!(
        v["token"].as_str(),
        Some(jwt),
        "token and access_token must be identical: {v}"
    );
    assert!(
        v["expires_in"].as_i64().is_some_and(|e| e >= 60),
        "expires_in: {v}"
    );
    assert!(v["issued_at"].is_string(), "issued_at: {v}");
    if let Some(r) = v["refresh_token"].as_str() {
        assert_eq!(r, refresh, "a refresh grant returns the same refresh token");
    }
    let claims = jwt_claims(jwt);
    assert_eq!(
        granted(&claims),
        vec![
            access("repository", "team/a", &["pull"]),
            access("repository", "team/b", &["pull", "push"]),
        ],
        "claims: {claims}"
    );
    assert_eq!(claims["sub"], token.name.as_str(), "{claims}");
    assert_eq!(claims["aud"], service.as_str(), "{claims}");
    assert_eq!(claims["iss"], "regauth", "{claims}");
    // the registry accepts it: pull access to a repository that does not exist yet -> 404
    let (status, body) = registry.get_with_jwt("/v2/team/a/tags/list", jwt);
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "registry with a refreshed JWT: {body}\n{}",
        registry.log_tail()
    );

    // docker: POST refresh grant with space-separated scopes; access outside the token is dropped
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", &service),
        ("client_id", "docker"),
        ("scope", "repository:team/a:pull repository:other/x:pull"),
    ]));
    assert_eq!(
        status,
        StatusCode::OK,
        "POST refresh (space-separated scopes): {v}"
    );
    let claims = jwt_claims(v["access_token"].as_str().expect("access_token"));
    assert_eq!(
        granted(&claims),
        vec![access("repository", "team/a", &["pull"])],
        "{claims}"
    );

    // containerd: POST password grant, asking for offline access
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "password"),
        ("username", &token.name),
        ("password", token.password()),
        ("service", &service),
        ("client_id", "containerd-client"),
        ("access_type", "offline"),
        ("scope", "repository:team/c:pull,push"),
        ("scope", "repository:team/c:push,pull"),
    ]));
    assert_eq!(status, StatusCode::OK, "POST password grant: {v}");
    let claims = jwt_claims(v["access_token"].as_str().expect("access_token"));
    assert_eq!(
        granted(&claims),
        vec![access("repository", "team/c", &["pull", "push"])],
        "{claims}"
    );
    assert!(
        v["refresh_token"].as_str().is_some_and(|r| !r.is_empty()),
        "access_type=offline must return a refresh_token: {v}"
    );

    // refused: wrong password, unknown refresh token, refresh token of another service
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "password"),
        ("username", &token.name),
        ("password", "rga_wrong"),
        ("service", &service),
        ("client_id", "containerd-client"),
    ]));
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "POST password grant, wrong password: {v}"
    );
    assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED", "{v}");
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "not-a-refresh-token"),
        ("service", &service),
        ("client_id", "docker"),
    ]));
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "POST refresh grant with garbage: {v}"
    );
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "registry.staging"),
        ("client_id", "docker"),
        ("scope", "repository:team/a:pull"),
    ]));
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a refresh token is bound to its service; for another one: {v}"
    );

    // the refresh token dies with its token
    regauth.disable_token(&token);
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", &service),
        ("client_id", "containers/image"),
        ("scope", "repository:team/a:pull"),
    ]));
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "refresh grant of a disabled token: {v}"
    );
    regauth.delete_token(&token);
    let (status, v) = json_of(regauth.post_auth(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", &service),
        ("client_id", "containers/image"),
    ]));
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "refresh grant of a deleted token: {v}"
    );
}
