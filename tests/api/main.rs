//! In-process HTTP tests: the whole router driven with `tower::ServiceExt::oneshot`.
mod admin;
mod console;
mod support;
mod token;
