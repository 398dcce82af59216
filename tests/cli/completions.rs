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
