//! End-to-end tests: the real `regauth` binary with real peers — Debian's
//! CNCF distribution registry (`docker-registry` 2.8) trusting it, dockerd and
//! the docker CLI, containerd's `ctr`, skopeo, and the IONOS Container
//! Registry Python SDK against the admin API.
//!
//! Every fixture (`tests/common/`) runs in its own temp dir on a port the OS
//! chose, which the program reports, and is stopped on drop, so tests run in
//! parallel; tests that use docker share one dockerd while they overlap. A missing peer fails the test with a hint to
//! run `scripts/install-test-deps.sh` — nothing is skipped.
//!
//! Run: `scripts/test.sh --test e2e` (as root; dockerd needs it). Knobs:
//! `E2E_REGAUTH_LOG` sets regauth's log filter (default `info`; a failing
//! test prints the tail of every fixture's log), `E2E_REGAUTH_BIN` runs the
//! suite against another build of the server.

#[path = "../common/mod.rs"]
mod common;

mod catalog;
mod console;
mod docker;
mod durability;
mod ionos_sdk;
mod lifecycle;
mod refresh;
mod registries;
mod revocation;
mod skopeo;
mod startup;
