//! The signing keys' states and the rules between them, free of files, HTTP and stores.
//!
//! A key is `next` (published in the registries' trust, not signing), `active` (signing;
//! exactly one) or `retiring` (published, no longer signing, until the tokens it signed have
//! expired). A retired key is removed from the ring. Ids are RFC 7638 thumbprints.
use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Leeway added to the token lifetime before a deactivated key may be retired: clocks of
/// regauth and the registries may differ by this much.
pub const RETIRE_LEEWAY: TimeDelta = TimeDelta::seconds(60);

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing every token; exactly one key is active.
    Active,
    /// Published, no longer signing; tokens it signed may still be valid.
    Retiring,
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
        })
    }
}

/// One key of the ring: what is known of it without its private half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// RFC 7638 thumbprint of the public key.
    pub id: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    pub state: KeyState,
    /// The certificate's not-after.
    pub not_after: DateTime<Utc>,
    pub created: DateTime<Utc>,
    /// When it last became active.
    pub activated: Option<DateTime<Utc>>,
    /// When it last stopped being active.
    pub deactivated: Option<DateTime<Utc>>,
}

/// A rule of the ring was broken; each message says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("no key {0} in the keyring")]
    NotFound(String),
    #[error("key {0} is already in the keyring")]
    Duplicate(String),
    #[error("key {0} is already the active key")]
    AlreadyActive(String),
    #[error("key {0} is the active key and signs every token: activate another key first")]
    RetireActive(String),
    #[error(
        "key {id} may still have signed valid tokens until {until} (deactivation + token \
         lifetime + {leeway} s of leeway): retire it after that",
        leeway = RETIRE_LEEWAY.num_seconds()
    )]
    Draining { id: String, until: DateTime<Utc> },
    #[error("the keyring has {0} active keys; it needs exactly one")]
    ActiveCount(usize),
}

/// Every key of the installation, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    pub keys: Vec<KeyRecord>,
}

impl Keyring {
    /// A ring of one active key (an installation's first key, or its key before rotation
    /// existed).
    pub fn with_active(
        id: String,
        algorithm: String,
        not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Keyring {
        let now = now.trunc_subsecs(0);
        Keyring {
            keys: vec![KeyRecord {
                id,
                algorithm,
                state: KeyState::Active,
                not_after,
                created: now,
                activated: Some(now),
                deactivated: None,
            }],
        }
    }

    /// Checks the one invariant: exactly one active key.
    pub fn check(&self) -> Result<(), KeyringError> {
        match self
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count()
        {
            1 => Ok(()),
            n => Err(KeyringError::ActiveCount(n)),
        }
    }

    /// The active key.
    pub fn active(&self) -> Result<&KeyRecord, KeyringError> {
        self.check()?;
        self.keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .ok_or(KeyringError::ActiveCount(0))
    }

    /// The key `id`.
    pub fn get(&self, id: &str) -> Result<&KeyRecord, KeyringError> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyringError::NotFound(id.to_string()))
    }

    /// Adds a `next` key.
    pub fn add(
        &mut self,
        id: String,
        algorithm: String,
        not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<&KeyRecord, KeyringError> {
        if self.keys.iter().any(|k| k.id == id) {
            return Err(KeyringError::Duplicate(id));
        }
        // Whole seconds, as the API shows them, so a time read there is the one the rules use.
        let now = now.trunc_subsecs(0);
        self.keys.push(KeyRecord {
            id,
            algorithm,
            state: KeyState::Next,
            not_after,
            created: now,
            activated: None,
            deactivated: None,
        });
        let last = self.keys.len() - 1;
        Ok(&self.keys[last])
    }

    /// Makes `id` (next or retiring) the active key; the active one becomes retiring.
    pub fn activate(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), KeyringError> {
        match self.get(id)?.state {
            KeyState::Active => return Err(KeyringError::AlreadyActive(id.to_string())),
            KeyState::Next | KeyState::Retiring => {}
        }
        let now = now.trunc_subsecs(0);
        for key in &mut self.keys {
            if key.id == id {
                key.state = KeyState::Active;
                key.activated = Some(now);
                key.deactivated = None;
            } else if key.state == KeyState::Active {
                key.state = KeyState::Retiring;
                key.deactivated = Some(now);
            }
        }
        self.check()
    }

    /// When `key` may be retired: at once for a key that never signed, else deactivation +
    /// `token_lifetime` + [`RETIRE_LEEWAY`]. `None` for the active key.
    pub fn retirable_at(key: &KeyRecord, token_lifetime: TimeDelta) -> Option<DateTime<Utc>> {
        match (key.state, key.deactivated) {
            (KeyState::Active, _) => None,
            (_, Some(at)) => Some(at + token_lifetime + RETIRE_LEEWAY),
            (_, None) => Some(key.created),
        }
    }

    /// Removes `id`, refused for the active key and for a key whose tokens may still be
    /// valid (see [`Keyring::retirable_at`]). Returns the removed record.
    pub fn retire(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
        token_lifetime: TimeDelta,
    ) -> Result<KeyRecord, KeyringError> {
        let key = self.get(id)?;
        let Some(until) = Keyring::retirable_at(key, token_lifetime) else {
            return Err(KeyringError::RetireActive(id.to_string()));
        };
        if now < until {
            return Err(KeyringError::Draining {
                id: id.to_string(),
                until,
            });
        }
        let at = self.keys.iter().position(|k| k.id == id);
        at.map(|i| self.keys.remove(i))
            .ok_or_else(|| KeyringError::NotFound(id.to_string()))
    }

    /// Removes `id` at once whatever its tokens (emergency after a leak); still refused for
    /// the active key.
    pub fn retire_now(&mut self, id: &str) -> Result<KeyRecord, KeyringError> {
        if self.get(id)?.state == KeyState::Active {
            return Err(KeyringError::RetireActive(id.to_string()));
        }
        let at = self.keys.iter().position(|k| k.id == id);
        at.map(|i| self.keys.remove(i))
            .ok_or_else(|| KeyringError::NotFound(id.to_string()))
    }
}

/// Whole days from `now` to `not_after` (negative once expired).
pub fn days_left(not_after: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (not_after - now).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn ring() -> Keyring {
        let mut ring = Keyring::with_active("a".into(), "ES256".into(), t(1_000_000), t(0));
        ring.add("b".into(), "ES256".into(), t(2_000_000), t(10))
            .unwrap();
        ring
    }

    #[test]
    fn a_new_key_is_next_and_ids_are_unique() {
        let mut ring = ring();
        assert_eq!(ring.get("b").unwrap().state, KeyState::Next);
        assert_eq!(ring.active().unwrap().id, "a");
        assert_eq!(
            ring.add("b".into(), "ES256".into(), t(1), t(1)),
            Err(KeyringError::Duplicate("b".into()))
        );
    }

    #[test]
    fn activation_keeps_exactly_one_active_and_dates_the_change() {
        let mut ring = ring();
        ring.activate("b", t(100)).unwrap();
        let (a, b) = (ring.get("a").unwrap(), ring.get("b").unwrap());
        assert_eq!((a.state, a.deactivated), (KeyState::Retiring, Some(t(100))));
        assert_eq!((b.state, b.activated), (KeyState::Active, Some(t(100))));
        assert_eq!(ring.active().unwrap().id, "b");
        assert_eq!(
            ring.activate("b", t(101)),
            Err(KeyringError::AlreadyActive("b".into()))
        );
        assert_eq!(
            ring.activate("zz", t(101)),
            Err(KeyringError::NotFound("zz".into()))
        );
        // A retiring key may come back (rollback before it is retired).
        ring.activate("a", t(200)).unwrap();
        assert_eq!(ring.active().unwrap().id, "a");
        assert_eq!(ring.get("a").unwrap().deactivated, None);
        assert_eq!(ring.get("b").unwrap().state, KeyState::Retiring);
    }

    #[test]
    fn retire_waits_for_deactivation_plus_lifetime_plus_leeway() {
        let ttl = TimeDelta::seconds(300);
        let mut ring = ring();
        assert_eq!(
            ring.retire("a", t(50), ttl),
            Err(KeyringError::RetireActive("a".into()))
        );
        ring.activate("b", t(100)).unwrap();
        let until = t(100 + 300 + 60);
        assert_eq!(
            ring.retire("a", t(459), ttl),
            Err(KeyringError::Draining {
                id: "a".into(),
                until
            })
        );
        let removed = ring.retire("a", until, ttl).unwrap();
        assert_eq!(removed.id, "a");
        assert!(ring.get("a").is_err());
        assert_eq!(ring.keys.len(), 1);
    }

    #[test]
    fn a_key_that_never_signed_retires_at_once() {
        let mut ring = ring();
        ring.retire("b", t(11), TimeDelta::seconds(300)).unwrap();
        assert_eq!(ring.keys.len(), 1);
    }

    #[test]
    fn emergency_retire_skips_the_drain_but_not_the_active_rule() {
        let mut ring = ring();
        ring.activate("b", t(100)).unwrap();
        assert_eq!(
            ring.retire_now("b"),
            Err(KeyringError::RetireActive("b".into()))
        );
        ring.retire_now("a").unwrap();
        assert_eq!(ring.keys.len(), 1);
    }

    #[test]
    fn a_ring_without_exactly_one_active_key_is_refused() {
        let mut ring = ring();
        ring.keys[0].state = KeyState::Next;
        assert_eq!(ring.check(), Err(KeyringError::ActiveCount(0)));
        ring.keys[0].state = KeyState::Active;
        ring.keys[1].state = KeyState::Active;
        assert_eq!(ring.active(), Err(KeyringError::ActiveCount(2)));
    }

    #[test]
    fn state_round_trips_through_json() {
        let ring = ring();
        let json = serde_json::to_string(&ring).unwrap();
        assert!(json.contains("\"state\":\"next\""), "{json}");
        assert!(json.contains("\"notAfter\""), "{json}");
        assert_eq!(serde_json::from_str::<Keyring>(&json).unwrap(), ring);
    }

    #[test]
    fn days_left_counts_whole_days() {
        assert_eq!(days_left(t(86_400 * 30), t(0)), 30);
        assert_eq!(days_left(t(86_400 * 30 - 1), t(0)), 29);
        assert_eq!(days_left(t(0), t(86_400)), -1);
    }
}
