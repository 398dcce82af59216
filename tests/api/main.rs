//! In-process HTTP tests: the whole router driven with `tower::ServiceExt::oneshot`.
mod admin;
mod support;
mod token;
