//! Application services: the token decision (`auth`), token administration (`admin`) and
//! its audit trail (`audit`), last-use tracking (`usage`), expiry warnings (`expiry`), the
//! throttling of failed authentication (`throttle`), the rate limit of anonymous requests
//! (`anonymous`), registry activity (`activity`) and the webhooks for token events
//! (`webhook`). The metrics they count are in [`crate::metrics`].
//!
//! Services take and return domain types; they know nothing of axum or wire formats.
pub mod activity;
pub mod admin;
pub mod admins;
pub mod anonymous;
pub mod audit;
pub mod auth;
pub mod expiry;
pub mod keys;
pub mod throttle;
pub mod usage;
pub mod webhook;

pub use admin::{
    AdminError, AdminService, ListFilter, NewToken, PutOutcome, SweepTrigger, TokenChanges,
};
pub use auth::{
    AnonymousRequest, AuthError, AuthService, Credentials, Denial, Issued, TokenRequest,
};
pub use throttle::Throttle;
pub use usage::UsageRecorder;
