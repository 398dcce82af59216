//! Token endpoint: GET and POST grants, refresh tokens, denials and their bodies.
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};

use crate::support::*;

const SVC: &str = "service=registry.local";

async fn app_with_bot() -> (TestApp, String, String) {
    let app = TestApp::new();
    let (id, pw) = app
        .create(
            "ci-bot",
            json!([
                {"type": "repository", "name": "team/*", "actions": ["pull", "push"]},
                {"type": "repository", "name": "public/app?", "actions": ["pull"]},
                {"type": "repository", "name": "team/trash", "actions": ["delete"]},
            ]),
        )
        .await;
    (app, id, pw)
}

#[tokio::test]
async fn get_grants_and_jwt_fields() {
    let (app, _, pw) = app_with_bot().await;
    let r = app
        .auth_get(
            "ci-bot",
            &pw,
            &format!("{SVC}&scope=repository:team/app:pull,push&client_id=docker"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    let v = r.json();
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert_eq!(v["issued_at"], "2026-06-01T12:00:00Z");
    assert!(v.get("refresh_token").is_none());
    let (h, c) = app.verify(v["token"].as_str().unwrap());
    assert_eq!(h["typ"], "JWT");
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["kid"].as_str().unwrap().len(), 59);
    assert_eq!(c["iss"], "regauth");
    assert_eq!(c["sub"], "ci-bot");
    assert_eq!(c["aud"], "registry.local", "aud must be a single string");
    let iat = c["iat"].as_i64().expect("iat integer");
    assert_eq!(c["nbf"].as_i64(), Some(iat));
    assert_eq!(c["exp"].as_i64(), Some(iat + 300));
    assert!(c["jti"].as_str().unwrap().len() >= 16);
    assert_eq!(
        c["access"],
        json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
    // The alias path works the same.
    let r = app
        .get(&format!("/auth/token?{SVC}"), Some(&basic("ci-bot", &pw)))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn access_decisions_through_http() {
    let (app, _, pw) = app_with_bot().await;
    let cases: Vec<(&str, Value)> = vec![
        // login: no scope, empty access
        ("", json!([])),
        ("&scope=repository:team/a/b/c:push", json!([{"type": "repository", "name": "team/a/b/c", "actions": ["push"]}])),
        ("&scope=repository:other/app:pull,push", json!([])),
        ("&scope=repository:public/app1:pull,push", json!([{"type": "repository", "name": "public/app1", "actions": ["pull"]}])),
        ("&scope=repository:public/app12:pull", json!([])),
        ("&scope=repository:team/trash:*", json!([{"type": "repository", "name": "team/trash", "actions": ["pull", "push", "delete"]}])),
        ("&scope=repository:team/app:delete", json!([])),
        ("&scope=registry:catalog:*", json!([])),
        (
            "&scope=repository:team/x:pull&scope=repository:team/x:push&scope=repository:public/appz:pull",
            json!([
                {"type": "repository", "name": "team/x", "actions": ["pull", "push"]},
                {"type": "repository", "name": "public/appz", "actions": ["pull"]}
            ]),
        ),
        (
            // space-separated in one parameter, encoded
            "&scope=repository%3Ateam%2Fy%3Apull%20repository%3Ateam%2Fz%3Apush",
            json!([
                {"type": "repository", "name": "team/y", "actions": ["pull"]},
                {"type": "repository", "name": "team/z", "actions": ["push"]}
            ]),
        ),
    ];
    for (q, expected) in cases {
        let got = app.access("ci-bot", &pw, &format!("{SVC}{q}")).await;
        assert_eq!(got, expected, "query {q}");
    }
}

#[tokio::test]
async fn catalog_needs_a_registry_scope() {
    let app = TestApp::new();
    let (_, pw) = app
        .create(
            "lister",
            json!([{"type": "registry", "name": "catalog", "actions": ["pull"]}]),
        )
        .await;
    let got = app
        .access("lister", &pw, &format!("{SVC}&scope=registry:catalog:*"))
        .await;
    assert_eq!(
        got,
        json!([{"type": "registry", "name": "catalog", "actions": ["*"]}])
    );
}

#[tokio::test]
async fn every_denial_is_the_same_401() {
    let (app, _, pw) = app_with_bot().await;
    let (did, dpw) = app.create("disabled-bot", json!([])).await;
    app.call(AdminCall::disable_token("default", &did)).await;
    let epw = app
        .create_token(
            "default",
            &NewToken::named("brief-bot").expiry("2026-06-01T13:30:00Z"),
        )
        .await
        .password()
        .to_string();
    app.clock.advance(Duration::hours(2));

    let mut bodies = Vec::new();
    for (user, pass) in [
        ("ci-bot", "rga_wrong"),
        ("ci-bot", ""),
        ("nobody", pw.as_str()),
        ("Not A Name", pw.as_str()),
        ("disabled-bot", dpw.as_str()),
        ("brief-bot", epw.as_str()),
    ] {
        let r = app.auth_get(user, pass, SVC).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(
            r.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Basic realm=\"regauth\""
        );
        assert_eq!(
            r.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        assert_eq!(r.registry_error().0, "UNAUTHORIZED");
        assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
        bodies.push(r.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "401 bodies must not reveal the cause"
    );
    // No credentials at all (and no public repositories).
    let r = app.get(&format!("/auth?{SVC}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    assert_eq!(r.body, bodies[0]);
    // The POST form's 401 too.
    let r = app
        .auth_post(&format!(
            "grant_type=password&username=ci-bot&password=rga_wrong&{SVC}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let (app, _, pw) = app_with_bot().await;
    for (q, needle) in [
        ("", "service"),
        ("service=registry.other", "registry.other"),
        ("service=registry.local&scope=repository", "repository"),
        (
            "service=registry.local&scope=repository:team/app",
            "team/app",
        ),
        (
            "service=registry.local&scope=repository:team/app:",
            "team/app",
        ),
        (
            "service=registry.local&scope=repository::pull",
            "repository::pull",
        ),
        ("service=registry.local&scope=Repo!:x:pull", "Repo!"),
        ("service=registry.local&account=someone-else", "account"),
    ] {
        let r = app.auth_get("ci-bot", &pw, q).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        let (code, msg) = r.registry_error();
        assert_eq!(code, "INVALID_REQUEST");
        assert!(msg.contains(needle), "{q}: {msg}");
    }
    // account equal to the user is fine (docker login sends it).
    let r = app
        .auth_get("ci-bot", &pw, "service=registry.local&account=ci-bot")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for bad in ["Basic !!!!", "Basic dXNlcg==", "Basic"] {
        let r = app.get(&format!("/auth?{SVC}"), Some(bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.registry_error().1.contains("Authorization"));
    }
    // host:port names parse.
    let got = app
        .access(
            "ci-bot",
            &pw,
            &format!("{SVC}&scope=repository:localhost:5000/team/app:pull"),
        )
        .await;
    assert_eq!(
        got,
        json!([]),
        "pattern team/* does not match a host-qualified name"
    );
}

#[tokio::test]
async fn offline_token_and_refresh_grant() {
    let (app, id, pw) = app_with_bot().await;
    let r = app
        .auth_get(
            "ci-bot",
            &pw,
            &format!("{SVC}&offline_token=true&client_id=docker&account=ci-bot"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let rt = r.json()["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    assert!(rt.starts_with("rgr_"));

    // docker: POST refresh grant, space-separated scopes.
    let r = app
        .auth_post(&format!(
            "grant_type=refresh_token&refresh_token={rt}&{SVC}&client_id=docker&scope=repository%3Ateam%2Fapp%3Apull%2Cpush+repository%3Apublic%2Fapp1%3Apull"
        ))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(
        v["refresh_token"],
        rt.as_str(),
        "a refresh grant returns the same refresh token"
    );
    assert_eq!(v["access_token"], v["token"]);
    assert_eq!(
        v["scope"],
        "repository:team/app:pull,push repository:public/app1:pull"
    );
    assert_eq!(v["expires_in"], 300);
    let (_, c) = app.verify(v["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "ci-bot");

    // containers/image: repeated scope fields.
    let r = app
        .auth_post(&format!(
            "grant_type=refresh_token&refresh_token={rt}&{SVC}&client_id=containers%2Fimage&scope=repository%3Ateam%2Fa%3Apull&scope=repository%3Ateam%2Fb%3Apush"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["scope"],
        "repository:team/a:pull repository:team/b:push"
    );

    // The JWT follows the token's current scopes.
    app.call(AdminCall::patch_token(
        "default",
        &id,
        json!({"scopes": [{"type": "repository", "name": "team/*", "actions": ["pull"]}]}),
    ))
    .await;
    let r = app
        .auth_post(&format!(
            "grant_type=refresh_token&refresh_token={rt}&{SVC}&scope=repository:team/app:pull,push"
        ))
        .await;
    assert_eq!(r.json()["scope"], "repository:team/app:pull");

    // A service this regauth does not serve.
    let r = app
        .auth_post(&format!(
            "grant_type=refresh_token&refresh_token={rt}&service=registry.other"
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "unknown service");
    // Garbage refresh tokens.
    for bad in ["rgr_nope", "nope", &rt[..rt.len() - 1]] {
        let r = app
            .auth_post(&format!(
                "grant_type=refresh_token&refresh_token={bad}&{SVC}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(
            r.headers.get(header::WWW_AUTHENTICATE).unwrap(),
            "Basic realm=\"regauth\""
        );
    }
}

#[tokio::test]
async fn refresh_token_is_bound_to_its_service() {
    let app = TestApp::with(|c| {
        c.registries.push(regauth::config::RegistryConfig::new(
            "staging",
            "registry.staging",
            "staging:5000",
        ))
    });
    let (_, pw) = app.create("bot", json!([])).await;
    let rt = app
        .auth_get("bot", &pw, &format!("{SVC}&offline_token=true"))
        .await
        .json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .auth_post(&format!(
            "grant_type=refresh_token&refresh_token={rt}&service=registry.staging"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // And a token of one registry does not log in to another.
    assert_eq!(
        app.auth_get("bot", &pw, "service=registry.staging")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn refresh_tokens_die_with_their_token() {
    let app = TestApp::new();
    let (id, pw) = app.create("mortal", json!([])).await;
    let patch = |body: Value| AdminCall::patch_token("default", &id, body);
    let r = app.auth_post(&format!("grant_type=password&username=mortal&password={pw}&{SVC}&access_type=offline&client_id=containerd-client")).await;
    assert_eq!(r.status, StatusCode::OK);
    let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: &str| format!("grant_type=refresh_token&refresh_token={rt}&{SVC}");
    assert_eq!(app.auth_post(&refresh(&rt)).await.status, StatusCode::OK);

    // Disabled: dead. Enabled again: still dead (issue 10: disabling ends every session, so
    // an old `docker login` does not come back to life); a new login works.
    app.call(AdminCall::disable_token("default", &id)).await;
    assert_eq!(
        app.auth_post(&refresh(&rt)).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.call(patch(json!({"status": "enabled"}))).await;
    assert_eq!(
        app.auth_post(&refresh(&rt)).await.status,
        StatusCode::UNAUTHORIZED,
        "a refresh token revoked by a disable stays revoked"
    );
    let r = app.auth_post(&format!("grant_type=password&username=mortal&password={pw}&{SVC}&access_type=offline&client_id=containerd-client")).await;
    assert_eq!(r.status, StatusCode::OK);
    let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(app.auth_post(&refresh(&rt)).await.status, StatusCode::OK);
    // Changing anything but the status (here: the scopes) keeps the sessions.
    app.call(patch(json!({"scopes": []}))).await;
    assert_eq!(app.auth_post(&refresh(&rt)).await.status, StatusCode::OK);

    // Expired: dead at once.
    app.call(patch(json!({"expiryDate": "2026-06-01T14:00:00Z"})))
        .await;
    app.clock.advance(Duration::hours(3));
    assert_eq!(
        app.auth_post(&refresh(&rt)).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(Duration::hours(-3));

    // Deleted, then re-created under the same name: the old refresh token stays dead.
    assert_eq!(
        app.call(AdminCall::delete_token("default", &id))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.auth_post(&refresh(&rt)).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.create("mortal", json!([])).await;
    assert_eq!(
        app.auth_post(&refresh(&rt)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn password_grant() {
    let (app, _, pw) = app_with_bot().await;
    let r = app
        .auth_post(&format!("grant_type=password&username=ci-bot&password={pw}&{SVC}&client_id=containerd-client&scope=repository%3Ateam%2Fapp%3Apush%2Cpull"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["scope"], "repository:team/app:pull,push");
    assert!(
        v.get("refresh_token").is_none(),
        "no refresh token unless access_type=offline"
    );
    let r = app
        .auth_post(&format!(
            "grant_type=password&username=ci-bot&password=rga_wrong&{SVC}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.registry_error().0, "UNAUTHORIZED");
}

#[tokio::test]
async fn bad_post_forms_are_400() {
    let (app, _, pw) = app_with_bot().await;
    for (form, needle) in [
        (SVC.to_string(), "grant_type"),
        (
            format!("grant_type=client_credentials&{SVC}"),
            "client_credentials",
        ),
        (
            format!("grant_type=password&password={pw}&{SVC}"),
            "username",
        ),
        (
            format!("grant_type=password&username=ci-bot&{SVC}"),
            "password",
        ),
        (format!("grant_type=refresh_token&{SVC}"), "refresh_token"),
        (
            format!("grant_type=password&username=ci-bot&password={pw}"),
            "service",
        ),
        (
            format!("grant_type=password&username=ci-bot&password={pw}&{SVC}&scope=bad"),
            "bad",
        ),
    ] {
        let r = app.auth_post(&form).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{form}");
        let (code, msg) = r.registry_error();
        assert_eq!(code, "INVALID_REQUEST");
        assert!(msg.contains(needle), "{form}: {msg}");
    }
    let huge = format!(
        "grant_type=password&username=ci-bot&password={}&{SVC}",
        "x".repeat(70 * 1024)
    );
    let r = app.auth_post(&huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Invalid UTF-8 in the form: decoded lossily, so it is just a wrong password.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/auth")
        .body(Body::from(
            b"grant_type=password&username=ci-bot&password=%FF%FE&service=registry.local".to_vec(),
        ))
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_tokens_are_capped_per_token() {
    let app = TestApp::new();
    let (_, pw) = app.create("busy", json!([])).await;
    let mut tokens = Vec::new();
    for _ in 0..(regauth::service::auth::REFRESH_TOKENS_PER_TOKEN + 1) {
        let r = app
            .auth_get("busy", &pw, &format!("{SVC}&offline_token=true"))
            .await;
        tokens.push(r.json()["refresh_token"].as_str().unwrap().to_string());
        app.clock.advance(Duration::seconds(1));
    }
    let refresh = |rt: &str| format!("grant_type=refresh_token&refresh_token={rt}&{SVC}");
    assert_eq!(
        app.auth_post(&refresh(&tokens[0])).await.status,
        StatusCode::UNAUTHORIZED,
        "oldest evicted"
    );
    assert_eq!(
        app.auth_post(&refresh(&tokens[1])).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.auth_post(&refresh(tokens.last().unwrap())).await.status,
        StatusCode::OK
    );
}

/// The load benchmark's baseline (`GET /bench/sign`, built only with `--features
/// bench-baseline`; `scripts/test.sh` runs this test with it): signed by the server's own
/// issuer and sent in the token endpoint's reply shape, so the two routes compare like for like.
#[cfg(feature = "bench-baseline")]
#[tokio::test]
async fn bench_sign_baseline_uses_the_servers_issuer_and_the_token_reply() {
    let (app, _, pw) = app_with_bot().await;
    let baseline = app.get("/bench/sign", None).await;
    assert_eq!(baseline.status, StatusCode::OK);
    assert_eq!(
        baseline.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let auth = app
        .auth_get(
            "ci-bot",
            &pw,
            &format!("{SVC}&scope=repository:team/app:pull"),
        )
        .await;
    let (b, a) = (baseline.json(), auth.json());
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&b), keys(&a), "same reply fields as GET /auth");
    assert_eq!(b["token"], b["access_token"]);
    assert_eq!(b["expires_in"], a["expires_in"]);
    let (h, c) = app.verify(b["token"].as_str().unwrap());
    assert_eq!(h["alg"], "ES256");
    assert_eq!(c["iss"], "regauth");
    assert_eq!(c["aud"], "registry.local");
    assert_eq!(c["access"].as_array().unwrap().len(), 2);
}

/// The load benchmark's seeding tool (`regauth-seed`, built only with `--features
/// bench-baseline`) makes the data dir, the store and the credentials file private, as `serve`
/// does, whatever the caller's umask; and its store holds the tokens it was asked for.
#[cfg(feature = "bench-baseline")]
#[tokio::test]
async fn bench_seed_makes_private_files_and_the_tokens_asked_for() {
    use regauth::store::Store;
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let creds = tmp.path().join("creds");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regauth-seed"))
        .args(["--count", "5", "--sample", "3", "--data-dir"])
        .arg(&data)
        .arg("--creds")
        .arg(&creds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&creds), 0o600, "credentials file");
    for entry in std::fs::read_dir(data.join("store")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(
                mode(&path) & 0o077,
                0,
                "{} is open to others",
                path.display()
            );
        }
    }
    let lines = std::fs::read_to_string(&creds).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines.lines().all(|l| l.starts_with("Basic ")), "{lines}");
    let store = regauth::store::sled::SledStore::open(&data.join("store")).unwrap();
    assert_eq!(store.count().await.unwrap(), 5);
}

/// Requested names follow distribution's grammar: a 60 KB name, a newline, uppercase or a
/// glob get 400 in the registry error format naming the rule, not 200 with nothing granted;
/// the same anonymously and with the POST form.
#[tokio::test]
async fn invalid_requested_names_are_400_naming_the_rule() {
    let (app, _, pw) = app_with_bot().await;
    let huge = "a".repeat(60 * 1024);
    for (scope, needle) in [
        (
            format!("repository:{huge}:pull"),
            "at most 255 characters, got 61440",
        ),
        (
            "repository:team/app%0Aevil:pull".to_string(),
            "invalid repository name",
        ),
        (
            "repository:Team/App:pull".to_string(),
            "invalid repository name: path component \"Team\"",
        ),
        (
            "repository:team/*:pull".to_string(),
            "invalid repository name",
        ),
        ("registry:cata%0Alog:*".to_string(), "control characters"),
    ] {
        let q = format!("{SVC}&scope={scope}");
        for r in [
            app.auth_get("ci-bot", &pw, &q).await,
            app.get(&format!("/auth?{q}"), None).await,
            app.auth_post(&format!(
                "grant_type=password&username=ci-bot&password={pw}&{q}"
            ))
            .await,
        ] {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{needle}");
            let (code, msg) = r.registry_error();
            assert_eq!(code, "INVALID_REQUEST");
            assert!(msg.contains(needle), "{needle}: {msg}");
            assert!(
                msg.len() < 400,
                "the message quotes the name briefly: {msg}"
            );
        }
    }
}

fn public_app() -> TestApp {
    TestApp::with(|c| {
        c.registries[0].public = vec!["library/*".into(), "docs/*".into()];
    })
}

/// The `access` claim (and `sub`) of an anonymous `GET /auth?<query>`; panics unless 200.
async fn anonymous_access(app: &TestApp, query: &str) -> (Value, Value) {
    let r = app.get(&format!("/auth?{query}"), None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{query}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    assert!(r.json().get("refresh_token").is_none());
    let (_, claims) = app.verify(r.json()["token"].as_str().unwrap());
    (claims["access"].clone(), claims["sub"].clone())
}

/// Issue 21: without credentials, a registry with public repositories answers 200 with the
/// public subset of what was asked for, pull only; possibly nothing, as Docker Hub does.
/// Push, delete and the catalog are never granted anonymously, even with `offline_token`.
#[tokio::test]
async fn anonymous_gets_the_public_subset_pull_only() {
    let app = public_app();
    let cases: Vec<(&str, Value)> = vec![
        ("", json!([])),
        ("&scope=repository:library/alpine:pull", json!([{"type": "repository", "name": "library/alpine", "actions": ["pull"]}])),
        ("&scope=repository:library/alpine:pull,push", json!([{"type": "repository", "name": "library/alpine", "actions": ["pull"]}])),
        ("&scope=repository:docs/site:*", json!([{"type": "repository", "name": "docs/site", "actions": ["pull"]}])),
        ("&scope=repository:library/alpine:push", json!([])),
        ("&scope=repository:library/alpine:delete", json!([])),
        ("&scope=registry:catalog:*", json!([])),
        ("&scope=repository:team/app:pull", json!([])),
        ("&scope=repository:library:pull", json!([])),
        (
            "&scope=repository:team/app:pull&scope=repository:library/a:pull,push&scope=registry:catalog:*&offline_token=true",
            json!([{"type": "repository", "name": "library/a", "actions": ["pull"]}]),
        ),
    ];
    for (q, expected) in cases {
        let (access, sub) = anonymous_access(&app, &format!("{SVC}{q}")).await;
        assert_eq!(access, expected, "query {q}");
        assert_eq!(sub, "", "anonymous tokens name no token");
    }
    // An unknown service is still 400.
    let r = app.get("/auth?service=registry.other", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Only the registry that has public repositories answers anonymously.
    let app = TestApp::with(|c| {
        c.registries[0].public = vec!["library/*".into()];
        c.registries.push(regauth::config::RegistryConfig::new(
            "staging",
            "registry.staging",
            "staging:5000",
        ));
    });
    let r = app
        .get(
            "/auth?service=registry.staging&scope=repository:library/a:pull",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    anonymous_access(&app, &format!("{SVC}&scope=repository:library/a:pull")).await;
}

/// Wrong credentials are 401 even where anonymous pull would succeed, and never fall back
/// to anonymous; a logged-in token gets its scopes plus public pull.
#[tokio::test]
async fn credentials_never_fall_back_and_tokens_add_public_pull() {
    let app = public_app();
    let (_, pw) = app
        .create(
            "ci-bot",
            json!([{"type": "repository", "name": "team/*", "actions": ["pull", "push"]}]),
        )
        .await;
    let q = format!("{SVC}&scope=repository:library/alpine:pull");
    for (user, pass) in [("ci-bot", "rga_wrong"), ("nobody", pw.as_str())] {
        let r = app.auth_get(user, pass, &q).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    }
    let r = app
        .auth_post(&format!(
            "grant_type=password&username=ci-bot&password=rga_wrong&{q}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let got = app
        .access(
            "ci-bot",
            &pw,
            &format!("{SVC}&scope=repository:team/app:pull,push&scope=repository:library/alpine:pull,push"),
        )
        .await;
    assert_eq!(
        got,
        json!([
            {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "library/alpine", "actions": ["pull"]}
        ])
    );
}

/// Anonymous requests have their own limit per address: over it, 429 in the registry error
/// format with Retry-After; other addresses and logged-in requests are not affected; the
/// metrics count them under their own outcomes.
#[tokio::test]
async fn anonymous_requests_are_limited_per_address() {
    let app = TestApp::with(|c| {
        c.registries[0].public = vec!["library/*".into()];
        c.limits.anonymous_per_minute = 3;
    });
    let (_, pw) = app
        .create(
            "ci-bot",
            json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]),
        )
        .await;
    let anonymous = |ip: &'static str, scope: &'static str| {
        let req = Request::builder()
            .uri(format!("/auth?{SVC}&scope={scope}"))
            .body(Body::empty())
            .unwrap();
        app.send_from(ip, req)
    };
    for scope in ["repository:library/a:pull", "repository:team/a:pull", ""] {
        assert_eq!(anonymous("127.0.0.2", scope).await.status, StatusCode::OK);
    }
    let r = anonymous("127.0.0.2", "repository:library/a:pull").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let (code, msg) = r.registry_error();
    assert_eq!(code, "TOOMANYREQUESTS");
    assert!(msg.contains("too many anonymous token requests"), "{msg}");
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address, and credentials from the same one, are not limited.
    assert_eq!(
        anonymous("127.0.0.3", "repository:library/a:pull")
            .await
            .status,
        StatusCode::OK
    );
    let req = Request::builder()
        .uri(format!("/auth?{SVC}&scope=repository:team/a:pull"))
        .header(header::AUTHORIZATION, basic("ci-bot", &pw))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send_from("127.0.0.2", req).await.status, StatusCode::OK);

    let metrics = app.scrape().await;
    for (series, n) in [
        ("outcome=\"anonymous\",reason=\"\"", 3),
        ("outcome=\"anonymous_nothing_granted\",reason=\"\"", 1),
        ("outcome=\"anonymous_throttled\",reason=\"\"", 1),
        ("outcome=\"issued\",reason=\"\"", 1),
    ] {
        let line = format!("regauth_token_decisions_total{{{series}}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// Every token request is one log line, also without credentials: a 401 for lack of them
/// says so (docs/troubleshooting.md), an anonymous grant says what it granted.
#[tokio::test]
async fn a_request_without_credentials_is_logged() {
    let (log, _guard) = crate::logs::Log::capture();
    let app = TestApp::new();
    let req = Request::builder()
        .uri(format!(
            "/auth?{SVC}&scope=repository:library/a:pull&client_id=docker"
        ))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.send_from("127.0.0.5", req).await.status,
        StatusCode::UNAUTHORIZED
    );
    let line = log.decision();
    for part in [
        "grant_type=\"anonymous\"",
        "requested=repository:library/a:pull",
        "client=127.0.0.5",
        "client_id=docker",
        "outcome=\"denied\"",
        "reason=\"no credentials\"",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(!line.contains("retry_after"), "{line}");

    let app = public_app();
    let req = Request::builder()
        .uri(format!(
            "/auth?{SVC}&scope=repository:library/a:pull,push%20repository:team/b:pull"
        ))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send_from("127.0.0.6", req).await.status, StatusCode::OK);
    let line = log.decision();
    for part in [
        "grant_type=\"anonymous\"",
        "requested=\"repository:library/a:pull,push repository:team/b:pull\"",
        "granted=repository:library/a:pull",
        "client=127.0.0.6",
        "outcome=\"issued\"",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
}

/// Anonymous log lines are rationed per address as denials are: beyond `denial_log_lines`
/// they are counted, and the summary says how many from where.
#[tokio::test]
async fn anonymous_log_lines_are_rationed_per_address() {
    let (log, _guard) = crate::logs::Log::capture();
    let app = TestApp::with(|c| {
        c.registries[0].public = vec!["library/*".into()];
        c.limits.denial_log_lines = 2;
    });
    for _ in 0..5 {
        let req = Request::builder()
            .uri(format!("/auth?{SVC}&scope=repository:library/a:pull"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.send_from("127.0.0.7", req).await.status, StatusCode::OK);
    }
    assert_eq!(log.decisions().len(), 2);
    app.state.auth.anonymous().summarise();
    let (text, _) = log.take();
    assert!(
        text.iter()
            .any(|l| l.contains("3 more anonymous token requests from 127.0.0.7 in the last 60 s")),
        "{text:#?}"
    );
}
