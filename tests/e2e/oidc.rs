//! Keyless CI (issue 18): federated tokens whose password is a CI job's OIDC ID token, against
//! a real OpenID Connect issuer (oidc-provider over HTTPS with a CA of the tests, trusted by
//! regauth through `[federation] ca_file`; `tests/common/oidc.rs`).
//!
//! docker logs in with an ID token and pushes only under the path `${repository}` names; a
//! 20-second ID token does not stop a push through the login's session, which ends after
//! `sessionSeconds`; skopeo and containerd push with a temporary password from the RFC 8693
//! exchange; a disable ends the sessions and the temporary passwords; every verification rule
//! refuses its own forged or near-miss token, and the check endpoint names it; rotation at the
//! issuer is fetched once, a flood of unknown kids at most once a minute; two replicas on
//! PostgreSQL, with the issuer down: the warm one goes on, the cold one answers 503.
//!
//! The scenarios that only mint tokens share one issuer ([`OidcIssuer::shared`]) and the
//! tests' dockerd; those that rotate, count or stop an issuer start one of their own.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::oidc::{
    alg_none, check, create_federated, exchange, exchange_ok, federation, github_claims,
    gitlab_claims, hs256_with_public_key, resign, trusting, Alg, ForeignKey, IdTokenRequest,
    OidcIssuer,
};
use crate::common::regauth::RegauthBuilder;
use crate::common::{
    granted, jwt_header, oci, repo, CreatedToken, DockerClient, PgCluster, Regauth, Registry,
    Skopeo, REFUSED,
};

/// The audience the CI jobs ask their issuer for.
const AUD: &str = "https://registry.example.test";
/// The GitHub organisation `acme`'s owner id, pinned by every GitHub federation here.
const ACME: u64 = 1_234_567;
const MAIN: &str = "refs/heads/main";

/// A regauth that trusts `issuers`, never throttles and logs every denial on its own line (the
/// tests refuse many tokens on purpose and read why; the throttle has tests of its own).
fn regauth_trusting(issuers: &[(&OidcIssuer, &str)]) -> RegauthBuilder {
    trusting(
        Regauth::builder()
            .limit("auth_failures", 0)
            .limit("name_failures", 0)
            .limit("denial_log_lines", 10_000),
        issuers,
    )
}

/// Acme's `main` branch, any repository of the organisation.
fn acme_main(issuer: &OidcIssuer) -> Value {
    federation(
        issuer,
        AUD,
        json!({"repository_owner_id": ACME.to_string(), "ref": MAIN}),
    )
}

/// An ID token of a push to `main` of `repository` (an acme repository).
fn acme_job(repository: &str) -> IdTokenRequest {
    IdTokenRequest::new(AUD, github_claims(repository, 4242, ACME, MAIN))
}

/// `GET /auth` status with the ID token (or any password) as `token`'s password.
fn status_of(regauth: &Regauth, token: &CreatedToken, password: &str) -> u16 {
    regauth.grant(&token.name, password, &[]).0
}

#[test]
fn the_test_issuer_mints_verifiable_github_and_gitlab_shaped_tokens_and_rotates_its_keys() {
    let issuer = OidcIssuer::start("fixture");
    let rs = issuer.mint(&acme_job("acme/app").lifetime(20).not_before(-5));
    let es = issuer.mint(
        &IdTokenRequest::new("gitlab-aud", gitlab_claims("grp/proj", 77, 88, "main"))
            .alg(Alg::Es256)
            .issued(-30),
    );
    let jwks = issuer.jwks();
    for (token, alg) in [(&rs, "RS256"), (&es, "ES256")] {
        let header = jwt_header(token);
        assert_eq!(header["alg"], alg, "{header}");
        let kid = header["kid"].as_str().expect("kid");
        let jwk = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid)
            .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS {jwks}"));
        verify_with_jwk(token, jwk);
    }

    let claims = crate::common::jwt_claims(&rs);
    assert_eq!(claims["iss"], issuer.url());
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["repository_owner_id"], ACME.to_string());
    assert_eq!(claims["sub"], "repo:acme/app:ref:refs/heads/main");
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(claims["exp"].as_i64().expect("exp") - iat, 20, "{claims}");
    assert_eq!(claims["nbf"].as_i64().expect("nbf"), iat - 5, "{claims}");
    let claims = crate::common::jwt_claims(&es);
    assert_eq!(claims["project_id"], "77");
    assert_eq!(claims["namespace_id"], "88");
    assert_eq!(claims["aud"], "gitlab-aud");
    let now = chrono::Utc::now().timestamp();
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(
        (now - 35..=now - 25).contains(&iat),
        "iat 30 s ago: {claims}"
    );
    assert_eq!(claims["exp"].as_i64().expect("exp") - iat, 300, "{claims}");

    let old_kid = jwt_header(&rs)["kid"].clone();
    let kids = issuer.rotate();
    assert_eq!(kids.len(), 4, "two new keys, two old ones: {kids:?}");
    let rotated = issuer.mint(&acme_job("acme/app"));
    assert_eq!(
        jwt_header(&rotated)["kid"],
        kids[0],
        "the new RS256 key signs"
    );
    assert_ne!(jwt_header(&rotated)["kid"], old_kid);
    let jwks = issuer.jwks();
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kids[0])
        .expect("the new key is published");
    verify_with_jwk(&rotated, jwk);

    // The forgeries keep the claims and change what they claim to be.
    let foreign = ForeignKey::generate("foreign");
    let forged = resign(&rs, &foreign, json!({"jku": "https://example.test/jwks"}));
    assert_eq!(jwt_header(&forged)["jku"], "https://example.test/jwks");
    verify_with_jwk(&forged, &foreign.jwk());
    assert_eq!(
        crate::common::jwt_claims(&forged),
        crate::common::jwt_claims(&rs)
    );
    assert!(alg_none(&rs).ends_with('.'), "alg none has no signature");
    let kid = old_kid.as_str().expect("kid");
    let hs = hs256_with_public_key(&rs, &issuer.public_key_pem(kid));
    assert_eq!(jwt_header(&hs)["alg"], "HS256");
}

/// Verifies `token`'s RS256 or ES256 signature with a public JWK (ring).
fn verify_with_jwk(token: &str, jwk: &Value) {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.as_str().expect("base64url member"))
            .expect("base64url")
    };
    let (input, sig) = token.rsplit_once('.').expect("a JWT");
    let sig = b64(&Value::String(sig.to_owned()));
    let ok = match jwk["kty"].as_str() {
        Some("RSA") => ring::signature::RsaPublicKeyComponents {
            n: b64(&jwk["n"]),
            e: b64(&jwk["e"]),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &sig,
        )
        .is_ok(),
        Some("EC") => {
            let mut point = vec![4u8];
            point.extend(b64(&jwk["x"]));
            point.extend(b64(&jwk["y"]));
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(input.as_bytes(), &sig)
            .is_ok()
        }
        other => panic!("unexpected key type {other:?} in {jwk}"),
    };
    assert!(ok, "the signature of {token} does not verify with {jwk}");
}

#[test]
fn docker_logs_in_with_an_id_token_and_each_repository_pushes_only_under_its_own_path() {
    let issuer = OidcIssuer::shared();
    let regauth = regauth_trusting(&[(&issuer, "github")]).start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    // One token for the whole organisation; `${repository}` confines each repository.
    let token = create_federated(
        &regauth,
        "default",
        "acme-ci",
        &[repo("ci/${repository}/*", &["pull", "push"])],
        acme_main(&issuer),
    );
    // GitHub keeps the case of repository names; the path is lowercased.
    let app1 = issuer.mint(&acme_job("acme/App1"));
    let app2 = issuer.mint(&acme_job("acme/app2"));

    let (status, claims) = regauth.grant(
        &token.name,
        &app1,
        &[
            "repository:ci/acme/app1/img:pull,push",
            "repository:ci/acme/app2/img:pull,push",
        ],
    );
    assert_eq!(status, 200, "GET /auth with app1's ID token: {claims}");
    assert_eq!(
        granted(&claims),
        vec![crate::common::access(
            "repository",
            "ci/acme/app1/img",
            &["pull", "push"]
        )],
        "app1's ID token grants app1's path only"
    );

    let docker1 = DockerClient::new();
    docker1.login_ok(&host, &token.name, &app1);
    let image = docker1.import_image();
    let mine = format!("{host}/ci/acme/app1/img:1");
    docker1.tag(&image, &mine);
    docker1
        .docker(&["push", &mine])
        .expect_success("docker push of app1's image with app1's ID token");
    for outside in [
        format!("{host}/ci/acme/app2/img:1"),
        format!("{host}/other/img:1"),
    ] {
        docker1.tag(&image, &outside);
        docker1.docker(&["push", &outside]).expect_refused(
            &format!("docker push {outside} with app1's ID token"),
            REFUSED,
        );
    }

    let docker2 = DockerClient::new();
    docker2.login_ok(&host, &token.name, &app2);
    let theirs = format!("{host}/ci/acme/app2/img:1");
    docker2.tag(&image, &theirs);
    docker2
        .docker(&["push", &theirs])
        .expect_success("docker push of app2's image with app2's ID token");

    // A job of another branch cannot log in.
    let dev = issuer.mint(&acme_job("acme/app1").claim("ref", json!("refs/heads/dev")));
    DockerClient::new()
        .login(&host, &token.name, &dev)
        .expect_refused("docker login with a dev-branch ID token", &["unauthorized"]);
    docker1.rmi(&[&image, &mine]);
}

#[test]
fn an_expired_id_token_does_not_stop_a_push_through_the_session_which_ends_after_session_seconds() {
    const SESSION: u64 = 60;
    let issuer = OidcIssuer::shared();
    let regauth = regauth_trusting(&[(&issuer, "github")]).start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    let mut fed = acme_main(&issuer);
    fed["sessionSeconds"] = json!(SESSION);
    let token = create_federated(
        &regauth,
        "default",
        "acme-session",
        &[repo("acme/*", &["pull", "push"])],
        fed,
    );
    // A 20-second ID token issued 50 s ago: with the 60 s of leeway it is good for 30 s more.
    let id_token = issuer.mint(&acme_job("acme/app").lifetime(20).issued(-50));
    let minted = Instant::now();

    let docker = DockerClient::new();
    docker.login_ok(&host, &token.name, &id_token);
    let logged_in = Instant::now();
    let image = docker.import_image();
    let remote = format!("{host}/acme/app:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push while the ID token is valid");

    sleep_until(minted + Duration::from_secs(32));
    let (status, body) = regauth.grant(&token.name, &id_token, &[]);
    assert_eq!(status, 401, "the ID token has expired: {body}");
    assert!(
        logged_in.elapsed() < Duration::from_secs(SESSION - 10),
        "the machine is too slow for this test's timeline"
    );
    let second = format!("{host}/acme/app:2");
    docker.tag(&image, &second);
    docker
        .docker(&["push", &second])
        .expect_success("docker push through the session after the ID token expired");

    sleep_until(logged_in + Duration::from_secs(SESSION + 2));
    let third = format!("{host}/acme/app:3");
    docker.tag(&image, &third);
    docker
        .docker(&["push", &third])
        .expect_refused("docker push after sessionSeconds", REFUSED);
    docker.rmi(&[&image, &remote, &second, &third]);
}

fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

#[test]
fn skopeo_and_containerd_push_with_an_exchanged_password_and_a_disable_ends_it_and_the_sessions() {
    let issuer = OidcIssuer::shared();
    let regauth = regauth_trusting(&[(&issuer, "github")]).start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    let service = registry.service().to_owned();
    let mut fed = acme_main(&issuer);
    fed["sessionSeconds"] = json!(900);
    let token = create_federated(
        &regauth,
        "default",
        "acme-tools",
        &[repo("acme/*", &["pull", "push"])],
        fed,
    );
    let id_token = issuer.mint(&acme_job("acme/tools"));

    let (password, expires_in) = exchange_ok(&regauth, &token.name, &service, &id_token);
    assert!(
        (1..=900).contains(&expires_in),
        "expires_in within sessionSeconds: {expires_in}"
    );
    assert_ne!(password, id_token);
    let creds = format!("{}:{password}", token.name);

    let skopeo = Skopeo::new();
    let src = oci::image_layout(skopeo.dir(), "keyless skopeo\n");
    skopeo
        .copy_to(&src, None, &format!("{host}/acme/skopeo:1"), &creds)
        .expect_success("skopeo copy with the exchanged password");
    skopeo
        .inspect(&format!("{host}/acme/skopeo:1"), &creds)
        .expect_success("skopeo inspect with the exchanged password");
    skopeo
        .copy_to(&src, None, &format!("{host}/other/skopeo:1"), &creds)
        .expect_refused("skopeo copy outside the scopes", REFUSED);

    let docker = DockerClient::new();
    let dockerd = docker.dockerd();
    let (image, ns, local) = docker.image_in_containerd();
    let ctr_remote = format!("{host}/acme/ctr:1");
    dockerd
        .ctr(
            &ns,
            &[
                "images",
                "push",
                "--plain-http",
                "--user",
                &creds,
                &ctr_remote,
                &local,
            ],
        )
        .expect_success("ctr push with the exchanged password");
    dockerd
        .ctr(
            &ns,
            &[
                "images",
                "pull",
                "--plain-http",
                "--user",
                &creds,
                &ctr_remote,
            ],
        )
        .expect_success("ctr pull with the exchanged password");

    // A docker login's session beside the temporary password; then the token is disabled.
    docker.login_ok(&host, &token.name, &id_token);
    let remote = format!("{host}/acme/docker:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push through the session");
    regauth.disable_token(&token);

    assert_eq!(
        status_of(&regauth, &token, &password),
        401,
        "temporary password after the disable"
    );
    skopeo
        .inspect(&format!("{host}/acme/skopeo:1"), &creds)
        .expect_refused("skopeo inspect after the disable", REFUSED);
    let later = format!("{host}/acme/docker:2");
    docker.tag(&image, &later);
    docker
        .docker(&["push", &later])
        .expect_refused("docker push through the session after the disable", REFUSED);
    let resp = exchange(&regauth, &token.name, &service, &id_token);
    assert!(
        resp.status().is_client_error(),
        "no exchange for a disabled token: {}",
        resp.status()
    );
    docker.rmi(&[&image, &remote, &later]);
}

/// One near-miss or forged ID token, what the log and the check endpoint must say about it.
struct Case {
    what: &'static str,
    token: String,
    /// In the refusal's log line (the reason label or its words).
    log: &'static [&'static str],
    /// In one of the check endpoint's failures.
    failure: &'static [&'static str],
}

#[test]
fn every_verification_rule_refuses_its_case_the_log_says_why_and_the_check_endpoint_explains_it() {
    let issuer = OidcIssuer::shared();
    let gitlab = OidcIssuer::start("gitlab");
    let regauth = regauth_trusting(&[(&issuer, "github"), (&gitlab, "gitlab")]).start();
    let token = create_federated(
        &regauth,
        "default",
        "acme-rules",
        &[repo("acme/*", &["pull"])],
        acme_main(&issuer),
    );
    let good = issuer.mint(&acme_job("acme/app"));
    assert_eq!(
        status_of(&regauth, &token, &good),
        200,
        "{}",
        regauth.log_tail()
    );
    let (status, diagnosis) = check(&regauth, &token, &good);
    assert_eq!(status, StatusCode::OK, "{diagnosis}");
    assert_eq!(diagnosis["valid"], true, "{diagnosis}");
    assert_eq!(diagnosis["failures"], json!([]), "{diagnosis}");
    assert_eq!(diagnosis["claims"]["repository"], "acme/app", "{diagnosis}");

    let es_kid = jwt_header(&issuer.mint(&acme_job("acme/app").alg(Alg::Es256)))["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let rs_kid = jwt_header(&good)["kid"].as_str().expect("kid").to_owned();
    let attacker = ForeignKey::generate("attacker-key");
    let jku = issuer.serve_at_jku(&json!({"keys": [attacker.jwk()]}));
    let jku_before = issuer.stats().jku;

    let cases = vec![
        Case {
            what: "the wrong audience",
            token: issuer.mint(&IdTokenRequest::new(
                "https://other.example.test",
                github_claims("acme/app", 4242, ACME, MAIN),
            )),
            log: &["audience"],
            failure: &["audience"],
        },
        Case {
            what: "the wrong issuer (another trusted issuer's token)",
            token: gitlab.mint(&acme_job("acme/app")),
            log: &["issuer"],
            failure: &["issuer"],
        },
        Case {
            what: "a claim that does not match",
            token: issuer.mint(&acme_job("acme/app").claim("ref", json!("refs/heads/dev"))),
            log: &["ref", "refs/heads/dev", "refs/heads/main"],
            failure: &[r#"claim ref: "refs/heads/dev" does not match "refs/heads/main""#],
        },
        Case {
            what: "a missing pinned claim",
            token: issuer.mint(&acme_job("acme/app").claim("repository_owner_id", Value::Null)),
            log: &["repository_owner_id"],
            failure: &["claim repository_owner_id: missing"],
        },
        Case {
            what: "an expired ID token",
            token: issuer.mint(&acme_job("acme/app").issued(-400)),
            log: &["expired"],
            failure: &["expired"],
        },
        Case {
            what: "nbf in the future",
            token: issuer.mint(&acme_job("acme/app").not_before(600).lifetime(900)),
            log: &["not_yet_valid"],
            failure: &["not yet valid"],
        },
        Case {
            what: "iat in the future",
            token: issuer.mint(&acme_job("acme/app").issued(600)),
            log: &["issued_in_future"],
            failure: &["future"],
        },
        Case {
            what: "a lifetime longer than maxIdTokenLifetimeSeconds",
            token: issuer.mint(&acme_job("acme/app").lifetime(7200)),
            log: &["lifetime_too_long"],
            failure: &["lifetime"],
        },
        Case {
            what: "alg none",
            token: alg_none(&good),
            log: &["unsupported_algorithm"],
            failure: &["none"],
        },
        Case {
            what: "HS256 signed with the issuer's public key",
            token: hs256_with_public_key(&good, &issuer.public_key_pem(&rs_kid)),
            log: &["unsupported_algorithm"],
            failure: &["HS256"],
        },
        Case {
            what: "an unknown kid",
            token: resign(&good, &ForeignKey::generate("no-such-kid"), json!({})),
            log: &["unknown_key", "no-such-kid"],
            failure: &["no-such-kid"],
        },
        Case {
            what: "a key from another issuer under the issuer's kid",
            token: resign(&good, &ForeignKey::generate(&es_kid), json!({})),
            log: &["bad_signature"],
            failure: &["signature"],
        },
        Case {
            what: "a jku header pointing elsewhere",
            token: resign(&good, &attacker, json!({ "jku": jku })),
            log: &["unknown_key", "attacker-key"],
            failure: &["attacker-key"],
        },
    ];

    for case in &cases {
        let (status, body) = regauth.grant(&token.name, &case.token, &["repository:acme/app:pull"]);
        assert_eq!(status, 401, "{}: GET /auth answered {body}", case.what);
        let resp = regauth.post_auth(&[
            ("grant_type", "password"),
            ("username", &token.name),
            ("password", &case.token),
            ("service", "registry.local"),
            ("client_id", "e2e"),
        ]);
        assert_eq!(resp.status(), 401, "{}: the POST password grant", case.what);

        let (status, diagnosis) = check(&regauth, &token, &case.token);
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: check answered {diagnosis}",
            case.what
        );
        assert_eq!(diagnosis["valid"], false, "{}: {diagnosis}", case.what);
        let failures = diagnosis["failures"]
            .as_array()
            .expect("failures")
            .iter()
            .map(|f| f.as_str().expect("a failure is a string").to_lowercase())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in case.failure {
            assert!(
                failures.contains(&needle.to_lowercase()),
                "{}: the check's failures should mention {needle:?}: {diagnosis}",
                case.what
            );
        }
    }

    let log = regauth.log();
    assert!(
        !log.contains(&good) && !cases.iter().any(|c| log.contains(&c.token)),
        "an ID token was logged"
    );
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("acme-rules")).collect();
    for case in &cases {
        for needle in case.log {
            assert!(
                refusals.iter().any(|l| l.contains(needle)),
                "{}: no log line for acme-rules mentions {needle:?}:\n{}",
                case.what,
                refusals.join("\n")
            );
        }
    }
    assert_eq!(
        issuer.stats().jku,
        jku_before,
        "regauth fetched the URL of a jku header"
    );

    // A GitLab-shaped token on a GitLab issuer, ES256.
    let gl = create_federated(
        &regauth,
        "default",
        "grp-ci",
        &[repo("grp/*", &["pull"])],
        federation(
            &gitlab,
            AUD,
            json!({"namespace_id": "88", "ref_protected": "true"}),
        ),
    );
    let job = |namespace_id: u64| {
        gitlab.mint(
            &IdTokenRequest::new(AUD, gitlab_claims("grp/proj", 77, namespace_id, "main"))
                .alg(Alg::Es256),
        )
    };
    assert_eq!(
        status_of(&regauth, &gl, &job(88)),
        200,
        "{}",
        regauth.log_tail()
    );
    assert_eq!(status_of(&regauth, &gl, &job(89)), 401, "another namespace");
    // The GitHub issuer's token is not the GitLab federation's.
    assert_eq!(status_of(&regauth, &gl, &good), 401);
}

#[test]
fn key_rotation_is_fetched_once_and_a_flood_of_unknown_kids_fetches_at_most_once_a_minute() {
    // An unknown kid refetches the JWKS at most once a minute per issuer; the cold fetch does
    // not count toward that minute. Both replicas warm up, then straight away one is flooded
    // (one refetch for 40 kids) and the other sees the issuer's new keys (one refetch).
    let issuer = OidcIssuer::start("rotating");
    let start = |name: &str| {
        let regauth = regauth_trusting(&[(&issuer, "github")]).start();
        let token = create_federated(
            &regauth,
            "default",
            name,
            &[repo("acme/*", &["pull"])],
            acme_main(&issuer),
        );
        (regauth, token)
    };
    let (rotated, rotated_token) = start("acme-rotation");
    let (flooded, flooded_token) = start("acme-flood");
    let good = issuer.mint(&acme_job("acme/app"));
    let before = issuer.stats();
    for (regauth, token) in [(&rotated, &rotated_token), (&flooded, &flooded_token)] {
        assert_eq!(
            status_of(regauth, token, &good),
            200,
            "{}",
            regauth.log_tail()
        );
    }
    let warm = issuer.stats();
    assert_eq!(warm.jwks, before.jwks + 2, "one fetch per replica");
    let es = issuer.mint(&acme_job("acme/app").alg(Alg::Es256));
    assert_eq!(status_of(&rotated, &rotated_token, &es), 200);
    assert_eq!(issuer.stats(), warm, "no fetch with a warm cache");

    let before = issuer.stats();
    for i in 0..40 {
        let forged = resign(
            &good,
            &ForeignKey::generate(&format!("flood-{i}")),
            json!({}),
        );
        assert_eq!(
            status_of(&flooded, &flooded_token, &forged),
            401,
            "unknown kid flood-{i}"
        );
    }
    let fetched = issuer.stats().jwks - before.jwks;
    assert_eq!(
        fetched, 1,
        "JWKS fetches for 40 unknown kids within a minute"
    );
    assert_eq!(
        status_of(&flooded, &flooded_token, &good),
        200,
        "the known key still works"
    );
    assert!(
        flooded.log().contains("unknown_key"),
        "the flood's refusals are logged with their reason"
    );

    let kids = issuer.rotate();
    let new = issuer.mint(&acme_job("acme/app"));
    assert_eq!(jwt_header(&new)["kid"], kids[0]);
    let before = issuer.stats();
    assert_eq!(
        status_of(&rotated, &rotated_token, &new),
        200,
        "{}",
        rotated.log_tail()
    );
    assert_eq!(
        issuer.stats().jwks,
        before.jwks + 1,
        "the new kid is fetched once"
    );
    for alg in [Alg::Rs256, Alg::Es256, Alg::Rs256] {
        let t = issuer.mint(&acme_job("acme/app").alg(alg));
        assert_eq!(status_of(&rotated, &rotated_token, &t), 200);
    }
    assert_eq!(
        status_of(&rotated, &rotated_token, &good),
        200,
        "the old key is still published"
    );
    assert_eq!(
        issuer.stats().jwks,
        before.jwks + 1,
        "the new keys are cached"
    );
}

#[test]
fn two_replicas_on_postgresql_the_warm_one_works_with_the_issuer_down_the_cold_one_answers_503() {
    let issuer = OidcIssuer::start("down");
    let url = PgCluster::shared().new_database();
    let a = regauth_trusting(&[(&issuer, "github")])
        .postgres(&url)
        .start();
    let token = create_federated(
        &a,
        "default",
        "acme-replicas",
        &[repo("acme/*", &["pull", "push"])],
        acme_main(&issuer),
    );
    let first = issuer.mint(&acme_job("acme/app"));
    let later = issuer.mint(&acme_job("acme/app"));
    assert_eq!(status_of(&a, &token, &first), 200, "{}", a.log_tail());
    let (password, _) = exchange_ok(&a, &token.name, "registry.local", &first);

    issuer.stop();
    assert_eq!(
        status_of(&a, &token, &later),
        200,
        "replica A's keys are cached: the issuer being down does not matter\n{}",
        a.log_tail()
    );

    let b = regauth_trusting(&[(&issuer, "github")])
        .postgres(&url)
        .signing_files(a.key_path(), a.cert_path())
        .start();
    let resp = b.get_auth(&token.name, &later, "registry.local", &[], &[]);
    assert_eq!(
        resp.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "replica B has no key and cannot fetch one: 503, not 401"
    );
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "503 with Retry-After: {resp:?}"
    );
    assert!(
        b.log().contains("issuer unreachable"),
        "B logs why: {}",
        b.log_tail()
    );
    assert_eq!(
        status_of(&b, &token, &password),
        200,
        "the temporary password from A works on B (PostgreSQL)"
    );

    a.disable_token(&token);
    let start = Instant::now();
    let mut status = 200;
    while status == 200 && start.elapsed() < Duration::from_secs(5) {
        status = status_of(&b, &token, &password);
    }
    assert_eq!(
        status, 401,
        "B still accepts the temporary password after the disable on A"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "B refused only after {:?}",
        start.elapsed()
    );
    assert_eq!(status_of(&a, &token, &password), 401);
    assert_eq!(
        status_of(&a, &token, &later),
        401,
        "a disabled token takes no ID token"
    );
}
