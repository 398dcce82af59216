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

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Finding 9: `serve` creates the data directory 0700 and every file of the store 0600 (sled
/// creates them itself: the process umask is 077), the admin token and the signing key 0600;
/// the certificate stays 0644 because the registry reads it, in a directory it can enter.
#[test]
fn the_data_directory_and_the_store_are_private() {
    let regauth = Regauth::builder().without_admin_token().start();
    // A write, so that sled has written its files.
    regauth.create("mode-bot", &["repository:team/*:pull"]);
    let data = regauth.data_dir().to_path_buf();
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    let mut files = 0;
    let mut dirs = vec![data.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                dirs.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(
        files >= 3,
        "sled's files and the admin token: {files} files"
    );
    assert_eq!(mode(regauth.key_path()), 0o600);
    assert_eq!(mode(regauth.cert_path()), 0o644);
    assert_eq!(mode(regauth.cert_path().parent().unwrap()), 0o755);
}

/// A data directory that other users can read is reported at start.
#[test]
fn an_open_data_directory_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let builder = Regauth::builder();
    let data = builder.dir().join("open-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let regauth = builder
        .env("REGAUTH_DATA_DIR", data.to_str().unwrap())
        .start();
    let log = regauth.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("the data directory is open to other users")
            && l.contains("mode=755")),
        "{log}"
    );
}

/// The metrics listener of a real `serve` (`REGAUTH_METRICS_LISTEN`, port 0): it serves
/// `/metrics` with the process and store metrics, while the main listener has no `/metrics`.
#[test]
fn metrics_are_served_on_their_own_listener_only() {
    let regauth = Regauth::builder()
        .env("REGAUTH_METRICS_LISTEN", "127.0.0.1:0")
        .start();
    let (_, password) = regauth.create("metrics-bot", &["repository:team/*:pull"]);
    let log = regauth.log();
    let url = log
        .lines()
        .find_map(|l| {
            let start = l.find("metrics at http://")? + "metrics at ".len();
            Some(l[start..].split_whitespace().next()?.to_string())
        })
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"));
    let client = reqwest::blocking::Client::new();
    let main = client
        .get(format!("{}/metrics", regauth.url()))
        .send()
        .unwrap();
    assert_eq!(
        main.status().as_u16(),
        404,
        "the main listener has no metrics"
    );
    let (status, _) = regauth.grant("metrics-bot", &password, &["repository:team/app:pull"]);
    assert_eq!(status, 200);
    let r = client.get(&url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().unwrap();
    for needle in [
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_cpu_seconds_total ",
        "process_start_time_seconds ",
        "process_threads ",
        "process_virtual_memory_bytes ",
        // counted once at start, before the token was created
        "regauth_tokens{registry=\"default\"} ",
        "regauth_token_decisions_total{outcome=\"issued\",reason=\"\"} 1\n",
        "regauth_token_request_duration_seconds_count 1\n",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}
