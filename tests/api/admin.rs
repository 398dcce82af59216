//! Admin API: every endpoint and its error paths.
use axum::http::{header, Method, StatusCode};
use chrono::Duration;
use serde_json::{json, Value};

use crate::support::*;

fn push_scope() -> Value {
    json!([{"type": "repository", "name": "team/*", "actions": ["pull", "push"]}])
}

#[tokio::test]
async fn requires_the_admin_token() {
    let app = TestApp::new();
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some("Basic YWRtaW46eA=="),
        Some("Bearer"),
    ] {
        let r = app.get("/api/v1/registries/default/tokens", auth).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(r.api_error().contains("admin token"));
        assert!(r.headers.get(header::WWW_AUTHENTICATE).is_some());
    }
    // Unknown paths are not probed without the token either.
    let r = app.get("/api/v1/nope", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.api(Method::GET, "/nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    r.api_error();
    let r = app
        .api(Method::DELETE, "/registries/default/tokens", None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.api_error().contains("method"));
}

#[tokio::test]
async fn create_then_get_shows_the_password_once() {
    let app = TestApp::new();
    let r = app
        .call(AdminCall::create_token(
            "default",
            &NewToken::named("ci-bot")
                .scopes(push_scope())
                .expiry("2026-07-01T00:00:00Z"),
        ))
        .await
        .expect(StatusCode::CREATED);
    let v = r.json();
    let id = v["id"].as_str().unwrap();
    assert_eq!(v["type"], "token");
    let href = format!("http://regauth.test/api/v1/registries/default/tokens/{id}");
    assert_eq!(v["href"], href.as_str());
    assert_eq!(
        r.headers.get(header::LOCATION).unwrap().to_str().unwrap(),
        href
    );
    let p = &v["properties"];
    assert_eq!(p["name"], "ci-bot");
    assert_eq!(p["status"], "enabled");
    assert_eq!(p["expiryDate"], "2026-07-01T00:00:00Z");
    assert_eq!(p["scopes"], push_scope());
    assert_eq!(p["credentials"]["username"], "ci-bot");
    let pw = p["credentials"]["password"].as_str().unwrap();
    assert!(pw.starts_with("rga_") && pw.len() >= 47, "{pw}");
    assert_eq!(v["metadata"]["state"], "AVAILABLE");
    assert_eq!(v["metadata"]["createdDate"], "2026-06-01T12:00:00Z");
    // The bootstrap admin token acts as `bootstrap` (named admins under their own names).
    assert_eq!(v["metadata"]["createdBy"], "bootstrap");
    assert_eq!(v["metadata"]["lastModifiedDate"], "2026-06-01T12:00:00Z");

    let g = app
        .call(AdminCall::get_token("default", id))
        .await
        .expect(StatusCode::OK);
    let gv = g.json();
    assert_eq!(
        gv["properties"]["credentials"],
        json!({"username": "ci-bot"})
    );
    assert!(!g.text().contains(pw));
    assert_eq!(gv["properties"]["scopes"], push_scope());
}

#[tokio::test]
async fn create_defaults_and_null_expiry() {
    let app = TestApp::new();
    let token = app
        .create_token("default", &NewToken::named("bare").no_expiry())
        .await;
    let p = &token.body["properties"];
    assert_eq!(p["status"], "enabled");
    assert_eq!(p["expiryDate"], Value::Null);
    assert_eq!(p["scopes"], json!([]));
}

#[tokio::test]
async fn duplicate_name_is_409_but_other_registry_is_fine() {
    let app = TestApp::with(|c| {
        c.registries.push(regauth::config::RegistryConfig::new(
            "staging",
            "registry.staging",
            "staging:5000",
        ))
    });
    app.create("dup", json!([])).await;
    let error = app
        .call(AdminCall::create_token("default", &NewToken::named("dup")))
        .await
        .expect_error(StatusCode::CONFLICT);
    assert!(error.message.contains("dup"));
    app.create_token("staging", &NewToken::named("dup")).await;
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let app = TestApp::new();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"properties": {"name": "ab"}}), "properties.name"),
        (
            json!({"properties": {"name": "Bad_Name"}}),
            "properties.name",
        ),
        (json!({"properties": {"name": "1abc"}}), "properties.name"),
        (json!({"properties": {"name": "abc-"}}), "properties.name"),
        (
            json!({"properties": {"name": "okname", "status": "paused"}}),
            "properties.status",
        ),
        (
            json!({"properties": {"name": "okname", "expiryDate": "tomorrow"}}),
            "properties.expiryDate",
        ),
        (
            json!({"properties": {"name": "okname", "expiryDate": "2026-06-01T12:30:00Z"}}),
            "properties.expiryDate",
        ),
        (
            json!({"properties": {"name": "okname", "expiryDate": "2020-01-01T00:00:00Z"}}),
            "properties.expiryDate",
        ),
        (
            json!({"properties": {"name": "okname", "scopes": [{"type": "repository", "name": "a/*", "actions": ["push"]}]}}),
            "properties.scopes[0].actions",
        ),
        (
            json!({"properties": {"name": "okname", "scopes": [{"type": "repository", "name": "a", "actions": []}]}}),
            "properties.scopes[0].actions",
        ),
        (
            json!({"properties": {"name": "okname", "scopes": [{"type": "repository", "name": "a", "actions": ["pull"]}, {"type": "repository", "name": "A!", "actions": ["pull"]}]}}),
            "properties.scopes[1].name",
        ),
        (
            json!({"properties": {"name": "okname", "scopes": [{"type": "project", "name": "a", "actions": ["pull"]}]}}),
            "properties.scopes[0].type",
        ),
        (
            json!({"properties": {"name": "okname", "scopes": [{"type": "registry", "name": "repos", "actions": ["pull"]}]}}),
            "properties.scopes[0].name",
        ),
        (
            json!({"properties": {"name": "okname", "scopes": [{"type": "repository", "name": "a", "actions": ["pull", "write"]}]}}),
            "properties.scopes[0].actions",
        ),
        (
            json!({"properties": {"name": "okname", "scopes": [
                {"type": "repository", "name": "a", "actions": ["pull"]},
                {"type": "repository", "name": "a", "actions": ["pull", "push"]}]}}),
            "properties.scopes[1]",
        ),
    ];
    for (body, field) in cases {
        let r = app
            .call(AdminCall::create_token(
                "default",
                &NewToken::from_body(body.clone()),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let msg = r.api_error();
        assert!(
            msg.starts_with(field),
            "{body} -> {msg:?}, expected field {field}"
        );
    }
    // Too many scopes.
    let scopes: Vec<Value> = (0..101)
        .map(|i| json!({"type": "repository", "name": format!("r{i}"), "actions": ["pull"]}))
        .collect();
    let error = app
        .call(AdminCall::create_token(
            "default",
            &NewToken::named("many").scopes(scopes),
        ))
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert!(error.message.contains("scopes"));
    // Nothing was half-written.
    assert_eq!(app.list_tokens("").await["total"], 0);
}

#[tokio::test]
async fn malformed_bodies_are_400_or_413() {
    let app = TestApp::new();
    let path = "/registries/default/tokens";
    for (body, needle) in [
        (b"{".to_vec(), "invalid JSON"),
        (b"".to_vec(), "empty"),
        (b"[]".to_vec(), "invalid JSON"),
        (
            br#"{"properties":{"name":"okname","color":"red"}}"#.to_vec(),
            "color",
        ),
        (
            br#"{"properties":{"name":"okname"},"extra":1}"#.to_vec(),
            "extra",
        ),
        (br#"{"properties":{}}"#.to_vec(), "name"),
        (br#"{"properties":{"name":5}}"#.to_vec(), "invalid JSON"),
        (
            b"{\"properties\":{\"name\":\"ok\xff\xfe\"}}".to_vec(),
            "invalid JSON",
        ),
    ] {
        let r = app.api_raw(Method::POST, path, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let msg = r.api_error();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    let huge = format!(r#"{{"properties":{{"name":"{}"}}}}"#, "a".repeat(70 * 1024));
    let r = app.api_raw(Method::POST, path, huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    r.api_error();
    // Large but under the limit: a clean 400 for the name length, not a crash.
    let big = format!(r#"{{"properties":{{"name":"{}"}}}}"#, "a".repeat(60 * 1024));
    let r = app.api_raw(Method::POST, path, big).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().starts_with("properties.name"));
}

#[tokio::test]
async fn unknown_registry_and_token() {
    let app = TestApp::new();
    let error = app
        .call(AdminCall::list_tokens("nope", ""))
        .await
        .expect_error(StatusCode::NOT_FOUND);
    assert!(error.message.contains("nope"));
    let ghost = "8d6f4d59-6f7e-4c8a-9d55-111111111111";
    app.call(AdminCall::get_token("default", ghost))
        .await
        .expect_error(StatusCode::NOT_FOUND);
    let r = app.call(AdminCall::delete_token("default", ghost)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call(AdminCall::disable_token("default", ghost)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let error = app
        .call(AdminCall::get_token("default", "not-a-uuid"))
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert!(error.message.contains("not-a-uuid"));
}

#[tokio::test]
async fn list_is_sorted_and_paginated() {
    let app = TestApp::new();
    for name in ["delta", "alpha", "echo", "charlie", "bravo"] {
        app.create(name, json!([])).await;
    }
    let v = app.list_tokens("").await;
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["properties"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(v["type"], "collection");
    assert_eq!(
        (
            v["offset"].as_u64(),
            v["limit"].as_u64(),
            v["count"].as_u64(),
            v["total"].as_u64()
        ),
        (Some(0), Some(100), Some(5), Some(5))
    );
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["properties"]["credentials"].get("password").is_none()));

    let v = app.list_tokens("offset=2&limit=2").await;
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["properties"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["charlie", "delta"]);
    let base = "http://regauth.test/api/v1/registries/default/tokens";
    assert_eq!(v["_links"]["self"], format!("{base}?offset=2&limit=2"));
    assert_eq!(v["_links"]["next"], format!("{base}?offset=4&limit=2"));
    assert_eq!(v["_links"]["previous"], format!("{base}?offset=0&limit=2"));
    assert_eq!(v["count"], 2);
    assert_eq!(v["total"], 5);

    let v = app.list_tokens("offset=4&limit=2").await;
    assert_eq!(v["count"], 1);
    assert!(v["_links"].get("next").is_none());
    let v = app.list_tokens("offset=0&limit=2").await;
    assert!(v["_links"].get("previous").is_none());
    let v = app.list_tokens("offset=50&limit=2").await;
    assert_eq!(v["count"], 0);
    assert_eq!(v["_links"]["previous"], format!("{base}?offset=3&limit=2"));
    assert!(v["_links"].get("next").is_none());

    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "offset=-1",
        "offset=1.5",
    ] {
        let r = app.call(AdminCall::list_tokens("default", q)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        let msg = r.api_error();
        assert!(msg.contains(q.split('=').next().unwrap()), "{msg}");
    }
}

#[tokio::test]
async fn put_creates_then_replaces() {
    let app = TestApp::new();
    let id = "3f0c2a7e-1b2c-4d5e-8f90-0123456789ab";
    let put = |token: NewToken| AdminCall::replace_token("default", id, &token);
    let created = app
        .call(put(NewToken::named("put-bot").scopes(push_scope())))
        .await
        .created("default");
    assert_eq!(created.id, id);
    let pw = created.password().to_string();

    app.clock.advance(Duration::minutes(5));
    let v = app
        .call(put(NewToken::named("put-bot").status("disabled")))
        .await
        .expect_ok();
    assert!(v["properties"]["credentials"].get("password").is_none());
    assert_eq!(v["properties"]["status"], "disabled");
    assert_eq!(
        v["properties"]["scopes"],
        json!([]),
        "PUT replaces the whole token"
    );
    assert_eq!(v["metadata"]["createdDate"], "2026-06-01T12:00:00Z");
    assert_eq!(v["metadata"]["lastModifiedDate"], "2026-06-01T12:05:00Z");

    // Re-enable: the original password still works (PUT keeps the secret).
    app.call(put(NewToken::named("put-bot")))
        .await
        .expect(StatusCode::OK);
    let a = app.auth_get("put-bot", &pw, "service=registry.local").await;
    assert_eq!(a.status, StatusCode::OK);

    let error = app
        .call(put(NewToken::named("renamed")))
        .await
        .expect_error(StatusCode::BAD_REQUEST);
    assert!(error.message.starts_with("properties.name"));

    // PUT of a new id with a taken name: 409.
    let r = app
        .call(AdminCall::replace_token(
            "default",
            "3f0c2a7e-1b2c-4d5e-8f90-000000000000",
            &NewToken::named("put-bot"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn patch_changes_only_what_is_given() {
    let app = TestApp::new();
    let (id, _) = app.create("patchy", push_scope()).await;
    let patch = |body: Value| AdminCall::patch_token("default", &id, body);
    let v = app
        .call(AdminCall::disable_token("default", &id))
        .await
        .json();
    assert_eq!(v["properties"]["status"], "disabled");
    assert_eq!(v["properties"]["scopes"], push_scope());

    let v = app
        .call(patch(json!({"expiryDate": "2026-06-03T00:00:00Z", "scopes": [{"type": "registry", "name": "catalog", "actions": ["pull"]}]})))
        .await
        .json();
    assert_eq!(v["properties"]["expiryDate"], "2026-06-03T00:00:00Z");
    assert_eq!(
        v["properties"]["scopes"],
        json!([{"type": "registry", "name": "catalog", "actions": ["pull"]}])
    );
    assert_eq!(v["properties"]["status"], "disabled");

    let v = app.call(patch(json!({"expiryDate": null}))).await.json();
    assert_eq!(v["properties"]["expiryDate"], Value::Null);

    for (body, field) in [
        (json!({"name": "other"}), "name"),
        (json!({"status": "off"}), "status"),
        (json!({"expiryDate": "2026-06-01T12:10:00Z"}), "expiryDate"),
        (
            json!({"scopes": [{"type": "repository", "name": "x", "actions": ["push"]}]}),
            "scopes[0].actions",
        ),
    ] {
        let r = app.call(patch(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let msg = r.api_error();
        assert!(msg.contains(field), "{body} -> {msg}");
    }
}

#[tokio::test]
async fn delete_then_gone() {
    let app = TestApp::new();
    let (id, pw) = app.create("goner", push_scope()).await;
    app.call(AdminCall::delete_token("default", &id))
        .await
        .expect_no_content();
    assert_eq!(
        app.call(AdminCall::get_token("default", &id)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(AdminCall::delete_token("default", &id))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.auth_get("goner", &pw, "service=registry.local")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn expired_tokens_vanish_at_once() {
    let app = TestApp::new();
    let brief = app
        .create_token(
            "default",
            &NewToken::named("brief").expiry("2026-06-01T14:00:00Z"),
        )
        .await;
    app.create("lasting", json!([])).await;
    app.clock.advance(Duration::hours(2));
    // Not swept yet, but already gone for every reader.
    let r = app.call(AdminCall::get_token("default", &brief.id)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let v = app.list_tokens("").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["properties"]["name"], "lasting");
}

#[tokio::test]
async fn concurrent_creates_of_one_name_one_wins() {
    let app = std::sync::Arc::new(TestApp::new());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.call(AdminCall::create_token(
                "default",
                &NewToken::named("racer"),
            ))
            .await
            .status
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!((created, conflicts), (1, 15));
}

#[tokio::test]
async fn registries_are_listed_with_their_auth_block() {
    let app = TestApp::new();
    let v = app.api(Method::GET, "/registries", None).await.json();
    assert_eq!(v["type"], "collection");
    assert_eq!(v["items"][0]["id"], "default");
    let r = app.api(Method::GET, "/registries/default", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["type"], "registry");
    assert_eq!(v["properties"]["hostname"], "localhost:5000");
    assert_eq!(v["properties"]["service"], "registry.local");
    assert_eq!(
        v["properties"]["tokenAuth"]["realm"],
        "http://regauth.test/auth"
    );
    assert_eq!(v["properties"]["tokenAuth"]["issuer"], "regauth");
    assert!(v["properties"]["tokenAuth"]["rootcertbundle"]
        .as_str()
        .unwrap()
        .ends_with("signing.crt"));
    assert_eq!(
        app.api(Method::GET, "/registries/zzz", None).await.status,
        StatusCode::NOT_FOUND
    );
}

/// `tokenAuth.signingalgorithms` names the one algorithm of the configured key, for
/// distribution 3.x's `signingalgorithms`; the token endpoint signs with it, and its tokens
/// carry the certificate file's chain in `x5c`.
#[tokio::test]
async fn the_auth_block_names_the_signing_algorithm_of_the_key() {
    let rsa_key = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rs256.key");
    for (app, alg) in [
        (TestApp::new(), "ES256"),
        (TestApp::with(|c| c.jwt.key = rsa_key.clone()), "RS256"),
    ] {
        let v = app
            .api(Method::GET, "/registries/default", None)
            .await
            .json();
        assert_eq!(
            v["properties"]["tokenAuth"]["signingalgorithms"],
            json!([alg])
        );
        let (_, pw) = app.create("signer", json!([])).await;
        let r = app.auth_get("signer", &pw, "service=registry.local").await;
        let (h, _) = app.verify(r.json()["token"].as_str().unwrap());
        assert_eq!(h["alg"], alg);
        let cert = std::fs::read_to_string(&app.config.jwt.certificate).unwrap();
        let der = pem::parse(cert).unwrap().into_contents();
        use base64::Engine as _;
        assert_eq!(
            h["x5c"],
            json!([base64::engine::general_purpose::STANDARD.encode(der)])
        );
    }
}

#[tokio::test]
async fn ready_checks_the_store_and_health_the_process() {
    let app = TestApp::new();
    let r = app.get("/ready", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"ready");
    let r = app.get("/health", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"ok");
}

/// POSTs a token with these properties; returns the reply.
async fn create_with(app: &TestApp, props: Value) -> Resp {
    app.call(AdminCall::create_token(
        "default",
        &NewToken::from_properties(props),
    ))
    .await
}

fn names_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["properties"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Issue 21: owner and description are stored, shown, changed and removed; bad ones are a 400
/// naming the field; `filter.owner` matches exactly.
#[tokio::test]
async fn owner_and_description_round_trip_and_filter() {
    let app = TestApp::new();
    let r = create_with(
        &app,
        json!({"name": "alice-ci", "owner": "alice@example.com", "description": "CI for team/*"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let got = app.get_token(&id).await;
    assert_eq!(got["properties"]["owner"], "alice@example.com");
    assert_eq!(got["properties"]["description"], "CI for team/*");
    create_with(
        &app,
        json!({"name": "alice-dev", "owner": "alice@example.com"}),
    )
    .await;
    create_with(&app, json!({"name": "alicia", "owner": "alice@example.co"})).await;
    create_with(&app, json!({"name": "nobodys"})).await;
    let page = app.list_tokens("filter.owner=alice%40example.com").await;
    assert_eq!(names_of(&page), ["alice-ci", "alice-dev"]);
    assert_eq!(page["total"], 2);
    assert!(
        page["_links"]["self"]
            .as_str()
            .unwrap()
            .contains("filter.owner=alice%40example.com"),
        "{page}"
    );
    let page = app
        .list_tokens("filter.owner=alice%40example.com&filter.name=dev")
        .await;
    assert_eq!(names_of(&page), ["alice-dev"]);

    // Changed and removed by PATCH.
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &id,
            json!({"owner": "bob", "description": null}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["properties"]["owner"], "bob");
    assert!(r.json()["properties"].get("description").is_none());

    // Broken rules name the field.
    for (props, says) in [
        (
            json!({"name": "bad-one", "owner": "a".repeat(129)}),
            "properties.owner: must be at most 128 characters, got 129",
        ),
        (
            json!({"name": "bad-one", "description": "d".repeat(501)}),
            "properties.description: must be at most 500 characters, got 501",
        ),
        (
            json!({"name": "bad-one", "owner": "alice\nroot"}),
            "properties.owner: must not contain control characters",
        ),
        (
            json!({"name": "bad-one", "description": "a\u{202e}b"}),
            "properties.description: must not contain bidirectional",
        ),
    ] {
        let r = create_with(&app, props).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let msg = r.api_error();
        assert!(msg.contains(says), "{msg}");
    }
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &id,
            json!({"owner": "x\u{1b}[31m"}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().starts_with("owner: "));
    let r = app
        .call(AdminCall::list_tokens(
            "default",
            &format!("filter.owner={}", "o".repeat(129)),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("filter.owner"), "{}", r.api_error());
}

/// Issue 21: offboarding disables every enabled token of an owner in one request, one audit
/// line per token, and ends their refresh tokens; other owners' tokens keep working.
#[tokio::test]
async fn disable_by_owner_disables_audits_and_ends_refresh_tokens() {
    let app = TestApp::new();
    let pull = json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]);
    let mut passwords = Vec::new();
    for (name, owner) in [
        ("alice-ci", "alice@example.com"),
        ("alice-dev", "alice@example.com"),
        ("bob-ci", "bob@example.com"),
    ] {
        let token = create_with(&app, json!({"name": name, "owner": owner, "scopes": pull}))
            .await
            .created("default");
        let password = token.password().to_string();
        passwords.push((name, token.id, password));
    }
    let login = |user: &str, pw: &str| {
        format!("grant_type=password&service=registry.local&client_id=t&access_type=offline&username={user}&password={pw}")
    };
    let refresh_of = |r: Resp| r.json()["refresh_token"].as_str().unwrap().to_string();
    let alice_refresh = refresh_of(app.auth_post(&login("alice-dev", &passwords[1].2)).await);
    let bob_refresh = refresh_of(app.auth_post(&login("bob-ci", &passwords[2].2)).await);
    let refresh_form = |t: &str| {
        format!("grant_type=refresh_token&service=registry.local&client_id=t&refresh_token={t}")
    };

    let (log, _guard) = crate::logs::Log::capture();
    let from: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let r = app
        .api_from(
            from,
            Method::POST,
            "/registries/default/offboarding?owner=alice%40example.com",
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["type"], "collection");
    assert_eq!(names_of(&v), ["alice-ci", "alice-dev"]);
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["properties"]["status"] == "disabled"));
    let (_, json) = log.take();
    let audit: Vec<&Value> = json
        .iter()
        .filter(|o| o["target"] == "regauth::audit")
        .collect();
    assert_eq!(audit.len(), 2, "one audit line per token: {audit:#?}");
    for (line, (name, id, pw)) in audit.iter().zip(&passwords[..2]) {
        assert_eq!(line["action"], "disable", "{line}");
        assert_eq!(line["token"], *name, "{line}");
        assert_eq!(line["id"], id.as_str(), "{line}");
        assert_eq!(line["client"], "192.0.2.7", "{line}");
        assert_eq!(line["outcome"], "ok", "{line}");
        assert!(
            line["changes"]
                .as_str()
                .unwrap()
                .contains("status=disabled byOwner=\"alice@example.com\""),
            "{line}"
        );
        assert!(!line.to_string().contains(pw.as_str()));
    }
    let metrics = app.scrape().await;
    assert!(
        metrics.contains(
            "regauth_admin_actions_total{action=\"disable\",outcome=\"ok\",admin=\"bootstrap\"} 2"
        ),
        "{metrics}"
    );

    // Their sessions ended; Bob's did not.
    assert_eq!(
        app.auth_post(&refresh_form(&alice_refresh)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.auth_post(&refresh_form(&bob_refresh)).await.status,
        StatusCode::OK
    );
    for (name, _, pw) in &passwords[..2] {
        assert_eq!(
            app.auth_get(name, pw, "service=registry.local")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Enabling again revives no session.
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &passwords[1].1,
            json!({"status": "enabled"}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.auth_post(&refresh_form(&alice_refresh)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Again: only what is still enabled; an unknown owner: nothing.
    let r = app
        .api(
            Method::POST,
            "/registries/default/offboarding?owner=alice%40example.com",
            None,
        )
        .await;
    assert_eq!(names_of(&r.json()), ["alice-dev"]);
    let r = app
        .api(
            Method::POST,
            "/registries/default/offboarding?owner=carol",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["items"], json!([]));
    let r = app
        .api(Method::POST, "/registries/default/offboarding", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("owner: required"));
    let r = app
        .api(
            Method::POST,
            "/registries/nowhere/offboarding?owner=bob",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Issue 21: with `max_token_lifetime`, a create, replace, patch or enable that would leave
/// an enabled token without an expiry, or with one beyond the limit, is refused naming the
/// rule; `filter.violations=true` lists the tokens that break it.
#[tokio::test]
async fn lifetime_rule_refusals_name_the_rule_and_violations_are_listed() {
    let app = TestApp::with(|c| c.registries[0].max_token_lifetime = Some(Duration::days(90)));
    let now = app.clock.now();
    let at = |d: Duration| regauth::api::rfc3339(now + d);
    let rule = "max_token_lifetime (90d)";

    let r = create_with(&app, json!({"name": "forever"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let msg = r.api_error();
    assert!(
        msg.contains("properties.expiryDate") && msg.contains(rule) && msg.contains("must expire"),
        "{msg}"
    );
    let r = create_with(
        &app,
        json!({"name": "too-long", "expiryDate": at(Duration::days(91))}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains(rule), "{}", r.api_error());

    let fine = create_with(
        &app,
        json!({"name": "fine", "expiryDate": at(Duration::days(90))}),
    )
    .await
    .created("default")
    .id;
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &fine,
            json!({"expiryDate": null}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains(rule));
    let r = app
        .call(AdminCall::replace_token(
            "default",
            &fine,
            &NewToken::named("fine").expiry(&at(Duration::days(120))),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains(rule));

    // A disabled token may break it (offboarding must work), but cannot be enabled so.
    let parked = create_with(&app, json!({"name": "parked", "status": "disabled"}))
        .await
        .created("default")
        .id;
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &parked,
            json!({"status": "enabled"}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains(rule));

    // Time passes: the rule is against now, so "fine" (90 days from creation) still keeps it.
    app.clock.advance(Duration::days(1));
    let page = app.list_tokens("filter.violations=true").await;
    assert_eq!(names_of(&page), ["parked"]);
    let r = app
        .call(AdminCall::list_tokens("default", "filter.violations=maybe"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(AdminCall::list_tokens(
            "default",
            "filter.violations=true&expiringWithin=7d",
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Enabled with a compliant expiry: no longer a violation.
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &parked,
            json!({"status": "enabled", "expiryDate": at(Duration::days(30))}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let page = app.list_tokens("filter.violations=true").await;
    assert_eq!(page["total"], 0);
}

/// Without a limit nothing is a violation, and tokens need no expiry.
#[tokio::test]
async fn without_a_lifetime_rule_nothing_is_a_violation() {
    let app = TestApp::new();
    assert_eq!(
        create_with(&app, json!({"name": "forever"})).await.status,
        StatusCode::CREATED
    );
    let page = app.list_tokens("filter.violations=true").await;
    assert_eq!(page["total"], 0);
}
