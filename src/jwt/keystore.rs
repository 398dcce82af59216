//! The keyring on disk and in use: the state file, each key's private key and certificate,
//! the published trust (the certificate bundle and the JWK Set the registries read), and the
//! issuer that signs with the active key, swapped on activation.
//!
//! Where things live (docs/key-rotation.md has the threat model):
//! - `<data_dir>/keys.json`: the keyring's state (ids, states, dates); no key material.
//! - `<dir of [jwt] key>/keys/<id>.key` (0600) and `<id>.crt` (0644): the keys added with
//!   `regauth key add`. The installation's first key stays in `[jwt] key` and
//!   `[jwt] certificate`, and becomes the active key of a new ring with nothing to do.
//! - `<dir of [jwt] certificate>/bundle.crt` and `jwks.json` (0644): every published key's
//!   certificate and public key, rewritten on every change, for the registries'
//!   `rootcertbundle` and `jwks`.
//!
//! With PostgreSQL (`[store] url`) the state is not in `keys.json` but in the database
//! ([`SharedState`]), with every published key's certificate, so that all replicas share one
//! ring: a change on one replica notifies the others, which re-read it ([`KeyStore::refresh`]),
//! write the certificates they lack to the keys directory, rewrite their bundle and JWK Set
//! and swap their signing key. Private keys stay files the operator copies to every replica.
use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use tracing::{error, info, warn};

use super::codec::{certificate_not_after, certificates_from_pem, pem_encode, CERT_LABEL};
use super::keyring::{KeyRecord, Keyring, KeyringError};
use super::provision::{load_or_create, self_signed_certificate_for_days};
use super::{CurrentIssuer, Issuer, KeyError, SigningKey};

/// Default lifetime of a certificate regauth generates for a new key (`[jwt]
/// certificate_days`): a year, so that an unattended certificate is noticed (the expiry
/// warning starts 30 days before) long before it is forgotten.
pub const DEFAULT_CERTIFICATE_DAYS: u32 = 365;

/// Days before a certificate's not-after from which a warning is logged once a day.
pub const WARN_DAYS: i64 = 30;

/// A keystore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// A rule of the keyring (409 on the admin API, 404 for an unknown id).
    #[error(transparent)]
    Rule(#[from] KeyringError),
    /// A request regauth cannot serve (400): e.g. an algorithm it cannot generate.
    #[error("{0}")]
    Unsupported(String),
    /// Another replica changed the shared keyring meanwhile (409): this one has re-read it.
    #[error("another replica changed the signing keys at the same time; look again and retry")]
    Concurrent,
    /// A key, certificate or state file is unusable or could not be written.
    #[error("{0}")]
    Key(#[from] KeyError),
}

/// Where the keyring's files are, and how keys are made.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    /// `[jwt] key`: the installation's first key.
    pub legacy_key: PathBuf,
    /// `[jwt] certificate`: its certificate (chain).
    pub legacy_certificate: PathBuf,
    /// The keyring's state file.
    pub state_file: PathBuf,
    /// Directory of the keys added later.
    pub keys_dir: PathBuf,
    /// The certificate bundle (`rootcertbundle`).
    pub bundle: PathBuf,
    /// The JWK Set (3.x's `jwks`).
    pub jwks: PathBuf,
    /// `[jwt] issuer`.
    pub issuer: String,
    /// `[jwt] ttl_seconds`.
    pub ttl_seconds: u64,
    /// Lifetime of a new key's certificate.
    pub certificate_days: u32,
}

impl KeyOptions {
    /// The layout of the module doc for a data dir and the `[jwt]` settings.
    pub fn new(
        data_dir: &Path,
        key: &Path,
        certificate: &Path,
        issuer: String,
        ttl_seconds: u64,
        certificate_days: u32,
    ) -> KeyOptions {
        let dir_of = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
        let cert_dir = dir_of(certificate);
        KeyOptions {
            legacy_key: key.to_path_buf(),
            legacy_certificate: certificate.to_path_buf(),
            state_file: data_dir.join("keys.json"),
            keys_dir: dir_of(key).join("keys"),
            bundle: absolute(&cert_dir.join("bundle.crt")),
            jwks: absolute(&cert_dir.join("jwks.json")),
            issuer,
            ttl_seconds,
            certificate_days,
        }
    }

    fn token_lifetime(&self) -> TimeDelta {
        TimeDelta::seconds(i64::try_from(self.ttl_seconds).unwrap_or(i64::MAX / 2))
    }
}

/// The keyring's state shared by replicas (PostgreSQL): the ring's JSON and every published
/// key's certificate (JSON object id -> PEM), with a version that grows on every change.
pub trait SharedState: Send + Sync {
    /// `(version, state, certificates)`, `None` before a replica stored one.
    fn load(&self) -> Result<Option<(i64, String, String)>, String>;
    /// Stores version `expected + 1` if the stored one is `expected` (0: none) and tells the
    /// other replicas; `false` when another replica changed it first.
    fn save(&self, expected: i64, state: &str, certificates: &str) -> Result<bool, String>;
}

impl SharedState for crate::store::PgStore {
    fn load(&self) -> Result<Option<(i64, String, String)>, String> {
        self.blocking(self.load_keyring())
            .map(|k| k.map(|k| (k.version, k.state, k.certificates)))
            .map_err(|e| crate::error::Chain(&e).to_string())
    }

    fn save(&self, expected: i64, state: &str, certificates: &str) -> Result<bool, String> {
        self.blocking(self.save_keyring(expected, state, certificates))
            .map_err(|e| crate::error::Chain(&e).to_string())
    }
}

/// One key of the ring as shown to operators.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub record: KeyRecord,
    /// Whole days until the certificate's not-after.
    pub days_left: i64,
    /// When `retire` will be accepted; `None` for the active key.
    pub retirable_at: Option<DateTime<Utc>>,
}

/// The keyring in use. Operations are serialised; each writes the state file, then the
/// published files, then swaps the signing key.
#[derive(Debug)]
pub struct KeyStore {
    options: KeyOptions,
    ring: Mutex<Keyring>,
    current: Arc<CurrentIssuer>,
    /// The JWK Set as served (`GET /keys`), rebuilt on every change.
    jwks: Mutex<Arc<String>>,
    /// The database holding the state instead of `keys.json`, and the version read last.
    shared: Option<Arc<dyn SharedState>>,
    version: AtomicI64,
    /// Why this replica does not sign with the ring's active key (its private key file is
    /// missing here): it keeps the previous key and is not ready.
    behind: Mutex<Option<String>>,
}

impl std::fmt::Debug for dyn SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedState")
    }
}

impl KeyStore {
    /// Opens the keyring: reads its state, or makes the installation's key (created when
    /// missing, as before rotation existed) its one active key. Refuses when the active key's
    /// private key cannot be loaded here, or a published key's certificate is missing, saying
    /// which file to copy. Rewrites the bundle and the JWK Set.
    pub fn open(options: KeyOptions, now: DateTime<Utc>) -> Result<KeyStore, KeyStoreError> {
        let ring = file_ring(&options, now, true)?;
        KeyStore::start(options, ring, None, 0)
    }

    /// Opens the keyring whose state is in `shared` (PostgreSQL). The first replica stores
    /// the ring of its `keys.json` (or of the installation's key); the others read it and
    /// write the certificates they lack to the keys directory. Refuses like [`KeyStore::open`]
    /// when the active key's private key is not here.
    pub fn open_shared(
        options: KeyOptions,
        shared: Arc<dyn SharedState>,
        now: DateTime<Utc>,
    ) -> Result<KeyStore, KeyStoreError> {
        let (version, ring) = match load_shared(&options, shared.as_ref())? {
            Some(loaded) => loaded,
            None => {
                // A single server moving to PostgreSQL brings its keys.json along.
                let ring = file_ring(&options, now, false)?;
                let certs = certificates_of(&options, &ring)?;
                let state = encode(&ring)?;
                if save_shared(shared.as_ref(), 0, &state, &certs)? {
                    info!(
                        keys = ring.keys.len(),
                        "signing keyring stored in PostgreSQL, shared by every replica"
                    );
                    (1, ring)
                } else {
                    load_shared(&options, shared.as_ref())?.ok_or_else(|| {
                        invalid("the shared keyring vanished while starting".into())
                    })?
                }
            }
        };
        KeyStore::start(options, ring, Some(shared), version)
    }

    fn start(
        options: KeyOptions,
        ring: Keyring,
        shared: Option<Arc<dyn SharedState>>,
        version: i64,
    ) -> Result<KeyStore, KeyStoreError> {
        let active = ring.active().map_err(|e| {
            invalid(format!(
                "{}: {e}; restore the file from a backup",
                options.state_file.display()
            ))
        })?;
        let key =
            load_key(&options, &active.id).map_err(|e| {
                invalid(format!(
                "this regauth cannot sign with the active key {}: {e}. Every replica needs the \
                 private key of the active key: copy {} and its certificate from a replica that \
                 has them",
                active.id,
                options.keys_dir.join(format!("{}.key", active.id)).display()
            ))
            })?;
        let issuer = Issuer::new(key, options.issuer.clone(), options.ttl_seconds);
        let store = KeyStore {
            current: Arc::new(CurrentIssuer::new(issuer)),
            jwks: Mutex::new(Arc::new(String::new())),
            ring: Mutex::new(ring.clone()),
            options,
            shared,
            version: AtomicI64::new(version),
            behind: Mutex::new(None),
        };
        store.publish(&ring)?;
        Ok(store)
    }

    /// Re-reads the shared keyring after a notice (`version`: the notified one, 0 when
    /// unknown): publishes its keys and signs with its active key. When this replica lacks
    /// the active key's private key it keeps signing with the previous key, logs an error
    /// naming the file to copy and is not ready ([`KeyStore::not_ready`]) until a later
    /// change or restart finds it.
    pub fn refresh(&self, version: i64) -> Result<(), KeyStoreError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let mut ring = self.lock();
        if version != 0 && version <= self.version.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some((version, next)) = load_shared(&self.options, shared.as_ref())? else {
            return Ok(());
        };
        self.adopt(&mut ring, next, version)
    }

    /// Why this replica is not ready, if it is not (see [`KeyStore::refresh`]). While it
    /// lacks the active private key, each call looks for the file again, so that copying it
    /// is enough: the next readiness probe swaps the key.
    pub fn not_ready(&self) -> Option<String> {
        let behind = match self.behind.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        behind.as_ref()?;
        let mut ring = self.lock();
        let current = ring.clone();
        let version = self.version.load(Ordering::Acquire);
        if let Err(e) = self.adopt(&mut ring, current, version) {
            return Some(e.to_string());
        }
        drop(ring);
        match self.behind.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn adopt(
        &self,
        ring: &mut std::sync::MutexGuard<'_, Keyring>,
        next: Keyring,
        version: i64,
    ) -> Result<(), KeyStoreError> {
        let active = next
            .active()
            .map_err(|e| invalid(format!("the shared keyring: {e}")))?
            .id
            .clone();
        let previous = self.current.get().key().thumbprint();
        let mut behind = None;
        if active != previous {
            match load_key(&self.options, &active) {
                Ok(key) => {
                    self.current.set(Issuer::new(
                        key,
                        self.options.issuer.clone(),
                        self.options.ttl_seconds,
                    ));
                    info!(key = %active, previous = %previous,
                        "signing key activated on another replica: every token is now signed by it");
                }
                Err(e) => {
                    let file = self.options.keys_dir.join(format!("{active}.key"));
                    error!(key = %active, still_signing_with = %previous, file = %file.display(),
                        error = %e,
                        "another replica activated a signing key whose private key is not here: \
                         still signing with the previous key and not ready; copy the file from \
                         that replica (looked for again on every /ready)");
                    behind = Some(format!(
                        "the active signing key {active} is not here: copy {}",
                        file.display()
                    ));
                }
            }
        }
        match self.behind.lock() {
            Ok(mut g) => *g = behind,
            Err(p) => *p.into_inner() = behind,
        }
        **ring = next.clone();
        self.version.store(version, Ordering::Release);
        self.publish(&next)
    }

    /// Stores `next` (the file, or the shared state); on a concurrent change of the shared
    /// state adopts that one and refuses.
    fn save(
        &self,
        ring: &mut std::sync::MutexGuard<'_, Keyring>,
        next: &Keyring,
    ) -> Result<(), KeyStoreError> {
        let Some(shared) = &self.shared else {
            save_state(&self.options.state_file, next)?;
            return Ok(());
        };
        let version = self.version.load(Ordering::Acquire);
        let certs = certificates_of(&self.options, next)?;
        if save_shared(shared.as_ref(), version, &encode(next)?, &certs)? {
            self.version.store(version + 1, Ordering::Release);
            return Ok(());
        }
        if let Some((version, current)) = load_shared(&self.options, shared.as_ref())? {
            self.adopt(ring, current, version)?;
        }
        Err(KeyStoreError::Concurrent)
    }
}

/// The ring of `keys.json`, or a new one whose active key is the installation's key (saved
/// to `keys.json` when `save`).
fn file_ring(
    options: &KeyOptions,
    now: DateTime<Utc>,
    save: bool,
) -> Result<Keyring, KeyStoreError> {
    {
        let ring = match fs::read(&options.state_file) {
            Ok(bytes) => serde_json::from_slice::<Keyring>(&bytes).map_err(|e| {
                invalid(format!(
                    "{}: not a keyring state file ({e})",
                    options.state_file.display()
                ))
            })?,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let key = load_or_create(&options.legacy_key, &options.legacy_certificate)?;
                let not_after = leaf_not_after(&key, &options.legacy_certificate)?;
                let ring =
                    Keyring::with_active(key.thumbprint(), key.alg().to_string(), not_after, now);
                if save {
                    save_state(&options.state_file, &ring)?;
                }
                info!(key = %key.thumbprint(), file = %options.legacy_key.display(),
                    "the signing key is the active key of a new keyring");
                ring
            }
            Err(e) => return Err(io(&options.state_file, e).into()),
        };
        Ok(ring)
    }
}

impl KeyStore {
    /// The issuer the token endpoint signs with (swapped by [`KeyStore::activate`]).
    pub fn current(&self) -> Arc<CurrentIssuer> {
        self.current.clone()
    }

    /// The libtrust key id (the JWT header's `kid`) of key `id`, when its files load.
    pub fn libtrust_kid(&self, id: &str) -> Option<String> {
        let (_, cert_path) = self.files_of(id);
        let pem = fs::read_to_string(cert_path).ok()?;
        let certs = certificates_from_pem(&pem).ok()?;
        certs.iter().find_map(|der| {
            let spki = super::codec::certificate_spki(der)?;
            let (_, thumb) = super::signing::jwk_of_spki(spki)?;
            (thumb == id).then(|| super::libtrust_key_id(spki))
        })
    }

    /// The files and settings of this keyring.
    pub fn options(&self) -> &KeyOptions {
        &self.options
    }

    /// Every key with its days left, in creation order.
    pub fn list(&self, now: DateTime<Utc>) -> Vec<KeyView> {
        let ring = self.lock();
        ring.keys.iter().map(|k| self.view(k, now)).collect()
    }

    /// One key.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Result<KeyView, KeyStoreError> {
        let ring = self.lock();
        Ok(self.view(ring.get(id)?, now))
    }

    /// The JWK Set of every published key, as served.
    pub fn jwks(&self) -> Arc<String> {
        match self.jwks.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Generates a `next` key: its private key (0600) and self-signed certificate (0644) in
    /// the keys directory; then republishes the bundle and JWK Set with it.
    pub fn add(&self, algorithm: &str, now: DateTime<Utc>) -> Result<KeyView, KeyStoreError> {
        let (key, pem) = match algorithm {
            "ES256" => SigningKey::generate_es256()?,
            "RS256" => SigningKey::generate_rs256()?,
            other => {
                return Err(KeyStoreError::Unsupported(format!(
                    "algorithm {other:?} is not supported: use ES256 or RS256"
                )))
            }
        };
        let id = key.thumbprint();
        let pkcs8 = super::codec::pkcs8_der_from_pem(&pem)?;
        let cert =
            self_signed_certificate_for_days(&pkcs8, i64::from(self.options.certificate_days))
                .map_err(|e| invalid(format!("cannot create a certificate for key {id}: {e}")))?;
        let not_after = certificate_not_after(cert.der())
            .ok_or_else(|| invalid(format!("the new certificate of key {id} has no not-after")))?;
        let (key_path, cert_path) = key_files(&self.options.keys_dir, &id);
        write_file(&key_path, pem.as_bytes(), 0o600)?;
        write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
        let mut ring = self.lock();
        let mut next = ring.clone();
        let record = next
            .add(id.clone(), key.alg().to_string(), not_after, now)?
            .clone();
        self.save(&mut ring, &next)?;
        *ring = next.clone();
        self.publish(&next)?;
        info!(key = %id, alg = key.alg(), not_after = %not_after, file = %key_path.display(),
            bundle = %self.options.bundle.display(),
            "signing key added as next: restart the registries one by one so they read the bundle");
        Ok(self.view(&record, now))
    }

    /// An issuer signing with key `id` (any state), for probing the registries before it is
    /// activated.
    pub fn candidate(&self, id: &str) -> Result<Issuer, KeyStoreError> {
        self.lock().get(id)?;
        let key = load_key(&self.options, id)
            .map_err(|e| invalid(format!("cannot load key {id}: {e}")))?;
        Ok(Issuer::new(
            key,
            self.options.issuer.clone(),
            self.options.ttl_seconds,
        ))
    }

    /// Makes `id` the active key: every token from now on is signed by it. Its private key
    /// must load here first, so a failed activation changes nothing.
    pub fn activate(&self, id: &str, now: DateTime<Utc>) -> Result<KeyView, KeyStoreError> {
        let mut ring = self.lock();
        let mut next = ring.clone();
        next.activate(id, now)?;
        let key = load_key(&self.options, id)
            .map_err(|e| invalid(format!("cannot load key {id}: {e}")))?;
        self.save(&mut ring, &next)?;
        *ring = next.clone();
        let previous = self.current.get().key().thumbprint();
        self.current.set(Issuer::new(
            key,
            self.options.issuer.clone(),
            self.options.ttl_seconds,
        ));
        self.publish(&next)?;
        info!(key = %id, previous = %previous, "signing key activated: every token is now signed by it");
        Ok(self.view(next.get(id)?, now))
    }

    /// Removes `id` from the ring and from the published files once the tokens it signed have
    /// expired (`force`: at once, after a leak). Its private key file is deleted; the
    /// installation's first key (`[jwt] key`) is left for the operator to delete.
    pub fn retire(
        &self,
        id: &str,
        now: DateTime<Utc>,
        force: bool,
    ) -> Result<KeyRecord, KeyStoreError> {
        let mut ring = self.lock();
        let mut next = ring.clone();
        let removed = if force {
            next.retire_now(id)?
        } else {
            next.retire(id, now, self.options.token_lifetime())?
        };
        self.save(&mut ring, &next)?;
        *ring = next.clone();
        self.publish(&next)?;
        let (key_path, _) = key_files(&self.options.keys_dir, id);
        match fs::remove_file(&key_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => warn!(file = %key_path.display(), error = %e,
                "cannot delete the retired key's private key; delete it by hand"),
        }
        info!(key = %id, forced = force, bundle = %self.options.bundle.display(),
            "signing key retired: restart the registries to stop trusting it");
        Ok(removed)
    }

    /// Logs a warning for every published certificate that expires within [`WARN_DAYS`];
    /// returns how many did. Called once a day.
    pub fn warn_expiring(&self, now: DateTime<Utc>) -> usize {
        let ring = self.lock();
        let mut count = 0;
        for key in &ring.keys {
            let days = super::keyring::days_left(key.not_after, now);
            if days < WARN_DAYS {
                count += 1;
                warn!(key = %key.id, state = %key.state, not_after = %key.not_after,
                    days_left = days,
                    "the certificate of a published signing key expires soon; registries \
                     refuse its tokens after that: add a key and rotate (docs/key-rotation.md)");
            }
        }
        count
    }

    /// (id, state, not-after) of every published key, for the metrics.
    pub fn not_afters(&self) -> Vec<(String, String, DateTime<Utc>)> {
        let ring = self.lock();
        ring.keys
            .iter()
            .map(|k| (k.id.clone(), k.state.to_string(), k.not_after))
            .collect()
    }

    fn view(&self, record: &KeyRecord, now: DateTime<Utc>) -> KeyView {
        KeyView {
            days_left: super::keyring::days_left(record.not_after, now),
            retirable_at: Keyring::retirable_at(record, self.options.token_lifetime()),
            record: record.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keyring> {
        match self.ring.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Writes the bundle (every published key's certificate) and the JWK Set.
    fn publish(&self, ring: &Keyring) -> Result<(), KeyStoreError> {
        let mut bundle = String::new();
        let mut keys = Vec::new();
        for record in &ring.keys {
            let (key_path, cert_path) = self.files_of(&record.id);
            let pem = fs::read_to_string(&cert_path).map_err(|e| {
                invalid(format!(
                    "cannot publish key {} ({}): its certificate {}: {e}",
                    record.id,
                    record.state,
                    cert_path.display()
                ))
            })?;
            let certs = certificates_from_pem(&pem)
                .map_err(|e| invalid(format!("{}: {e}", cert_path.display())))?;
            let leaf = leaf_of(&certs, &record.id).ok_or_else(|| {
                invalid(format!(
                    "{}: no certificate of key {} (from {})",
                    cert_path.display(),
                    record.id,
                    key_path.display()
                ))
            })?;
            bundle.push_str(&pem_encode(CERT_LABEL, &leaf.0));
            keys.push(leaf.1);
        }
        let mut set = serde_json::Map::new();
        set.insert("keys".into(), serde_json::Value::Array(keys));
        let jwks = serde_json::Value::Object(set).to_string();
        write_replacing_public(&self.options.bundle, bundle.as_bytes())?;
        write_replacing_public(&self.options.jwks, jwks.as_bytes())?;
        match self.jwks.lock() {
            Ok(mut g) => *g = Arc::new(jwks),
            Err(p) => *p.into_inner() = Arc::new(jwks),
        }
        Ok(())
    }

    /// The private key and certificate files of `id`: in the keys directory, or the
    /// installation's first key.
    fn files_of(&self, id: &str) -> (PathBuf, PathBuf) {
        files_of(&self.options, id)
    }
}

fn encode(ring: &Keyring) -> Result<String, KeyError> {
    serde_json::to_string(ring)
        .map_err(|e| KeyError::Invalid(format!("cannot encode the keyring: {e}")))
}

/// Every key's certificate (its leaf, PEM), read from its certificate file.
fn certificates_of(
    options: &KeyOptions,
    ring: &Keyring,
) -> Result<BTreeMap<String, String>, KeyError> {
    let mut out = BTreeMap::new();
    for record in &ring.keys {
        let (_, cert_path) = files_of(options, &record.id);
        let pem = fs::read_to_string(&cert_path).map_err(|e| io(&cert_path, e))?;
        let certs = certificates_from_pem(&pem)
            .map_err(|e| invalid(format!("{}: {e}", cert_path.display())))?;
        let (der, _) = leaf_of(&certs, &record.id).ok_or_else(|| {
            invalid(format!(
                "{}: no certificate of key {}",
                cert_path.display(),
                record.id
            ))
        })?;
        out.insert(record.id.clone(), pem_encode(CERT_LABEL, &der));
    }
    Ok(out)
}

fn save_shared(
    shared: &dyn SharedState,
    expected: i64,
    state: &str,
    certs: &BTreeMap<String, String>,
) -> Result<bool, KeyError> {
    let certs = serde_json::to_string(certs)
        .map_err(|e| invalid(format!("cannot encode the certificates: {e}")))?;
    shared
        .save(expected, state, &certs)
        .map_err(|e| invalid(format!("cannot store the signing keyring: {e}")))
}

/// The shared ring, with the certificates this replica lacks written to the keys directory
/// (0644) so that it publishes them like its own.
fn load_shared(
    options: &KeyOptions,
    shared: &dyn SharedState,
) -> Result<Option<(i64, Keyring)>, KeyError> {
    let Some((version, state, certs)) = shared
        .load()
        .map_err(|e| invalid(format!("cannot read the signing keyring: {e}")))?
    else {
        return Ok(None);
    };
    let ring: Keyring = serde_json::from_str(&state)
        .map_err(|e| invalid(format!("the shared keyring (version {version}): {e}")))?;
    let certs: BTreeMap<String, String> = serde_json::from_str(&certs).map_err(|e| {
        invalid(format!(
            "the shared keyring's certificates (version {version}): {e}"
        ))
    })?;
    for record in &ring.keys {
        let (_, cert_path) = files_of(options, &record.id);
        let here = fs::read_to_string(&cert_path)
            .ok()
            .and_then(|pem| certificates_from_pem(&pem).ok())
            .is_some_and(|c| leaf_of(&c, &record.id).is_some());
        if here {
            continue;
        }
        let pem = certs.get(&record.id).ok_or_else(|| {
            invalid(format!(
                "the shared keyring (version {version}) has no certificate for key {}",
                record.id
            ))
        })?;
        let (_, path) = key_files(&options.keys_dir, &record.id);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        write_replacing_public(&path, pem.as_bytes())?;
    }
    Ok(Some((version, ring)))
}

fn files_of(options: &KeyOptions, id: &str) -> (PathBuf, PathBuf) {
    let (key, cert) = key_files(&options.keys_dir, id);
    if cert.exists() || key.exists() {
        (key, cert)
    } else {
        (
            options.legacy_key.clone(),
            options.legacy_certificate.clone(),
        )
    }
}

/// Loads the private key `id` with its certificate; an error when it is missing or is not
/// the key `id`.
fn load_key(options: &KeyOptions, id: &str) -> Result<SigningKey, KeyError> {
    let (key_path, cert_path) = files_of(options, id);
    if !key_path.exists() {
        return Err(KeyError::Invalid(format!(
            "{} is missing",
            key_path.display()
        )));
    }
    let key = load_or_create(&key_path, &cert_path)?;
    if key.thumbprint() != id {
        return Err(KeyError::Invalid(format!(
            "{} holds key {}, not {id}",
            key_path.display(),
            key.thumbprint()
        )));
    }
    Ok(key)
}

/// The certificate of `id` among `certs`, with the key's JWK.
fn leaf_of(certs: &[Vec<u8>], id: &str) -> Option<(Vec<u8>, serde_json::Value)> {
    certs.iter().find_map(|der| {
        let key = public_key_of_certificate(der)?;
        (key.1 == id).then(|| (der.clone(), key.0))
    })
}

/// The JWK and thumbprint of the public key in a certificate (P-256 or RSA).
fn public_key_of_certificate(der: &[u8]) -> Option<(serde_json::Value, String)> {
    let spki = super::codec::certificate_spki(der)?;
    let jwk = super::signing::jwk_of_spki(spki)?;
    Some(jwk)
}

fn leaf_not_after(key: &SigningKey, cert_path: &Path) -> Result<DateTime<Utc>, KeyError> {
    key.certificates()
        .first()
        .and_then(|der| certificate_not_after(der))
        .ok_or_else(|| {
            KeyError::Invalid(format!(
                "{}: cannot read the certificate's not-after",
                cert_path.display()
            ))
        })
}

fn key_files(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{id}.key")), dir.join(format!("{id}.crt")))
}

fn save_state(path: &Path, ring: &Keyring) -> Result<(), KeyError> {
    let json = serde_json::to_vec_pretty(ring)
        .map_err(|e| KeyError::Invalid(format!("cannot encode the keyring: {e}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    crate::files::write_replacing(path, &json).map_err(|e| KeyError::Io {
        path: e.path.display().to_string(),
        source: e.source,
    })
}

/// Creates `path` (mode `mode`, whatever the umask) with its directory.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    crate::files::write_new_file(path, contents, mode).map_err(|e| KeyError::Io {
        path: e.path.display().to_string(),
        source: e.source,
    })
}

/// Replaces `path` atomically with a file readable by the registry (0644).
fn write_replacing_public(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| {
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
            f.write_all(contents)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    result.map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> KeyError {
    KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(msg: String) -> KeyError {
    KeyError::Invalid(msg)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::keyring::KeyState;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn options(dir: &Path) -> KeyOptions {
        KeyOptions::new(
            &dir.join("data"),
            &dir.join("certs/signing.key"),
            &dir.join("certs/signing.crt"),
            "regauth".into(),
            300,
            90,
        )
    }

    fn bundle_ids(options: &KeyOptions) -> Vec<String> {
        let pem = fs::read_to_string(&options.bundle).unwrap();
        certificates_from_pem(&pem)
            .unwrap()
            .iter()
            .map(|der| public_key_of_certificate(der).unwrap().1)
            .collect()
    }

    fn jwks_ids(store: &KeyStore) -> Vec<String> {
        let set: serde_json::Value = serde_json::from_str(&store.jwks()).unwrap();
        set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn an_existing_key_becomes_the_active_key_with_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let legacy = load_or_create(&opts.legacy_key, &opts.legacy_certificate).unwrap();
        let store = KeyStore::open(opts.clone(), t(0)).unwrap();
        let keys = store.list(t(0));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].record.id, legacy.thumbprint());
        assert_eq!(keys[0].record.state, KeyState::Active);
        assert_eq!(store.current().get().key().kid(), legacy.kid());
        assert_eq!(bundle_ids(&opts), vec![legacy.thumbprint()]);
        assert_eq!(jwks_ids(&store), vec![legacy.thumbprint()]);
        let mode = fs::metadata(&opts.bundle).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn rotation_publishes_switches_signing_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let store = KeyStore::open(opts.clone(), t(0)).unwrap();
        let old = store.list(t(0))[0].record.id.clone();
        let new = store.add("ES256", t(10)).unwrap();
        assert_eq!(new.record.state, KeyState::Next);
        let new = new.record.id;
        // The certificate's lifetime is the configured one, counted from the real today.
        let days = store.get(&new, Utc::now()).unwrap().days_left;
        assert!((88..=90).contains(&days), "{days}");
        let key_file = opts.keys_dir.join(format!("{new}.key"));
        assert_eq!(
            fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(bundle_ids(&opts), vec![old.clone(), new.clone()]);
        assert_eq!(jwks_ids(&store), vec![old.clone(), new.clone()]);
        // Still signing with the old key until activation.
        assert_eq!(store.current().get().key().thumbprint(), old);

        let current = store.current();
        store.activate(&new, t(100)).unwrap();
        assert_eq!(
            current.get().key().thumbprint(),
            new,
            "the shared slot was swapped"
        );
        let jwt = current.get().issue("x", "svc", &[], t(101)).unwrap();
        let (header, _) = current.get().key().verify_jwt(&jwt).unwrap();
        assert_eq!(header["kid"], current.get().key().kid());

        match store.retire(&old, t(459), false) {
            Err(KeyStoreError::Rule(KeyringError::Draining { until, .. })) => {
                assert_eq!(until, t(460))
            }
            other => panic!("expected Draining, got {other:?}"),
        }
        drop(store);
        // A restart keeps the states and signs with the activated key.
        let store = KeyStore::open(opts.clone(), t(200)).unwrap();
        assert_eq!(store.current().get().key().thumbprint(), new);
        let states: Vec<_> = store.list(t(200)).iter().map(|k| k.record.state).collect();
        assert_eq!(states, vec![KeyState::Retiring, KeyState::Active]);

        store.retire(&old, t(460), false).unwrap();
        assert_eq!(bundle_ids(&opts), vec![new.clone()]);
        assert_eq!(jwks_ids(&store), vec![new.clone()]);
        assert!(
            opts.legacy_key.exists(),
            "the operator's own key file is left alone"
        );
    }

    #[test]
    fn retiring_deletes_the_private_key_of_an_added_key() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let store = KeyStore::open(opts.clone(), t(0)).unwrap();
        let id = store.add("ES256", t(1)).unwrap().record.id;
        store.retire(&id, t(2), false).unwrap();
        assert!(!opts.keys_dir.join(format!("{id}.key")).exists());
        assert_eq!(store.list(t(2)).len(), 1);
    }

    #[test]
    fn a_replica_without_the_active_private_key_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let store = KeyStore::open(opts.clone(), t(0)).unwrap();
        let id = store.add("ES256", t(1)).unwrap().record.id;
        store.activate(&id, t(2)).unwrap();
        drop(store);
        fs::remove_file(opts.keys_dir.join(format!("{id}.key"))).unwrap();
        let err = KeyStore::open(opts, t(3)).unwrap_err().to_string();
        assert!(err.contains("cannot sign with the active key"), "{err}");
        assert!(err.contains(&format!("{id}.key")), "{err}");
    }

    /// RS256 keys are generated too (by the rsa crate; ring signs), published in the JWK Set
    /// and bundle, and sign verifiable RS256 tokens with an x5c once active.
    #[test]
    fn rs256_keys_are_generated_published_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(options(dir.path()), t(0)).unwrap();
        let view = store.add("RS256", t(1)).unwrap();
        assert_eq!(view.record.algorithm, "RS256");
        let id = view.record.id.clone();
        let jwks: serde_json::Value = serde_json::from_str(&store.jwks()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert!(
            keys.iter()
                .any(|k| k["kty"] == "RSA" && k["kid"] == id.as_str()),
            "{jwks}"
        );
        let bundle = fs::read_to_string(&store.options().bundle).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
        store.activate(&id, t(2)).unwrap();
        let issuer = store.current().get();
        assert_eq!(issuer.key().alg(), "RS256");
        assert_eq!(issuer.key().thumbprint(), id);
        let jwt = issuer.issue("bot", "registry.local", &[], t(2)).unwrap();
        let (header, _) = issuer.key().verify_jwt(&jwt).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert!(
            header["x5c"].as_array().is_some_and(|c| !c.is_empty()),
            "{header}"
        );
    }

    #[test]
    fn unsupported_algorithms_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(options(dir.path()), t(0)).unwrap();
        for alg in ["HS256", "none", "ES384"] {
            match store.add(alg, t(1)) {
                Err(KeyStoreError::Unsupported(msg)) => assert!(msg.contains(alg), "{msg}"),
                other => panic!("{alg}: {other:?}"),
            }
        }
        assert_eq!(store.list(t(1)).len(), 1);
    }

    #[test]
    fn expiring_certificates_are_counted_for_the_warning() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(options(dir.path()), Utc::now()).unwrap();
        store.add("ES256", Utc::now()).unwrap();
        // The first key's certificate is good for ten years, the added one for 90 days.
        assert_eq!(store.warn_expiring(Utc::now()), 0);
        assert_eq!(store.warn_expiring(Utc::now() + TimeDelta::days(61)), 1);
        assert_eq!(store.warn_expiring(Utc::now() + TimeDelta::days(3650)), 2);
    }

    /// The shared state of two replicas, in memory (PostgreSQL's is tested in
    /// store::postgres).
    #[derive(Default)]
    struct Memory(Mutex<Option<(i64, String, String)>>);

    impl SharedState for Memory {
        fn load(&self) -> Result<Option<(i64, String, String)>, String> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn save(&self, expected: i64, state: &str, certs: &str) -> Result<bool, String> {
            let mut g = self.0.lock().unwrap();
            if g.as_ref().map_or(0, |s| s.0) != expected {
                return Ok(false);
            }
            *g = Some((expected + 1, state.into(), certs.into()));
            Ok(true)
        }
    }

    /// Replica B in `dir/b` with A's installation key (the operator copies it).
    fn replica_b(dir: &Path, a: &KeyOptions) -> KeyOptions {
        let b = options(&dir.join("b"));
        fs::create_dir_all(b.legacy_key.parent().unwrap()).unwrap();
        fs::copy(&a.legacy_key, &b.legacy_key).unwrap();
        fs::copy(&a.legacy_certificate, &b.legacy_certificate).unwrap();
        b
    }

    #[test]
    fn replicas_sharing_the_state_switch_together_and_publish_every_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let shared: Arc<dyn SharedState> = Arc::new(Memory::default());
        let opts_a = options(&dir.path().join("a"));
        let a = KeyStore::open_shared(opts_a.clone(), shared.clone(), t(0)).unwrap();
        let opts_b = replica_b(dir.path(), &opts_a);
        let b = KeyStore::open_shared(opts_b.clone(), shared.clone(), t(0)).unwrap();
        assert!(!opts_a.state_file.exists(), "the state is not in keys.json");
        let old = a.list(t(0))[0].record.id.clone();
        let new = a.add("ES256", t(1)).unwrap().record.id;
        b.refresh(2).unwrap();
        // B publishes the new certificate it only knows from the shared state.
        assert_eq!(bundle_ids(&opts_b), vec![old.clone(), new.clone()]);
        assert_eq!(jwks_ids(&b), vec![old.clone(), new.clone()]);
        // The operator distributes the private key; then A activates.
        let key = format!("{new}.key");
        fs::copy(opts_a.keys_dir.join(&key), opts_b.keys_dir.join(&key)).unwrap();
        a.activate(&new, t(2)).unwrap();
        b.refresh(3).unwrap();
        assert_eq!(b.current().get().key().thumbprint(), new);
        assert_eq!(b.not_ready(), None);
        // A notice older than what B has read changes nothing; a restart signs with the new
        // key; a write based on a stale version is refused.
        b.refresh(1).unwrap();
        let restarted = KeyStore::open_shared(opts_b.clone(), shared.clone(), t(3)).unwrap();
        assert_eq!(restarted.current().get().key().thumbprint(), new);
        a.retire(&old, t(1000), false).unwrap();
        match b.retire(&old, t(1000), false) {
            Err(KeyStoreError::Concurrent) | Err(KeyStoreError::Rule(_)) => {}
            other => panic!("{other:?}"),
        }
        b.refresh(0).unwrap();
        assert_eq!(bundle_ids(&opts_b), vec![new.clone()]);
    }

    #[test]
    fn a_running_replica_without_the_new_private_key_keeps_signing_and_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let shared: Arc<dyn SharedState> = Arc::new(Memory::default());
        let opts_a = options(&dir.path().join("a"));
        let a = KeyStore::open_shared(opts_a.clone(), shared.clone(), t(0)).unwrap();
        let opts_b = replica_b(dir.path(), &opts_a);
        let b = KeyStore::open_shared(opts_b.clone(), shared.clone(), t(0)).unwrap();
        let old = a.list(t(0))[0].record.id.clone();
        let new = a.add("ES256", t(1)).unwrap().record.id;
        a.activate(&new, t(2)).unwrap();
        b.refresh(0).unwrap();
        assert_eq!(
            b.current().get().key().thumbprint(),
            old,
            "B keeps the old key"
        );
        let why = b.not_ready().unwrap();
        assert!(why.contains(&format!("{new}.key")), "{why}");
        // A restart is refused, naming the file.
        let err = KeyStore::open_shared(opts_b.clone(), shared.clone(), t(3))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{new}.key")), "{err}");
        // Once the file is copied, the next readiness check finds it and swaps.
        let key = format!("{new}.key");
        fs::copy(opts_a.keys_dir.join(&key), opts_b.keys_dir.join(&key)).unwrap();
        assert_eq!(b.not_ready(), None);
        assert_eq!(b.current().get().key().thumbprint(), new);
    }
}
