//! In-process HTTP tests: the whole router driven with `tower::ServiceExt::oneshot`.
mod admin;
mod audit;
#[path = "../common/mod.rs"]
mod common;
mod console;
mod denials;
mod lifecycle;
mod logs;
mod metrics;
mod openapi;
mod support;
mod token;
