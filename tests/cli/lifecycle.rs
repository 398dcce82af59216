//! Issue 12: `regauth admin-token rotate`, `token rotate` and `token list --expiring` against
//! a running server; issue 22: `regauth store compact` on its stopped store.
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::{http, AdminCall, Regauth, ADMIN};

fn registries_status(s: &Regauth, token: &str) -> u16 {
    http()
        .get(format!("{}/api/v1/registries", s.url()))
        .bearer_auth(token)
        .send()
        .expect("GET /api/v1/registries")
        .status()
        .as_u16()
}

#[test]
fn admin_token_rotate_replaces_the_file_and_the_running_server_follows() {
    let s = Regauth::builder().without_admin_token().start();
    let file = s.dir().join("data").join("admin-token");
    let old = std::fs::read_to_string(&file).expect("generated admin token");
    let old = old.trim().to_string();
    let config = s.config_path().to_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", &config, "--server", s.url()];
        all.extend_from_slice(args);
        s.bare_cli(&all, &[])
    };
    // A token and a session that must survive the rotation.
    let created = cli(&[
        "--output",
        "json",
        "token",
        "create",
        "survivor",
        "--scope",
        "repository:app:pull",
    ])
    .ok()
    .json();
    let password = created["properties"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(registries_status(&s, &old), 200);

    let out = cli(&["admin-token", "rotate"]).ok();
    assert!(
        out.stdout.contains(file.to_str().unwrap())
            && out.stdout.contains("old one no longer works"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&old));
    let new = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_ne!(new, old);
    assert!(new.starts_with("rgadm_") && new.len() >= 40, "{new}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!s.dir().join("data").join("admin-token.new").exists());

    assert_eq!(
        registries_status(&s, &old),
        401,
        "the old token stops working"
    );
    assert_eq!(registries_status(&s, &new), 200);
    // The CLI reads the new file; nothing else changed.
    let list = cli(&["--output", "json", "token", "list"]).ok().json();
    assert_eq!(list["items"][0]["properties"]["name"], "survivor");
    let (status, _) = s.grant("survivor", &password, &["repository:app:pull"]);
    assert_eq!(status, 200, "tokens keep working");
}

#[test]
fn admin_token_rotate_refuses_a_configured_token() {
    let s = Regauth::start();
    let config = s.config_path().to_str().unwrap().to_string();
    let err = s
        .bare_cli(&["--config", &config, "admin-token", "rotate"], &[])
        .fails(1);
    assert!(err.contains("set in the configuration"), "{err}");
    assert_eq!(registries_status(&s, ADMIN), 200);
}

#[test]
fn token_rotate_prints_the_new_password_and_keeps_the_old_one_for_the_grace() {
    let s = Regauth::start();
    let (id, old) = s.create("ci-bot", &["repository:app:pull"]);
    let out = s.cli(&["token", "rotate", "ci-bot", "--grace", "1h"]).ok();
    let new = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("rga_"))
        .unwrap_or_else(|| panic!("no password in:\n{}", out.stdout))
        .to_string();
    assert_ne!(new, old);
    assert!(
        out.stdout
            .contains(&format!("Rotated the password of token ci-bot (id {id})")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("previous password keeps working until"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("| docker login localhost:5000 -u ci-bot --password-stdin"),
        "{}",
        out.stdout
    );
    assert_eq!(
        s.grant("ci-bot", &old, &["repository:app:pull"]).0,
        200,
        "in the grace period"
    );
    assert_eq!(s.grant("ci-bot", &new, &["repository:app:pull"]).0, 200);

    let show = s.cli(&["token", "show", "ci-bot"]).ok().stdout;
    assert!(show.contains("Previous password works until"), "{show}");
    assert!(
        show.contains("Last used: 20") && show.contains("by password"),
        "{show}"
    );
    let table = s.cli(&["token", "list"]).ok().stdout;
    let col = table
        .lines()
        .next()
        .unwrap()
        .find("LAST USED")
        .expect("column");
    let row = table.lines().nth(1).unwrap();
    assert!(
        row[col..].starts_with(|c: char| c.is_ascii_digit()),
        "a date, not never: {table}"
    );

    // Without --grace the previous password stops at once; JSON output carries the password.
    let v = s
        .cli(&["--output", "json", "token", "rotate", &id])
        .ok()
        .json();
    let third = v["properties"]["credentials"]["password"].as_str().unwrap();
    assert!(
        v["properties"].get("previousPasswordExpiryDate").is_none(),
        "{v}"
    );
    assert_eq!(s.grant("ci-bot", &new, &["repository:app:pull"]).0, 401);
    assert_eq!(s.grant("ci-bot", &old, &["repository:app:pull"]).0, 401);
    assert_eq!(s.grant("ci-bot", third, &["repository:app:pull"]).0, 200);

    let bad = s.cli(&["token", "rotate", "ci-bot", "--grace", "8d"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("604800"), "{}", bad.stderr);
    let err = s.cli(&["token", "rotate", "nobody"]).fails(1);
    assert!(err.contains("no token named \"nobody\""), "{err}");
}

#[test]
fn token_list_expiring_shows_only_what_is_about_to_expire() {
    let s = Regauth::start();
    s.cli(&["token", "create", "soon", "--expires", "2d"]).ok();
    s.cli(&["token", "create", "later", "--expires", "30d"])
        .ok();
    s.cli(&["token", "create", "forever"]).ok();
    let out = s.cli(&["token", "list", "--expiring", "7d"]).ok().stdout;
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["soon"], "{out}");
    let v = s
        .cli(&["--output", "json", "token", "list", "--expiring", "31d"])
        .ok()
        .json();
    assert_eq!(v["total"], 2, "{v}");
    let bad = s.cli(&["token", "list", "--expiring", "soon"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("not a duration"), "{}", bad.stderr);
}

/// Issue 22: `store compact` leaves a store in use alone; with regauth stopped it rewrites the
/// store, which keeps every token (by name and by id) and its private modes, and regauth
/// serves from it again.
#[test]
fn store_compact_keeps_every_token_and_the_files_private() {
    let mut s = Regauth::start();
    let kept: Vec<(String, String)> = ["compact-a", "compact-b"]
        .iter()
        .map(|name| s.create(name, &["repository:app:pull"]))
        .collect();
    // Garbage in sled's log: a token made and deleted.
    let (gone, _) = s.create("compact-gone", &["repository:app:pull"]);
    s.cli(&["token", "delete", &gone]).ok();
    let data = s.data_dir().to_str().unwrap().to_string();
    let compact = |s: &Regauth| s.bare_cli(&["store", "compact", "--data-dir", &data], &[]);

    let busy = compact(&s).fails(1);
    assert!(busy.contains("holds this store"), "{busy}");
    s.terminate_within(Duration::from_secs(10))
        .expect("regauth stops on SIGTERM");
    let out = compact(&s).ok();
    assert!(
        out.stdout.contains("Compacted") && out.stdout.contains("entry by entry"),
        "{}",
        out.stdout
    );
    let store = s.data_dir().join("store");
    assert!(!s.data_dir().join("store.compacting").exists());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    for entry in walk(&store) {
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&entry), want, "{}", entry.display());
    }

    s.restart();
    for (i, (id, password)) in kept.iter().enumerate() {
        let name = ["compact-a", "compact-b"][i];
        let (status, _) = s.grant(name, password, &["repository:app:pull"]);
        assert_eq!(status, 200, "{name}");
        let shown = s.call(AdminCall::get_token("default", id)).value();
        assert_eq!(shown["properties"]["name"], name);
    }
    s.call(AdminCall::get_token("default", &gone))
        .expect(reqwest::StatusCode::NOT_FOUND);

    let nothing = tempfile::tempdir().unwrap();
    let none = s
        .bare_cli(
            &[
                "store",
                "compact",
                "--data-dir",
                nothing.path().to_str().unwrap(),
            ],
            &[],
        )
        .fails(2);
    assert!(none.contains("no sled store there"), "{none}");
}

/// Every file and directory below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}
