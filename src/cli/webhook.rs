//! `regauth webhook deliveries` and `regauth webhook redeliver ID`: the webhooks' delivery
//! log, by the admin API's webhook endpoints. Depends on `api` and the CLI's client and
//! output.
use std::io::Write;

use clap::Subcommand;

use super::commands::Ctx;
use super::{CliError, Output};
use crate::api::{rfc3339, WebhookDeliveries, WebhookDelivery};

/// `regauth webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Recent webhook deliveries, newest attempt first: event, type, URL, attempts, the last
    /// status code or error, when, and the next retry. Needs the owner role.
    Deliveries {
        /// At most this many (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 100,
            value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Send a delivery again now (the same body and event id), whatever its state.
    Redeliver {
        /// The delivery's id (the first column of `regauth webhook deliveries`).
        id: uuid::Uuid,
    },
}

/// Runs a `regauth webhook` command.
pub fn run(ctx: &mut Ctx, command: WebhookCommand) -> Result<(), CliError> {
    match command {
        WebhookCommand::Deliveries { limit } => {
            let list: WebhookDeliveries = ctx
                .client
                .get(&["webhooks", "deliveries"], &[("limit", limit.to_string())])?;
            if ctx.output == Output::Json {
                return Ok(super::output::json(ctx.out, &list)?);
            }
            Ok(table(ctx.out, &list.items)?)
        }
        WebhookCommand::Redeliver { id } => {
            let d: WebhookDelivery = ctx.client.post(
                &["webhooks", "deliveries", &id.to_string(), "redeliver"],
                &[],
            )?;
            if ctx.output == Output::Json {
                return Ok(super::output::json(ctx.out, &d)?);
            }
            Ok(writeln!(
                ctx.out,
                "delivery {} ({} {} to {}) is due now; `regauth webhook deliveries` shows the outcome",
                d.id, d.kind, d.event_id, d.url
            )?)
        }
    }
}

/// The deliveries as a table.
pub fn table(out: &mut dyn Write, items: &[WebhookDelivery]) -> std::io::Result<()> {
    if items.is_empty() {
        return writeln!(out, "no webhook deliveries");
    }
    let header = [
        "DELIVERY",
        "EVENT",
        "TYPE",
        "URL",
        "STATE",
        "ATTEMPT",
        "RESULT",
        "WHEN",
        "NEXT RETRY",
    ];
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.event_id.to_string(),
                d.kind.clone(),
                d.url.clone(),
                d.state.clone(),
                d.attempts.to_string(),
                match (&d.status_code, &d.error) {
                    (_, Some(e)) => e.clone(),
                    (Some(s), None) => s.to_string(),
                    (None, None) => dash(),
                },
                d.last_attempt.map_or_else(dash, rfc3339),
                d.next_retry.map_or_else(dash, rfc3339),
            ]
        })
        .collect();
    super::output::columns(out, &header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_the_last_attempt_and_the_next_retry() {
        let items: Vec<WebhookDelivery> = serde_json::from_value(serde_json::json!([
            {"id": "00000000-0000-0000-0000-000000000001", "eventId": "00000000-0000-0000-0000-000000000002",
             "type": "token.created", "url": "https://hooks.example/a", "state": "pending", "attempts": 2,
             "created": "2026-06-01T12:00:00Z", "lastAttempt": "2026-06-01T12:00:10Z",
             "error": "cannot connect", "nextRetry": "2026-06-01T12:00:30Z"},
            {"id": "00000000-0000-0000-0000-000000000003", "eventId": "00000000-0000-0000-0000-000000000002",
             "type": "token.created", "url": "https://hooks.example/b", "state": "delivered", "attempts": 1,
             "created": "2026-06-01T12:00:00Z", "lastAttempt": "2026-06-01T12:00:01Z", "statusCode": 204}
        ]))
        .unwrap();
        let mut out = Vec::new();
        table(&mut out, &items).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("DELIVERY") && lines[0].ends_with("NEXT RETRY"),
            "{text}"
        );
        assert!(
            lines[1].contains("cannot connect") && lines[1].contains("2026-06-01T12:00:30Z"),
            "{text}"
        );
        assert!(
            lines[2].contains(" 204 ") && lines[2].trim_end().ends_with('-'),
            "{text}"
        );
    }
}
