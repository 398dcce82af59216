//! Micro-benchmarks of the token endpoint's hot path (issue 5), one criterion binary so that
//! `cargo test --all-targets` links one extra executable, not five.
//!
//! `cargo bench --bench micro` measures; `cargo test --all-targets` (which runs bench targets
//! without `--bench`) runs each routine once as a smoke test, over a small store.
//!
//! Groups:
//! - `parse_scope`: the `scope=` parameter, one and two resource scopes;
//! - `decide`: the access decision for a token with 1, 10 and 100 scopes;
//! - `secret`: `SecretHash::of` (SHA-256 of a presented password);
//! - `store`: `SledStore::find_by_name` on a seeded store: a hot working set served by the
//!   token cache, and sled alone (token cache off) over the whole store, alone and with the
//!   hash and compare `check_password` does, for tokens with 2 and 100 scopes;
//! - `jwt`: `Issuer::issue` with the ES256 and RS256 fixture keys;
//! - `auth_service`: `AuthService::issue`, the whole decision without HTTP (ES256, sled);
//! - `oidc_verify`: `Verifier::verify` of a GitHub-shaped ID token with its key known (ES256
//!   and RS256): what an ID-token login adds to the decision, with no network call.
// Test code: a failed unwrap or expect is a failed test (the crate denies them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures_util::FutureExt as _;
use regauth::clock::Clock;
use regauth::config::RegistryConfig;
use regauth::domain::secret::new_password;
use regauth::domain::{
    decide, parse_scope, Grant, ResourceRequest, Scope, SecretHash, Status, Token,
};
use regauth::jwt::{Issuer, SigningKey};
use regauth::service::{AuthService, Credentials, TokenRequest};
use regauth::store::sled::DEFAULT_CACHE_BYTES;
use regauth::store::{SledStore, Store};
use uuid::Uuid;

const ES256_KEY: &str = include_str!("../tests/fixtures/es256.key");
const RS256_KEY: &str = include_str!("../tests/fixtures/rs256.key");
const REGISTRY: &str = "default";
const SERVICE: &str = "registry.local";

/// `cargo bench` passes `--bench`; `cargo test` does not, and then criterion runs every
/// routine once. Seeding a big store would be most of that run's time, so keep it small.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).expect("valid timestamp")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `n` repository scopes `team-<i>/*` (pull, push); the last one is what the requests hit.
fn scopes(n: usize) -> Vec<Scope> {
    (0..n)
        .map(|i| {
            Scope::parse(
                "repository",
                &format!("team-{i}/*"),
                &strings(&["pull", "push"]),
            )
            .expect("valid scope")
        })
        .collect()
}

/// What `docker push` with a cross-repository mount asks for: push to one repository, pull
/// from another; both matched by the token's last scope.
fn push_with_mount(n: usize) -> Vec<ResourceRequest> {
    let ns = n - 1;
    parse_scope(&format!(
        "repository:team-{ns}/app:pull,push repository:team-{ns}/base:pull"
    ))
    .expect("valid scope")
}

fn token(name: &str, password: &str, scopes: Vec<Scope>) -> Token {
    Token {
        id: Uuid::new_v4(),
        registry: REGISTRY.to_string(),
        name: name.parse().expect("valid token name"),
        status: Status::Enabled,
        expiry: None,
        scopes,
        secret_hash: SecretHash::of(password),
        created: now(),
        created_by: "bench".to_string(),
        modified: now(),
        modified_by: "bench".to_string(),
        previous: None,
        last_used: None,
        networks: vec![],
        owner: None,
        description: None,
        federation: None,
    }
}

fn bench_parse_scope(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_scope");
    for (what, scope) in [
        ("one", "repository:team/app:pull,push"),
        (
            "two",
            "repository:team/app:pull,push repository:library/base:pull",
        ),
        ("host_port", "repository:localhost:5000/team/app:pull"),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(what), scope, |b, s| {
            b.iter(|| parse_scope(black_box(s)))
        });
    }
    g.finish();
}

fn bench_decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for n in [1, 10, 100] {
        let token_scopes = scopes(n);
        let requests = push_with_mount(n);
        assert_eq!(decide(&token_scopes, &requests).len(), 2, "both granted");
        g.bench_with_input(BenchmarkId::new("scopes", n), &n, |b, _| {
            b.iter(|| decide(black_box(&token_scopes), black_box(&requests)))
        });
    }
    g.finish();
}

fn bench_secret(c: &mut Criterion) {
    let password = new_password().unwrap();
    c.bench_function("secret/hash", |b| {
        b.iter(|| SecretHash::of(black_box(&password)))
    });
}

/// (token name, password) pairs.
type Logins = Vec<(String, String)>;

/// A sled store in `dir` holding `count` tokens `bench-<i>` with two scopes each, plus
/// `wide-<i>` tokens with 100 scopes. Returns the passwords of `bench-0..` and `wide-0..`.
fn seed(dir: &Path, count: usize) -> (SledStore, Logins, Logins) {
    let store = SledStore::open(dir).expect("open store");
    let mut narrow = Vec::with_capacity(count);
    let mut wide = Vec::new();
    let two = vec![
        Scope::parse("repository", "bench/*", &strings(&["pull", "push"])).expect("scope"),
        Scope::parse("repository", "base/*", &strings(&["pull"])).expect("scope"),
    ];
    for i in 0..count {
        let (name, password) = (format!("bench-{i:07}"), new_password().unwrap());
        store
            .create_unflushed(&token(&name, &password, two.clone()))
            .expect("create");
        narrow.push((name, password));
    }
    for i in 0..100.min(count) {
        let (name, password) = (format!("wide-{i:07}"), new_password().unwrap());
        store
            .create_unflushed(&token(&name, &password, scopes(100)))
            .expect("create");
        wide.push((name, password));
    }
    store.flush().expect("flush");
    (store, narrow, wide)
}

/// Opens the seeded store in `dir` again, with a token cache of `token_cache` bytes. sled lets
/// go of its directory lock when its background threads release the dropped database, a moment
/// after `drop`, so this retries until then.
fn reopen(dir: &Path, token_cache: u64) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open_with_caches(dir, DEFAULT_CACHE_BYTES, token_cache) {
            Ok(s) => return s,
            Err(e)
                if e.to_string().contains(regauth::store::sled::HELD)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reopening {}: {e}", dir.display()),
        }
    }
}

fn bench_store(c: &mut Criterion) {
    let count = if benchmarking() { 100_000 } else { 100 };
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, narrow, wide) = seed(dir.path(), count);
    drop(store);
    let mut g = c.benchmark_group("store");
    // The token endpoint's steady state: a working set that fits the token cache in front of
    // sled (`store/cache.rs`), looked up over and over.
    {
        let store = reopen(dir.path(), regauth::store::sled::DEFAULT_TOKEN_CACHE_BYTES);
        let hot = &narrow[..narrow.len().min(1_000)];
        let mut i = 0;
        g.bench_function(BenchmarkId::new("find_by_name", "token_cache"), |b| {
            b.iter(|| {
                i = (i + 7) % hot.len();
                store.find_by_name(REGISTRY, black_box(&hot[i].0))
            })
        });
    }
    // sled alone (token cache off): a B-tree lookup and a record decode per call, over every
    // token in a scattered order (7 919 is prime, so stepping by it modulo 100 000 or 100
    // visits every index), so each lookup is not the previous one's page.
    let store = reopen(dir.path(), 0);
    let step = 7_919;
    for (what, tokens) in [("sled_scopes_2", &narrow), ("sled_scopes_100", &wide)] {
        let mut i = 0;
        g.bench_function(BenchmarkId::new("find_by_name", what), |b| {
            b.iter(|| {
                i = (i + step) % tokens.len();
                // A sled read never awaits: one poll completes it (the boxed future is the
                // async trait's cost, measured here too).
                store
                    .find_by_name(REGISTRY, black_box(&tokens[i].0))
                    .now_or_never()
            })
        });
        let mut i = 0;
        g.bench_function(BenchmarkId::new("hash_find_compare", what), |b| {
            b.iter(|| {
                i = (i + step) % tokens.len();
                let (name, password) = &tokens[i];
                let presented = SecretHash::of(black_box(password));
                let t = store
                    .find_by_name(REGISTRY, name)
                    .now_or_never()
                    .expect("a sled read completes at once")
                    .expect("read");
                t.is_some_and(|t| t.secret_hash.ct_eq(&presented))
            })
        });
    }
    g.finish();
}

fn grants() -> Vec<Grant> {
    vec![
        Grant {
            kind: "repository".into(),
            name: "bench/app".into(),
            actions: vec!["pull".into(), "push".into()],
        },
        Grant {
            kind: "repository".into(),
            name: "bench/base".into(),
            actions: vec!["pull".into()],
        },
    ]
}

fn bench_jwt(c: &mut Criterion) {
    let mut g = c.benchmark_group("jwt_issue");
    let access = grants();
    for (alg, pem) in [("ES256", ES256_KEY), ("RS256", RS256_KEY)] {
        let key = SigningKey::from_pkcs8_pem(pem).expect("fixture key");
        let issuer = Issuer::new(key, "regauth".into(), 300);
        g.bench_function(alg, |b| {
            b.iter(|| issuer.issue("bench-0000001", SERVICE, black_box(&access), now()))
        });
    }
    g.finish();
}

fn bench_auth_service(c: &mut Criterion) {
    let count = if benchmarking() { 10_000 } else { 100 };
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, narrow, _) = seed(dir.path(), count);
    let key = SigningKey::from_pkcs8_pem(ES256_KEY).expect("fixture key");
    let registries = [RegistryConfig::new(REGISTRY, SERVICE, "localhost:5000")];
    let service = AuthService::new(
        Arc::new(store),
        Issuer::new(key, "regauth".into(), 300),
        Clock::manual(now()),
        &registries,
    );
    let scopes = parse_scope("repository:bench/app:pull,push repository:bench/base:pull")
        .expect("valid scope");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut i = 0;
    c.bench_function("auth_service/issue_es256", |b| {
        b.iter(|| {
            i = (i + 7_919) % narrow.len();
            let (username, password) = narrow[i].clone();
            let req = TokenRequest {
                service: SERVICE.into(),
                credentials: Credentials::Password { username, password },
                scopes: scopes.clone(),
                want_refresh: false,
                client_id: None,
                client_addr: None,
                grant_type: "basic",
            };
            let issued = rt.block_on(service.issue(req)).expect("issued");
            assert_eq!(issued.granted.len(), 2);
            issued
        })
    });
}

fn bench_oidc_verify(c: &mut Criterion) {
    use regauth::domain::federation::{Federation, FederationConfig, GITHUB_ISSUER};
    use regauth::metrics::Metrics;
    use regauth::oidc::Verifier;
    use serde_json::json;
    let verifier = Verifier::new(&FederationConfig::default(), Arc::new(Metrics::new()))
        .expect("default issuers");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("oidc_verify");
    for (alg, pem) in [("ES256", ES256_KEY), ("RS256", RS256_KEY)] {
        let key = SigningKey::from_pkcs8_pem(pem).expect("fixture key");
        let iat = now().timestamp();
        let claims = json!({
            "iss": GITHUB_ISSUER, "aud": "https://registry.example.com",
            "iat": iat, "nbf": iat, "exp": iat + 300,
            "sub": "repo:acme/app:ref:refs/heads/main", "repository": "acme/app",
            "repository_id": "42", "repository_owner_id": "1234567", "ref": "refs/heads/main",
        });
        let header = json!({"alg": alg, "typ": "JWT", "kid": key.thumbprint()});
        let b64 = |bytes: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = key.sign(signed.as_bytes()).expect("signature");
        let token = format!("{signed}.{}", b64(&sig));
        let conditions = [
            ("repository_owner_id", "1234567"),
            ("repository", "acme/*"),
            ("ref", "refs/heads/main"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut fed = Federation::new(
            GITHUB_ISSUER,
            vec!["https://registry.example.com".into()],
            conditions,
        );
        fed.jwks = Some(json!({"keys": [key.jwk()]}));
        g.bench_function(alg, |b| {
            b.iter(|| {
                rt.block_on(verifier.verify(&fed, black_box(&token), now()))
                    .expect("verified")
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_parse_scope,
    bench_decide,
    bench_secret,
    bench_store,
    bench_jwt,
    bench_auth_service,
    bench_oidc_verify
);
criterion_main!(benches);
