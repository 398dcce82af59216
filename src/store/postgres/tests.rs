//! Tests of the PostgreSQL store on a private cluster (one per test binary, a database per
//! test): the conformance suite, migrations, coherence between two stores (replicas) on one
//! database, TLS, and failures.
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Duration as Span;

use super::{schema, PgOptions, PgStore, Tls};
use crate::domain::Status;
use crate::store::tests::{t0, token};
use crate::store::{Store, StoreError};

#[path = "../../../tests/common/postgres.rs"]
mod fixture;

pub(crate) use fixture::PgCluster;

/// The cluster of this test binary, started at first use.
pub(crate) fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start)
}

pub(crate) fn options(url: &str) -> PgOptions {
    PgOptions {
        tls: Tls::Disable,
        ..PgOptions::new(url)
    }
}

/// A store on a new database.
pub(crate) fn open() -> (PgStore, String) {
    let url = cluster().new_database();
    (PgStore::open(options(&url)).unwrap(), url)
}

/// Reads `name` on `s` until it is in `s`'s cache: the notice of its create may arrive just
/// after the first read and drop what that read cached.
fn read_until_cached(s: &PgStore, name: &str) {
    let start = Instant::now();
    loop {
        assert!(s.find_by_name("default", name).unwrap().is_some());
        if s.shared.cache.len() == 1 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name} never stayed cached"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn wait_trusted(s: &PgStore) {
    let start = Instant::now();
    while !s.cache_trusted() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "listener never came up"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn db_name(url: &str) -> &str {
    let path = url.rsplit('/').next().unwrap();
    path.split('?').next().unwrap()
}

#[test]
fn migrations_run_once_under_the_lock_when_replicas_start_together() {
    let url = cluster().new_database();
    let stores: Vec<PgStore> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PgStore::open(options(&url))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(stores.len(), 4);
    let versions = cluster().sql(
        db_name(&url),
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM regauth_schema",
    );
    let expected: Vec<String> = (1..=schema::LATEST).map(|v| v.to_string()).collect();
    assert_eq!(versions, expected.join(","));
    // Every replica works on the one schema.
    stores[0].create(&token("default", "made-on-a")).unwrap();
    assert!(stores[3]
        .find_by_name("default", "made-on-a")
        .unwrap()
        .is_some());
}

/// Migrations 2 (token owners) and 3 (keyring) upgrade a version-1 database in place: its tokens keep
/// working with no owner, and owners written afterwards are found by the owner index.
#[test]
fn migration_2_adds_owners_to_a_version_1_database() {
    let (store, url) = open();
    let old = token("default", "from-v1");
    store.create(&old).unwrap();
    drop(store);
    // Back to what migration 1 left.
    cluster().sql(
        db_name(&url),
        "ALTER TABLE regauth_tokens DROP COLUMN owner",
    );
    cluster().sql(db_name(&url), "DROP TABLE regauth_admins");
    cluster().sql(db_name(&url), "DROP TABLE regauth_keyring");
    cluster().sql(db_name(&url), "DROP TABLE regauth_events");
    cluster().sql(
        db_name(&url),
        "DELETE FROM regauth_schema WHERE version IN (2, 3, 4, 5)",
    );
    assert_eq!(
        cluster().sql(
            db_name(&url),
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM regauth_schema",
        ),
        "1"
    );

    let store = PgStore::open(options(&url)).unwrap();
    assert_eq!(
        cluster().sql(
            db_name(&url),
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM regauth_schema",
        ),
        "1,2,3,4,5"
    );
    // Migration 4: the keyring's table, empty.
    assert_eq!(store.load_keyring().unwrap(), None);
    assert_eq!(store.get("default", old.id).unwrap(), Some(old.clone()));
    assert_eq!(
        store.list_by_owner("default", "bob", 0, 10).unwrap().total,
        0
    );
    let owned = crate::domain::Token {
        owner: Some("bob".parse().unwrap()),
        ..old.clone()
    };
    store.update(&owned).unwrap();
    let page = store.list_by_owner("default", "bob", 0, 10).unwrap();
    assert_eq!(page.items, vec![owned]);
    assert_eq!(
        cluster().sql(
            db_name(&url),
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'regauth_tokens_owner'",
        ),
        "1"
    );
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_message() {
    let (store, url) = open();
    drop(store);
    let next = schema::LATEST + 1;
    cluster().sql(
        db_name(&url),
        &format!(
            "INSERT INTO regauth_schema (version, description) VALUES ({next}, 'from the future')"
        ),
    );
    let err = PgStore::open(options(&url)).unwrap_err().to_string();
    assert!(
        err.contains(&format!("schema is at version {next}"))
            && err.contains(&format!("newest this regauth knows ({})", schema::LATEST)),
        "{err}"
    );
}

#[test]
fn a_disable_on_one_replica_reaches_the_other_replicas_cache() {
    let (a, url) = open();
    let b = PgStore::open(options(&url)).unwrap();
    wait_trusted(&b);
    let t = token("default", "shared");
    a.create(&t).unwrap();
    // B caches it.
    read_until_cached(&b, "shared");
    assert_eq!(
        b.find_by_name("default", "shared").unwrap().unwrap().status,
        Status::Enabled
    );
    a.update(&crate::domain::Token {
        status: Status::Disabled,
        ..t.clone()
    })
    .unwrap();
    let start = Instant::now();
    loop {
        let seen = b.find_by_name("default", "shared").unwrap().unwrap();
        if seen.status == Status::Disabled {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "B kept serving the enabled token"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // A delete too.
    assert!(b.find_by_name("default", "shared").unwrap().is_some());
    assert!(a.delete("default", t.id).unwrap());
    let start = Instant::now();
    while b.find_by_name("default", "shared").unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "B kept serving the deleted token"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_name_one_replica_knows_as_unknown_is_found_once_another_creates_it() {
    let (a, url) = open();
    let b = PgStore::open(options(&url)).unwrap();
    wait_trusted(&b);
    // B caches the name as absent (so an unknown name costs what a known one does)...
    assert!(b.find_by_name("default", "late").unwrap().is_none());
    assert_eq!(b.shared.cache.len(), 1, "the absence is cached");
    // ...and A's create reaches it through the notice.
    let t = token("default", "late");
    a.create(&t).unwrap();
    let start = Instant::now();
    while b.find_by_name("default", "late").unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "B kept answering that the new token does not exist"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The creating replica's own cached absence goes at once.
    assert!(a.find_by_name("default", "other").unwrap().is_none());
    a.create(&token("default", "other")).unwrap();
    assert!(a.find_by_name("default", "other").unwrap().is_some());
}

#[test]
fn without_its_listener_a_replica_reads_through_and_drops_the_cache_on_reconnect() {
    let (a, url) = open();
    let b = PgStore::open(options(&url)).unwrap();
    wait_trusted(&b);
    let t = token("default", "watched");
    a.create(&t).unwrap();
    read_until_cached(&b, "watched");
    // Cut B's notification connection; the notice of the disable below is lost for B.
    let killed = cluster().sql(
        db_name(&url),
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'regauth-listener'",
    );
    assert_eq!(killed, "2", "the listeners of A and B");
    let start = Instant::now();
    while b.cache_trusted() {
        assert!(start.elapsed() < Duration::from_secs(5), "B did not notice");
        std::thread::sleep(Duration::from_millis(1));
    }
    a.update(&crate::domain::Token {
        status: Status::Disabled,
        ..t.clone()
    })
    .unwrap();
    // Whether B has reconnected yet or not, it must see the disable now.
    assert_eq!(
        b.find_by_name("default", "watched")
            .unwrap()
            .unwrap()
            .status,
        Status::Disabled
    );
    wait_trusted(&b);
    assert_eq!(
        b.find_by_name("default", "watched")
            .unwrap()
            .unwrap()
            .status,
        Status::Disabled
    );
}

#[test]
fn only_one_replica_sweeps_at_a_time() {
    let (a, url) = open();
    let b = PgStore::open(options(&url)).unwrap();
    for i in 0..50 {
        a.create(&crate::store::tests::expiring(
            "default",
            &format!("old-{i}"),
            t0(),
        ))
        .unwrap();
    }
    // Hold the sweep lock as another replica in its sweep would.
    let held = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let url = url.clone();
        let holder = s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (mut c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let tx_ = c.transaction().await.unwrap();
                tx_.execute("SELECT pg_advisory_xact_lock($1)", &[&super::SWEEP_LOCK])
                    .await
                    .unwrap();
                tx.send(()).unwrap();
                let _ = done_rx.recv();
                tx_.rollback().await.unwrap();
            });
        });
        rx.recv().unwrap();
        let during = b.delete_expired(t0() + Span::hours(1)).unwrap();
        done_tx.send(()).unwrap();
        holder.join().unwrap();
        during
    });
    assert!(
        held.is_empty(),
        "B swept while another replica held the lock"
    );
    assert_eq!(a.count().unwrap(), 50);
    // Both sweeping at once: every token deleted exactly once.
    let (x, y) = std::thread::scope(|s| {
        let hx = s.spawn(|| a.delete_expired(t0() + Span::hours(1)).unwrap().len());
        let hy = s.spawn(|| b.delete_expired(t0() + Span::hours(1)).unwrap().len());
        (hx.join().unwrap(), hy.join().unwrap())
    });
    assert_eq!(x + y, 50);
    assert_eq!(a.count().unwrap(), 0);
}

#[test]
fn an_unreachable_database_is_unavailable_quickly_and_recovers() {
    let mut cluster = PgCluster::start();
    let url = cluster.new_database();
    let store = PgStore::open(PgOptions {
        connect_timeout: Duration::from_millis(500),
        statement_timeout: Duration::from_millis(1000),
        ..options(&url)
    })
    .unwrap();
    let t = token("default", "survivor");
    store.create(&t).unwrap();
    store.ready().unwrap();
    cluster.stop();
    let start = Instant::now();
    for _ in 0..3 {
        let err = store.get("default", t.id).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(matches!(store.ready(), Err(StoreError::Unavailable { .. })));
        assert!(matches!(
            store.create(&token("default", "while-down")),
            Err(StoreError::Unavailable { .. })
        ));
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // Read through while down: never a cached answer without notices.
    assert!(store.find_by_name("default", "survivor").is_err());
    cluster.restart();
    let start = Instant::now();
    loop {
        match store.get("default", t.id) {
            Ok(found) => {
                assert_eq!(found, Some(t.clone()));
                break;
            }
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "no recovery: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    store.ready().unwrap();
    wait_trusted(&store);
}

#[test]
fn the_signing_certificate_is_recorded_once() {
    let (a, url) = open();
    assert_eq!(a.record_certificate("aa").unwrap(), "aa");
    let b = PgStore::open(options(&url)).unwrap();
    assert_eq!(
        b.record_certificate("bb").unwrap(),
        "aa",
        "the first one stays"
    );
    assert_eq!(b.record_certificate("aa").unwrap(), "aa");
}

#[test]
fn import_copies_only_what_is_missing() {
    let (s, _) = open();
    let a = crate::domain::Token {
        owner: Some("alice".parse().unwrap()),
        ..token("default", "one")
    };
    let b = token("staging", "two");
    let g = crate::store::tests::grant(&a, 3, t0());
    let orphan = crate::store::tests::grant(&token("default", "gone"), 4, t0());
    assert_eq!(
        s.import(&[a.clone(), b.clone()], &[g.clone(), orphan.clone()])
            .unwrap(),
        (2, 1)
    );
    assert_eq!(
        s.import(&[a.clone(), b.clone()], &[g.clone(), orphan])
            .unwrap(),
        (0, 0)
    );
    // The owner column is written by an import too.
    assert_eq!(
        s.list_by_owner("default", "alice", 0, 10).unwrap().items,
        vec![a.clone()]
    );
    assert_eq!(s.get("default", a.id).unwrap(), Some(a));
    assert_eq!(s.find_refresh(&g.hash).unwrap(), Some(g));
    assert_eq!((s.count().unwrap(), s.count_grants().unwrap()), (2, 1));
}

#[test]
fn calls_from_async_code_work_on_either_runtime_flavour() {
    let (s, _) = open();
    let s = Arc::new(s);
    s.create(&token("default", "from-sync")).unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s2, s3) = (s.clone(), s.clone());
    multi.block_on(async move {
        tokio::spawn(
            async move { assert!(s2.find_by_name("default", "from-sync").unwrap().is_some()) },
        )
        .await
        .unwrap();
        // The admin API's writes run on blocking threads.
        tokio::task::spawn_blocking(move || s3.create(&token("default", "from-blocking")).unwrap())
            .await
            .unwrap();
    });
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    single.block_on(async { assert_eq!(s.count().unwrap(), 2) });
}

/// A CA and a server certificate it signed for `localhost` (PEM: CA cert, server chain, key).
fn tls_material() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), server.pem(), key.serialize_pem())
}

/// Whether the store's pool connections to `db` are encrypted (as PostgreSQL sees them).
fn encrypted(cluster: &PgCluster, db: &str) -> bool {
    let n = cluster.sql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND datname = '{db}' AND application_name = 'regauth'"
        ),
    );
    n != "0"
}

#[test]
fn tls_modes_against_a_cluster_with_a_private_ca() {
    let (ca_pem, server_pem, key_pem) = tls_material();
    let cluster = PgCluster::start_tls(&server_pem, &key_pem);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let (other_ca, _, _) = tls_material();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca).unwrap();
    let url = cluster.new_database();
    let db = db_name(&url).to_string();
    let open = |host: &str, tls: Tls, ca: Option<&std::path::Path>| {
        PgStore::open(PgOptions {
            tls,
            ca_file: ca.map(|p| p.to_path_buf()),
            connect_timeout: Duration::from_secs(2),
            ..PgOptions::new(cluster.url_via(host, &db))
        })
    };

    // verify-full: the chain against the CA file, the name against the certificate.
    let verified = open("localhost", Tls::VerifyFull, Some(&ca_file)).unwrap();
    verified.create(&token("default", "over-tls")).unwrap();
    assert!(encrypted(&cluster, &db));
    drop(verified);
    let err = open("localhost", Tls::VerifyFull, Some(&other_ca_file)).unwrap_err();
    let text = crate::error::Chain(&err).to_string();
    assert!(
        text.to_lowercase().contains("certificate"),
        "another CA: {text}"
    );
    let err = open("127.0.0.1", Tls::VerifyFull, Some(&ca_file)).unwrap_err();
    let text = crate::error::Chain(&err).to_string();
    assert!(
        text.to_lowercase().contains("certificate"),
        "a name the certificate lacks: {text}"
    );
    // Without a CA file the built-in web roots do not know this private CA.
    assert!(open("localhost", Tls::VerifyFull, None).is_err());

    // require and prefer: encrypted, certificate not checked.
    for mode in [Tls::Require, Tls::Prefer] {
        let s = open("127.0.0.1", mode, None).unwrap();
        assert!(s.find_by_name("default", "over-tls").unwrap().is_some());
        assert!(encrypted(&cluster, &db), "{mode:?}");
    }
    // disable: plain.
    let plain = open("127.0.0.1", Tls::Disable, None).unwrap();
    assert!(plain.find_by_name("default", "over-tls").unwrap().is_some());

    // A CA file that is not PEM is named.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let err = open("localhost", Tls::VerifyFull, Some(&bad))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.pem"), "{err}");
}

#[test]
fn require_fails_against_a_server_without_tls() {
    let url = cluster().new_database();
    let err = PgStore::open(PgOptions {
        tls: Tls::Require,
        ..PgOptions::new(url)
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

/// An admin created, rotated or deleted through one replica reaches the other replica's
/// admins cache within a second (the `@admins` notice), though that replica had cached them.
#[test]
fn admin_changes_on_one_replica_reach_the_others_within_a_second() {
    use crate::clock::Clock;
    use crate::domain::Role;
    use crate::service::admins::{AdminsService, NewAdmin};

    let (a, url) = open();
    let b = PgStore::open(options(&url)).unwrap();
    wait_trusted(&a);
    wait_trusted(&b);
    let on_a = AdminsService::new(Arc::new(a), Clock::system());
    let on_b = AdminsService::new(Arc::new(b), Clock::system());
    // B caches the admins (none yet).
    assert_eq!(on_b.authenticate("rgadm_nobody").unwrap(), None);
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{what} did not reach the other replica within 1 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let new = NewAdmin {
        name: "alice".into(),
        role: Role::Editor,
        registries: vec![],
    };
    let (_, first) = on_a.create(new, "bootstrap").unwrap();
    until("a create", &|| on_b.authenticate(&first).unwrap().is_some());
    let (_, second) = on_a.rotate("alice").unwrap();
    until("a rotation", &|| {
        on_b.authenticate(&first).unwrap().is_none()
    });
    assert!(on_b.authenticate(&second).unwrap().is_some());
    on_a.delete("alice").unwrap();
    until("a delete", &|| {
        on_b.authenticate(&second).unwrap().is_none()
    });
}

/// Migration 4 stores the signing keyring: compare-and-set on its version, and every change
/// reaches the other replicas' hook (within a second) with the new version.
#[test]
fn the_keyring_round_trips_with_compare_and_set_and_notifies_other_replicas() {
    let (a, url) = open();
    let b = PgStore::open(options(&url)).unwrap();
    wait_trusted(&b);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    b.on_keyring_change(Arc::new(move |v| {
        let _ = tx.lock().unwrap().send(v);
    }));
    assert_eq!(a.load_keyring().unwrap(), None);
    assert!(a.save_keyring(0, r#"{"keys":[]}"#, "{}").unwrap());
    // A second first store (another replica starting) changes nothing.
    assert!(!b.save_keyring(0, "other", "{}").unwrap());
    let stored = b.load_keyring().unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.state, r#"{"keys":[]}"#);
    assert!(a.save_keyring(1, "two", r#"{"k":"pem"}"#).unwrap());
    assert!(
        !b.save_keyring(1, "stale", "{}").unwrap(),
        "a stale version is refused"
    );
    assert_eq!(
        b.load_keyring().unwrap().unwrap(),
        super::StoredKeyring {
            version: 2,
            state: "two".into(),
            certificates: r#"{"k":"pem"}"#.into(),
        }
    );
    let start = Instant::now();
    loop {
        let v = rx
            .recv_timeout(Duration::from_secs(1))
            .expect("no keyring notice within 1 s");
        if v == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "notice of version 2 late"
        );
    }
}
