//! In-memory store for tests. Same contract as the sled store, without durability.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Page, RefreshGrant, Store, StoreError};
use crate::domain::{SecretHash, Token};

/// Placeholder until the store helper lands.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn find_by_name(&self, _r: &str, _n: &str) -> Result<Option<Token>, StoreError> {
        todo!()
    }
    fn get(&self, _r: &str, _id: Uuid) -> Result<Option<Token>, StoreError> {
        todo!()
    }
    fn list(&self, _r: &str, _o: usize, _l: usize) -> Result<Page, StoreError> {
        todo!()
    }
    fn create(&self, _t: &Token) -> Result<(), StoreError> {
        todo!()
    }
    fn update(&self, _t: &Token) -> Result<(), StoreError> {
        todo!()
    }
    fn delete(&self, _r: &str, _id: Uuid) -> Result<bool, StoreError> {
        todo!()
    }
    fn delete_expired(&self, _now: DateTime<Utc>) -> Result<Vec<Token>, StoreError> {
        todo!()
    }
    fn add_refresh(&self, _g: &RefreshGrant, _c: usize) -> Result<(), StoreError> {
        todo!()
    }
    fn find_refresh(&self, _h: &SecretHash) -> Result<Option<RefreshGrant>, StoreError> {
        todo!()
    }
    fn count(&self) -> Result<usize, StoreError> {
        todo!()
    }
}
