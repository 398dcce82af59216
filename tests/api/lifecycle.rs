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
    format!("/registries/default/tokens/{id}/credentials")
}

#[tokio::test]
async fn rotation_keeps_the_token_and_honours_the_grace_period() {
    let app = TestApp::new();
    let (id, old) = app.create("ci-bot", pull_scope()).await;
    let before = app
        .api(
            Method::GET,
            &format!("/registries/default/tokens/{id}"),
            None,
        )
        .await
        .json();

    let r = app
        .api(
            Method::POST,
            &rotate_path(&id),
            Some(json!({"gracePeriodSeconds": 3600})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    let new = v["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string();
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
    let got = app
        .api(
            Method::GET,
            &format!("/registries/default/tokens/{id}"),
            None,
        )
        .await
        .json();
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
    let got = app
        .api(
            Method::GET,
            &format!("/registries/default/tokens/{id}"),
            None,
        )
        .await
        .json();
    assert!(
        got["properties"]
            .get("previousPasswordExpiryDate")
            .is_none(),
        "{got}"
    );

    // A second rotation with a grace period, then a third without a body: every earlier
    // password stops at once.
    let second = app
        .api(
            Method::POST,
            &rotate_path(&id),
            Some(json!({"gracePeriodSeconds": 600})),
        )
        .await
        .json()["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.auth_get("ci-bot", &new, Q).await.status, StatusCode::OK);
    let r = app.api_raw(Method::POST, &rotate_path(&id), "").await;
    assert_eq!(r.status, StatusCode::OK);
    let third = r.json()["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string();
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
            .api(Method::POST, &rotate_path(&id), Some(body.clone()))
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
    let r = app.api(Method::POST, &rotate_path(ghost), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    r.api_error();
    let r = app
        .api(
            Method::POST,
            &format!("/registries/nope/tokens/{id}/credentials"),
            None,
        )
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
    let path = format!("/registries/default/tokens/{id}");
    let v = app.api(Method::GET, &path, None).await.json();
    for field in ["lastUsedDate", "lastUsedFrom", "lastUsedGrantType"] {
        assert!(v["metadata"].get(field).is_none(), "never used: {v}");
    }
    assert_eq!(
        app.auth_get("ci-bot", "rga_wrong", Q).await.status,
        StatusCode::UNAUTHORIZED
    );
    let v = app.api(Method::GET, &path, None).await.json();
    assert!(
        v["metadata"].get("lastUsedDate").is_none(),
        "a failure is no use: {v}"
    );

    assert_eq!(
        app.auth_get("ci-bot", &password, Q).await.status,
        StatusCode::OK
    );
    let v = app.api(Method::GET, &path, None).await.json();
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
    let list = app
        .api(Method::GET, "/registries/default/tokens", None)
        .await
        .json();
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
    let r = app
        .api(
            Method::POST,
            "/registries/default/tokens",
            Some(json!({"properties": {"name": name, "expiryDate": expiry}})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
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
            .api(
                Method::GET,
                &format!("/registries/default/tokens?expiringWithin={q}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        let v = r.json();
        assert_eq!(names(&v), ["in-six-days", "in-two-days"], "{q}");
        assert_eq!(v["total"], 2);
    }
    let v = app
        .api(
            Method::GET,
            "/registries/default/tokens?expiringWithin=7d&limit=1",
            None,
        )
        .await
        .json();
    assert_eq!(names(&v), ["in-six-days"]);
    assert_eq!(
        v["_links"]["next"],
        "http://regauth.test/api/v1/registries/default/tokens?offset=1&limit=1&expiringWithin=7d"
    );
    let all = app
        .api(Method::GET, "/registries/default/tokens", None)
        .await
        .json();
    assert_eq!(all["total"], 4, "no filter, every token");
    let both = app
        .api(
            Method::GET,
            "/registries/default/tokens?expiringWithin=7d&filter.name=TWO",
            None,
        )
        .await
        .json();
    assert_eq!(
        names(&both),
        ["in-two-days"],
        "combined with the name filter"
    );
    let far = app
        .api(
            Method::GET,
            "/registries/default/tokens?expiringWithin=99999999w",
            None,
        )
        .await;
    assert_eq!(far.status, StatusCode::OK);
    assert_eq!(far.json()["total"], 3);

    for bad in ["soon", "-1", "7y", ""] {
        let r = app
            .api(
                Method::GET,
                &format!("/registries/default/tokens?expiringWithin={bad}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(r.api_error().starts_with("expiringWithin: "), "{bad:?}");
    }
}

#[tokio::test]
async fn expired_means_deleted_by_default() {
    let app = TestApp::new();
    create_expiring(&app, "brief", Some("2026-06-01T14:00:00Z")).await;
    let id = app
        .api(Method::GET, "/registries/default/tokens", None)
        .await
        .json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(Duration::hours(2));
    let r = app
        .api(
            Method::GET,
            &format!("/registries/default/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let list = app
        .api(Method::GET, "/registries/default/tokens", None)
        .await
        .json();
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn on_expiry_disable_keeps_expired_tokens_visible_and_refused() {
    let app = TestApp::with(|c| c.tokens.on_expiry = regauth::config::OnExpiry::Disable);
    let r = app
        .api(
            Method::POST,
            "/registries/default/tokens",
            Some(json!({"properties": {"name": "brief", "expiryDate": "2026-06-01T14:00:00Z", "scopes": pull_scope()}})),
        )
        .await;
    let v = r.json();
    let id = v["id"].as_str().unwrap().to_string();
    let password = v["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["properties"]["status"], "enabled");
    app.clock.advance(Duration::hours(2));

    let got = app
        .api(
            Method::GET,
            &format!("/registries/default/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["properties"]["status"], "expired");
    let list = app
        .api(Method::GET, "/registries/default/tokens", None)
        .await
        .json();
    assert_eq!(names(&list), ["brief"]);
    assert_eq!(list["items"][0]["properties"]["status"], "expired");
    let expiring = app
        .api(
            Method::GET,
            "/registries/default/tokens?expiringWithin=0",
            None,
        )
        .await
        .json();
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
    let r = app
        .api(
            Method::PATCH,
            &format!("/registries/default/tokens/{id}"),
            Some(json!({"expiryDate": "2026-06-02T00:00:00Z"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["properties"]["status"], "enabled");
    assert_eq!(
        app.auth_get("brief", &password, Q).await.status,
        StatusCode::OK
    );
}
