//! The console's files and the security headers of the console and the admin API; the
//! token list's `filter.name`, which the console's filter uses.
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::support::{AdminCall, NewToken, Resp, TestApp};

async fn get(app: &TestApp, path: &str) -> Resp {
    app.send(Request::get(path).body(Body::empty()).unwrap())
        .await
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header; headers: {:?}", r.headers))
        .to_str()
        .unwrap()
}

/// The headers every console and admin API response carries.
fn assert_security_headers(r: &Resp, what: &str) {
    let csp = header(r, "content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
}

#[tokio::test]
async fn root_and_bare_console_redirect_to_the_console() {
    let app = TestApp::new();
    for path in ["/", "/console"] {
        let r = get(&app, path).await;
        assert!(r.status.is_redirection(), "{path}: {}", r.status);
        assert_eq!(header(&r, "location"), "/console/", "{path}");
        assert_security_headers(&r, path);
    }
}

#[tokio::test]
async fn console_files_are_served_from_the_binary_with_strict_headers() {
    let app = TestApp::new();
    let r = get(&app, "/console/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert!(html.contains(r#"<script type="module" src="app.js"></script>"#));
    // No inline script and no inline style: the policy forbids them, so none may be needed.
    assert_eq!(
        html.matches("<script").count(),
        1,
        "one external script only"
    );
    assert!(!html.contains("style="), "no inline style attributes");
    assert!(!html.contains("<style"), "no style elements");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from another origin"
    );
    assert_security_headers(&r, "/console/");
    let csp = header(&r, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");

    for (file, media_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("dialogs.js", "text/javascript; charset=utf-8"),
        ("format.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = get(&app, &format!("/console/{file}")).await;
        assert_eq!(r.status, StatusCode::OK, "{file}");
        assert_eq!(header(&r, "content-type"), media_type, "{file}");
        assert!(!r.body.is_empty(), "{file}");
        assert_security_headers(&r, file);
    }
}

#[tokio::test]
async fn console_scripts_render_api_data_as_text_only() {
    let app = TestApp::new();
    for file in ["app.js", "api.js", "dialogs.js", "format.js"] {
        let r = get(&app, &format!("/console/{file}")).await;
        let js = String::from_utf8(r.body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "{file} uses {sink}");
        }
        assert!(!js.contains("localStorage"), "{file} touches localStorage");
        assert!(!js.contains("document.cookie"), "{file} touches cookies");
    }
}

#[tokio::test]
async fn unknown_console_files_are_404_with_the_headers() {
    let app = TestApp::new();
    for path in [
        "/console/nope.js",
        "/console/..%2Fsrc%2Fmain.rs",
        "/console/index.html.bak",
    ] {
        let r = get(&app, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_security_headers(&r, path);
    }
}

#[tokio::test]
async fn every_admin_api_response_has_the_headers_and_no_store() {
    let app = TestApp::new();
    // Success with a secret in it, success without, a client error, a 401, a 404, a 405.
    let created = app
        .call(AdminCall::create_token(
            "default",
            &NewToken::named("ci-bot"),
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let list = app.call(AdminCall::list_tokens("default", "")).await;
    let bad = app
        .call(AdminCall::create_token("default", &NewToken::named("X")))
        .await;
    let unauthorized = get(&app, "/api/v1/registries").await;
    let missing = app.api(Method::GET, "/nowhere", None).await;
    let method = app.api(Method::DELETE, "/registries", None).await;
    for (what, r, status) in [
        ("create", &created, StatusCode::CREATED),
        ("list", &list, StatusCode::OK),
        ("400", &bad, StatusCode::BAD_REQUEST),
        ("401", &unauthorized, StatusCode::UNAUTHORIZED),
        ("404", &missing, StatusCode::NOT_FOUND),
        ("405", &method, StatusCode::METHOD_NOT_ALLOWED),
    ] {
        assert_eq!(r.status, status, "{what}");
        assert_security_headers(r, what);
        assert_eq!(header(r, "cache-control"), "no-store", "{what}");
    }
}

#[tokio::test]
async fn the_token_endpoint_is_left_as_it_was() {
    // The hot path gets no extra headers: registries and docker read none of them.
    let app = TestApp::new();
    let r = get(&app, "/auth?service=registry.local").await;
    assert!(r.headers.get("content-security-policy").is_none());
}

fn names(r: &Resp) -> Vec<String> {
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["properties"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_filters_by_name_substring_with_paging() {
    let app = TestApp::new();
    for name in ["ci-bot", "ci-pusher", "deploy-bot", "reader", "bot-one"] {
        app.create(name, json!([])).await;
    }
    let base = "http://regauth.test/api/v1/registries/default/tokens";

    let r = app
        .call(AdminCall::list_tokens("default", "filter.name=bot"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(names(&r), ["bot-one", "ci-bot", "deploy-bot"]);
    let v = r.json();
    assert_eq!(
        (v["count"].as_u64(), v["total"].as_u64()),
        (Some(3), Some(3))
    );

    // Paging inside the matches; the links keep the filter.
    let r = app
        .call(AdminCall::list_tokens(
            "default",
            "filter.name=bot&offset=1&limit=1",
        ))
        .await;
    assert_eq!(names(&r), ["ci-bot"]);
    let v = r.json();
    assert_eq!(v["total"], 3);
    assert_eq!(
        v["_links"]["next"],
        format!("{base}?offset=2&limit=1&filter.name=bot")
    );
    assert_eq!(
        v["_links"]["previous"],
        format!("{base}?offset=0&limit=1&filter.name=bot")
    );

    // Case-insensitive (names are lowercase), and encoded in links.
    let r = app
        .call(AdminCall::list_tokens("default", "filter.name=CI-&limit=1"))
        .await;
    assert_eq!(names(&r), ["ci-bot"]);
    assert_eq!(
        r.json()["_links"]["next"],
        format!("{base}?offset=1&limit=1&filter.name=ci-")
    );
    let r = app
        .call(AdminCall::list_tokens(
            "default",
            "filter.name=a%20b&limit=1",
        ))
        .await;
    assert_eq!(r.json()["total"], 0);
    assert_eq!(
        r.json()["_links"]["self"],
        format!("{base}?offset=0&limit=1&filter.name=a+b")
    );

    // No match, an empty filter (= none), and a filter no name could contain.
    let r = app
        .call(AdminCall::list_tokens("default", "filter.name=zzz"))
        .await;
    assert_eq!(
        (r.status, r.json()["total"].as_u64()),
        (StatusCode::OK, Some(0))
    );
    let r = app
        .call(AdminCall::list_tokens("default", "filter.name="))
        .await;
    assert_eq!(r.json()["total"], 5);
    let long = "a".repeat(64);
    let r = app
        .call(AdminCall::list_tokens(
            "default",
            &format!("filter.name={long}"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r
        .api_error()
        .starts_with("filter.name: must be at most 63 characters"));
}

#[tokio::test]
async fn the_console_name_rules_use_the_api_words() {
    // The console checks names as the user types, in the API's words: keep them the same.
    let app = TestApp::new();
    let js = String::from_utf8(get(&app, "/console/format.js").await.body).unwrap();
    for bad in ["ab", "Bad_Name", "1abc", "abc-"] {
        let r = app
            .call(AdminCall::create_token("default", &NewToken::named(bad)))
            .await;
        let msg = r.api_error();
        let rule = msg.trim_start_matches("properties.name: ");
        // "must be 3 to 63 characters, got 2" is built from its parts in the script.
        let fixed = rule.split(", got").next().unwrap();
        assert!(
            js.contains(fixed),
            "format.js lacks the API's rule {fixed:?}"
        );
    }
    let r = app
        .call(AdminCall::create_token(
            "default",
            &NewToken::named("ok-bot").expiry("2026-06-01T12:30:00Z"),
        ))
        .await;
    let rule = r.api_error();
    let rule = rule.trim_start_matches("properties.expiryDate: ");
    assert!(
        js.contains(rule),
        "format.js lacks the API's expiry rule {rule:?}"
    );
}

#[tokio::test]
async fn the_console_shows_the_federation_rules_in_the_api_words() {
    // The Add Token dialog's "CI identity (OIDC)" fields: the API's refusal of a federation
    // that pins no identity names a field the console maps to "Claim conditions"
    // (format.js), and the claims the rule asks for are the ones the dialog's hint names.
    let app = TestApp::new();
    let html = String::from_utf8(get(&app, "/console/").await.body).unwrap();
    let js = String::from_utf8(get(&app, "/console/format.js").await.body).unwrap();
    assert!(
        js.contains(r"[/(^|\.)federation(\.claims.*)?$/, 'Claim conditions']"),
        "format.js maps properties.federation… to the Claim conditions field"
    );
    for (issuer, pins) in [
        (
            "https://token.actions.githubusercontent.com",
            &["repository_id", "repository_owner_id"][..],
        ),
        ("https://gitlab.com", &["project_id", "namespace_id"]),
    ] {
        let r = app
            .call(AdminCall::create_token(
                "default",
                &NewToken::named("ci-loose").with(
                    "federation",
                    json!({
                        "issuer": issuer,
                        "audiences": ["https://registry.example.com"],
                        "claims": {"ref": "refs/heads/main"},
                    }),
                ),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{issuer}");
        let message = r.api_error();
        assert!(
            message.starts_with("properties.federation"),
            "{issuer}: the console cannot place {message:?}"
        );
        for pin in pins {
            assert!(message.contains(pin), "{issuer}: {message}");
            assert!(
                html.contains(&format!("<code>{pin}</code>")),
                "the dialog's hint does not name {pin}"
            );
        }
    }
    assert!(html.contains("<code>sub</code> (other issuers)"));

    // The console tells federated tokens by `properties.federation` in the list it reads
    // (the table's mark, no "Rotate password"): the list carries it, and no password.
    let token = app
        .create_token(
            "default",
            &NewToken::named("ci-pinned").with(
                "federation",
                json!({
                    "issuer": "https://token.actions.githubusercontent.com",
                    "audiences": ["https://registry.example.com"],
                    "claims": {"repository_owner_id": "1234567"},
                }),
            ),
        )
        .await;
    assert!(token.body["properties"]["credentials"]["password"].is_null());
    let list = app.list_tokens("").await;
    let t = &list["items"][0];
    assert_eq!(t["properties"]["name"], "ci-pinned");
    assert_eq!(
        t["properties"]["federation"]["issuer"],
        "https://token.actions.githubusercontent.com"
    );
    let app_js = String::from_utf8(get(&app, "/console/app.js").await.body).unwrap();
    assert!(app_js.contains("if (!token.properties.federation) items.push(['Rotate password'"));
}
