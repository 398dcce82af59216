//! Where the CLI finds the server, the admin token and the registry: flags, environment,
//! the config file, `<data_dir>/admin-token`, the server's first registry.
use serde_json::Value;

use crate::common::{regauth_in, Regauth, ADMIN};

/// One `[[registries]]` entry.
fn registry(id: &str, service: &str, hostname: &str) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("id".into(), id.into());
    t.insert("service".into(), service.into());
    t.insert("hostname".into(), hostname.into());
    toml::Value::Table(t)
}

/// A server without `[admin] token`: it generates `<data_dir>/admin-token`.
fn server_with_generated_token() -> Regauth {
    Regauth::builder().without_admin_token().start()
}

#[test]
fn config_file_gives_server_and_generated_admin_token() {
    let s = server_with_generated_token();
    // The server's config with `listen` set to the address it bound (it was started on port 0).
    let client_config = s.client_config();
    let config = client_config.to_str().unwrap().to_string();
    let token_file = s.dir().join("data/admin-token");
    assert!(token_file.exists(), "{}", s.log());

    // --config: public_url (http://<listen>) and <data_dir>/admin-token.
    s.bare_cli(&["--config", &config, "token", "create", "via-config"], &[])
        .ok();
    let out = s
        .bare_cli(&["--config", &config, "token", "list"], &[])
        .ok();
    assert!(out.stdout.contains("via-config"), "{}", out.stdout);

    // REGAUTH_CONFIG does the same.
    let out = s
        .bare_cli(
            &["token", "show", "via-config"],
            &[("REGAUTH_CONFIG", &config)],
        )
        .ok();
    assert!(
        out.stdout.contains("Name:      via-config"),
        "{}",
        out.stdout
    );

    // config/regauth.toml in the working directory is found without any flag.
    let work = s.dir().join("work");
    std::fs::create_dir_all(work.join("config")).unwrap();
    std::fs::copy(&client_config, work.join("config/regauth.toml")).unwrap();
    let out = regauth_in(&work, &["token", "list"], &[]).ok();
    assert!(out.stdout.contains("via-config"), "{}", out.stdout);
    regauth_in(&work, &["health"], &[]).ok();

    // A flag wins over the file.
    let err = s
        .bare_cli(
            &[
                "--config",
                &config,
                "--admin-token",
                "wrong-admin-token-0123456789",
                "token",
                "list",
            ],
            &[],
        )
        .fails(1);
    assert!(err.ends_with("(HTTP 401)"), "{err}");
}

#[test]
fn config_admin_token_and_public_url() {
    // The file's [admin] token is used; public_url (not listen) is where the CLI goes.
    let s = Regauth::builder()
        .edit(|c| {
            c.insert("public_url".into(), "http://localhost:1".into());
        })
        .start();
    let config = s.config_path().to_str().unwrap().to_string();
    let err = s
        .bare_cli(&["--config", &config, "token", "list"], &[])
        .fails(1);
    assert!(
        err.starts_with("cannot reach regauth at http://localhost:1: "),
        "{err}"
    );
    let out = s
        .bare_cli(
            &["--config", &config, "--server", s.url(), "token", "list"],
            &[],
        )
        .ok();
    assert_eq!(out.stdout, "no tokens\n");
}

#[test]
fn environment_variables() {
    let s = Regauth::start();
    let env = [("REGAUTH_URL", s.url()), ("REGAUTH_ADMIN_TOKEN", ADMIN)];
    s.bare_cli(&["token", "create", "via-env"], &env).ok();
    let v = s
        .bare_cli(&["-o", "json", "token", "list"], &env)
        .ok()
        .json();
    assert_eq!(v["items"][0]["properties"]["name"], "via-env");
    // The admin token is never echoed by --help.
    let out = s.bare_cli(&["--help"], &env).ok();
    assert!(!out.stdout.contains(ADMIN), "{}", out.stdout);
}

#[test]
fn registry_defaults_to_the_servers_first() {
    let s = Regauth::builder()
        .edit(|c| {
            c.insert(
                "registries".into(),
                toml::Value::Array(vec![
                    registry("prod", "prod.svc", "registry.example.com"),
                    registry("staging", "staging.svc", "localhost:5002"),
                ]),
            );
        })
        .start();
    let out = s
        .cli(&["token", "create", "in-prod", "-s", "repository:*:pull"])
        .ok();
    assert!(out.stdout.contains("in registry prod."), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("| docker login registry.example.com -u in-prod --password-stdin"),
        "{}",
        out.stdout
    );
    let out = s
        .cli(&["token", "create", "in-staging", "--registry", "staging"])
        .ok();
    assert!(
        out.stdout
            .contains("| docker login localhost:5002 -u in-staging"),
        "{}",
        out.stdout
    );

    let names = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["properties"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(s.cli(&["-o", "json", "token", "list"]).ok().json()),
        ["in-prod"]
    );
    assert_eq!(
        names(
            s.cli(&["-o", "json", "token", "--registry", "staging", "list"])
                .ok()
                .json()
        ),
        ["in-staging"]
    );
    let v = s
        .bare_cli(
            &[
                "--server",
                s.url(),
                "--admin-token",
                ADMIN,
                "-o",
                "json",
                "token",
                "list",
            ],
            &[("REGAUTH_REGISTRY", "staging")],
        )
        .ok()
        .json();
    assert_eq!(names(v), ["in-staging"]);

    // Names are per registry.
    let err = s.cli(&["token", "show", "in-staging"]).fails(1);
    assert_eq!(err, "no token named \"in-staging\" in registry \"prod\"");
    s.cli(&["token", "delete", "in-staging", "--registry", "staging"])
        .ok();

    let out = s.cli(&["registry-config"]).ok();
    assert!(
        out.stdout.contains("    service: prod.svc\n"),
        "{}",
        out.stdout
    );
    let out = s.cli(&["registry-config", "--registry", "staging"]).ok();
    assert!(
        out.stdout.contains("    service: staging.svc\n"),
        "{}",
        out.stdout
    );
}
