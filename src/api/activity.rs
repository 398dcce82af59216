//! Registry activity on the wire: the events regauth received from a registry's
//! notifications (`GET …/activity`), and the reply to the registry's `POST /events/{registryId}`.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::token::{Links, ResourceType};

/// One event a registry reported: a manifest pushed, pulled or deleted (blob events are not
/// kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityEvent {
    /// The registry's event id.
    pub id: String,
    /// When the registry says it happened (RFC 3339, microseconds).
    #[schema(value_type = String, format = DateTime, example = "2026-06-01T12:00:00.123456Z")]
    pub time: DateTime<Utc>,
    /// `push`, `pull`, `delete` or `mount`.
    #[schema(example = "push")]
    pub action: String,
    #[schema(example = "team/app")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Bytes of the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The token's name (`actor.name`); empty for anonymous requests.
    pub actor: String,
    /// The client's address as the registry saw it (`request.addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The registry process that reported it (`source.instanceID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// One page of events, newest first (the token list's page shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActivityPage {
    /// `<registryId>-activity`, or `<tokenId>-activity`.
    pub id: String,
    /// Always `collection`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub href: String,
    pub items: Vec<ActivityEvent>,
    /// Index of the first item among all matching events.
    pub offset: usize,
    /// The page size asked for.
    pub limit: usize,
    /// Items on this page.
    pub count: usize,
    /// Events matching the query; at least this many when `totalIsLowerBound`.
    pub total: usize,
    /// Present and `true` when the server stopped counting matches (1 000 past the page's
    /// end): there may be more than `total`. Absent when `total` is exact.
    #[serde(
        rename = "totalIsLowerBound",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub total_is_lower_bound: bool,
    #[serde(rename = "_links")]
    pub links: Links,
}

/// The reply to a registry's notification envelope: it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventsReceived {
    /// Events in the envelope.
    pub received: usize,
    /// Events about images (manifests, tags, deletes); blob events are dropped.
    pub kept: usize,
    /// Kept events not stored before (a retried envelope stores none).
    pub stored: usize,
}

/// Where a registry sends its notifications (its `notifications:` block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// `POST` endpoint for the registry's envelopes.
    pub url: String,
    /// The registry's events secret, sent as `Authorization: Bearer <secret>`. Shown to
    /// editors and owners only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
