//! The webhooks' delivery log over HTTP: `GET /api/v1/webhooks/deliveries` and
//! `POST /api/v1/webhooks/deliveries/{deliveryId}/redeliver` (owners of every registry, as
//! the log spans them all).
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;

use super::activity::{number, store_error};
use super::admin::{AdminRefusals, StoreUnavailable};
use super::error::ApiError;
use super::extract::parse_query;
use super::state::AppState;
use crate::api::{self, ErrorBody};
use crate::domain::webhook::{Delivery, DeliveryState};

fn delivery_out(d: Delivery) -> api::WebhookDelivery {
    api::WebhookDelivery {
        id: d.id,
        event_id: d.event_id,
        kind: d.kind.to_string(),
        url: d.url,
        state: d.state.as_str().to_string(),
        attempts: d.attempts,
        created: d.created,
        last_attempt: d.last_attempt,
        status_code: d.last_status,
        error: d.last_error,
        next_retry: (d.state == DeliveryState::Pending).then_some(d.next_at),
    }
}

/// The most recent webhook deliveries, newest attempt first.
#[utoipa::path(
    get, path = "/api/v1/webhooks/deliveries", tag = "webhooks", operation_id = "webhooksDeliveriesGet",
    security(("adminToken" = [])),
    params(
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "How many, 1 to 1000 (default 100)."),
    ),
    responses(
        (status = 200, description = "The most recent deliveries, newest attempt first.", body = api::WebhookDeliveries),
        (status = 400, description = "`limit` is malformed.", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<api::WebhookDeliveries>, ApiError> {
    let pairs = parse_query(query.as_deref().unwrap_or(""));
    let limit = number(&pairs, "limit", api::DEFAULT_LIMIT, 1, api::MAX_LIMIT)?;
    let items: Vec<api::WebhookDelivery> = state
        .webhooks
        .deliveries(limit)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(delivery_out)
        .collect();
    Ok(Json(api::WebhookDeliveries {
        count: items.len(),
        items,
    }))
}

/// Sends a delivery again, now, whatever its state (the same body and event id; a new
/// timestamp and signature).
#[utoipa::path(
    post, path = "/api/v1/webhooks/deliveries/{deliveryId}/redeliver", tag = "webhooks",
    operation_id = "webhooksDeliveriesRedeliver",
    security(("adminToken" = [])),
    params(("deliveryId" = uuid::Uuid, Path, description = "The delivery's id.")),
    responses(
        (status = 202, description = "The delivery is due now; the deliverer sends it within a second.", body = api::WebhookDelivery),
        (status = 400, description = "`deliveryId` is not a UUID.", body = ErrorBody),
        (status = 404, description = "No such delivery (or pruned: finished deliveries are kept 7 days).", body = ErrorBody),
        AdminRefusals,
        StoreUnavailable,
    )
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<api::WebhookDelivery>), ApiError> {
    let id = id
        .parse::<uuid::Uuid>()
        .map_err(|_| ApiError::BadRequest(format!("deliveryId: {id:?} is not a UUID")))?;
    match state.webhooks.redeliver(id).await.map_err(store_error)? {
        Some(d) => Ok((StatusCode::ACCEPTED, Json(delivery_out(d)))),
        None => Err(ApiError::NotFound(format!(
            "webhook delivery {id} not found"
        ))),
    }
}
