#!/usr/bin/env bash
# The long fuzz campaign (docs/fuzzing.md): runs each target in fuzz/ for --seconds
# (default 600), --jobs at a time (default 2), under `nice -n 15`, and prints one markdown
# table row per target: executions, executions per second, coverage (libFuzzer's `cov:` and
# `ft:`), corpus size, crashes.
#
#   scripts/fuzz/run.sh [--seconds N] [--jobs N] [TARGET...]
#
# Each target's corpus grows in fuzz/corpus-run/TARGET (seeded from fuzz/corpus/TARGET, not
# committed); its log is fuzz/corpus-run/TARGET.log; a crashing input is written to
# fuzz/artifacts/TARGET/. Needs the nightly toolchain and cargo-fuzz.
set -euo pipefail

cd "$(dirname "$0")/../.."

seconds=600
jobs=2
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "fuzz-run: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

(cd fuzz && nice -n 10 cargo +nightly fuzz build -O -s none)
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release
mkdir -p fuzz/corpus-run

run_one() {
    local t="$1"
    local dict=()
    [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
    mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t"
    nice -n 15 "$bin_dir/$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" "${dict[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"fuzz/corpus-run/$t.log" 2>&1
    echo "$?" >"fuzz/corpus-run/$t.rc"
}

# At most $jobs at a time.
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    echo "fuzz-run: $(date -u +%H:%M:%S) start $t (${seconds} s)" >&2
    run_one "$t" &
done
wait

echo "| target | executions | exec/s | cov | ft | corpus (files) | crashes |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
    log="fuzz/corpus-run/$t.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    corpus=$(find "fuzz/corpus-run/$t" -type f | wc -l)
    crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
    echo "| $t | ${runs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | $corpus | $crashes (exit $(cat "fuzz/corpus-run/$t.rc")) |"
done
