//! regauth: a token-authentication server for Docker/OCI registries.
//!
//! Dependency direction (each module's `//!` repeats its own place in it):
//!
//! ```text
//! main/cli -> server -> http -> {auth, admin services} -> {domain, store, jwt}
//! ```
//!
//! `domain` is pure (no axum, sled or JWT types); `store` is persistence only and knows
//! nothing of HTTP; `jwt` knows keys and claims; `http` is the only module that speaks axum.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod jwt;
pub mod server;
pub mod service;
pub mod store;

pub use http::app;
pub use server::AppState;
