//! Signing-key rotation against real registries (2.8, 3.0.0 and the 3.1.1 verifier): a loop
//! pushes and pulls with docker and skopeo through the whole rotation — add, check and guarded
//! activation, rolling restarts, activation, drain, retirement, restarts again — and not one
//! operation may fail.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use crate::common::{jwt_header, oci, repo, DockerClient, Regauth, Registry, Skopeo, Verifier};

const IDS: [&str; 3] = ["r28", "r30", "r31"];

struct Loop {
    stop: AtomicBool,
    ok: AtomicUsize,
    failed: Mutex<Vec<String>>,
    /// Held while a registry restarts (it is down: the loop waits, as a client behind a
    /// load balancer would be sent elsewhere).
    gates: [Mutex<()>; 3],
}

fn keys(regauth: &Regauth) -> Vec<Value> {
    let out = regauth.cli(&["--output", "json", "key", "list"]).ok();
    out.json()["items"].as_array().expect("items").clone()
}

/// The leaf certificate (DER) a JWT's `x5c` names first.
fn x5c_leaf(header: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(header["x5c"][0].as_str().expect("x5c"))
        .expect("base64 x5c")
}

#[test]
fn registry_2_8_3_0_3_1_rotate_the_signing_key_without_a_failed_operation() {
    let mut regauth = Regauth::builder()
        .registry("r28", "registry.r28", "r28.example:5000")
        .registry("r30", "registry.r30", "r30.example:5000")
        .registry("r31", "registry.r31", "r31.example:5000")
        .ttl_seconds(60)
        .start();
    let mut registries = [
        Registry::start_on(Verifier::V2_8, &regauth, "r28"),
        Registry::start_on(Verifier::V3_0, &regauth, "r30"),
        Registry::start_on(Verifier::V3_1, &regauth, "r31"),
    ];
    // Now that their addresses are known, tell regauth where to probe them.
    let urls: Vec<String> = registries.iter().map(Registry::url).collect();
    regauth.restart_with(|t| {
        let list = t["registries"].as_array_mut().expect("registries");
        for (entry, url) in list.iter_mut().zip(&urls) {
            entry
                .as_table_mut()
                .expect("table")
                .insert("url".into(), url.clone().into());
        }
    });
    let tokens: Vec<_> = IDS
        .iter()
        .map(|id| regauth.create_token(id, "rotator", &[repo("team/*", &["pull", "push"])]))
        .collect();
    let hosts: Vec<String> = registries.iter().map(Registry::host).collect();

    let state = Arc::new(Loop {
        stop: AtomicBool::new(false),
        ok: AtomicUsize::new(0),
        failed: Mutex::new(Vec::new()),
        gates: Default::default(),
    });
    let worker = {
        let state = state.clone();
        let creds: Vec<String> = tokens
            .iter()
            .map(|t| format!("{}:{}", t.name, t.password()))
            .collect();
        let hosts = hosts.clone();
        let docker = DockerClient::new();
        for (host, token) in hosts.iter().zip(&tokens) {
            docker.login_ok(host, &token.name, token.password());
        }
        std::thread::spawn(move || {
            let skopeo = Skopeo::new();
            let src = oci::image_layout(skopeo.dir(), "rotation\n");
            let image = docker.import_image();
            let mut n = 0;
            while !state.stop.load(Ordering::SeqCst) {
                for i in 0..3 {
                    let _gate = state.gates[i].lock().unwrap();
                    n += 1;
                    let reference = format!("{}/team/app:{n}", hosts[i]);
                    let push = skopeo.copy_to(&src, None, &reference, &creds[i]);
                    let pull = skopeo.copy_to(
                        &format!("docker://{reference}"),
                        Some(&creds[i]),
                        &format!("{}/team/copy:{n}", hosts[i]),
                        &creds[i],
                    );
                    // docker: push, forget the local tag, pull it back (a fresh token each).
                    let remote = format!("{}/team/dock:{n}", hosts[i]);
                    docker.tag(&image, &remote);
                    let docker_push = docker.docker(&["push", &remote]);
                    docker.rmi(&[&remote]);
                    let docker_pull = docker.docker(&["pull", &remote]);
                    docker.rmi(&[&remote]);
                    for (what, out) in [
                        ("skopeo push", push),
                        ("skopeo pull+push", pull),
                        ("docker push", docker_push),
                        ("docker pull", docker_pull),
                    ] {
                        if out.success() {
                            state.ok.fetch_add(1, Ordering::SeqCst);
                        } else {
                            state
                                .failed
                                .lock()
                                .unwrap()
                                .push(format!("{what} {reference}: {}", out.stderr));
                        }
                    }
                }
            }
        })
    };
    let wait_ok = |at_least: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while state.ok.load(Ordering::SeqCst) < at_least {
            assert!(Instant::now() < deadline, "the loop makes no progress");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_ok(6);

    // 1. Publish the next key.
    let old = keys(&regauth)[0]["id"].as_str().unwrap().to_string();
    let added = regauth.cli(&["--output", "json", "key", "add"]).ok().json();
    let new = added["id"].as_str().unwrap().to_string();
    assert_eq!(added["state"], "next");

    // 2. No registry has read the new bundle: check fails, activation is refused.
    let check = regauth.cli(&["key", "check", &new]);
    assert!(
        !check.success(),
        "check before the restarts: {}",
        check.stdout
    );
    assert!(
        check.stdout.contains("does NOT trust"),
        "{}\n{}",
        check.stdout,
        check.stderr
    );
    let refused = regauth.cli(&["key", "activate", &new]);
    assert!(!refused.success());
    for id in IDS {
        assert!(
            refused.stderr.contains(id),
            "activate names {id}: {}",
            refused.stderr
        );
    }

    // 3. Rolling restart with the new bundle.
    for (i, registry) in registries.iter_mut().enumerate() {
        let _gate = state.gates[i].lock().unwrap();
        registry.restart();
    }
    let before = state.ok.load(Ordering::SeqCst);
    wait_ok(before + 3);

    // 4. and 5. Every registry trusts the new key; activate it.
    regauth.cli(&["key", "check", &new]).ok();
    regauth.cli(&["key", "activate", &new]).ok();
    let listed = keys(&regauth);
    let new_key = listed.iter().find(|k| k["id"] == new.as_str()).unwrap();
    assert_eq!(new_key["state"], "active");
    let reply = regauth.token_for(
        &tokens[0].name,
        tokens[0].password(),
        "registry.r28",
        &["repository:team/app:pull"],
    );
    let header = jwt_header(reply["token"].as_str().unwrap());
    assert_eq!(
        header["kid"], new_key["libtrustKid"],
        "kid names the new key"
    );
    let bundle =
        std::fs::read_to_string(regauth.cert_path().parent().unwrap().join("bundle.crt")).unwrap();
    let leaf = base64::engine::general_purpose::STANDARD.encode(x5c_leaf(&header));
    let leaf_pem_body: String = bundle
        .split("-----END CERTIFICATE-----")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(leaf, leaf_pem_body, "x5c carries the new key's certificate");
    let before = state.ok.load(Ordering::SeqCst);
    wait_ok(before + 6);

    // 6. Too early to retire the old key: its tokens may still be valid.
    let early = regauth.cli(&["key", "retire", &old]);
    assert!(!early.success());
    assert!(early.stderr.contains("retire it after"), "{}", early.stderr);

    // The state survives a regauth restart (the loop waits meanwhile).
    {
        let _gates: Vec<_> = state.gates.iter().map(|g| g.lock().unwrap()).collect();
        regauth.restart_with(|_| {});
    }
    let states: Vec<(String, String)> = keys(&regauth)
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().into(),
                k["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (old.clone(), "retiring".into()),
            (new.clone(), "active".into())
        ]
    );

    // 7. Wait out the drain, then retire.
    let old_key = keys(&regauth)
        .into_iter()
        .find(|k| k["id"] == old.as_str())
        .unwrap();
    let retirable =
        chrono::DateTime::parse_from_rfc3339(old_key["retirableAt"].as_str().unwrap()).unwrap();
    while chrono::Utc::now() < retirable {
        std::thread::sleep(Duration::from_millis(500));
    }
    regauth.cli(&["key", "retire", &old]).ok();

    // 8. Restart the registries with the shrunk bundle.
    for (i, registry) in registries.iter_mut().enumerate() {
        let _gate = state.gates[i].lock().unwrap();
        registry.restart();
    }
    let before = state.ok.load(Ordering::SeqCst);
    wait_ok(before + 6);
    state.stop.store(true, Ordering::SeqCst);
    worker.join().unwrap();

    let failed = state.failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} operations failed during the rotation: {failed:#?}",
        failed.len(),
        failed.len() + state.ok.load(Ordering::SeqCst)
    );
    assert_eq!(keys(&regauth).len(), 1);
    eprintln!(
        "key rotation loop: {} operations, none failed",
        state.ok.load(Ordering::SeqCst)
    );
}
