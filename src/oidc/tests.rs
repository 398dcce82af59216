//! The verifier's rules, one test per refusal, with ID tokens signed by keys the tests make;
//! and the JWKS cache against a real HTTPS issuer started here (an rcgen CA trusted through
//! `ca_file`, a counter of fetches). Time is the `now` each call is given (a manual
//! [`Clock`]), so the once-a-minute and freshness rules are tested without sleeping.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{TimeDelta, TimeZone, Utc};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::*;
use crate::clock::Clock;
use crate::domain::federation::{IssuerConfig, GITHUB_ISSUER};
use crate::jwt::SigningKey;
use crate::metrics::JwksFetch;

const AUD: &str = "https://registry.example.com";

fn es256() -> SigningKey {
    SigningKey::generate_es256().unwrap().0
}

fn rs256() -> SigningKey {
    SigningKey::from_pkcs8_pem(include_str!("../../tests/fixtures/rs256.key")).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A compact JWS of `header` and `claims` signed by `key`.
fn sign_with(key: &SigningKey, header: Value, claims: &Value) -> String {
    let signed = format!("{}.{}", b64(&header), b64(claims));
    let sig = key.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// GitHub-shaped claims of `issuer`, issued at `now` for five minutes.
fn claims_at(issuer: &str, now: DateTime<Utc>) -> Value {
    let iat = now.timestamp();
    json!({
        "iss": issuer, "aud": AUD, "iat": iat, "nbf": iat, "exp": iat + 300,
        "sub": "repo:acme/app:ref:refs/heads/main",
        "repository": "acme/app", "repository_id": "42", "repository_owner_id": 1234567,
        "ref": "refs/heads/main",
    })
}

/// An ID token by `key` (its own `alg` and thumbprint `kid`) with `claims`.
fn id_token(key: &SigningKey, claims: &Value) -> String {
    sign_with(
        key,
        json!({"alg": key.alg(), "typ": "JWT", "kid": key.thumbprint()}),
        claims,
    )
}

fn federation(issuer: &str, keys: &[&SigningKey]) -> Federation {
    let claims: BTreeMap<String, String> = [
        ("repository_owner_id", "1234567"),
        ("repository", "acme/*"),
        ("ref", "refs/heads/main"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut f = Federation::new(issuer, vec![AUD.to_string()], claims);
    if !keys.is_empty() {
        f.jwks = Some(json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}));
    }
    f
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn config(issuers: &[&str], ca_file: Option<PathBuf>) -> FederationConfig {
    FederationConfig {
        ca_file,
        issuers: issuers
            .iter()
            .map(|u| IssuerConfig {
                url: u.to_string(),
                kind: IssuerKind::Github,
            })
            .collect(),
    }
}

/// A verifier knowing GitHub's issuer only (inline keys: no network in these tests).
fn offline() -> Verifier {
    Verifier::new(&config(&[GITHUB_ISSUER], None), Arc::new(Metrics::new())).unwrap()
}

// ---- The rules, with inline keys ----

#[tokio::test]
async fn a_good_token_verifies_with_rs256_and_es256_and_yields_its_claims() {
    let v = offline();
    for key in [es256(), rs256()] {
        let fed = federation(GITHUB_ISSUER, &[&key]);
        let token = id_token(&key, &claims_at(GITHUB_ISSUER, t0()));
        let ok = v.verify(&fed, &token, t0()).await.unwrap();
        assert_eq!(
            ok.subject.as_deref(),
            Some("repo:acme/app:ref:refs/heads/main")
        );
        assert_eq!(ok.issued_at, t0());
        assert_eq!(ok.expires_at, t0() + TimeDelta::seconds(300));
        assert_eq!(ok.claims["repository"], "acme/app");
    }
    assert_eq!(v.issuer_kind(GITHUB_ISSUER), Some(IssuerKind::Github));
    assert_eq!(v.issuer_kind("https://evil.example"), None);
}

#[tokio::test]
async fn header_rules_refuse_none_hmac_and_a_key_of_the_wrong_type() {
    let v = offline();
    let ec = es256();
    let rsa = rs256();
    let fed = federation(GITHUB_ISSUER, &[&ec, &rsa]);
    let claims = claims_at(GITHUB_ISSUER, t0());
    // alg none, with an empty signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": ec.thumbprint()})),
        b64(&claims)
    );
    let r = v.verify(&fed, &none, t0()).await.unwrap_err();
    assert_eq!(r, Refusal::UnsupportedAlgorithm("none".into()));
    assert_eq!(r.reason(), "unsupported_algorithm");
    // HS256 "signed" with the RSA public key as the HMAC secret (the classic confusion).
    let signed = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "kid": rsa.thumbprint()})),
        b64(&claims)
    );
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, rsa.public_key_der()),
        signed.as_bytes(),
    );
    let hs = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(
        v.verify(&fed, &hs, t0()).await.unwrap_err(),
        Refusal::UnsupportedAlgorithm("HS256".into())
    );
    // RS256 in the header, naming the EC key.
    let mixed = sign_with(
        &rsa,
        json!({"alg": "RS256", "kid": ec.thumbprint()}),
        &claims,
    );
    let r = v.verify(&fed, &mixed, t0()).await.unwrap_err();
    assert!(
        matches!(&r, Refusal::UnsupportedAlgorithm(m) if m.contains("another type")),
        "{r:?}"
    );
}

#[tokio::test]
async fn keys_come_from_the_federation_only_never_from_the_token() {
    let v = offline();
    let ours = es256();
    let theirs = es256();
    let fed = federation(GITHUB_ISSUER, &[&ours]);
    let claims = claims_at(GITHUB_ISSUER, t0());
    // Unknown kid.
    let r = v
        .verify(&fed, &id_token(&theirs, &claims), t0())
        .await
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::UnknownKey {
            kid: theirs.thumbprint()
        }
    );
    assert_eq!(r.reason(), "unknown_key");
    // A token without a kid matches no key.
    let no_kid = sign_with(&ours, json!({"alg": "ES256"}), &claims);
    assert_eq!(
        v.verify(&fed, &no_kid, t0()).await.unwrap_err(),
        Refusal::UnknownKey { kid: String::new() }
    );
    // Another key under our kid: the signature does not verify.
    let forged = sign_with(
        &theirs,
        json!({"alg": "ES256", "kid": ours.thumbprint()}),
        &claims,
    );
    let r = v.verify(&fed, &forged, t0()).await.unwrap_err();
    assert_eq!(r, Refusal::BadSignature);
    assert_eq!(r.reason(), "bad_signature");
    // A tampered payload.
    let good = id_token(&ours, &claims);
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut changed = claims.clone();
    changed["repository"] = json!("acme/other");
    let payload = b64(&changed);
    parts[1] = &payload;
    assert_eq!(
        v.verify(&fed, &parts.join("."), t0()).await.unwrap_err(),
        Refusal::BadSignature
    );
    // jku, x5u and jwk headers that bring the attacker's key are ignored.
    let with_headers = sign_with(
        &theirs,
        json!({"alg": "ES256", "kid": theirs.thumbprint(),
               "jku": "https://127.0.0.1:1/keys", "x5u": "https://127.0.0.1:1/cert",
               "jwk": theirs.jwk()}),
        &claims,
    );
    assert_eq!(
        v.verify(&fed, &with_headers, t0()).await.unwrap_err(),
        Refusal::UnknownKey {
            kid: theirs.thumbprint()
        }
    );
}

#[tokio::test]
async fn issuer_audience_and_malformed_tokens_are_refused_with_what_was_found() {
    let v = offline();
    let key = es256();
    let fed = federation(GITHUB_ISSUER, &[&key]);
    let mut claims = claims_at(GITHUB_ISSUER, t0());
    claims["iss"] = json!("https://gitlab.com");
    let r = v
        .verify(&fed, &id_token(&key, &claims), t0())
        .await
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::WrongIssuer {
            got: "https://gitlab.com".into()
        }
    );
    assert_eq!(r.reason(), "wrong_issuer");
    assert!(r.to_string().contains("https://gitlab.com"), "{r}");

    let mut claims = claims_at(GITHUB_ISSUER, t0());
    claims["aud"] = json!(["sigstore", "https://other.example"]);
    let r = v
        .verify(&fed, &id_token(&key, &claims), t0())
        .await
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::WrongAudience {
            got: vec!["sigstore".into(), "https://other.example".into()]
        }
    );
    assert_eq!(r.reason(), "wrong_audience");
    claims["aud"] = json!(["sigstore", AUD]);
    assert!(v.verify(&fed, &id_token(&key, &claims), t0()).await.is_ok());

    for (drop_claim, why) in [("exp", "exp"), ("iat", "iat")] {
        let mut c = claims_at(GITHUB_ISSUER, t0());
        c.as_object_mut().unwrap().remove(drop_claim);
        match v.verify(&fed, &id_token(&key, &c), t0()).await {
            Err(Refusal::Malformed(m)) => assert!(m.contains(why), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let r = v.verify(&fed, "not.a.jwt", t0()).await.unwrap_err();
    assert_eq!(r.reason(), "malformed");
    // The refusal never shows the token.
    let token = id_token(&key, &claims_at("https://x.example", t0()));
    let r = v.verify(&fed, &token, t0()).await.unwrap_err();
    assert!(!r.to_string().contains(&token[..20]));
}

#[tokio::test]
async fn times_are_checked_with_sixty_seconds_of_leeway() {
    let v = offline();
    let key = es256();
    let fed = federation(GITHUB_ISSUER, &[&key]);
    let token = id_token(&key, &claims_at(GITHUB_ISSUER, t0()));
    let at = |s: i64| t0() + TimeDelta::seconds(s);
    // exp = t0 + 300: good until 360 s.
    assert!(v.verify(&fed, &token, at(360)).await.is_ok());
    let r = v.verify(&fed, &token, at(361)).await.unwrap_err();
    assert_eq!((r.clone(), r.reason()), (Refusal::Expired, "expired"));
    // nbf = iat = t0: good from t0 - 60 s; before that, iat is in the future too.
    assert!(v.verify(&fed, &token, at(-60)).await.is_ok());
    let r = v.verify(&fed, &token, at(-61)).await.unwrap_err();
    assert_eq!(
        (r.clone(), r.reason()),
        (Refusal::NotYetValid, "not_yet_valid")
    );
    // iat ahead without nbf.
    let mut c = claims_at(GITHUB_ISSUER, t0());
    c.as_object_mut().unwrap().remove("nbf");
    let token = id_token(&key, &c);
    let r = v.verify(&fed, &token, at(-61)).await.unwrap_err();
    assert_eq!(
        (r.clone(), r.reason()),
        (Refusal::IssuedInFuture, "issued_in_future")
    );
    // A lifetime longer than allowed.
    let mut c = claims_at(GITHUB_ISSUER, t0());
    c["exp"] = json!(t0().timestamp() + 3601);
    let r = v.verify(&fed, &id_token(&key, &c), t0()).await.unwrap_err();
    assert_eq!(
        r,
        Refusal::LifetimeTooLong {
            seconds: 3601,
            max: 3600
        }
    );
    assert_eq!(r.reason(), "lifetime_too_long");
    let mut short = fed.clone();
    short.max_id_token_lifetime = TimeDelta::seconds(299);
    let token = id_token(&key, &claims_at(GITHUB_ISSUER, t0()));
    assert!(matches!(
        v.verify(&short, &token, t0()).await,
        Err(Refusal::LifetimeTooLong {
            seconds: 300,
            max: 299
        })
    ));
}

#[tokio::test]
async fn claim_conditions_are_checked_last_and_name_claim_value_and_pattern() {
    let v = offline();
    let key = es256();
    let fed = federation(GITHUB_ISSUER, &[&key]);
    let mut c = claims_at(GITHUB_ISSUER, t0());
    c["ref"] = json!("refs/heads/dev");
    let r = v.verify(&fed, &id_token(&key, &c), t0()).await.unwrap_err();
    assert_eq!(r.reason(), "claim_mismatch");
    assert_eq!(
        r.to_string(),
        "claim ref: \"refs/heads/dev\" does not match \"refs/heads/main\""
    );
    c.as_object_mut().unwrap().remove("repository");
    let r = v.verify(&fed, &id_token(&key, &c), t0()).await.unwrap_err();
    assert_eq!(
        r.to_string(),
        "claim ref: \"refs/heads/dev\" does not match \"refs/heads/main\"; claim repository: missing"
    );
}

#[tokio::test]
async fn an_issuer_no_longer_configured_is_refused_even_with_inline_keys() {
    let v = offline();
    let key = es256();
    let fed = federation("https://gitlab.example", &[&key]);
    let token = id_token(&key, &claims_at("https://gitlab.example", t0()));
    let r = v.verify(&fed, &token, t0()).await.unwrap_err();
    assert_eq!(r.reason(), "issuer_not_configured");
}

#[tokio::test]
async fn diagnose_collects_every_failure_and_shows_the_claims() {
    let v = offline();
    let key = es256();
    let fed = federation(GITHUB_ISSUER, &[&key]);
    let good = id_token(&key, &claims_at(GITHUB_ISSUER, t0()));
    let d = v.diagnose(&fed, &good, t0()).await;
    assert!(d.valid && d.failures.is_empty(), "{d:?}");
    assert_eq!(d.claims["repository"], "acme/app");

    let mut c = claims_at(GITHUB_ISSUER, t0());
    c["aud"] = json!("sigstore");
    c["exp"] = json!(t0().timestamp() + 7200);
    c["ref"] = json!("refs/heads/dev");
    c["repository"] = json!("other/app");
    let d = v.diagnose(&fed, &id_token(&key, &c), t0()).await;
    assert!(!d.valid);
    assert_eq!(
        d.failures,
        [
            "wrong audience: aud [\"sigstore\"] names none of the federation's audiences",
            "lifetime too long: exp - iat is 7200 s, more than maxIdTokenLifetimeSeconds 3600",
            "claim ref: \"refs/heads/dev\" does not match \"refs/heads/main\"",
            "claim repository: \"other/app\" does not match \"acme/*\"",
        ]
    );
    assert_eq!(d.claims["ref"], "refs/heads/dev");
    // A bad signature is listed beside the rest.
    let d = v
        .diagnose(
            &fed,
            &id_token(&es256(), &claims_at(GITHUB_ISSUER, t0())),
            t0(),
        )
        .await;
    assert_eq!(d.failures.len(), 1);
    assert!(d.failures[0].starts_with("unknown key"), "{d:?}");
    let d = v.diagnose(&fed, "garbage", t0()).await;
    assert!(!d.valid && d.claims.is_empty());
    assert!(d.failures[0].contains("malformed"), "{d:?}");
}

#[test]
fn every_refusal_has_its_own_reason() {
    let all = [
        Refusal::Malformed(String::new()),
        Refusal::UnsupportedAlgorithm(String::new()),
        Refusal::UnknownKey { kid: String::new() },
        Refusal::BadSignature,
        Refusal::WrongIssuer { got: String::new() },
        Refusal::WrongAudience { got: vec![] },
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::IssuedInFuture,
        Refusal::LifetimeTooLong { seconds: 0, max: 0 },
        Refusal::Claims(vec![]),
        Refusal::IssuerNotConfigured {
            issuer: String::new(),
        },
        Refusal::IssuerUnreachable {
            retry_after_seconds: 3,
        },
    ];
    let reasons: Vec<&str> = all.iter().map(Refusal::reason).collect();
    assert_eq!(reasons, Refusal::REASONS);
    assert!(all[12].to_string().contains("retry in 3 s"));
}

// ---- The JWKS cache, against an HTTPS issuer ----

/// The test CA and a certificate for localhost that it signed.
struct Pki {
    ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "regauth test issuer CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// What the test issuer serves, and what it counts.
#[derive(Default)]
struct Served {
    jwks: Mutex<Value>,
    cache_control: Mutex<Option<String>>,
    /// The `issuer` of the discovery document (default: the issuer's own URL).
    claimed_issuer: Mutex<Option<String>>,
    /// Answer 500 to everything.
    down: std::sync::atomic::AtomicBool,
    /// Wait this long before answering, in milliseconds.
    delay_ms: AtomicUsize,
    discovery: AtomicUsize,
    jwks_fetches: AtomicUsize,
}

/// An OIDC issuer over HTTPS on localhost: discovery and a JWKS.
struct TestIssuer {
    url: String,
    served: Arc<Served>,
    ca_file: tempfile::NamedTempFile,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIssuer {
    async fn start(keys: &[&SigningKey]) -> TestIssuer {
        let pki = pki();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.cert_der.clone().into()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.clone().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("https://localhost:{}", addr.port());
        let served = Arc::new(Served::default());
        *served.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
        let (s, base) = (served.clone(), url.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, s, base) = (acceptor.clone(), s.clone(), base.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (s, base) = (s.clone(), base.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(&s, &base, req.uri().path()).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut ca_file, pki.ca_pem.as_bytes()).unwrap();
        TestIssuer {
            url,
            served,
            ca_file,
            task,
        }
    }

    fn config(&self) -> FederationConfig {
        config(&[&self.url], Some(self.ca_file.path().to_path_buf()))
    }

    fn fetches(&self) -> usize {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }

    fn set_keys(&self, keys: &[&SigningKey]) {
        *self.served.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }
}

/// Waits, at most 5 s, until `done` (a background refresh has ended).
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn answer(s: &Served, base: &str, path: &str) -> hyper::Response<Full<Bytes>> {
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let mut resp = hyper::Response::builder();
    if s.down.load(Ordering::SeqCst) {
        return resp
            .status(500)
            .body(Full::new(Bytes::from("down")))
            .unwrap();
    }
    let body = match path {
        "/.well-known/openid-configuration" => {
            s.discovery.fetch_add(1, Ordering::SeqCst);
            let issuer = s
                .claimed_issuer
                .lock()
                .unwrap()
                .clone()
                .unwrap_or(base.to_string());
            json!({"issuer": issuer, "jwks_uri": format!("{base}/keys")})
        }
        "/keys" => {
            s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            if let Some(cc) = s.cache_control.lock().unwrap().clone() {
                resp = resp.header("cache-control", cc);
            }
            s.jwks.lock().unwrap().clone()
        }
        _ => return resp.status(404).body(Full::new(Bytes::new())).unwrap(),
    };
    resp.header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn fetch_count(m: &Metrics, issuer: &str, outcome: JwksFetch) -> u64 {
    let text = m.encode().unwrap();
    let series = format!(
        "regauth_jwks_fetches_total{{issuer=\"{issuer}\",outcome=\"{}\"}} ",
        outcome.as_str()
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// What the cache tests start from: an issuer serving `keys`, a verifier trusting it (with
/// its metrics), a manual clock at `t0()`, a federation of the issuer (keys by discovery)
/// and claims valid at `t0()`.
struct Setup {
    issuer: TestIssuer,
    metrics: Arc<Metrics>,
    v: Verifier,
    clock: Clock,
    fed: Federation,
    claims: Value,
}

async fn setup(keys: &[&SigningKey]) -> Setup {
    let issuer = TestIssuer::start(keys).await;
    let metrics = Arc::new(Metrics::new());
    let v = Verifier::new(&issuer.config(), metrics.clone()).unwrap();
    let fed = federation(&issuer.url, &[]);
    let claims = claims_at(&issuer.url, t0());
    Setup {
        issuer,
        metrics,
        v,
        clock: Clock::manual(t0()),
        fed,
        claims,
    }
}

/// Logins with ID tokens signed by `key` under `n` made-up kids `<prefix>-<i>`: each refused.
async fn made_up_kids(s: &Setup, key: &SigningKey, prefix: &str, n: usize) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    for i in 0..n {
        let forged = sign_with(
            key,
            json!({"alg": "ES256", "kid": format!("{prefix}-{i}")}),
            &s.claims,
        );
        refusals.push(
            s.v.verify(&s.fed, &forged, s.clock.now())
                .await
                .unwrap_err(),
        );
    }
    refusals
}

#[tokio::test]
async fn discovery_fills_a_cold_cache_once_and_a_warm_one_makes_no_call() {
    let ec = es256();
    let rsa = rs256();
    let Setup {
        issuer,
        metrics,
        v,
        clock,
        fed,
        claims,
    } = setup(&[&ec, &rsa]).await;
    assert_eq!(fetch_count(&metrics, &issuer.url, JwksFetch::Ok), 0);
    // Concurrent requests on a cold cache share one fetch.
    let tokens: Vec<String> = (0..8).map(|_| id_token(&ec, &claims)).collect();
    let results =
        futures_util::future::join_all(tokens.iter().map(|t| v.verify(&fed, t, clock.now()))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(issuer.fetches(), 1);
    assert_eq!(issuer.served.discovery.load(Ordering::SeqCst), 1);
    // Warm: both keys, many requests, no call.
    for _ in 0..5 {
        v.verify(&fed, &id_token(&rsa, &claims), clock.now())
            .await
            .unwrap();
    }
    assert_eq!(issuer.fetches(), 1);
    assert_eq!(fetch_count(&metrics, &issuer.url, JwksFetch::Ok), 1);
    // A refusal of the warm cache costs no call either.
    let mut bad = claims.clone();
    bad["aud"] = json!("other");
    assert!(v
        .verify(&fed, &id_token(&ec, &bad), clock.now())
        .await
        .is_err());
    assert_eq!(issuer.fetches(), 1);
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_then_at_most_once_a_minute() {
    let old = es256();
    let s = setup(&[&old]).await;
    let Setup {
        issuer,
        v,
        clock,
        fed,
        claims,
        ..
    } = &s;
    v.verify(fed, &id_token(&old, claims), clock.now())
        .await
        .unwrap();
    assert_eq!(issuer.fetches(), 1);
    // Rotation at the issuer a second after that (cold) fetch: the cold fetch does not count
    // toward the minute, so the new kid is fetched once and accepted at its first use, by
    // ten concurrent logins sharing that one fetch.
    clock.advance(TimeDelta::seconds(1));
    let new = rs256();
    issuer.set_keys(&[&old, &new]);
    let token = id_token(&new, claims);
    let logins = (0..10).map(|_| v.verify(fed, &token, clock.now()));
    for r in futures_util::future::join_all(logins).await {
        r.unwrap();
    }
    assert_eq!(issuer.fetches(), 2);
    v.verify(fed, &id_token(&new, claims), clock.now())
        .await
        .unwrap();
    assert_eq!(issuer.fetches(), 2);
    // A flood of made-up kids within the minute: no fetch at all (one was just made).
    clock.advance(TimeDelta::seconds(30));
    let refusals = made_up_kids(&s, &old, "made-up", 20).await;
    for (i, r) in refusals.into_iter().enumerate() {
        assert_eq!(
            r,
            Refusal::UnknownKey {
                kid: format!("made-up-{i}")
            }
        );
    }
    assert_eq!(issuer.fetches(), 2);
    // A minute after the last fetch: one more, then none again.
    clock.advance(TimeDelta::seconds(31));
    made_up_kids(&s, &old, "again", 20).await;
    assert_eq!(issuer.fetches(), 3);
    // The good keys stayed.
    v.verify(fed, &id_token(&old, claims), clock.now())
        .await
        .unwrap();
    assert_eq!(issuer.fetches(), 3);
}

#[tokio::test]
async fn a_scheduled_refresh_does_not_hold_back_a_new_kid() {
    let old = es256();
    let Setup {
        issuer,
        v,
        clock,
        fed,
        claims,
        ..
    } = setup(&[&old]).await;
    v.verify(&fed, &id_token(&old, &claims), clock.now())
        .await
        .unwrap();
    // Past the 5 minutes of freshness: the next login is served from the cache and starts
    // one background refresh.
    clock.advance(TimeDelta::minutes(6));
    let claims = claims_at(&issuer.url, clock.now());
    v.verify(&fed, &id_token(&old, &claims), clock.now())
        .await
        .unwrap();
    wait_until(|| issuer.fetches() == 2).await;
    // The issuer rotates 10 s after that refresh: the new kid's refetch is not held back.
    clock.advance(TimeDelta::seconds(10));
    let new = rs256();
    issuer.set_keys(&[&new]);
    v.verify(&fed, &id_token(&new, &claims), clock.now())
        .await
        .unwrap();
    assert_eq!(issuer.fetches(), 3);
}

#[tokio::test]
async fn cache_control_sets_freshness_within_five_minutes_and_a_day() {
    let key = es256();
    let Setup {
        issuer,
        v,
        clock,
        fed,
        claims,
        ..
    } = setup(&[&key]).await;
    // The clock moves by days: a token and a federation whose lifetime covers the test.
    let mut long = claims.clone();
    long["exp"] = json!(t0().timestamp() + 3 * 86_400);
    let token_long = id_token(&key, &long);
    let mut fed_long = fed.clone();
    fed_long.max_id_token_lifetime = TimeDelta::days(4);

    // Each step: move the clock, verify (always from the cache), then the fetches the issuer
    // has served by then (a stale cache refreshes in the background: waited for).
    let steps: [(Option<&str>, TimeDelta, usize); 8] = [
        // max-age=600: fresh for 10 minutes.
        (Some("public, max-age=600"), TimeDelta::zero(), 1),
        (None, TimeDelta::minutes(9), 1),
        (None, TimeDelta::minutes(2), 2),
        // max-age above a day counts as a day.
        (Some("max-age=999999"), TimeDelta::minutes(11), 3),
        (None, TimeDelta::hours(23), 3),
        (None, TimeDelta::hours(1) + TimeDelta::seconds(1), 4),
        // max-age below five minutes counts as five minutes.
        (Some("max-age=10"), TimeDelta::days(1), 5),
        (None, TimeDelta::minutes(4), 5),
    ];
    for (i, (cache_control, by, fetches)) in steps.into_iter().enumerate() {
        if let Some(cc) = cache_control {
            *issuer.served.cache_control.lock().unwrap() = Some(cc.into());
        }
        clock.advance(by);
        v.verify(&fed_long, &token_long, clock.now()).await.unwrap();
        wait_until(|| issuer.fetches() >= fetches).await;
        // Long enough for a refresh that should not happen to show.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(issuer.fetches(), fetches, "step {i}");
    }
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_last_good_keys() {
    let key = es256();
    let Setup {
        issuer,
        metrics,
        v,
        clock,
        fed,
        mut claims,
    } = setup(&[&key]).await;
    claims["exp"] = json!(t0().timestamp() + 3000);
    let token = id_token(&key, &claims);
    v.verify(&fed, &token, clock.now()).await.unwrap();
    // The issuer fails; the keys go stale; requests go on with the last good keys.
    issuer.served.down.store(true, Ordering::SeqCst);
    clock.advance(TimeDelta::minutes(6));
    v.verify(&fed, &token, clock.now()).await.unwrap();
    wait_until(|| fetch_count(&metrics, &issuer.url, JwksFetch::HttpError) == 1).await;
    assert_eq!(fetch_count(&metrics, &issuer.url, JwksFetch::HttpError), 1);
    v.verify(&fed, &token, clock.now()).await.unwrap();
    // An unknown kid with the issuer down: refused as unknown, the good keys kept.
    clock.advance(TimeDelta::minutes(2));
    let other = es256();
    let r = v
        .verify(&fed, &id_token(&other, &claims), clock.now())
        .await
        .unwrap_err();
    assert_eq!(
        r,
        Refusal::UnknownKey {
            kid: other.thumbprint()
        }
    );
    v.verify(&fed, &token, clock.now()).await.unwrap();
    // Back up: the next stale request refreshes.
    issuer.served.down.store(false, Ordering::SeqCst);
    clock.advance(TimeDelta::seconds(11));
    v.verify(&fed, &token, clock.now()).await.unwrap();
    wait_until(|| fetch_count(&metrics, &issuer.url, JwksFetch::Ok) == 2).await;
    assert_eq!(fetch_count(&metrics, &issuer.url, JwksFetch::Ok), 2);
}

#[tokio::test]
async fn a_cold_cache_and_an_unreachable_issuer_mean_retry_later() {
    // A port that refuses connections.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://localhost:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let metrics = Arc::new(Metrics::new());
    let v = Verifier::new(&config(&[&url], None), metrics.clone()).unwrap();
    let key = es256();
    let fed = federation(&url, &[]);
    let token = id_token(&key, &claims_at(&url, t0()));
    let clock = Clock::manual(t0());
    let r = v.verify(&fed, &token, clock.now()).await.unwrap_err();
    assert_eq!(
        r,
        Refusal::IssuerUnreachable {
            retry_after_seconds: 10
        }
    );
    assert_eq!(r.reason(), "issuer_unreachable");
    assert_eq!(fetch_count(&metrics, &url, JwksFetch::Unreachable), 1);
    // Within the back-off: refused at once, no new attempt; Retry-After counts down.
    clock.advance(TimeDelta::seconds(4));
    let r = v.verify(&fed, &token, clock.now()).await.unwrap_err();
    assert_eq!(
        r,
        Refusal::IssuerUnreachable {
            retry_after_seconds: 6
        }
    );
    assert_eq!(fetch_count(&metrics, &url, JwksFetch::Unreachable), 1);
    clock.advance(TimeDelta::seconds(6));
    assert!(v.verify(&fed, &token, clock.now()).await.is_err());
    assert_eq!(fetch_count(&metrics, &url, JwksFetch::Unreachable), 2);
    // The same issuer with the keys inline: no network, accepted.
    let inline = federation(&url, &[&key]);
    let token = id_token(&key, &claims_at(&url, clock.now()));
    v.verify(&inline, &token, clock.now()).await.unwrap();
    assert_eq!(fetch_count(&metrics, &url, JwksFetch::Unreachable), 2);
}

#[tokio::test]
async fn a_slow_issuer_times_out() {
    let key = es256();
    let issuer = TestIssuer::start(&[&key]).await;
    issuer.served.delay_ms.store(3_000, Ordering::SeqCst);
    let metrics = Arc::new(Metrics::new());
    // The production timeout is FETCH_TIMEOUT (5 s, checked in cache's tests); a shorter one
    // here keeps the test quick.
    let v = Verifier::with_timeout(
        &issuer.config(),
        metrics.clone(),
        Duration::from_millis(300),
    )
    .unwrap();
    let fed = federation(&issuer.url, &[]);
    let started = std::time::Instant::now();
    let r = v
        .verify(&fed, &id_token(&key, &claims_at(&issuer.url, t0())), t0())
        .await
        .unwrap_err();
    assert!(matches!(r, Refusal::IssuerUnreachable { .. }), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fetch_count(&metrics, &issuer.url, JwksFetch::Unreachable),
        1
    );
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer_and_the_ca_must_be_trusted() {
    let key = es256();
    let issuer = TestIssuer::start(&[&key]).await;
    *issuer.served.claimed_issuer.lock().unwrap() = Some(format!("{}/", issuer.url));
    let metrics = Arc::new(Metrics::new());
    let v = Verifier::new(&issuer.config(), metrics.clone()).unwrap();
    let fed = federation(&issuer.url, &[]);
    let token = id_token(&key, &claims_at(&issuer.url, t0()));
    let r = v.verify(&fed, &token, t0()).await.unwrap_err();
    assert!(matches!(r, Refusal::IssuerUnreachable { .. }), "{r:?}");
    assert_eq!(
        fetch_count(&metrics, &issuer.url, JwksFetch::WrongIssuer),
        1
    );
    assert_eq!(issuer.fetches(), 0);

    // Without ca_file, the private CA is not trusted.
    *issuer.served.claimed_issuer.lock().unwrap() = None;
    let metrics = Arc::new(Metrics::new());
    let untrusting = Verifier::new(&config(&[&issuer.url], None), metrics.clone()).unwrap();
    assert!(untrusting.verify(&fed, &token, t0()).await.is_err());
    assert_eq!(
        fetch_count(&metrics, &issuer.url, JwksFetch::Unreachable),
        1
    );
    assert_eq!(issuer.served.discovery.load(Ordering::SeqCst), 1);

    // A ca_file that is missing or holds no certificate is an error at start.
    let missing = config(&[&issuer.url], Some(PathBuf::from("/nonexistent/ca.pem")));
    let e = Verifier::new(&missing, Arc::new(Metrics::new())).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("federation.ca_file: cannot read /nonexistent/ca.pem"),
        "{e}"
    );
    let empty = tempfile::NamedTempFile::new().unwrap();
    let e = Verifier::new(
        &config(&[&issuer.url], Some(empty.path().to_path_buf())),
        Arc::new(Metrics::new()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    // And an http:// issuer.
    let e = Verifier::new(
        &config(&["http://a.example"], None),
        Arc::new(Metrics::new()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("https:// only"), "{e}");
}
