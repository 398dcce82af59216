//! Issue 10: every authentication failure gets the same reply, and the server's log says why.
//! The log is read from the capture of `logs.rs`, in the format `regauth serve` writes.
use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::json;

use crate::logs::Log;
use crate::support::*;

const SVC: &str = "service=registry.local";

fn password(json: &serde_json::Value) -> String {
    json["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn login(app: &TestApp, user: &str, pass: &str, service: &str) -> String {
    let r = app
        .auth_get(user, pass, &format!("service={service}&offline_token=true"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{user}");
    r.json()["refresh_token"].as_str().unwrap().to_string()
}

fn refresh_form(rt: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={rt}&{SVC}&scope=repository:team/app:pull")
}

#[tokio::test]
async fn each_denial_is_logged_with_its_reason_and_answered_alike() {
    let app = TestApp::with(|c| {
        c.registries.push(regauth::config::RegistryConfig {
            id: "staging".into(),
            service: "registry.staging".into(),
            hostname: "staging:5000".into(),
            public: Vec::new(),
            url: None,
        })
    });
    let scopes = json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]);
    let (_, pw) = app.create("ci-bot", scopes.clone()).await;
    let (did, dpw) = app.create("disabled-bot", scopes.clone()).await;
    let brief = app
        .api(
            Method::POST,
            "/registries/default/tokens",
            Some(json!({"properties": {"name": "brief-bot", "scopes": scopes,
                "expiryDate": "2026-06-01T13:30:00Z"}})),
        )
        .await;
    let epw = password(&brief.json());
    let staging = app
        .api(
            Method::POST,
            "/registries/staging/tokens",
            Some(json!({"properties": {"name": "stage-bot"}})),
        )
        .await;
    let spw = password(&staging.json());

    let foreign_rt = login(&app, "stage-bot", &spw, "registry.staging").await;
    let expired_rt = login(&app, "brief-bot", &epw, "registry.local").await;
    let revoked_rt = login(&app, "disabled-bot", &dpw, "registry.local").await;
    app.api(
        Method::PATCH,
        &format!("/registries/default/tokens/{did}"),
        Some(json!({"status": "disabled"})),
    )
    .await;
    app.clock.advance(Duration::hours(2));

    let (log, _guard) = Log::capture();
    // (case, Basic user and password or a refresh token, reason, token named in the line)
    let get_cases = [
        ("wrong secret", "ci-bot", "rga_wrong", "wrong secret"),
        ("unknown name", "nobody", pw.as_str(), "unknown name"),
        ("invalid name", "Not A Name", pw.as_str(), "unknown name"),
        ("disabled", "disabled-bot", dpw.as_str(), "token disabled"),
        ("expired", "brief-bot", epw.as_str(), "token expired"),
    ];
    let mut get_replies = Vec::new();
    for (case, user, pass, reason) in get_cases {
        let r = app.auth_get(user, pass, SVC).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{case}");
        let line = log.decision();
        assert!(
            line.contains(&format!("reason=\"{reason}\"")),
            "{case}: {line}"
        );
        assert!(line.contains("outcome=\"denied\""), "{case}: {line}");
        let logged = if user.contains(' ') {
            format!("{user:?}")
        } else {
            user.to_string()
        };
        assert!(line.contains(&format!("token={logged} ")), "{case}: {line}");
        assert!(
            !line.contains(pass),
            "{case}: the log shows no secret: {line}"
        );
        get_replies.push((case, r.status, r.headers, r.body));
    }
    for w in get_replies.windows(2) {
        assert_eq!(
            (w[0].1, &w[0].2, &w[0].3),
            (w[1].1, &w[1].2, &w[1].3),
            "{} and {} are told apart by the reply",
            w[0].0,
            w[1].0
        );
    }

    let refresh_cases = [
        (
            "unknown refresh token",
            "rgr_never-issued".to_string(),
            "refresh token revoked or unknown",
            "",
        ),
        (
            "no refresh token at all",
            "garbage".to_string(),
            "refresh token revoked or unknown",
            "",
        ),
        (
            "revoked by the disable",
            revoked_rt.clone(),
            "refresh token revoked or unknown",
            "",
        ),
        (
            "another service's",
            foreign_rt.clone(),
            "refresh token issued for another service",
            "stage-bot",
        ),
        (
            "its token expired",
            expired_rt.clone(),
            "token expired",
            "brief-bot",
        ),
    ];
    let mut post_replies = Vec::new();
    for (case, rt, reason, owner) in refresh_cases {
        let r = app.auth_post(&refresh_form(&rt)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{case}");
        let line = log.decision();
        assert!(
            line.contains(&format!("reason=\"{reason}\"")),
            "{case}: {line}"
        );
        assert!(
            line.contains("grant_type=\"refresh_token\""),
            "{case}: {line}"
        );
        assert!(line.contains(&format!("token={owner} ")), "{case}: {line}");
        assert!(
            !line.contains(&rt),
            "{case}: the log shows no refresh token: {line}"
        );
        post_replies.push((case, r.status, r.headers, r.body));
    }
    for w in post_replies.windows(2) {
        assert_eq!(
            (w[0].1, &w[0].2, &w[0].3),
            (w[1].1, &w[1].2, &w[1].3),
            "{} and {} are told apart by the reply",
            w[0].0,
            w[1].0
        );
    }
    assert_eq!(
        (&get_replies[0].2, &get_replies[0].3),
        (&post_replies[0].2, &post_replies[0].3),
        "GET and POST denials look alike"
    );

    // Not an authentication failure, but also logged with its reason.
    let r = app
        .auth_get("ci-bot", &pw, "service=registry.nowhere")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let line = log.decision();
    assert!(line.contains("reason=\"unknown service\""), "{line}");
}

#[tokio::test]
async fn granting_nothing_is_not_logged_as_issued_and_refresh_lines_name_the_token() {
    let app = TestApp::new();
    let scopes = json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]);
    let (_, pw) = app.create("ci-bot", scopes).await;
    let (log, _guard) = Log::capture();

    // A login asks for nothing: issued.
    let rt = login(&app, "ci-bot", &pw, "registry.local").await;
    let line = log.decision();
    assert!(line.contains("outcome=\"issued\""), "{line}");

    // Asked for something outside the token's scopes: authenticated, nothing granted.
    let r = app
        .auth_get(
            "ci-bot",
            &pw,
            &format!("{SVC}&scope=repository:other/app:push"),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the registry refuses, not regauth"
    );
    let line = log.decision();
    assert!(line.contains("outcome=\"nothing granted\""), "{line}");
    assert!(line.contains("token=ci-bot "), "{line}");

    // Partly granted: issued.
    let r = app
        .auth_get(
            "ci-bot",
            &pw,
            &format!("{SVC}&scope=repository:team/app:pull,push"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let line = log.decision();
    assert!(line.contains("outcome=\"issued\""), "{line}");
    assert!(line.contains("granted=repository:team/app:pull"), "{line}");

    // A refresh grant names its token.
    let r = app.auth_post(&refresh_form(&rt)).await;
    assert_eq!(r.status, StatusCode::OK);
    let line = log.decision();
    assert!(line.contains("token=ci-bot "), "{line}");
    assert!(line.contains("grant_type=\"refresh_token\""), "{line}");
    assert!(line.contains("outcome=\"issued\""), "{line}");
}
