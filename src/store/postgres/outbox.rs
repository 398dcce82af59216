//! [`Outbox`] on PostgreSQL: table `regauth_webhook_deliveries` (migration 6 in `schema.rs`).
//! Part of `store::postgres`.
//!
//! A claim is one statement: the due rows are picked `FOR UPDATE SKIP LOCKED` and leased in
//! the same `UPDATE`, so two replicas claiming at once take different rows, and a row leased
//! by one is not due for the other until the lease runs out.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{limit as sql_limit, pg_error, pool_error, PgStore};
use crate::domain::webhook::{Delivery, DeliveryState, WebhookEvent};
use crate::store::outbox::Outbox;
use crate::store::StoreError;

const COLUMNS: &str = "id, event_id, kind, url, body, created, state, attempts, next_at, \
                       lease_until, last_attempt, last_status, last_error";

fn state_of(text: &str) -> Result<DeliveryState, StoreError> {
    match text {
        "pending" => Ok(DeliveryState::Pending),
        "delivered" => Ok(DeliveryState::Delivered),
        "failed" => Ok(DeliveryState::Failed),
        other => Err(StoreError::message(format!(
            "a stored webhook delivery has state {other:?}"
        ))),
    }
}

fn row_delivery(row: &tokio_postgres::Row) -> Result<Delivery, StoreError> {
    let get_err = |e| pg_error("reading a webhook delivery", e);
    let kind: String = row.try_get(2).map_err(get_err)?;
    let state: String = row.try_get(6).map_err(get_err)?;
    let attempts: i32 = row.try_get(7).map_err(get_err)?;
    let status: Option<i32> = row.try_get(11).map_err(get_err)?;
    Ok(Delivery {
        id: row.try_get(0).map_err(get_err)?,
        event_id: row.try_get(1).map_err(get_err)?,
        kind: kind
            .parse::<WebhookEvent>()
            .map_err(|m| StoreError::message(format!("a stored webhook delivery: {m}")))?,
        url: row.try_get(3).map_err(get_err)?,
        body: row.try_get(4).map_err(get_err)?,
        created: row.try_get(5).map_err(get_err)?,
        state: state_of(&state)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_at: row.try_get(8).map_err(get_err)?,
        lease_until: row.try_get(9).map_err(get_err)?,
        last_attempt: row.try_get(10).map_err(get_err)?,
        last_status: status.and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get(12).map_err(get_err)?,
    })
}

/// Inserts each delivery whose id is new (`Outbox::enqueue`, and the token writes' own
/// transactions); returns how many were.
pub(super) async fn insert_deliveries(
    client: &impl tokio_postgres::GenericClient,
    deliveries: &[Delivery],
) -> Result<u64, tokio_postgres::Error> {
    if deliveries.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "INSERT INTO regauth_webhook_deliveries ({COLUMNS}) \
         SELECT u.id, u.event_id, u.kind, u.url, u.body, u.created, 'pending', 0, \
           u.next_at, NULL::timestamptz, NULL::timestamptz, NULL::integer, NULL::text \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
           $6::timestamptz[], $7::timestamptz[]) \
           AS u (id, event_id, kind, url, body, created, next_at) \
         ON CONFLICT (id) DO NOTHING"
    );
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let events: Vec<Uuid> = deliveries.iter().map(|d| d.event_id).collect();
    let kinds: Vec<&str> = deliveries.iter().map(|d| d.kind.as_str()).collect();
    let urls: Vec<&str> = deliveries.iter().map(|d| d.url.as_str()).collect();
    let bodies: Vec<&str> = deliveries.iter().map(|d| d.body.as_str()).collect();
    let created: Vec<DateTime<Utc>> = deliveries.iter().map(|d| d.created).collect();
    let next: Vec<DateTime<Utc>> = deliveries.iter().map(|d| d.next_at).collect();
    client
        .execute(
            &sql,
            &[&ids, &events, &kinds, &urls, &bodies, &created, &next],
        )
        .await
}

#[async_trait]
impl Outbox for PgStore {
    async fn enqueue(&self, deliveries: Vec<Delivery>) -> Result<usize, StoreError> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let pool = self.pool.clone();
        self.on_runtime("queueing webhook deliveries", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n = insert_deliveries(&**client, &deliveries)
                .await
                .map_err(|e| pg_error("queueing webhook deliveries", e))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime("claiming webhook deliveries", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let returning = COLUMNS
                .split(", ")
                .map(|c| format!("d.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE regauth_webhook_deliveries d SET lease_until = $2 \
                 FROM (SELECT id FROM regauth_webhook_deliveries \
                       WHERE state = 'pending' AND next_at <= $1 \
                         AND (lease_until IS NULL OR lease_until <= $1) \
                       ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) c \
                 WHERE d.id = c.id RETURNING {returning}"
            );
            let rows = client
                .query(&sql, &[&now, &lease_until, &sql_limit(limit)])
                .await
                .map_err(|e| pg_error("claiming webhook deliveries", e))?;
            let mut claimed = rows
                .iter()
                .map(row_delivery)
                .collect::<Result<Vec<_>, _>>()?;
            claimed.sort_by(|a, b| a.next_at.cmp(&b.next_at).then_with(|| a.id.cmp(&b.id)));
            Ok(claimed)
        })
        .await
    }

    async fn save(&self, d: &Delivery) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let d = d.clone();
        self.on_runtime("recording a webhook delivery", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n = client
                .execute(
                    "UPDATE regauth_webhook_deliveries SET state = $2, attempts = $3, \
                     next_at = $4, lease_until = $5, last_attempt = $6, last_status = $7, \
                     last_error = $8 WHERE id = $1",
                    &[
                        &d.id,
                        &d.state.as_str(),
                        &i32::try_from(d.attempts).unwrap_or(i32::MAX),
                        &d.next_at,
                        &d.lease_until,
                        &d.last_attempt,
                        &d.last_status.map(i32::from),
                        &d.last_error,
                    ],
                )
                .await
                .map_err(|e| pg_error("recording a webhook delivery", e))?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime("reading a webhook delivery", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let sql = format!("SELECT {COLUMNS} FROM regauth_webhook_deliveries WHERE id = $1");
            let row = client
                .query_opt(&sql, &[&id])
                .await
                .map_err(|e| pg_error("reading a webhook delivery", e))?;
            row.as_ref().map(row_delivery).transpose()
        })
        .await
    }

    async fn recent(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime("reading webhook deliveries", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let sql = format!(
                "SELECT {COLUMNS} FROM regauth_webhook_deliveries \
                 ORDER BY coalesce(last_attempt, created) DESC, id DESC LIMIT $1"
            );
            let rows = client
                .query(&sql, &[&sql_limit(limit)])
                .await
                .map_err(|e| pg_error("reading webhook deliveries", e))?;
            rows.iter().map(row_delivery).collect()
        })
        .await
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime("counting webhook deliveries", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM regauth_webhook_deliveries WHERE state = 'pending'",
                    &[],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_error("counting webhook deliveries", e))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let pool = self.pool.clone();
        self.on_runtime("pruning webhook deliveries", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n = client
                .execute(
                    "DELETE FROM regauth_webhook_deliveries \
                     WHERE state <> 'pending' AND created < $1",
                    &[&before],
                )
                .await
                .map_err(|e| pg_error("pruning webhook deliveries", e))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }
}
