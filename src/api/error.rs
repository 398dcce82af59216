//! The admin API's error body, IONOS-shaped: `{"httpStatus","messages":[{errorCode,message}]}`.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every admin-API error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The reply's HTTP status, repeated.
    #[schema(example = 400)]
    pub http_status: u16,
    /// One message (regauth reports the first problem it finds).
    pub messages: Vec<ErrorMessage>,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    /// `VALIDATION_ERROR`, `BAD_REQUEST`, `UNAUTHORIZED`, `NOT_FOUND`, `METHOD_NOT_ALLOWED`,
    /// `CONFLICT`, `PAYLOAD_TOO_LARGE` or `INTERNAL_ERROR`.
    #[schema(example = "VALIDATION_ERROR")]
    pub error_code: String,
    /// What is wrong; for a broken rule it starts with the field
    /// (`properties.scopes[0].actions: ...`).
    pub message: String,
}

impl ErrorBody {
    /// The first message's text, if any.
    pub fn message(&self) -> Option<&str> {
        self.messages.first().map(|m| m.message.as_str())
    }
}
