//! Signing-key rotation through the admin API: states, the published bundle and JWK Set,
//! guarded activation, the drain before retirement, the error shape and the audit.
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::*;

fn ids(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/jwk-set+json");
    r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn bundle_count(app: &TestApp) -> usize {
    let bundle = app
        .config
        .jwt
        .certificate
        .parent()
        .unwrap()
        .join("bundle.crt");
    std::fs::read_to_string(bundle)
        .unwrap()
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

/// The (kid header, leaf certificate DER) of a token issued now.
async fn token_key(app: &TestApp, user: &str, pass: &str) -> (String, Vec<u8>) {
    let r = app.auth_get(user, pass, "service=registry.local").await;
    assert_eq!(r.status, StatusCode::OK);
    let jwt = r.json()["token"].as_str().unwrap().to_string();
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(header["x5c"][0].as_str().unwrap())
        .unwrap();
    (header["kid"].as_str().unwrap().to_string(), leaf)
}

#[tokio::test]
async fn a_full_rotation_through_the_api() {
    let app = TestApp::with_keys(|c| c.jwt.ttl_seconds = 60);
    let (_, pass) = app.create("ci-bot", json!([])).await;

    let r = app.api(Method::GET, "/keys", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let first = ids(&r.json());
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, "active");
    let old = first[0].0.clone();
    assert_eq!(jwks_kids(&app).await, vec![old.clone()]);
    let (old_kid, old_leaf) = token_key(&app, "ci-bot", &pass).await;

    let r = app.api(Method::POST, "/keys", Some(json!({}))).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let new = r.json();
    assert_eq!(new["state"], "next");
    assert_eq!(new["algorithm"], "ES256");
    assert!(new["daysLeft"].as_i64().unwrap() > 300);
    let new_id = new["id"].as_str().unwrap().to_string();
    assert!(r.headers["location"].to_str().unwrap().ends_with(&new_id));
    assert_eq!(jwks_kids(&app).await, vec![old.clone(), new_id.clone()]);
    assert_eq!(bundle_count(&app), 2);
    // Still signed by the old key.
    assert_eq!(token_key(&app, "ci-bot", &pass).await.0, old_kid);

    // No registry has a url: nothing to refuse.
    let r = app
        .api(Method::POST, &format!("/keys/{new_id}/activate"), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["state"], "active");
    let (kid, leaf) = token_key(&app, "ci-bot", &pass).await;
    assert_eq!(kid, r.json()["libtrustKid"].as_str().unwrap());
    assert_ne!(kid, old_kid);
    assert_ne!(leaf, old_leaf, "x5c names the new key's certificate");

    // The old key drains: deactivation + 60 s TTL + 60 s leeway.
    let r = app.api(Method::DELETE, &format!("/keys/{old}"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.api_error().contains("retire it after"),
        "{}",
        r.api_error()
    );
    let r = app
        .api(Method::DELETE, &format!("/keys/{new_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.api_error().contains("activate another key first"));
    app.clock.advance(chrono::TimeDelta::seconds(120));
    let r = app.api(Method::DELETE, &format!("/keys/{old}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.api(Method::GET, "/keys", None).await;
    assert_eq!(ids(&r.json()), vec![(new_id.clone(), "active".to_string())]);
    assert_eq!(jwks_kids(&app).await, vec![new_id.clone()]);
    assert_eq!(bundle_count(&app), 1);
}

#[tokio::test]
async fn activation_is_refused_while_a_registry_does_not_trust_the_key() {
    // A registry whose url refuses connections cannot confirm the key.
    let app = TestApp::with_keys(|c| {
        c.registries[0].url = Some("http://127.0.0.1:1".into());
    });
    let r = app.api(Method::POST, "/keys", Some(json!({}))).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = app
        .api(Method::POST, &format!("/keys/{id}/check"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["trusted"], false);
    assert_eq!(r.json()["registries"][0]["registry"], "default");
    let r = app
        .api(Method::POST, &format!("/keys/{id}/activate"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let msg = r.api_error();
    assert!(msg.contains("not trusted yet by: default"), "{msg}");
    assert!(msg.contains("force=true"), "{msg}");
    let r = app
        .api(
            Method::POST,
            &format!("/keys/{id}/activate?force=true"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["state"], "active");
}

#[tokio::test]
async fn bad_requests_are_4xx_in_the_admin_error_shape() {
    let app = TestApp::with_keys(|_| {});
    let r = app
        .api(Method::POST, "/keys", Some(json!({"algorithm": "HS256"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("HS256"));
    let r = app
        .api(Method::POST, "/keys", Some(json!({"algo": "ES256"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("algo"));
    let r = app
        .api(Method::POST, "/keys/nope/activate?force=true", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.api_error().contains("nope"));
    let r = app
        .api(Method::DELETE, "/keys/nope?force=maybe", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.api_error().contains("force"));
    let r = app.get("/api/v1/keys", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // An emergency retire skips the drain, not the active-key rule.
    let list = app.api(Method::GET, "/keys", None).await.json();
    let active = list["items"][0]["id"].as_str().unwrap().to_string();
    let r = app
        .api(Method::DELETE, &format!("/keys/{active}?force=true"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_registry_settings_name_the_bundle_and_the_jwk_set() {
    let app = TestApp::with_keys(|_| {});
    let r = app.api(Method::GET, "/registries/default", None).await;
    let auth = &r.json()["properties"]["tokenAuth"];
    let dir = app.config.jwt.certificate.parent().unwrap();
    assert_eq!(
        auth["rootcertbundle"],
        std::path::absolute(dir.join("bundle.crt"))
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(
        auth["jwks"],
        std::path::absolute(dir.join("jwks.json"))
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(auth["signingalgorithms"], json!(["ES256"]));
}

#[tokio::test]
async fn every_published_certificate_has_its_not_after_metric() {
    let app = TestApp::with_keys(|c| c.jwt.certificate_days = 10);
    let active = app.api(Method::GET, "/keys", None).await.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.api(Method::POST, "/keys", Some(json!({}))).await;
    let next = r.json()["id"].as_str().unwrap().to_string();
    let not_after = chrono::DateTime::parse_from_rfc3339(r.json()["notAfter"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let text = app.scrape().await;
    assert!(
        text.contains(&format!(
            "regauth_signing_certificate_not_after_seconds{{key=\"{next}\",state=\"next\"}} {not_after}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "regauth_signing_certificate_not_after_seconds{{key=\"{active}\",state=\"active\"}}"
        )),
        "{text}"
    );
    assert!(text.contains("regauth_signing_certificate_active_not_after_seconds "));
    // Retired keys leave the series.
    let r = app
        .api(Method::DELETE, &format!("/keys/{next}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let text = app.scrape().await;
    assert!(!text.contains(&next), "{text}");
}

#[tokio::test]
async fn a_soon_expiring_certificate_is_warned_about_and_key_actions_are_audited() {
    let (log, _guard) = crate::logs::Log::capture();
    let app = TestApp::with_keys(|c| c.jwt.certificate_days = 20);
    let r = app.api(Method::POST, "/keys", Some(json!({}))).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let (lines, _) = log.take();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("signing key action") && l.contains("key-add") && l.contains(&id)),
        "{lines:#?}"
    );
    // The new certificate (20 days) is within the 30-day warning; the first one (ten years)
    // is not.
    let keys = app.state.keys.clone().unwrap();
    assert_eq!(keys.warn_expiring(chrono::Utc::now()), 1);
    let (lines, _) = log.take();
    let warning: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("expires soon"))
        .collect();
    assert_eq!(warning.len(), 1, "{lines:#?}");
    assert!(
        warning[0].contains("WARN") && warning[0].contains(&id),
        "{}",
        warning[0]
    );
    assert!(warning[0].contains("days_left="), "{}", warning[0]);
}
