//! The admin API's audit trail (every write is one `regauth::audit` line, failed admin
//! authentications too, never a secret), the 404 of a change racing a delete, and the
//! caching and sniffing headers of every response.
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use regauth::testing::{Fault, FaultStore, Method as StoreMethod};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::logs::Log;
use crate::support::*;

const CLIENT: &str = "192.0.2.7:41000";

fn client() -> SocketAddr {
    CLIENT.parse().unwrap()
}

/// The audit lines (JSON) written since the last call; also checks that the text format
/// wrote as many, and that no line of either format holds any of `secrets`.
fn audit(log: &Log, secrets: &[&str]) -> Vec<Value> {
    let (text, json) = log.take();
    for secret in secrets {
        assert!(
            !text.iter().any(|l| l.contains(secret)),
            "a secret in the log: {text:#?}"
        );
        assert!(
            !json.iter().any(|o| o.to_string().contains(secret)),
            "a secret in the log: {json:#?}"
        );
    }
    let lines: Vec<Value> = json
        .into_iter()
        .filter(|o| o["target"] == "regauth::audit")
        .collect();
    let text_lines = text
        .iter()
        .filter(|l| l.contains(" regauth::audit: "))
        .count();
    assert_eq!(text_lines, lines.len(), "{text:#?}");
    lines
}

/// The one audit line of the last request.
fn one(log: &Log, secrets: &[&str]) -> Value {
    let lines = audit(log, secrets);
    assert_eq!(lines.len(), 1, "one audit line per admin write: {lines:#?}");
    lines.into_iter().next().unwrap()
}

/// Asserts the audit line's fields: (action, token, id, outcome, status).
fn check(line: &Value, action: &str, token: &str, id: &str, outcome: &str, status: u16) {
    assert_eq!(line["message"], "admin action", "{line}");
    assert_eq!(line["action"], action, "{line}");
    assert_eq!(line["registry"], "default", "{line}");
    assert_eq!(line["token"], token, "{line}");
    assert_eq!(line["id"], id, "{line}");
    assert_eq!(line["outcome"], outcome, "{line}");
    assert_eq!(line["status"], status, "{line}");
    assert_eq!(line["client"], "192.0.2.7", "{line}");
    // Straight from the client: the peer is the client, written once.
    assert!(line.get("peer").is_none(), "{line}");
}

/// Finding 5: create, conflict, replace, create by PUT, patch, rotate, delete and their
/// failures each write one line with action, registry, token name and id, the fields written
/// (values, never a password or hash), the client and the outcome; reads write none. Each is
/// counted in `regauth_admin_actions_total`.
#[tokio::test]
async fn every_admin_write_is_one_audit_line_without_secrets() {
    let app = TestApp::new();
    let (log, _guard) = Log::capture();
    let scopes = json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]);

    let created = app
        .call_from(
            client(),
            AdminCall::create_token(
                "default",
                &NewToken::named("ci-bot")
                    .scopes(scopes)
                    .expiry("2026-12-01T10:00:00Z"),
            ),
        )
        .await
        .created("default");
    let id = created.id.clone();
    let password = created.password().to_string();
    let line = one(&log, &[&password]);
    check(&line, "create", "ci-bot", &id, "ok", 201);
    assert_eq!(
        line["changes"],
        "name=ci-bot status=enabled expiryDate=2026-12-01T10:00:00Z scopes=[repository:team/*:pull]"
    );

    let r = app
        .call_from(
            client(),
            AdminCall::create_token("default", &NewToken::named("ci-bot")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    check(&one(&log, &[]), "create", "ci-bot", "", "conflict", 409);

    let r = app
        .call_from(
            client(),
            AdminCall::create_token("default", &NewToken::from_properties(json!({}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    check(&one(&log, &[]), "create", "", "", "invalid", 400);

    let r = app
        .call_from(
            client(),
            AdminCall::replace_token(
                "default",
                &id,
                &NewToken::named("ci-bot").status("disabled"),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let line = one(&log, &[]);
    check(&line, "replace", "ci-bot", &id, "ok", 200);
    assert_eq!(
        line["changes"],
        "name=ci-bot status=disabled expiryDate=none scopes=[]"
    );

    let new_id = Uuid::new_v4().to_string();
    let put_password = app
        .call_from(
            client(),
            AdminCall::replace_token("default", &new_id, &NewToken::named("put-bot")),
        )
        .await
        .created("default")
        .password()
        .to_string();
    check(
        &one(&log, &[&put_password]),
        "create",
        "put-bot",
        &new_id,
        "ok",
        201,
    );

    let patch = |id: &str, body: Value| AdminCall::patch_token("default", id, body);
    let r = app
        .call_from(client(), patch(&id, json!({"status": "enabled"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let line = one(&log, &[]);
    check(&line, "patch", "ci-bot", &id, "ok", 200);
    assert_eq!(line["changes"], "status=enabled");

    let r = app
        .call_from(client(), patch(&id, json!({"status": "paused"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    check(&one(&log, &[]), "patch", "", &id, "invalid", 400);

    let nobody = Uuid::new_v4().to_string();
    let r = app
        .call_from(client(), AdminCall::disable_token("default", &nobody))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    check(&one(&log, &[]), "patch", "", &nobody, "not found", 404);

    let rotated = app
        .call_from(
            client(),
            AdminCall::rotate_password("default", &id, Some(json!({"gracePeriodSeconds": 600}))),
        )
        .await
        .expect_ok()["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    let line = one(&log, &[&rotated, &password]);
    check(&line, "rotate", "ci-bot", &id, "ok", 200);
    assert_eq!(line["changes"], "password gracePeriodSeconds=600");

    // Reads are not audited.
    for read in [
        AdminCall::list_tokens("default", ""),
        AdminCall::get_token("default", &id),
        AdminCall::new(Method::GET, "/registries", None),
    ] {
        app.call_from(client(), read).await.expect(StatusCode::OK);
    }
    assert_eq!(audit(&log, &[]).len(), 0, "reads write no audit line");

    let delete = AdminCall::delete_token("default", &id);
    let r = app.call_from(client(), delete.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    check(&one(&log, &[]), "delete", "ci-bot", &id, "ok", 204);
    let r = app.call_from(client(), delete).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    check(&one(&log, &[]), "delete", "", &id, "not found", 404);

    let metrics = app.scrape().await;
    for (action, outcome, n) in [
        ("create", "ok", 2),
        ("create", "conflict", 1),
        ("create", "invalid", 1),
        ("replace", "ok", 1),
        ("patch", "ok", 1),
        ("patch", "invalid", 1),
        ("patch", "not_found", 1),
        ("rotate", "ok", 1),
        ("delete", "ok", 1),
        ("delete", "not_found", 1),
    ] {
        let series = format!(
            "regauth_admin_actions_total{{action=\"{action}\",outcome=\"{outcome}\",admin=\"bootstrap\"}} {n}\n"
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    // A series is made by the first write of its kind by its admin: none for what no one did.
    assert!(
        !metrics.contains("action=\"delete\",outcome=\"error\""),
        "{metrics}"
    );
}

/// Finding 5: a missing or wrong admin token is an audit line with the address, the method,
/// the path and why, never the token presented; counted by reason.
#[tokio::test]
async fn failed_admin_authentication_is_audited_without_the_token() {
    let app = TestApp::new();
    let (log, _guard) = Log::capture();
    let presented = "guess-0123456789-abcdef";
    for (authorization, reason) in [
        (None, "no admin token"),
        (Some(format!("Bearer {presented}")), "wrong admin token"),
        (Some(format!("Basic {presented}")), "no admin token"),
    ] {
        let mut b = Request::builder()
            .method(Method::DELETE)
            .uri(format!(
                "/api/v1/registries/default/tokens/{}",
                Uuid::new_v4()
            ))
            .extension(axum::extract::ConnectInfo(client()));
        if let Some(a) = &authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        let r = app.send(b.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let line = one(&log, &[presented]);
        assert_eq!(line["message"], "admin authentication failed", "{line}");
        assert_eq!(line["reason"], reason, "{line}");
        assert_eq!(line["client"], "192.0.2.7", "{line}");
        assert_eq!(line["method"], "DELETE", "{line}");
        assert!(
            line["path"]
                .as_str()
                .unwrap()
                .starts_with("/api/v1/registries/default/tokens/"),
            "{line}"
        );
        assert_eq!(line["outcome"], "denied", "{line}");
        assert_eq!(line["level"], "WARN", "{line}");
    }
    let metrics = app.scrape().await;
    assert!(
        metrics.contains("regauth_admin_auth_failures_total{reason=\"missing\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("regauth_admin_auth_failures_total{reason=\"wrong\"} 1\n"),
        "{metrics}"
    );
}

/// Finding 8: PATCH, PUT and a rotation that lose the race against a DELETE answer 404 with
/// the API's usual body (not 500), and the audit line says "not found".
#[tokio::test]
async fn a_change_racing_a_delete_is_a_404() {
    // Its `update` finds the token deleted first: a DELETE that committed between the
    // change's read and its write.
    let store = Arc::new(FaultStore::default());
    let app = TestApp::with_store(store.clone(), |_| {});
    let (log, _guard) = Log::capture();
    let cases = [
        (Method::PATCH, "", json!({"status": "disabled"})),
        (
            Method::PUT,
            "",
            json!({"properties": {"name": "racer", "status": "disabled"}}),
        ),
        (Method::POST, "/credentials", json!({})),
    ];
    for (method, suffix, body) in cases {
        let (id, _) = app.create("racer", json!([])).await;
        let updates = store.calls(StoreMethod::Update);
        store.once(StoreMethod::Update, Fault::DeleteFirst);
        let r = app
            .api_from(
                client(),
                method.clone(),
                &format!("/registries/default/tokens/{id}{suffix}"),
                Some(body),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.api_error(), format!("token {id} not found"), "{method}");
        assert_eq!(
            store.calls(StoreMethod::Update),
            updates + 1,
            "{method}: the race happened"
        );
        let lines = audit(&log, &[]);
        let last = lines.last().unwrap();
        assert_eq!(last["outcome"], "not found", "{method}: {last}");
        assert_eq!(last["status"], 404, "{method}: {last}");
    }
}

/// Finding 6: every admin response (success, error, a 201 with a password, a 401 of the admin
/// token check, an unknown route under /api) has `Cache-Control: no-store`; every response of
/// every route has `X-Content-Type-Options: nosniff`.
#[tokio::test]
async fn every_response_has_nosniff_and_every_admin_response_no_store() {
    let app = TestApp::new();
    let (id, pw) = app.create("ci-bot", json!([])).await;
    let mut admin = vec![
        ("list", app.api(Method::GET, "/registries", None).await),
        (
            "201",
            app.call(AdminCall::create_token(
                "default",
                &NewToken::named("other"),
            ))
            .await,
        ),
        (
            "rotate",
            app.call(AdminCall::rotate_password("default", &id, None))
                .await,
        ),
        (
            "400",
            app.call(AdminCall::patch_token("default", &id, json!({"status": 1})))
                .await,
        ),
        (
            "404 token",
            app.call(AdminCall::get_token("default", &Uuid::new_v4().to_string()))
                .await,
        ),
        ("404 route", app.api(Method::GET, "/nowhere", None).await),
        ("405", app.api(Method::PATCH, "/registries", None).await),
        (
            "204",
            app.call(AdminCall::delete_token("default", &id)).await,
        ),
    ];
    admin.push(("401", app.get("/api/v1/registries", None).await));
    admin.push((
        "401 wrong",
        app.get("/api/v1/registries", Some("Bearer wrong-token-0123456789"))
            .await,
    ));
    admin.push(("openapi", app.get("/api/v1/openapi.json", None).await));
    for (case, r) in &admin {
        assert_eq!(
            r.headers
                .get(header::CACHE_CONTROL)
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{case}: {:?}",
            r.status
        );
    }
    let mut others = vec![
        (
            "auth 401",
            app.auth_get("other", "x", "service=registry.local").await,
        ),
        (
            "auth 200",
            app.auth_get("ci-bot", &pw, "service=registry.local").await,
        ),
        ("auth 400", app.get("/auth", None).await),
        ("health", app.get("/health", None).await),
        ("404", app.get("/no/such/path", None).await),
        ("console", app.get("/console/", None).await),
        ("redirect", app.get("/", None).await),
    ];
    let metrics = app
        .metrics
        .clone()
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(metrics.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let unknown = app
        .metrics
        .clone()
        .oneshot(
            Request::builder()
                .uri("/other")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    others.append(&mut admin);
    for (case, r) in &others {
        assert_eq!(
            r.headers
                .get(header::X_CONTENT_TYPE_OPTIONS)
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{case}: {:?}",
            r.status
        );
    }
}

use tower::ServiceExt as _;

/// Issue 21: `client` is the client (the `X-Forwarded-For` address when the TCP peer is a
/// trusted proxy), and then `peer` names the proxy too, in both log formats; a forged
/// header from an untrusted peer changes nothing.
#[tokio::test]
async fn audit_records_the_client_and_a_differing_peer() {
    let app = TestApp::new();
    let (log, _guard) = Log::capture();
    let create = |peer: &str, name: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/registries/default/tokens")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", "203.0.113.9")
            .extension(axum::extract::ConnectInfo(
                format!("{peer}:41000").parse::<SocketAddr>().unwrap(),
            ))
            .body(Body::from(
                json!({"properties": {"name": name}}).to_string(),
            ))
            .unwrap()
    };
    // 127.0.0.1 is a trusted proxy by default.
    let r = app.send(create("127.0.0.1", "via-proxy")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (text, json) = log.take();
    let line = json
        .iter()
        .find(|o| o["target"] == "regauth::audit")
        .unwrap();
    assert_eq!(line["client"], "203.0.113.9", "{line}");
    assert_eq!(line["peer"], "127.0.0.1", "{line}");
    let text = text
        .iter()
        .find(|l| l.contains(" regauth::audit: "))
        .unwrap();
    assert!(text.contains("client=203.0.113.9 peer=127.0.0.1"), "{text}");

    let r = app.send(create("192.0.2.7", "direct")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let line = one(&log, &[]);
    assert_eq!(line["client"], "192.0.2.7", "{line}");
    assert!(line.get("peer").is_none(), "{line}");
}

/// A failed admin authentication through a trusted proxy names both the client and the proxy,
/// as the admin action lines do.
#[tokio::test]
async fn failed_admin_authentication_records_a_differing_peer() {
    let app = TestApp::new();
    let (log, _guard) = Log::capture();
    let list = |peer: &str| {
        Request::builder()
            .uri("/api/v1/registries/default/tokens")
            .header(header::AUTHORIZATION, "Bearer not-the-admin-token")
            .header("x-forwarded-for", "203.0.113.9")
            .extension(axum::extract::ConnectInfo(
                format!("{peer}:41000").parse::<SocketAddr>().unwrap(),
            ))
            .body(Body::empty())
            .unwrap()
    };
    let r = app.send(list("127.0.0.1")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, json) = log.take();
    let line = json
        .iter()
        .find(|o| o["target"] == "regauth::audit")
        .unwrap();
    assert_eq!(line["message"], "admin authentication failed", "{line}");
    assert_eq!(line["client"], "203.0.113.9", "{line}");
    assert_eq!(line["peer"], "127.0.0.1", "{line}");

    let r = app.send(list("192.0.2.7")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, json) = log.take();
    let line = json
        .iter()
        .find(|o| o["target"] == "regauth::audit")
        .unwrap();
    assert_eq!(line["client"], "192.0.2.7", "{line}");
    assert!(line.get("peer").is_none(), "{line}");
}
