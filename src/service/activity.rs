//! Registry activity: receiving the registries' notification envelopes (each registry
//! authenticated by its own events secret), reading the stored events back, and pruning them
//! (`[activity] retention`, `max_events_per_registry`).
//!
//! Events stay off the token endpoint's path: they have their own store
//! ([`ActivityStore`]), and nothing here is called by `auth`.
//!
//! Each registry's events secret is a file `<data_dir>/events/<registry>.secret` (0600),
//! made at the first start (or by an offline `registry-config`) and kept: a registry's
//! `notifications:` block sends it as `Authorization: Bearer <secret>`. On PostgreSQL the
//! first replica's secret is recorded in the database and every replica uses (and keeps) that
//! one, so a registry may send to any of them.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::{ActivityConfig, RegistryConfig};
use crate::domain::activity::{parse_envelope, ActivityQuery, EnvelopeError};
use crate::store::activity::{ActivityStore, EventPage, MemoryActivity};
use crate::store::StoreError;

/// Largest envelope accepted (bytes): distribution's envelopes are a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How often old events are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Why an envelope was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an accepted envelope did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Events in the envelope.
    pub received: usize,
    /// Events about images (kept); the rest were blob events.
    pub kept: usize,
    /// Kept events not seen before (a retry stores nothing new).
    pub stored: usize,
}

/// The activity service; cheap to clone.
#[derive(Clone)]
pub struct ActivityService {
    store: Arc<dyn ActivityStore>,
    /// Registry id -> its events secret.
    secrets: Arc<HashMap<String, String>>,
    config: ActivityConfig,
    /// Where `image.pushed` goes.
    webhooks: Option<crate::service::webhook::WebhookService>,
}

impl std::fmt::Debug for ActivityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("ActivityService")
            .field("registries", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ActivityService {
    /// A service over `store`, with each registry's events secret.
    pub fn new(
        store: Arc<dyn ActivityStore>,
        secrets: HashMap<String, String>,
        config: ActivityConfig,
    ) -> ActivityService {
        ActivityService {
            store,
            secrets: Arc::new(secrets),
            config,
            webhooks: None,
        }
    }

    /// Sends `image.pushed` for the pushes received, through `webhooks`.
    pub fn with_webhooks(mut self, webhooks: crate::service::webhook::WebhookService) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// Events in memory and a fresh secret per registry, not kept anywhere (tests, and the
    /// state before `server` sets the real ones).
    pub fn in_memory(registries: &[RegistryConfig], config: ActivityConfig) -> ActivityService {
        let secrets = registries
            .iter()
            .map(|r| (r.id.clone(), new_secret().unwrap_or_default()))
            .collect();
        ActivityService::new(Arc::new(MemoryActivity::default()), secrets, config)
    }

    /// `registry`'s events secret.
    pub fn secret(&self, registry: &str) -> Option<&str> {
        self.secrets
            .get(registry)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Whether `presented` is `registry`'s events secret (constant time over SHA-256s, so
    /// neither content nor length leaks).
    pub fn check_secret(&self, registry: &str, presented: &str) -> bool {
        let Some(secret) = self.secret(registry) else {
            return false;
        };
        let a = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let b = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
        a.as_ref().ct_eq(b.as_ref()).into()
    }

    /// Parses `body` (an envelope sent to `registry`) and stores its image events, durably,
    /// before returning. A refused envelope stores nothing.
    pub async fn receive(&self, registry: &str, body: &[u8]) -> Result<Received, ReceiveError> {
        let received = count_events(body);
        let events = parse_envelope(registry, body)?;
        let kept = events.len();
        let stored = if kept == 0 {
            0
        } else {
            let pushes: Vec<_> = match &self.webhooks {
                Some(_) => events
                    .iter()
                    .filter(|e| e.action == crate::domain::activity::EventAction::Push)
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            let stored = self.store.record_events(events).await?;
            // After the events are durable; a retried envelope's pushes have the same ids.
            if let Some(w) = &self.webhooks {
                w.images_pushed(&pushes).await;
            }
            stored
        };
        Ok(Received {
            received,
            kept,
            stored,
        })
    }

    /// `registry`'s events matching `query`, newest first.
    pub async fn events(
        &self,
        registry: &str,
        query: &ActivityQuery,
        offset: usize,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.store.events(registry, query, offset, limit).await
    }

    /// Prunes each of `registries` by the retention settings at `now`; returns how many
    /// events went.
    pub async fn prune(
        &self,
        registries: &[String],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, StoreError> {
        let before = now - self.config.retention;
        let mut removed = 0;
        for r in registries {
            removed += self
                .store
                .prune_events(r, before, self.config.max_events_per_registry)
                .await?;
        }
        Ok(removed)
    }
}

/// Events in an envelope that parses, for the log (0 when it does not).
fn count_events(body: &[u8]) -> usize {
    #[derive(serde::Deserialize)]
    struct Count {
        events: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Count>(body).map_or(0, |c| c.events.len())
}

/// Prunes every `every`, logging what went and any failure.
pub async fn run_pruner(
    service: ActivityService,
    registries: Vec<String>,
    clock: Clock,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match service.prune(&registries, clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                retention_days = service.config.retention.num_days(),
                max_events_per_registry = service.config.max_events_per_registry,
                "pruned old registry events"
            ),
            Err(e) => tracing::warn!(error = %crate::error::Chain(&e),
                "cannot prune registry events; retrying at the next interval"),
        }
    }
}

/// A new events secret: `rge_` and 64 hex digits (256 random bits); YAML- and header-safe.
pub fn new_secret() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("rge_{hex}"))
}

/// Where `registry`'s events secret is kept.
pub fn secret_path(data_dir: &Path, registry: &str) -> PathBuf {
    data_dir.join("events").join(format!("{registry}.secret"))
}

/// `registry`'s events secret from its file, made (0600) when missing.
pub fn load_or_create_secret(data_dir: &Path, registry: &str) -> Result<String, String> {
    let path = secret_path(data_dir, registry);
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read the events secret {}: {e}", path.display()))
    };
    if path.exists() {
        return read(&path);
    }
    let secret = new_secret().map_err(|_| "no randomness for the events secret".to_string())?;
    // The secrets' directory is private (0700): only regauth reads it (write_new_file would
    // make a missing parent 0755, for the certificate's sake).
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    match crate::files::write_new_file(&path, format!("{secret}\n").as_bytes(), 0o600) {
        Ok(()) => {
            tracing::info!(registry, path = %path.display(), "created the registry's events secret");
            Ok(secret)
        }
        // Made meanwhile by another process: use that one.
        Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(format!("cannot create the events secret: {e}")),
    }
}

/// Makes `secret` `registry`'s events secret file (replacing another one: the secret shared
/// through PostgreSQL wins over a replica's own).
pub fn keep_secret(data_dir: &Path, registry: &str, secret: &str) -> Result<(), String> {
    let path = secret_path(data_dir, registry);
    if std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == secret) {
        return Ok(());
    }
    crate::files::write_replacing(&path, format!("{secret}\n").as_bytes())
        .map_err(|e| format!("cannot write the events secret: {e}"))?;
    // write_replacing keeps the process umask (077 under `serve`); say so explicitly.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    tracing::info!(registry, path = %path.display(),
        "the registry's events secret is the one recorded in PostgreSQL (shared by every replica)");
    Ok(())
}

/// Every registry's events secret (see [`load_or_create_secret`]).
pub fn load_or_create_secrets(
    data_dir: &Path,
    registries: &[RegistryConfig],
) -> Result<HashMap<String, String>, String> {
    registries
        .iter()
        .map(|r| Ok((r.id.clone(), load_or_create_secret(data_dir, &r.id)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path(), "default").unwrap();
        assert!(a.starts_with("rge_") && a.len() == 68, "{a}");
        assert_eq!(load_or_create_secret(dir.path(), "default").unwrap(), a);
        assert_ne!(load_or_create_secret(dir.path(), "other").unwrap(), a);
        let mode = std::fs::metadata(secret_path(dir.path(), "default"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("events"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700, "the secrets' directory is private");
    }

    #[test]
    fn only_the_registrys_own_secret_is_accepted() {
        let registries = [
            RegistryConfig::new("a", "s", "h"),
            RegistryConfig::new("b", "s", "h"),
        ];
        let s = ActivityService::in_memory(&registries, ActivityConfig::default());
        let a = s.secret("a").unwrap().to_string();
        assert!(s.check_secret("a", &a));
        assert!(!s.check_secret("b", &a));
        assert!(!s.check_secret("a", ""));
        assert!(!s.check_secret("nowhere", &a));
        assert!(!format!("{s:?}").contains(&a));
    }

    #[tokio::test]
    async fn a_retried_envelope_is_stored_once_and_blobs_are_not() {
        let s = ActivityService::in_memory(
            &[RegistryConfig::new("r", "s", "h")],
            ActivityConfig::default(),
        );
        let body = br#"{"events":[
            {"id":"m","timestamp":"2026-01-01T00:00:00Z","action":"push","target":{"repository":"a","tag":"t"}},
            {"id":"b","timestamp":"2026-01-01T00:00:00Z","action":"push","target":{"repository":"a","mediaType":"application/octet-stream"}}]}"#;
        let first = s.receive("r", body).await.unwrap();
        assert_eq!(
            first,
            Received {
                received: 2,
                kept: 1,
                stored: 1
            }
        );
        assert_eq!(s.receive("r", body).await.unwrap().stored, 0);
        let page = s
            .events("r", &ActivityQuery::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(page.total, 1);
    }

    #[tokio::test]
    async fn pruning_follows_the_retention() {
        let s = ActivityService::in_memory(
            &[RegistryConfig::new("r", "s", "h")],
            ActivityConfig {
                retention: chrono::TimeDelta::days(1),
                max_events_per_registry: 10,
            },
        );
        let body = br#"{"events":[
            {"id":"old","timestamp":"2026-01-01T00:00:00Z","action":"pull","target":{"repository":"a","tag":"t"}},
            {"id":"new","timestamp":"2026-01-03T00:00:00Z","action":"pull","target":{"repository":"a","tag":"t"}}]}"#;
        s.receive("r", body).await.unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-03T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(s.prune(&["r".into()], now).await.unwrap(), 1);
        let page = s
            .events("r", &ActivityQuery::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(page.items[0].id, "new");
    }
}
