//! Tests of the PostgreSQL store on a private cluster (one per test binary, a database per
//! test): the conformance suite, migrations, coherence between two stores (replicas) on one
//! database, TLS, and failures.
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Duration as Span;

use super::{schema, PgStore, StoreConfig, Tls};
use crate::domain::Status;
use crate::store::{Store, StoreError};
use crate::testing::{t0, token};

#[path = "../../../tests/common/postgres.rs"]
mod fixture;

pub(crate) use fixture::PgCluster;

/// The cluster of this test binary, started at first use.
pub(crate) fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start)
}

pub(crate) fn options() -> StoreConfig {
    StoreConfig {
        tls: Tls::Disable,
        ..StoreConfig::default()
    }
}

/// A store on a new database.
pub(crate) async fn open() -> (PgStore, String) {
    let url = cluster().new_database();
    (PgStore::open(&url, &options()).await.unwrap(), url)
}

/// Reads `name` on `s` until it is in `s`'s cache: the notice of its create may arrive just
/// after the first read and drop what that read cached.
async fn read_until_cached(s: &PgStore, name: &str) {
    let start = Instant::now();
    loop {
        assert!(s.find_by_name("default", name).await.unwrap().is_some());
        if s.shared.cache.len() == 1 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name} never stayed cached"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn wait_trusted(s: &PgStore) {
    let start = Instant::now();
    while !s.cache_trusted() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "listener never came up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn db_name(url: &str) -> &str {
    let path = url.rsplit('/').next().unwrap();
    path.split('?').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_under_the_lock_when_replicas_start_together() {
    let url = cluster().new_database();
    let settings = options();
    let stores: Vec<PgStore> =
        futures_util::future::join_all((0..4).map(|_| PgStore::open(&url, &settings)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(stores.len(), 4);
    let versions = cluster().sql(
        db_name(&url),
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM regauth_schema",
    );
    let expected: Vec<String> = schema::versions().map(|v| v.to_string()).collect();
    assert_eq!(versions, expected.join(","));
    // Every replica works on the one schema.
    stores[0]
        .create(&token("default", "made-on-a"))
        .await
        .unwrap();
    assert!(stores[3]
        .find_by_name("default", "made-on-a")
        .await
        .unwrap()
        .is_some());
}

/// Migrations 2 (token owners) and 3 (keyring) upgrade a version-1 database in place: its tokens keep
/// working with no owner, and owners written afterwards are found by the owner index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_2_adds_owners_to_a_version_1_database() {
    let (store, url) = open().await;
    let old = token("default", "from-v1");
    store.create(&old).await.unwrap();
    drop(store);
    // Back to what migration 1 left.
    cluster().sql(
        db_name(&url),
        "ALTER TABLE regauth_tokens DROP COLUMN owner",
    );
    cluster().sql(db_name(&url), "DROP TABLE regauth_admins");
    cluster().sql(db_name(&url), "DROP TABLE regauth_keyring");
    cluster().sql(db_name(&url), "DROP TABLE regauth_events");
    cluster().sql(db_name(&url), "DROP TABLE regauth_webhook_deliveries");
    cluster().sql(
        db_name(&url),
        "ALTER TABLE regauth_refresh_grants DROP COLUMN expires",
    );
    cluster().sql(
        db_name(&url),
        "DELETE FROM regauth_schema WHERE version > 1",
    );
    assert_eq!(
        cluster().sql(
            db_name(&url),
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM regauth_schema",
        ),
        "1"
    );

    let store = PgStore::open(&url, &options()).await.unwrap();
    assert_eq!(
        cluster().sql(
            db_name(&url),
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM regauth_schema",
        ),
        schema::versions()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    // Migration 4: the keyring's table, empty.
    assert_eq!(store.load_keyring().await.unwrap(), None);
    assert_eq!(
        store.get("default", old.id).await.unwrap(),
        Some(old.clone())
    );
    assert_eq!(
        store
            .list_by_owner("default", "bob", 0, 10)
            .await
            .unwrap()
            .total,
        0
    );
    let owned = crate::domain::Token {
        owner: Some("bob".parse().unwrap()),
        ..old.clone()
    };
    store.update(&owned).await.unwrap();
    let page = store.list_by_owner("default", "bob", 0, 10).await.unwrap();
    assert_eq!(page.items, vec![owned]);
    assert_eq!(
        cluster().sql(
            db_name(&url),
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'regauth_tokens_owner'",
        ),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_with_a_clear_message() {
    let (store, url) = open().await;
    drop(store);
    let next = schema::LATEST + 1;
    cluster().sql(
        db_name(&url),
        &format!(
            "INSERT INTO regauth_schema (version, description) VALUES ({next}, 'from the future')"
        ),
    );
    let err = PgStore::open(&url, &options())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("schema is at version {next}"))
            && err.contains(&format!("newest this regauth knows ({})", schema::LATEST)),
        "{err}"
    );
}

/// Reads `g` on `s` until `s` has it cached: the notice of the write before may arrive just
/// after the first read and drop what that read cached.
async fn read_grant_until_cached(s: &PgStore, g: &crate::store::RefreshGrant) {
    let start = Instant::now();
    loop {
        assert_eq!(s.find_refresh(&g.hash).await.unwrap().as_ref(), Some(g));
        if s.shared.grants.get(&g.hash.0).is_some() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the grant never stayed cached"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Returns once `b` has applied every notice of `a`'s writes so far: `b` caches a new name as
/// absent, `a` creates it, and `b` sees it only once that notice (sent after the earlier
/// ones, on one connection, in commit order) has dropped the cached absence.
async fn settle(a: &PgStore, b: &PgStore, marker: &str) {
    let key = super::name_key("default", marker);
    let start = Instant::now();
    while !(b.find_by_name("default", marker).await.unwrap().is_none()
        && b.shared.cache.get(&key).is_some())
    {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{marker} never cached"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    a.create(&token("default", marker)).await.unwrap();
    while b.find_by_name("default", marker).await.unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{marker}: no notice"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `s` no longer finds `g`, within the bound the token cache has (2 s).
async fn until_refused(s: &PgStore, g: &crate::store::RefreshGrant, what: &str) {
    let start = Instant::now();
    while s.find_refresh(&g.hash).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{what} on one replica did not reach the other's grant cache within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Refresh grants are cached (docker's identity-token requests make no round trip), and a
/// grant revoked on replica A (its token disabled or deleted, or trimmed beyond the cap) is
/// refused on replica B within the bound of the token cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_grants_are_cached_and_a_revocation_reaches_the_other_replica() {
    use crate::store::conformance::grant;
    let (a, url) = open().await;
    let b = PgStore::open(&url, &options()).await.unwrap();
    wait_trusted(&b).await;
    let t = token("default", "laptop");
    a.create(&t).await.unwrap();
    let g1 = grant(&t, 1, t0());
    a.add_refresh(&g1, 10).await.unwrap();
    settle(&a, &b, "marker").await;
    read_grant_until_cached(&b, &g1).await;
    // Served from B's cache: a row removed behind the stores' back (no notice) is still found.
    cluster().sql(
        db_name(&url),
        "DELETE FROM regauth_refresh_grants WHERE hash = '\\x0101010101010101010101010101010101010101010101010101010101010101'",
    );
    assert_eq!(
        b.find_refresh(&g1.hash).await.unwrap(),
        Some(g1.clone()),
        "a cache hit"
    );
    a.add_refresh(&g1, 10).await.unwrap();

    // A disable on A revokes it on B.
    read_grant_until_cached(&b, &g1).await;
    let disabled = crate::domain::Token {
        status: Status::Disabled,
        ..t.clone()
    };
    a.update(&disabled).await.unwrap();
    until_refused(&b, &g1, "a disable").await;

    // A delete on A revokes it on B.
    a.update(&t).await.unwrap();
    let g2 = grant(&t, 2, t0() + Span::minutes(1));
    a.add_refresh(&g2, 10).await.unwrap();
    read_grant_until_cached(&b, &g2).await;
    assert!(a.delete("default", t.id).await.unwrap());
    until_refused(&b, &g2, "a delete").await;

    // A grant trimmed beyond the cap on A is refused on B.
    let u = token("default", "desktop");
    a.create(&u).await.unwrap();
    let old = grant(&u, 3, t0());
    a.add_refresh(&old, 1).await.unwrap();
    read_grant_until_cached(&b, &old).await;
    a.add_refresh(&grant(&u, 4, t0() + Span::minutes(1)), 1)
        .await
        .unwrap();
    until_refused(&b, &old, "trimming beyond the cap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_on_one_replica_reaches_the_other_replicas_cache() {
    let (a, url) = open().await;
    let b = PgStore::open(&url, &options()).await.unwrap();
    wait_trusted(&b).await;
    let t = token("default", "shared");
    a.create(&t).await.unwrap();
    // B caches it.
    read_until_cached(&b, "shared").await;
    assert_eq!(
        b.find_by_name("default", "shared")
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Enabled
    );
    a.update(&crate::domain::Token {
        status: Status::Disabled,
        ..t.clone()
    })
    .await
    .unwrap();
    let start = Instant::now();
    loop {
        let seen = b.find_by_name("default", "shared").await.unwrap().unwrap();
        if seen.status == Status::Disabled {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "B kept serving the enabled token"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A delete too.
    assert!(b.find_by_name("default", "shared").await.unwrap().is_some());
    assert!(a.delete("default", t.id).await.unwrap());
    let start = Instant::now();
    while b.find_by_name("default", "shared").await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "B kept serving the deleted token"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The last-use writer leaves used tokens cached, showing their uses, rather than dropping
/// them (which sent the token endpoint back to the database for each after every flush).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_uses_keep_the_tokens_cached() {
    use crate::store::conformance::{use_of, used};
    let (s, url) = open().await;
    wait_trusted(&s).await;
    let t = token("default", "used");
    s.create(&t).await.unwrap();
    // The create's own notice drops the name from the cache when it arrives, which can be
    // after a read has cached it. Notices arrive in commit order, so once a later write by
    // another replica has reached this one, the create's notice has too.
    let other = PgStore::open(&url, &options()).await.unwrap();
    settle(&other, &s, "marker").await;
    let key = super::name_key("default", "used");
    let start = Instant::now();
    while s.find_by_name("default", "used").await.unwrap().is_none()
        || s.shared.cache.get(&key).is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "used never cached"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at = used(t0() + Span::minutes(1), "192.0.2.1");
    assert_eq!(s.record_uses(&[use_of(&t, at)]).await.unwrap(), 1);
    let cached = s.shared.cache.get(&super::name_key("default", "used"));
    let cached = cached.flatten().expect("the used token stays cached");
    assert_eq!(cached.last_used, Some(at));
    assert_eq!(
        s.find_by_name("default", "used").await.unwrap(),
        Some(cached)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_one_replica_knows_as_unknown_is_found_once_another_creates_it() {
    let (a, url) = open().await;
    let b = PgStore::open(&url, &options()).await.unwrap();
    wait_trusted(&b).await;
    // B caches the name as absent (so an unknown name costs what a known one does)...
    assert!(b.find_by_name("default", "late").await.unwrap().is_none());
    assert_eq!(b.shared.cache.len(), 1, "the absence is cached");
    // ...and A's create reaches it through the notice.
    let t = token("default", "late");
    a.create(&t).await.unwrap();
    let start = Instant::now();
    while b.find_by_name("default", "late").await.unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "B kept answering that the new token does not exist"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The creating replica's own cached absence goes at once.
    assert!(a.find_by_name("default", "other").await.unwrap().is_none());
    a.create(&token("default", "other")).await.unwrap();
    assert!(a.find_by_name("default", "other").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_listener_a_replica_reads_through_and_drops_the_cache_on_reconnect() {
    let (a, url) = open().await;
    let b = PgStore::open(&url, &options()).await.unwrap();
    wait_trusted(&b).await;
    let t = token("default", "watched");
    a.create(&t).await.unwrap();
    read_until_cached(&b, "watched").await;
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
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    a.update(&crate::domain::Token {
        status: Status::Disabled,
        ..t.clone()
    })
    .await
    .unwrap();
    // Whether B has reconnected yet or not, it must see the disable now.
    assert_eq!(
        b.find_by_name("default", "watched")
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Disabled
    );
    wait_trusted(&b).await;
    assert_eq!(
        b.find_by_name("default", "watched")
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Disabled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_replica_sweeps_at_a_time() {
    let (a, url) = open().await;
    let b = PgStore::open(&url, &options()).await.unwrap();
    for i in 0..50 {
        a.create(&crate::store::conformance::expiring(
            "default",
            &format!("old-{i}"),
            t0(),
        ))
        .await
        .unwrap();
    }
    // Hold the sweep lock as another replica in its sweep would.
    let (mut c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let holder = c.transaction().await.unwrap();
    holder
        .execute("SELECT pg_advisory_xact_lock($1)", &[&super::SWEEP_LOCK])
        .await
        .unwrap();
    let held = b.delete_expired(t0() + Span::hours(1)).await.unwrap();
    holder.rollback().await.unwrap();
    assert!(
        held.is_empty(),
        "B swept while another replica held the lock"
    );
    assert_eq!(a.count().await.unwrap(), 50);
    // Both sweeping at once: every token deleted exactly once.
    let (x, y) = tokio::join!(
        a.delete_expired(t0() + Span::hours(1)),
        b.delete_expired(t0() + Span::hours(1))
    );
    assert_eq!(x.unwrap().len() + y.unwrap().len(), 50);
    assert_eq!(a.count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable_quickly_and_recovers() {
    let mut cluster = PgCluster::start();
    let url = cluster.new_database();
    let settings = StoreConfig {
        connect_timeout_ms: 500,
        statement_timeout_ms: 1000,
        ..options()
    };
    let store = PgStore::open(&url, &settings).await.unwrap();
    let t = token("default", "survivor");
    store.create(&t).await.unwrap();
    store.ready().await.unwrap();
    cluster.stop();
    let start = Instant::now();
    for _ in 0..3 {
        let err = store.get("default", t.id).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(matches!(
            store.ready().await,
            Err(StoreError::Unavailable { .. })
        ));
        assert!(matches!(
            store.create(&token("default", "while-down")).await,
            Err(StoreError::Unavailable { .. })
        ));
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // Read through while down: never a cached answer without notices.
    assert!(store.find_by_name("default", "survivor").await.is_err());
    cluster.restart();
    let start = Instant::now();
    loop {
        match store.get("default", t.id).await {
            Ok(found) => {
                assert_eq!(found, Some(t.clone()));
                break;
            }
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "no recovery: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    store.ready().await.unwrap();
    wait_trusted(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_certificate_is_recorded_once() {
    let (a, url) = open().await;
    assert_eq!(a.record_certificate("aa").await.unwrap(), "aa");
    let b = PgStore::open(&url, &options()).await.unwrap();
    assert_eq!(
        b.record_certificate("bb").await.unwrap(),
        "aa",
        "the first one stays"
    );
    assert_eq!(b.record_certificate("aa").await.unwrap(), "aa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_copies_only_what_is_missing() {
    let (s, _) = open().await;
    let a = crate::domain::Token {
        owner: Some("alice".parse().unwrap()),
        ..token("default", "one")
    };
    let b = token("staging", "two");
    let g = crate::store::conformance::grant(&a, 3, t0());
    let orphan = crate::store::conformance::grant(&token("default", "gone"), 4, t0());
    assert_eq!(
        s.import(&[a.clone(), b.clone()], &[g.clone(), orphan.clone()])
            .await
            .unwrap(),
        (2, 1)
    );
    assert_eq!(
        s.import(&[a.clone(), b.clone()], &[g.clone(), orphan])
            .await
            .unwrap(),
        (0, 0)
    );
    // The owner column is written by an import too.
    assert_eq!(
        s.list_by_owner("default", "alice", 0, 10)
            .await
            .unwrap()
            .items,
        vec![a.clone()]
    );
    assert_eq!(s.get("default", a.id).await.unwrap(), Some(a));
    assert_eq!(s.find_refresh(&g.hash).await.unwrap(), Some(g));
    assert_eq!(
        (s.count().await.unwrap(), s.count_grants().await.unwrap()),
        (2, 1)
    );
}

/// The shared keyring's synchronous calls ([`PgStore::blocking`]) work from a blocking
/// thread and from a thread outside the runtime, and refuse, rather than deadlock, on a
/// current-thread runtime, whose one thread drives the connections they would wait for.
#[test]
fn synchronous_calls_work_off_the_runtime_and_refuse_to_deadlock() {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = Arc::new(multi.block_on(open()).0);
    let s2 = s.clone();
    let from_blocking = multi.block_on(async move {
        tokio::task::spawn_blocking(move || s2.blocking(s2.load_keyring()))
            .await
            .unwrap()
    });
    assert_eq!(from_blocking.unwrap(), None);
    assert_eq!(
        s.blocking(s.load_keyring()).unwrap(),
        None,
        "outside the runtime"
    );
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = single.block_on(async { s.blocking(s.load_keyring()) });
    assert!(
        matches!(&refused, Err(StoreError::Backend { context, .. }) if context.contains("deadlock")),
        "{refused:?}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_against_a_cluster_with_a_private_ca() {
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
    let open = async |host: &str, tls: Tls, ca: Option<&std::path::Path>| {
        let settings = StoreConfig {
            tls,
            ca_file: ca.map(|p| p.to_path_buf()),
            connect_timeout_ms: 2_000,
            ..StoreConfig::default()
        };
        PgStore::open(&cluster.url_via(host, &db), &settings).await
    };

    // verify-full: the chain against the CA file, the name against the certificate.
    let verified = open("localhost", Tls::VerifyFull, Some(&ca_file))
        .await
        .unwrap();
    verified
        .create(&token("default", "over-tls"))
        .await
        .unwrap();
    assert!(encrypted(&cluster, &db));
    drop(verified);
    let err = open("localhost", Tls::VerifyFull, Some(&other_ca_file))
        .await
        .unwrap_err();
    let text = crate::error::Chain(&err).to_string();
    assert!(
        text.to_lowercase().contains("certificate"),
        "another CA: {text}"
    );
    let err = open("127.0.0.1", Tls::VerifyFull, Some(&ca_file))
        .await
        .unwrap_err();
    let text = crate::error::Chain(&err).to_string();
    assert!(
        text.to_lowercase().contains("certificate"),
        "a name the certificate lacks: {text}"
    );
    // Without a CA file the built-in web roots do not know this private CA.
    assert!(open("localhost", Tls::VerifyFull, None).await.is_err());

    // require and prefer: encrypted, certificate not checked.
    for mode in [Tls::Require, Tls::Prefer] {
        let s = open("127.0.0.1", mode, None).await.unwrap();
        assert!(s
            .find_by_name("default", "over-tls")
            .await
            .unwrap()
            .is_some());
        assert!(encrypted(&cluster, &db), "{mode:?}");
    }
    // disable: plain.
    let plain = open("127.0.0.1", Tls::Disable, None).await.unwrap();
    assert!(plain
        .find_by_name("default", "over-tls")
        .await
        .unwrap()
        .is_some());

    // A CA file that is not PEM is named.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let err = open("localhost", Tls::VerifyFull, Some(&bad))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_fails_against_a_server_without_tls() {
    let url = cluster().new_database();
    let settings = StoreConfig {
        tls: Tls::Require,
        ..StoreConfig::default()
    };
    let err = PgStore::open(&url, &settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

/// An admin created, rotated or deleted through one replica reaches the other replica's
/// admins cache within a second (the `@admins` notice), though that replica had cached them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_on_one_replica_reach_the_others_within_a_second() {
    use crate::clock::Clock;
    use crate::domain::Role;
    use crate::service::admins::{AdminsService, NewAdmin};

    let (a, url) = open().await;
    let b = PgStore::open(&url, &options()).await.unwrap();
    wait_trusted(&a).await;
    wait_trusted(&b).await;
    let on_a = AdminsService::new(Arc::new(a), Clock::system());
    let on_b = AdminsService::new(Arc::new(b), Clock::system());
    // B caches the admins (none yet).
    assert_eq!(on_b.authenticate("rgadm_nobody").await.unwrap(), None);
    // Whether `secret` authenticates on B as `known`, within a second.
    let until = async |what: &str, secret: &str, known: bool| {
        let start = Instant::now();
        while on_b.authenticate(secret).await.unwrap().is_some() != known {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{what} did not reach the other replica within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let new = NewAdmin {
        name: "alice".into(),
        role: Role::Editor,
        registries: vec![],
    };
    let (_, first) = on_a.create(new, "bootstrap").await.unwrap();
    until("a create", &first, true).await;
    let (_, second) = on_a.rotate("alice").await.unwrap();
    until("a rotation", &first, false).await;
    assert!(on_b.authenticate(&second).await.unwrap().is_some());
    on_a.delete("alice").await.unwrap();
    until("a delete", &second, false).await;
}

/// Migration 4 stores the signing keyring: compare-and-set on its version, and every change
/// reaches the other replicas' hook (within a second) with the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_round_trips_with_compare_and_set_and_notifies_other_replicas() {
    let (a, url) = open().await;
    let b = PgStore::open(&url, &options()).await.unwrap();
    wait_trusted(&b).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    b.on_keyring_change(Arc::new(move |v| {
        let _ = tx.lock().unwrap().send(v);
    }));
    assert_eq!(a.load_keyring().await.unwrap(), None);
    assert!(a.save_keyring(0, r#"{"keys":[]}"#, "{}").await.unwrap());
    // A second first store (another replica starting) changes nothing.
    assert!(!b.save_keyring(0, "other", "{}").await.unwrap());
    let stored = b.load_keyring().await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.state, r#"{"keys":[]}"#);
    assert!(a.save_keyring(1, "two", r#"{"k":"pem"}"#).await.unwrap());
    assert!(
        !b.save_keyring(1, "stale", "{}").await.unwrap(),
        "a stale version is refused"
    );
    assert_eq!(
        b.load_keyring().await.unwrap().unwrap(),
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

/// A call waiting for PostgreSQL parks no thread: on a current-thread runtime, another task
/// runs meanwhile, here the one that releases the row lock the call waits for. (When calls
/// blocked their thread, this update waited out `statement_timeout` and failed.)
#[tokio::test]
async fn a_call_waiting_for_the_database_lets_other_tasks_run() {
    let (s, url) = open().await;
    let t = token("default", "locked");
    s.create(&t).await.unwrap();
    let (mut c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let holder = c.transaction().await.unwrap();
    holder
        .execute(
            "SELECT 1 FROM regauth_tokens WHERE id = $1 FOR UPDATE",
            &[&t.id],
        )
        .await
        .unwrap();
    let disabled = crate::domain::Token {
        status: Status::Disabled,
        ..t.clone()
    };
    let (updated, ()) = tokio::join!(s.update(&disabled), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        holder.rollback().await.unwrap();
    });
    updated.unwrap();
    assert_eq!(
        s.get("default", t.id).await.unwrap().unwrap().status,
        Status::Disabled
    );
}
