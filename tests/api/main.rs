//! In-process HTTP tests: the whole router driven with `tower::ServiceExt::oneshot`.
// Test code: a failed unwrap or expect is a failed test (the crate denies them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod activity;
mod admin;
mod admins;
mod audit;
#[path = "../common/mod.rs"]
mod common;
mod console;
mod denials;
mod federation;
mod keys;
mod lifecycle;
mod logs;
mod metrics;
mod openapi;
mod support;
mod throttle;
mod token;
