//! Every client command against a live server, in both output formats.
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::common::http::granted_on;
use crate::common::{AdminCall, Regauth};

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["properties"]["name"].as_str().expect("name"))
        .collect()
}

fn expiry(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["properties"]["expiryDate"].as_str().expect("expiryDate"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

#[track_caller]
fn about(t: DateTime<Utc>, expected: DateTime<Utc>) {
    let d = t - expected;
    assert!(
        d >= Duration::zero() && d <= Duration::minutes(2),
        "{t} is not just after {expected}"
    );
}

#[test]
fn create_prints_the_password_once_with_the_login_command() {
    let s = Regauth::start();
    let out = s
        .cli(&[
            "token",
            "create",
            "ci-push",
            "--scope",
            "repository:team/*:pull,push",
            "-s",
            "registry:catalog:pull",
        ])
        .ok();
    let password = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("rga_"))
        .unwrap_or_else(|| panic!("no password line:\n{}", out.stdout))
        .to_string();
    assert!(
        out.stdout.contains("cannot be shown again"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "\n    echo '{password}' | docker login localhost:5000 -u ci-push --password-stdin\n"
        )),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches(&password).count(), 2, "{}", out.stdout);
    assert!(
        out.stdout.contains("  repository:team/*:pull,push\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  registry:catalog:pull\n"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stderr, "");

    // The printed password is the token's.
    let (status, claims) = s.grant("ci-push", &password, &["repository:team/app:pull,push"]);
    assert_eq!(status, 200);
    assert_eq!(
        granted_on(&claims, "repository", "team/app"),
        ["pull", "push"]
    );

    // ... and no other command ever shows it (or any password) again.
    for args in [
        &["token", "show", "ci-push"][..],
        &["-o", "json", "token", "show", "ci-push"],
        &["token", "list"],
        &["-o", "json", "token", "list"],
        &["scope", "list", "ci-push"],
    ] {
        let out = s.cli(args).ok();
        assert!(!out.stdout.contains(&password), "{args:?}: {}", out.stdout);
        assert!(!out.stdout.contains("rga_"), "{args:?}: {}", out.stdout);
        // No `password` key (a last use's `"lastUsedGrantType": "password"` is no secret).
        assert!(
            !out.stdout.contains("\"password\":"),
            "{args:?}: {}",
            out.stdout
        );
    }
}

#[test]
fn create_json_has_the_password_and_every_option() {
    let s = Regauth::start();
    let before = Utc::now();
    let v = s
        .cli(&[
            "token",
            "create",
            "ci-json",
            "--scope",
            "repository:app:pull",
            "--expires",
            "30d",
            "--disabled",
            "--output",
            "json",
        ])
        .ok()
        .json();
    let p = &v["properties"];
    assert_eq!(v["type"], "token");
    assert_eq!(p["name"], "ci-json");
    assert_eq!(p["status"], "disabled");
    assert_eq!(p["credentials"]["username"], "ci-json");
    assert!(p["credentials"]["password"]
        .as_str()
        .is_some_and(|pw| pw.starts_with("rga_")));
    assert_eq!(
        p["scopes"],
        json!([{"type": "repository", "name": "app", "actions": ["pull"]}])
    );
    about(expiry(&v), before + Duration::days(30));

    // RFC 3339 expiries are sent as given.
    let v = s
        .cli(&[
            "-o",
            "json",
            "token",
            "create",
            "fixed-expiry",
            "--expires",
            "2099-12-01T12:00:00+02:00",
        ])
        .ok()
        .json();
    assert_eq!(v["properties"]["expiryDate"], "2099-12-01T10:00:00Z");
    assert_eq!(v["properties"]["scopes"], json!([]));
    assert_eq!(v["properties"]["status"], "enabled");
}

#[test]
fn expires_accepts_weeks_and_a_date() {
    let s = Regauth::start();
    let before = Utc::now();
    let v = s
        .cli(&[
            "-o",
            "json",
            "token",
            "create",
            "two-weeks",
            "--expires",
            "2w",
        ])
        .ok()
        .json();
    about(expiry(&v), before + Duration::days(14));
    // A date is that day's 00:00 UTC.
    let v = s
        .cli(&[
            "-o",
            "json",
            "token",
            "create",
            "new-year",
            "--expires",
            "2099-01-01",
        ])
        .ok()
        .json();
    assert_eq!(v["properties"]["expiryDate"], "2099-01-01T00:00:00Z");
}

#[test]
fn create_merges_repeated_scopes_and_accepts_admin_for_delete() {
    let s = Regauth::start();
    let v = s
        .cli(&[
            "-o",
            "json",
            "token",
            "create",
            "merged",
            "-s",
            "repository:app:pull",
            "-s",
            "repository:app:admin",
        ])
        .ok()
        .json();
    assert_eq!(
        v["properties"]["scopes"],
        json!([{"type": "repository", "name": "app", "actions": ["pull", "delete"]}])
    );
}

#[test]
fn list_in_both_formats_and_by_page() {
    let s = Regauth::start();
    assert_eq!(s.cli(&["token", "list"]).ok().stdout, "no tokens\n");
    let (bravo_id, _) = s.create("bravo", &["repository:b:pull"]);
    s.create("alpha", &[]);

    let out = s.cli(&["token", "list"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[0].starts_with("NAME ") && lines[0].ends_with(" ID"),
        "{}",
        out.stdout
    );
    assert!(lines[1].starts_with("alpha "), "{}", out.stdout);
    assert!(lines[1].contains(" (none) "), "{}", out.stdout);
    assert!(lines[2].starts_with("bravo "), "{}", out.stdout);
    assert!(lines[2].contains(" enabled "), "{}", out.stdout);
    assert!(lines[2].contains(" never "), "{}", out.stdout);
    assert!(lines[2].contains(" repository:b:pull "), "{}", out.stdout);
    assert!(lines[2].ends_with(&bravo_id), "{}", out.stdout);

    let v = s.cli(&["token", "list", "-o", "json"]).ok().json();
    assert_eq!(names(&v), ["alpha", "bravo"]);
    assert_eq!(v["total"], 2);
    assert_eq!(v["count"], 2);

    let v = s
        .cli(&[
            "-o", "json", "token", "list", "--offset", "1", "--limit", "1",
        ])
        .ok()
        .json();
    assert_eq!(names(&v), ["bravo"]);
    assert_eq!(
        (v["offset"].as_u64(), v["limit"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(v["_links"]["previous"].is_string(), "{v}");
}

#[test]
fn show_by_name_and_by_id() {
    let s = Regauth::start();
    let (id, _) = s.create("shown", &["repository:app/*:pull,push"]);
    let by_name = s.cli(&["token", "show", "shown"]).ok();
    let by_id = s.cli(&["token", "show", &id]).ok();
    assert_eq!(by_name.stdout, by_id.stdout);
    for line in [
        "Name:      shown\n".to_string(),
        format!("ID:        {id}\n"),
        "Registry:  default\n".to_string(),
        "Username:  shown\n".to_string(),
        "Status:    enabled\n".to_string(),
        "Expires:   never\n".to_string(),
        "Scopes:\n  repository:app/*:pull,push\n".to_string(),
    ] {
        assert!(
            by_name.stdout.contains(&line),
            "{line:?} in\n{}",
            by_name.stdout
        );
    }
    assert!(by_name.stdout.contains("Created:   "), "{}", by_name.stdout);

    let v = s.cli(&["-o", "json", "token", "show", "shown"]).ok().json();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["properties"]["credentials"], json!({"username": "shown"}));
    assert_eq!(s.cli(&["-o", "json", "token", "show", &id]).ok().json(), v);
}

#[test]
fn update_status_and_expiry() {
    let s = Regauth::start();
    let (id, password) = s.create("upd", &["repository:app:pull"]);

    let out = s.cli(&["token", "update", "upd", "--disable"]).ok();
    assert!(
        out.stdout.starts_with("Updated token upd.\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Status:    disabled\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        s.grant("upd", &password, &[]).0,
        401,
        "a disabled token authenticates nothing"
    );

    let before = Utc::now();
    let v = s
        .cli(&[
            "-o",
            "json",
            "token",
            "update",
            &id,
            "--enable",
            "--expires",
            "12h",
        ])
        .ok()
        .json();
    assert_eq!(v["properties"]["status"], "enabled");
    about(expiry(&v), before + Duration::hours(12));
    assert_eq!(s.grant("upd", &password, &[]).0, 200);

    let out = s.cli(&["token", "show", "upd"]).ok();
    assert!(out.stdout.contains(" (in 12h"), "{}", out.stdout);

    let v = s
        .cli(&["-o", "json", "token", "update", "upd", "--no-expiry"])
        .ok()
        .json();
    assert_eq!(v["properties"]["expiryDate"], Value::Null);
    assert_eq!(v["properties"]["status"], "enabled");
    assert_eq!(
        v["properties"]["scopes"],
        json!([{"type": "repository", "name": "app", "actions": ["pull"]}]),
        "an update leaves the scopes alone"
    );
}

#[test]
fn delete_by_name_and_by_id() {
    let s = Regauth::start();
    let (id_a, password) = s.create("del-a", &["repository:app:pull"]);
    let (id_b, _) = s.create("del-b", &[]);

    let out = s.cli(&["token", "delete", "del-a"]).ok();
    assert_eq!(
        out.stdout,
        format!("Deleted token del-a (id {id_a}) from registry default.\n")
    );
    assert_eq!(s.grant("del-a", &password, &[]).0, 401);
    let err = s.cli(&["token", "show", "del-a"]).fails(1);
    assert_eq!(err, "no token named \"del-a\" in registry \"default\"");

    let v = s.cli(&["-o", "json", "token", "delete", &id_b]).ok().json();
    assert_eq!(v["id"], id_b.as_str());
    assert_eq!(v["properties"]["name"], "del-b");
    assert_eq!(s.cli(&["token", "list"]).ok().stdout, "no tokens\n");
}

#[test]
fn scope_add_merge_remove_clear_and_list() {
    let s = Regauth::start();
    let (id, password) = s.create("scoped", &["repository:app:pull"]);

    let out = s
        .cli(&["scope", "add", "scoped", "repository:app:push"])
        .ok();
    assert!(
        out.stdout.starts_with(
            "Merged the actions into token scoped's existing scope: now repository:app:pull,push.\n"
        ),
        "{}",
        out.stdout
    );
    let v = s
        .cli(&[
            "-o",
            "json",
            "token",
            "scope",
            "add",
            &id,
            "registry:catalog:pull",
        ])
        .ok()
        .json();
    assert_eq!(
        v["properties"]["scopes"],
        json!([
            {"type": "repository", "name": "app", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["pull"]}
        ])
    );
    assert_eq!(
        s.cli(&["scope", "list", "scoped"]).ok().stdout,
        "repository:app:pull,push\nregistry:catalog:pull\n"
    );
    assert_eq!(
        s.cli(&["-o", "json", "scope", "list", "scoped"])
            .ok()
            .json(),
        v["properties"]["scopes"]
    );
    let (_, claims) = s.grant("scoped", &password, &["repository:app:pull,push"]);
    assert_eq!(granted_on(&claims, "repository", "app"), ["pull", "push"]);

    let out = s
        .cli(&["scope", "remove", "scoped", "repository:app:push"])
        .ok();
    assert!(
        out.stdout
            .starts_with("Removed push from token scoped's scope repository:app.\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  repository:app:pull\n"),
        "{}",
        out.stdout
    );
    let (_, claims) = s.grant("scoped", &password, &["repository:app:pull,push"]);
    assert_eq!(granted_on(&claims, "repository", "app"), ["pull"]);

    let v = s
        .cli(&[
            "-o",
            "json",
            "scope",
            "remove",
            "scoped",
            "registry:catalog",
        ])
        .ok()
        .json();
    assert_eq!(
        v["properties"]["scopes"],
        json!([{"type": "repository", "name": "app", "actions": ["pull"]}])
    );

    let err = s
        .cli(&["scope", "remove", "scoped", "repository:nope"])
        .fails(1);
    assert_eq!(
        err,
        "token scoped has no scope repository:nope (it has repository:app)"
    );

    let out = s.cli(&["token", "scope", "clear", "scoped"]).ok();
    assert!(
        out.stdout.starts_with("Removed all scopes of token scoped"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Scopes:    (none"), "{}", out.stdout);
    assert_eq!(s.cli(&["scope", "list", "scoped"]).ok().stdout, "");
    let (status, claims) = s.grant("scoped", &password, &["repository:app:pull"]);
    assert_eq!(status, 200, "a token without scopes still logs in");
    assert!(granted_on(&claims, "repository", "app").is_empty());

    let v = s
        .cli(&[
            "-o",
            "json",
            "scope",
            "add",
            "scoped",
            "repository:app:admin",
        ])
        .ok()
        .json();
    assert_eq!(
        v["properties"]["scopes"],
        json!([{"type": "repository", "name": "app", "actions": ["delete"]}])
    );
    let v = s
        .cli(&["-o", "json", "scope", "clear", "scoped"])
        .ok()
        .json();
    assert_eq!(v["properties"]["scopes"], json!([]));
}

#[test]
fn registry_config_prints_the_auth_block() {
    let s = Regauth::start();
    let out = s.cli(&["registry-config"]).ok();
    let expected = format!(
        "auth:\n  token:\n    realm: {}/auth\n    service: registry.local\n    issuer: regauth\n    rootcertbundle: {}\n    # distribution 3.x accepts only these algorithms; 2.8 ignores the setting.\n    signingalgorithms:\n      - ES256\n",
        s.url(),
        s.cert_path().with_file_name("bundle.crt").display()
    );
    assert!(out.stdout.contains(&expected), "{}", out.stdout);
    assert!(out.stdout.starts_with('#'), "{}", out.stdout);
    // Beside `auth:`, the notifications block with the registry's events secret.
    let secret = std::fs::read_to_string(s.data_dir().join("events/default.secret")).unwrap();
    let notifications = format!(
        "notifications:\n  endpoints:\n    - name: regauth\n      url: {}/events/default\n      headers:\n        Authorization: [\"Bearer {}\"]\n",
        s.url(),
        secret.trim()
    );
    assert!(out.stdout.contains(&notifications), "{}", out.stdout);
    // The comment names the JWK Set beside the bundle and says to restart the registry.
    assert!(out.stdout.contains("jwks.json"), "{}", out.stdout);
    assert!(out.stdout.contains("restart it"), "{}", out.stdout);

    let v = s.cli(&["registry-config", "-o", "json"]).ok().json();
    assert_eq!(v["id"], "default");
    assert_eq!(
        v["properties"]["tokenAuth"],
        json!({
            "realm": format!("{}/auth", s.url()),
            "service": "registry.local",
            "issuer": "regauth",
            "rootcertbundle": s.cert_path().with_file_name("bundle.crt").display().to_string(),
            "signingalgorithms": ["ES256"],
            "jwks": s.cert_path().with_file_name("jwks.json").display().to_string(),
        })
    );
    assert_eq!(
        v["properties"]["notifications"],
        json!({"url": format!("{}/events/default", s.url()), "secret": secret.trim()})
    );
}

#[test]
fn health_up_and_down() {
    let s = Regauth::start();
    let out = s.bare_cli(&["health", "--server", s.url()], &[]).ok();
    assert_eq!(
        out.stdout,
        format!("ok: regauth at {} is healthy\n", s.url())
    );
    let v = s
        .bare_cli(&["health", "--server", s.url(), "-o", "json"], &[])
        .ok()
        .json();
    assert_eq!(v, json!({"server": s.url(), "status": "ok"}));

    let closed = crate::common::ClosedPort::new();
    let down = closed.url();
    let err = s.bare_cli(&["health", "--server", &down], &[]).fails(1);
    assert!(
        err.starts_with(&format!("cannot reach regauth at {down}: ")),
        "{err}"
    );
}

/// The README's quick start run twice: the second `token create --password-file` exits 2
/// before asking the server (no second token, no 409) and leaves the first password intact;
/// `--force` replaces it, and `token rotate` follows the same rule. The file is mode 0600.
#[test]
fn password_file_is_0600_and_never_overwritten_without_force() {
    use std::os::unix::fs::PermissionsExt;
    let s = Regauth::start();
    let file = s.dir().join("ci-bot.password");
    let path = file.to_str().expect("utf-8 path");
    let create = ["token", "create", "ci-bot", "--password-file", path];
    let out = s.cli(&create).ok();
    assert!(out.stdout.contains("its password is in"), "{}", out.stdout);
    assert!(!out.stdout.contains("rga_"), "not printed: {}", out.stdout);
    let first = std::fs::read_to_string(&file).expect("password file");
    assert!(
        first.starts_with("rga_") && first.ends_with('\n'),
        "{first}"
    );
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let again = s.cli(&create);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert!(
        !again.stderr.contains("409"),
        "no request made: {}",
        again.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).expect("file"), first);
    let list = s.call(AdminCall::list_tokens("default", "")).value();
    assert_eq!(list["total"], 1, "{list}");

    let rotate = ["token", "rotate", "ci-bot", "--password-file", path];
    assert_eq!(s.cli(&rotate).code, 2);
    assert_eq!(std::fs::read_to_string(&file).expect("file"), first);
    let mut forced = rotate.to_vec();
    forced.push("--force");
    s.cli(&forced).ok();
    let second = std::fs::read_to_string(&file).expect("file");
    assert!(second.starts_with("rga_") && second != first, "rotated");
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// `token delete` takes several names, looks all up before deleting any, and prints one line
/// each; without a terminal it does not ask.
#[test]
fn delete_several_and_none_when_one_is_unknown() {
    let s = Regauth::start();
    let (id_a, _) = s.create("del-a", &[]);
    let (id_b, _) = s.create("del-b", &[]);
    s.create("del-c", &[]);
    let err = s.cli(&["token", "delete", "del-a", "no-such"]).fails(1);
    assert!(err.contains("no-such"), "{err}");
    let out = s.cli(&["token", "delete", "del-a", "del-b"]).ok();
    assert_eq!(
        out.stdout,
        format!(
            "Deleted token del-a (id {id_a}) from registry default.\n\
             Deleted token del-b (id {id_b}) from registry default.\n"
        )
    );
    let v = s.cli(&["-o", "json", "token", "list"]).ok().json();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
    s.cli(&["token", "delete", "--yes", "del-c"]).ok();
    assert_eq!(s.cli(&["token", "list"]).ok().stdout, "no tokens\n");
}

/// On a terminal (a pseudo-terminal from `script`), `token delete` asks; anything but y
/// deletes nothing, y deletes, and --yes does not ask.
#[test]
fn delete_asks_on_a_terminal() {
    let s = Regauth::start();
    s.create("keep-me", &[]);
    s.create("drop-me", &[]);
    let on_tty = |args: &str, answer: &str| {
        let line = format!(
            "{} --server {} --admin-token {} {args}",
            crate::common::regauth::BIN,
            s.url(),
            s.admin_token()
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]).current_dir(s.dir());
        crate::common::run(cmd, Some(answer), std::time::Duration::from_secs(30))
    };
    let out = on_tty("token delete keep-me", "n\n");
    assert!(
        out.stdout
            .contains("Delete token keep-me from registry default?"),
        "{out:?}"
    );
    assert!(out.stdout.contains("nothing deleted"), "{out:?}");
    s.cli(&["token", "show", "keep-me"]).ok();
    let out = on_tty("token delete drop-me", "y\n");
    assert!(out.stdout.contains("Deleted token drop-me"), "{out:?}");
    let out = on_tty("token delete --yes keep-me", "");
    assert!(!out.stdout.contains("[y/N]"), "{out:?}");
    assert!(out.stdout.contains("Deleted token keep-me"), "{out:?}");
    assert_eq!(s.cli(&["token", "list"]).ok().stdout, "no tokens\n");
}

/// `regauth admin create/list/rotate/delete`: the secret is printed once and works as
/// `--admin-token` with the role's limits; rotate ends the old secret, delete the new one.
#[test]
fn admin_create_list_rotate_delete() {
    let s = Regauth::start();
    let out = s
        .cli(&["admin", "create", "alice", "--role", "viewer"])
        .ok();
    assert!(
        out.stdout.contains("cannot be shown again"),
        "{}",
        out.stdout
    );
    let secret = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("rgadm_"))
        .unwrap_or_else(|| panic!("no secret line:\n{}", out.stdout))
        .to_string();
    let url = s.url().to_string();
    let as_alice = |args: &[&str]| {
        let mut all = vec!["--server", url.as_str(), "--admin-token", secret.as_str()];
        all.extend_from_slice(args);
        s.bare_cli(&all, &[])
    };
    as_alice(&["token", "list"]).ok();
    let refused = as_alice(&["token", "create", "nope-bot", "-s", "repository:x:pull"]).fails(1);
    assert!(
        refused.contains("this needs the editor role; alice is a viewer"),
        "{refused}"
    );

    let list = s.cli(&["admin", "list"]).ok();
    assert!(
        list.stdout.contains("alice") && list.stdout.contains("viewer"),
        "{}",
        list.stdout
    );
    let json: Value =
        serde_json::from_str(&s.cli(&["-o", "json", "admin", "list"]).ok().stdout).unwrap();
    assert_eq!(json["items"][0]["name"], "alice");
    assert_eq!(json["items"][0]["createdBy"], "bootstrap");
    // The API's collection, as `token list -o json` prints the token list.
    assert_eq!(json["type"], "collection", "{json}");
    assert_eq!(
        (json["count"].as_u64(), json["total"].as_u64()),
        (Some(1), Some(1))
    );

    let rotated: Value = serde_json::from_str(
        &s.cli(&["-o", "json", "admin", "rotate", "alice"])
            .ok()
            .stdout,
    )
    .unwrap();
    let fresh = rotated["secret"].as_str().unwrap().to_string();
    as_alice(&["token", "list"]).fails(1);
    let mut all = vec![
        "--server",
        url.as_str(),
        "--admin-token",
        fresh.as_str(),
        "token",
        "list",
    ];
    s.bare_cli(&all, &[]).ok();

    let out = s.cli(&["admin", "delete", "alice"]).ok();
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    all.truncate(6);
    s.bare_cli(&all, &[]).fails(1);
    let gone = s.cli(&["admin", "delete", "alice"]).fails(1);
    assert!(gone.contains("not found"), "{gone}");
}

/// With the server stopped, `registry-config` prints the same block from the config file and
/// the keyring's files (saying so on stderr), in both output formats; an unknown registry
/// is a usage error naming the configured ones.
#[test]
fn registry_config_works_while_the_server_is_down() {
    let mut s = Regauth::start();
    let config = s.client_config();
    let config = config.to_str().unwrap();
    let online = s
        .bare_cli(&["--config", config, "registry-config"], &[])
        .ok();
    assert!(
        !online.stderr.contains("not asking the server"),
        "{online:?}"
    );
    let online_json = s
        .bare_cli(&["--config", config, "-o", "json", "registry-config"], &[])
        .ok()
        .json();
    s.terminate_within(std::time::Duration::from_secs(10))
        .expect("regauth stops");

    let offline = s
        .bare_cli(&["--config", config, "registry-config"], &[])
        .ok();
    assert_eq!(offline.stdout, online.stdout);
    assert!(
        offline.stderr.contains("not asking the server") && offline.stderr.contains(config),
        "{}",
        offline.stderr
    );
    let offline_json = s
        .bare_cli(&["--config", config, "-o", "json", "registry-config"], &[])
        .ok()
        .json();
    assert_eq!(
        offline_json["properties"]["tokenAuth"],
        online_json["properties"]["tokenAuth"]
    );
    let err = s
        .bare_cli(
            &["--config", config, "registry-config", "--registry", "nope"],
            &[],
        )
        .fails(2);
    assert!(err.contains("no registry \"nope\""), "{err}");
}

/// The shell lines of the README's "Quick start" section, from README.md itself (a line ending
/// in `\` joined with the next), one `Vec` per ```` ```sh ```` block.
fn readme_quick_start() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("\n## Quick start\n")
        .expect("a Quick start section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        let mut block: Vec<String> = Vec::new();
        let mut pending = String::new();
        for line in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                continue;
            }
            pending.push_str(line);
            if !pending.trim().is_empty() {
                block.push(std::mem::take(&mut pending));
            }
            pending.clear();
        }
        blocks.push(block);
    }
    blocks
}

/// A port nothing listens on right now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// "README and docs are true again, as checked by running the quick start twice from a fresh
/// clone": the shell blocks of the README's Quick start, read from README.md (so the README
/// drifting from the code fails here), run line by line twice in a fresh directory holding the
/// repository's `config/` (what the quick start reads from the repository root), with the
/// binary under test first on PATH instead of `cargo install`. `regauth serve` and
/// `docker-registry serve config/registry.yml` run as written, on free ports given through
/// REGAUTH_LISTEN/REGAUTH_PUBLIC_URL and REGISTRY_HTTP_ADDR/REGISTRY_AUTH_TOKEN_REALM. The
/// `docker login/import/push` lines need dockerd: in their place the test does what `docker
/// login` and a push do over HTTP, with the user and password file of the README's `docker
/// login` line (the registry's 401 challenge, a token from its realm, `/v2/` and a blob upload
/// accepted). The `docker run … registry:2` block needs Docker Hub and is not run. The second
/// run's `token create --password-file` exits 2 and changes nothing, as the README says.
#[test]
fn readme_quick_start_runs_twice_from_a_fresh_clone() {
    use crate::common::{http, temp_dir, Daemon};
    use std::process::Command;
    let blocks = readme_quick_start();
    assert!(blocks.len() >= 3, "the quick start's sh blocks: {blocks:?}");
    let clone = temp_dir("rgreadme-");
    let dir = clone.path();
    std::fs::create_dir_all(dir.join("config")).expect("mkdir config");
    for f in ["regauth.toml", "registry.yml"] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(f),
            dir.join("config").join(f),
        )
        .expect("copy config");
    }
    let (rp, gp) = (free_port(), free_port());
    let regauth_url = format!("http://127.0.0.1:{rp}");
    let bin_dir = std::path::Path::new(crate::common::regauth::BIN)
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env: Vec<(&str, String)> = vec![
        ("PATH", path),
        ("REGAUTH_LISTEN", format!("127.0.0.1:{rp}")),
        ("REGAUTH_PUBLIC_URL", regauth_url.clone()),
        ("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{gp}")),
        ("REGISTRY_AUTH_TOKEN_REALM", format!("{regauth_url}/auth")),
    ];
    let shell = |line: &str| {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", line]).current_dir(dir);
        crate::common::regauth::clear_regauth_vars(&mut cmd);
        cmd.envs(env.iter().map(|(k, v)| (k, v.as_str())));
        cmd
    };
    let client = http();
    let mut first_password = None;
    let mut skipped = Vec::new();
    for run in 1..=2 {
        let mut daemons: Vec<Daemon> = Vec::new();
        let mut login: Option<(String, String)> = None;
        for line in blocks.iter().flatten() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["cargo", "install", ..] => {
                    skipped.push("cargo install (the binary under test is on PATH)")
                }
                ["regauth", "serve", ..] => {
                    let mut d = Daemon::spawn(
                        "regauth",
                        shell(&format!("exec {line}")),
                        &dir.join(format!("regauth-{run}.log")),
                    );
                    d.wait_until(std::time::Duration::from_secs(60), || {
                        let r = client.get(format!("{regauth_url}/health")).send().ok()?;
                        r.status().is_success().then_some(())
                    });
                    daemons.push(d);
                }
                ["docker-registry", "serve", ..] => {
                    let mut d = Daemon::spawn(
                        "docker-registry",
                        shell(&format!("exec {line}")),
                        &dir.join(format!("registry-{run}.log")),
                    );
                    d.wait_until(std::time::Duration::from_secs(60), || {
                        let r = client
                            .get(format!("http://127.0.0.1:{gp}/v2/"))
                            .send()
                            .ok()?;
                        (r.status() == 401).then_some(())
                    });
                    daemons.push(d);
                }
                ["docker", "run", ..] => skipped.push("docker run registry:2 (Docker Hub)"),
                ["docker", "login", ..] => {
                    let after = |flag: &str| {
                        let at = words.iter().position(|w| *w == flag).expect(flag);
                        words[at + 1].to_string()
                    };
                    login = Some((after("-u"), after("<")));
                }
                ["docker", ..] => skipped.push("docker import/push (dockerd)"),
                _ => {
                    let out =
                        crate::common::run(shell(line), None, std::time::Duration::from_secs(60));
                    let creates = words.starts_with(&["regauth", "token", "create"]);
                    if run == 2 && creates && line.contains("--password-file") {
                        assert_eq!(
                            out.code, 2,
                            "run 2: `{line}` refuses to replace the file: {out:?}"
                        );
                        assert!(out.stderr.contains("--force"), "{out:?}");
                    } else {
                        assert!(out.success(), "run {run}: `{line}` failed: {out:?}");
                    }
                }
            }
        }
        // What docker login and docker push do, over HTTP.
        let (user, file) = login.expect("the quick start logs docker in");
        let password = std::fs::read_to_string(dir.join(&file)).expect("the password file");
        let password = password.trim().to_string();
        assert!(
            password.starts_with("rga_"),
            "run {run}: {file}: {password:?}"
        );
        match &first_password {
            None => first_password = Some(password.clone()),
            Some(p) => assert_eq!(p, &password, "run 2 left the password file alone"),
        }
        let challenge = client
            .get(format!("http://127.0.0.1:{gp}/v2/"))
            .send()
            .expect("registry /v2/");
        assert_eq!(challenge.status(), 401);
        let www = challenge.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            www.contains(&format!("realm=\"{regauth_url}/auth\"")),
            "{www}"
        );
        let token: Value = client
            .get(format!("{regauth_url}/auth"))
            .query(&[
                ("service", "registry.local"),
                ("scope", "repository:team/hello:pull,push"),
            ])
            .basic_auth(&user, Some(&password))
            .send()
            .expect("token")
            .json()
            .expect("token JSON");
        let bearer = token["token"].as_str().expect("a token");
        let v2 = client
            .get(format!("http://127.0.0.1:{gp}/v2/"))
            .bearer_auth(bearer)
            .send()
            .expect("/v2/");
        assert_eq!(
            v2.status(),
            200,
            "run {run}: the registry trusts regauth's token"
        );
        let upload = client
            .post(format!(
                "http://127.0.0.1:{gp}/v2/team/hello/blobs/uploads/"
            ))
            .bearer_auth(bearer)
            .send()
            .expect("blob upload");
        assert_eq!(upload.status(), 202, "run {run}: the push is allowed");
        // One token, made by the first run.
        let list = crate::common::run(
            shell("regauth -o json token list"),
            None,
            std::time::Duration::from_secs(60),
        );
        assert!(list.success(), "{list:?}");
        assert_eq!(names(&list.json()), [user.as_str()], "run {run}");
        for mut d in daemons {
            d.stop(std::time::Duration::from_secs(10));
        }
    }
    skipped.sort();
    skipped.dedup();
    eprintln!("not run: {skipped:?}");
}
