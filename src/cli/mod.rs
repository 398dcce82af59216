//! Command line: `regauth serve` runs the server; the other commands are clients of a running
//! server's admin API (`client`), so they work the same against a local or a remote regauth.
//! `main.rs` only calls [`main`].
//!
//! - `client`: server URL and admin token resolution, HTTP, error lines.
//! - `commands`: one function per client command.
//! - `scope`, `expires`: the `SCOPE` and `--expires` argument syntaxes.
//! - `output`: tables, summaries, JSON and YAML.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::Config;

mod activity;
mod admins;
mod client;
mod commands;
mod complete;
mod expires;
mod key;
mod offline;
mod oidc;
mod output;
mod scope;
mod webhook;

pub use client::{CliError, ConnArgs};
pub use expires::Expires;
pub use output::Output;
pub use scope::{ScopeArg, ScopeSelector};

const AFTER_HELP: &str = "\
Client commands find the server and the admin token in this order:
  --server / REGAUTH_URL, else public_url of the config file;
  --admin-token / REGAUTH_ADMIN_TOKEN, else [admin] token of the config file,
  else <data_dir>/admin-token.
The config file is --config / REGAUTH_CONFIG, else config/regauth.toml when present.

Exit status: 0 success; 1 the request failed (server unreachable, admin token refused,
unknown token, rejected by the server); 2 invalid arguments or configuration.
With --output json, errors are one JSON object on stderr: {\"error\", \"exitCode\", \"httpStatus\"}.";

/// regauth: token authentication for Docker/OCI registries.
#[derive(Debug, Parser)]
#[command(name = "regauth", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (TOML). Default: config/regauth.toml when present, else built-in defaults.
    #[arg(
        long,
        short,
        global = true,
        env = "REGAUTH_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    /// URL of the running regauth (client commands). Default: public_url from the config.
    #[arg(long, global = true, env = "REGAUTH_URL", value_name = "URL")]
    pub server: Option<String>,
    /// Admin API token (client commands). Default: from the config, else <data_dir>/admin-token.
    #[arg(
        long,
        global = true,
        env = "REGAUTH_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Output format of client commands: readable text, or the admin API's JSON for scripts
    /// (errors then are JSON on stderr).
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (reads config/regauth.toml when present, else built-in defaults).
    Serve(ServeArgs),
    /// Manage access tokens.
    Token(TokenArgs),
    /// Manage a token's scopes (same as `regauth token scope`).
    Scope(ScopeArgs),
    /// Print the `auth: token:` block that makes a registry trust this regauth.
    RegistryConfig {
        /// Registry id. Default: the server's first registry.
        #[arg(long, env = "REGAUTH_REGISTRY", value_name = "ID")]
        registry: Option<String>,
    },
    /// Check that a regauth server answers /health (exit 0) or not (exit 1).
    Health,
    /// What the registry reported: pushes, pulls and deletes of images, newest first ("who
    /// pushed this image?": --digest sha256:…).
    Activity(activity::ActivityArgs),
    /// The webhooks' delivery log (deliveries) and redelivery; needs the owner role.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Manage the admin API's token file (<data_dir>/admin-token), on the server's host.
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
    /// Manage named admins with roles (viewer, editor, owner); needs the owner role.
    #[command(subcommand)]
    Admin(admins::AdminCommand),
    /// Move the token store (run on the server's host, with regauth stopped).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) on stdout.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Rotate the signing key: list, add, check, activate, retire (docs/key-rotation.md).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Print the OpenAPI 3.1 document of the admin API and the token endpoint (the content of
    /// docs/openapi.json; a running server also serves it at /api/v1/openapi.json).
    Openapi,
}

/// Options of `serve` alone.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Once listening, write the bound address (e.g. 127.0.0.1:40123) to this file: with
    /// `listen = "127.0.0.1:0"` the OS picks a free port, and this tells which.
    #[arg(long, value_name = "PATH")]
    pub bound_address_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Write a new random admin token to <data_dir>/admin-token. A running server uses it from
    /// its next admin request on and refuses the old one; tokens, sessions and keys are
    /// untouched. Refused when the admin token is set in the config or REGAUTH_ADMIN_TOKEN.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every token (scopes, password hashes, rotation and last use) and refresh token of
    /// a sled store into PostgreSQL, so no password changes. Idempotent: what is already there
    /// is left alone, and a second run copies nothing. Checks by counts at the end. TLS to
    /// PostgreSQL is taken from the config's [store] (tls, ca_file).
    Migrate {
        /// The sled store: regauth's data_dir (the store is its `store` subdirectory) or the
        /// store directory itself. regauth must be stopped (sled allows one process).
        #[arg(long, value_name = "DATA_DIR")]
        from: PathBuf,
        /// The PostgreSQL database: postgres://user:password@host:port/database.
        #[arg(long, value_name = "URL", env = "REGAUTH_STORE_URL")]
        to: String,
    },
    /// Rewrite a sled store into a fresh copy of itself and put the copy in its place: the same
    /// tokens, refresh tokens and events in less disk and, at start, less memory (after an
    /// upgrade that changed the store's layout, or many creates and deletes). Checked entry by
    /// entry before the swap; safe to interrupt. Needs free space for a second copy.
    Compact {
        /// regauth's data_dir (the store is its `store` subdirectory) or the store directory
        /// itself. regauth must be stopped (sled allows one process).
        #[arg(long, value_name = "DATA_DIR")]
        data_dir: PathBuf,
    },
}

/// `--allow-from`: a network in CIDR form, checked here so a typo fails before any request.
fn parse_network(text: &str) -> Result<String, String> {
    text.parse::<crate::domain::Network>()
        .map(|n| n.to_string())
}

/// `--expiring`: a duration, kept as typed (the server parses the same syntax).
fn parse_window(text: &str) -> Result<String, String> {
    crate::api::parse_duration(text).map(|_| text.trim().to_string())
}

/// `--grace`: a duration of at most 7 days, in seconds.
fn parse_grace(text: &str) -> Result<i64, String> {
    let d = crate::api::parse_duration(text)?;
    crate::domain::validate_grace(d).map_err(|e| e.rule)?;
    Ok(d.num_seconds())
}

const COMPLETIONS_HELP: &str = "\
Install the script where your shell looks for completions, for example:
  regauth completions bash > ~/.local/share/bash-completion/completions/regauth
  regauth completions zsh  > ~/.zfunc/_regauth    # with fpath+=~/.zfunc before compinit
  regauth completions fish > ~/.config/fish/completions/regauth.fish";

/// `--registry`, shared by the token and scope commands.
#[derive(Debug, Args)]
pub struct RegistryArg {
    /// Registry the token belongs to. Default: the server's first registry (usually `default`).
    #[arg(long, global = true, env = "REGAUTH_REGISTRY", value_name = "ID")]
    pub registry: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub registry: RegistryArg,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    #[command(flatten)]
    pub registry: RegistryArg,
    #[command(subcommand)]
    pub command: ScopeCommand,
}

/// `--password-file PATH [--force]` of `token create` and `token rotate`.
#[derive(Debug, Args)]
pub struct PasswordFileArgs {
    /// Write the password to this file (mode 0600) instead of printing it. An existing file is
    /// refused (exit 2, before any request) unless --force.
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// Replace an existing --password-file.
    #[arg(long, requires = "password_file")]
    force: bool,
}

impl PasswordFileArgs {
    fn into_file(self) -> Option<commands::PasswordFile> {
        self.password_file.map(|path| commands::PasswordFile {
            path,
            force: self.force,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its password (shown only this once) and the docker login command.
    #[command(after_help = SCOPE_HELP)]
    Create {
        /// Token name (the docker username): 3-63 of a-z, 0-9, '-'.
        name: String,
        /// A scope: repository:PATTERN:ACTIONS or registry:catalog:ACTIONS. Repeatable.
        #[arg(long = "scope", short = 's', value_name = "SCOPE")]
        scopes: Vec<ScopeArg>,
        /// Expiry, at least one hour ahead: a duration from now (2w, 30d, 12h, 90m; rounded up
        /// to the next whole minute), a date (2027-01-01: that day's 00:00 UTC) or an RFC 3339
        /// time. Default: never.
        #[arg(long, value_name = "WHEN")]
        expires: Option<Expires>,
        /// Create the token disabled.
        #[arg(long)]
        disabled: bool,
        /// Accept the token only from this network (CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32; a
        /// bare address is one address). Repeatable, at most 64. Default: anywhere.
        #[arg(long = "allow-from", value_name = "CIDR", value_parser = parse_network)]
        allow_from: Vec<String>,
        /// Who the token belongs to (a person's email, a service's name; up to 128 characters).
        #[arg(long, value_name = "OWNER")]
        owner: Option<String>,
        /// What the token is for (up to 500 characters).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        password_file: PasswordFileArgs,
        #[command(flatten)]
        oidc: oidc::OidcArgs,
    },
    /// List the registry's tokens (all of them, unless --offset or --limit asks for one page).
    /// Expired tokens are deleted (expired = deleted) unless the server keeps them
    /// (`[tokens] on_expiry = "disable"`, listed as expired).
    List {
        /// Only tokens that expire within this duration from now (7d, 12h, 30m, or seconds).
        #[arg(long, value_name = "DURATION", value_parser = parse_window)]
        expiring: Option<String>,
        /// Only the tokens of this owner (exact match).
        #[arg(long, value_name = "OWNER", conflicts_with = "expiring")]
        owner: Option<String>,
        /// Only the tokens that break the registry's max_token_lifetime (no expiry, or one
        /// further ahead than the limit).
        #[arg(long, conflicts_with = "expiring")]
        violations: bool,
        /// Return one page starting here.
        #[arg(long)]
        offset: Option<usize>,
        /// Return one page of at most this many tokens (1-1000).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one token (never its password).
    Show {
        /// Token name, or id (UUID).
        token: String,
    },
    /// Whether a federated token accepts an OIDC ID token, and if not, why: every failing
    /// check (claim conditions, audience, lifetime, expiry, signature) and the token's claims.
    /// Exit status 0 when it is accepted, 1 when not. Logs nobody in.
    CheckOidc {
        /// Token name, or id (UUID).
        token: String,
        /// The file holding the ID token (a JWT), or - for stdin.
        #[arg(long, value_name = "FILE")]
        id_token: PathBuf,
    },
    /// What the token did: the pushes, pulls and deletes its registry reported, newest first.
    Activity {
        /// Token name, or id (UUID).
        token: String,
        #[command(flatten)]
        filter: activity::Common,
    },
    /// Enable or disable a token, or change its expiry.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Update {
        /// Token name, or id (UUID).
        token: String,
        /// Enable the token.
        #[arg(long, group = "change", conflicts_with = "disable")]
        enable: bool,
        /// Disable the token: it authenticates nothing until enabled again.
        #[arg(long, group = "change")]
        disable: bool,
        /// New expiry, at least one hour ahead: a duration from now (2w, 30d, 12h, 90m; rounded
        /// up to the next whole minute), a date (2027-01-01: that day's 00:00 UTC) or an RFC
        /// 3339 time.
        #[arg(
            long,
            value_name = "WHEN",
            group = "change",
            conflicts_with = "no_expiry"
        )]
        expires: Option<Expires>,
        /// Remove the expiry: the token never expires.
        #[arg(long, group = "change")]
        no_expiry: bool,
        /// Accept the token only from these networks (CIDR; repeatable): replaces the list.
        #[arg(
            long = "allow-from",
            value_name = "CIDR",
            value_parser = parse_network,
            group = "change",
            conflicts_with = "allow_anywhere"
        )]
        allow_from: Vec<String>,
        /// Accept the token from anywhere again.
        #[arg(long, group = "change")]
        allow_anywhere: bool,
        /// New owner (up to 128 characters).
        #[arg(
            long,
            value_name = "OWNER",
            group = "change",
            conflicts_with = "no_owner"
        )]
        owner: Option<String>,
        /// Remove the owner.
        #[arg(long, group = "change")]
        no_owner: bool,
        /// New description (up to 500 characters).
        #[arg(
            long,
            value_name = "TEXT",
            group = "change",
            conflicts_with = "no_description"
        )]
        description: Option<String>,
        /// Remove the description.
        #[arg(long, group = "change")]
        no_description: bool,
    },
    /// Disable a token, or with --owner every token of an owner at once (offboarding): they
    /// authenticate nothing and their refresh tokens end.
    #[command(group(clap::ArgGroup::new("which").required(true)))]
    Disable {
        /// Token name, or id (UUID).
        #[arg(group = "which")]
        token: Option<String>,
        /// Disable every enabled token of this owner (exact match), in one request.
        #[arg(long, value_name = "OWNER", group = "which")]
        owner: Option<String>,
    },
    /// Give a token a new password, keeping its name, id, scopes, status and expiry; print the
    /// new password (shown only this once) and the docker login command.
    Rotate {
        /// Token name, or id (UUID).
        token: String,
        /// How long the previous password keeps working (e.g. 1h, 30m, 7d; at most 7d).
        /// Default: it stops at once. A password from an earlier rotation stops at once either
        /// way.
        #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
        grace: Option<i64>,
        #[command(flatten)]
        password_file: PasswordFileArgs,
    },
    /// Delete tokens: they authenticate nothing from now on. On a terminal it asks first.
    Delete {
        /// Token names, or ids (UUID). All are looked up before any is deleted.
        #[arg(required = true, num_args = 1.., value_name = "TOKEN")]
        tokens: Vec<String>,
        /// Do not ask for confirmation (it is asked only when stdin is a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Manage the token's scopes.
    Scope {
        #[command(subcommand)]
        command: ScopeCommand,
    },
}

const SCOPE_HELP: &str = "\
SCOPE is repository:PATTERN:ACTIONS or registry:catalog:ACTIONS. PATTERN is a repository
path where * matches any run of characters (including /) and ? one character; * alone is
every repository. ACTIONS is a comma-separated list of pull, push, delete (`admin`, the
console's name, means delete); push needs pull. Example: repository:team/*:pull,push";

#[derive(Debug, Subcommand)]
pub enum ScopeCommand {
    /// Add a scope. If the token already has a scope for the same TYPE:PATTERN, the new actions
    /// are merged into it (nothing is taken away; use `scope remove` for that).
    #[command(after_help = SCOPE_HELP)]
    Add {
        /// Token name, or id (UUID).
        token: String,
        /// repository:PATTERN:ACTIONS or registry:catalog:ACTIONS.
        scope: ScopeArg,
    },
    /// Remove the scope for TYPE:PATTERN, or with TYPE:PATTERN:ACTIONS only those actions
    /// (the scope goes when none remain).
    Remove {
        /// Token name, or id (UUID).
        token: String,
        /// TYPE:PATTERN, e.g. repository:team/*, or TYPE:PATTERN:ACTIONS.
        scope: ScopeSelector,
    },
    /// Remove all scopes: the token can still log in but is granted nothing.
    Clear {
        /// Token name, or id (UUID).
        token: String,
    },
    /// List the token's scopes, one per line.
    List {
        /// Token name, or id (UUID).
        token: String,
    },
}

/// The command line, with `serve`'s help showing only the options `serve` uses. The client
/// options are global (they go before or after any subcommand), so clap would list them under
/// `serve` too; `serve` gets hidden ones of the same names instead, which clap then does not
/// propagate. Given to `serve` anyway, they are refused by name ([`client_only_flag`]).
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("serve", |serve| {
        ["server", "admin-token", "output"]
            .into_iter()
            .fold(serve, |serve, long| {
                let id = if long == "admin-token" {
                    "admin_token"
                } else {
                    long
                };
                let mut arg = clap::Arg::new(id).long(long).num_args(1).hide(true);
                if long == "output" {
                    arg = arg.short('o');
                }
                serve.arg(arg)
            })
    })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    if complete::helper(std::env::args_os().collect()) {
        return ExitCode::SUCCESS;
    }
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_failure(e, std::env::args_os()),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return usage_failure(e, std::env::args_os()),
    };
    if let Command::Serve(args) = cli.command {
        if let Some(flag) = client_only_flag(&matches) {
            eprintln!(
                "regauth: {flag} is for the client commands; `serve` takes its settings from \
                 the config file and REGAUTH_* variables"
            );
            return ExitCode::from(2);
        }
        return serve(cli.global.config, args);
    }
    let json = cli.global.output == Output::Json;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(cli, &mut out).and_then(|()| out.flush().map_err(CliError::from)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                let message = match &e {
                    CliError::Api { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                eprintln!("{}", json_error(&message, e.exit_code(), e.http_status()));
            } else {
                eprintln!("regauth: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// An error as `-o json` prints it: one line on stderr, so stdout holds only results.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonError<'a> {
    error: &'a str,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
}

fn json_error(message: &str, exit_code: u8, http_status: Option<u16>) -> String {
    let e = JsonError {
        error: message,
        exit_code,
        http_status,
    };
    serde_json::to_string(&e).unwrap_or_else(|_| String::from("{}"))
}

/// A command line clap refused: clap's own text, or with `-o json` the same as JSON (exit 2).
/// Help and version requests print as usual.
fn usage_failure(e: clap::Error, args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    use clap::error::ErrorKind;
    let shows_text = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shows_text || !wants_json(args) {
        e.exit()
    }
    eprintln!("{}", json_error(&clap_message(&e), 2, None));
    ExitCode::from(2)
}

/// clap's message without its `error: ` prefix, usage and hint lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Whether the raw arguments ask for `-o json` / `--output json` (for errors clap raises before
/// the options are known).
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    args.iter().enumerate().any(|(i, a)| {
        let next_is_json = args.get(i + 1).is_some_and(|n| n == "json");
        ((a == "-o" || a == "--output") && next_is_json)
            || a == "--output=json"
            || a == "-ojson"
            || a == "-o=json"
    })
}

/// A client-only flag given on `serve`'s command line (environment values are fine: they are
/// shared with the client commands run on the same host).
fn client_only_flag(matches: &ArgMatches) -> Option<&'static str> {
    let sub = matches.subcommand_matches("serve");
    [
        ("server", "--server"),
        ("admin_token", "--admin-token"),
        ("output", "--output"),
    ]
    .into_iter()
    .find(|(id, _)| {
        [Some(matches), sub]
            .into_iter()
            .flatten()
            .any(|m| m.value_source(id) == Some(ValueSource::CommandLine))
    })
    .map(|(_, flag)| flag)
}

/// The sled store that `flag` names: a data dir (the store is in its `store/`) or the store
/// directory itself.
fn sled_dir(flag: &str, given: &std::path::Path) -> Result<PathBuf, CliError> {
    let dir = if given.join("store").join("db").exists() {
        given.join("store")
    } else {
        given.to_path_buf()
    };
    if !dir.join("db").exists() {
        return Err(CliError::Usage(format!(
            "{flag} {}: no sled store there (neither {0}/store/db nor {0}/db exists)",
            given.display()
        )));
    }
    Ok(dir)
}

/// `regauth store compact`.
fn store_compact(data_dir: &std::path::Path, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = sled_dir("--data-dir", data_dir)?;
    // The copy becomes the store: its files private, as `serve` makes them.
    crate::server::private_umask();
    let done = crate::store::compact::compact(&dir).map_err(|e| {
        CliError::Other(format!(
            "cannot compact {} (is regauth still running?): {}",
            dir.display(),
            crate::error::Chain(&e)
        ))
    })?;
    let mb = |b: u64| b as f64 / 1e6;
    writeln!(
        out,
        "Compacted {}: {} entries, {:.1} MB before, {:.1} MB now.\nChecked: the copy held the \
         same keys and values as the store, entry by entry, before it took the store's place.",
        dir.display(),
        done.entries,
        mb(done.bytes_before),
        mb(done.bytes_after),
    )?;
    if let Some(ids) = done.reindexed {
        writeln!(
            out,
            "Moved the index of {ids} token ids into buckets (an older regauth cannot find these \
             tokens by id)."
        )?;
    }
    Ok(())
}

/// `regauth store migrate`.
fn store_migrate(
    config: &Config,
    from: &std::path::Path,
    to: &str,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use crate::store::{migrate, PgStore, SledStore};
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(CliError::Usage(
            "--to must be a postgres:// or postgresql:// URL".into(),
        ));
    }
    let dir = sled_dir("--from", from)?;
    // Opening an older store may rewrite parts of it (see `store::sled`): private, as `serve`
    // makes its files.
    crate::server::private_umask();
    let failed = |what: &str, e: &(dyn std::error::Error + 'static)| {
        CliError::Other(format!("{what}: {}", crate::error::Chain(e)))
    };
    let sled = SledStore::open(&dir)
        .map_err(|e| failed("cannot open the sled store (is regauth still running?)", &e))?;
    let where_ = crate::server::redact(to);
    // The store is async: its connections run on this runtime while the copy waits on it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("cannot start the runtime", &e))?;
    let r = runtime.block_on(async {
        let pg = PgStore::open(to, &config.store)
            .await
            .map_err(|e| failed(&format!("cannot open PostgreSQL at {where_}"), &e))?;
        migrate::copy(&sled, &pg)
            .await
            .map_err(|e| failed("migration failed", &e))
    })?;
    writeln!(
        out,
        "Copied {} of {} tokens and {} of {} refresh tokens from {} to {where_} (the rest were \
         there already).\nChecked: PostgreSQL holds all {} tokens and {} refresh tokens of the \
         sled store.",
        r.tokens_copied,
        r.tokens,
        r.grants_copied,
        r.grants,
        dir.display(),
        r.tokens,
        r.grants
    )?;
    Ok(())
}

/// Runs a client command, printing to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        return Ok(completions(shell, out)?);
    }
    if let Command::Openapi = cli.command {
        return Ok(out.write_all(crate::http::openapi::json().as_bytes())?);
    }
    if let Command::AdminToken(AdminTokenCommand::Rotate) = cli.command {
        // Local: the token file lives in the server's data directory.
        let config = Config::load(cli.global.config.as_deref())?;
        let path = crate::server::rotate_admin_token(&config)
            .map_err(|e| CliError::Other(format!("{e:#}")))?;
        writeln!(
            out,
            "A new admin token is in {}; the old one no longer works.",
            path.display()
        )?;
        return Ok(());
    }
    if let Command::Store(StoreCommand::Migrate { from, to }) = &cli.command {
        let config = Config::load(cli.global.config.as_deref())?;
        return store_migrate(&config, from, to, out);
    }
    if let Command::Store(StoreCommand::Compact { data_dir }) = &cli.command {
        return store_compact(data_dir, out);
    }
    let conn = ConnArgs {
        config: cli.global.config,
        server: cli.global.server,
        admin_token: cli.global.admin_token,
    };
    if let Command::RegistryConfig { registry } = &cli.command {
        return registry_config(&conn, registry.clone(), cli.global.output, out);
    }

    let server = conn.server_url()?;
    let (admin_token, timeout) = match cli.command {
        Command::Health => (None, Duration::from_secs(5)),
        _ => (Some(conn.admin_token()?), Duration::from_secs(30)),
    };
    let mut ctx = commands::Ctx {
        client: client::Client::new(server, admin_token, timeout)?,
        output: cli.global.output,
        out,
        registry: None,
    };
    match cli.command {
        Command::Serve(_)
        | Command::Completions { .. }
        | Command::AdminToken(_)
        | Command::Store(_)
        | Command::Openapi => Err(CliError::Usage(
            "serve, completions, admin-token, store and openapi are not client commands".into(),
        )),
        Command::Health => commands::health(&mut ctx),
        Command::Activity(args) => activity::registry(&mut ctx, args),
        Command::Webhook(command) => webhook::run(&mut ctx, command),
        Command::Admin(command) => admins::run(&mut ctx, command),
        Command::RegistryConfig { registry } => {
            ctx.registry = registry;
            commands::registry_config(&mut ctx)
        }
        Command::Scope(ScopeArgs { registry, command }) => {
            ctx.registry = registry.registry;
            run_scope(&mut ctx, command)
        }
        Command::Token(TokenArgs { registry, command }) => {
            ctx.registry = registry.registry;
            run_token(&mut ctx, command)
        }
        Command::Key(command) => key::run(&mut ctx, command),
    }
}

/// `registry-config`: asks the server; when it cannot be reached, or there is no admin token
/// to ask with, builds the same block from the local configuration and the keyring's files
/// (and says so on stderr), so a registry can be set up before or without a running regauth.
fn registry_config(
    conn: &ConnArgs,
    registry: Option<String>,
    output: Output,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let why_offline = match conn.admin_token() {
        Err(e) => e.to_string(),
        Ok(token) => {
            let mut ctx = commands::Ctx {
                client: client::Client::new(
                    conn.server_url()?,
                    Some(token),
                    Duration::from_secs(30),
                )?,
                output,
                out: &mut *out,
                registry: registry.clone(),
            };
            match commands::registry_config(&mut ctx) {
                Err(e @ CliError::Unreachable { .. }) => e.to_string(),
                other => return other,
            }
        }
    };
    let config = Config::load(conn.config.as_deref())?;
    let r = offline::registry(&config, registry.as_deref()).map_err(CliError::Usage)?;
    let from = config
        .source
        .as_ref()
        .map_or_else(|| "the defaults".to_string(), |p| p.display().to_string());
    eprintln!(
        "regauth: not asking the server ({why_offline}): built from {from} and the key files"
    );
    if output == Output::Json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| CliError::Other(e.to_string()))?
        )?;
        return Ok(());
    }
    let p = &r.properties;
    output::registry_auth_yaml(out, &r.id, &p.hostname, &p.token_auth)?;
    if let Some(n) = &p.notifications {
        writeln!(out)?;
        output::registry_notifications_yaml(out, &r.id, n)?;
    }
    Ok(())
}

/// Writes the completion script for `shell`, generated from the same clap definition that
/// parses the command line, so it cannot drift from the commands and flags. Generated into
/// memory first: clap_complete panics when its writer fails (a closed pipe), a write error
/// here is an ordinary error.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "regauth", &mut script);
    if shell == clap_complete::Shell::Bash {
        let text = String::from_utf8_lossy(&script);
        return out.write_all(complete::bash_with_token_names(&text, &command()).as_bytes());
    }
    out.write_all(&script)
}

fn run_token(ctx: &mut commands::Ctx, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Create {
            name,
            scopes,
            expires,
            disabled,
            allow_from,
            owner,
            description,
            password_file,
            oidc,
        } => commands::create(
            ctx,
            &name,
            &scopes,
            expires,
            disabled,
            commands::Policy {
                allow_from,
                owner,
                description,
            },
            match oidc.federation()? {
                Some(f) => commands::Credential::Federation(f),
                None => commands::Credential::Password(password_file.into_file()),
            },
        ),
        TokenCommand::List {
            offset,
            limit,
            expiring,
            owner,
            violations,
        } => commands::list(
            ctx,
            offset,
            limit,
            commands::ListFilter {
                expiring,
                owner,
                violations,
            },
        ),
        TokenCommand::Rotate {
            token,
            grace,
            password_file,
        } => commands::rotate(ctx, &token, grace, password_file.into_file()),
        TokenCommand::Show { token } => commands::show(ctx, &token),
        TokenCommand::CheckOidc { token, id_token } => oidc::check(ctx, &token, &id_token),
        TokenCommand::Activity { token, filter } => activity::token(ctx, &token, filter),
        TokenCommand::Update {
            token,
            enable,
            disable,
            expires,
            no_expiry,
            allow_from,
            allow_anywhere,
            owner,
            no_owner,
            description,
            no_description,
        } => {
            let change = commands::Update {
                enable: (enable || disable).then_some(enable),
                expires: if no_expiry {
                    crate::api::Patch::Null
                } else {
                    expires.map_or(crate::api::Patch::Absent, crate::api::Patch::Value)
                },
                allow_from: if allow_anywhere {
                    Some(Vec::new())
                } else {
                    (!allow_from.is_empty()).then_some(allow_from)
                },
                owner: if no_owner {
                    crate::api::Patch::Null
                } else {
                    owner.map_or(crate::api::Patch::Absent, crate::api::Patch::Value)
                },
                description: if no_description {
                    crate::api::Patch::Null
                } else {
                    description.map_or(crate::api::Patch::Absent, crate::api::Patch::Value)
                },
            };
            commands::update(ctx, &token, change)
        }
        TokenCommand::Disable { token, owner } => match (token, owner) {
            (_, Some(owner)) => commands::disable_owner(ctx, &owner),
            (Some(token), None) => commands::update(
                ctx,
                &token,
                commands::Update {
                    enable: Some(false),
                    ..commands::Update::default()
                },
            ),
            (None, None) => Err(CliError::Usage("name a token or pass --owner".into())),
        },
        TokenCommand::Delete { tokens, yes } => {
            let ask = !yes && std::io::IsTerminal::is_terminal(&std::io::stdin());
            commands::delete(ctx, &tokens, ask.then_some(commands::confirm_on_terminal))
        }
        TokenCommand::Scope { command } => run_scope(ctx, command),
    }
}

fn run_scope(ctx: &mut commands::Ctx, command: ScopeCommand) -> Result<(), CliError> {
    match command {
        ScopeCommand::Add { token, scope } => commands::scope_add(ctx, &token, &scope),
        ScopeCommand::Remove { token, scope } => commands::scope_remove(ctx, &token, &scope),
        ScopeCommand::Clear { token } => commands::scope_clear(ctx, &token),
        ScopeCommand::List { token } => commands::scope_list(ctx, &token),
    }
}

fn serve(config: Option<PathBuf>, args: ServeArgs) -> ExitCode {
    let config = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("regauth: {e}");
            return ExitCode::from(2);
        }
    };
    // Held until `serve` returns, so buffered log lines are written before exit.
    let _log_guard = crate::logging::init_tracing(config.log.format);
    // Before anything is created: the store, keys and tokens are for this user only.
    crate::server::private_umask();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("regauth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::run(config, args.bound_address_file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regauth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("regauth").chain(args.iter().copied()))
    }

    #[test]
    fn openapi_prints_the_document_without_a_server() {
        let mut out = Vec::new();
        // No server, no admin token, no config: the command needs none of them.
        run(
            parse(&["openapi", "--server", "http://127.0.0.1:1"]).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            crate::http::openapi::json()
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn serve_keeps_its_config_flag() {
        for args in [
            &["serve", "--config", "x.toml"][..],
            &["serve", "-c", "x.toml"],
            &["--config", "x.toml", "serve"],
        ] {
            let cli = parse(args).unwrap();
            assert!(matches!(cli.command, Command::Serve(_)));
            assert_eq!(cli.global.config, Some(PathBuf::from("x.toml")));
        }
    }

    #[test]
    fn serve_takes_a_bound_address_file() {
        let cli = parse(&["serve", "--bound-address-file", "run/addr"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.bound_address_file, Some(PathBuf::from("run/addr")));
        assert!(parse(&["token", "list", "--bound-address-file", "x"]).is_err());
    }

    #[test]
    fn serve_refuses_client_flags() {
        let m = Cli::command()
            .try_get_matches_from(["regauth", "serve", "--server", "http://x"])
            .unwrap();
        assert_eq!(client_only_flag(&m), Some("--server"));
        let m = Cli::command()
            .try_get_matches_from(["regauth", "--output", "json", "serve"])
            .unwrap();
        assert_eq!(client_only_flag(&m), Some("--output"));
        let m = Cli::command()
            .try_get_matches_from(["regauth", "serve"])
            .unwrap();
        assert_eq!(client_only_flag(&m), None);
    }

    #[test]
    fn serve_help_lists_only_what_serve_uses() {
        let mut cmd = command();
        cmd.build();
        let help = cmd
            .find_subcommand_mut("serve")
            .unwrap()
            .render_help()
            .to_string();
        for client_only in ["--server", "--admin-token", "--output", "-o,"] {
            assert!(!help.contains(client_only), "{client_only} in:\n{help}");
        }
        assert!(help.contains("--config"), "{help}");
        // Still accepted by clap (and then refused by name), and still global elsewhere.
        let m = command()
            .try_get_matches_from(["regauth", "serve", "--server", "http://x"])
            .unwrap();
        assert_eq!(client_only_flag(&m), Some("--server"));
        let mut cmd = command();
        cmd.build();
        let list = cmd
            .find_subcommand_mut("token")
            .unwrap()
            .find_subcommand_mut("list")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            list.contains("--server") && list.contains("--output"),
            "{list}"
        );
    }

    #[test]
    fn json_output_is_recognised_in_raw_arguments() {
        let yes = |args: &[&str]| wants_json(args.iter().map(std::ffi::OsString::from));
        assert!(yes(&["regauth", "-o", "json", "token", "list"]));
        assert!(yes(&["regauth", "token", "list", "--output", "json"]));
        assert!(yes(&["regauth", "token", "list", "--output=json"]));
        assert!(yes(&["regauth", "-ojson", "token", "list"]));
        assert!(!yes(&["regauth", "token", "list"]));
        assert!(!yes(&["regauth", "token", "create", "json"]));
        assert!(!yes(&["regauth", "-o", "table", "token", "show", "json"]));
    }

    #[test]
    fn json_errors_are_json() {
        let v: serde_json::Value =
            serde_json::from_str(&json_error("no token \"x\"", 1, Some(404))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "no token \"x\"", "exitCode": 1, "httpStatus": 404})
        );
        let v: serde_json::Value = serde_json::from_str(&json_error("bad", 2, None)).unwrap();
        assert_eq!(v, serde_json::json!({"error": "bad", "exitCode": 2}));
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["token", "list", "--output", "json", "--registry", "prod"]).unwrap();
        assert_eq!(cli.global.output, Output::Json);
        let Command::Token(t) = cli.command else {
            panic!("not token")
        };
        assert_eq!(t.registry.registry.as_deref(), Some("prod"));

        let cli = parse(&["-o", "json", "token", "--registry", "prod", "show", "x"]).unwrap();
        assert_eq!(cli.global.output, Output::Json);
    }

    #[test]
    fn create_arguments() {
        let cli = parse(&[
            "token",
            "create",
            "ci",
            "--scope",
            "repository:a/*:pull,push",
            "-s",
            "registry:catalog:pull",
            "--expires",
            "30d",
            "--disabled",
        ])
        .unwrap();
        let Command::Token(TokenArgs {
            command:
                TokenCommand::Create {
                    name,
                    scopes,
                    expires,
                    disabled,
                    ..
                },
            ..
        }) = cli.command
        else {
            panic!("not create")
        };
        assert_eq!(name, "ci");
        assert_eq!(scopes.len(), 2);
        assert_eq!(expires, Some("30d".parse().unwrap()));
        assert!(disabled);
    }

    /// A key id is base64url: one in 64 begins with `-`, and is still an id, before or after
    /// `--force`.
    #[test]
    fn key_ids_may_begin_with_a_hyphen() {
        let id = "-zK3pX9Yw0aG5tQ1rV7uN2mE8sB4cH6dJ0fL3iO9yTw";
        for args in [
            &["key", "check", id][..],
            &["key", "activate", id],
            &["key", "activate", "--force", id],
            &["key", "retire", id, "--force"],
        ] {
            let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let (Command::Key(key::KeyCommand::Check { id: Some(got) })
            | Command::Key(
                key::KeyCommand::Activate { id: got, .. } | key::KeyCommand::Retire { id: got, .. },
            )) = cli.command
            else {
                panic!("{args:?}: not a key command with an id");
            };
            assert_eq!(got, id, "{args:?}");
        }
        match parse(&["key", "activate", "--force", id]).unwrap().command {
            Command::Key(key::KeyCommand::Activate { force, .. }) => assert!(force),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["token", "create", "ci", "--scope", "repo:a:pull"][..],
            &["token", "create", "ci", "--expires", "soon"],
            &["token", "update", "ci"],
            &["token", "update", "ci", "--enable", "--disable"],
            &["token", "update", "ci", "--expires", "1d", "--no-expiry"],
            &["scope", "remove", "ci", "repository"],
            &["--output", "yaml", "token", "list"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn completions_cover_every_subcommand_in_each_shell() {
        use clap_complete::Shell;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            for word in [
                "serve",
                "token",
                "scope",
                "registry-config",
                "health",
                "completions",
                "admin-token",
                "no-expiry",
            ] {
                assert!(script.contains(word), "{shell}: no {word:?} in the script");
            }
        }
        let cli = parse(&["completions", "zsh"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Completions { shell: Shell::Zsh }
        ));
        assert_eq!(parse(&["completions", "tcsh"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn scope_commands_under_token_and_top_level() {
        assert!(parse(&["token", "scope", "add", "ci", "repository:a:pull"]).is_ok());
        assert!(parse(&["scope", "add", "ci", "repository:a:pull"]).is_ok());
        assert!(parse(&["scope", "clear", "ci", "--registry", "x"]).is_ok());
    }
}
