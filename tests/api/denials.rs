//! Issue 10: every authentication failure gets the same reply, and the server's log says why.
//! The log is read from the capture of `logs.rs`, in the format `regauth serve` writes.
use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;

use crate::logs::Log;
use crate::support::*;

const SVC: &str = "service=registry.local";

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
        c.registries.push(regauth::config::RegistryConfig::new(
            "staging",
            "registry.staging",
            "staging:5000",
        ))
    });
    let scopes = json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]);
    let (_, pw) = app.create("ci-bot", scopes.clone()).await;
    let (did, dpw) = app.create("disabled-bot", scopes.clone()).await;
    let (gid, gpw) = app.create("gone-bot", scopes.clone()).await;
    let brief = app
        .create_token(
            "default",
            &NewToken::named("brief-bot")
                .scopes(scopes)
                .expiry("2026-06-01T13:30:00Z"),
        )
        .await;
    let epw = brief.password().to_string();
    let staging = app
        .create_token("staging", &NewToken::named("stage-bot"))
        .await;
    let spw = staging.password().to_string();

    let foreign_rt = login(&app, "stage-bot", &spw, "registry.staging").await;
    let expired_rt = login(&app, "brief-bot", &epw, "registry.local").await;
    let revoked_rt = login(&app, "disabled-bot", &dpw, "registry.local").await;
    let deleted_rt = login(&app, "gone-bot", &gpw, "registry.local").await;
    let deleted = app.call(AdminCall::delete_token("default", &gid)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.call(AdminCall::disable_token("default", &did)).await;
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
        // Its grant went with the disable; the refresh token names its token's id, which
        // still finds the disabled token.
        (
            "revoked by the disable",
            revoked_rt.clone(),
            "refresh token revoked or unknown",
            "disabled-bot",
        ),
        // The token is gone: the line names its id.
        (
            "revoked by the delete",
            deleted_rt.clone(),
            "refresh token revoked or unknown",
            gid.as_str(),
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

fn basic_get(user: &str, pass: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder()
        .uri(format!("/auth?{SVC}"))
        .header(axum::http::header::AUTHORIZATION, basic(user, pass))
        .body(axum::body::Body::empty())
        .unwrap()
}

/// Issue 21: a password typed into the username field is never logged as a name: not in the
/// denial line, not in the throttled line, in neither format.
#[tokio::test]
async fn a_password_in_the_username_field_is_never_logged() {
    let app = TestApp::with(|c| c.limits.auth_failures = 2);
    let (_, pw) = app.create("ci-bot", json!([])).await;
    let (log, _guard) = Log::capture();
    for i in 0..3 {
        let r = app
            .send_from("10.3.0.1", basic_get(&pw, &format!("x{i}")))
            .await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&r.status),
            "{}",
            r.status
        );
    }
    let (text, json) = log.take();
    let decisions: Vec<&String> = text
        .iter()
        .filter(|l| l.contains("token decision"))
        .collect();
    assert_eq!(decisions.len(), 3, "{text:#?}");
    assert!(decisions
        .iter()
        .any(|l| l.contains("outcome=\"throttled\"")));
    for line in &decisions {
        assert!(line.contains("token=\"<password redacted>\""), "{line}");
    }
    let all = format!("{text:?}{json:?}");
    assert!(!all.contains(&pw), "the password was logged");
    assert!(!all.contains(&pw[4..20]), "part of the password was logged");
}

/// Issue 21: the JSON log escapes bidirectional controls and line separators as the text log
/// does, so a name cannot reorder what an operator reads.
#[tokio::test]
async fn the_json_log_escapes_bidi_controls() {
    let app = TestApp::new();
    let (log, _guard) = Log::capture();
    let user = "evil\u{202e}gnp.exe\u{2066}x\u{2028}y";
    let r = app.send_from("10.3.0.2", basic_get(user, "x")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let raw = log.raw_json();
    assert!(raw.contains("evil\\u202egnp.exe\\u2066x\\u2028y"), "{raw}");
    for c in ['\u{202e}', '\u{2066}', '\u{2028}'] {
        assert!(!raw.contains(c), "{c:?} raw in {raw}");
    }
    let (_, objects) = log.take();
    assert!(objects.iter().any(|o| o["token"] == user), "{objects:#?}");
}

/// Issue 21, finding 7: a flood of token denials from 260 addresses does not hide 5 wrong
/// admin tokens from a 261st address: each is an audit line with its address.
#[tokio::test]
async fn wrong_admin_tokens_stay_visible_in_a_flood_of_denials() {
    let app = TestApp::with(|c| {
        c.limits.auth_failures = 0;
        c.limits.name_failures = 0;
        c.limits.network_failures = 0;
        c.limits.global_failures = 0;
    });
    let (log, _guard) = Log::capture();
    for i in 0..260u32 {
        let ip = std::net::Ipv4Addr::from(0x0a04_0000 + i).to_string();
        for n in 0..12 {
            let r = app
                .send_from(&ip, basic_get("nobody", &format!("rga_{n}")))
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    for n in 0..5 {
        let r = app
            .send_from(
                "10.9.9.9",
                axum::http::Request::builder()
                    .uri("/api/v1/registries")
                    .header(
                        axum::http::header::AUTHORIZATION,
                        format!("Bearer wrong-admin-token-{n:08}"),
                    )
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let (text, _) = log.take();
    let admin: Vec<&String> = text
        .iter()
        .filter(|l| l.contains("admin authentication failed") && l.contains("client=10.9.9.9"))
        .collect();
    assert_eq!(
        admin.len(),
        5,
        "{:#?}",
        &text[text.len().saturating_sub(20)..]
    );
}
