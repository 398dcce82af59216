//! Webhooks in process: token changes write their events to the outbox, the delivery log
//! lists them and redelivers one (`/api/v1/webhooks/deliveries`), owners only; and the
//! events endpoint's 415 for a body that is not a notification envelope.
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{AdminCall, NewToken, TestApp};
use regauth::domain::webhook::{DeliverySettings, WebhookConfig, WebhookEntry};

const DIGEST: &str = "sha256:abababababababababababababababababababababababababababababababab";

/// One webhook at a closed port, subscribed to `events`.
fn webhook(events: &[&str]) -> impl FnOnce(&mut regauth::config::Config) {
    let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    move |c| {
        c.webhooks = WebhookConfig::validate(
            vec![WebhookEntry {
                url: Some("http://127.0.0.1:9/hook".into()),
                secret: Some("whsec-test".into()),
                events: Some(events),
            }],
            DeliverySettings::default(),
        )
        .unwrap();
    }
}

fn with_webhook(events: &[&str]) -> TestApp {
    TestApp::with(webhook(events))
}

/// A push of `team/app:v1` by `ci-bot`, as a registry's envelope.
fn push_envelope() -> String {
    json!({"events": [{
        "id": "e1", "timestamp": "2026-06-01T12:00:00Z", "action": "push",
        "target": {"repository": "team/app", "tag": "v1",
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST},
        "actor": {"name": "ci-bot"}}]})
    .to_string()
}

/// `POST /events/default` of `body` with the registry's secret and `content_type`.
fn events_post(app: &TestApp, content_type: Option<&str>, body: String) -> Request<Body> {
    let secret = app.state.activity.secret("default").unwrap();
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/events/default")
        .header(header::AUTHORIZATION, format!("Bearer {secret}"));
    if let Some(t) = content_type {
        b = b.header(header::CONTENT_TYPE, t);
    }
    b.body(Body::from(body)).unwrap()
}

async fn deliveries(app: &TestApp) -> Vec<Value> {
    let r = app.api(Method::GET, "/webhooks/deliveries", None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(
        v["count"].as_u64().unwrap() as usize,
        v["items"].as_array().unwrap().len()
    );
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_token_change_is_queued_once_per_subscribed_event() {
    let app = with_webhook(&[
        "token.created",
        "token.updated",
        "token.rotated",
        "token.disabled",
        "token.deleted",
    ]);
    let (id, _) = app.create("ci-bot", json!([])).await;
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &id,
            json!({"description": "the CI"}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.call(AdminCall::disable_token("default", &id)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(AdminCall::rotate_password("default", &id, Some(json!({}))))
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let r = app.call(AdminCall::delete_token("default", &id)).await;
    assert!(r.status.is_success());

    let items = deliveries(&app).await;
    let mut kinds: Vec<&str> = items.iter().map(|d| d["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "token.created",
            "token.deleted",
            "token.disabled",
            "token.rotated",
            "token.updated"
        ]
    );
    for d in &items {
        assert_eq!(d["state"], "pending");
        assert_eq!(d["url"], "http://127.0.0.1:9/hook");
        assert_eq!(d["attempts"], 0);
        assert!(d["nextRetry"].is_string(), "{d}");
    }
    // The queued body: id, type, time, data (the token, never a secret).
    let outbox = app.state.webhooks.deliveries(10).await.unwrap();
    let created = outbox
        .iter()
        .find(|d| d.kind.as_str() == "token.created")
        .unwrap();
    let body: Value = serde_json::from_str(&created.body).unwrap();
    assert_eq!(body["type"], "token.created");
    assert_eq!(body["id"], created.event_id.to_string());
    assert_eq!(body["data"]["name"], "ci-bot");
    assert_eq!(body["data"]["id"], id);
    assert_eq!(body["data"]["actor"], "bootstrap");
    assert!(
        !created.body.contains("rga_"),
        "no password in {}",
        created.body
    );
}

/// A change that does not happen writes no event: a taken name (409), a token that is not
/// there (404), a PATCH that loses the race against a DELETE (404), a store that fails (500).
#[tokio::test]
async fn a_change_that_fails_queues_no_event() {
    use regauth::testing::{Fault, FaultStore, Method as StoreMethod};
    use std::sync::Arc;
    let store = Arc::new(FaultStore::default());
    let app = TestApp::with_store(
        store.clone(),
        webhook(&[
            "token.created",
            "token.updated",
            "token.disabled",
            "token.deleted",
        ]),
    );
    let (id, _) = app.create("ci-bot", json!([])).await;
    app.call(AdminCall::create_token(
        "default",
        &NewToken::named("ci-bot"),
    ))
    .await
    .expect(StatusCode::CONFLICT);
    let missing = "00000000-0000-4000-8000-000000000000";
    assert_eq!(
        app.call(AdminCall::delete_token("default", missing))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app.call(AdminCall::disable_token("default", missing)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    store.once(
        StoreMethod::Update,
        Fault::Fail(regauth::store::StoreError::backend(
            "disk full",
            std::io::Error::other("ENOSPC"),
        )),
    );
    let r = app
        .call(AdminCall::patch_token(
            "default",
            &id,
            json!({"description": "x"}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    store.once(StoreMethod::Update, Fault::DeleteFirst);
    let r = app.call(AdminCall::disable_token("default", &id)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let kinds: Vec<Value> = deliveries(&app)
        .await
        .iter()
        .map(|d| d["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("token.created")], "only the create happened");
}

#[tokio::test]
async fn unsubscribed_events_and_no_webhooks_queue_nothing() {
    let app = with_webhook(&["token.deleted"]);
    app.create("ci-bot", json!([])).await;
    assert!(deliveries(&app).await.is_empty());
    let app = TestApp::new();
    app.create("ci-bot", json!([])).await;
    assert!(deliveries(&app).await.is_empty());
}

#[tokio::test]
async fn a_delivery_is_redelivered_by_id() {
    let app = with_webhook(&["token.created"]);
    app.create("ci-bot", json!([])).await;
    let id = deliveries(&app).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .api(
            Method::POST,
            &format!("/webhooks/deliveries/{id}/redeliver"),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["id"], id);
    assert_eq!(r.json()["state"], "pending");
    let r = app
        .api(
            Method::POST,
            "/webhooks/deliveries/00000000-0000-0000-0000-000000000000/redeliver",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.api_error().contains("not found"), "{}", r.api_error());
    let r = app
        .api(Method::POST, "/webhooks/deliveries/nope/redeliver", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("deliveryId"), "{}", r.api_error());
    let r = app
        .api(Method::GET, "/webhooks/deliveries?limit=0", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("limit"), "{}", r.api_error());
}

#[tokio::test]
async fn an_envelope_of_another_content_type_is_415_and_stores_nothing() {
    let app = TestApp::new();
    let post = |content_type: Option<&str>| events_post(&app, content_type, push_envelope());
    for t in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let r = app.send(post(t)).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{t:?}");
        let e = r.api_error();
        assert!(
            e.contains("application/vnd.docker.distribution.events.v1+json"),
            "{e}"
        );
    }
    let r = app
        .api(Method::GET, "/registries/default/activity", None)
        .await;
    assert_eq!(r.json()["total"], 0, "nothing stored");
    // The accepted types (parameters aside): distribution 2.x's, 3.x's, plain JSON.
    let r = app
        .send(post(Some("application/json; charset=utf-8")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for t in [
        "application/vnd.docker.distribution.events.v1+json",
        "application/vnd.docker.distribution.events.v2+json",
    ] {
        let r = app.send(post(Some(t))).await;
        assert_eq!(r.status, StatusCode::OK, "{t}");
        assert_eq!(r.json()["stored"], 0, "the retry stores nothing");
    }
    let text = app.scrape().await;
    for want in [
        "regauth_registry_events_dropped_total{reason=\"unsupported_media_type\"} 3\n",
        "regauth_registry_events_dropped_total{reason=\"duplicate\"} 2\n",
        "regauth_registry_events_stored_total 1\n",
        "regauth_registry_events_received_total 6\n",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
}

#[tokio::test]
async fn a_push_reported_by_the_registry_queues_image_pushed_once() {
    let app = with_webhook(&["image.pushed"]);
    for _ in 0..2 {
        let r = app
            .send(events_post(&app, Some("application/json"), push_envelope()))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let outbox = app.state.webhooks.deliveries(10).await.unwrap();
    assert_eq!(outbox.len(), 1, "a retried envelope queues nothing more");
    let v: Value = serde_json::from_str(&outbox[0].body).unwrap();
    assert_eq!(v["type"], "image.pushed");
    assert_eq!(v["data"]["repository"], "team/app");
    assert_eq!(v["data"]["tag"], "v1");
    assert_eq!(v["data"]["digest"], DIGEST);
    assert_eq!(v["data"]["actor"], "ci-bot");
}

#[tokio::test]
async fn expiry_sends_token_expiring_once_then_token_expired_once() {
    let app = with_webhook(&["token.expiring", "token.expired"]);
    app.create_token(
        "default",
        &NewToken::named("brief").expiry("2026-06-01T20:00:00Z"),
    )
    .await;
    let webhooks = app.state.webhooks.clone();
    let admin = app.state.admin.clone();
    // Within the lead time (24 h by default): the watch finds it, twice, and writes it once.
    for _ in 0..2 {
        let soon = admin
            .expiring_until(webhooks.expiring_lead())
            .await
            .unwrap();
        webhooks.check_expiries(&soon).await;
    }
    let kinds = |d: &[regauth::domain::webhook::Delivery]| {
        let mut k: Vec<&str> = d.iter().map(|d| d.kind.as_str()).collect();
        k.sort();
        k.into_iter().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(&webhooks.deliveries(10).await.unwrap()),
        ["token.expiring"]
    );
    // Expired: the sweep deletes it (expired means deleted) and reports it; the watch,
    // seeing it too on another replica, adds nothing.
    app.clock.advance(chrono::TimeDelta::hours(9));
    let swept = admin
        .sweep(regauth::service::SweepTrigger::List)
        .await
        .unwrap();
    assert_eq!(swept.len(), 1);
    let after_sweep = webhooks.deliveries(10).await.unwrap();
    assert_eq!(kinds(&after_sweep), ["token.expired", "token.expiring"]);
    webhooks.check_expiries(&swept).await;
    assert_eq!(
        webhooks.deliveries(10).await.unwrap().len(),
        after_sweep.len()
    );
}
