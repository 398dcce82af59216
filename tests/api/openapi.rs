//! The OpenAPI document: served without the admin token, identical to the committed
//! `docs/openapi.json`, and covering every route of the admin API and the token endpoint.
use axum::http::{header, Method, StatusCode};
use serde_json::Value;

use crate::support::*;

const REGENERATE: &str = "cargo run -- openapi > docs/openapi.json";

fn generated() -> Value {
    serde_json::from_str(&regauth::http::openapi::json()).unwrap()
}

#[tokio::test]
async fn served_without_the_admin_token() {
    let app = TestApp::new();
    let r = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    assert_eq!(r.json(), generated());
    assert_eq!(r.json()["openapi"], "3.1.0");
    // With the admin token it is the same document.
    let r = app.api(Method::GET, "/openapi.json", None).await;
    assert_eq!(r.json(), generated());
    // The document being public opens nothing else.
    let r = app.get("/api/v1/registries", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn committed_document_is_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path} ({e}); create it with `{REGENERATE}`"));
    assert!(
        committed == regauth::http::openapi::json(),
        "docs/openapi.json differs from the document the code generates; \
         regenerate it with `{REGENERATE}` and commit it"
    );
}

#[test]
fn every_route_is_described_with_its_security_and_errors() {
    let doc = generated();
    let paths = doc["paths"].as_object().unwrap();
    let mut ops: Vec<String> = paths
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {p}", m.to_uppercase()))
        })
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        [
            "DELETE /api/v1/admins/{name}",
            "DELETE /api/v1/keys/{keyId}",
            "DELETE /api/v1/registries/{registryId}/tokens/{tokenId}",
            "GET /api/v1/admins",
            "GET /api/v1/admins/me",
            "GET /api/v1/keys",
            "GET /api/v1/keys/{keyId}",
            "GET /api/v1/registries",
            "GET /api/v1/registries/{registryId}",
            "GET /api/v1/registries/{registryId}/activity",
            "GET /api/v1/registries/{registryId}/tokens",
            "GET /api/v1/registries/{registryId}/tokens/{tokenId}",
            "GET /api/v1/registries/{registryId}/tokens/{tokenId}/activity",
            "GET /auth",
            "PATCH /api/v1/registries/{registryId}/tokens/{tokenId}",
            "POST /api/v1/admins",
            "POST /api/v1/admins/{name}/credentials",
            "POST /api/v1/keys",
            "POST /api/v1/keys/{keyId}/activate",
            "POST /api/v1/keys/{keyId}/check",
            "POST /api/v1/registries/{registryId}/offboarding",
            "POST /api/v1/registries/{registryId}/tokens",
            "POST /api/v1/registries/{registryId}/tokens/{tokenId}/credentials",
            "POST /api/v1/registries/{registryId}/tokens/{tokenId}/federation/check",
            "POST /auth",
            "POST /events/{registryId}",
            "PUT /api/v1/registries/{registryId}/tokens/{tokenId}",
        ]
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["adminToken"]["scheme"], "bearer");
    assert_eq!(schemes["tokenCredentials"]["scheme"], "basic");
    assert_eq!(schemes["eventsSecret"]["scheme"], "bearer");
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let events = path.starts_with("/events/");
            let (error_schema, auth) = if path.starts_with("/api/v1") {
                ("#/components/schemas/ErrorBody", "adminToken")
            } else if events {
                // A registry's notifications: its events secret, the admin API's errors.
                ("#/components/schemas/ErrorBody", "eventsSecret")
            } else {
                ("#/components/schemas/RegistryErrors", "tokenCredentials")
            };
            if path.starts_with("/api/v1") || method == "get" || events {
                assert!(
                    op["security"][0].get(auth).is_some(),
                    "{method} {path}: {op}"
                );
            }
            // Every operation says what the credential checks before it may answer: a
            // missing or wrong credential, a browser's cross-site request, a lockout.
            let checked: &[&str] = if events {
                &["401"]
            } else {
                &["401", "403", "429"]
            };
            for status in checked {
                assert!(
                    responses.contains_key(*status),
                    "{method} {path}: no {status}"
                );
            }
            for (status, resp) in responses {
                if status.starts_with('4') {
                    assert_eq!(
                        resp["content"]["application/json"]["schema"]["$ref"], error_schema,
                        "{method} {status} {path}"
                    );
                }
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("400"), "{method} {path}");
                assert!(responses.contains_key("413"), "{method} {path}");
            }
        }
    }
    // The IONOS shapes: a token's wire fields.
    let token = &doc["components"]["schemas"]["TokenProperties"]["properties"];
    for field in ["name", "credentials", "expiryDate", "scopes", "status"] {
        assert!(token.get(field).is_some(), "TokenProperties.{field}");
    }
    let error = &doc["components"]["schemas"]["ErrorBody"]["properties"];
    assert!(error.get("httpStatus").is_some() && error.get("messages").is_some());
}
