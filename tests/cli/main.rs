//! CLI tests: the real `regauth` binary started as `regauth serve` on an OS-chosen port in a
//! temp dir, and run again as the CLI against it, asserting stdout, stderr and exit codes.
//! Every command in both output formats, every failure path, where settings come from, the
//! compose/Docker packaging, shell completions, the documentation's references, and docker
//! itself pushing with a CLI-created token.
//!
//! The docker and registry tests need Debian's `docker-registry`, `docker.io` (dockerd and
//! the client in /usr/bin) and `containerd`, and root; the compose parse check needs
//! Debian's `docker-compose`. A missing peer fails the test with a hint: nothing is skipped.
// Test code: a failed unwrap or expect is a failed test (the crate denies them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod completions;
mod compose;
mod docker;
mod docs;
mod errors;
mod lifecycle;
mod oidc;
mod policy;
mod settings;
