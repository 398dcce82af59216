//! Named admins with roles: each role against each endpoint (a table), a registry-limited
//! editor refused on another registry, the 403 naming the role needed, the audit and
//! `createdBy` naming the admin, and rotate/delete of admins ending their secrets.
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::logs::Log;
use crate::support::*;

fn two_registries() -> TestApp {
    TestApp::with(|c| {
        c.registries.push(regauth::config::RegistryConfig::new(
            "staging",
            "registry.staging",
            "staging:5000",
        ))
    })
}

/// A call with `secret` as the bearer.
async fn call(
    app: &TestApp,
    secret: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    app.call_as(secret, AdminCall::new(method, path, body))
        .await
}

/// Creates an admin with the bootstrap token; returns its secret.
async fn admin(app: &TestApp, name: &str, role: &str, registries: &[&str]) -> String {
    let v = app
        .call(AdminCall::create_admin(name, role, registries))
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(v["name"], name);
    assert_eq!(v["role"], role);
    assert_eq!(v["createdBy"], "bootstrap");
    v["secret"].as_str().unwrap().to_string()
}

/// Each role against each endpoint. Columns: viewer, editor, owner, editor limited to
/// `staging` (the requests are on `default`), bootstrap.
#[tokio::test]
async fn each_role_against_each_endpoint() {
    let app = two_registries();
    let viewer = admin(&app, "vera", "viewer", &[]).await;
    let editor = admin(&app, "eddie", "editor", &[]).await;
    let owner = admin(&app, "olga", "owner", &[]).await;
    let limited = admin(&app, "lim", "editor", &["staging"]).await;
    let who = [
        viewer.as_str(),
        editor.as_str(),
        owner.as_str(),
        limited.as_str(),
        ADMIN,
    ];

    const OK: u16 = 200;
    const NO: u16 = 403;
    // Each row makes its own token where it needs one, so rows do not depend on each other.
    type Row = (Method, &'static str, Option<Value>, [u16; 5]);
    let rows: Vec<Row> = vec![
        (Method::GET, "/registries", None, [OK, OK, OK, OK, OK]),
        (
            Method::GET,
            "/registries/default",
            None,
            [OK, OK, OK, NO, OK],
        ),
        (
            Method::GET,
            "/registries/default/tokens",
            None,
            [OK, OK, OK, NO, OK],
        ),
        (
            Method::GET,
            "/registries/default/tokens/{id}",
            None,
            [OK, OK, OK, NO, OK],
        ),
        (
            Method::POST,
            "/registries/default/tokens",
            Some(json!({"properties": {"name": "new-tok{i}"}})),
            [NO, 201, 201, NO, 201],
        ),
        (
            Method::PATCH,
            "/registries/default/tokens/{id}",
            Some(json!({"status": "disabled"})),
            [NO, OK, OK, NO, OK],
        ),
        (
            Method::PUT,
            "/registries/default/tokens/{id}",
            Some(json!({"properties": {"name": "tok{i}"}})),
            [NO, OK, OK, NO, OK],
        ),
        (
            Method::POST,
            "/registries/default/tokens/{id}/credentials",
            None,
            [NO, OK, OK, NO, OK],
        ),
        (
            Method::DELETE,
            "/registries/default/tokens/{id}",
            None,
            [NO, 204, 204, NO, 204],
        ),
        (
            Method::POST,
            "/registries/default/offboarding?owner=nobody",
            None,
            [NO, OK, OK, NO, OK],
        ),
        (Method::GET, "/admins", None, [NO, NO, OK, NO, OK]),
        (
            Method::POST,
            "/admins",
            Some(json!({"name": "new{i}", "role": "viewer"})),
            [NO, NO, 201, NO, 201],
        ),
        (
            Method::POST,
            "/admins/victim/credentials",
            None,
            [NO, NO, OK, NO, OK],
        ),
        (Method::GET, "/admins/me", None, [OK, OK, OK, OK, OK]),
    ];
    let mut n = 0;
    for (method, path, body, expected) in rows {
        for (col, (secret, want)) in who.iter().zip(expected).enumerate() {
            n += 1;
            let (token_id, _) = app.create(&format!("tok{n}"), json!([])).await;
            let path = path.replace("{id}", &token_id);
            let body = body.clone().map(|b| {
                serde_json::from_str(&b.to_string().replace("{i}", &n.to_string())).unwrap()
            });
            if path.starts_with("/admins/victim") {
                app.api(Method::DELETE, "/admins/victim", None).await;
                admin(&app, "victim", "viewer", &[]).await;
            }
            let r = call(&app, secret, method.clone(), &path, body).await;
            assert_eq!(
                r.status.as_u16(),
                want,
                "{method} {path} as column {col}: {}",
                String::from_utf8_lossy(&r.body)
            );
            if want == NO {
                let message = r.api_error();
                assert!(
                    message.contains("role;") || message.contains("limited to registries"),
                    "{message}"
                );
            }
        }
    }
    // Delete, last, since it removes the admin.
    for (secret, want) in [
        (viewer.as_str(), 403),
        (editor.as_str(), 403),
        (limited.as_str(), 403),
        (owner.as_str(), 204),
    ] {
        admin(&app, "gone", "viewer", &[]).await;
        let r = call(&app, secret, Method::DELETE, "/admins/gone", None).await;
        assert_eq!(r.status.as_u16(), want);
        if want == 403 {
            app.api(Method::DELETE, "/admins/gone", None).await;
        }
    }
}

/// The 403 names the role needed and the admin's own; a registry-limited editor works on its
/// registry, is refused on another, and sees only its registries in the list.
#[tokio::test]
async fn refusals_name_the_role_and_limited_admins_see_their_registries() {
    let app = two_registries();
    let viewer = admin(&app, "alice", "viewer", &[]).await;
    let r = app
        .call_as(
            &viewer,
            AdminCall::create_token("default", &NewToken::named("xyz")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.api_error(),
        "this needs the editor role; alice is a viewer"
    );
    let r = call(&app, &viewer, Method::GET, "/admins", None).await;
    assert_eq!(
        r.api_error(),
        "this needs the owner role; alice is a viewer"
    );

    let limited = admin(&app, "bob", "editor", &["staging"]).await;
    let r = app
        .call_as(
            &limited,
            AdminCall::create_token("staging", &NewToken::named("okay")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call_as(
            &limited,
            AdminCall::create_token("default", &NewToken::named("nope")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.api_error(),
        "bob is limited to registries staging; not default"
    );
    let r = call(&app, &limited, Method::GET, "/registries", None).await;
    assert_eq!(
        r.json()["items"].as_array().unwrap().len(),
        1,
        "{}",
        r.json()
    );
    assert_eq!(r.json()["items"][0]["id"], "staging");
    // An owner limited to a registry cannot make itself an unlimited owner.
    let limited_owner = admin(&app, "olga", "owner", &["staging"]).await;
    let r = call(
        &app,
        &limited_owner,
        Method::POST,
        "/admins",
        Some(json!({"name": "mallory", "role": "owner"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.api_error().contains("owner of every registry"));
    let r = call(&app, &limited, Method::GET, "/admins/me", None).await;
    assert_eq!(
        r.json(),
        json!({"name": "bob", "role": "editor", "registries": ["staging"]})
    );
    let r = app.api(Method::GET, "/admins/me", None).await;
    assert_eq!(
        r.json(),
        json!({"name": "bootstrap", "role": "owner", "registries": []})
    );
}

/// Audit lines and `createdBy`/`lastModifiedBy` name the admin who acted.
#[tokio::test]
async fn audit_and_metadata_name_the_admin() {
    let app = TestApp::new();
    let editor = admin(&app, "carol", "editor", &[]).await;
    let (log, _guard) = Log::capture();
    let token = app
        .call_as(
            &editor,
            AdminCall::create_token("default", &NewToken::named("ci-bot")),
        )
        .await
        .created("default");
    let v = &token.body;
    assert_eq!(v["metadata"]["createdBy"], "carol");
    assert_eq!(v["metadata"]["lastModifiedBy"], "carol");
    let r = app
        .call(AdminCall::disable_token("default", &token.id))
        .await;
    assert_eq!(r.json()["metadata"]["lastModifiedBy"], "bootstrap");
    assert_eq!(r.json()["metadata"]["createdBy"], "carol");

    let (_, json) = log.take();
    let admins: Vec<&str> = json
        .iter()
        .filter(|o| o["target"] == "regauth::audit" && o["message"] == "admin action")
        .map(|o| o["admin"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(admins, ["carol", "bootstrap"]);

    // The metrics name them too (issue 23).
    let metrics = app.scrape().await;
    for series in [
        "regauth_admin_actions_total{action=\"create\",outcome=\"ok\",admin=\"carol\"} 1\n",
        "regauth_admin_actions_total{action=\"patch\",outcome=\"ok\",admin=\"bootstrap\"} 1\n",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(
        !metrics.contains("action=\"create\",outcome=\"ok\",admin=\"bootstrap\""),
        "{metrics}"
    );
}

/// Rotating an admin ends its old secret; deleting ends the new one; both are audited, the
/// secret is never logged, and a deleted admin's secret is a 401 like any wrong token.
#[tokio::test]
async fn rotate_and_delete_admins() {
    let app = TestApp::new();
    let (log, _guard) = Log::capture();
    let old = admin(&app, "dave", "viewer", &[]).await;
    assert_eq!(
        call(&app, &old, Method::GET, "/registries", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .api(Method::POST, "/admins/dave/credentials", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let new = r.json()["secret"].as_str().unwrap().to_string();
    assert!(r.json()["lastRotatedDate"].is_string());
    assert_eq!(
        call(&app, &old, Method::GET, "/registries", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, &new, Method::GET, "/registries", None)
            .await
            .status,
        StatusCode::OK
    );
    let list = app.api(Method::GET, "/admins", None).await.json();
    assert_eq!(list["items"][0]["name"], "dave");
    assert!(list["items"][0].get("secret").is_none());
    assert_eq!(
        app.api(Method::DELETE, "/admins/dave", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, &new, Method::GET, "/registries", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.api(Method::DELETE, "/admins/dave", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.api(Method::POST, "/admins/dave/credentials", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Bad input is a 400 naming the field.
    let r = app
        .api(
            Method::POST,
            "/admins",
            Some(json!({"name": "xyz", "role": "god"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().starts_with("role:"), "{}", r.api_error());
    let r = app
        .api(
            Method::POST,
            "/admins",
            Some(json!({"name": "xyz", "role": "viewer", "registries": ["nope"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .api(
            Method::POST,
            "/admins",
            Some(json!({"name": "bootstrap", "role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let (text, json) = log.take();
    for s in [&old, &new] {
        assert!(
            !text.iter().any(|l| l.contains(s.as_str())),
            "secret logged"
        );
    }
    let managed: Vec<(String, String, u64)> = json
        .iter()
        .filter(|o| o["message"] == "admin managed")
        .map(|o| {
            (
                o["action"].as_str().unwrap().to_string(),
                o["target_admin"].as_str().unwrap().to_string(),
                o["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        managed.contains(&("create".into(), "dave".into(), 201)),
        "{managed:?}"
    );
    assert!(
        managed.contains(&("rotate".into(), "dave".into(), 200)),
        "{managed:?}"
    );
    assert!(
        managed.contains(&("delete".into(), "dave".into(), 204)),
        "{managed:?}"
    );
    assert!(json
        .iter()
        .all(|o| o["message"] != "admin managed" || o["admin"] == "bootstrap"));
}

/// `GET /api/v1/admins` is a collection in the token list's shape (id, type, href, items,
/// offset, limit, count, total, `_links`), paged by `offset` and `limit` with the same rules.
#[tokio::test]
async fn admin_list_is_a_collection_shaped_like_the_token_list() {
    let app = TestApp::new();
    for name in ["carol", "alice", "bob"] {
        let r = app
            .api(
                Method::POST,
                "/admins",
                Some(json!({"name": name, "role": "viewer"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}");
    }
    let tokens = app.list_tokens("").await;
    let all = app.api(Method::GET, "/admins", None).await.json();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&all), keys(&tokens), "{all}");
    assert_eq!(all["id"], "admins");
    assert_eq!(all["type"], "collection");
    assert!(
        all["href"].as_str().unwrap().ends_with("/api/v1/admins"),
        "{all}"
    );
    assert_eq!(
        (all["offset"].as_u64(), all["limit"].as_u64()),
        (Some(0), Some(100))
    );
    assert_eq!(
        (all["count"].as_u64(), all["total"].as_u64()),
        (Some(3), Some(3))
    );
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(all["_links"].get("next").is_none(), "{all}");

    let first = app.api(Method::GET, "/admins?limit=2", None).await.json();
    assert_eq!(first["count"], 2);
    assert_eq!(first["total"], 3);
    let next = first["_links"]["next"].as_str().unwrap();
    assert!(next.ends_with("/api/v1/admins?offset=2&limit=2"), "{next}");
    let second = app
        .api(Method::GET, "/admins?offset=2&limit=2", None)
        .await
        .json();
    assert_eq!(second["items"][0]["name"], "carol");
    assert_eq!(second["count"], 1);
    assert!(second["_links"].get("next").is_none());
    assert!(second["_links"]["previous"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/admins?offset=0&limit=2"));
    for bad in ["limit=0", "limit=1001", "offset=-1", "limit=x"] {
        let r = app.api(Method::GET, &format!("/admins?{bad}"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        let key = bad.split('=').next().unwrap();
        assert!(
            String::from_utf8_lossy(&r.body).contains(&format!("{key}: must be an integer")),
            "{bad}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}
