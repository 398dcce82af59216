//! Federated tokens on the command line: `token create --oidc-*`, `token show`, `token
//! check-oidc`, against a live regauth that trusts the test OpenID Connect issuer (a real
//! `oidc-provider`, tests/common/oidc.rs) or, as for a Kubernetes cluster, a static JWK Set.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::oidc::{
    github_claims, resign, trusting, ForeignKey, IdTokenRequest, OidcIssuer,
};
use crate::common::{regauth_in, temp_dir, ClosedPort, Regauth, ADMIN};

const AUDIENCE: &str = "https://registry.example.com";

/// Writes `text` to a new file in `dir`; returns its path as text.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn oidc_options_are_checked_before_any_request() {
    // The server does not exist: a request would fail with exit 1 ("cannot reach"), so exit 2
    // with the option's message shows the check came first.
    let dir = temp_dir("rgcli-");
    let closed = ClosedPort::new();
    let url = closed.url();
    let files = tempfile::tempdir().unwrap();
    let not_jwks = file(&files, "not-jwks.json", r#"[{"kty": "EC"}]"#);
    let no_jwt = file(&files, "id-token", "rga_not_an_id_token\n");
    let empty = file(&files, "empty", "\n");
    let gh = "https://token.actions.githubusercontent.com";
    let create = |extra: &[&str]| {
        let mut args = vec!["token", "create", "gha", "--oidc-issuer", gh];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            create(&["--oidc-audience", AUDIENCE, "--oidc-claim", "ref"]),
            "\"ref\" is not KEY=PATTERN",
        ),
        (
            create(&["--oidc-audience", AUDIENCE, "--oidc-claim", "=1"]),
            "the claim name before '=' is empty",
        ),
        (
            create(&["--oidc-audience", AUDIENCE, "--oidc-claim", "ref="]),
            "the pattern after '=' is empty",
        ),
        (
            create(&[
                "--oidc-audience",
                AUDIENCE,
                "--oidc-claim",
                "ref=a",
                "--oidc-claim",
                "ref=b",
            ]),
            "--oidc-claim ref: the claim is given twice",
        ),
        (
            create(&["--oidc-audience", AUDIENCE, "--oidc-session", "2d"]),
            "a session lasts at most 24h",
        ),
        (
            create(&["--oidc-audience", AUDIENCE, "--oidc-max-lifetime", "0"]),
            "must be longer than 0",
        ),
        (
            create(&["--oidc-audience", AUDIENCE, "--oidc-jwks", &not_jwks]),
            "not a JWK Set",
        ),
        (
            create(&["--oidc-audience", "a b"]),
            "an audience has no spaces",
        ),
        // No audience: an issuer alone would admit any ID token it signs for anyone.
        (create(&[]), "--oidc-audience"),
        (
            vec![
                "token".into(),
                "create".into(),
                "gha".into(),
                "--oidc-issuer".into(),
                "http://gitlab.com".into(),
                "--oidc-audience".into(),
                AUDIENCE.into(),
            ],
            "an issuer is an https:// URL",
        ),
        // The other options need --oidc-issuer.
        (
            vec![
                "token".into(),
                "create".into(),
                "gha".into(),
                "--oidc-claim".into(),
                "ref=main".into(),
            ],
            "--oidc-issuer",
        ),
        // A federated token has no password to write.
        (
            create(&["--oidc-audience", AUDIENCE, "--password-file", "x.password"]),
            "cannot be used with",
        ),
        (
            vec![
                "token".into(),
                "check-oidc".into(),
                "gha".into(),
                "--id-token".into(),
                no_jwt,
            ],
            "does not hold an ID token",
        ),
        (
            vec![
                "token".into(),
                "check-oidc".into(),
                "gha".into(),
                "--id-token".into(),
                empty,
            ],
            "the file is empty",
        ),
        (
            vec!["token".into(), "check-oidc".into(), "gha".into()],
            "--id-token",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["--server", url.as_str(), "--admin-token", ADMIN];
        all.extend(args.iter().map(String::as_str));
        let out = regauth_in(dir.path(), &all, &[]);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(
            out.stderr.contains(want),
            "{args:?}: want {want:?} in\n{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("rga_not"),
            "the file's content is never shown"
        );
    }
    assert!(!dir.path().join("x.password").exists());
}

#[test]
fn create_show_and_check_oidc_with_a_real_issuer() {
    let issuer = OidcIssuer::shared();
    let s = trusting(Regauth::builder(), &[(&issuer, "github")]).start();
    let iss = issuer.url();

    // Creating: no password anywhere, the login command takes the ID token.
    let out = s
        .cli(&[
            "token",
            "create",
            "gha-acme",
            "--scope",
            "repository:acme/*:pull,push",
            "--oidc-issuer",
            iss,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-claim",
            "repository_owner_id=1234567",
            "--oidc-claim",
            "ref=refs/heads/main",
            "--oidc-session",
            "2h",
        ])
        .ok();
    assert!(!out.stdout.contains("rga_"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("shown only this once"),
        "{}",
        out.stdout
    );
    for line in [
        "Created token gha-acme (id ",
        "It has no password: a CI job logs in with its own OIDC ID token",
        "\n    echo \"$ID_TOKEN\" | docker login localhost:5000 -u gha-acme --password-stdin\n",
        &format!("\nIssuer:    {iss}\n"),
        &format!("\nAudiences: {AUDIENCE}\n"),
        "\nClaims:\n  ref=refs/heads/main\n  repository_owner_id=1234567\n",
        "\nSession:   2h after a docker login\n",
        "\nKeys:      the issuer's published keys\n",
        "  repository:acme/*:pull,push\n",
    ] {
        assert!(out.stdout.contains(line), "no {line:?} in:\n{}", out.stdout);
    }

    // `token show` prints the federation; `-o json` is the API's.
    let shown = s.cli(&["token", "show", "gha-acme"]).ok().stdout;
    assert!(shown.contains(&format!("Issuer:    {iss}")), "{shown}");
    assert!(shown.contains("  repository_owner_id=1234567\n"), "{shown}");
    assert!(
        shown.contains("Password:  none; logs in with an OIDC ID token"),
        "{shown}"
    );
    let v = s
        .cli(&["-o", "json", "token", "show", "gha-acme"])
        .ok()
        .json();
    let f = &v["properties"]["federation"];
    assert_eq!(f["issuer"], iss);
    assert_eq!(f["audiences"], json!([AUDIENCE]));
    assert_eq!(
        f["claims"],
        json!({"repository_owner_id": "1234567", "ref": "refs/heads/main"})
    );
    assert_eq!(f["sessionSeconds"], 7200);
    assert!(v["properties"]["credentials"]["password"].is_null(), "{v}");

    // A federated token has no password to rotate: the server's refusal, exit 1.
    let err = s.cli(&["token", "rotate", "gha-acme"]).fails(1);
    assert!(err.contains("(HTTP 400)"), "{err}");

    // check-oidc: an ID token of a main-branch job of the owner is accepted ...
    let dir = tempfile::tempdir().unwrap();
    let good = issuer.mint(&IdTokenRequest::new(
        AUDIENCE,
        github_claims("acme/app", 42, 1_234_567, "refs/heads/main"),
    ));
    let good_file = file(&dir, "good.jwt", &format!("{good}\n"));
    let out = s
        .cli(&["token", "check-oidc", "gha-acme", "--id-token", &good_file])
        .ok();
    assert!(
        out.stdout
            .starts_with("gha-acme: the ID token is accepted.\nClaims of the ID token:\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  repository: \"acme/app\"\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&good), "the ID token is never printed");

    // ... one of a dev-branch job, for another audience, is not: every failure is named, and
    // the exit status is 1 (after the explanation, for scripts).
    let bad = issuer.mint(&IdTokenRequest::new(
        "https://github.com/acme",
        github_claims("acme/app", 42, 1_234_567, "refs/heads/dev"),
    ));
    let bad_file = file(&dir, "bad.jwt", &bad);
    let out = s.cli(&["token", "check-oidc", "gha-acme", "--id-token", &bad_file]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout
            .starts_with("gha-acme: the ID token is not accepted:\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  claim ref: \"refs/heads/dev\" does not match \"refs/heads/main\"\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("https://github.com/acme"),
        "the audience failure: {}",
        out.stdout
    );
    assert_eq!(
        out.stderr.trim(),
        "regauth: token gha-acme does not accept this ID token (2 failures)"
    );
    let out = s.cli(&[
        "-o",
        "json",
        "token",
        "check-oidc",
        "gha-acme",
        "--id-token",
        &bad_file,
    ]);
    assert_eq!(out.code, 1, "{out}");
    let d = out.json();
    assert_eq!(d["valid"], false);
    assert_eq!(d["failures"].as_array().map(Vec::len), Some(2), "{d}");
    assert_eq!(d["claims"]["ref"], "refs/heads/dev");
    let e: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(e["exitCode"], 1);

    // A password token takes no ID tokens: said before any check.
    s.create("pw-bot", &["repository:team/*:pull"]);
    let err = s
        .cli(&["token", "check-oidc", "pw-bot", "--id-token", &good_file])
        .fails(2);
    assert!(err.contains("has a password, not a CI identity"), "{err}");

    // The server's rules stay the server's: a federation pinning no identity is refused
    // with its message, and nothing is created.
    let err = s
        .cli(&[
            "token",
            "create",
            "gha-loose",
            "--oidc-issuer",
            iss,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-claim",
            "repository_owner=acme",
        ])
        .fails(1);
    assert!(
        err.contains("repository_owner_id") && err.contains("(HTTP 400)"),
        "{err}"
    );
    let list = s.cli(&["-o", "json", "token", "list"]).ok().json();
    assert_eq!(list["total"], 2, "{list}");
}

/// The docs' Kubernetes recipe: a `generic` issuer regauth cannot reach, the cluster's keys
/// given to the token as a JWK Set file, the service account pinned by `sub`; the projected
/// service-account token then logs in.
#[test]
fn kubernetes_service_account_with_a_static_jwks() {
    const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";
    let s = Regauth::builder()
        .edit(|c| {
            let issuers: toml::Value = toml::from_str::<toml::Table>(&format!(
                "[[issuers]]\nurl = \"{CLUSTER}\"\nkind = \"generic\"\n"
            ))
            .unwrap()["issuers"]
                .clone();
            let mut federation = toml::Table::new();
            federation.insert("issuers".into(), issuers);
            c.insert("federation".into(), toml::Value::Table(federation));
        })
        .start();
    let key = ForeignKey::generate("cluster-key-1");
    let dir = tempfile::tempdir().unwrap();
    let jwks = file(
        &dir,
        "cluster-jwks.json",
        &json!({"keys": [key.jwk()]}).to_string(),
    );
    let out = s
        .cli(&[
            "token",
            "create",
            "k8s-builder",
            "--scope",
            "repository:builds/*:pull,push",
            "--oidc-issuer",
            CLUSTER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-claim",
            "sub=system:serviceaccount:ci:builder",
            "--oidc-jwks",
            &jwks,
        ])
        .ok();
    assert!(
        out.stdout
            .contains("\nKeys:      the token's own JWK Set (1 key; no network)\n"),
        "{}",
        out.stdout
    );

    // A service-account token as the API server signs it (its claims, the cluster's key).
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": CLUSTER, "aud": [AUDIENCE], "sub": "system:serviceaccount:ci:builder",
        "iat": now, "nbf": now, "exp": now + 3600,
        "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder"}},
    });
    let unsigned = format!(
        "e30.{}.",
        URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes())
    );
    let id_token = resign(&unsigned, &key, json!({}));
    let token_file = file(&dir, "token", &id_token);
    let out = s
        .cli(&[
            "token",
            "check-oidc",
            "k8s-builder",
            "--id-token",
            &token_file,
        ])
        .ok();
    assert!(
        out.stdout
            .starts_with("k8s-builder: the ID token is accepted."),
        "{}",
        out.stdout
    );
    let (status, granted) = s.grant(
        "k8s-builder",
        &id_token,
        &["repository:builds/app:push,pull"],
    );
    assert_eq!(status, 200, "{granted}\n{}", s.log_tail());
    assert_eq!(
        crate::common::http::granted_on(&granted, "repository", "builds/app"),
        ["pull", "push"]
    );

    // Another service account of the cluster is not this token.
    let other = json!({
        "iss": CLUSTER, "aud": [AUDIENCE], "sub": "system:serviceaccount:ci:other",
        "iat": now, "exp": now + 3600,
    });
    let other = resign(
        &format!(
            "e30.{}.",
            URL_SAFE_NO_PAD.encode(other.to_string().as_bytes())
        ),
        &key,
        json!({}),
    );
    let (status, _) = s.grant("k8s-builder", &other, &["repository:builds/app:pull"]);
    assert_eq!(status, 401);
}
