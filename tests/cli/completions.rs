//! `regauth completions SHELL`: needs no server and no config, and each script is accepted by
//! its shell and completes the real subcommands. Needs bash, zsh and fish (Debian packages,
//! installed by scripts/test/install-deps.sh).
use std::process::{Command, Stdio};

use crate::common::{regauth_in, require_bin, temp_dir};

/// The script for `shell`, generated in an empty directory with no REGAUTH_* variables.
fn script(shell: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = temp_dir("rgcli-");
    let out = regauth_in(dir.path(), &["completions", shell], &[]).ok();
    assert_eq!(out.stderr, "", "completions {shell} wrote to stderr");
    let path = dir.path().join(format!("regauth.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    (dir, path)
}

/// Runs `shell args…` and returns its stdout, failing the test on a non-zero exit.
fn run_shell(shell: &str, args: &[&str]) -> String {
    let bin = format!("/usr/bin/{shell}");
    require_bin(&bin);
    let out = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bash_script_completes_subcommands_and_flags() {
    let (_dir, path) = script("bash");
    let path = path.to_str().unwrap();
    run_shell("bash", &["-n", path]);
    // What bash-completion does on <TAB>: call the function with the words typed so far.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source {path}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; \
             COMP_POINT={point}; _regauth regauth '{last}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            cword = words.len() - 1,
            point = line.len(),
            last = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        run_shell("bash", &["-c", &program])
    };
    assert_eq!(complete("regauth tok").trim(), "token");
    assert_eq!(complete("regauth registry-c").trim(), "registry-config");
    let flags = complete("regauth token update ci-bot --");
    for flag in ["--enable", "--disable", "--expires", "--no-expiry"] {
        assert!(flags.lines().any(|l| l == flag), "no {flag} in {flags:?}");
    }
}

#[test]
fn zsh_script_is_a_compdef_function() {
    let (_dir, path) = script("zsh");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("#compdef regauth\n"), "{}", &text[..40]);
    assert!(text.contains("registry-config"));
    run_shell("zsh", &["-n", path.to_str().unwrap()]);
}

#[test]
fn fish_script_completes_subcommands() {
    let (_dir, path) = script("fish");
    let path = path.to_str().unwrap();
    run_shell("fish", &["--no-execute", path]);
    let out = run_shell(
        "fish",
        &[
            "-c",
            &format!("source {path}; complete -C 'regauth registry-c'"),
        ],
    );
    assert!(
        out.lines().any(|l| l.starts_with("registry-config\t")),
        "{out:?}"
    );
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let dir = temp_dir("rgcli-");
    let out = regauth_in(dir.path(), &["completions", "tcsh"], &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("invalid value 'tcsh'"),
        "{}",
        out.stderr
    );
}

/// What bash does on <TAB> after `words` (the last one is being completed): calls the script's
/// `_regauth` with COMP_WORDS/COMP_CWORD set, the binary as the command word, and `env` in the
/// environment. Returns the completions, one a line, and what the shell wrote on stderr.
fn tab(path: &str, words: &[&str], env: &[(&str, &str)]) -> (Vec<String>, String) {
    let bin = crate::common::regauth::BIN;
    let quoted: Vec<String> = std::iter::once(bin)
        .chain(words.iter().copied())
        .map(|w| format!("'{w}'"))
        .collect();
    let cword = words.len();
    let cur = words[cword - 1];
    let prev = if cword >= 2 { words[cword - 2] } else { bin };
    let program = format!(
        "source {path}; COMP_WORDS=({}); COMP_CWORD={cword}; _regauth '{bin}' '{cur}' '{prev}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" ")
    );
    require_bin("/usr/bin/bash");
    let out = Command::new("/usr/bin/bash")
        .args(["-c", &program])
        .current_dir(std::path::Path::new(path).parent().unwrap())
        .env_remove("REGAUTH_URL")
        .env_remove("REGAUTH_ADMIN_TOKEN")
        .env_remove("REGAUTH_CONFIG")
        .env_remove("REGAUTH_REGISTRY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{words:?}: {}", out.status);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// bash completes token names by asking the live server (with the --server/--admin-token of
/// the line, or REGAUTH_URL/REGAUTH_ADMIN_TOKEN), after every subcommand that takes an existing
/// token, several after `token delete`, skipping other options' values; never after `create`.
#[test]
fn bash_completes_token_names_from_a_live_server() {
    let s = crate::common::Regauth::start();
    for name in ["ci-bot", "cd-bot", "web-bot"] {
        s.create(name, &[]);
    }
    let (_dir, path) = script("bash");
    let path = path.to_str().unwrap();
    let url = s.url();
    let token = s.admin_token();
    let flags = ["--server", url, "--admin-token", token];
    let line = |rest: &[&'static str]| -> Vec<&str> {
        flags.iter().copied().chain(rest.iter().copied()).collect()
    };

    let (names, err) = tab(path, &line(&["token", "show", "c"]), &[]);
    assert_eq!(names, ["cd-bot", "ci-bot"], "stderr: {err}");
    assert_eq!(err, "");
    let (names, _) = tab(path, &line(&["token", "show", ""]), &[]);
    assert_eq!(names, ["cd-bot", "ci-bot", "web-bot"]);
    let (names, _) = tab(
        path,
        &line(&["-o", "json", "token", "rotate", "--grace", "1h", "w"]),
        &[],
    );
    assert_eq!(names, ["web-bot"]);
    let (names, _) = tab(path, &line(&["scope", "add", "ci"]), &[]);
    assert_eq!(names, ["ci-bot"]);
    let (names, _) = tab(path, &line(&["token", "scope", "list", "cd"]), &[]);
    assert_eq!(names, ["cd-bot"]);
    // From the environment, as the README sets it up; several names after delete.
    let env = [("REGAUTH_URL", url), ("REGAUTH_ADMIN_TOKEN", token)];
    let (names, _) = tab(path, &["token", "delete", "ci-bot", "c"], &env);
    assert_eq!(names, ["cd-bot", "ci-bot"]);
    let (names, _) = tab(path, &["token", "update", "w"], &env);
    assert_eq!(names, ["web-bot"]);
    // Not a token name: a new one, a second argument, an option.
    let (names, _) = tab(path, &["token", "create", "c"], &env);
    assert!(names.is_empty(), "{names:?}");
    let (names, _) = tab(path, &["token", "show", "ci-bot", "c"], &env);
    assert!(names.is_empty(), "{names:?}");
    let (names, _) = tab(path, &["token", "update", "ci-bot", "--dis"], &env);
    assert_eq!(names, ["--disable"]);
}

/// With the server down (or no admin token, or a wrong one), completing a token name shows
/// nothing and writes nothing on the terminal; `__complete-tokens` prints nothing, exit 0.
#[test]
fn bash_token_names_are_silent_when_the_server_cannot_be_asked() {
    let (dir, path) = script("bash");
    let path = path.to_str().unwrap();
    let closed = crate::common::ClosedPort::new();
    let down = closed.url();
    let (names, err) = tab(
        path,
        &[
            "--server",
            &down,
            "--admin-token",
            "rgadm_x",
            "token",
            "show",
            "c",
        ],
        &[],
    );
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(err, "");
    for args in [
        vec![
            "--server",
            down.as_str(),
            "--admin-token",
            "x",
            "__complete-tokens",
        ],
        vec!["--server", down.as_str(), "__complete-tokens"],
        vec!["__complete-tokens", "--registry", "nope"],
    ] {
        let out = regauth_in(dir.path(), &args, &[]);
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (0, "", ""),
            "{args:?}"
        );
    }
    // A live server with a wrong admin token: refused, still silent.
    let s = crate::common::Regauth::start();
    s.create("ci-bot", &[]);
    let out = regauth_in(
        dir.path(),
        &[
            "--server",
            s.url(),
            "--admin-token",
            "rgadm_wrong",
            "__complete-tokens",
        ],
        &[],
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    // And the right one lists it (the same command, so the silence above is not a typo).
    let out = regauth_in(
        dir.path(),
        &[
            "--server",
            s.url(),
            "--admin-token",
            s.admin_token(),
            "__complete-tokens",
        ],
        &[],
    );
    assert_eq!(out.stdout, "ci-bot\n");
}

/// The hidden subcommand is not offered as a subcommand.
#[test]
fn the_helper_subcommand_is_hidden() {
    let (_dir, path) = script("bash");
    let (names, _) = tab(path.to_str().unwrap(), &["__"], &[]);
    assert!(names.is_empty(), "{names:?}");
    let dir = temp_dir("rgcli-");
    let help = regauth_in(dir.path(), &["--help"], &[]).ok();
    assert!(!help.stdout.contains("complete-tokens"), "{}", help.stdout);
}
