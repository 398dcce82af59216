//! Issue 12: rotation with a grace period, last use, the expiry filter, expired tokens kept
//! visible with `on_expiry = "disable"`.
use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};

use crate::support::*;

const Q: &str = "service=registry.local&scope=repository:team/app:pull";

fn pull_scope() -> Value {
    json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}])
}

fn rotate_path(id: &str) -> String {
    AdminCall::rotate_password("default", id, None).path
}

/// A rotation of the token `id` of `default` with the grace period `seconds`.
fn rotate(id: &str, seconds: i64) -> AdminCall {
    AdminCall::rotate_password("default", id, Some(json!({"gracePeriodSeconds": seconds})))
}

/// The new password in the reply to a rotation.
fn new_password(v: &Value) -> String {
    v["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn rotation_keeps_the_token_and_honours_the_grace_period() {
    let app = TestApp::new();
    let (id, old) = app.create("ci-bot", pull_scope()).await;
    let before = app.get_token(&id).await;

    let v = app.call(rotate(&id, 3600)).await.expect_ok();
    let new = new_password(&v);
    assert!(new.starts_with("rga_") && new != old, "{new}");
    assert_eq!(v["properties"]["credentials"]["username"], "ci-bot");
    assert_eq!(
        v["properties"]["previousPasswordExpiryDate"],
        "2026-06-01T13:00:00Z"
    );
    for field in ["name", "scopes", "status", "expiryDate"] {
        assert_eq!(
            v["properties"][field], before["properties"][field],
            "{field}"
        );
    }
    assert_eq!(v["id"], before["id"]);

    // Shown once: a read has no password, but still the end of the grace period.
    let got = app.get_token(&id).await;
    assert!(
        got["properties"]["credentials"].get("password").is_none(),
        "{got}"
    );
    assert_eq!(
        got["properties"]["previousPasswordExpiryDate"],
        "2026-06-01T13:00:00Z"
    );

    assert_eq!(app.auth_get("ci-bot", &new, Q).await.status, StatusCode::OK);
    assert_eq!(app.auth_get("ci-bot", &old, Q).await.status, StatusCode::OK);
    app.clock.advance(Duration::minutes(59));
    assert_eq!(app.auth_get("ci-bot", &old, Q).await.status, StatusCode::OK);
    app.clock.advance(Duration::minutes(1));
    assert_eq!(
        app.auth_get("ci-bot", &old, Q).await.status,
        StatusCode::UNAUTHORIZED,
        "the grace period is over"
    );
    assert_eq!(app.auth_get("ci-bot", &new, Q).await.status, StatusCode::OK);
    let got = app.get_token(&id).await;
    assert!(
        got["properties"]
            .get("previousPasswordExpiryDate")
            .is_none(),
        "{got}"
    );

    // A second rotation with a grace period, then a third without a body: every earlier
    // password stops at once.
    let second = new_password(&app.call(rotate(&id, 600)).await.json());
    assert_eq!(app.auth_get("ci-bot", &new, Q).await.status, StatusCode::OK);
    let r = app.api_raw(Method::POST, &rotate_path(&id), "").await;
    assert_eq!(r.status, StatusCode::OK);
    let third = new_password(&r.json());
    assert!(r.json()["properties"]
        .get("previousPasswordExpiryDate")
        .is_none());
    for (pw, want) in [
        (&new, StatusCode::UNAUTHORIZED),
        (&second, StatusCode::UNAUTHORIZED),
        (&third, StatusCode::OK),
    ] {
        assert_eq!(app.auth_get("ci-bot", pw, Q).await.status, want);
    }
}

#[tokio::test]
async fn rotation_refuses_bad_input() {
    let app = TestApp::new();
    let (id, password) = app.create("ci-bot", pull_scope()).await;
    for (body, needle) in [
        (
            json!({"gracePeriodSeconds": 604801}),
            "gracePeriodSeconds: must be between 0 and 604800",
        ),
        (
            json!({"gracePeriodSeconds": -1}),
            "gracePeriodSeconds: must be between 0 and 604800",
        ),
        (json!({"gracePeriodSeconds": "1h"}), "expected i64"),
        (json!({"grace": 60}), "grace"),
    ] {
        let r = app
            .call(AdminCall::rotate_password(
                "default",
                &id,
                Some(body.clone()),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let msg = r.api_error();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let r = app.api_raw(Method::POST, &rotate_path(&id), "{").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    r.api_error();
    // Nothing changed.
    assert_eq!(
        app.auth_get("ci-bot", &password, Q).await.status,
        StatusCode::OK
    );

    let ghost = "7c1e1a52-4d7f-4a6e-9a51-0f4b8f5b2f10";
    app.call(AdminCall::rotate_password("default", ghost, None))
        .await
        .expect_error(StatusCode::NOT_FOUND);
    let r = app
        .call(AdminCall::rotate_password("nope", &id, None))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.api(Method::GET, &rotate_path(&id), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    r.api_error();
}

#[tokio::test]
async fn last_use_is_shown_at_once() {
    let app = TestApp::new();
    let (id, password) = app.create("ci-bot", pull_scope()).await;
    let v = app.get_token(&id).await;
    for field in ["lastUsedDate", "lastUsedFrom", "lastUsedGrantType"] {
        assert!(v["metadata"].get(field).is_none(), "never used: {v}");
    }
    assert_eq!(
        app.auth_get("ci-bot", "rga_wrong", Q).await.status,
        StatusCode::UNAUTHORIZED
    );
    let v = app.get_token(&id).await;
    assert!(
        v["metadata"].get("lastUsedDate").is_none(),
        "a failure is no use: {v}"
    );

    assert_eq!(
        app.auth_get("ci-bot", &password, Q).await.status,
        StatusCode::OK
    );
    let v = app.get_token(&id).await;
    assert_eq!(v["metadata"]["lastUsedDate"], "2026-06-01T12:00:00Z");
    assert_eq!(v["metadata"]["lastUsedGrantType"], "password");

    app.clock.advance(Duration::minutes(5));
    let login = app
        .auth_post(&format!(
            "grant_type=password&service=registry.local&client_id=test&access_type=offline&username=ci-bot&password={password}"
        ))
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let refresh = login.json()["refresh_token"].as_str().unwrap().to_string();
    app.clock.advance(Duration::minutes(5));
    let r = app
        .auth_post(&format!(
            "grant_type=refresh_token&service=registry.local&client_id=test&refresh_token={refresh}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = app.list_tokens("").await;
    let md = &list["items"][0]["metadata"];
    assert_eq!(md["lastUsedDate"], "2026-06-01T12:10:00Z", "{md}");
    assert_eq!(md["lastUsedGrantType"], "refresh_token");

    // Registries carry no last use.
    let reg = app
        .api(Method::GET, "/registries/default", None)
        .await
        .json();
    assert!(reg["metadata"].get("lastUsedDate").is_none(), "{reg}");
}

async fn create_expiring(app: &TestApp, name: &str, expiry: Option<&str>) {
    app.create_token("default", &NewToken::named(name).with("expiryDate", expiry))
        .await;
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["properties"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_list_filters_tokens_expiring_within_a_duration() {
    let app = TestApp::new();
    create_expiring(&app, "in-two-days", Some("2026-06-03T12:00:00Z")).await;
    create_expiring(&app, "in-six-days", Some("2026-06-07T12:00:00Z")).await;
    create_expiring(&app, "in-ten-days", Some("2026-06-11T12:00:00Z")).await;
    create_expiring(&app, "forever", None).await;

    for q in ["7d", "604800", "1w", "168h"] {
        let r = app
            .call(AdminCall::list_tokens(
                "default",
                &format!("expiringWithin={q}"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        let v = r.json();
        assert_eq!(names(&v), ["in-six-days", "in-two-days"], "{q}");
        assert_eq!(v["total"], 2);
    }
    let v = app.list_tokens("expiringWithin=7d&limit=1").await;
    assert_eq!(names(&v), ["in-six-days"]);
    assert_eq!(
        v["_links"]["next"],
        "http://regauth.test/api/v1/registries/default/tokens?offset=1&limit=1&expiringWithin=7d"
    );
    let all = app.list_tokens("").await;
    assert_eq!(all["total"], 4, "no filter, every token");
    let both = app.list_tokens("expiringWithin=7d&filter.name=TWO").await;
    assert_eq!(
        names(&both),
        ["in-two-days"],
        "combined with the name filter"
    );
    let far = app
        .call(AdminCall::list_tokens(
            "default",
            "expiringWithin=99999999w",
        ))
        .await;
    assert_eq!(far.status, StatusCode::OK);
    assert_eq!(far.json()["total"], 3);

    for bad in ["soon", "-1", "7y", ""] {
        let r = app
            .call(AdminCall::list_tokens(
                "default",
                &format!("expiringWithin={bad}"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(r.api_error().starts_with("expiringWithin: "), "{bad:?}");
    }
}

#[tokio::test]
async fn expired_means_deleted_by_default() {
    let app = TestApp::new();
    create_expiring(&app, "brief", Some("2026-06-01T14:00:00Z")).await;
    let id = app.list_tokens("").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(Duration::hours(2));
    let r = app.call(AdminCall::get_token("default", &id)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let list = app.list_tokens("").await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn on_expiry_disable_keeps_expired_tokens_visible_and_refused() {
    let app = TestApp::with(|c| c.tokens.on_expiry = regauth::config::OnExpiry::Disable);
    let brief = app
        .create_token(
            "default",
            &NewToken::named("brief")
                .expiry("2026-06-01T14:00:00Z")
                .scopes(pull_scope()),
        )
        .await;
    let id = brief.id.clone();
    let password = brief.password().to_string();
    assert_eq!(brief.body["properties"]["status"], "enabled");
    app.clock.advance(Duration::hours(2));

    let got = app.get_token(&id).await;
    assert_eq!(got["properties"]["status"], "expired");
    let list = app.list_tokens("").await;
    assert_eq!(names(&list), ["brief"]);
    assert_eq!(list["items"][0]["properties"]["status"], "expired");
    let expiring = app.list_tokens("expiringWithin=0").await;
    assert_eq!(
        names(&expiring),
        ["brief"],
        "already expired is within any window"
    );
    assert_eq!(
        app.auth_get("brief", &password, Q).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A later expiry revives it.
    let v = app
        .call(AdminCall::patch_token(
            "default",
            &id,
            json!({"expiryDate": "2026-06-02T00:00:00Z"}),
        ))
        .await
        .expect_ok();
    assert_eq!(v["properties"]["status"], "enabled");
    assert_eq!(
        app.auth_get("brief", &password, Q).await.status,
        StatusCode::OK
    );
}

/// Issue 21: disabling a token ends a rotation's grace period for good; enabling it again
/// does not bring the rotated-out password back.
#[tokio::test]
async fn disable_then_enable_does_not_revive_the_grace_password() {
    let app = TestApp::new();
    let (id, old) = app.create("ci-bot", pull_scope()).await;
    let new = new_password(&app.call(rotate(&id, 3600)).await.expect_ok());
    assert_eq!(app.auth_get("ci-bot", &old, Q).await.status, StatusCode::OK);
    for status in ["disabled", "enabled"] {
        let r = app
            .call(AdminCall::patch_token(
                "default",
                &id,
                json!({"status": status}),
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{status}");
        assert!(
            r.json()["properties"]
                .get("previousPasswordExpiryDate")
                .is_none(),
            "{status}: {}",
            r.json()
        );
    }
    assert_eq!(
        app.auth_get("ci-bot", &old, Q).await.status,
        StatusCode::UNAUTHORIZED,
        "the old password stays dead within what was its grace period"
    );
    assert_eq!(app.auth_get("ci-bot", &new, Q).await.status, StatusCode::OK);

    // The same through a full replace (PUT) that disables.
    let newer = new_password(&app.call(rotate(&id, 3600)).await.json());
    for status in ["disabled", "enabled"] {
        let r = app
            .call(AdminCall::replace_token(
                "default",
                &id,
                &NewToken::named("ci-bot")
                    .status(status)
                    .scopes(pull_scope()),
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{status}");
    }
    assert_eq!(
        app.auth_get("ci-bot", &new, Q).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.auth_get("ci-bot", &newer, Q).await.status,
        StatusCode::OK
    );
}

/// `GET /auth?Q` with Basic credentials over a connection from `peer`, with an
/// `X-Forwarded-For` header when given.
async fn auth_from(app: &TestApp, peer: &str, xff: Option<&str>, user: &str, pass: &str) -> Resp {
    let mut b = axum::http::Request::builder()
        .uri(format!("/auth?{Q}"))
        .header(axum::http::header::AUTHORIZATION, basic(user, pass));
    if let Some(x) = xff {
        b = b.header("x-forwarded-for", x);
    }
    app.send_from(peer, b.body(axum::body::Body::empty()).unwrap())
        .await
}

/// `POST /auth` with a form over a connection from `peer`.
async fn post_from(app: &TestApp, peer: &str, form: &str) -> Resp {
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/auth")
        .header(
            axum::http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(axum::body::Body::from(form.to_string()))
        .unwrap();
    app.send_from(peer, req).await
}

/// Issue 21: a token with `allowedNetworks` authenticates only from inside them, with its
/// password and with its refresh tokens; IPv4-mapped IPv6 counts as IPv4; an unknown address
/// and a forged `X-Forwarded-For` from an untrusted peer are refused; the reason is logged
/// and counted.
#[tokio::test]
async fn allowed_networks_bound_password_and_refresh_grants() {
    let app = TestApp::with(|c| c.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]);
    let token = app
        .create_token(
            "default",
            &NewToken::named("ci-bot")
                .scopes(pull_scope())
                .with("allowedNetworks", json!(["10.0.0.0/8", "2001:db8::/32"])),
        )
        .await;
    assert_eq!(
        token.body["properties"]["allowedNetworks"],
        json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    let id = token.id.clone();
    let pw = token.password().to_string();

    for (peer, xff, ok) in [
        ("10.1.2.3", None, true),
        ("::ffff:10.1.2.3", None, true),
        ("2001:db8:1::5", None, true),
        ("192.0.2.1", None, false),
        ("2001:db9::1", None, false),
        // A forged header from an untrusted peer is ignored: the peer is the client.
        ("192.0.2.1", Some("10.0.0.1"), false),
        // Through the trusted proxy, the forwarded client counts (mapped or not).
        ("127.0.0.1", Some("10.0.0.1"), true),
        ("127.0.0.1", Some("::ffff:10.0.0.1"), true),
        ("127.0.0.1", Some("192.0.2.1"), false),
        ("127.0.0.1", None, false),
    ] {
        let r = auth_from(&app, peer, xff, "ci-bot", &pw).await;
        let want = if ok {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(r.status, want, "{peer} {xff:?}");
    }
    // No determinable address (no connection info): refused.
    assert_eq!(
        app.auth_get("ci-bot", &pw, Q).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Refresh grants: issued inside, usable only inside.
    let login = post_from(
        &app,
        "10.9.9.9",
        &format!("grant_type=password&service=registry.local&client_id=test&access_type=offline&username=ci-bot&password={pw}"),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    let refresh = login.json()["refresh_token"].as_str().unwrap().to_string();
    let form = format!(
        "grant_type=refresh_token&service=registry.local&client_id=test&refresh_token={refresh}"
    );
    let (log, _guard) = crate::logs::Log::capture();
    assert_eq!(
        post_from(&app, "192.0.2.1", &form).await.status,
        StatusCode::UNAUTHORIZED
    );
    let line = log.decision();
    assert!(
        line.contains("reason=\"client address not allowed\"") && line.contains("192.0.2.1"),
        "{line}"
    );
    assert!(!line.contains(&refresh) && !line.contains(&pw), "{line}");
    assert_eq!(
        post_from(&app, "10.9.9.9", &form).await.status,
        StatusCode::OK
    );
    let metrics = app.scrape().await;
    assert!(
        metrics.contains(
            "regauth_token_decisions_total{outcome=\"denied\",reason=\"address_not_allowed\"} 7"
        ),
        "{metrics}"
    );

    // Cleared: anywhere again.
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &id,
            json!({"allowedNetworks": null}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json()["properties"].get("allowedNetworks").is_none());
    assert_eq!(
        auth_from(&app, "192.0.2.1", None, "ci-bot", &pw)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.auth_get("ci-bot", &pw, Q).await.status, StatusCode::OK);
}

/// Issue 21: a bad network is a 400 naming the entry and the problem.
#[tokio::test]
async fn bad_networks_are_refused_naming_the_entry() {
    let app = TestApp::new();
    for (nets, field, says) in [
        (
            json!(["10.0.0.0/8", "10.0.0.1/8"]),
            "properties.allowedNetworks[1]",
            "host bits are set",
        ),
        (
            json!(["10.0.0.0/33"]),
            "properties.allowedNetworks[0]",
            "longer than 32 bits",
        ),
        (
            json!(["intranet"]),
            "properties.allowedNetworks[0]",
            "is not a network",
        ),
    ] {
        let r = app
            .call(AdminCall::create_token(
                "default",
                &NewToken::named("ci-bot").with("allowedNetworks", nets.clone()),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{nets}");
        let msg = r.api_error();
        assert!(msg.contains(field) && msg.contains(says), "{msg}");
    }
    let many: Vec<String> = (0..65).map(|i| format!("10.0.{i}.0/24")).collect();
    let r = app
        .call(AdminCall::create_token(
            "default",
            &NewToken::named("ci-bot").with("allowedNetworks", many),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("at most 64"));
    let (id, _) = app.create("ci-bot", pull_scope()).await;
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &id,
            json!({"allowedNetworks": ["::1/129"]}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("allowedNetworks[0]"));
}
