//! Registry activity: `POST /events/{registryId}` (the registry's notifications, with its
//! events secret) and the admin API's activity reads.
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{Resp, TestApp};

const DIGEST: &str = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";

fn event(id: &str, action: &str, actor: &str, repository: &str, tag: Option<&str>) -> Value {
    let mut target = json!({
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 708, "digest": DIGEST, "length": 708, "repository": repository,
        "url": "http://registry/v2/x"
    });
    if let Some(t) = tag {
        target["tag"] = json!(t);
    }
    json!({
        "id": id, "timestamp": "2026-06-01T12:00:00.5Z", "action": action, "target": target,
        "request": {"id": "r", "addr": "10.1.2.3:4567", "host": "h", "method": "PUT", "useragent": "docker/27"},
        "actor": {"name": actor}, "source": {"addr": "reg:5000", "instanceID": "inst-1"}
    })
}

fn envelope(events: Vec<Value>) -> String {
    json!({ "events": events }).to_string()
}

async fn post(app: &TestApp, registry: &str, auth: Option<&str>, body: impl Into<Body>) -> Resp {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(format!("/events/{registry}"))
        .header(
            header::CONTENT_TYPE,
            "application/vnd.docker.distribution.events.v1+json",
        );
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    app.send(b.body(body.into()).unwrap()).await
}

fn bearer(app: &TestApp) -> String {
    format!("Bearer {}", app.state.activity.secret("default").unwrap())
}

async fn total(app: &TestApp) -> u64 {
    let r = app
        .api(Method::GET, "/registries/default/activity", None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["total"].as_u64().unwrap()
}

#[tokio::test]
async fn events_are_stored_once_and_read_by_registry_and_by_token() {
    let app = TestApp::new();
    let (id, _) = app.create("ci-bot", json!([])).await;
    let body = envelope(vec![
        event("e1", "push", "ci-bot", "team/app", Some("v1")),
        event("e2", "pull", "ci-bot", "team/app", None),
        event("e3", "pull", "someone-else", "other/app", Some("v1")),
        // A layer: dropped.
        json!({"id": "blob", "timestamp": "2026-06-01T12:00:00Z", "action": "push",
            "target": {"mediaType": "application/octet-stream", "digest": DIGEST, "repository": "team/app"},
            "actor": {"name": "ci-bot"}}),
    ]);
    let r = post(&app, "default", Some(&bearer(&app)), body.clone()).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json(), json!({"received": 4, "kept": 3, "stored": 3}));
    // The registry retries: nothing new.
    let r = post(&app, "default", Some(&bearer(&app)), body).await;
    assert_eq!(r.json(), json!({"received": 4, "kept": 3, "stored": 0}));
    assert_eq!(total(&app).await, 3);

    let r = app
        .api(
            Method::GET,
            &format!("/registries/default/tokens/{id}/activity"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["id"], format!("{id}-activity"));
    assert_eq!(v["type"], "collection");
    assert_eq!(
        (v["total"].as_u64(), v["count"].as_u64()),
        (Some(2), Some(2))
    );
    let first = &v["items"][0];
    assert_eq!(first["id"], "e2", "newest first (same time: id descending)");
    let push = &v["items"][1];
    assert_eq!(push["action"], "push");
    assert_eq!(push["repository"], "team/app");
    assert_eq!(push["tag"], "v1");
    assert_eq!(push["digest"], DIGEST);
    assert_eq!(
        push["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(push["size"], 708);
    assert_eq!(push["actor"], "ci-bot");
    assert_eq!(push["clientAddr"], "10.1.2.3:4567");
    assert_eq!(push["userAgent"], "docker/27");
    assert_eq!(push["instance"], "inst-1");
    assert_eq!(push["time"], "2026-06-01T12:00:00.500Z");

    let r = app
        .api(
            Method::GET,
            &format!("/registries/default/tokens/{id}/activity?action=push"),
            None,
        )
        .await;
    assert_eq!(r.json()["total"], 1);
    // Who pushed this image?
    let r = app
        .api(
            Method::GET,
            &format!("/registries/default/activity?digest={DIGEST}&action=push"),
            None,
        )
        .await;
    assert_eq!(r.json()["items"][0]["actor"], "ci-bot");
    let r = app
        .api(
            Method::GET,
            "/registries/default/activity?repository=other/*",
            None,
        )
        .await;
    assert_eq!(r.json()["items"][0]["actor"], "someone-else");
    let r = app
        .api(
            Method::GET,
            "/registries/default/activity?actor=ci-bot&tag=v1",
            None,
        )
        .await;
    assert_eq!(r.json()["total"], 1);
    let r = app
        .api(
            Method::GET,
            "/registries/default/activity?since=2026-06-02T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(r.json()["total"], 0);
    let r = app
        .api(
            Method::GET,
            "/registries/default/activity?limit=1&offset=1",
            None,
        )
        .await;
    let v = r.json();
    assert_eq!(
        (v["count"].as_u64(), v["total"].as_u64()),
        (Some(1), Some(3))
    );
    assert!(v["_links"]["next"]
        .as_str()
        .unwrap()
        .contains("offset=2&limit=1"));
}

#[tokio::test]
async fn bad_envelopes_get_a_clear_status_and_store_nothing() {
    let app = TestApp::new();
    let good = envelope(vec![event("g", "push", "a", "r", Some("t"))]);
    let cases: Vec<(Option<String>, Body, StatusCode, &str)> = vec![
        (None, good.clone().into(), StatusCode::UNAUTHORIZED, ""),
        (
            Some("Bearer wrong".into()),
            good.clone().into(),
            StatusCode::UNAUTHORIZED,
            "",
        ),
        // The admin token is not the events secret.
        (
            Some(format!("Bearer {}", crate::support::ADMIN)),
            good.clone().into(),
            StatusCode::UNAUTHORIZED,
            "",
        ),
        (
            Some(bearer(&app)),
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "not a notification envelope",
        ),
        (
            Some(bearer(&app)),
            vec![b' '; 10 * 1024 * 1024].into(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "1048576",
        ),
        (
            Some(bearer(&app)),
            envelope(vec![event("u", "copy", "a", "r", Some("t"))]).into(),
            StatusCode::BAD_REQUEST,
            "events[0].action: \"copy\" is not one of push, pull, delete, mount",
        ),
        (
            Some(bearer(&app)),
            // Small events, so that the envelope is within the body bound.
            envelope(
                (0..10_000)
                    .map(|i| json!({"id": format!("m{i}"), "action": "pull"}))
                    .collect(),
            )
            .into(),
            StatusCode::BAD_REQUEST,
            "10000 events in one envelope; at most 1000",
        ),
    ];
    for (auth, body, status, message) in cases {
        let r = post(&app, "default", auth.as_deref(), body).await;
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.api_error().contains(message), "{}", r.api_error());
    }
    // Another registry's secret, an unknown registry.
    let r = post(&app, "nowhere", Some(&bearer(&app)), good.clone()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        total(&app).await,
        0,
        "nothing of a refused envelope is stored"
    );
    let r = post(&app, "default", Some(&bearer(&app)), good).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(total(&app).await, 1);
}

#[tokio::test]
async fn activity_queries_are_checked() {
    let app = TestApp::new();
    for (query, message) in [
        (
            "action=copy",
            "action: \"copy\" is not one of push, pull, delete, mount",
        ),
        ("digest=md5:zz", "digest: \"md5:zz\" is not a digest"),
        ("repository=Team/*", "repository: "),
        ("since=yesterday", "since: not an RFC 3339 time"),
        ("limit=0", "limit: must be an integer from 1 to 1000"),
    ] {
        let r = app
            .api(
                Method::GET,
                &format!("/registries/default/activity?{query}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            r.api_error().contains(message),
            "{query}: {}",
            r.api_error()
        );
    }
    let r = app
        .api(Method::GET, "/registries/nowhere/activity", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .api(
            Method::GET,
            "/registries/default/tokens/00000000-0000-0000-0000-000000000000/activity",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn named_admin(app: &TestApp, name: &str, role: &str) -> String {
    let r = app
        .api(
            Method::POST,
            "/admins",
            Some(json!({"name": name, "role": role})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    r.json()["secret"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn viewers_read_activity_and_only_editors_see_the_events_secret() {
    let app = TestApp::new();
    let viewer = named_admin(&app, "vera", "viewer").await;
    let editor = named_admin(&app, "eddie", "editor").await;
    let secret = app.state.activity.secret("default").unwrap().to_string();
    let r = app
        .get(
            "/api/v1/registries/default/activity",
            Some(&format!("Bearer {viewer}")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .get(
            "/api/v1/registries/default",
            Some(&format!("Bearer {viewer}")),
        )
        .await;
    let n = &r.json()["properties"]["notifications"];
    assert_eq!(
        n["url"],
        format!("{}/events/default", app.config.public_url)
    );
    assert!(n.get("secret").is_none(), "{n}");
    let r = app
        .get(
            "/api/v1/registries/default",
            Some(&format!("Bearer {editor}")),
        )
        .await;
    assert_eq!(r.json()["properties"]["notifications"]["secret"], secret);
}

/// A broad filter over many events counts a bounded number of matches and says so
/// (`totalIsLowerBound`); the next page is still linked. An exact total has no such field.
#[tokio::test]
async fn a_broad_filter_says_its_total_is_a_lower_bound() {
    let app = TestApp::new();
    for batch in 0..2 {
        let events = (0..600)
            .map(|i| {
                event(
                    &format!("b{batch}-{i}"),
                    "push",
                    "ci-bot",
                    "team/app",
                    Some("v1"),
                )
            })
            .collect();
        let r = post(&app, "default", Some(&bearer(&app)), envelope(events)).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = app
        .api(
            Method::GET,
            "/registries/default/activity?repository=team/*&limit=50",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["count"], 50);
    assert_eq!(v["total"], 1050, "50 and 1000 more counted: {}", v["total"]);
    assert_eq!(v["totalIsLowerBound"], true);
    assert!(v["_links"]["next"].as_str().unwrap().contains("offset=50"));
    let r = app
        .api(
            Method::GET,
            "/registries/default/activity?repository=team/*&limit=50&offset=1150",
            None,
        )
        .await;
    let v = r.json();
    assert_eq!(
        (v["count"].clone(), v["total"].clone()),
        (json!(50), json!(1200))
    );
    assert!(v.get("totalIsLowerBound").is_none(), "exact: {v}");
    assert!(v["_links"].get("next").is_none_or(Value::is_null), "{v}");
}
