//! A real OpenID Connect issuer for the keyless-CI tests: panva's `oidc-provider` running
//! `tests/oidc-issuer/issuer.mjs` under node, over HTTPS with a certificate from a CA made here
//! (rcgen), on 127.0.0.1 and a port the OS picked (the issuer writes it into a file).
//!
//! - [`OidcIssuer`]: start ([`OidcIssuer::start`], or [`OidcIssuer::shared`] for the tests
//!   running at the same time), mint ID tokens through the issuer's custom grant
//!   ([`IdTokenRequest`], GitHub- or GitLab-shaped claims from [`github_claims`] and
//!   [`gitlab_claims`]), rotate its keys, read its request counters, stop it.
//! - [`trusting`]: the `[federation]` section of a regauth config naming issuers and the CA
//!   file ([`ca_file`]) that makes regauth trust them.
//! - Federated tokens on a [`Regauth`]: [`create_federated`], [`exchange`] (RFC 8693),
//!   [`check`] (the diagnosis endpoint).
//! - Forged tokens, made here in Rust from a real one: [`alg_none`], [`hs256_with_public_key`],
//!   and re-signed with a key that is not the issuer's ([`ForeignKey`], [`resign`]): an
//!   unknown `kid`, the issuer's own `kid`, a `jku` header pointing elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::process::Daemon;
use super::regauth::RegauthBuilder;
use super::{jwt_header, repo_root, temp_dir, CreatedToken, NewToken, Regauth};

/// The node binary the issuer runs under.
pub const NODE_BIN: &str = "node";

/// The grant type the issuer mints ID tokens with (see `tests/oidc-issuer/issuer.mjs`).
pub const MINT_GRANT: &str = "urn:regauth:test:mint-id-token";

/// The RFC 8693 grant and subject token type of the token exchange on `POST /auth`.
pub const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The CA every issuer of this test binary serves a certificate of, made once.
struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// `ca.pem`, the file regauth's `[federation] ca_file` names.
    file: PathBuf,
    _dir: tempfile::TempDir,
}

fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "regauth test OIDC issuer CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("generate the CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let dir = temp_dir("rgca-");
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, cert.pem()).expect("write ca.pem");
        TestCa {
            cert,
            key,
            file,
            _dir: dir,
        }
    })
}

/// The PEM file of the CA the issuers' certificates chain to: regauth's `[federation] ca_file`.
pub fn ca_file() -> &'static Path {
    &test_ca().file
}

/// A server certificate for 127.0.0.1 and localhost signed by the test CA: (cert, key) PEM.
fn server_certificate() -> (String, String) {
    let ca = test_ca();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("certificate params");
    params.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let key = rcgen::KeyPair::generate().expect("generate the issuer's TLS key");
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .expect("sign the issuer's certificate");
    (cert.pem(), key.serialize_pem())
}

/// Which of the issuer's keys signs an ID token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// What the issuer puts into an ID token: audience, claims, lifetime (`exp - iat`), the
/// signing algorithm, and the offsets of `iat` and `nbf` from now.
#[derive(Clone, Debug)]
pub struct IdTokenRequest {
    pub audience: String,
    pub claims: Value,
    pub lifetime: i64,
    pub alg: Alg,
    pub iat_offset: i64,
    pub nbf_offset: Option<i64>,
}

impl IdTokenRequest {
    /// A 5-minute RS256 token issued now (what GitHub Actions hands out).
    pub fn new(audience: &str, claims: Value) -> IdTokenRequest {
        IdTokenRequest {
            audience: audience.to_owned(),
            claims,
            lifetime: 300,
            alg: Alg::Rs256,
            iat_offset: 0,
            nbf_offset: None,
        }
    }

    pub fn lifetime(mut self, seconds: i64) -> Self {
        self.lifetime = seconds;
        self
    }

    pub fn alg(mut self, alg: Alg) -> Self {
        self.alg = alg;
        self
    }

    /// `iat` this many seconds from now (negative: in the past).
    pub fn issued(mut self, offset_seconds: i64) -> Self {
        self.iat_offset = offset_seconds;
        self
    }

    /// An `nbf` claim this many seconds from now.
    pub fn not_before(mut self, offset_seconds: i64) -> Self {
        self.nbf_offset = Some(offset_seconds);
        self
    }

    /// Changes one claim (`Value::Null` removes it).
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        let claims = self.claims.as_object_mut().expect("claims are an object");
        if value.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.to_owned(), value);
        }
        self
    }
}

/// The claims of a GitHub Actions job's ID token for a push to `git_ref` of `repository`
/// (`owner/name`), as GitHub shapes them (ids are strings).
pub fn github_claims(repository: &str, repository_id: u64, owner_id: u64, git_ref: &str) -> Value {
    let owner = repository.split('/').next().unwrap_or(repository);
    json!({
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "ref": git_ref,
        "ref_type": "branch",
        "sha": "2f0fd5d0a1d5e5ae7dfd4d0a8a6dd6a9e4a5b1c7",
        "repository": repository,
        "repository_id": repository_id.to_string(),
        "repository_owner": owner,
        "repository_owner_id": owner_id.to_string(),
        "repository_visibility": "private",
        "actor": "octocat",
        "actor_id": "583231",
        "run_id": "7891011121",
        "run_number": "42",
        "run_attempt": "1",
        "event_name": "push",
        "workflow": "build",
        "workflow_ref": format!("{repository}/.github/workflows/build.yml@{git_ref}"),
        "job_workflow_ref": format!("{repository}/.github/workflows/build.yml@{git_ref}"),
        "runner_environment": "github-hosted",
    })
}

/// The claims of a GitLab CI job's ID token for a pipeline on branch `branch` of
/// `project_path` (`group/project`), as GitLab shapes them (ids are strings).
pub fn gitlab_claims(
    project_path: &str,
    project_id: u64,
    namespace_id: u64,
    branch: &str,
) -> Value {
    let namespace = project_path.rsplit_once('/').map_or("", |(ns, _)| ns);
    json!({
        "sub": format!("project_path:{project_path}:ref_type:branch:ref:{branch}"),
        "namespace_id": namespace_id.to_string(),
        "namespace_path": namespace,
        "project_id": project_id.to_string(),
        "project_path": project_path,
        "user_id": "1001",
        "user_login": "ci-user",
        "user_email": "ci-user@example.com",
        "user_access_level": "developer",
        "pipeline_id": "1234567",
        "pipeline_source": "push",
        "job_id": "7654321",
        "ref": branch,
        "ref_type": "branch",
        "ref_path": format!("refs/heads/{branch}"),
        "ref_protected": "true",
        "runner_id": 12,
        "runner_environment": "gitlab-hosted",
        "sha": "2f0fd5d0a1d5e5ae7dfd4d0a8a6dd6a9e4a5b1c7",
        "project_visibility": "private",
        "ci_config_ref_uri": format!("gitlab.example.com/{project_path}//.gitlab-ci.yml@refs/heads/{branch}"),
    })
}

/// The issuer's request counters (`GET /test/stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuerStats {
    /// Requests for the JWKS (`/jwks`).
    pub jwks: u64,
    /// Requests for the discovery document.
    pub discovery: u64,
    /// Requests for the document a forged `jku` header points at.
    pub jku: u64,
}

/// A running issuer. Dropping it stops the process.
pub struct OidcIssuer {
    daemon: Mutex<Option<Daemon>>,
    url: String,
    client: reqwest::blocking::Client,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl OidcIssuer {
    /// A new issuer of its own (its keys and counters are nobody else's); `name` starts its kids.
    pub fn start(name: &str) -> OidcIssuer {
        let script = repo_root().join("tests/oidc-issuer/issuer.mjs");
        let modules = repo_root().join("tests/oidc-issuer/node_modules/oidc-provider");
        assert!(
            modules.is_dir(),
            "{} is missing: {}",
            modules.display(),
            super::INSTALL_HINT
        );
        let dir = temp_dir("rgoidc-");
        let (cert, key) = server_certificate();
        let cert_file = dir.path().join("server.pem");
        let key_file = dir.path().join("server.key");
        std::fs::write(&cert_file, cert).expect("write the issuer's certificate");
        std::fs::write(&key_file, key).expect("write the issuer's key");
        let port_file = dir.path().join("port");
        let log = dir.path().join("issuer.log");

        let mut cmd = Command::new(NODE_BIN);
        cmd.arg(&script)
            .arg("--cert")
            .arg(&cert_file)
            .arg("--key")
            .arg(&key_file)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--name")
            .arg(name)
            .current_dir(dir.path());
        let mut daemon = Daemon::spawn("oidc issuer (node)", cmd, &log);
        let port: u16 = daemon.wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        });
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file()).expect("read ca.pem"))
            .expect("parse ca.pem");
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build the issuer's client");
        OidcIssuer {
            daemon: Mutex::new(Some(daemon)),
            url: format!("https://127.0.0.1:{port}"),
            client,
            dir,
        }
    }

    /// The issuer of the tests running now that only mint tokens from it (no rotation, no
    /// counters, no stopping); started when none runs, stopped when the last handle drops.
    pub fn shared() -> Arc<OidcIssuer> {
        static SHARED: Mutex<Weak<OidcIssuer>> = Mutex::new(Weak::new());
        let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(issuer) = guard.upgrade() {
            return issuer;
        }
        let issuer = Arc::new(OidcIssuer::start("shared"));
        *guard = Arc::downgrade(&issuer);
        issuer
    }

    /// `https://127.0.0.1:PORT`: the issuer identifier (`iss`) of its tokens.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn log_tail(&self) -> String {
        super::tail(&self.dir.path().join("issuer.log"), 40)
    }

    /// Mints an ID token through the custom grant.
    #[track_caller]
    pub fn mint(&self, req: &IdTokenRequest) -> String {
        let mut form = vec![
            ("grant_type", MINT_GRANT.to_owned()),
            ("client_id", "minter".to_owned()),
            ("audience", req.audience.clone()),
            ("claims", req.claims.to_string()),
            ("lifetime", req.lifetime.to_string()),
            ("alg", req.alg.name().to_owned()),
            ("iat_offset", req.iat_offset.to_string()),
        ];
        if let Some(nbf) = req.nbf_offset {
            form.push(("nbf_offset", nbf.to_string()));
        }
        let (status, body) = self.request(Method::POST, "/token", |r| r.form(&form));
        assert_eq!(status, StatusCode::OK, "mint an ID token: {body}");
        body["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no id_token in {body}"))
            .to_owned()
    }

    /// New RS256 and ES256 keys sign from now on; the JWKS keeps the old ones after them.
    /// Returns the kids the JWKS now publishes, newest first.
    pub fn rotate(&self) -> Vec<String> {
        let (status, body) = self.request(Method::POST, "/test/rotate", |r| r);
        assert_eq!(status, StatusCode::OK, "rotate the issuer's keys: {body}");
        serde_json::from_value(body["kids"].clone()).expect("kids")
    }

    pub fn stats(&self) -> IssuerStats {
        let (status, body) = self.request(Method::GET, "/test/stats", |r| r);
        assert_eq!(status, StatusCode::OK, "issuer stats: {body}");
        let n = |k: &str| body[k].as_u64().unwrap_or_else(|| panic!("{k} in {body}"));
        IssuerStats {
            jwks: n("jwks"),
            discovery: n("discovery"),
            jku: n("jku"),
        }
    }

    /// The public JWK Set regauth fetches (this request counts in [`Self::stats`] too).
    pub fn jwks(&self) -> Value {
        let (status, body) = self.request(Method::GET, "/jwks", |r| r);
        assert_eq!(status, StatusCode::OK, "GET /jwks: {body}");
        body
    }

    /// The SPKI PEM of the public key `kid`.
    pub fn public_key_pem(&self, kid: &str) -> String {
        let (status, body) = self.request(Method::GET, "/test/keys", |r| r);
        assert_eq!(status, StatusCode::OK, "GET /test/keys: {body}");
        body[kid]["pem"]
            .as_str()
            .unwrap_or_else(|| panic!("no key {kid} in {body}"))
            .to_owned()
    }

    /// What `GET /test/jku` serves from now on (a forged `jku` header's target).
    pub fn serve_at_jku(&self, document: &Value) -> String {
        let (status, body) = self.request(Method::PUT, "/test/jku", |r| r.json(document));
        assert!(status.is_success(), "PUT /test/jku: {body}");
        format!("{}/test/jku", self.url)
    }

    /// Stops the issuer (SIGTERM): it is down for good.
    pub fn stop(&self) {
        let daemon = self.daemon.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut d) = daemon {
            d.stop(Duration::from_secs(5));
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.url);
        let resp = build(self.client.request(method.clone(), &url))
            .send()
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", self.log_tail()));
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("oidc issuer at {}:\n{}", self.url, self.log_tail());
        }
    }
}

/// `builder` with a `[federation]` section that trusts the test CA and lists `issuers` as
/// `(issuer, kind)` (`github`, `gitlab` or `generic`).
pub fn trusting(builder: RegauthBuilder, issuers: &[(&OidcIssuer, &str)]) -> RegauthBuilder {
    let list: Vec<toml::Value> = issuers
        .iter()
        .map(|(issuer, kind)| {
            let mut t = toml::Table::new();
            t.insert("url".into(), issuer.url().into());
            t.insert("kind".into(), (*kind).into());
            toml::Value::Table(t)
        })
        .collect();
    let ca = ca_file().to_string_lossy().into_owned();
    builder.edit(move |c| {
        let mut federation = toml::Table::new();
        federation.insert("ca_file".into(), ca.into());
        federation.insert("issuers".into(), toml::Value::Array(list));
        c.insert("federation".into(), toml::Value::Table(federation));
    })
}

/// The admin API's `federation` object for `issuer`, one audience, and `claims` conditions.
pub fn federation(issuer: &OidcIssuer, audience: &str, claims: Value) -> Value {
    json!({"issuer": issuer.url(), "audiences": [audience], "claims": claims})
}

/// Creates an enabled federated token (no password) and expects 201 without a password.
#[track_caller]
pub fn create_federated(
    regauth: &Regauth,
    registry: &str,
    name: &str,
    scopes: &[Value],
    federation: Value,
) -> CreatedToken {
    let token = regauth.create_token_replied(
        registry,
        &NewToken::named(name)
            .scopes(scopes)
            .status("enabled")
            .no_expiry()
            .with("federation", federation),
    );
    assert!(
        token.body["properties"]["credentials"]["password"].is_null(),
        "a federated token has no password: {}",
        token.body
    );
    token
}

/// RFC 8693 token exchange on `POST /auth`: the ID token for a temporary password of `name`.
pub fn exchange(regauth: &Regauth, name: &str, service: &str, id_token: &str) -> Response {
    regauth.post_auth(&[
        ("grant_type", EXCHANGE_GRANT),
        ("subject_token", id_token),
        ("subject_token_type", ID_TOKEN_TYPE),
        ("audience", name),
        ("service", service),
    ])
}

/// [`exchange`] that must succeed: the temporary password and `expires_in`.
#[track_caller]
pub fn exchange_ok(regauth: &Regauth, name: &str, service: &str, id_token: &str) -> (String, u64) {
    let resp = exchange(regauth, name, service, id_token);
    let status = resp.status();
    let body: Value = resp.json().unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::OK,
        "token exchange for {name}: {body}\n{}",
        regauth.log_tail()
    );
    assert_eq!(body["token_type"], "N_A", "exchange reply: {body}");
    let password = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {body}"))
        .to_owned();
    let expires_in = body["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("no expires_in in {body}"));
    (password, expires_in)
}

/// `POST …/tokens/{id}/federation/check` with `id_token`: the status and the diagnosis.
pub fn check(regauth: &Regauth, token: &CreatedToken, id_token: &str) -> (StatusCode, Value) {
    regauth.admin(
        Method::POST,
        &format!("{}/federation/check", token.path()),
        Some(&json!({"idToken": id_token})),
    )
}

// ---- Forged tokens ------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload segment of `token`, unchanged.
fn payload_segment(token: &str) -> &str {
    token.split('.').nth(1).expect("a JWT has a payload")
}

/// `token`'s claims under the header `{"alg": "none"}` (and its `kid`), with no signature.
pub fn alg_none(token: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": jwt_header(token)["kid"]});
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        payload_segment(token)
    )
}

/// `token`'s claims signed with HMAC-SHA256 keyed with the issuer's public key PEM (the
/// algorithm-confusion attack on verifiers that take the key's bytes for any `alg`).
pub fn hs256_with_public_key(token: &str, public_key_pem: &str) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": jwt_header(token)["kid"]});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        payload_segment(token)
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_key_pem.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// An ES256 key that is not the issuer's: another issuer's, or an attacker's.
pub struct ForeignKey {
    pair: EcdsaKeyPair,
    pub kid: String,
}

impl ForeignKey {
    pub fn generate(kid: &str) -> ForeignKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("load the P-256 key");
        ForeignKey {
            pair,
            kid: kid.to_owned(),
        }
    }

    /// The public key as a JWK (what an attacker publishes at its `jku`).
    pub fn jwk(&self) -> Value {
        // An uncompressed point: 0x04, x, y.
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        })
    }
}

/// `token`'s claims (unchanged) signed ES256 by `key`, under the header
/// `{"alg": "ES256", "typ": "JWT", "kid": key.kid}` plus `extra_header`'s fields.
pub fn resign(token: &str, key: &ForeignKey, extra_header: Value) -> String {
    let mut header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid});
    if let Value::Object(extra) = extra_header {
        header.as_object_mut().expect("header").extend(extra);
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        payload_segment(token)
    );
    let sig = key
        .pair
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("sign with the foreign key");
    format!("{input}.{}", b64(sig.as_ref()))
}
