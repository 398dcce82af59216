#!/usr/bin/env bash
# The one test command: installs the test peers, runs clippy with the crate's [lints] (it
# fails on an unwrap, expect or panic outside tests), then runs every test
# (unit tests, tests/api, tests/cli, tests/e2e) with `cargo test --all-targets`, and the two
# tests of the load benchmark's tools (the baseline route and regauth-seed), which exist only
# with `--features bench-baseline`,
# then scripts/test/schemathesis.sh (the live server against its OpenAPI document), then
# scripts/fuzz/smoke.sh (every fuzz target over its seeds and a few seconds more).
# Extra arguments go to the first cargo test (and skip the second), e.g. `scripts/test.sh --test e2e`.
# Runs as root: the e2e tests start their own dockerd.
set -euo pipefail

cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
Usage: scripts/test.sh [--quick] [--help] [CARGO TEST ARGUMENTS...]

The whole test suite, as CI runs it (.ci/run). As root: it installs what is missing
(scripts/test/install-deps.sh: Debian packages, npm and PyPI packages into the repository,
the nightly toolchain's cargo-fuzz), runs clippy, every cargo test (unit, tests/api,
tests/cli, tests/e2e), the bench-baseline tests, schemathesis and the fuzz smoke run.

  --quick   No installs, no root, no docker, no browser, no PostgreSQL, no registry: the unit tests,
            tests/api and tests/cli without the docker, compose, PostgreSQL and shell
            completion tests. For contributors; a few minutes. CI never runs this.
  --help    This text, and nothing else.

Any other arguments go to the first `cargo test` and skip the bench-baseline, schemathesis
and fuzz steps, e.g. `scripts/test.sh --test e2e throttle::`.
Times on a 2-core machine are in docs/development.md.
USAGE
}

case "${1:-}" in
    -h|--help)
        usage
        exit 0
        ;;
    --quick)
        shift
        export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
        echo "==> quick: cargo test --lib --test api --test cli (no docker, compose, PostgreSQL or shell completions)"
        # The names skipped here are the tests that start dockerd, docker-compose, a
        # PostgreSQL cluster, a registry, the npm OIDC issuer or another shell; everything
        # else of these three binaries runs.
        exec cargo test --lib --test api --test cli "$@" -- \
            --skip store::postgres:: --skip store::tests::postgres:: \
            --skip store::conformance::postgres:: --skip store::conformance::outbox::postgres:: \
            --skip compose:: --skip docker:: --skip completions:: \
            --skip readme_quick_start_runs_twice_from_a_fresh_clone \
            --skip create_show_and_check_oidc_with_a_real_issuer
        ;;
esac

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: must run as root (the end-to-end tests start dockerd)" >&2
    exit 1
fi

echo "==> installing test dependencies (scripts/test/install-deps.sh)"
bash scripts/test/install-deps.sh

echo "==> cargo clippy --all-targets --all-features (Cargo.toml [lints]: no unwrap, expect or panic outside tests)"
cargo clippy --all-targets --all-features --quiet

echo "==> cargo test --all-targets $*"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# Every cargo test's output is also kept, to add up the results in the closing line.
results=$(mktemp)
fuzz_log=$(mktemp)
fuzz_pid=
cleanup() {
    [ -n "$fuzz_pid" ] && kill "$fuzz_pid" 2>/dev/null
    rm -f "$results" "$fuzz_log"
}
trap cleanup EXIT
if [ $# -eq 0 ]; then
    # The fuzz targets' build (nightly, a target dir of its own, minutes of CPU) runs at the
    # lowest priority while the tests run: the docker and browser tests leave a core idle
    # much of the time. The smoke step below waits for it (its own build is then a no-op).
    cargo test --all-targets --no-run --quiet
    echo "==> building the fuzz targets in the background (nice 19; log in the smoke step)"
    (cd fuzz && nice -n 19 cargo +nightly fuzz build -O -s none >"$fuzz_log" 2>&1) &
    fuzz_pid=$!
fi
cargo test --all-targets "$@" 2>&1 | tee -a "$results"

if [ $# -eq 0 ]; then
    echo "==> cargo test --features bench-baseline --test api bench_"
    cargo test --features bench-baseline --test api bench_ 2>&1 | tee -a "$results"
    echo "==> scripts/test/schemathesis.sh"
    bash scripts/test/schemathesis.sh
    echo "==> scripts/fuzz/smoke.sh"
    if ! wait "$fuzz_pid"; then
        echo "background fuzz build failed; its log:" >&2
        cat "$fuzz_log" >&2
    fi
    fuzz_pid=
    bash scripts/fuzz/smoke.sh
fi

# One closing line over every cargo test binary (schemathesis reports its own cases above).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$results"
