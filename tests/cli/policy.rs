//! Issue 21: `--allow-from`, `--owner`, `--description` on `token create` and `token update`,
//! `token list --owner` and `--violations`, `token disable --owner` (offboarding), against a
//! running server with `max_token_lifetime = "90d"`.
use crate::common::Regauth;

fn start() -> Regauth {
    Regauth::builder()
        .registry("default", "registry.local", "localhost:5000")
        .edit(|t| {
            let regs = t
                .get_mut("registries")
                .and_then(|r| r.as_array_mut())
                .unwrap();
            regs[0]
                .as_table_mut()
                .unwrap()
                .insert("max_token_lifetime".into(), "90d".into());
        })
        .start()
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["properties"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn networks_owners_violations_and_offboarding_from_the_cli() {
    let s = start();
    // Create with every new flag.
    let v = s
        .cli(&[
            "--output",
            "json",
            "token",
            "create",
            "alice-ci",
            "--scope",
            "repository:app:pull",
            "--expires",
            "30d",
            "--allow-from",
            "127.0.0.1",
            "--allow-from",
            "10.0.0.0/8",
            "--owner",
            "alice@example.com",
            "--description",
            "CI for app",
        ])
        .ok()
        .json();
    let p = &v["properties"];
    assert_eq!(
        p["allowedNetworks"],
        serde_json::json!(["127.0.0.1/32", "10.0.0.0/8"])
    );
    assert_eq!(p["owner"], "alice@example.com");
    assert_eq!(p["description"], "CI for app");
    let pw = p["credentials"]["password"].as_str().unwrap().to_string();
    assert_eq!(s.grant("alice-ci", &pw, &["repository:app:pull"]).0, 200);

    // A bad network fails in the CLI, before any request, naming the problem.
    let out = s.cli(&[
        "token",
        "create",
        "bad-net",
        "--expires",
        "30d",
        "--allow-from",
        "10.0.0.1/8",
    ]);
    out.expect_refused("a network with host bits", &["host bits are set"]);
    assert_eq!(out.code, 2, "{out}");

    // The lifetime rule: refused with the rule named; a disabled token may be created.
    let err = s.cli(&["token", "create", "forever"]).fails(1);
    assert!(err.contains("max_token_lifetime (90d)"), "{err}");
    s.cli(&[
        "token",
        "create",
        "parked",
        "--disabled",
        "--owner",
        "alice@example.com",
    ])
    .ok();
    s.cli(&[
        "token",
        "create",
        "bob-ci",
        "--expires",
        "30d",
        "--owner",
        "bob",
    ])
    .ok();

    // Table and show.
    let table = s.cli(&["token", "list"]).ok().stdout;
    assert!(table.lines().next().unwrap().contains("OWNER"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("alice-ci") && l.contains("alice@example.com")),
        "{table}"
    );
    let shown = s.cli(&["token", "show", "alice-ci"]).ok().stdout;
    assert!(shown.contains("Owner:     alice@example.com"), "{shown}");
    assert!(shown.contains("About:     CI for app"), "{shown}");
    assert!(
        shown.contains("From:      127.0.0.1/32, 10.0.0.0/8"),
        "{shown}"
    );

    // Filters.
    let mine = s
        .cli(&[
            "--output",
            "json",
            "token",
            "list",
            "--owner",
            "alice@example.com",
        ])
        .ok()
        .json();
    assert_eq!(names(&mine), ["alice-ci", "parked"]);
    let bad = s
        .cli(&["--output", "json", "token", "list", "--violations"])
        .ok()
        .json();
    assert_eq!(names(&bad), ["parked"]);

    // Update: networks elsewhere, then anywhere again; owner and description.
    s.cli(&["token", "update", "alice-ci", "--allow-from", "10.0.0.0/8"])
        .ok();
    assert_eq!(s.grant("alice-ci", &pw, &["repository:app:pull"]).0, 401);
    let v = s
        .cli(&[
            "--output",
            "json",
            "token",
            "update",
            "alice-ci",
            "--allow-anywhere",
            "--description",
            "CI for app, moved",
        ])
        .ok()
        .json();
    assert!(v["properties"].get("allowedNetworks").is_none(), "{v}");
    assert_eq!(v["properties"]["description"], "CI for app, moved");
    assert_eq!(s.grant("alice-ci", &pw, &["repository:app:pull"]).0, 200);
    let v = s
        .cli(&[
            "--output",
            "json",
            "token",
            "update",
            "parked",
            "--no-owner",
            "--no-description",
        ])
        .ok()
        .json();
    assert!(v["properties"].get("owner").is_none(), "{v}");
    s.cli(&["token", "update", "parked", "--owner", "alice@example.com"])
        .ok();

    // Offboarding: every enabled token of the owner, in one request.
    let out = s
        .cli(&["token", "disable", "--owner", "alice@example.com"])
        .ok();
    assert!(
        out.stdout
            .contains("Disabled 1 token(s) of owner \"alice@example.com\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("alice-ci"), "{}", out.stdout);
    assert_eq!(s.grant("alice-ci", &pw, &["repository:app:pull"]).0, 401);
    let all = s.cli(&["--output", "json", "token", "list"]).ok().json();
    for t in all["items"].as_array().unwrap() {
        let want = if t["properties"]["name"] == "bob-ci" {
            "enabled"
        } else {
            "disabled"
        };
        assert_eq!(t["properties"]["status"], want, "{t}");
    }
    let log = s.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("action=\"disable\"") || l.contains("action=disable"))
            .count(),
        1,
        "{log}"
    );
    // One token by name.
    s.cli(&["token", "disable", "bob-ci"]).ok();
    let bob = s
        .cli(&["--output", "json", "token", "show", "bob-ci"])
        .ok()
        .json();
    assert_eq!(bob["properties"]["status"], "disabled");
    let out = s.cli(&["token", "disable"]);
    out.expect_refused("disable without a token or owner", &["--owner"]);
    assert_eq!(out.code, 2, "{out}");
}
