//! Replicas on PostgreSQL: two regauth processes on one database (a private cluster), the
//! registry trusting replica B while tokens are managed on replica A; a disable on A refused
//! by B within the bound; the signing certificate shared or refused; `kill -9` of a replica
//! during creates; PostgreSQL stopped and restarted under load; and the move from sled with
//! `regauth store migrate`, checked with docker logins and a push.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{
    http, jwt_header, regauth_in, repo, AdminCall, DockerClient, PgCluster, Regauth, Registry,
    ADMIN,
};

/// The cluster of this test binary, shared by the tests that do not stop it.
fn cluster() -> &'static PgCluster {
    PgCluster::shared()
}

/// Replica A on `url`, and B with A's signing key and certificate.
fn two_replicas(url: &str) -> (Regauth, Regauth) {
    let a = Regauth::builder().postgres(url).start();
    let b = Regauth::builder()
        .postgres(url)
        .signing_files(a.key_path(), a.cert_path())
        .start();
    (a, b)
}

#[test]
fn create_on_a_then_docker_login_and_push_through_b_and_a_disable_on_a_is_refused_by_b() {
    let url = cluster().new_database();
    let (a, b) = two_replicas(&url);
    let registry = Registry::start(&b, "default");
    let token = a.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);

    let docker = DockerClient::new();
    let host = registry.host();
    docker.login_ok(&host, &token.name, token.password());
    let image = docker.import_image();
    let remote = format!("{host}/team/app:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push through replica B");
    assert!(
        !b.decisions_for("ci-bot").is_empty(),
        "B issued the tokens (the registry's realm)"
    );

    // B has the token in its cache now; A disables it.
    assert_eq!(b.grant(&token.name, token.password(), &[]).0, 200);
    let start = Instant::now();
    a.disable_token(&token);
    let mut status = 200;
    while status == 200 && start.elapsed() < Duration::from_secs(5) {
        status = b.grant(&token.name, token.password(), &[]).0;
    }
    let delay = start.elapsed();
    assert_eq!(
        status, 401,
        "B still accepted the disabled token after {delay:?}"
    );
    assert!(
        delay < Duration::from_secs(1),
        "B refused only after {delay:?}"
    );
    docker.logout(&host);
    docker
        .login(&host, &token.name, token.password())
        .expect_refused(
            "docker login through B after the disable on A",
            &["unauthorized"],
        );
}

/// Milliseconds at the `p`th percentile of sorted `samples`.
fn percentile(samples: &[f64], p: f64) -> f64 {
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

/// The invalidation delay: from sending a PATCH (disable) to A until B's first 401, over 200
/// trials. Prints p50/p99 (docs/high-availability.md quotes a run); asserts a loose bound so a
/// busy machine does not fail it, and that no trial ever needed a second to converge.
#[test]
fn invalidation_delay_from_a_patch_on_a_to_a_401_on_b() {
    let url = cluster().new_database();
    let a = Regauth::builder().postgres(&url).start();
    // Each trial ends with a 401 on B: 200 of them would trip B's throttling of failures.
    let b = Regauth::builder()
        .postgres(&url)
        .signing_files(a.key_path(), a.cert_path())
        .env("REGAUTH_LIMITS_AUTH_FAILURES", "0")
        .env("REGAUTH_LIMITS_NAME_FAILURES", "0")
        .start();
    let token = a.create_token("default", "measured", &[repo("team/*", &["pull"])]);
    let mut delays = Vec::new();
    for trial in 0..200 {
        a.patch_token(&token, json!({"status": "enabled"}));
        // Wait until B serves it again (and so has it cached).
        let start = Instant::now();
        while b.grant(&token.name, token.password(), &[]).0 != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "trial {trial}: B never re-enabled"
            );
        }
        assert_eq!(b.grant(&token.name, token.password(), &[]).0, 200);
        let start = Instant::now();
        a.patch_token(&token, json!({"status": "disabled"}));
        loop {
            let status = b.grant(&token.name, token.password(), &[]).0;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "trial {trial}: B kept accepting"
            );
        }
        delays.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    delays.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[199],
    );
    eprintln!(
        "invalidation delay PATCH on A -> first 401 on B over 200 trials: \
         p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
    assert!(p99 < 500.0, "p99 {p99:.1} ms");
}

#[test]
fn a_replica_with_another_signing_certificate_refuses_to_start() {
    let url = cluster().new_database();
    let a = Regauth::builder().postgres(&url).start();
    // B generates a key of its own.
    let out = Regauth::builder().postgres(&url).start_expecting_failure();
    assert!(!out.success(), "{out}");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("is not the one the other replicas use")
            && text.contains("same [jwt] key and certificate"),
        "{text}"
    );
    // The same files work.
    let b = Regauth::builder()
        .postgres(&url)
        .signing_files(a.key_path(), a.cert_path())
        .start();
    let t = a.create_token("default", "shared-key", &[]);
    assert_eq!(b.grant(&t.name, t.password(), &[]).0, 200);
}

/// POSTs a new token to `base` (a regauth URL); the status (0 when no answer came) and
/// the reply.
fn try_create(client: &reqwest::blocking::Client, base: &str, name: &str) -> (u16, Value) {
    let body = json!({"properties": {"name": name, "scopes": [repo("team/*", &["pull"])]}});
    match client
        .post(format!("{base}/api/v1/registries/default/tokens"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Every token of the registry, by the admin API, page by page (a page holds at most 1 000,
/// and a fast machine creates more than that before the kill).
fn all_tokens(r: &Regauth) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let query = format!("offset={}&limit=1000", all.len());
        let v = r
            .call(AdminCall::list_tokens("default", &query))
            .expect_ok();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let total = v["total"].as_u64().expect("total") as usize;
        let empty = items.is_empty();
        all.extend(items);
        if empty || all.len() >= total {
            return all;
        }
    }
}

#[test]
fn kill_9_of_a_replica_during_creates_loses_no_201_and_half_writes_nothing() {
    let url = cluster().new_database();
    let (mut a, b) = two_replicas(&url);
    let base = a.url().to_owned();
    let acked = Mutex::new(Vec::<(String, String)>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for worker in 0..4 {
            let (base, acked, stop) = (&base, &acked, &stop);
            s.spawn(move || {
                let client = http();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("w{worker}-{i}");
                    match try_create(&client, base, &name) {
                        (201, v) => {
                            let password = v["properties"]["credentials"]["password"]
                                .as_str()
                                .expect("password")
                                .to_owned();
                            acked.lock().unwrap().push((name, password));
                        }
                        (0, _) => break, // the replica is gone
                        (status, v) => panic!("create {name}: {status} {v}"),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        a.kill9();
        stop.store(true, Ordering::Relaxed);
    });
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.len() > 20,
        "only {} creates before the kill",
        acked.len()
    );
    let listed = all_tokens(&b);
    let names: Vec<&str> = listed
        .iter()
        .map(|t| t["properties"]["name"].as_str().expect("name"))
        .collect();
    for (name, _) in &acked {
        assert!(
            names.contains(&name.as_str()),
            "acknowledged {name} is missing"
        );
    }
    // At most one create per worker was in flight: committed but not answered, or not committed.
    assert!(
        listed.len() <= acked.len() + 4,
        "{} listed, {} acknowledged",
        listed.len(),
        acked.len()
    );
    // Nothing half-written: every listed token reads back whole, and acknowledged passwords work.
    for t in &listed {
        let id = t["id"].as_str().expect("id");
        let v = b.get_token("default", id);
        assert_eq!(
            v["properties"]["scopes"],
            json!([repo("team/*", &["pull"])]),
            "{v}"
        );
    }
    for (name, password) in acked.iter().step_by(5) {
        assert_eq!(b.grant(name, password, &[]).0, 200, "{name} after the kill");
    }
}

#[test]
fn postgres_restarted_under_load_gives_only_503s_then_recovers_with_nothing_lost() {
    let mut own = PgCluster::start();
    let url = own.new_database();
    let r = Regauth::builder()
        .postgres(&url)
        .edit(|c| {
            let store = c["store"].as_table_mut().expect("[store]");
            store.insert("connect_timeout_ms".into(), 500.into());
            store.insert("statement_timeout_ms".into(), 1000.into());
        })
        .start();
    let known = r.create_token("default", "steady", &[repo("team/*", &["pull"])]);
    let base = r.url().to_owned();
    let acked = Mutex::new(Vec::<String>::new());
    let seen = Mutex::new(Vec::<(&'static str, u16, Duration)>::new());
    let stop = AtomicBool::new(false);
    let ready_while_down = std::thread::scope(|s| {
        let (acked, seen, stop, base) = (&acked, &seen, &stop, &base);
        s.spawn(move || {
            let client = http();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("load-{i}");
                let start = Instant::now();
                let (status, v) = try_create(&client, base, &name);
                seen.lock()
                    .unwrap()
                    .push(("create", status, start.elapsed()));
                if status == 201 {
                    acked.lock().unwrap().push(name);
                } else if status != 503 {
                    panic!("create {name}: {status} {v}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let (r, known) = (&r, &known);
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let status = r.grant(&known.name, known.password(), &[]).0;
                seen.lock().unwrap().push(("auth", status, start.elapsed()));
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        std::thread::sleep(Duration::from_millis(700));
        own.stop();
        std::thread::sleep(Duration::from_millis(1500));
        let ready = http()
            .get(format!("{base}/ready"))
            .send()
            .map(|r| r.status().as_u16());
        let health = http()
            .get(format!("{base}/health"))
            .send()
            .map(|r| r.status().as_u16());
        std::thread::sleep(Duration::from_millis(1500));
        own.restart();
        // Recovered: both endpoints succeed again without a restart of regauth.
        let start = Instant::now();
        loop {
            let recent: Vec<(&str, u16)> = seen
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take(20)
                .map(|(k, s, _)| (*k, *s))
                .collect();
            let auth_ok = recent.iter().any(|(k, s)| *k == "auth" && *s == 200);
            let create_ok = recent.iter().any(|(k, s)| *k == "create" && *s == 201);
            if auth_ok && create_ok && recent.iter().take(5).all(|(_, s)| *s == 200 || *s == 201) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no recovery: {recent:?}\n{}",
                r.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        (ready, health)
    });
    assert_eq!(
        ready_while_down.0.ok(),
        Some(503),
        "/ready while PostgreSQL is down"
    );
    assert_eq!(
        ready_while_down.1.ok(),
        Some(200),
        "/health while PostgreSQL is down"
    );
    let seen = seen.into_inner().unwrap();
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|(k, s, _)| !matches!((*k, *s), ("auth", 200) | ("create", 201) | (_, 503)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 503s while down: {unexpected:?}"
    );
    assert!(
        seen.iter().any(|(_, s, _)| *s == 503),
        "the outage was seen"
    );
    let slowest = seen.iter().map(|(_, _, d)| *d).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(4),
        "a request hung for {slowest:?}"
    );
    // Nothing acknowledged is lost.
    let names: Vec<String> = all_tokens(&r)
        .iter()
        .map(|t| t["properties"]["name"].as_str().expect("name").to_owned())
        .collect();
    for name in acked.into_inner().unwrap() {
        assert!(names.contains(&name), "acknowledged {name} lost");
    }
    let ready = http()
        .get(format!("{}/ready", r.url()))
        .send()
        .expect("/ready");
    assert_eq!(ready.status(), StatusCode::OK);
}

#[test]
fn store_migrate_moves_a_sled_store_to_postgres_and_every_password_keeps_working() {
    let url = cluster().new_database();
    let mut r = Regauth::start();
    let tokens: Vec<_> = ["ci-bot", "deployer", "reader"]
        .iter()
        .map(|n| r.create_token("default", n, &[repo("team/*", &["pull", "push"])]))
        .collect();
    // A refresh token (docker login's identity token).
    let login: Value = r
        .get_auth(
            &tokens[0].name,
            tokens[0].password(),
            "registry.local",
            &[],
            &[("offline_token", "true"), ("client_id", "docker")],
        )
        .json()
        .expect("json");
    let refresh = login["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let data_dir = r.data_dir().display().to_string();
    r.kill9();

    let migrate = |what: &str| {
        let out = regauth_in(
            r.dir(),
            &["store", "migrate", "--from", &data_dir, "--to", &url],
            &[("REGAUTH_STORE_TLS", "disable")],
        );
        out.expect_success(what);
        out.stdout
    };
    let first = migrate("first migration");
    assert!(
        first.contains("Copied 3 of 3 tokens and 1 of 1 refresh tokens")
            && first.contains("PostgreSQL holds all 3 tokens and 1 refresh tokens"),
        "{first}"
    );
    let second = migrate("second migration");
    assert!(
        second.contains("Copied 0 of 3 tokens and 0 of 1 refresh tokens"),
        "{second}"
    );

    // The same regauth (key, address) now on PostgreSQL.
    let pg = url.clone();
    r.restart_with(move |c| {
        let mut store = toml::Table::new();
        store.insert("url".into(), pg.into());
        store.insert("tls".into(), "disable".into());
        c.insert("store".into(), toml::Value::Table(store));
    });
    assert!(
        r.log().contains("store=\"postgresql\"") || r.log().contains("store=postgresql"),
        "{}",
        r.log_tail()
    );
    let registry = Registry::start(&r, "default");
    let docker = DockerClient::new();
    let host = registry.host();
    for t in &tokens {
        docker.login_ok(&host, &t.name, t.password());
    }
    let image = docker.import_image();
    let remote = format!("{host}/team/migrated:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push with a migrated password");
    let resp = r.post_auth(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh),
        ("service", "registry.local"),
        ("scope", "repository:team/a:pull"),
    ]);
    assert_eq!(resp.status(), StatusCode::OK, "the migrated refresh token");
}

/// The signing key rotates on both replicas together (docs/key-rotation.md, "Replicas"): a
/// key added on A is published by B (its bundle holds both certificates); once activated on A,
/// tokens from B name it (`kid`, and `x5c` carries its certificate) within a second.
#[test]
fn a_key_added_and_activated_on_a_signs_b_tokens_within_a_second() {
    use base64::Engine as _;
    let url = cluster().new_database();
    let (a, b) = two_replicas(&url);
    let token = a.create_token("default", "rotating", &[repo("team/*", &["pull"])]);
    let (s, added) = a.admin(Method::POST, "/keys", Some(&json!({"algorithm": "ES256"})));
    assert_eq!(s, StatusCode::CREATED, "{added}");
    let id = added["id"].as_str().expect("id").to_string();
    let bundle_b = b.cert_path().parent().unwrap().join("bundle.crt");
    let pems = |path: &std::path::Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.split("-----END CERTIFICATE-----")
            .map(|p| {
                p.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>()
            })
            .filter(|b| !b.is_empty())
            .collect::<Vec<_>>()
    };
    let start = Instant::now();
    while pems(&bundle_b).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B's bundle still lacks the added key: {:?}",
            pems(&bundle_b)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The operator distributes the new private key to B, then activates on A (no registry
    // has a url here, so nothing to ask).
    let file = format!("keys/{id}.key");
    std::fs::copy(
        a.key_path().parent().unwrap().join(&file),
        b.key_path().parent().unwrap().join(&file),
    )
    .unwrap();
    let (s, v) = a.admin(Method::POST, &format!("/keys/{id}/activate"), None);
    assert_eq!(s, StatusCode::OK, "{v}");
    let activated = Instant::now();
    let header = loop {
        let reply = b.token_for(
            &token.name,
            token.password(),
            "registry.local",
            &["repository:team/app:pull"],
        );
        let header = jwt_header(reply["token"].as_str().expect("token"));
        if header["kid"] == added["libtrustKid"] {
            break header;
        }
        assert!(
            activated.elapsed() < Duration::from_secs(1),
            "B still signs with the old key after {:?}",
            activated.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!(
        "B signed with the key activated on A after {:?}",
        activated.elapsed()
    );
    let leaf = base64::engine::general_purpose::STANDARD.encode(
        base64::engine::general_purpose::STANDARD
            .decode(header["x5c"][0].as_str().expect("x5c"))
            .unwrap(),
    );
    let published = pems(&bundle_b);
    assert_eq!(published.len(), 2, "B publishes both keys");
    assert_eq!(published[1], leaf, "x5c carries the new key's certificate");
    let ready = http()
        .get(format!("{}/ready", b.url()))
        .send()
        .expect("/ready");
    assert_eq!(ready.status(), StatusCode::OK, "B has the key: ready");
}

/// A replica that lacks the private key another replica activated keeps signing with the
/// previous key and answers /ready with 503 naming the file to copy; once the file is copied,
/// the next /ready finds it and the replica signs with the new key.
#[test]
fn a_replica_lacking_the_activated_private_key_is_not_ready_until_the_file_is_copied() {
    let url = cluster().new_database();
    let (a, b) = two_replicas(&url);
    let token = a.create_token("default", "rotating", &[repo("team/*", &["pull"])]);
    let kid = |r: &Regauth| {
        let reply = r.token_for(
            &token.name,
            token.password(),
            "registry.local",
            &["repository:team/app:pull"],
        );
        jwt_header(reply["token"].as_str().expect("token"))["kid"].clone()
    };
    let old_kid = kid(&b);
    let (s, added) = a.admin(Method::POST, "/keys", Some(&json!({"algorithm": "ES256"})));
    assert_eq!(s, StatusCode::CREATED, "{added}");
    let id = added["id"].as_str().expect("id").to_string();
    let (s, v) = a.admin(Method::POST, &format!("/keys/{id}/activate"), None);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(kid(&a), added["libtrustKid"]);
    let file = format!("keys/{id}.key");
    let ready = || {
        let r = http()
            .get(format!("{}/ready", b.url()))
            .send()
            .expect("/ready");
        (r.status(), r.text().unwrap_or_default())
    };
    let start = Instant::now();
    let (status, body) = loop {
        let (status, body) = ready();
        if status != StatusCode::OK {
            break (status, body);
        }
        assert!(start.elapsed() < Duration::from_secs(1), "B stayed ready");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(&file), "{body}");
    assert_eq!(kid(&b), old_kid, "B keeps signing with the key it has");
    std::fs::copy(
        a.key_path().parent().unwrap().join(&file),
        b.key_path().parent().unwrap().join(&file),
    )
    .unwrap();
    assert_eq!(ready().0, StatusCode::OK);
    assert_eq!(kid(&b), added["libtrustKid"]);
}
