//! Issue 12: `regauth admin-token rotate` against a running server.
use std::os::unix::fs::PermissionsExt;

use crate::common::{http, Regauth, ADMIN};

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
