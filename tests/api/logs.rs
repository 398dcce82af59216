//! What the server logs, captured per test in both formats of `regauth serve` (text and
//! JSON, from `regauth::logging::layer`), and the test that a value from a request cannot
//! forge a line in either.
//!
//! One global subscriber serves every test: thread-local dispatchers created and dropped by
//! tests running in parallel race with tracing's per-callsite interest cache, and an event can
//! then go missing. Each test's events are routed to its own capture by thread
//! (`#[tokio::test]` runs the router on the test's thread); admin handlers log on the request
//! thread too, never on a blocking thread.
use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use axum::http::StatusCode;
use regauth::logging::{layer, LogFormat};
use serde_json::Value;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

use crate::support::*;

/// Everything the subscriber wrote for one test, in each format, shared with the test.
#[derive(Clone, Default)]
pub struct Log {
    text: Arc<Mutex<Vec<u8>>>,
    json: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    /// The capture of the test running on this thread, if any.
    static CURRENT: RefCell<Option<Log>> = const { RefCell::new(None) };
}

/// Writes to the capture of the current thread (its text or its JSON half), and drops
/// everything else.
struct ThreadWriter {
    json: bool,
}

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some(log) = &*c.borrow() {
                let sink = if self.json { &log.json } else { &log.text };
                sink.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Ends the capture of this thread when dropped.
pub struct Capture;

impl Drop for Capture {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

impl Log {
    /// Captures what this thread logs until the guard drops.
    pub fn capture() -> (Log, Capture) {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::registry()
                .with(
                    layer(LogFormat::Text, false, || ThreadWriter { json: false })
                        .with_filter(LevelFilter::INFO),
                )
                .with(
                    layer(LogFormat::Json, false, || ThreadWriter { json: true })
                        .with_filter(LevelFilter::INFO),
                );
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the api tests");
        });
        let log = Log::default();
        CURRENT.with(|c| *c.borrow_mut() = Some(log.clone()));
        (log, Capture)
    }

    /// The text lines written since the last call; both buffers are emptied.
    pub fn take(&self) -> (Vec<String>, Vec<Value>) {
        let text = String::from_utf8(std::mem::take(&mut *self.text.lock().unwrap())).unwrap();
        let json = String::from_utf8(std::mem::take(&mut *self.json.lock().unwrap())).unwrap();
        let objects = json
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect();
        (text.lines().map(str::to_string).collect(), objects)
    }

    /// The JSON lines written since the last call, as written (not emptied).
    pub fn raw_json(&self) -> String {
        String::from_utf8(self.json.lock().unwrap().clone()).unwrap()
    }

    /// The text-format token decision lines written since the last call; the buffers are
    /// emptied.
    pub fn decisions(&self) -> Vec<String> {
        self.take()
            .0
            .into_iter()
            .filter(|l| l.contains("token decision"))
            .collect()
    }

    /// The one decision line of the last request.
    pub fn decision(&self) -> String {
        let lines = self.decisions();
        assert_eq!(lines.len(), 1, "one decision line per request: {lines:#?}");
        lines.into_iter().next().unwrap()
    }
}

/// A whole decision line as the text format writes it, for another token, granted.
const FAKE: &str = "2026-06-01T12:00:00.000000Z  INFO regauth::service::auth: token decision \
    token=ci-bot service=registry.local grant_type=\"password\" requested=repository:team/app:push \
    granted=repository:team/app:push client=10.0.0.1 client_id=docker outcome=\"issued\"";

fn form_encoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Finding 1: `username=nobody%0A<a whole decision line>` (and the same in `client_id` and a
/// scope) writes one line, in both formats; the forged text is inside a quoted, escaped value.
#[tokio::test]
async fn a_value_from_a_request_cannot_forge_a_log_line() {
    let app = TestApp::new();
    let (_, pw) = app
        .create(
            "ci-bot",
            serde_json::json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]),
        )
        .await;
    let (log, _guard) = Log::capture();
    let forged = format!("nobody\n{FAKE}");
    let crlf = format!("docker\r\n{FAKE}\u{2028}{FAKE}");
    let cases = [
        // (case, form, expected status, expected outcome)
        (
            "username",
            format!(
                "grant_type=password&username={}&password={pw}&service=registry.local",
                form_encoded(&forged)
            ),
            StatusCode::UNAUTHORIZED,
            "denied",
        ),
        (
            "client_id and a scope of a real login",
            format!(
                "grant_type=password&username=ci-bot&password={pw}&service=registry.local\
                 &client_id={}&scope={}",
                form_encoded(&crlf),
                form_encoded(&format!("repository:team/app\n{FAKE}:pull")),
            ),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "client_id of a real login",
            format!(
                "grant_type=password&username=ci-bot&password={pw}&service=registry.local\
                 &client_id={}",
                form_encoded(&crlf),
            ),
            StatusCode::OK,
            "issued",
        ),
        (
            "service",
            format!(
                "grant_type=password&username=ci-bot&password={pw}&service={}",
                form_encoded(&format!("registry.local\n{FAKE}"))
            ),
            StatusCode::BAD_REQUEST,
            "denied",
        ),
    ];
    for (case, form, status, outcome) in cases {
        let r = app.auth_post(&form).await;
        assert_eq!(
            r.status,
            status,
            "{case}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let (text, json) = log.take();
        // Nothing but whole events: every text line starts with a timestamp this test did not
        // write, and exactly one line (one object) per decision.
        assert!(
            text.iter()
                .all(|l| !l.starts_with("2026-06-01T12:00:00.000000Z")),
            "{case}: a forged line: {text:#?}"
        );
        let decisions: Vec<&String> = text
            .iter()
            .filter(|l| l.contains("token decision"))
            .collect();
        let objects: Vec<&Value> = json
            .iter()
            .filter(|o| o["message"] == "token decision")
            .collect();
        if outcome.is_empty() {
            // A malformed scope is refused before any decision.
            assert!(decisions.is_empty(), "{case}: {decisions:#?}");
            assert!(objects.is_empty(), "{case}: {objects:#?}");
            continue;
        }
        assert_eq!(decisions.len(), 1, "{case}: {text:#?}");
        assert_eq!(objects.len(), 1, "{case}: {json:#?}");
        let line = decisions[0];
        assert!(
            line.contains(&format!(" outcome=\"{outcome}\"")),
            "{case}: {line}"
        );
        assert!(line.contains("outcome=\\\"issued\\\""), "{case}: {line}");
        assert_eq!(
            line.replace("outcome=\\\"issued\\\"", "")
                .matches("outcome=")
                .count(),
            1,
            "{case}: every forged outcome is escaped: {line}"
        );
        assert!(!line.contains(['\r', '\u{2028}']), "{case}: {line:?}");
        let object = objects[0];
        assert_eq!(object["outcome"], outcome, "{case}: {object}");
        match case {
            "username" => assert_eq!(object["token"], forged.as_str(), "{object}"),
            "service" => {
                assert_eq!(
                    object["service"],
                    format!("registry.local\n{FAKE}"),
                    "{object}"
                )
            }
            _ => assert_eq!(object["client_id"], crlf.as_str(), "{object}"),
        }
    }
}
