//! The webhooks' durable outbox: [`Delivery`] rows (one event on its way to one webhook)
//! behind the [`Outbox`] trait, in memory, in sled (the token database, tree `outbox`) and
//! in PostgreSQL (`regauth_webhook_deliveries`, migration 6, in `postgres/outbox.rs`). Part
//! of `store`: depends on `domain` only.
//!
//! Contract (checked by `conformance.rs` against every implementation):
//! - [`Outbox::enqueue`] stores each delivery id once and is durable when it returns (sled
//!   flushed, PostgreSQL committed): an event noticed twice (a retried registry envelope, two
//!   replicas noticing one expiry) is sent once.
//! - [`Outbox::claim`] hands out pending deliveries due at `now` whose lease is free, and
//!   leases them until `lease_until` in the same write: two callers (two replicas) never
//!   claim one delivery while its lease runs. A claimer that dies (`kill -9`) leaves a lease
//!   that runs out, and the delivery is due again.
//! - [`Outbox::save`] replaces a delivery (its outcome), [`Outbox::recent`] lists the
//!   newest first (by last attempt, else creation), [`Outbox::prune`] deletes finished
//!   deliveries created before a time.
use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::activity::blocking;
use super::StoreError;
use crate::domain::webhook::{Delivery, DeliveryState};

/// Where webhook deliveries wait and are recorded.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Stores the deliveries whose id is new; returns how many were. Durable when it returns.
    async fn enqueue(&self, deliveries: Vec<Delivery>) -> Result<usize, StoreError>;

    /// At most `limit` pending deliveries due at `now` (`next_at <= now`) whose lease is
    /// free or ran out, oldest due first, each leased until `lease_until`.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Replaces the delivery with `delivery.id`; `NotFound` if it is gone (pruned).
    async fn save(&self, delivery: &Delivery) -> Result<(), StoreError>;

    /// The delivery with `id`.
    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>, StoreError>;

    /// The `limit` most recent deliveries: newest last attempt (or creation) first.
    async fn recent(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;

    /// Pending deliveries (the outbox's depth).
    async fn pending(&self) -> Result<usize, StoreError>;

    /// Deletes delivered and failed deliveries created before `before`; returns how many.
    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, StoreError>;
}

/// Newest activity first: last attempt, else creation; then id.
pub(crate) fn newest_first(a: &Delivery, b: &Delivery) -> std::cmp::Ordering {
    let at = |d: &Delivery| d.last_attempt.unwrap_or(d.created);
    at(b).cmp(&at(a)).then_with(|| b.id.cmp(&a.id))
}

/// Whether `d` may be claimed at `now`.
pub(crate) fn claimable(d: &Delivery, now: DateTime<Utc>) -> bool {
    d.state == DeliveryState::Pending && d.next_at <= now && d.lease_until.is_none_or(|l| l <= now)
}

/// Claims from `all` (every delivery) as [`Outbox::claim`] says; returns the claimed ones.
fn claim_from<'a>(
    all: impl Iterator<Item = &'a mut Delivery>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Vec<Delivery> {
    let mut due: Vec<&mut Delivery> = all.filter(|d| claimable(d, now)).collect();
    due.sort_by(|a, b| a.next_at.cmp(&b.next_at).then_with(|| a.id.cmp(&b.id)));
    due.into_iter()
        .take(limit)
        .map(|d| {
            d.lease_until = Some(lease_until);
            d.clone()
        })
        .collect()
}

/// The outbox in memory (tests, and the in-memory state).
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    rows: Mutex<BTreeMap<Uuid, Delivery>>,
}

impl MemoryOutbox {
    /// [`Outbox::enqueue`], synchronously (the memory store calls it under its own lock).
    pub(crate) fn add(&self, deliveries: &[Delivery]) -> Result<usize, StoreError> {
        let mut rows = self.lock()?;
        let mut added = 0;
        for d in deliveries {
            if let std::collections::btree_map::Entry::Vacant(v) = rows.entry(d.id) {
                v.insert(d.clone());
                added += 1;
            }
        }
        Ok(added)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<Uuid, Delivery>>, StoreError> {
        self.rows
            .lock()
            .map_err(|_| StoreError::message("the outbox lock is poisoned"))
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn enqueue(&self, deliveries: Vec<Delivery>) -> Result<usize, StoreError> {
        self.add(&deliveries)
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut rows = self.lock()?;
        Ok(claim_from(rows.values_mut(), now, lease_until, limit))
    }

    async fn save(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let mut rows = self.lock()?;
        match rows.get_mut(&delivery.id) {
            Some(d) => {
                *d = delivery.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        }
    }

    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        Ok(self.lock()?.get(&id).cloned())
    }

    async fn recent(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.lock()?;
        let mut all: Vec<&Delivery> = rows.values().collect();
        all.sort_by(|a, b| newest_first(a, b));
        Ok(all.into_iter().take(limit).cloned().collect())
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        Ok(self
            .lock()?
            .values()
            .filter(|d| d.state == DeliveryState::Pending)
            .count())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut rows = self.lock()?;
        let n = rows.len();
        rows.retain(|_, d| d.state == DeliveryState::Pending || d.created >= before);
        Ok(n - rows.len())
    }
}

/// The outbox in a sled database (the token database's tree `outbox`: key the delivery
/// id's 16 bytes, value the delivery in postcard). One process owns a sled database, so a
/// claim is a compare-and-swap per row and no lease is ever contended; the lease still
/// makes a delivery in flight at a crash due again once it runs out. Claims and counts walk
/// the tree: it holds the deliveries of the last week (pruned daily), not the history.
#[derive(Clone)]
pub struct SledOutbox {
    db: sled::Db,
    tree: sled::Tree,
}

impl std::fmt::Debug for SledOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledOutbox").finish_non_exhaustive()
    }
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::backend("webhook outbox (sled)", e)
}

fn decode(bytes: &[u8]) -> Result<Delivery, StoreError> {
    postcard::from_bytes(bytes)
        .map_err(|e| StoreError::backend("a stored webhook delivery is corrupt", e))
}

/// The name of the outbox's tree in the sled token database.
pub const OUTBOX_TREE: &str = "outbox";

pub(crate) fn encode(d: &Delivery) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(d).map_err(|e| StoreError::backend("cannot encode a delivery", e))
}

impl SledOutbox {
    /// The outbox in `db` (tree `outbox`).
    pub fn open(db: &sled::Db) -> Result<SledOutbox, StoreError> {
        Ok(SledOutbox {
            tree: db.open_tree(OUTBOX_TREE).map_err(backend)?,
            db: db.clone(),
        })
    }

    /// Moves every delivery of this outbox into `to` (those whose id `to` has already stay
    /// as `to` has them), then empties this one; returns how many there were. For the
    /// outbox that versions before the transactional outbox kept in the activity database.
    pub async fn move_into(&self, to: &dyn Outbox) -> Result<usize, StoreError> {
        let all = self.all()?;
        let n = all.len();
        if n > 0 {
            to.enqueue(all).await?;
            self.tree.clear().map_err(backend)?;
            self.db.flush().map_err(backend)?;
        }
        Ok(n)
    }

    fn all(&self) -> Result<Vec<Delivery>, StoreError> {
        self.tree
            .iter()
            .values()
            .map(|v| decode(&v.map_err(backend)?))
            .collect()
    }

    fn enqueue_now(&self, deliveries: &[Delivery]) -> Result<usize, StoreError> {
        let mut added = 0;
        for d in deliveries {
            let swapped = self
                .tree
                .compare_and_swap(d.id.as_bytes(), None as Option<&[u8]>, Some(encode(d)?))
                .map_err(backend)?;
            if swapped.is_ok() {
                added += 1;
            }
        }
        self.db.flush().map_err(backend)?;
        Ok(added)
    }

    fn claim_now(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut all = self.all()?;
        let mut claimed = Vec::new();
        for d in claim_from(all.iter_mut(), now, lease_until, limit) {
            let key = d.id.as_bytes().to_vec();
            let Some(old) = self.tree.get(&key).map_err(backend)? else {
                continue;
            };
            if !claimable(&decode(&old)?, now) {
                continue;
            }
            if self
                .tree
                .compare_and_swap(&key, Some(old), Some(encode(&d)?))
                .map_err(backend)?
                .is_ok()
            {
                claimed.push(d);
            }
        }
        if !claimed.is_empty() {
            self.db.flush().map_err(backend)?;
        }
        Ok(claimed)
    }

    fn save_now(&self, d: &Delivery) -> Result<(), StoreError> {
        let value = encode(d)?;
        let key = d.id.as_bytes();
        let updated = self
            .tree
            .fetch_and_update(key, |old| old.map(|_| value.clone()))
            .map_err(backend)?;
        if updated.is_none() {
            return Err(StoreError::NotFound);
        }
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn prune_now(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut n = 0;
        for d in self.all()? {
            if d.state != DeliveryState::Pending && d.created < before {
                self.tree.remove(d.id.as_bytes()).map_err(backend)?;
                n += 1;
            }
        }
        if n > 0 {
            self.db.flush().map_err(backend)?;
        }
        Ok(n)
    }
}

#[async_trait]
impl Outbox for SledOutbox {
    async fn enqueue(&self, deliveries: Vec<Delivery>) -> Result<usize, StoreError> {
        let me = self.clone();
        blocking(move || me.enqueue_now(&deliveries)).await
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let me = self.clone();
        blocking(move || me.claim_now(now, lease_until, limit)).await
    }

    async fn save(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let (me, d) = (self.clone(), delivery.clone());
        blocking(move || me.save_now(&d)).await
    }

    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        let me = self.clone();
        blocking(move || {
            me.tree
                .get(id.as_bytes())
                .map_err(backend)?
                .map(|v| decode(&v))
                .transpose()
        })
        .await
    }

    async fn recent(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let me = self.clone();
        blocking(move || {
            let mut all = me.all()?;
            all.sort_by(newest_first);
            all.truncate(limit);
            Ok(all)
        })
        .await
    }

    async fn pending(&self) -> Result<usize, StoreError> {
        let me = self.clone();
        blocking(move || {
            Ok(me
                .all()?
                .iter()
                .filter(|d| d.state == DeliveryState::Pending)
                .count())
        })
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let me = self.clone();
        blocking(move || me.prune_now(before)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::WebhookEvent;
    use crate::testing::t0;

    fn delivery(n: u8) -> Delivery {
        Delivery::new(
            Uuid::from_bytes([n; 16]),
            WebhookEvent::TokenDeleted,
            "http://a",
            format!("{{\"n\":{n}}}"),
            t0(),
        )
    }

    #[tokio::test]
    async fn move_into_moves_every_delivery_once_and_keeps_what_the_target_has() {
        let dir = tempfile::tempdir().unwrap();
        let old = SledOutbox::open(&sled::open(dir.path().join("old")).unwrap()).unwrap();
        let to = MemoryOutbox::default();
        let (a, b) = (delivery(1), delivery(2));
        let mut b_sent = b.clone();
        b_sent.attempted(
            t0(),
            Some(204),
            None,
            &crate::domain::webhook::DeliverySettings::default(),
        );
        old.enqueue(vec![a.clone(), b.clone()]).await.unwrap();
        to.enqueue(vec![b_sent.clone()]).await.unwrap();

        assert_eq!(old.move_into(&to).await.unwrap(), 2);
        assert_eq!(to.delivery(a.id).await.unwrap(), Some(a));
        assert_eq!(
            to.delivery(b.id).await.unwrap(),
            Some(b_sent),
            "kept as the target had it"
        );
        assert_eq!(old.pending().await.unwrap(), 0, "emptied");
        assert_eq!(old.move_into(&to).await.unwrap(), 0, "once");
        assert_eq!(to.pending().await.unwrap(), 1);
    }
}
