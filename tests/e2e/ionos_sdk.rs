//! The official IONOS Container Registry Python SDK manages regauth's tokens
//! unchanged (tests/e2e/ionos_sdk.py does the calls and checks).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::{run, Regauth, INSTALL_HINT};

#[test]
fn ionos_python_sdk_manages_tokens() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} not found: {INSTALL_HINT}",
        python.display()
    );
    let regauth = Regauth::start();
    let mut cmd = Command::new(&python);
    cmd.arg(root.join("tests/e2e/ionos_sdk.py"))
        .env("REGAUTH_URL", regauth.url())
        .env("REGAUTH_ADMIN_TOKEN", regauth.admin_token())
        .env("REGISTRY_ID", "default")
        .env("PYTHONUNBUFFERED", "1");
    let out = run(cmd, None, Duration::from_secs(180));
    // the per-check lines are worth seeing even on success (cargo shows them with --nocapture)
    println!("{}", out.stdout);
    assert!(
        out.success(),
        "tests/e2e/ionos_sdk.py failed:\n{out}\n{}",
        regauth.log_tail()
    );
}
