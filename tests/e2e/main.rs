//! End-to-end tests: the real `regauth` binary with real peers — CNCF distribution registries
//! trusting it, dockerd and the docker CLI, containerd's `ctr`, skopeo, and the IONOS
//! Container Registry Python SDK against the admin API, and a real OpenID Connect issuer
//! (oidc-provider under node) for the keyless-CI tokens (`oidc`).
//!
//! The registry scenarios (docker login/push/pull, a push outside the scopes, skopeo
//! inspect/copy/delete, the catalog, ctr, docker's identity token) run against each of three
//! token verifiers, in test modules named after them:
//!
//! | module | verifier | binary (environment variable, default) |
//! |---|---|---|
//! | `registry_2_8` | distribution 2.8.2, Debian's `docker-registry` | `REGAUTH_TEST_REGISTRY_2`, `/usr/bin/docker-registry` |
//! | `registry_3_0` | distribution 3.0.0 | `REGAUTH_TEST_REGISTRY_3_0`, `../shared/peers/registry-3.0.0` |
//! | `registry_3_1` | the 3.1.1 token verifier | `REGAUTH_TEST_REGISTRY_3_1`, `../shared/peers/registry-3.0.0-verifier-3.1.1` |
//!
//! (`../shared` is beside the repository; for a git worktree, beside its main checkout too.)
//! A missing verifier fails its tests with a banner that names it and says how to point at
//! the binary; to leave one out on purpose, say so to the test harness:
//! `cargo test --test e2e -- --skip registry_3_0` (those tests are then "filtered out", not
//! passed). `.ci/run` refuses to start without all three.
//!
//! Every fixture (`tests/common/`) runs in its own temp dir on a port the OS chose, which the
//! program reports, and is stopped on drop, so tests run in parallel; tests that use docker
//! share one dockerd while they overlap. A missing peer fails the test with a hint to run
//! `scripts/test/install-deps.sh` — nothing is skipped.
//!
//! Run: `scripts/test.sh --test e2e` (as root; dockerd needs it). Knobs:
//! `E2E_REGAUTH_LOG` sets regauth's log filter (default `info`; a failing
//! test prints the tail of every fixture's log), `E2E_REGAUTH_BIN` runs the
//! suite against another build of the server.
// Test code: a failed unwrap or expect is a failed test (the crate denies them elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

/// For each `scenario(verifier: Verifier)` listed, one test per registry verifier:
/// `registry_2_8::scenario`, `registry_3_0::scenario`, `registry_3_1::scenario`.
macro_rules! on_every_verifier {
    ($($scenario:ident),+ $(,)?) => {
        mod registry_2_8 {
            $(#[test]
            fn $scenario() {
                super::$scenario(crate::common::Verifier::V2_8)
            })+
        }
        mod registry_3_0 {
            $(#[test]
            fn $scenario() {
                super::$scenario(crate::common::Verifier::V3_0)
            })+
        }
        mod registry_3_1 {
            $(#[test]
            fn $scenario() {
                super::$scenario(crate::common::Verifier::V3_1)
            })+
        }
    };
}

mod activity;
mod catalog;
mod console;
mod docker;
mod dockerd;
mod durability;
mod hardening;
mod ionos_sdk;
mod keys;
mod lifecycle;
mod limits;
mod networks;
mod oidc;
mod public;
mod refresh;
mod registries;
mod replicas;
mod revocation;
mod skopeo;
mod startup;
mod throttle;
mod verifiers;
mod webhooks;
