//! `regauth store migrate`: copies a sled store (of a stopped regauth) into PostgreSQL. Part of
//! `store`; depends on the two stores only.
//!
//! Tokens (with their scopes, password hashes, rotation history and last use) and refresh
//! grants are copied as they are, so every password and refresh token keeps working. The copy
//! is idempotent: a token whose id is already in PostgreSQL, or a grant whose hash is, is
//! left alone, so a second run copies nothing and says so. At the end it checks by counts that
//! every token id and grant hash of the source is in PostgreSQL, and fails naming the
//! difference otherwise (a token of the same name but another id already there, say).
use uuid::Uuid;

use super::{PgStore, SledStore, StoreError};
use crate::domain::Token;

/// Tokens copied per transaction.
const BATCH: usize = 1000;

/// What a migration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Tokens in the source.
    pub tokens: usize,
    /// Of those, copied by this run (the rest were there already).
    pub tokens_copied: usize,
    /// Refresh grants in the source.
    pub grants: usize,
    /// Of those, copied by this run.
    pub grants_copied: usize,
}

/// Copies `from` into `to`, then checks that `to` holds every token and grant of `from`.
/// sled is read a batch at a time on a blocking thread while PostgreSQL takes the one before.
pub async fn copy(from: &SledStore, to: &PgStore) -> Result<Report, StoreError> {
    let (batches, mut incoming) = tokio::sync::mpsc::channel::<Vec<Token>>(1);
    let reader = from.clone();
    let reading = tokio::task::spawn_blocking(move || {
        reader.for_each_token_batch(BATCH, |batch| {
            batches
                .blocking_send(batch)
                .map_err(|_| StoreError::message("the copy into PostgreSQL stopped"))
        })
    });
    let mut tokens_copied = 0;
    let mut present = 0;
    while let Some(batch) = incoming.recv().await {
        let (copied, _) = to.import(&batch, &[]).await?;
        tokens_copied += copied;
        let ids: Vec<Uuid> = batch.iter().map(|t| t.id).collect();
        present += to.count_present(&ids, &[]).await?.0;
    }
    let tokens = reading
        .await
        .map_err(|e| StoreError::backend("reading the sled store failed", e))??;
    let grants = from.all_grants()?;
    let mut grants_copied = 0;
    let mut grants_present = 0;
    for chunk in grants.chunks(BATCH) {
        grants_copied += to.import(&[], chunk).await?.1;
        let hashes: Vec<Vec<u8>> = chunk.iter().map(|g| g.hash.0.to_vec()).collect();
        grants_present += to.count_present(&[], &hashes).await?.1;
    }
    if present != tokens || grants_present != grants.len() {
        return Err(StoreError::message(format!(
            "copy incomplete: PostgreSQL holds {present} of the {tokens} tokens and \
             {grants_present} of the {} refresh tokens of the sled store (is a token of the same \
             name but another id already there?)",
            grants.len()
        )));
    }
    Ok(Report {
        tokens,
        tokens_copied,
        grants: grants.len(),
        grants_copied,
    })
}
