#!/usr/bin/env bash
# A/B of the token endpoint between two builds (e.g. before and after a change), for a
# throughput budget such as "within 5 %". Not part of `cargo test` or CI.
#
# Runs scripts/bench/load.sh on build A and build B alternately, --pairs times, with the order
# flipped every pair (A B, B A, A B, ...) so that a machine that slows down or speeds up during
# the run hits both builds alike. Each run is `bench/load.sh --sizes 10 --conns CONNS
# --duration D --rounds R` with that build's own store. It prints, per connection count, the
# /auth req/s and server CPU µs per request of every run, their means, and B relative to A:
#   - req/s of B / req/s of A (the budget's measure; noisy when the machine is shared),
#   - /auth-to-/bench/sign ratio of B / that of A (each run against its own signing-only
#     baseline, which cancels drift between runs),
#   - server CPU per /auth request (the steadiest measure on a shared machine).
# Each build needs `--features bench-baseline` (for /bench/sign and regauth-seed).
#
# Usage: scripts/bench/ab.sh --a DIR --b DIR [--pairs 3] [--conns "16 64"] [--duration 5]
#                            [--rounds 3] [--work target/bench-ab] [--out FILE]
# DIR holds that build's `regauth` and `regauth-seed` (e.g. an old checkout's
# target/release).
set -euo pipefail

cd "$(dirname "$0")/../.."
A=""
B=""
PAIRS=3
CONNS="16 64"
DURATION=5
ROUNDS=3
WORK=target/bench-ab
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --a) A="$2"; shift 2 ;;
        --b) B="$2"; shift 2 ;;
        --pairs) PAIRS="$2"; shift 2 ;;
        --conns) CONNS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
for dir in "$A" "$B"; do
    [ -n "$dir" ] || { echo "--a and --b are required" >&2; exit 2; }
    for bin in regauth regauth-seed; do
        [ -x "$dir/$bin" ] || { echo "$dir/$bin is missing: build it with --features bench-baseline" >&2; exit 1; }
    done
done
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK/ab-$(date -u +%Y%m%dT%H%M%SZ).md}
ROWS=$WORK/rows.txt
: >"$ROWS"

run() { # build-label dir run-number
    local label=$1 dir=$2 n=$3 out="$WORK/$1-$3.md"
    echo "==> run $n of build $label ($dir)" >&2
    bash scripts/bench/load.sh --sizes 10 --conns "$CONNS" --duration "$DURATION" \
        --rounds "$ROUNDS" --bin "$dir/regauth" --seed "$dir/regauth-seed" \
        --work "$WORK/store-$label" --out "$out" >/dev/null
    # The main table's rows (11 columns; the report's later tables have fewer):
    # | 10 | conns | auth rps | p50 | p99 | sign rps | p50 | p99 | ratio | cpu auth, sign | others |
    awk -F'|' -v l="$label" -v n="$n" 'NF == 13 && $2 ~ /^ *10 *$/ {
        gsub(/ /, "", $3); gsub(/ /, "", $4); gsub(/ /, "", $7); split($11, c, ","); gsub(/ /, "", c[1]);
        gsub(/ /, "", $12);
        print l, n, $3, $4, $7, c[1], $12 }' "$out" >>"$ROWS"
}

for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) = 1 ]; then
        run A "$A" "$i"; run B "$B" "$i"
    else
        run B "$B" "$i"; run A "$A" "$i"
    fi
done

{
    echo "A/B run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs; load average now $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "A = $A, B = $B; $PAIRS pairs; each run: bench/load.sh --sizes 10 --conns \"$CONNS\" --duration $DURATION --rounds $ROUNDS."
    echo
    echo "| conns | build | /auth req/s per run | mean | auth/sign per run | mean | CPU µs/req per run | mean | others' CPU % per run |"
    echo "|---:|---|---|---:|---|---:|---|---:|---|"
    for c in $CONNS; do
        for l in A B; do
            awk -v l="$l" -v c="$c" '$1 == l && $3 == c {
                rps = rps sep $4; r += $4; ratio = ratio sep sprintf("%.3f", $4 / $5); q += $4 / $5;
                cpu = cpu sep $6; u += $6; oth = oth sep $7; sep = ", "; k++ }
                END { printf "| %s | %s | %s | %.0f | %s | %.3f | %s | %.1f | %s |\n", c, l, rps, r / k, ratio, q / k, cpu, u / k, oth }' "$ROWS"
        done
    done
    echo
    echo "B relative to A (means):"
    echo
    for c in $CONNS; do
        awk -v c="$c" '$3 == c { r[$1] += $4; q[$1] += $4 / $5; u[$1] += $6; k[$1]++ }
            END { printf "- %s connections: req/s %+.1f %%, auth/sign ratio %+.1f %%, CPU per request %+.1f %%\n", c,
                  (r["B"] / k["B"]) / (r["A"] / k["A"]) * 100 - 100,
                  (q["B"] / k["B"]) / (q["A"] / k["A"]) * 100 - 100,
                  (u["B"] / k["B"]) / (u["A"] / k["A"]) * 100 - 100 }' "$ROWS"
    done
} | tee "$OUT"
