//! The Tokens console in headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `tests/browser/`), against a real regauth started by the fixtures here; the docker
//! flow adds the real registry and dockerd. Each test starts its own servers, then runs one
//! flow of `tests/browser/console.mjs` with the servers' addresses in its environment.
//!
//! Browser runs take one at a time (a lock), so parallel tests do not start several
//! Chromiums on a small machine; the other e2e tests keep running beside them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::common::{repo, run, AdminCall, CmdOutput, DockerClient, Regauth, Registry, REFUSED};

const CHROMIUM: &str = "/usr/bin/chromium";
const FLOW_TIMEOUT: Duration = Duration::from_secs(180);
/// The hostname regauth is told for the registry `default` (no registry runs there).
const HOST: &str = "registry.example.com";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs `node tests/browser/console.mjs FLOW` against `regauth`; panics with the flow's
/// output (and regauth's log) unless it passes. Returns the `RESULT {json}` lines.
fn flow(name: &str, regauth: &Regauth, env: &[(&str, &str)]) -> Vec<Value> {
    static ONE_BROWSER: Mutex<()> = Mutex::new(());
    let dir = browser_dir();
    assert!(
        Path::new(CHROMIUM).is_file() && dir.join("node_modules/playwright-core").is_dir(),
        "{CHROMIUM} or tests/browser/node_modules missing: run `bash scripts/test/install-deps.sh` (as root)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("console.mjs"))
        .arg(name)
        .current_dir(&dir)
        .env("REGAUTH_URL", regauth.url())
        .env("ADMIN_TOKEN", regauth.admin_token())
        .env("REGISTRY_HOST", HOST)
        .env("CHROMIUM", CHROMIUM);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: CmdOutput = {
        let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
        run(cmd, None, FLOW_TIMEOUT)
    };
    assert!(
        out.success(),
        "browser flow {name} failed:\n{out}\n--- regauth log:\n{}",
        regauth.log_tail()
    );
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|j| serde_json::from_str(j).expect("RESULT line is JSON"))
        .collect()
}

/// regauth with two registries: `default` (hostname [`HOST`]) and `second`.
fn regauth() -> Regauth {
    Regauth::builder()
        .registry("default", "registry.local", HOST)
        .registry("second", "second.local", "second.example.com:5000")
        .start()
}

#[test]
fn console_sign_in_keeps_the_admin_token_in_session_storage_only_and_signs_out() {
    flow("sign-in", &regauth(), &[]);
}

/// A viewer sees no write controls and no Admins tab; an owner creates and deletes an admin
/// in the Admins tab.
#[test]
fn console_shows_each_role_only_what_it_may_do() {
    flow("roles", &regauth(), &[]);
}

#[test]
fn console_returns_to_sign_in_with_a_message_on_401() {
    flow("unauthorized", &regauth(), &[]);
}

#[test]
fn console_adds_a_token_and_shows_the_password_once() {
    let regauth = regauth();
    let results = flow("add-token", &regauth, &[]);
    assert_eq!(results[0]["password_len"], 53, "{results:?}");
}

#[test]
fn console_refuses_invalid_input_with_the_api_rules_and_creates_nothing() {
    flow("validation", &regauth(), &[]);
}

#[test]
fn console_works_with_the_keyboard_alone() {
    flow("keyboard", &regauth(), &[]);
}

#[test]
fn console_edits_status_and_expiry() {
    flow("edit", &regauth(), &[]);
}

#[test]
fn console_sets_networks_owner_and_description() {
    flow("policy", &regauth(), &[]);
}

/// Add Token with "CI identity (OIDC)": issuer, audience and claim conditions (checked as
/// typed), the API's pinning rule at the field, no password anywhere, the table's mark, no
/// "Rotate password".
#[test]
fn console_adds_a_federated_token_without_a_password() {
    flow("oidc", &regauth(), &[]);
}

#[test]
fn console_manages_scopes() {
    flow("scopes", &regauth(), &[]);
}

#[test]
fn console_shows_a_tokens_activity_in_a_dialog() {
    flow("activity", &regauth(), &[]);
}

#[test]
fn console_deletes_after_an_irreversible_confirmation() {
    flow("delete", &regauth(), &[]);
}

#[test]
fn console_filters_on_the_server_and_pages() {
    let regauth = regauth();
    let mut names: Vec<String> = (0..125).map(|i| format!("svc-{i:03}")).collect();
    names.extend(["ci-build", "ci-deploy", "ci-test"].map(String::from));
    for name in &names {
        regauth.create_token("default", name, &[repo("team/*", &["pull"])]);
    }
    regauth.create_token("second", "second-bot", &[repo("*", &["pull"])]);
    let seeded = names.len().to_string();
    flow("filter-paging", &regauth, &[("SEEDED", &seeded)]);
}

#[test]
fn console_shows_last_use_filters_expiring_tokens_and_rotates_passwords() {
    flow("lifecycle", &regauth(), &[]);
}

/// The row menu's items are visible where they open (inside the window, not clipped by the
/// table's scroll box, not covered), with one token and with fifty.
#[test]
fn console_row_menu_is_visible_with_one_and_fifty_tokens() {
    flow("menu-visible", &regauth(), &[]);
}

/// Rotating a disabled token says, in the dialog and beside the new `docker login`, that the
/// token is disabled; an enabled token's rotation says nothing of the kind.
#[test]
fn console_rotating_a_disabled_token_says_it_is_disabled() {
    flow("rotate-disabled", &regauth(), &[]);
}

/// The `docker login` command wraps only at spaces, at 1280 and 420 px; times show their zone.
#[test]
fn console_command_wraps_at_spaces_and_times_show_a_zone() {
    flow("text-layout", &regauth(), &[]);
}

#[test]
fn console_responses_carry_the_security_headers_in_the_browser() {
    flow("headers", &regauth(), &[]);
}

/// Writes the README's screenshots into `target/console-screenshots/` (copied to
/// `docs/img/` by hand when the console changes) and checks they are PNGs; on both views every
/// visible text meets WCAG AA contrast (4.5:1, 3:1 for large text).
#[test]
fn console_screenshots_of_the_tokens_tab_and_the_result_panel() {
    let regauth = regauth();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("mkdir screenshots");
    flow(
        "screenshots",
        &regauth,
        &[("SHOT_DIR", dir.to_str().expect("utf-8 path"))],
    );
    for file in ["console-tokens.png", "console-result.png"] {
        let png = std::fs::read(dir.join(file)).expect("screenshot written");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{file}");
    }
}

/// Width and height of a PNG, from its IHDR chunk (the first one, at byte 16).
fn png_size(file: &Path) -> (u32, u32) {
    let png = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "{} is a PNG",
        file.display()
    );
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (be(16), be(20))
}

/// At 1280×800 and 420×800: the page never scrolls sideways (the token table scrolls inside
/// its box), the Tokens tab's controls are in the window, and the Add Token dialog's submit
/// button is in the window and on top without scrolling (opened again, at its top), and
/// creates the token when clicked where it is drawn; the Edit dialog's buttons likewise; the
/// Admins tab does not scroll sideways either. Full-page screenshots (in `target/tmp/console-layout/`) are exactly as
/// wide as the window: a page that overflowed sideways would make them wider.
#[test]
fn console_fits_1280_and_420_px_windows_and_the_add_dialog_fits_800_px() {
    let regauth = regauth();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-layout");
    std::fs::create_dir_all(&dir).expect("mkdir screenshots");
    let results = flow(
        "layout",
        &regauth,
        &[("SHOT_DIR", dir.to_str().expect("utf-8 path"))],
    );
    eprintln!("layout: {results:?}");
    for width in [1280, 420] {
        let (w, h) = png_size(&dir.join(format!("layout-tokens-{width}.png")));
        assert_eq!(w, width, "the Tokens tab at {width} px is {w} px wide");
        assert!(h >= 800, "full page at {width} px: {h} px high");
        let (w, h) = png_size(&dir.join(format!("layout-add-{width}.png")));
        assert_eq!(
            (w, h),
            (width, 800),
            "the open Add Token dialog at {width}×800"
        );
    }
}

/// The end-to-end flow: a token created in the console logs docker in with the command the
/// page shows and pushes; disabled in the console, it no longer pulls; deleted, it no longer
/// logs in.
#[test]
fn console_token_drives_real_docker_push_disable_and_delete() {
    let mut regauth = Regauth::builder()
        .registry("default", "registry.local", "pending")
        .start();
    let registry = Registry::start(&regauth, "default");
    let host = registry.host();
    // regauth must name the registry's real address, known only now: restart it on the same
    // address with that hostname (same data and keys, so the registry's trust stays valid).
    regauth.restart_with(|config| {
        let registries = config
            .get_mut("registries")
            .and_then(|r| r.as_array_mut())
            .expect("[[registries]] in the config");
        registries[0]
            .as_table_mut()
            .expect("a registry table")
            .insert("hostname".into(), host.clone().into());
    });
    let (status, reg) = regauth.admin(Method::GET, "/registries/default", None);
    assert_eq!(
        (status.as_u16(), reg["properties"]["hostname"].as_str()),
        (200, Some(host.as_str()))
    );

    let name = "console-pusher";
    let env = [("TOKEN_NAME", name), ("REGISTRY_HOST", host.as_str())];
    let created = flow("docker-create", &regauth, &env);
    let command = created[0]["command"]
        .as_str()
        .expect("a command")
        .to_owned();
    assert!(
        command.contains(&format!("docker login '{host}'")),
        "{command}"
    );

    let docker = DockerClient::new();
    docker
        .sh(&command)
        .expect_success("the docker login command shown by the console");
    let image = docker.import_image();
    let remote = format!("{host}/team/console:1");
    docker.tag(&image, &remote);
    docker
        .docker(&["push", &remote])
        .expect_success("docker push with the console's token");
    docker.rmi(&[&remote]);

    flow("docker-disable", &regauth, &env);
    let list = regauth
        .call(AdminCall::list_tokens(
            "default",
            &format!("filter.name={name}"),
        ))
        .value();
    assert_eq!(
        list["items"][0]["properties"]["status"], "disabled",
        "{list}"
    );
    docker
        .docker(&["pull", &remote])
        .expect_refused("docker pull with the disabled token", REFUSED);

    flow("docker-delete", &regauth, &env);
    let list = regauth
        .call(AdminCall::list_tokens(
            "default",
            &format!("filter.name={name}"),
        ))
        .value();
    assert_eq!(list["total"], 0, "{list}");
    docker.docker(&["logout", &host]);
    docker
        .sh(&command)
        .expect_refused("docker login with the deleted token", &["unauthorized"]);
}
