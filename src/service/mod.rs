//! Application services: the token decision (`auth`) and token administration (`admin`).
//!
//! Dependency direction: `http -> service -> {domain, store, jwt}`. Services take and return
//! domain types; they know nothing of axum or wire formats.
pub mod admin;
pub mod auth;

pub use admin::{AdminError, AdminService, NewToken, PutOutcome, TokenChanges};
pub use auth::{AuthError, AuthService, Credentials, Denial, Issued, TokenRequest};
