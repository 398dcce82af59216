//! In-process HTTP tests: the whole router driven with `tower::ServiceExt::oneshot`.
mod admin;
mod console;
mod denials;
mod lifecycle;
mod support;
mod token;
