//! The real `regauth serve` process under hostile input: a value from a request cannot forge a
//! log line in either log format.
use serde_json::Value;

use crate::common::Regauth;

/// A whole decision line as the text format writes it, granting another token.
const FAKE: &str = "2026-06-01T12:00:00.000000Z  INFO regauth::service::auth: token decision \
    token=ci-bot service=registry.local grant_type=\"password\" requested= granted= client= \
    client_id= outcome=\"issued\"";

/// Sends `username=nobody%0A<FAKE>` and a `client_id` with CR LF and U+2028 to the token
/// endpoint and returns the server's log.
fn forge(regauth: &Regauth) -> String {
    let username = format!("nobody\n{FAKE}");
    let client_id = format!("docker\r\n{FAKE}\u{2028}{FAKE}");
    let r = regauth.post_auth(&[
        ("grant_type", "password"),
        ("username", &username),
        ("password", "rga_wrong"),
        ("service", "registry.local"),
        ("client_id", &client_id),
    ]);
    assert_eq!(r.status().as_u16(), 401);
    regauth.log()
}

/// Finding 1, text format: the log has no line that the request wrote.
#[test]
fn a_forged_line_cannot_appear_in_the_text_log() {
    let regauth = Regauth::builder().start();
    let log = forge(&regauth);
    let forged: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("2026-06-01T12:00:00") || l.contains("outcome=\"issued\""))
        .collect();
    assert!(forged.is_empty(), "forged lines: {forged:#?}\n{log}");
    let decisions: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("token decision"))
        .collect();
    assert_eq!(decisions.len(), 1, "{log}");
    assert!(
        decisions[0].contains(" outcome=\"denied\"") && decisions[0].contains("token=\"nobody\\n"),
        "{}",
        decisions[0]
    );
    assert!(!log.contains('\u{2028}'), "{log}");
}

/// Finding 1, `REGAUTH_LOG_FORMAT=json`: every line is one JSON object, the decision is one of
/// them, and the forged text is inside its string values.
#[test]
fn a_forged_line_cannot_appear_in_the_json_log() {
    let regauth = Regauth::builder().env("REGAUTH_LOG_FORMAT", "json").start();
    let log = forge(&regauth);
    let objects: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{log}")))
        .collect();
    assert!(
        objects.iter().any(|o| o["message"] == "regauth listening"),
        "{log}"
    );
    let decisions: Vec<&Value> = objects
        .iter()
        .filter(|o| o["message"] == "token decision")
        .collect();
    assert_eq!(decisions.len(), 1, "{log}");
    let d = decisions[0];
    assert_eq!(d["outcome"], "denied", "{d}");
    assert_eq!(d["token"], format!("nobody\n{FAKE}"), "{d}");
    assert_eq!(
        d["client_id"],
        format!("docker\r\n{FAKE}\u{2028}{FAKE}"),
        "{d}"
    );
    assert_eq!(d["level"], "INFO", "{d}");
    assert_eq!(d["target"], "regauth::service::auth", "{d}");
}
