//! Registry activity: the events a registry reports (push, pull, delete, mount), as regauth
//! keeps them, and the parser of distribution's notification envelope
//! (`application/vnd.docker.distribution.events.v1+json`, `{"events": [...]}`).
//!
//! Only what a person asks about is kept: manifest events (a manifest or index media type, or
//! a tag) and deletes. Blob events (one per layer) are dropped by [`parse_envelope`], so a
//! registry configured without `ignore` still stores one row per image, not one per layer.
//! Unknown fields are ignored; an unknown action or a malformed event rejects the whole
//! envelope (nothing of it is stored), with an error naming the event and the field.
//!
//! Pure: depends on `serde`, `chrono` and [`super::RepoPattern`] only.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::{RepoPattern, ValidationError};

/// Most events accepted in one envelope. distribution sends a handful per request; a larger
/// envelope is not from a registry.
pub const MAX_EVENTS_PER_ENVELOPE: usize = 1000;

/// Longest event id, repository, tag, actor, address or user agent kept (characters).
pub const MAX_FIELD_LEN: usize = 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Push,
    Pull,
    Delete,
    Mount,
}

impl EventAction {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Push => "push",
            EventAction::Pull => "pull",
            EventAction::Delete => "delete",
            EventAction::Mount => "mount",
        }
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventAction {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "push" => Ok(EventAction::Push),
            "pull" => Ok(EventAction::Pull),
            "delete" => Ok(EventAction::Delete),
            "mount" => Ok(EventAction::Mount),
            _ => Err(ValidationError::new(
                "action",
                format!("{s:?} is not one of push, pull, delete, mount"),
            )),
        }
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The registry's event id (unique per registry instance; retries repeat it).
    pub id: String,
    /// regauth's registry id (from the endpoint's path, not from the event).
    pub registry: String,
    pub time: DateTime<Utc>,
    pub action: EventAction,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
    /// `actor.name`: the token's name for regauth's tokens; empty for anonymous requests.
    pub actor: String,
    /// `request.addr`: the client's address as the registry saw it.
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// `source.instanceID` (or `source.addr`): which registry process reported it.
    pub instance: Option<String>,
}

/// Why an envelope was refused. Nothing of a refused envelope is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is not a notification envelope ({{\"events\": [...]}}): {0}")]
    NotJson(String),
    #[error("{count} events in one envelope; at most {max} are accepted")]
    TooMany { count: usize, max: usize },
    #[error("events[{index}].{}: {}", .error.field, .error.rule)]
    Invalid {
        index: usize,
        error: ValidationError,
    },
}

/// Manifest and index media types (Docker and OCI): events about these are images, not blobs.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

#[derive(Deserialize)]
struct WireEnvelope {
    events: Vec<WireEvent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireEvent {
    id: Option<String>,
    timestamp: Option<String>,
    action: Option<String>,
    target: WireTarget,
    request: WireRequest,
    actor: WireActor,
    source: WireSource,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireTarget {
    media_type: Option<String>,
    size: Option<u64>,
    length: Option<u64>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireRequest {
    addr: Option<String>,
    useragent: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireActor {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireSource {
    addr: Option<String>,
    #[serde(rename = "instanceID")]
    instance_id: Option<String>,
}

/// Parses an envelope sent to `registry`'s endpoint: every event is validated (an invalid one
/// refuses the envelope), then blob events are dropped. Returns the events to keep, in the
/// envelope's order.
pub fn parse_envelope(registry: &str, body: &[u8]) -> Result<Vec<Event>, EnvelopeError> {
    let envelope: WireEnvelope =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    if envelope.events.len() > MAX_EVENTS_PER_ENVELOPE {
        return Err(EnvelopeError::TooMany {
            count: envelope.events.len(),
            max: MAX_EVENTS_PER_ENVELOPE,
        });
    }
    let mut kept = Vec::new();
    for (index, wire) in envelope.events.into_iter().enumerate() {
        let event =
            event(registry, wire).map_err(|error| EnvelopeError::Invalid { index, error })?;
        if is_image_event(&event) {
            kept.push(event);
        }
    }
    Ok(kept)
}

/// Whether `event` is about an image (kept) rather than a blob (dropped): a delete, a tag, or
/// a manifest or index media type.
pub fn is_image_event(event: &Event) -> bool {
    event.action == EventAction::Delete
        || event.tag.is_some()
        || event
            .media_type
            .as_deref()
            .is_some_and(|m| MANIFEST_MEDIA_TYPES.contains(&m))
}

fn text(field: &str, v: Option<String>) -> Result<Option<String>, ValidationError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.chars().count() > MAX_FIELD_LEN => Err(ValidationError::new(
            field,
            format!("longer than {MAX_FIELD_LEN} characters"),
        )),
        Some(s) if s.chars().any(char::is_control) => Err(ValidationError::new(
            field,
            "must not contain control characters",
        )),
        Some(s) => Ok(Some(s)),
    }
}

fn required(field: &str, v: Option<String>) -> Result<String, ValidationError> {
    text(field, v)?.ok_or_else(|| ValidationError::new(field, "missing"))
}

/// `algorithm:hex` (e.g. `sha256:` and 64 hex digits).
pub fn validate_digest(field: &str, d: &str) -> Result<(), ValidationError> {
    let bad = || {
        ValidationError::new(
            field,
            format!("{d:?} is not a digest like sha256:<64 hex digits>"),
        )
    };
    let (alg, hex) = d.split_once(':').ok_or_else(bad)?;
    let alg_ok = !alg.is_empty()
        && alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
    let hex_ok = hex.len() >= 32
        && hex.len() <= 128
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if alg_ok && hex_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn event(registry: &str, w: WireEvent) -> Result<Event, ValidationError> {
    let id = required("id", w.id)?;
    let stamp = required("timestamp", w.timestamp)?;
    let time = DateTime::parse_from_rfc3339(&stamp)
        // Microseconds: what PostgreSQL keeps, so every store orders and answers alike.
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
        .map_err(|_| {
            ValidationError::new(
                "timestamp",
                format!("{stamp:?} is not an RFC 3339 time like 2026-06-01T12:00:00Z"),
            )
        })?;
    let action: EventAction = required("action", w.action)?.parse()?;
    let repository = required("target.repository", w.target.repository)?;
    let digest = text("target.digest", w.target.digest)?;
    if let Some(d) = &digest {
        validate_digest("target.digest", d)?;
    }
    Ok(Event {
        id,
        registry: registry.to_string(),
        time,
        action,
        repository,
        tag: text("target.tag", w.target.tag)?,
        digest,
        media_type: text("target.mediaType", w.target.media_type)?,
        size: w.target.size.or(w.target.length),
        actor: text("actor.name", w.actor.name)?.unwrap_or_default(),
        client_addr: text("request.addr", w.request.addr)?,
        user_agent: text("request.useragent", w.request.useragent)?,
        instance: match text("source.instanceID", w.source.instance_id)? {
            Some(i) => Some(i),
            None => text("source.addr", w.source.addr)?,
        },
    })
}

/// Which events a reader asks for. Every field narrows; results are newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityQuery {
    pub actor: Option<String>,
    pub repository: Option<RepoPattern>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub action: Option<EventAction>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl ActivityQuery {
    /// Whether `e` is one of the events asked for.
    pub fn matches(&self, e: &Event) -> bool {
        self.actor.as_deref().is_none_or(|a| e.actor == a)
            && self
                .repository
                .as_ref()
                .is_none_or(|p| p.matches(&e.repository))
            && self
                .tag
                .as_deref()
                .is_none_or(|t| e.tag.as_deref() == Some(t))
            && self
                .digest
                .as_deref()
                .is_none_or(|d| e.digest.as_deref() == Some(d))
            && self.action.is_none_or(|a| e.action == a)
            && self.since.is_none_or(|s| e.time >= s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest push by tag as distribution 2.8 sends it (the docs' example, with the
    /// fields 2.8 adds: `size`, `tag`, `request`, `actor`, `source`).
    const PUSH_28: &str = r#"{
   "events": [
      {
         "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
         "timestamp": "2016-03-09T14:44:26.402973972-08:00",
         "action": "push",
         "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": 708,
            "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
            "length": 708,
            "repository": "hello-world",
            "url": "http://192.168.100.227:5000/v2/hello-world/manifests/sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
            "tag": "latest"
         },
         "request": {
            "id": "6df24a34-0959-4923-81ca-14f09767db19",
            "addr": "192.168.64.11:42961",
            "host": "192.168.100.227:5000",
            "method": "PUT",
            "useragent": "curl/7.38.0"
         },
         "actor": {"name": "ci-bot"},
         "source": {
            "addr": "xtal.local:5000",
            "instanceID": "a53db899-3b4b-4a62-a067-8dd013beaca4"
         }
      }
   ]
}"#;

    /// A layer push: dropped.
    const BLOB: &str = r#"{"events":[{"id":"b1","timestamp":"2026-01-01T00:00:00Z",
        "action":"push","target":{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",
        "size":100,"digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "repository":"team/app"},"actor":{"name":"ci-bot"}}]}"#;

    #[test]
    fn a_manifest_push_keeps_every_field() {
        let events = parse_envelope("default", PUSH_28.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.id, "320678d8-ca14-430f-8bb6-4ca139cd83f7");
        assert_eq!(e.registry, "default");
        assert_eq!(e.time.to_rfc3339(), "2016-03-09T22:44:26.402973+00:00");
        assert_eq!(e.action, EventAction::Push);
        assert_eq!(e.repository, "hello-world");
        assert_eq!(e.tag.as_deref(), Some("latest"));
        assert_eq!(
            e.digest.as_deref(),
            Some("sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf")
        );
        assert_eq!(e.size, Some(708));
        assert_eq!(e.actor, "ci-bot");
        assert_eq!(e.client_addr.as_deref(), Some("192.168.64.11:42961"));
        assert_eq!(e.user_agent.as_deref(), Some("curl/7.38.0"));
        assert_eq!(
            e.instance.as_deref(),
            Some("a53db899-3b4b-4a62-a067-8dd013beaca4")
        );
    }

    #[test]
    fn blob_events_are_dropped_and_deletes_kept() {
        assert!(parse_envelope("r", BLOB.as_bytes()).unwrap().is_empty());
        // A manifest delete as 2.8 sends it: no media type, no tag.
        let delete = r#"{"events":[{"id":"d1","timestamp":"2026-01-01T00:00:00Z","action":"delete",
            "target":{"digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "repository":"team/app"},"request":{"addr":"127.0.0.1:1"},"actor":{}}]}"#;
        let kept = parse_envelope("r", delete.as_bytes()).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].action, EventAction::Delete);
        assert_eq!(kept[0].actor, "", "anonymous is kept under the empty name");
        // An OCI index pull without a tag (by digest): kept.
        let pull = r#"{"events":[{"id":"p1","timestamp":"2026-01-01T00:00:00Z","action":"pull",
            "target":{"mediaType":"application/vnd.oci.image.index.v1+json","repository":"a"}}]}"#;
        assert_eq!(parse_envelope("r", pull.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn unknown_fields_are_ignored_and_length_stands_in_for_size() {
        let body = r#"{"extra":1,"events":[{"id":"x","timestamp":"2026-01-01T00:00:00Z","action":"pull",
            "new":{"a":[1]},"target":{"tag":"v1","repository":"a","length":5,"references":[]}}]}"#;
        let e = parse_envelope("r", body.as_bytes()).unwrap();
        assert_eq!(e[0].size, Some(5));
        assert_eq!(e[0].tag.as_deref(), Some("v1"));
    }

    #[test]
    fn bad_envelopes_name_the_problem() {
        let cases = [
            ("not json", "not a notification envelope"),
            ("{}", "not a notification envelope"),
            (r#"{"events":{}}"#, "not a notification envelope"),
            (
                r#"{"events":[{"timestamp":"2026-01-01T00:00:00Z","action":"push","target":{"repository":"a","tag":"t"}}]}"#,
                "events[0].id: missing",
            ),
            (
                r#"{"events":[{"id":"1","timestamp":"yesterday","action":"push","target":{"repository":"a"}}]}"#,
                "events[0].timestamp: \"yesterday\" is not an RFC 3339 time",
            ),
            (
                r#"{"events":[{"id":"1","timestamp":"2026-01-01T00:00:00Z","action":"copy","target":{"repository":"a"}}]}"#,
                "events[0].action: \"copy\" is not one of push, pull, delete, mount",
            ),
            (
                r#"{"events":[{"id":"1","timestamp":"2026-01-01T00:00:00Z","action":"push","target":{"repository":"a","digest":"md5:zz"}}]}"#,
                "events[0].target.digest: \"md5:zz\" is not a digest",
            ),
            (
                r#"{"events":[{"id":"1","timestamp":"2026-01-01T00:00:00Z","action":"push","target":{}}]}"#,
                "events[0].target.repository: missing",
            ),
        ];
        for (body, want) in cases {
            let e = parse_envelope("r", body.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn an_invalid_event_refuses_the_whole_envelope() {
        let body = r#"{"events":[
            {"id":"1","timestamp":"2026-01-01T00:00:00Z","action":"push","target":{"repository":"a","tag":"t"}},
            {"id":"2","timestamp":"2026-01-01T00:00:00Z","action":"rename","target":{"repository":"a","tag":"t"}}]}"#;
        let e = parse_envelope("r", body.as_bytes()).unwrap_err();
        assert!(matches!(e, EnvelopeError::Invalid { index: 1, .. }));
    }

    #[test]
    fn too_many_events_are_refused() {
        let one = r#"{"id":"1","timestamp":"2026-01-01T00:00:00Z","action":"pull","target":{"repository":"a","tag":"t"}}"#;
        let body = format!(
            "{{\"events\":[{}]}}",
            vec![one; MAX_EVENTS_PER_ENVELOPE + 1].join(",")
        );
        assert_eq!(
            parse_envelope("r", body.as_bytes()).unwrap_err(),
            EnvelopeError::TooMany {
                count: MAX_EVENTS_PER_ENVELOPE + 1,
                max: MAX_EVENTS_PER_ENVELOPE
            }
        );
    }

    #[test]
    fn queries_narrow_by_every_field() {
        let e = parse_envelope("default", PUSH_28.as_bytes())
            .unwrap()
            .remove(0);
        assert!(ActivityQuery::default().matches(&e));
        let q = |f: fn(&mut ActivityQuery)| {
            let mut q = ActivityQuery::default();
            f(&mut q);
            q.matches(&e)
        };
        assert!(q(|q| q.repository = Some("hello-*".parse().unwrap())));
        assert!(!q(|q| q.repository = Some("team/*".parse().unwrap())));
        assert!(q(|q| q.actor = Some("ci-bot".into())));
        assert!(!q(|q| q.actor = Some("other".into())));
        assert!(!q(|q| q.action = Some(EventAction::Pull)));
        assert!(!q(|q| q.tag = Some("v2".into())));
        assert!(!q(|q| q.digest = Some("sha256:00".into())));
        assert!(!q(|q| q.since = Some(Utc::now())));
    }
}
