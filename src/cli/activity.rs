//! `regauth activity` and `regauth token activity NAME`: what the registries reported (pushes,
//! pulls and deletes of manifests), by the admin API's activity endpoints. Depends on `api`
//! and the CLI's client and output.
use std::io::Write;

use clap::Args;

use super::commands::Ctx;
use super::{CliError, Output};
use crate::api::{rfc3339, ActivityPage};

/// `--action`: one of the event actions, checked before any request.
fn parse_action(text: &str) -> Result<String, String> {
    text.parse::<crate::domain::activity::EventAction>()
        .map(|a| a.to_string())
        .map_err(|e| e.rule)
}

/// `--since`: a duration back from now (7d) or an RFC 3339 time.
fn parse_since(text: &str) -> Result<String, String> {
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(text.to_string());
    }
    crate::api::parse_duration(text).map(|_| text.trim().to_string())
}

/// `--repository`: a repository pattern (`team/*`).
fn parse_repository(text: &str) -> Result<String, String> {
    text.parse::<crate::domain::RepoPattern>()
        .map(|p| p.as_str().to_string())
        .map_err(|e| e.rule)
}

/// `--digest`: `sha256:` and hex digits.
fn parse_digest(text: &str) -> Result<String, String> {
    crate::domain::activity::validate_digest("--digest", text)
        .map(|()| text.to_string())
        .map_err(|e| e.rule)
}

/// Filters shared by both commands.
#[derive(Debug, Args)]
pub struct Common {
    /// Only this action: push, pull, delete or mount.
    #[arg(long, value_name = "ACTION", value_parser = parse_action)]
    pub action: Option<String>,
    /// Only events since then: a duration back from now (7d, 12h) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<String>,
    /// At most this many events, newest first (1 to 1000).
    #[arg(long, value_name = "N", default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
}

/// `regauth activity`'s filters.
#[derive(Debug, Args)]
pub struct ActivityArgs {
    /// Registry whose events to show. Default: the server's first registry.
    #[arg(long, env = "REGAUTH_REGISTRY", value_name = "ID")]
    pub registry: Option<String>,
    /// Only repositories matching this pattern (`*` any run, `?` one character): 'team/*'.
    #[arg(long, value_name = "PATTERN", value_parser = parse_repository)]
    pub repository: Option<String>,
    /// Only this tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Only this digest (sha256:…): who pushed, pulled or deleted this image?
    #[arg(long, value_name = "DIGEST", value_parser = parse_digest)]
    pub digest: Option<String>,
    /// Only events of this actor (a token's name).
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

fn common_query(c: &Common) -> Vec<(&'static str, String)> {
    let mut q = vec![("limit", c.limit.to_string())];
    if let Some(a) = &c.action {
        q.push(("action", a.clone()));
    }
    if let Some(s) = &c.since {
        q.push(("since", s.clone()));
    }
    q
}

/// `regauth activity`.
pub fn registry(ctx: &mut Ctx, args: ActivityArgs) -> Result<(), CliError> {
    if args.registry.is_some() {
        ctx.registry = args.registry.clone();
    }
    let reg = ctx.registry()?;
    let mut query = common_query(&args.common);
    for (key, value) in [
        ("repository", args.repository),
        ("tag", args.tag),
        ("digest", args.digest),
        ("actor", args.actor),
    ] {
        if let Some(v) = value {
            query.push((key, v));
        }
    }
    let page: ActivityPage = ctx.client.get(&["registries", &reg, "activity"], &query)?;
    show(ctx, &page, true)
}

/// `regauth token activity NAME`.
pub fn token(ctx: &mut Ctx, name: &str, common: Common) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let t = ctx.find_token(&reg, name)?;
    let id = t.id.to_string();
    let page: ActivityPage = ctx.client.get(
        &["registries", &reg, "tokens", &id, "activity"],
        &common_query(&common),
    )?;
    show(ctx, &page, false)
}

fn show(ctx: &mut Ctx, page: &ActivityPage, with_actor: bool) -> Result<(), CliError> {
    if ctx.output == Output::Json {
        super::output::json(ctx.out, page)?;
        return Ok(());
    }
    table(ctx.out, page, with_actor)?;
    Ok(())
}

/// The events as a table, newest first; a last line says when more matched than shown.
pub fn table(out: &mut dyn Write, page: &ActivityPage, with_actor: bool) -> std::io::Result<()> {
    if page.items.is_empty() {
        return writeln!(out, "no events");
    }
    let mut header = vec!["WHEN", "ACTION", "REPOSITORY", "TAG", "DIGEST"];
    if with_actor {
        header.push("ACTOR");
    }
    header.push("FROM");
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|e| {
            let mut row = vec![
                rfc3339(e.time),
                e.action.clone(),
                e.repository.clone(),
                e.tag.clone().unwrap_or_else(|| "-".into()),
                e.digest.clone().unwrap_or_else(|| "-".into()),
            ];
            if with_actor {
                row.push(if e.actor.is_empty() {
                    "(anonymous)".into()
                } else {
                    e.actor.clone()
                });
            }
            row.push(e.client_addr.clone().unwrap_or_else(|| "-".into()));
            row
        })
        .collect();
    super::output::columns(out, &header, &rows)?;
    if page.total > page.items.len() + page.offset {
        let at_least = if page.total_is_lower_bound {
            "at least "
        } else {
            ""
        };
        writeln!(
            out,
            "({} of {at_least}{} matching events; --limit shows more)",
            page.items.len(),
            page.total
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_event_and_says_when_more_matched() {
        let page: ActivityPage = serde_json::from_value(serde_json::json!({
            "id": "default-activity", "type": "collection", "href": "h",
            "items": [{"id": "1", "time": "2026-06-01T12:00:00Z", "action": "push",
                "repository": "team/app", "tag": "v1", "digest": "sha256:ab",
                "actor": "ci-bot", "clientAddr": "10.0.0.1:5000"},
                {"id": "2", "time": "2026-06-01T11:00:00Z", "action": "pull",
                "repository": "team/app", "actor": ""}],
            "offset": 0, "limit": 2, "count": 2, "total": 5, "_links": {"self": "h"}
        }))
        .unwrap();
        let mut out = Vec::new();
        table(&mut out, &page, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("WHEN"), "{text}");
        assert!(
            lines[1].contains("push")
                && lines[1].contains("ci-bot")
                && lines[1].contains("10.0.0.1:5000"),
            "{text}"
        );
        assert!(lines[2].contains("(anonymous)"), "{text}");
        assert_eq!(lines[3], "(2 of 5 matching events; --limit shows more)");
    }

    #[test]
    fn flags_are_checked_before_any_request() {
        assert!(parse_action("copy").is_err());
        assert_eq!(parse_action("push").unwrap(), "push");
        assert!(parse_since("last week").is_err());
        assert!(parse_since("7d").is_ok());
        assert!(parse_digest("sha256:zz").is_err());
        assert!(parse_repository("Team/*").is_err());
    }
}
