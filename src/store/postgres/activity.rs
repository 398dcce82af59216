//! [`ActivityStore`] on PostgreSQL: table `regauth_events` (migration 5 in `schema.rs`).
//! Part of `store::postgres`.
//!
//! The trait is async, as the store is: each call awaits its statements on the caller's
//! runtime, bounded by the call timeout like every other call of this store.
//! A batch is one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING` statement, committed
//! before the call returns.
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::{limit as sql_limit, pg_error, pool_error, PgStore};
use crate::domain::activity::{ActivityQuery, Event, EventAction};
use crate::store::activity::{count_limit, ActivityStore, EventPage};
use crate::store::StoreError;

const COLUMNS: &str = "registry, id, time, action, repository, tag, digest, media_type, size, \
                       actor, client_addr, user_agent, instance";

impl PgStore {
    /// Runs `fut` within the call timeout (a task of its own, so that a caller that gives up
    /// does not cancel a batch half-way through its statement).
    pub(super) async fn on_runtime<T: Send + 'static>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let limit = self.call_timeout;
        match tokio::spawn(async move { tokio::time::timeout(limit, fut).await }).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::unavailable(
                format!("{what}: no answer from PostgreSQL within {limit:?}"),
                None,
            )),
            Err(e) => Err(StoreError::backend(what, e)),
        }
    }
}

impl PgStore {
    /// `registry`'s events secret shared by every replica (`regauth_settings`, key
    /// `events_secret:<registry>`): `candidate` when none is recorded yet, else the recorded
    /// one. Synchronous, for start-up.
    pub fn events_secret(&self, registry: &str, candidate: &str) -> Result<String, StoreError> {
        let key = format!("events_secret:{registry}");
        self.blocking(self.call("recording the events secret", async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO regauth_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &candidate],
                )
                .await
                .map_err(|e| pg_error("recording the events secret", e))?;
            client
                .query_one("SELECT value FROM regauth_settings WHERE key = $1", &[&key])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| pg_error("reading the events secret", e))
        }))
    }
}

/// `*` and `?` of a repository pattern as LIKE's `%` and `_`; `_`, `%` and `\` literal.
fn like(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '_' | '%' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn action(text: &str) -> Result<EventAction, StoreError> {
    text.parse()
        .map_err(|_| StoreError::message(format!("a stored event has action {text:?}")))
}

fn row_event(row: &tokio_postgres::Row) -> Result<Event, StoreError> {
    let get_err = |e| pg_error("reading an event", e);
    let size: Option<i64> = row.try_get(8).map_err(get_err)?;
    Ok(Event {
        registry: row.try_get(0).map_err(get_err)?,
        id: row.try_get(1).map_err(get_err)?,
        time: row.try_get(2).map_err(get_err)?,
        action: action(row.try_get(3).map_err(get_err)?)?,
        repository: row.try_get(4).map_err(get_err)?,
        tag: row.try_get(5).map_err(get_err)?,
        digest: row.try_get(6).map_err(get_err)?,
        media_type: row.try_get(7).map_err(get_err)?,
        size: size.and_then(|s| u64::try_from(s).ok()),
        actor: row.try_get(9).map_err(get_err)?,
        client_addr: row.try_get(10).map_err(get_err)?,
        user_agent: row.try_get(11).map_err(get_err)?,
        instance: row.try_get(12).map_err(get_err)?,
    })
}

/// The WHERE clause of `query` in `registry` and its parameters (from `$1`).
fn filter(registry: &str, query: &ActivityQuery) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(registry.to_string())];
    let mut clause = String::from("registry = $1");
    let mut add = |sql: &str, p: Box<dyn ToSql + Sync + Send>| {
        params.push(p);
        clause.push_str(&format!(" AND {sql}${}", params.len()));
    };
    if let Some(a) = &query.actor {
        add("actor = ", Box::new(a.clone()));
    }
    if let Some(p) = &query.repository {
        if p.is_literal() {
            add("repository = ", Box::new(p.as_str().to_string()));
        } else {
            add("repository LIKE ", Box::new(like(p.as_str())));
        }
    }
    if let Some(t) = &query.tag {
        add("tag = ", Box::new(t.clone()));
    }
    if let Some(d) = &query.digest {
        add("digest = ", Box::new(d.clone()));
    }
    if let Some(a) = query.action {
        add("action = ", Box::new(a.as_str().to_string()));
    }
    if let Some(s) = query.since {
        add("time >= ", Box::new(s));
    }
    (clause, params)
}

#[async_trait]
impl ActivityStore for PgStore {
    async fn record_events(&self, events: Vec<Event>) -> Result<usize, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let pool = self.pool.clone();
        self.on_runtime("storing events", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let sql = format!(
                "INSERT INTO regauth_events ({COLUMNS}) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], \
                   $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], \
                   $11::text[], $12::text[], $13::text[]) \
                 ON CONFLICT (registry, id) DO NOTHING"
            );
            let stmt = client
                .prepare_cached(&sql)
                .await
                .map_err(|e| pg_error("storing events", e))?;
            let col = |f: fn(&Event) -> String| events.iter().map(f).collect::<Vec<String>>();
            let opt = |f: fn(&Event) -> Option<String>| {
                events.iter().map(f).collect::<Vec<Option<String>>>()
            };
            let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.time).collect();
            let sizes: Vec<Option<i64>> = events
                .iter()
                .map(|e| e.size.and_then(|s| i64::try_from(s).ok()))
                .collect();
            let n = client
                .execute(
                    &stmt,
                    &[
                        &col(|e| e.registry.clone()),
                        &col(|e| e.id.clone()),
                        &times,
                        &col(|e| e.action.as_str().to_string()),
                        &col(|e| e.repository.clone()),
                        &opt(|e| e.tag.clone()),
                        &opt(|e| e.digest.clone()),
                        &opt(|e| e.media_type.clone()),
                        &sizes,
                        &col(|e| e.actor.clone()),
                        &opt(|e| e.client_addr.clone()),
                        &opt(|e| e.user_agent.clone()),
                        &opt(|e| e.instance.clone()),
                    ],
                )
                .await
                .map_err(|e| pg_error("storing events", e))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
        .await
    }

    async fn events(
        &self,
        registry: &str,
        query: &ActivityQuery,
        offset: usize,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let pool = self.pool.clone();
        let (clause, mut params) = filter(registry, query);
        self.on_runtime("reading events", async move {
            let client = pool.get().await.map_err(pool_error)?;
            // A bounded count: the newest matches up to the page's end plus COUNT_AHEAD, in
            // the page's order so that it walks the same index as the page and stops there
            // however many events match (unordered, PostgreSQL may collect every match first).
            let stop = count_limit(offset, limit);
            let n = params.len();
            params.push(Box::new(sql_limit(stop)));
            let count_sql = format!(
                "SELECT count(*) FROM (SELECT 1 FROM regauth_events WHERE {clause} \
                 ORDER BY time DESC, id DESC LIMIT ${}) m",
                n + 1
            );
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let matches: i64 = client
                .query_one(&count_sql, &refs)
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_error("counting events", e))?;
            params.truncate(n);
            params.push(Box::new(sql_limit(limit)));
            params.push(Box::new(sql_limit(offset)));
            let sql = format!(
                "SELECT {COLUMNS} FROM regauth_events WHERE {clause} \
                 ORDER BY time DESC, id DESC LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2
            );
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client
                .query(&sql, &refs)
                .await
                .map_err(|e| pg_error("reading events", e))?;
            let items = rows.iter().map(row_event).collect::<Result<_, _>>()?;
            Ok(EventPage::counted(
                items,
                usize::try_from(matches).unwrap_or(0),
                stop,
            ))
        })
        .await
    }

    async fn prune_events(
        &self,
        registry: &str,
        before: DateTime<Utc>,
        keep: usize,
    ) -> Result<usize, StoreError> {
        let pool = self.pool.clone();
        let registry = registry.to_string();
        self.on_runtime("pruning events", async move {
            let client = pool.get().await.map_err(pool_error)?;
            let old = client
                .execute(
                    "DELETE FROM regauth_events WHERE registry = $1 AND time < $2",
                    &[&registry, &before],
                )
                .await
                .map_err(|e| pg_error("pruning old events", e))?;
            // Everything older than the `keep`-th newest.
            let excess = client
                .execute(
                    "DELETE FROM regauth_events e USING (
                        SELECT time, id FROM regauth_events WHERE registry = $1
                        ORDER BY time DESC, id DESC OFFSET $2 LIMIT 1) k
                     WHERE e.registry = $1 AND (e.time, e.id) <= (k.time, k.id)",
                    &[&registry, &sql_limit(keep)],
                )
                .await
                .map_err(|e| pg_error("pruning excess events", e))?;
            Ok(usize::try_from(old + excess).unwrap_or(usize::MAX))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::activity::conformance::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_keeps_the_activity_contract() {
        let (a, _) = super::super::tests::open().await;
        stores_each_id_once(&a).await;
        let (b, _) = super::super::tests::open().await;
        answers_newest_first_with_filters(&b).await;
        let (c, _) = super::super::tests::open().await;
        prunes_oldest_first(&c).await;
        let (d, _) = super::super::tests::open().await;
        counts_a_bounded_number_of_matches(&d).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_the_first_events_secret() {
        let (a, url) = super::super::tests::open().await;
        let b = super::PgStore::open(&url, &super::super::tests::options())
            .await
            .unwrap();
        // `events_secret` is synchronous (start-up runs it on a blocking thread).
        let secrets = tokio::task::spawn_blocking(move || {
            (
                a.events_secret("default", "rge_a").unwrap(),
                b.events_secret("default", "rge_b").unwrap(),
                b.events_secret("other", "rge_b").unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(secrets, ("rge_a".into(), "rge_a".into(), "rge_b".into()));
    }

    #[test]
    fn patterns_become_like() {
        assert_eq!(super::like("team/*"), "team/%");
        assert_eq!(super::like("a_b?"), "a\\_b_");
    }
}
