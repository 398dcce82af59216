//! In-process HTTP tests: the whole router driven with `tower::ServiceExt::oneshot`.
mod admin;
mod console;
mod denials;
mod support;
mod token;
