//! Test tools shared by the unit tests (`cfg(test)`) and the test binaries in `tests/` (the
//! `test-support` feature, which they enable through the crate's dev-dependency on itself;
//! never part of a release build): one token builder, one fault-injecting store and one
//! in-memory log sink.
//!
//! Why a feature and not `cfg(test)` alone: `tests/` links the library as built for them,
//! without `cfg(test)`; a feature is the one switch both see. Like tests, this module may
//! panic on a broken fixture (a test's own mistake).
#![allow(clippy::expect_used, clippy::panic)]
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::webhook::Delivery;
use crate::domain::{Admin, SecretHash, Status, Token};
use crate::store::outbox::Outbox;
use crate::store::{
    MemoryStore, Page, RefreshGrant, Report, Store, StoreError, TokenUse, TokenWrite,
};

/// What a test's subscriber writes, kept in memory: give `move || captured.clone()` as the
/// writer (to `with_writer`, or to `logging::layer`) and read the lines back with
/// [`Captured::text`].
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far. Panics if it is not UTF-8.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes).expect("the log is UTF-8")
    }
}

/// Opens a sled database again with `open`, retrying for up to 10 s while the one dropped
/// just before still holds its file lock: sled releases it when its background flusher lets go
/// of the database, a moment after the last handle is dropped.
pub fn reopen_sled<T>(mut open: impl FnMut() -> Result<T, StoreError>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open() {
            Ok(opened) => return opened,
            Err(e) if std::time::Instant::now() < deadline && still_locked(&e) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopening a sled database: {e}"),
        }
    }
}

/// Whether `e` says that another handle holds the database's file lock.
fn still_locked(e: &StoreError) -> bool {
    format!("{e:?}").contains(crate::store::sled::HELD)
}

/// A fixed "now" (2023-11-14T22:13:20Z) so expiry is tested without a clock.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

/// An enabled token of `registry` named `name`: no scopes, no expiry, no owner, created and
/// modified at [`t0`] by `admin`, secret hash `[7; 32]`. Change fields with struct update
/// syntax (`Token { expiry: Some(at), ..token("default", "ci") }`).
/// Panics if `name` is not a valid token name.
pub fn token(registry: &str, name: &str) -> Token {
    Token {
        id: Uuid::new_v4(),
        registry: registry.to_string(),
        name: name.parse().expect("a valid token name"),
        status: Status::Enabled,
        expiry: None,
        scopes: vec![],
        secret_hash: SecretHash([7; 32]),
        created: t0(),
        created_by: "admin".to_string(),
        modified: t0(),
        modified_by: "admin".to_string(),
        previous: None,
        last_used: None,
        networks: vec![],
        owner: None,
        description: None,
        federation: None,
    }
}

/// The methods of [`Store`], to hook and count in a [`FaultStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    FindByName,
    Get,
    List,
    ListMatching,
    ListByOwner,
    Create,
    Update,
    Delete,
    DeleteExpired,
    AddRefresh,
    FindRefresh,
    Count,
    RefreshCount,
    RecordUses,
    Expiring,
    Ready,
    Admins,
    PutAdmin,
    DeleteAdmin,
}

impl Method {
    /// Whether the method writes tokens or grants.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Method::Create
                | Method::Update
                | Method::Delete
                | Method::DeleteExpired
                | Method::AddRefresh
                | Method::RecordUses
        )
    }
}

/// What a hook makes of one call.
#[derive(Debug)]
pub enum Fault {
    /// Forward the call to the inner store.
    Pass,
    /// Fail the call with this error, without forwarding it.
    Fail(StoreError),
    /// `find_by_name` only: answer this instead of the inner store (a stale read, as a
    /// lookup racing a disable would see).
    Answer(Option<Arc<Token>>),
    /// `update` only: delete the token first (a DELETE that committed between the caller's
    /// read and its write), then forward the update.
    DeleteFirst,
}

/// A hook: given how many calls of its method came before this one, what to do with it.
pub type Hook = Box<dyn FnMut(usize) -> Fault + Send>;

/// A store that forwards every call to an inner store, counts calls per method, and lets a
/// test fail or bend any method with a hook ([`FaultStore::on`]).
pub struct FaultStore {
    inner: Arc<dyn Store>,
    hooks: Mutex<HashMap<Method, Hook>>,
    calls: Mutex<HashMap<Method, usize>>,
}

impl Default for FaultStore {
    fn default() -> Self {
        FaultStore::new(Arc::new(MemoryStore::new()))
    }
}

impl FaultStore {
    /// Forwards to `inner` until hooks say otherwise.
    pub fn new(inner: Arc<dyn Store>) -> FaultStore {
        FaultStore {
            inner,
            hooks: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    /// The store the calls go to (to set up or check state behind the hooks' back).
    pub fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    /// Runs `hook` on every later call of `method` (replacing its hook, if any).
    pub fn on(&self, method: Method, hook: impl FnMut(usize) -> Fault + Send + 'static) {
        self.lock_hooks().insert(method, Box::new(hook));
    }

    /// Applies `fault` to the next call of `method` only.
    pub fn once(&self, method: Method, fault: Fault) {
        let mut fault = Some(fault);
        self.on(method, move |_| fault.take().unwrap_or(Fault::Pass));
    }

    /// Removes the hook of `method`: its calls are forwarded again.
    pub fn clear(&self, method: Method) {
        self.lock_hooks().remove(&method);
    }

    /// How many calls of `method` were made (hooked or not).
    pub fn calls(&self, method: Method) -> usize {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls.get(&method).copied().unwrap_or(0)
    }

    /// How many write calls were made ([`Method::writes`]).
    pub fn writes(&self) -> usize {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        calls
            .iter()
            .filter(|(m, _)| m.writes())
            .map(|(_, n)| n)
            .sum()
    }

    fn lock_hooks(&self) -> std::sync::MutexGuard<'_, HashMap<Method, Hook>> {
        self.hooks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the call and asks its hook.
    fn fault(&self, method: Method) -> Fault {
        let before = {
            let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
            let n = calls.entry(method).or_insert(0);
            *n += 1;
            *n - 1
        };
        match self.lock_hooks().get_mut(&method) {
            Some(hook) => hook(before),
            None => Fault::Pass,
        }
    }

    /// `Ok(())`: forward; `Err`: the hook's error, or a fault that does not fit `method`.
    fn check(&self, method: Method) -> Result<(), StoreError> {
        match self.fault(method) {
            Fault::Pass => Ok(()),
            Fault::Fail(e) => Err(e),
            other => Err(misfit(method, &other)),
        }
    }
}

fn misfit(method: Method, fault: &Fault) -> StoreError {
    StoreError::message(format!("test fault {fault:?} does not apply to {method:?}"))
}

#[async_trait::async_trait]
impl Store for FaultStore {
    async fn find_by_name(
        &self,
        registry: &str,
        name: &str,
    ) -> Result<Option<Arc<Token>>, StoreError> {
        match self.fault(Method::FindByName) {
            Fault::Pass => self.inner.find_by_name(registry, name).await,
            Fault::Fail(e) => Err(e),
            Fault::Answer(t) => Ok(t),
            other => Err(misfit(Method::FindByName, &other)),
        }
    }

    async fn get(&self, registry: &str, id: Uuid) -> Result<Option<Token>, StoreError> {
        self.check(Method::Get)?;
        self.inner.get(registry, id).await
    }

    async fn list(&self, registry: &str, offset: usize, limit: usize) -> Result<Page, StoreError> {
        self.check(Method::List)?;
        self.inner.list(registry, offset, limit).await
    }

    async fn list_matching(
        &self,
        registry: &str,
        needle: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.check(Method::ListMatching)?;
        self.inner
            .list_matching(registry, needle, offset, limit)
            .await
    }

    async fn list_by_owner(
        &self,
        registry: &str,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.check(Method::ListByOwner)?;
        self.inner
            .list_by_owner(registry, owner, offset, limit)
            .await
    }

    async fn write(&self, write: TokenWrite<'_>, outbox: &[Delivery]) -> Result<bool, StoreError> {
        match write {
            TokenWrite::Create(_) => self.check(Method::Create)?,
            TokenWrite::Update(token) => match self.fault(Method::Update) {
                Fault::Pass => {}
                Fault::Fail(e) => return Err(e),
                Fault::DeleteFirst => {
                    if !self.inner.delete(&token.registry, token.id).await? {
                        return Err(StoreError::message(
                            "test fault DeleteFirst: the token to delete does not exist",
                        ));
                    }
                }
                other => return Err(misfit(Method::Update, &other)),
            },
            TokenWrite::Delete { .. } => self.check(Method::Delete)?,
        }
        self.inner.write(write, outbox).await
    }

    async fn delete_expired_reporting(
        &self,
        now: DateTime<Utc>,
        report: &Report<'_>,
    ) -> Result<Vec<Token>, StoreError> {
        self.check(Method::DeleteExpired)?;
        self.inner.delete_expired_reporting(now, report).await
    }

    fn outbox(self: Arc<Self>) -> Arc<dyn Outbox> {
        self.inner.clone().outbox()
    }

    async fn add_refresh(
        &self,
        grant: &RefreshGrant,
        cap_per_token: usize,
    ) -> Result<(), StoreError> {
        self.check(Method::AddRefresh)?;
        self.inner.add_refresh(grant, cap_per_token).await
    }

    async fn find_refresh(&self, hash: &SecretHash) -> Result<Option<RefreshGrant>, StoreError> {
        self.check(Method::FindRefresh)?;
        self.inner.find_refresh(hash).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.check(Method::Count)?;
        self.inner.count().await
    }

    async fn refresh_count(&self) -> Result<usize, StoreError> {
        self.check(Method::RefreshCount)?;
        self.inner.refresh_count().await
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<usize, StoreError> {
        self.check(Method::RecordUses)?;
        self.inner.record_uses(uses).await
    }

    async fn expiring(&self, until: DateTime<Utc>) -> Result<Vec<Token>, StoreError> {
        self.check(Method::Expiring)?;
        self.inner.expiring(until).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.check(Method::Ready)?;
        self.inner.ready().await
    }

    async fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        self.check(Method::Admins)?;
        self.inner.admins().await
    }

    fn admins_generation(&self) -> Option<u64> {
        self.inner.admins_generation()
    }

    async fn put_admin(&self, admin: &Admin, replace: bool) -> Result<(), StoreError> {
        self.check(Method::PutAdmin)?;
        self.inner.put_admin(admin, replace).await
    }

    async fn delete_admin(&self, name: &str) -> Result<bool, StoreError> {
        self.check(Method::DeleteAdmin)?;
        self.inner.delete_admin(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hooks fail, bend and count calls; without a hook a call is forwarded.
    #[tokio::test]
    async fn hooks_fail_bend_and_count_calls() {
        let s = FaultStore::default();
        let t = token("default", "ci-bot");
        s.create(&t).await.unwrap();
        s.on(Method::Update, |n| {
            if n >= 1 {
                Fault::Fail(StoreError::message("disk on fire"))
            } else {
                Fault::Pass
            }
        });
        s.update(&t).await.unwrap();
        assert!(s.update(&t).await.is_err(), "the second update fails");
        s.clear(Method::Update);
        s.update(&t).await.unwrap();
        assert_eq!((s.calls(Method::Update), s.writes()), (3, 4));

        s.once(Method::FindByName, Fault::Answer(None));
        assert_eq!(s.find_by_name("default", "ci-bot").await.unwrap(), None);
        assert!(s.find_by_name("default", "ci-bot").await.unwrap().is_some());

        s.once(Method::Update, Fault::DeleteFirst);
        assert!(matches!(s.update(&t).await, Err(StoreError::NotFound)));
        assert_eq!(s.inner().get("default", t.id).await.unwrap(), None);
    }
}
