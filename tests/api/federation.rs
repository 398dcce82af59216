//! Issue 18, the server side: federated tokens (keyless CI) through the admin API and the
//! token endpoint. ID tokens are signed by keys each test makes and given to the token as an
//! inline JWK Set, so nothing here touches the network (the real issuer is in tests/e2e).
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Duration;
use regauth::jwt::SigningKey;
use serde_json::{json, Value};

use crate::logs::Log;
use crate::support::*;

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const AUD: &str = "https://registry.example.com";
const SVC: &str = "service=registry.local";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// A CI issuer's key: signs ID tokens, and is the token's inline JWK Set.
struct Issuer {
    key: SigningKey,
}

impl Issuer {
    fn new() -> Issuer {
        Issuer {
            key: SigningKey::generate_es256().unwrap().0,
        }
    }

    fn jwks(&self) -> Value {
        json!({"keys": [self.key.jwk()]})
    }

    /// An ID token with `claims` over GitHub's usual ones, issued at `iat` for five minutes.
    fn id_token(&self, app: &TestApp, claims: Value) -> String {
        let iat = app.clock.now().timestamp();
        let mut all = json!({
            "iss": GITHUB, "aud": AUD, "iat": iat, "nbf": iat, "exp": iat + 300,
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app", "repository_id": "42", "repository_owner_id": 1234567,
            "ref": "refs/heads/main",
        });
        for (k, v) in claims.as_object().unwrap() {
            all[k] = v.clone();
        }
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.key.thumbprint()});
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(all.to_string())
        );
        let sig = self.key.sign(signed.as_bytes()).unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn federation(issuer: &Issuer) -> Value {
    json!({
        "issuer": GITHUB,
        "audiences": [AUD],
        "claims": {"repository_owner_id": "1234567", "repository": "acme/*", "ref": "refs/heads/main"},
        "sessionSeconds": 3600,
        "jwks": issuer.jwks(),
    })
}

/// Creates the federated token `name` with `scopes`; returns its id.
async fn create(app: &TestApp, name: &str, fed: Value, scopes: Value) -> String {
    let token = app
        .create_token(
            "default",
            &NewToken::named(name).scopes(scopes).with("federation", fed),
        )
        .await;
    assert_eq!(
        token.body["properties"]["credentials"],
        json!({"username": name}),
        "no password"
    );
    token.id
}

fn push_scopes() -> Value {
    json!([{"type": "repository", "name": "acme/*", "actions": ["pull", "push"]}])
}

async fn app_with_ci() -> (TestApp, Issuer, String) {
    let app = TestApp::new();
    let issuer = Issuer::new();
    let id = create(&app, "ci-acme", federation(&issuer), push_scopes()).await;
    (app, issuer, id)
}

/// `PATCH` of the token `id` with `body`.
async fn patch(app: &TestApp, id: &str, body: Value) -> Resp {
    app.call(AdminCall::patch_token("default", id, body)).await
}

/// Asserts a 400 whose message contains `words`.
fn refused(r: &Resp, words: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{words}");
    let msg = r.api_error();
    assert!(msg.contains(words), "{words}: {msg}");
}

/// A `docker login` of `name` with `id_token`: its refresh token.
async fn login(app: &TestApp, name: &str, id_token: &str) -> String {
    let r = app
        .auth_get(name, id_token, &format!("{SVC}&offline_token=true"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["refresh_token"].as_str().unwrap().to_string()
}

/// A token exchange of `id_token` for `name`: the temporary password.
async fn temporary(app: &TestApp, id_token: &str, name: &str) -> String {
    let r = app.auth_post(&exchange_form(id_token, name)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["access_token"].as_str().unwrap().to_string()
}

fn exchange_form(id_token: &str, audience: &str) -> String {
    format!(
        "grant_type={}&subject_token={id_token}&subject_token_type={}&audience={audience}&{SVC}",
        urlencode(EXCHANGE),
        urlencode(ID_TOKEN_TYPE)
    )
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_federated_token_is_created_shown_listed_and_changed() {
    let (app, issuer, id) = app_with_ci().await;
    let shown = app.get_token(&id).await;
    let mut expected = federation(&issuer);
    expected["maxIdTokenLifetimeSeconds"] = json!(3600);
    assert_eq!(shown["properties"]["federation"], expected);
    let list = app.list_tokens("").await;
    assert_eq!(list["items"][0]["properties"]["federation"], expected);

    // PATCH replaces the federation.
    let mut changed = federation(&issuer);
    changed["claims"]["ref"] = json!("refs/tags/*");
    changed["sessionSeconds"] = json!(600);
    let r = patch(&app, &id, json!({"federation": changed})).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.json()["properties"]["federation"]["claims"]["ref"],
        "refs/tags/*"
    );
    assert_eq!(r.json()["properties"]["federation"]["sessionSeconds"], 600);
    // A PUT must keep it federated; with a federation it replaces it.
    let put = |token: NewToken| AdminCall::replace_token("default", &id, &token);
    let r = app.call(put(NewToken::named("ci-acme"))).await;
    refused(&r, "keeps its federation");
    let r = app
        .call(put(
            NewToken::named("ci-acme").with("federation", federation(&issuer))
        ))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.json()["properties"]["credentials"]
        .get("password")
        .is_none());
}

#[tokio::test]
async fn federations_that_break_a_rule_are_refused_naming_it() {
    let app = TestApp::new();
    let issuer = Issuer::new();
    let post = |body: Value| {
        let app = &app;
        async move {
            app.call(AdminCall::create_token(
                "default",
                &NewToken::from_properties(body),
            ))
            .await
        }
    };
    let mut other_issuer = federation(&issuer);
    other_issuer["issuer"] = json!("https://evil.example.com");
    let mut unpinned = federation(&issuer);
    unpinned["claims"] = json!({"repository": "acme/app"});
    let mut wildcard_pin = federation(&issuer);
    wildcard_pin["claims"] = json!({"repository_owner_id": "12*"});
    let mut no_audience = federation(&issuer);
    no_audience["audiences"] = json!([]);
    let mut long_session = federation(&issuer);
    long_session["sessionSeconds"] = json!(86401);
    for (fed, field, words) in [
        (
            other_issuer,
            "properties.federation.issuer",
            "not one of this server's issuers",
        ),
        (unpinned, "properties.federation", "repository_owner_id"),
        (wildcard_pin, "properties.federation", "repository_owner_id"),
        (no_audience, "properties.federation.audiences", "audience"),
        (
            long_session,
            "properties.federation.sessionSeconds",
            "86400",
        ),
    ] {
        let r = post(json!({"name": "ci-bot", "federation": fed})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}");
        let msg = r.api_error();
        assert!(msg.starts_with(field), "{field}: {msg}");
        assert!(msg.contains(words), "{words}: {msg}");
    }
    // A `${claim}` scope needs a federated token.
    let r = post(json!({"name": "ci-bot", "scopes": [
        {"type": "repository", "name": "ci/${repository}/*", "actions": ["pull"]}]}))
    .await;
    refused(&r, "properties.scopes[0].name");
    // Nothing was created.
    assert_eq!(app.list_tokens("").await["total"], 0);
}

#[tokio::test]
async fn rotation_is_refused_and_a_password_token_cannot_become_federated() {
    let (app, issuer, id) = app_with_ci().await;
    let r = app
        .call(AdminCall::rotate_password("default", &id, None))
        .await;
    refused(&r, "federated token has no password");
    let (pw_id, _) = app.create("pw-bot", json!([])).await;
    let r = patch(&app, &pw_id, json!({"federation": federation(&issuer)})).await;
    refused(&r, "federation: a password token");
}

#[tokio::test]
async fn the_check_endpoint_explains_each_failure() {
    let (app, issuer, id) = app_with_ci().await;
    let check = |id_token: String| {
        let (app, id) = (&app, &id);
        async move {
            app.api(
                Method::POST,
                &format!("/registries/default/tokens/{id}/federation/check"),
                Some(json!({"idToken": id_token})),
            )
            .await
        }
    };
    let r = check(issuer.id_token(&app, json!({}))).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["failures"], json!([]));
    assert_eq!(v["claims"]["repository"], "acme/app");

    let v = check(issuer.id_token(&app, json!({"ref": "refs/heads/dev", "aud": "other"})))
        .await
        .json();
    assert_eq!(v["valid"], false);
    let failures: Vec<String> = serde_json::from_value(v["failures"].clone()).unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f == "claim ref: \"refs/heads/dev\" does not match \"refs/heads/main\""),
        "{failures:?}"
    );
    assert!(
        failures.iter().any(|f| f.contains("audience")),
        "{failures:?}"
    );
    assert_eq!(v["claims"]["ref"], "refs/heads/dev");

    // A password token has nothing to check against.
    let (pw_id, _) = app.create("pw-bot", json!([])).await;
    let r = app
        .api(
            Method::POST,
            &format!("/registries/default/tokens/{pw_id}/federation/check"),
            Some(json!({"idToken": "x.y.z"})),
        )
        .await;
    refused(&r, "has a password, not a federation");
}

#[tokio::test]
async fn docker_login_with_an_id_token_on_get_and_post() {
    let (app, issuer, _) = app_with_ci().await;
    let id_token = issuer.id_token(&app, json!({}));
    let access = app
        .access(
            "ci-acme",
            &id_token,
            &format!("{SVC}&scope=repository:acme/app:pull,push&scope=repository:other/app:pull"),
        )
        .await;
    assert_eq!(
        access,
        json!([{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}])
    );
    let r = app
        .auth_post(&format!(
            "grant_type=password&username=ci-acme&password={id_token}&{SVC}&scope=repository:acme/app:pull"
        ))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["scope"], "repository:acme/app:pull");

    // A claim that does not match, another issuer's key, an expired token: 401 each.
    let other = Issuer::new();
    app.clock.advance(Duration::seconds(1));
    for bad in [
        issuer.id_token(&app, json!({"ref": "refs/heads/dev"})),
        other.id_token(&app, json!({})),
        issuer.id_token(&app, json!({"exp": app.clock.now().timestamp() - 61})),
        "not-a-jwt".to_string(),
    ] {
        let r = app.auth_get("ci-acme", &bad, SVC).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
}

#[tokio::test]
async fn refusals_are_logged_with_their_reason_and_counted_by_grant_type() {
    let (app, issuer, _) = app_with_ci().await;
    let (log, _guard) = Log::capture();
    let r = app
        .auth_get(
            "ci-acme",
            &issuer.id_token(&app, json!({"ref": "refs/heads/dev"})),
            SVC,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let line = log.decision();
    assert!(line.contains("reason=\"ID token refused\""), "{line}");
    assert!(
        line.contains(r#"claim ref: \"refs/heads/dev\" does not match \"refs/heads/main\""#),
        "{line}"
    );
    assert!(!line.contains(&issuer.id_token(&app, json!({"ref": "refs/heads/dev"}))[..40]));
    let ok = issuer.id_token(&app, json!({}));
    assert_eq!(
        app.auth_get("ci-acme", &ok, SVC).await.status,
        StatusCode::OK
    );
    assert!(
        !log.decision().contains(&ok[..40]),
        "the token is never logged"
    );
    let text = app.scrape().await;
    for series in [
        r#"regauth_token_grant_decisions_total{grant_type="id_token",outcome="issued"} 1"#,
        r#"regauth_token_grant_decisions_total{grant_type="id_token",outcome="denied"} 1"#,
        r#"regauth_token_decisions_total{outcome="denied",reason="id_token_refused"} 1"#,
    ] {
        assert!(text.contains(series), "{series}\n{text}");
    }
}

#[tokio::test]
async fn a_session_outlives_its_id_token_and_ends_after_session_seconds() {
    let (app, issuer, _) = app_with_ci().await;
    let id_token = issuer.id_token(&app, json!({}));
    let refresh = login(&app, "ci-acme", &id_token).await;
    let refresh_form = format!(
        "grant_type=refresh_token&refresh_token={refresh}&{SVC}&scope=repository:acme/app:push,pull"
    );
    // Ten minutes on, the ID token has expired: it no longer logs in, the session goes on.
    app.clock.advance(Duration::minutes(10));
    assert_eq!(
        app.auth_get("ci-acme", &id_token, SVC).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app.auth_post(&refresh_form).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["scope"], "repository:acme/app:pull,push");
    // At sessionSeconds it ends.
    app.clock.advance(Duration::minutes(50));
    let r = app.auth_post(&refresh_form).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_narrowed_federation_ends_the_sessions_it_no_longer_admits() {
    let (app, issuer, id) = app_with_ci().await;
    let refresh = login(&app, "ci-acme", &issuer.id_token(&app, json!({}))).await;
    let refresh_form = format!("grant_type=refresh_token&refresh_token={refresh}&{SVC}");
    assert_eq!(app.auth_post(&refresh_form).await.status, StatusCode::OK);
    let mut narrowed = federation(&issuer);
    narrowed["claims"]["repository"] = json!("acme/other");
    let r = patch(&app, &id, json!({"federation": narrowed})).await;
    assert_eq!(r.status, StatusCode::OK);
    let (log, _guard) = Log::capture();
    assert_eq!(
        app.auth_post(&refresh_form).await.status,
        StatusCode::UNAUTHORIZED
    );
    let line = log.decision();
    assert!(
        line.contains("the federation changed since this login"),
        "{line}"
    );
}

#[tokio::test]
async fn an_exchanged_temporary_password_logs_in_until_it_expires() {
    let (app, issuer, _) = app_with_ci().await;
    let r = app
        .auth_post(&exchange_form(&issuer.id_token(&app, json!({})), "ci-acme"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    let v = r.json();
    assert_eq!(v["token_type"], "N_A");
    assert_eq!(
        v["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(v["expires_in"], 3600);
    let password = v["access_token"].as_str().unwrap().to_string();
    assert!(password.starts_with("rgt_"), "{password}");
    let query = format!("{SVC}&scope=repository:acme/app:pull");
    app.clock.advance(Duration::minutes(30));
    let access = app.access("ci-acme", &password, &query).await;
    assert_eq!(access[0]["actions"], json!(["pull"]));
    // Only for its own token and service.
    let (_, _) = app.create("pw-bot", json!([])).await;
    assert_eq!(
        app.auth_get("pw-bot", &password, &query).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(Duration::minutes(30));
    assert_eq!(
        app.auth_get("ci-acme", &password, &query).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Refused: a password token, a wrong subject token type, an unknown name.
    let r = app
        .auth_post(&exchange_form(&issuer.id_token(&app, json!({})), "pw-bot"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .auth_post(&exchange_form(&issuer.id_token(&app, json!({})), "nobody"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let form = exchange_form(&issuer.id_token(&app, json!({})), "ci-acme").replace(
        &urlencode(ID_TOKEN_TYPE),
        "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt",
    );
    let r = app.auth_post(&form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.registry_error().1.contains("subject_token_type"),
        "{:?}",
        r.registry_error()
    );
}

#[tokio::test]
async fn temporary_passwords_are_capped_per_token_oldest_first() {
    let (app, issuer, _) = app_with_ci().await;
    let id_token = issuer.id_token(&app, json!({}));
    let mut first = None;
    let cap = regauth::service::auth::FEDERATED_GRANTS_PER_TOKEN;
    for _ in 0..=cap {
        let r = app.auth_post(&exchange_form(&id_token, "ci-acme")).await;
        assert_eq!(r.status, StatusCode::OK);
        let pw = r.json()["access_token"].as_str().unwrap().to_string();
        first.get_or_insert(pw);
        app.clock.advance(Duration::milliseconds(1));
    }
    let first = first.unwrap();
    assert_eq!(
        app.auth_get("ci-acme", &first, SVC).await.status,
        StatusCode::UNAUTHORIZED,
        "the oldest beyond the cap has ended"
    );
}

#[tokio::test]
async fn disabling_ends_sessions_and_temporary_passwords_at_once() {
    let (app, issuer, id) = app_with_ci().await;
    let id_token = issuer.id_token(&app, json!({}));
    let refresh = login(&app, "ci-acme", &id_token).await;
    let temporary = temporary(&app, &id_token, "ci-acme").await;
    let refresh_form = format!("grant_type=refresh_token&refresh_token={refresh}&{SVC}");
    assert_eq!(app.auth_post(&refresh_form).await.status, StatusCode::OK);
    assert_eq!(
        app.auth_get("ci-acme", &temporary, SVC).await.status,
        StatusCode::OK
    );
    let r = patch(&app, &id, json!({"status": "disabled"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = patch(&app, &id, json!({"status": "enabled"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.auth_post(&refresh_form).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.auth_get("ci-acme", &temporary, SVC).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A new ID token logs in again.
    assert_eq!(
        app.auth_get("ci-acme", &id_token, SVC).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn claim_templates_confine_each_repository_to_its_own_path() {
    let app = TestApp::new();
    let issuer = Issuer::new();
    let mut fed = federation(&issuer);
    fed["claims"] = json!({"repository_owner_id": "1234567"});
    create(
        &app,
        "ci-org",
        fed,
        json!([{"type": "repository", "name": "ci/${repository}/*", "actions": ["pull", "push"]}]),
    )
    .await;
    let q = "scope=repository:ci/acme/app/img:push,pull&scope=repository:ci/acme/lib/img:push,pull";
    let app_token = issuer.id_token(&app, json!({"repository": "acme/app"}));
    let lib_token = issuer.id_token(&app, json!({"repository": "Acme/Lib"}));
    let granted = |access: Value| -> Vec<String> {
        access
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        granted(
            app.access("ci-org", &app_token, &format!("{SVC}&{q}"))
                .await
        ),
        ["ci/acme/app/img"]
    );
    assert_eq!(
        granted(
            app.access("ci-org", &lib_token, &format!("{SVC}&{q}"))
                .await
        ),
        ["ci/acme/lib/img"],
        "lowercased"
    );
    // Through a session too, after the ID token expired.
    let refresh = login(&app, "ci-org", &lib_token).await;
    app.clock.advance(Duration::minutes(20));
    let r = app
        .auth_post(&format!(
            "grant_type=refresh_token&refresh_token={refresh}&{SVC}&scope=repository:ci/acme/app/img:pull&scope=repository:ci/acme/lib/img:pull"
        ))
        .await;
    assert_eq!(r.json()["scope"], "repository:ci/acme/lib/img:pull");
}

#[tokio::test]
async fn failed_id_tokens_count_toward_the_throttle() {
    let app = TestApp::with(|c| {
        c.limits.lockout_seconds = 120;
        c.limits.auth_failures = 3;
    });
    let issuer = Issuer::new();
    create(&app, "ci-acme", federation(&issuer), push_scopes()).await;
    let get = |pass: String| {
        Request::builder()
            .uri(format!("/auth?{SVC}"))
            .header(header::AUTHORIZATION, basic("ci-acme", &pass))
            .body(Body::empty())
            .unwrap()
    };
    for i in 0..3 {
        let bad = issuer.id_token(&app, json!({"ref": format!("refs/heads/dev{i}")}));
        let r = app.send_from("10.0.0.1", get(bad)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .send_from("10.0.0.1", get(issuer.id_token(&app, json!({}))))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = app
        .send_from("10.0.0.2", get(issuer.id_token(&app, json!({}))))
        .await;
    assert_eq!(r.status, StatusCode::OK, "another address is not refused");
}

#[tokio::test]
async fn an_unreachable_issuer_with_no_cached_keys_is_503_with_retry_after() {
    // An issuer on a port that refuses connections, with no inline keys: a cold cache.
    let closed = crate::common::http::ClosedPort::new();
    let url = closed.url().replace("http://", "https://");
    let app = TestApp::with(|c| {
        c.federation
            .issuers
            .push(regauth::domain::federation::IssuerConfig {
                url: url.clone(),
                kind: regauth::domain::federation::IssuerKind::Generic,
            });
    });
    let issuer = Issuer::new();
    create(
        &app,
        "k8s-job",
        json!({"issuer": url, "audiences": [AUD], "claims": {"sub": "system:serviceaccount:ci:builder"}}),
        push_scopes(),
    )
    .await;
    let r = app
        .auth_get(
            "k8s-job",
            &issuer.id_token(
                &app,
                json!({"iss": url, "sub": "system:serviceaccount:ci:builder"}),
            ),
            SVC,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(r.registry_error().0, "UNAVAILABLE");
}
