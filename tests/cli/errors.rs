//! Every failure: a non-zero exit, nothing on stdout, one line on stderr that says what went
//! wrong (the server's own `messages[0].message` when it refused).
use serde_json::{json, Value};

use crate::common::{regauth_in, temp_dir, AdminCall, ClosedPort, Regauth, ADMIN};

/// What the admin API itself says to `POST /tokens` with `properties`.
fn server_message(s: &Regauth, properties: Value) -> (u16, String) {
    let resp = crate::common::http()
        .post(format!("{}/api/v1/registries/default/tokens", s.url()))
        .bearer_auth(ADMIN)
        .json(&json!({ "properties": properties }))
        .send()
        .expect("POST");
    let status = resp.status().as_u16();
    let v: Value = resp.json().expect("error JSON");
    (
        status,
        v["messages"][0]["message"]
            .as_str()
            .expect("messages[0].message")
            .to_string(),
    )
}

#[test]
fn server_down() {
    let dir = temp_dir("rgcli-");
    let closed = ClosedPort::new();
    let url = closed.url();
    for args in [
        &["token", "list"][..],
        &["token", "create", "x-down", "--scope", "repository:a:pull"],
        &["token", "show", "x-down"],
        &["scope", "clear", "x-down"],
        &["health"],
    ] {
        let mut all = vec!["--server", url.as_str(), "--admin-token", ADMIN];
        all.extend_from_slice(args);
        let err = regauth_in(dir.path(), &all, &[]).fails(1);
        assert!(
            err.starts_with(&format!("cannot reach regauth at {url}: ")),
            "{args:?}: {err}"
        );
        assert!(err.to_lowercase().contains("refused"), "{args:?}: {err}");
    }
    // registry-config needs no server: it says why it did not ask, and prints the block of
    // the local configuration (here the defaults).
    let all = [
        "--server",
        url.as_str(),
        "--admin-token",
        ADMIN,
        "registry-config",
    ];
    let out = regauth_in(dir.path(), &all, &[]).ok();
    assert!(
        out.stderr.contains(&format!(
            "not asking the server (cannot reach regauth at {url}: "
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("    service: registry.local\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn wrong_admin_token() {
    let s = Regauth::start();
    for args in [
        &["token", "list"][..],
        &["registry-config"],
        &["token", "show", "x"],
    ] {
        let mut all = vec![
            "--server",
            s.url(),
            "--admin-token",
            "wrong-admin-token-0123456789",
        ];
        all.extend_from_slice(args);
        let err = s.bare_cli(&all, &[]).fails(1);
        assert_eq!(
            err, "a valid admin token is required: Authorization: Bearer <admin token> (HTTP 401)",
            "{args:?}"
        );
    }
}

#[test]
fn unknown_token() {
    let s = Regauth::start();
    s.create("known", &[]);
    for args in [
        &["token", "show", "unknown"][..],
        &["token", "update", "unknown", "--disable"],
        &["token", "delete", "unknown"],
        &["scope", "add", "unknown", "repository:a:pull"],
        &["scope", "remove", "unknown", "repository:a"],
        &["scope", "clear", "unknown"],
        &["scope", "list", "unknown"],
    ] {
        let err = s.cli(args).fails(1);
        assert_eq!(
            err, "no token named \"unknown\" in registry \"default\"",
            "{args:?}"
        );
    }
    let id = "0b7c2a4e-5f0e-4c55-9d4e-3f1e2d3c4b5a";
    let err = s.cli(&["token", "show", id]).fails(1);
    assert_eq!(err, format!("token {id} not found (HTTP 404)"));
    let err = s.cli(&["token", "delete", id]).fails(1);
    assert!(err.ends_with("(HTTP 404)"), "{err}");
}

#[test]
fn unknown_registry() {
    let s = Regauth::start();
    for args in [
        &["token", "list", "--registry", "nope"][..],
        &["token", "create", "x-reg", "--registry", "nope"],
        &["registry-config", "--registry", "nope"],
    ] {
        let err = s.cli(args).fails(1);
        assert_eq!(err, "registry \"nope\" not found (HTTP 404)", "{args:?}");
    }
}

#[test]
fn validation_errors_show_the_servers_message() {
    let s = Regauth::start();
    let cases = [
        (
            &[
                "token",
                "create",
                "pusher",
                "--scope",
                "repository:app:push",
            ][..],
            json!({"name": "pusher", "scopes": [{"type": "repository", "name": "app", "actions": ["push"]}]}),
        ),
        (
            &["token", "create", "Bad_Name"],
            json!({"name": "Bad_Name", "scopes": []}),
        ),
        (
            &[
                "token",
                "create",
                "pattern",
                "--scope",
                "repository:App/*:pull",
            ],
            json!({"name": "pattern", "scopes": [{"type": "repository", "name": "App/*", "actions": ["pull"]}]}),
        ),
    ];
    // Issue 23: the server would refuse these (400); the CLI refuses them first with the same
    // rules, exit 2, in its own terms (no API paths, no HTTP status), and creates nothing.
    for (args, properties) in cases {
        let (status, _) = server_message(&s, properties);
        assert_eq!(status, 400, "{args:?}");
        let out = s.cli(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        for api in ["properties.", "HTTP 400", "scopes["] {
            assert!(!out.stderr.contains(api), "{args:?}: {}", out.stderr);
        }
    }
    let list = s.call(AdminCall::list_tokens("default", "")).value();
    assert_eq!(list["total"], 0, "nothing created: {list}");
    let err = s
        .cli(&[
            "token",
            "create",
            "pusher",
            "--scope",
            "repository:app:pull",
            "--scope",
            "repository:app:push",
            "-s",
            "repository:other:push",
        ])
        .fails(2);
    assert_eq!(
        err,
        "--scope #3 (repository:other:push): push needs pull, write repository:other:pull,push"
    );
    let err = s
        .cli(&["token", "create", "pattern", "-s", "repository:App/*:pull"])
        .fails(2);
    assert!(
        err.starts_with("--scope #1 (repository:App/*:pull): name: "),
        "{err}"
    );
    let err = s.cli(&["token", "create", "Bad_Name"]).fails(2);
    assert!(err.starts_with("token name \"Bad_Name\": "), "{err}");
    s.create("puller", &["repository:app:pull"]);
    let err = s
        .cli(&["scope", "add", "puller", "repository:other:push"])
        .fails(2);
    assert!(err.contains("write repository:other:pull,push"), "{err}");
    // Merged into an existing pull scope, push alone is fine.
    s.cli(&["scope", "add", "puller", "repository:app:push"])
        .ok();

    // Too soon an expiry (the server wants at least an hour). A duration under an hour is
    // refused before asking (issue 10: it is always refused), naming the minimum.
    for args in [
        &["token", "create", "soon", "--expires", "30m"][..],
        &["token", "update", "soon", "--expires", "45m"],
    ] {
        let out = s.cli(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("at least one hour"),
            "{args:?}: {out:?}"
        );
    }
    s.create("soon", &[]);
    let help = s.cli(&["token", "create", "--help"]).ok().stdout;
    assert!(
        help.contains("at least one hour") && !help.contains("45m"),
        "{help}"
    );
    // An instant under an hour ahead is the server's to refuse, also naming the minimum.
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let err = s
        .cli(&["token", "update", "soon", "--expires", &soon])
        .fails(1);
    assert!(
        err.contains("expiryDate")
            && err.contains("at least one hour")
            && err.ends_with("(HTTP 400)"),
        "{err}"
    );
    let err = s
        .cli(&[
            "token",
            "update",
            "soon",
            "--expires",
            "2020-01-01T00:00:00Z",
        ])
        .fails(1);
    assert!(err.contains("expiryDate"), "{err}");

    // A scope edit the server refuses: removing pull while push stays.
    s.cli(&["scope", "add", "soon", "repository:app:pull,push"])
        .ok();
    let err = s
        .cli(&["scope", "remove", "soon", "repository:app:pull"])
        .fails(1);
    assert!(err.ends_with("(HTTP 400)") && err.contains("pull"), "{err}");

    // A taken name.
    let err = s.cli(&["token", "create", "soon"]).fails(1);
    assert!(err.ends_with("(HTTP 409)") && err.contains("soon"), "{err}");
}

#[test]
fn bad_arguments_fail_before_any_request() {
    let dir = temp_dir("rgcli-");
    // Nothing listens here: a request would fail with "cannot reach".
    let closed = ClosedPort::new();
    let url = closed.url();
    let base = ["--server", url.as_str(), "--admin-token", ADMIN];
    for (args, needle) in [
        (
            &["token", "create", "x", "--scope", "repo:a:pull"][..],
            "unknown scope type \"repo\"",
        ),
        (
            &["token", "create", "x", "--scope", "repository:a"],
            "has no actions",
        ),
        (
            &["token", "create", "x", "--scope", "repository:a:read"],
            "unknown action \"read\"",
        ),
        (
            &[
                "token",
                "create",
                "x",
                "--scope",
                "registry:everything:pull",
            ],
            "catalog",
        ),
        (
            &["token", "create", "x", "--expires", "soon"],
            "not a valid expiry",
        ),
        (
            &["token", "create", "x", "--expires", "3y"],
            "unknown unit 'y'",
        ),
        (&["token", "update", "x"], "--enable"),
        (
            &["token", "update", "x", "--enable", "--disable"],
            "cannot be used with",
        ),
        (
            &["token", "update", "x", "--expires", "1d", "--no-expiry"],
            "cannot be used with",
        ),
        (&["scope", "add", "x", "repository:a"], "has no actions"),
        (
            &["scope", "remove", "x", "nope"],
            "expected repository:PATTERN:ACTIONS",
        ),
        (&["-o", "yaml", "token", "list"], "yaml"),
    ] {
        let mut all = base.to_vec();
        all.extend_from_slice(args);
        let out = regauth_in(dir.path(), &all, &[]);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("cannot reach"),
            "{args:?}: {}",
            out.stderr
        );
    }

    let err = regauth_in(
        dir.path(),
        &[
            "--server",
            "localhost:5001",
            "--admin-token",
            ADMIN,
            "token",
            "list",
        ],
        &[],
    )
    .fails(2);
    assert!(err.starts_with("server URL \"localhost:5001\""), "{err}");

    let err = regauth_in(dir.path(), &["serve", "--server", &url], &[]).fails(2);
    assert!(
        err.starts_with("--server is for the client commands"),
        "{err}"
    );
}

#[test]
fn missing_admin_token_and_bad_config() {
    let dir = temp_dir("rgcli-");
    let closed = ClosedPort::new();
    let url = closed.url();
    // No flag, no config file, no data/admin-token in the working directory.
    let err = regauth_in(dir.path(), &["--server", &url, "token", "list"], &[]).fails(2);
    assert!(
        err.starts_with("no admin token: pass --admin-token"),
        "{err}"
    );
    assert!(err.contains("data/admin-token"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen_port = 1\n").unwrap();
    let out = regauth_in(
        dir.path(),
        &["--config", bad.to_str().unwrap(), "token", "list"],
        &[],
    );
    // Issue 10: the error names the key and shows the file's line with a caret under it.
    assert_eq!((out.code, out.stdout.as_str()), (2, ""), "{out:?}");
    assert!(
        out.stderr.starts_with("regauth: listen_port: unknown key"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("--> {} line 1, column 1", bad.display())),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("\n1 | listen_port = 1\n  | ^"),
        "{}",
        out.stderr
    );

    let err = regauth_in(
        dir.path(),
        &["--config", "/nonexistent/regauth.toml", "health"],
        &[],
    )
    .fails(2);
    assert!(err.contains("/nonexistent/regauth.toml"), "{err}");
}

/// Issue 22: every key is a variable (`REGAUTH_SECTION__KEY`) over the file, the older names
/// still work, and a variable's bad value or unknown key is refused under its name.
#[test]
fn variables_override_any_key_of_the_file() {
    let dir = temp_dir("rgcli-");
    let config = dir.path().join("regauth.toml");
    std::fs::write(
        &config,
        "[[registries]]\nid = \"a\"\nservice = \"from-the-file\"\nhostname = \"h:5000\"\n\
         [jwt]\nissuer = \"file-issuer\"\n",
    )
    .unwrap();
    let closed = ClosedPort::new();
    let url = closed.url();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--server",
        url.as_str(),
        "--admin-token",
        ADMIN,
        "registry-config",
    ];
    let issuer = |env: &[(&str, &str)]| regauth_in(dir.path(), &args, env).ok().stdout;
    let out = issuer(&[]);
    assert!(out.contains("issuer: file-issuer\n"), "{out}");
    let out = issuer(&[("REGAUTH_JWT__ISSUER", "env-issuer")]);
    for want in ["issuer: env-issuer\n", "service: from-the-file\n"] {
        assert!(out.contains(want), "{out}");
    }

    for (var, value, says) in [
        (
            "REGAUTH_LIMITS__PER_MINUTE",
            "5",
            "unknown key `limits.per_minute`",
        ),
        (
            "REGAUTH_LIMITS__LOCKOUT_SECONDS",
            "soon",
            "\"soon\" is not a whole number",
        ),
        (
            "REGAUTH_LIMITS_LOCKOUT_SECONDS",
            "soon",
            "\"soon\" is not a whole number",
        ),
    ] {
        let err = regauth_in(dir.path(), &args, &[(var, value)]).fails(2);
        assert!(err.starts_with(&format!("{var}: {says}")), "{err}");
    }
}

/// Issue 10: with `-o json`, every error is one JSON object on stderr (stdout stays empty for
/// results only): `error`, `exitCode`, and `httpStatus` when the server refused.
#[test]
fn json_output_errors_are_json_on_stderr() {
    let s = Regauth::start();
    let json_err = |out: crate::common::CmdOutput, code: i32| -> Value {
        assert_eq!(out.code, code, "{out:?}");
        assert_eq!(out.stdout, "", "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        let v: Value = serde_json::from_str(&out.stderr)
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {out:?}"));
        assert_eq!(v["exitCode"], code, "{v}");
        assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    };
    let v = json_err(s.cli(&["-o", "json", "token", "show", "nobody"]), 1);
    assert!(v["error"].as_str().unwrap().contains("nobody"), "{v}");
    // Refused by the server (a name in use; a bad name is refused by the CLI, exit 2).
    s.cli(&["token", "create", "twice"]).ok();
    let v = json_err(s.cli(&["token", "create", "twice", "--output", "json"]), 1);
    assert_eq!(v["httpStatus"], 409, "{v}");
    let v = json_err(
        s.cli(&["token", "create", "Bad_Name", "--output", "json"]),
        2,
    );
    assert!(v["error"].as_str().unwrap().contains("token name"), "{v}");
    assert!(!v["error"].as_str().unwrap().contains("(HTTP"), "{v}");
    // Usage errors clap finds, before any request.
    let v = json_err(
        s.cli(&["-o", "json", "token", "create", "x", "--expires", "30m"]),
        2,
    );
    assert!(
        v["error"].as_str().unwrap().contains("at least one hour"),
        "{v}"
    );
    assert!(v.get("httpStatus").is_none(), "{v}");
    json_err(s.cli(&["--output=json", "token", "frobnicate"]), 2);
    // Server down.
    let dir = temp_dir("rgcli-");
    let closed = ClosedPort::new();
    let url = closed.url();
    let down = regauth_in(
        dir.path(),
        &[
            "--server",
            &url,
            "--admin-token",
            ADMIN,
            "-o",
            "json",
            "token",
            "list",
        ],
        &[],
    );
    let v = json_err(down, 1);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach regauth"),
        "{v}"
    );
    // Help is still text.
    let help = s.cli(&["-o", "json", "token", "--help"]).ok();
    assert!(help.stdout.contains("Usage:"), "{help:?}");
}

/// Issue 10: `serve --help` lists only what `serve` uses; client commands keep theirs.
#[test]
fn serve_help_lists_only_serve_options() {
    let dir = temp_dir("rgcli-");
    let help = regauth_in(dir.path(), &["serve", "--help"], &[])
        .ok()
        .stdout;
    assert!(help.contains("--config"), "{help}");
    for client_only in ["--server", "--admin-token", "--output", "-o,"] {
        assert!(!help.contains(client_only), "{client_only} in:\n{help}");
    }
    let help = regauth_in(dir.path(), &["token", "list", "--help"], &[])
        .ok()
        .stdout;
    for option in ["--server", "--admin-token", "--output"] {
        assert!(help.contains(option), "{option} missing:\n{help}");
    }
}

/// Issue 10: a second `serve` on a data dir in use says another regauth holds the store.
#[test]
fn a_second_serve_on_the_same_data_dir_says_who_holds_it() {
    let s = Regauth::start();
    let out = regauth_in(
        s.dir(),
        &["serve", "--config", s.config_path().to_str().unwrap()],
        &[("REGAUTH_LISTEN", "127.0.0.1:0")],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("another regauth (or another process) holds this store"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("data_dir"),
        "says what to do: {}",
        out.stderr
    );
    for raw in ["WouldBlock", "code: 11"] {
        assert!(!out.stderr.contains(raw), "{raw}: {}", out.stderr);
    }
    // The first one is unharmed.
    s.cli(&["health"]).ok();
}

/// Issue 10: a bad `REGAUTH_ADMIN_TOKEN` is reported under that name.
#[test]
fn a_bad_admin_token_variable_is_named() {
    let dir = temp_dir("rgcli-");
    for args in [&["serve"][..], &["token", "list"]] {
        let out = regauth_in(
            dir.path(),
            args,
            &[
                ("REGAUTH_ADMIN_TOKEN", "short"),
                ("REGAUTH_LISTEN", "127.0.0.1:0"),
            ],
        );
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr
                .contains("REGAUTH_ADMIN_TOKEN: must be at least 16 characters"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("admin.token"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// Issue 23: `serve` says which config file it uses, or that it found none (run from another
/// directory) and which defaults apply, and when it creates a new store and signing key.
#[test]
fn serve_logs_its_config_file_and_what_it_creates() {
    let s = Regauth::start();
    let log = s.log();
    let config = s.config_path().display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("config file in use") && l.contains(&config)),
        "{log}"
    );
    assert!(log.contains("creating a new, empty token store"), "{log}");

    // From an empty directory: no config; a new key is made there, and the store cannot be
    // opened (a plain file stands where its directory would be), so this serve stops after
    // saying all that.
    let dir = temp_dir("rgcli-");
    let data = temp_dir("rgcli-data-");
    std::fs::write(data.path().join("store"), b"not a store").unwrap();
    let data_dir = data.path().to_path_buf();
    let out = regauth_in(
        dir.path(),
        &["serve"],
        &[
            ("REGAUTH_LISTEN", "127.0.0.1:0"),
            ("REGAUTH_DATA_DIR", data_dir.to_str().expect("utf-8")),
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    for needle in [
        "no config file found",
        "config/regauth.toml",
        "using the defaults",
        "created a new signing key",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("config file in use"), "{}", out.stderr);
}

/// `scope add` and `token update` (and `token create`'s `--owner`/`--description`) check
/// what they would send with the server's rules first: exit 2 in the CLI's terms, no API
/// paths or HTTP status, and the token is unchanged.
#[test]
fn scope_add_and_update_validate_before_asking_the_server() {
    let s = Regauth::start();
    s.create("bot", &[]);
    let before = s.cli(&["-o", "json", "token", "show", "bot"]).ok().json();
    let long = "x".repeat(129);
    let longer = "y".repeat(501);
    let cases: [(&[&str], &str); 5] = [
        (
            &["scope", "add", "bot", "repository:app:push"],
            "scope (repository:app:push): push needs pull, write repository:app:pull,push",
        ),
        (
            &["scope", "add", "bot", "repository:App/*:pull"],
            "scope (repository:App/*:pull)",
        ),
        (&["token", "update", "bot", "--owner", &long], "--owner: "),
        (
            &["token", "update", "bot", "--description", &longer],
            "--description: ",
        ),
        (
            &["token", "create", "other", "--owner", "a\u{202e}b"],
            "--owner: ",
        ),
    ];
    for (args, message) in cases {
        let out = s.cli(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        for api in ["properties.", "HTTP 400", "scopes["] {
            assert!(!out.stderr.contains(api), "{args:?}: {}", out.stderr);
        }
    }
    let after = s.cli(&["-o", "json", "token", "show", "bot"]).ok().json();
    assert_eq!(before["properties"], after["properties"], "nothing changed");
    let list = s.call(AdminCall::list_tokens("default", "")).value();
    assert_eq!(list["total"], 1, "nothing created: {list}");
}
