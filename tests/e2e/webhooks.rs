//! Webhooks end to end: the real server sends signed token events to a receiver the test
//! runs (`common::webhook`). The signature verifies with the docs' Python; the delivery log
//! and a redelivery through the CLI; a `kill -9` of regauth while a receiver holds a delivery
//! delivers it after the restart; a receiver down for a while gets the event later (the
//! first retries shortened by `[webhook_delivery] first_retry_seconds`); and two replicas on
//! PostgreSQL deliver each event once. One regauth per scenario family, shared by its steps.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::webhook::{Received, Receiver};
use crate::common::{AdminCall, PgCluster, Regauth};

const SECRET: &str = "whsec-e2e-0123456789";

/// `[[webhooks]]` for each (url, events), and short retries.
fn with_webhooks(hooks: &[(String, &[&str])]) -> impl FnOnce(&mut toml::Table) {
    let hooks: Vec<toml::Value> = hooks
        .iter()
        .map(|(url, events)| {
            let mut t = toml::Table::new();
            t.insert("url".into(), url.clone().into());
            t.insert("secret".into(), SECRET.into());
            t.insert(
                "events".into(),
                toml::Value::Array(events.iter().map(|e| (*e).into()).collect()),
            );
            toml::Value::Table(t)
        })
        .collect();
    move |c: &mut toml::Table| {
        c.insert("webhooks".into(), toml::Value::Array(hooks));
        let mut d = toml::Table::new();
        d.insert("timeout_seconds".into(), 2.into());
        d.insert("first_retry_seconds".into(), 1.into());
        c.insert("webhook_delivery".into(), toml::Value::Table(d));
    }
}

/// The Python function docs/webhooks.md gives receivers.
fn docs_verifier() -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhooks.md")).unwrap();
    let start = doc
        .find("```python\n")
        .expect("a python block in docs/webhooks.md")
        + 10;
    let len = doc[start..].find("```").unwrap();
    doc[start..start + len].to_string()
}

/// Whether the docs' `verify` accepts `r` with `secret`.
fn verifies(r: &Received, secret: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, &r.body).unwrap();
    let script = format!(
        "{}\nimport sys\nprint(verify(sys.argv[1].encode(), sys.argv[2], open(sys.argv[3], 'rb').read(), sys.argv[4]))\n",
        docs_verifier()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script, secret, r.header("X-Regauth-Timestamp")])
        .arg(&body)
        .arg(r.header("X-Regauth-Signature-256"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

fn of_type<'a>(got: &'a [Received], kind: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.json()["type"] == kind).collect()
}

fn deliveries(regauth: &Regauth) -> Vec<Value> {
    let v = regauth
        .cli(&["--output", "json", "webhook", "deliveries"])
        .ok()
        .json();
    v["items"].as_array().unwrap().clone()
}

#[test]
fn signed_events_verify_survive_kill9_mid_delivery_and_reach_a_receiver_that_was_down() {
    let receiver = Receiver::start();
    let late = Receiver::down();
    let mut regauth = Regauth::builder()
        .edit(with_webhooks(&[
            (
                receiver.url("/hook"),
                &["token.created", "token.disabled", "token.deleted"],
            ),
            (late.url("/late"), &["token.created"]),
        ]))
        .start();

    // Created: sent at once, signed; the docs' Python verifies it, and not with another key.
    let (id, _) = regauth.create("ci-bot", &[]);
    let got = receiver.wait_until(Duration::from_secs(10), "token.created", |g| {
        !of_type(g, "token.created").is_empty()
    });
    let created = of_type(&got, "token.created")[0].clone();
    assert!(verifies(&created, SECRET), "the signature verifies");
    assert!(!verifies(&created, "another-secret"));
    let body = created.json();
    assert_eq!(body["data"]["name"], "ci-bot");
    assert_eq!(body["data"]["id"], id);
    assert_eq!(created.header("X-Regauth-Event"), "token.created");
    assert_eq!(created.header("Content-Type"), "application/json");
    let event_id = body["id"].as_str().unwrap().to_string();

    // The delivery log shows it delivered; a redelivery sends the same event again.
    let log = deliveries(&regauth);
    let delivered = log
        .iter()
        .find(|d| d["url"] == receiver.url("/hook") && d["state"] == "delivered")
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert_eq!(delivered["statusCode"], 200);
    assert_eq!(delivered["eventId"], event_id);
    let text = regauth.cli(&["webhook", "deliveries"]).ok().stdout;
    assert!(
        text.starts_with("DELIVERY") && text.contains("delivered"),
        "{text}"
    );
    regauth
        .cli(&["webhook", "redeliver", delivered["id"].as_str().unwrap()])
        .ok();
    let got = receiver.wait_until(Duration::from_secs(10), "the redelivery", |g| {
        of_type(g, "token.created").len() >= 2
    });
    let again = of_type(&got, "token.created")[1].json();
    assert_eq!(again["id"], event_id, "a redelivery keeps the event id");

    // The receiver that was down: refused at first, retried, and it gets the event once up.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(late.received().is_empty());
    let waiting = deliveries(&regauth)
        .into_iter()
        .find(|d| d["url"] == late.url("/late"))
        .unwrap();
    assert_eq!(waiting["state"], "pending", "{waiting}");
    assert!(waiting["attempts"].as_u64().unwrap() >= 1, "{waiting}");
    assert!(
        waiting["error"].as_str().unwrap_or("").contains("connect"),
        "{waiting}"
    );
    late.up();
    let got = late.wait_until(Duration::from_secs(15), "the late receiver", |g| {
        !g.is_empty()
    });
    assert_eq!(got[0].json()["id"], event_id);
    assert!(verifies(&got[0], SECRET));

    // kill -9 while the receiver holds the delivery of the delete: sent again after restart.
    receiver.hang(true);
    let status = regauth.call(AdminCall::delete_token("default", &id)).status;
    assert_eq!(status, StatusCode::NO_CONTENT);
    receiver.wait_until(Duration::from_secs(10), "the held delete", |g| {
        g.iter()
            .any(|r| r.held && r.json()["type"] == "token.deleted")
    });
    regauth.kill9();
    receiver.hang(false);
    regauth.restart();
    let got = receiver.wait_until(
        Duration::from_secs(20),
        "the delete after the restart",
        |g| {
            g.iter()
                .any(|r| !r.held && r.json()["type"] == "token.deleted")
        },
    );
    let deletes = of_type(&got, "token.deleted");
    assert_eq!(
        deletes[0].json()["id"],
        deletes[1].json()["id"],
        "the same event"
    );
    assert!(verifies(deletes.last().unwrap(), SECRET));
    assert!(regauth.log().contains("webhook delivered"));
}

#[test]
fn two_replicas_on_postgresql_deliver_each_event_once() {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(PgCluster::start);
    let url = cluster.new_database();
    let receiver = Receiver::start();
    let hooks = [(receiver.url("/hook"), &["token.created"][..])];
    let a = Regauth::builder()
        .postgres(&url)
        .edit(with_webhooks(&hooks))
        .start();
    let b = Regauth::builder()
        .postgres(&url)
        .signing_files(a.key_path(), a.cert_path())
        .edit(with_webhooks(&hooks))
        .start();
    let n = 8;
    for i in 0..n {
        let on = if i % 2 == 0 { &a } else { &b };
        on.create(&format!("replica-token-{i}"), &[]);
    }
    receiver.wait_until(Duration::from_secs(15), "every event", |g| {
        g.iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_string())
            .collect::<std::collections::HashSet<_>>()
            .len()
            == n
    });
    // Both replicas poll every second: give a duplicate time to show up.
    std::thread::sleep(Duration::from_secs(3));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in receiver.received() {
        *seen
            .entry(r.json()["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), n);
    assert!(seen.values().all(|&c| c == 1), "each once: {seen:?}");
    // Both replicas see the one delivery log.
    assert_eq!(deliveries(&a).len(), n);
    assert_eq!(deliveries(&b).len(), n);
}
