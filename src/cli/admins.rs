//! `regauth admin ...`: named admins with roles, through `/api/v1/admins` (owner only).
use clap::Subcommand;
use reqwest::Method;

use super::client::CliError;
use super::commands::Ctx;
use super::output::Output;
use crate::api::admins::{AdminCreate, AdminList, AdminOut};
use crate::api::MAX_LIMIT;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a named admin; prints its secret once (use it as --admin-token or in the console).
    Create {
        /// 3 to 63 lowercase letters, digits and '-', beginning with a letter.
        name: String,
        /// viewer (reads tokens), editor (also writes tokens), owner (also manages admins and keys).
        #[arg(long, value_parser = ["viewer", "editor", "owner"])]
        role: String,
        /// Limit the admin to this registry (repeat for several). Default: every registry.
        #[arg(long = "registry", value_name = "ID")]
        registries: Vec<String>,
    },
    /// List the named admins (the bootstrap admin token is not one of them).
    List,
    /// Give an admin a new secret, printed once; the old one stops working at once.
    Rotate { name: String },
    /// Delete an admin; its secret stops working at once.
    Delete { name: String },
}

fn print_secret(ctx: &mut Ctx<'_>, a: &AdminOut, what: &str) -> Result<(), CliError> {
    if ctx.output == Output::Json {
        writeln!(
            ctx.out,
            "{}",
            serde_json::to_string_pretty(a).map_err(|e| CliError::Other(e.to_string()))?
        )?;
        return Ok(());
    }
    let registries = if a.registries.is_empty() {
        "every registry".to_string()
    } else {
        a.registries.join(", ")
    };
    writeln!(
        ctx.out,
        "Admin {} ({}, {registries}) {what}. Its secret, which cannot be shown again:",
        a.name, a.role
    )?;
    writeln!(ctx.out)?;
    writeln!(ctx.out, "    {}", a.secret.as_deref().unwrap_or_default())?;
    writeln!(ctx.out)?;
    writeln!(
        ctx.out,
        "Use it as --admin-token, REGAUTH_ADMIN_TOKEN or in the console."
    )?;
    Ok(())
}

/// Runs one `regauth admin` command.
/// Every named admin, all pages (as `token list` walks the token list): the first page's
/// envelope with every item in it. Stops at the total or at an empty page.
fn all_admins(ctx: &Ctx<'_>) -> Result<AdminList, CliError> {
    let page = |offset: usize| -> Result<AdminList, CliError> {
        ctx.client.get(
            &["admins"],
            &[
                ("offset", offset.to_string()),
                ("limit", MAX_LIMIT.to_string()),
            ],
        )
    };
    let mut list = page(0)?;
    while list.items.len() < list.total {
        let next = page(list.items.len())?;
        if next.items.is_empty() {
            break;
        }
        list.total = next.total;
        list.items.extend(next.items);
    }
    list.count = list.items.len();
    Ok(list)
}

pub fn run(ctx: &mut Ctx<'_>, command: AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::Create {
            name,
            role,
            registries,
        } => {
            let body = AdminCreate {
                name,
                role,
                registries,
            };
            let a: AdminOut = ctx.client.send_json(Method::POST, &["admins"], &body)?;
            print_secret(ctx, &a, "created")
        }
        AdminCommand::Rotate { name } => {
            let a: AdminOut = ctx.client.post(&["admins", &name, "credentials"], &[])?;
            print_secret(ctx, &a, "has a new secret")
        }
        AdminCommand::Delete { name } => {
            ctx.client.delete(&["admins", &name])?;
            if ctx.output == Output::Table {
                writeln!(ctx.out, "Admin {name} deleted; its secret no longer works.")?;
            }
            Ok(())
        }
        AdminCommand::List => {
            let list = all_admins(ctx)?;
            if ctx.output == Output::Json {
                let text = serde_json::to_string_pretty(&list)
                    .map_err(|e| CliError::Other(e.to_string()))?;
                writeln!(ctx.out, "{text}")?;
                return Ok(());
            }
            writeln!(
                ctx.out,
                "{:<24} {:<7} {:<24} {:<21} CREATED BY",
                "NAME", "ROLE", "REGISTRIES", "CREATED"
            )?;
            for a in &list.items {
                let registries = if a.registries.is_empty() {
                    "*".to_string()
                } else {
                    a.registries.join(",")
                };
                let created = a
                    .created_date
                    .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default();
                writeln!(
                    ctx.out,
                    "{:<24} {:<7} {:<24} {:<21} {}",
                    a.name,
                    a.role,
                    registries,
                    created,
                    a.created_by.as_deref().unwrap_or_default()
                )?;
            }
            Ok(())
        }
    }
}
