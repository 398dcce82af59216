//! The keys of each configured issuer: discovery, the JWKS fetch and its cache.
//!
//! - A fetch reads `<issuer>/.well-known/openid-configuration` (its `issuer` must equal the
//!   configured one exactly), then its `jwks_uri` (`https://` only); each request has a
//!   5-second timeout and a 1 MiB limit.
//! - The keys stay fresh for the JWKS response's `Cache-Control: max-age`, bounded to
//!   5 minutes – 24 hours (absent or `no-cache`: 5 minutes). A request that finds them stale
//!   is answered from them and starts one refresh in the background, so a warm cache never
//!   makes a request wait on the network.
//! - An unknown `kid` triggers one refetch, at most once a minute per issuer: a flood of
//!   made-up `kid`s costs the issuer one request a minute. Only these refetches count
//!   toward the minute: a cold fetch or a scheduled refresh does not, so a key the issuer
//!   rotates in right after any other fetch is fetched and accepted at its first use.
//! - A failed fetch keeps the last good keys. With none (a cold cache), requests are refused
//!   with [`Refusal::IssuerUnreachable`] and no new fetch is tried for [`FAILURE_BACKOFF`].
//! - Concurrent requests that need a fetch share one: the first takes the issuer's fetch lock,
//!   the others wait for it and read its result.
//!
//! Every time rule runs on the `now` the caller passes, so tests move time without sleeping.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::CACHE_CONTROL;
use serde_json::Value;

use super::jwk::{Key, KeySet};
use super::Refusal;
use crate::error::Chain;
use crate::metrics::{JwksFetch, Metrics};

/// The timeout of each request to an issuer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// An unknown `kid` refetches at most this often per issuer.
pub const REFETCH_INTERVAL: TimeDelta = TimeDelta::minutes(1);
/// After a failed fetch, no new one for this long (the `Retry-After` of a cold cache).
pub const FAILURE_BACKOFF: TimeDelta = TimeDelta::seconds(10);
/// Shortest and longest time keys stay fresh, whatever `Cache-Control` says.
pub const MIN_FRESH: TimeDelta = TimeDelta::minutes(5);
pub const MAX_FRESH: TimeDelta = TimeDelta::hours(24);
/// Largest discovery document or JWKS read.
const MAX_BODY: usize = 1024 * 1024;

/// How fresh keys are for a JWKS response's `Cache-Control` value.
pub fn freshness(cache_control: Option<&str>) -> TimeDelta {
    let mut fresh = MIN_FRESH;
    for directive in cache_control.unwrap_or("").split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-cache" || d == "no-store" {
            return MIN_FRESH;
        }
        if let Some(secs) = d.strip_prefix("max-age=") {
            if let Ok(secs) = secs.trim_matches('"').parse::<i64>() {
                fresh = TimeDelta::seconds(secs.min(MAX_FRESH.num_seconds()));
            }
        }
    }
    fresh.clamp(MIN_FRESH, MAX_FRESH)
}

/// Why a fetch failed: its metrics label and what the log says.
#[derive(Debug)]
pub struct FetchError {
    pub outcome: JwksFetch,
    pub message: String,
}

impl FetchError {
    fn new(outcome: JwksFetch, message: impl Into<String>) -> Self {
        FetchError {
            outcome,
            message: message.into(),
        }
    }
}

/// The HTTPS client and the metrics every issuer's fetches share.
#[derive(Clone)]
pub struct Fetcher {
    pub client: reqwest::Client,
    pub metrics: Arc<Metrics>,
}

impl Fetcher {
    /// One GET of a JSON document, with its `Cache-Control`.
    async fn get_json(&self, url: &str) -> Result<(Value, Option<String>), FetchError> {
        let unreachable = |e: reqwest::Error| {
            FetchError::new(JwksFetch::Unreachable, format!("GET {url}: {}", Chain(&e)))
        };
        let mut resp = self.client.get(url).send().await.map_err(unreachable)?;
        if !resp.status().is_success() {
            return Err(FetchError::new(
                JwksFetch::HttpError,
                format!("GET {url}: HTTP {}", resp.status()),
            ));
        }
        let cache_control = resp
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(FetchError::new(
                    JwksFetch::InvalidDocument,
                    format!("GET {url}: the document is larger than {MAX_BODY} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let json = serde_json::from_slice(&body).map_err(|e| {
            FetchError::new(
                JwksFetch::InvalidDocument,
                format!("GET {url}: not JSON: {e}"),
            )
        })?;
        Ok((json, cache_control))
    }

    /// Discovery, then the JWKS: the keys and how long they stay fresh.
    pub async fn fetch(&self, issuer: &str) -> Result<(KeySet, TimeDelta), FetchError> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (doc, _) = self.get_json(&discovery).await?;
        let invalid = |m: String| FetchError::new(JwksFetch::InvalidDocument, m);
        match doc.get("issuer").and_then(Value::as_str) {
            Some(i) if i == issuer => {}
            got => {
                return Err(FetchError::new(
                    JwksFetch::WrongIssuer,
                    format!("{discovery} names the issuer {got:?}, not {issuer:?}"),
                ))
            }
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{discovery} has no \"jwks_uri\"")))?;
        if !jwks_uri.starts_with("https://") {
            return Err(invalid(format!(
                "{discovery}: jwks_uri {jwks_uri:?} is not https://"
            )));
        }
        let (jwks, cache_control) = self.get_json(jwks_uri).await?;
        let keys = KeySet::parse(&jwks).map_err(|e| invalid(format!("{jwks_uri}: {e}")))?;
        if keys.is_empty() {
            return Err(invalid(format!(
                "{jwks_uri}: no RS256 or ES256 signing key with a kid"
            )));
        }
        Ok((keys, freshness(cache_control.as_deref())))
    }
}

/// What the cache knows of one issuer.
#[derive(Default)]
struct State {
    /// The last good keys.
    keys: Option<Arc<KeySet>>,
    fresh_until: Option<DateTime<Utc>>,
    /// When the last refetch for an unknown `kid` started (the once-a-minute limit), and
    /// when the last fetch of any kind failed.
    last_unknown_kid_fetch: Option<DateTime<Utc>>,
    last_failure: Option<DateTime<Utc>>,
    /// Bumped by every finished fetch, so a request that waited for the lock sees that
    /// another fetched meanwhile.
    generation: u64,
    /// A background refresh is running.
    refreshing: bool,
}

/// The keys of one configured issuer.
pub struct IssuerCache {
    issuer: String,
    state: Mutex<State>,
    fetching: tokio::sync::Mutex<()>,
}

/// What a look at the state decided.
enum Next {
    Found(Key),
    Refused(Refusal),
    /// Fetch, unless the generation moved on since this one; `unknown_kid` when the fetch
    /// is a refetch for a `kid` the keys lack (rate-limited), not a cold fetch.
    Fetch {
        generation: u64,
        unknown_kid: bool,
    },
}

impl IssuerCache {
    pub fn new(issuer: &str) -> IssuerCache {
        IssuerCache {
            issuer: issuer.to_string(),
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every update
        // is a few assignments), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key `kid` of this issuer at `now`.
    pub async fn key(
        self: &Arc<Self>,
        fetcher: &Fetcher,
        kid: &str,
        now: DateTime<Utc>,
    ) -> Result<Key, Refusal> {
        // At most: a fetch of our own, or a wait for another's, then a final look.
        for _ in 0..3 {
            let (generation, unknown_kid) = match self.look(fetcher, kid, now) {
                Next::Found(k) => return Ok(k),
                Next::Refused(r) => return Err(r),
                Next::Fetch {
                    generation,
                    unknown_kid,
                } => (generation, unknown_kid),
            };
            let _one_fetch = self.fetching.lock().await;
            // Another request's fetch finished while this one waited: look again first
            // (concurrent requests for one new kid share one fetch).
            if self.state().generation != generation {
                continue;
            }
            if unknown_kid {
                let mut s = self.state();
                // Another unknown kid's refetch may have started this minute meanwhile.
                if s.last_unknown_kid_fetch
                    .is_some_and(|t| now - t < REFETCH_INTERVAL)
                {
                    return Err(Refusal::UnknownKey {
                        kid: kid.to_string(),
                    });
                }
                s.last_unknown_kid_fetch = Some(now);
            }
            self.refresh(fetcher, now).await;
        }
        match self.look(fetcher, kid, now) {
            Next::Found(k) => Ok(k),
            Next::Refused(r) => Err(r),
            Next::Fetch { .. } => Err(self.unreachable(now)),
        }
    }

    fn unreachable(&self, now: DateTime<Utc>) -> Refusal {
        let since = self
            .state()
            .last_failure
            .map_or(TimeDelta::zero(), |f| now - f);
        let left = (FAILURE_BACKOFF - since).num_milliseconds().max(0);
        Refusal::IssuerUnreachable {
            retry_after_seconds: u64::try_from((left + 999) / 1000).unwrap_or(1).max(1),
        }
    }

    /// Decides from the state alone: a key, a refusal, or a fetch. Starts a background
    /// refresh of stale keys.
    fn look(self: &Arc<Self>, fetcher: &Fetcher, kid: &str, now: DateTime<Utc>) -> Next {
        let mut s = self.state();
        let generation = s.generation;
        let backing_off = s.last_failure.is_some_and(|f| now - f < FAILURE_BACKOFF);
        let Some(keys) = s.keys.clone() else {
            drop(s);
            return if backing_off {
                Next::Refused(self.unreachable(now))
            } else {
                Next::Fetch {
                    generation,
                    unknown_kid: false,
                }
            };
        };
        if let Some(key) = keys.get(kid) {
            let stale = s.fresh_until.is_none_or(|t| now >= t);
            if stale && !s.refreshing && !backing_off {
                s.refreshing = true;
                drop(s);
                self.refresh_in_background(fetcher, now);
            }
            return Next::Found(key.clone());
        }
        let recently = s
            .last_unknown_kid_fetch
            .is_some_and(|t| now - t < REFETCH_INTERVAL);
        // A fetch in flight may bring the kid: wait for it rather than refuse (the waiter
        // fetches again only if the minute allows).
        let in_flight = self.fetching.try_lock().is_err();
        if recently && !in_flight {
            Next::Refused(Refusal::UnknownKey {
                kid: kid.to_string(),
            })
        } else {
            Next::Fetch {
                generation,
                unknown_kid: true,
            }
        }
    }

    fn refresh_in_background(self: &Arc<Self>, fetcher: &Fetcher, now: DateTime<Utc>) {
        let (me, fetcher) = (Arc::clone(self), fetcher.clone());
        let task = async move {
            let _one_fetch = me.fetching.lock().await;
            me.refresh(&fetcher, now).await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn(task)),
            // No runtime to run it on: the next request that finds the keys stale tries again.
            Err(_) => self.state().refreshing = false,
        }
    }

    /// One fetch; the caller holds the fetch lock. Keeps the last good keys on failure.
    async fn refresh(&self, fetcher: &Fetcher, now: DateTime<Utc>) {
        let result = fetcher.fetch(&self.issuer).await;
        let outcome = match &result {
            Ok(_) => JwksFetch::Ok,
            Err(e) => e.outcome,
        };
        fetcher.metrics.jwks_fetch(&self.issuer, outcome);
        let mut s = self.state();
        s.generation += 1;
        s.refreshing = false;
        match result {
            Ok((keys, fresh)) => {
                tracing::info!(
                    issuer = %self.issuer,
                    keys = keys.len(),
                    fresh_seconds = fresh.num_seconds(),
                    "fetched the issuer's signing keys"
                );
                s.keys = Some(Arc::new(keys));
                s.fresh_until = Some(now + fresh);
                s.last_failure = None;
            }
            Err(e) => {
                s.last_failure = Some(now);
                let kept = s.keys.as_ref().map_or(0, |k| k.len());
                tracing::warn!(
                    issuer = %self.issuer,
                    outcome = outcome.as_str(),
                    kept_keys = kept,
                    error = %e.message,
                    "cannot fetch the issuer's signing keys; {}",
                    if kept > 0 {
                        "the last good keys stay in use"
                    } else {
                        "ID tokens of this issuer are refused (503) until a fetch succeeds"
                    }
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_honoured_within_five_minutes_and_a_day() {
        let m = TimeDelta::minutes;
        assert_eq!(freshness(None), m(5));
        assert_eq!(freshness(Some("public, max-age=3600")), m(60));
        assert_eq!(freshness(Some("max-age=60")), m(5));
        assert_eq!(freshness(Some("max-age=999999999")), TimeDelta::hours(24));
        assert_eq!(freshness(Some("Max-Age=600, must-revalidate")), m(10));
        assert_eq!(freshness(Some("no-cache, max-age=3600")), m(5));
        assert_eq!(freshness(Some("no-store")), m(5));
        assert_eq!(freshness(Some("max-age=soon")), m(5));
        assert_eq!(freshness(Some("max-age=-5")), m(5));
        assert_eq!(FETCH_TIMEOUT, Duration::from_secs(5));
        assert_eq!(REFETCH_INTERVAL, TimeDelta::seconds(60));
    }
}
