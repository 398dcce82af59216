//! Token names in shell completion: the hidden `regauth __complete-tokens` prints a registry's
//! token names when the server answers quickly, and nothing otherwise; the bash script that
//! `regauth completions bash` prints wraps clap_complete's function so that a token name
//! argument (`token show NAME`, `token delete NAME…`, `scope add NAME`, …) asks it.
//!
//! What the wrapper knows of the command line (which subcommands take a token name, which
//! options take a value) is read from the same clap definition that parses it.
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use clap::Parser;

use super::{client, commands, ConnArgs, GlobalArgs, Output, RegistryArg};

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "__complete-tokens";

/// How long completion may wait for the server: a person is waiting at the prompt.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// Options passed on to `__complete-tokens`, so it asks the server the line names.
const PASSED: &[&str] = &["--config", "-c", "--server", "--admin-token", "--registry"];

/// The helper's command line: `regauth [--config/--server/--admin-token/--registry …]
/// __complete-tokens`. Parsed apart from the main definition so that no completion script
/// offers it as a subcommand (clap_complete lists hidden subcommands too).
#[derive(Debug, Parser)]
#[command(name = "regauth")]
struct Helper {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    registry: RegistryArg,
}

/// Runs `regauth … __complete-tokens …` and returns true when that is the command line (the
/// word, and nothing else but the options above); false for anything else.
pub fn helper(mut args: Vec<OsString>) -> bool {
    let Some(at) = args.iter().skip(1).position(|a| a == SUBCOMMAND) else {
        return false;
    };
    args.remove(at + 1);
    let Ok(h) = Helper::try_parse_from(args) else {
        return false;
    };
    let conn = ConnArgs {
        config: h.global.config,
        server: h.global.server,
        admin_token: h.global.admin_token,
    };
    let stdout = std::io::stdout();
    token_names(&conn, h.registry.registry, &mut stdout.lock());
    true
}

/// `regauth __complete-tokens`: every token name of the registry, one a line. Any failure
/// (no server, no admin token, a refusal, a slow answer) prints nothing: completion must not
/// write on the terminal.
pub fn token_names(conn: &ConnArgs, registry: Option<String>, out: &mut dyn Write) {
    let names = (|| {
        let client = client::Client::new(conn.server_url()?, Some(conn.admin_token()?), TIMEOUT)?;
        let mut sink = std::io::sink();
        let mut ctx = commands::Ctx {
            client,
            output: Output::Table,
            out: &mut sink,
            registry,
        };
        commands::token_names(&mut ctx)
    })();
    if let Ok(names) = names {
        let mut text = String::new();
        for n in names {
            text.push_str(&n);
            text.push('\n');
        }
        // A closed pipe or a full disk: completion shows nothing, which is all it can do.
        let _ = out.write_all(text.as_bytes());
    }
}

/// Subcommand paths (under the root) whose first positional argument is an existing token:
/// `(words, several)` with `several` when it takes more than one (`token delete`).
fn name_paths(root: &clap::Command) -> Vec<(String, bool)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, bool)>) {
        for sub in cmd.get_subcommands() {
            let words = format!("{path} {}", sub.get_name());
            // An existing token is `token`/`tokens` (`create` takes a new `name`).
            if let Some(first) = sub.get_positionals().next() {
                let id = first.get_id().as_str();
                if id == "token" || id == "tokens" {
                    let several = first.get_num_args().is_some_and(|n| n.max_values() > 1);
                    out.push((words.clone(), several));
                }
            }
            walk(sub, &words, out);
        }
    }
    let mut out = Vec::new();
    for top in ["token", "scope"] {
        if let Some(cmd) = root.find_subcommand(top) {
            walk(cmd, top, &mut out);
        }
    }
    out
}

/// Every option of the command tree that takes a value (`--expires WHEN`), long and short,
/// except the ones passed on: the wrapper skips their values when it finds the positionals.
fn value_options(root: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.is_positional() || !arg.get_action().takes_values() {
                continue;
            }
            out.extend(arg.get_long().map(|l| format!("--{l}")));
            out.extend(arg.get_short().map(|s| format!("-{s}")));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.retain(|o| !PASSED.contains(&o.as_str()));
    out.sort();
    out.dedup();
    out
}

/// clap_complete's bash script with its `_regauth` renamed and wrapped by one that completes
/// token names; the script unchanged if its shape is not the one expected.
pub fn bash_with_token_names(script: &str, root: &clap::Command) -> String {
    let Some(rest) = script.strip_prefix("_regauth() {") else {
        return script.to_string();
    };
    let paths = name_paths(root);
    if paths.is_empty() {
        return script.to_string();
    }
    let mut cases = Vec::new();
    for (words, several) in &paths {
        cases.push(format!("\"{words}\""));
        if *several {
            cases.push(format!("\"{words} \"*"));
        }
    }
    let mut out = format!("_regauth_clap() {{{rest}");
    // Indented with spaces; `$1` is the command being completed (`regauth`, `./regauth`).
    let _ = write!(
        out,
        r#"
# Token names, asked of the server (quietly, briefly) after a subcommand that takes one.
_regauth() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i w skip="" pos=() pass=() names=""
    if [[ ${{cur}} != -* ]]; then
        for ((i = 1; i < COMP_CWORD; i++)); do
            w="${{COMP_WORDS[i]}}"
            if [[ -n ${{skip}} ]]; then
                [[ ${{skip}} == pass ]] && pass+=("${{w}}")
                skip=""
                continue
            fi
            case "${{w}}" in
                {passed}) pass+=("${{w}}"); skip=pass ;;
                {passed_eq}) pass+=("${{w}}") ;;
                {values}) skip=value ;;
                -*) ;;
                *) pos+=("${{w}}") ;;
            esac
        done
        case "${{pos[*]}}" in
            {cases})
                names="$("$1" "${{pass[@]}}" {SUBCOMMAND} 2>/dev/null </dev/null)"
                ;;
        esac
        if [[ -n ${{names}} ]]; then
            COMPREPLY=( $(compgen -W "${{names}}" -- "${{cur}}") )
            return 0
        fi
    fi
    _regauth_clap "$@"
}}
"#,
        passed = PASSED.join("|"),
        passed_eq = PASSED
            .iter()
            .filter(|o| o.starts_with("--"))
            .map(|o| format!("{o}=*"))
            .collect::<Vec<_>>()
            .join("|"),
        values = value_options(root).join("|"),
        cases = cases.join("|"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_name_arguments_come_from_the_clap_definition() {
        let root = super::super::command();
        let paths = name_paths(&root);
        for want in [
            ("token show", false),
            ("token update", false),
            ("token rotate", false),
            ("token disable", false),
            ("token delete", true),
            ("token check-oidc", false),
            ("token scope add", false),
            ("scope add", false),
            ("scope list", false),
        ] {
            assert!(
                paths.contains(&(want.0.to_string(), want.1)),
                "{want:?} in {paths:?}"
            );
        }
        assert!(!paths.iter().any(|(p, _)| p == "token create"), "{paths:?}");
        let values = value_options(&root);
        for want in [
            "--expires",
            "--output",
            "-o",
            "--grace",
            "--scope",
            "-s",
            "--oidc-claim",
            "--id-token",
        ] {
            assert!(values.iter().any(|v| v == want), "{want} in {values:?}");
        }
        assert!(!values.iter().any(|v| v == "--server" || v == "--enable"));
    }

    /// The word alone does not make a command line the helper's: a description that happens
    /// to be `__complete-tokens` is still a token update.
    #[test]
    fn only_the_helpers_own_command_line_runs_it() {
        let line = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(!helper(line(&["regauth", "token", "list"])));
        assert!(!helper(line(&[
            "regauth",
            "token",
            "update",
            "ci-bot",
            "--description",
            SUBCOMMAND
        ])));
        assert!(!helper(line(&["regauth", SUBCOMMAND, "--no-such-flag"])));
        assert!(!helper(line(&[SUBCOMMAND])));
    }

    #[test]
    fn the_bash_script_is_wrapped_once_and_otherwise_left_alone() {
        let root = super::super::command();
        let script = bash_with_token_names("_regauth() {\n  :\n}\n", &root);
        assert!(script.starts_with("_regauth_clap() {"), "{script}");
        assert_eq!(script.matches("\n_regauth() {").count(), 1, "{script}");
        assert!(script.contains(SUBCOMMAND));
        assert_eq!(bash_with_token_names("other", &root), "other");
    }
}
