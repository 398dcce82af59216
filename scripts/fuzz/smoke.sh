#!/usr/bin/env bash
# The short fuzz run of the test command (docs/fuzzing.md): builds every target in fuzz/
# with `cargo +nightly fuzz build`, then runs each over its seed corpus and for a few seconds
# more (FUZZ_SMOKE_SECONDS, default 8). New inputs go to a scratch directory, not to the
# committed seeds. Prints one line per target; exits non-zero when any target finds a crash,
# a failed invariant, a timeout or a leak (libFuzzer's artifact is kept and named).
# Needs the nightly toolchain and cargo-fuzz (scripts/test/install-deps.sh installs both).
set -euo pipefail

cd "$(dirname "$0")/../.."

seconds="${FUZZ_SMOKE_SECONDS:-8}"
start=$(date +%s)

log() { printf 'fuzz-smoke: %s\n' "$*"; }

# No sanitizer: the crate forbids unsafe code, and without ASan the short run covers about
# twice the inputs. Release with debug assertions and overflow checks (cargo fuzz's default).
log "building the fuzz targets (cargo +nightly fuzz build -O -s none)"
(cd fuzz && nice -n 10 cargo +nightly fuzz build -O -s none 2>&1 | grep -E '^(error|warning: unused)|Finished' || true)
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release
targets=$(cd fuzz && cargo +nightly fuzz list)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p fuzz/artifacts
failed=0
for t in $targets; do
    if [ ! -x "$bin_dir/$t" ]; then
        log "$t FAILED: not built ($bin_dir/$t missing)"
        failed=1
        continue
    fi
    mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
    dict=()
    [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
    out="$scratch/$t.log"
    set +e
    nice -n 10 "$bin_dir/$t" "$scratch/$t" "fuzz/corpus/$t" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$out" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out")
    cov=$(grep -oE "cov: [0-9]+ ft: [0-9]+" "$out" | tail -1 || true)
    if [ "$rc" -eq 0 ]; then
        log "$t ok: ${runs:-?} runs (${rate:-?}/s), ${cov:-no coverage line}"
    else
        failed=1
        artifact=$(grep -oE "fuzz/artifacts/$t/[^ ]+" "$out" | tail -1 || true)
        log "$t FAILED (exit $rc): input ${artifact:-not written}; output:"
        grep -vE '^(#[0-9]+|INFO:|MS:|stat::)' "$out" | head -40 | sed 's/^/    /'
    fi
done
log "done in $(( $(date +%s) - start )) s"
if [ "$failed" -ne 0 ]; then
    log "FAILED: reproduce with: cd fuzz && cargo +nightly fuzz run -O -s none TARGET ARTIFACT"
    exit 1
fi
