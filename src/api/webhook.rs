//! The webhooks' delivery log on the wire (`GET /api/v1/webhooks/deliveries`,
//! `POST /api/v1/webhooks/deliveries/{deliveryId}/redeliver`).
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One event on its way to one webhook, with its last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// The delivery's id (`regauth webhook redeliver ID`; the `X-Regauth-Delivery` header).
    pub id: Uuid,
    /// The event's id (the body's `id`): the same in every delivery of the event.
    pub event_id: Uuid,
    /// The event type (`token.created`, …, `image.pushed`).
    #[serde(rename = "type")]
    #[schema(example = "token.created")]
    pub kind: String,
    pub url: String,
    /// `pending`, `delivered` or `failed` (given up).
    #[schema(example = "delivered")]
    pub state: String,
    /// Attempts made so far.
    pub attempts: u32,
    #[schema(value_type = String, format = DateTime)]
    pub created: DateTime<Utc>,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_attempt: Option<DateTime<Utc>>,
    /// The receiver's status code at the last attempt, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due (pending deliveries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_retry: Option<DateTime<Utc>>,
}

/// The most recent deliveries, newest attempt first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveries {
    pub items: Vec<WebhookDelivery>,
    /// Items in this list.
    pub count: usize,
}
