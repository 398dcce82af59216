//! regauth: a token-authentication server for Docker/OCI registries.
//!
//! `server` is start-up (provisioning, sweeper, listener) and builds the [`AppState`] that
//! `http` owns. `logging` is the log set-up of `serve`. `domain` is pure (no axum, sled or JWT
//! types; `text` is its byte-level splitting); `store` is persistence only and knows nothing
//! of HTTP; `jwt` knows keys and claims; `outcome` is how requests end, which the services
//! decide and `metrics` and the logs observe; `http` is the only module that speaks axum and
//! hyper (its `listener` is the accept loop with the connection limits; the throttle of failed
//! logins is policy, in `service::throttle`). `stripes` gives what every token request writes
//! (its metrics, its last use) a copy per thread.
//!
//! Which module may use which is written once, in the architecture test
//! (`src/architecture.rs`), and shown in docs/architecture.md.
#![forbid(unsafe_code)]

pub mod api;
#[cfg(test)]
mod architecture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod http;
pub mod jwt;
pub mod logging;
pub mod metrics;
pub mod oidc;
pub mod outcome;
pub mod server;
pub mod service;
pub mod store;
pub mod stripes;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod text;

/// Parsers the fuzz targets (`fuzz/`, docs/fuzzing.md) call that the rest of the public API
/// does not reach: the store's record codec. Not an API; nothing else may use it.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::store::record::{decode_grant, decode_token, encode_grant, encode_token};
}

pub use http::app;
pub use http::AppState;
