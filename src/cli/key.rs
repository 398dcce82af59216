//! `regauth key list|add|check|activate|retire`: the signing-key rotation commands, clients
//! of `/api/v1/keys` like every other client command (docs/key-rotation.md).
use clap::Subcommand;
use reqwest::Method;

use super::client::CliError;
use super::commands::Ctx;
use super::output::{self, Output};
use crate::api::{Key, KeyCheck, KeyCreate, KeyList};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the signing keys: id, algorithm, state, certificate expiry (days left), dates.
    List,
    /// Add a key in state `next`: published in the bundle and JWK Set, not signing yet.
    /// Restart the registries one by one afterwards so they read the bundle.
    Add {
        /// ES256 (the default).
        #[arg(long, value_name = "ALG", default_value = "ES256")]
        algorithm: String,
    },
    /// Ask every registry with a `url` whether it trusts the key (default: the newest key).
    /// Exit status 0 only when every one does.
    Check {
        /// The key's id (RFC 7638 thumbprint).
        #[arg(allow_hyphen_values = true)]
        id: Option<String>,
    },
    /// Make the key the signing key. Refused while a registry with a `url` does not trust it.
    Activate {
        /// The key's id (RFC 7638 thumbprint).
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Activate without asking the registries (e.g. after a leak).
        #[arg(long)]
        force: bool,
    },
    /// Remove a key from the published trust, once the tokens it signed have expired
    /// (deactivation + token lifetime + 60 s). Then restart the registries.
    Retire {
        /// The key's id (RFC 7638 thumbprint).
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Retire at once, before its tokens expire (after a leak): they fail from the next
        /// registry restart on.
        #[arg(long)]
        force: bool,
    },
}

/// Runs one key command.
pub fn run(ctx: &mut Ctx, command: KeyCommand) -> Result<(), CliError> {
    match command {
        KeyCommand::List => {
            let list: KeyList = ctx.client.get(&["keys"], &[])?;
            match ctx.output {
                Output::Json => output::json(ctx.out, &list)?,
                Output::Table => key_table(ctx.out, &list.items)?,
            }
        }
        KeyCommand::Add { algorithm } => {
            let body = KeyCreate {
                algorithm: Some(algorithm),
            };
            let key: Key = ctx.client.send_json(Method::POST, &["keys"], &body)?;
            show(ctx, &key)?;
            if ctx.output == Output::Table {
                writeln!(
                    ctx.out,
                    "Next: restart the registries one by one so they read the new bundle, then \
                     `regauth key check {}`.",
                    key.id
                )?;
            }
        }
        KeyCommand::Check { id } => {
            let id = match id {
                Some(id) => id,
                None => {
                    let list: KeyList = ctx.client.get(&["keys"], &[])?;
                    list.items
                        .last()
                        .map(|k| k.id.clone())
                        .ok_or_else(|| CliError::Other("the server has no keys".into()))?
                }
            };
            let check: KeyCheck =
                ctx.client
                    .call_json(Method::POST, &["keys", &id, "check"], &[])?;
            match ctx.output {
                Output::Json => output::json(ctx.out, &check)?,
                Output::Table => {
                    if check.registries.is_empty() {
                        writeln!(
                            ctx.out,
                            "no registry has a `url` in regauth's config: nothing to check"
                        )?;
                    }
                    for p in &check.registries {
                        let verdict = if p.trusted {
                            "trusts"
                        } else {
                            "does NOT trust"
                        };
                        writeln!(
                            ctx.out,
                            "{}\t{}\t{verdict} key {}\t{}",
                            p.registry, p.url, check.id, p.detail
                        )?;
                    }
                }
            }
            if !check.trusted {
                return Err(CliError::Api {
                    status: 409,
                    message: format!("key {} is not trusted by every registry yet", check.id),
                });
            }
        }
        KeyCommand::Activate { id, force } => {
            let query = if force {
                vec![("force", "true".to_string())]
            } else {
                Vec::new()
            };
            let key: Key =
                ctx.client
                    .call_json(Method::POST, &["keys", &id, "activate"], &query)?;
            show(ctx, &key)?;
        }
        KeyCommand::Retire { id, force } => {
            let query = if force {
                vec![("force", "true".to_string())]
            } else {
                Vec::new()
            };
            ctx.client.call(Method::DELETE, &["keys", &id], &query)?;
            if ctx.output == Output::Table {
                writeln!(
                    ctx.out,
                    "key {id} retired; restart the registries so they stop trusting it"
                )?;
            }
        }
    }
    Ok(())
}

fn show(ctx: &mut Ctx, key: &Key) -> Result<(), CliError> {
    match ctx.output {
        Output::Json => output::json(ctx.out, key)?,
        Output::Table => key_table(ctx.out, std::slice::from_ref(key))?,
    }
    Ok(())
}

/// The keys as a table, one per line.
pub fn key_table(out: &mut dyn std::io::Write, keys: &[Key]) -> std::io::Result<()> {
    writeln!(
        out,
        "ID\tALG\tSTATE\tNOT AFTER\tDAYS LEFT\tCREATED\tACTIVATED\tDEACTIVATED\tRETIRABLE"
    )?;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for k in keys {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            k.id,
            k.algorithm,
            k.state,
            k.not_after,
            k.days_left,
            k.created,
            or_dash(&k.activated),
            or_dash(&k.deactivated),
            or_dash(&k.retirable_at),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_days_left_and_dashes_for_missing_dates() {
        let key = Key {
            id: "abc".into(),
            algorithm: "ES256".into(),
            state: "next".into(),
            libtrust_kid: "K".into(),
            not_after: "2027-01-01T00:00:00Z".into(),
            days_left: 29,
            created: "2026-01-01T00:00:00Z".into(),
            activated: None,
            deactivated: None,
            retirable_at: Some("2026-01-01T00:00:00Z".into()),
        };
        let mut out = Vec::new();
        key_table(&mut out, &[key]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "abc\tES256\tnext\t2027-01-01T00:00:00Z\t29\t2026-01-01T00:00:00Z\t-\t-\t2026-01-01T00:00:00Z"
        );
        assert!(text.starts_with("ID\tALG\tSTATE\tNOT AFTER\tDAYS LEFT"));
    }
}
