#!/usr/bin/env bash
# RSS over time at 1 000 000 tokens (issue 22's memory budget): runs scripts/bench/load.sh on
# one store size and samples the server's VmRSS every --every seconds while it runs, so that
# the last-use flushes (every 60 s) show in the curve. Not part of `cargo test` or CI.
#
# Usage: scripts/bench/rss.sh --bin DIR [--size 1000000] [--conns "16 64"] [--duration 30]
#                             [--rounds 2] [--every 10] [--work target/bench-rss]
#                             [--store-from DIR] [--port 5101]
# DIR holds `regauth` and `regauth-seed` built with `--features bench-baseline`.
# --store-from copies a seeded store directory (a load.sh work directory's store-SIZE) so that
# two builds start from identical stores, instead of seeding one.
# Prints "seconds-since-start VmRSS-MB" lines and load.sh's report; writes both to WORK.
set -euo pipefail

cd "$(dirname "$0")/../.."
BIN_DIR=""
SIZE=1000000
CONNS="16 64"
DURATION=30
ROUNDS=2
EVERY=10
WORK=target/bench-rss
FROM=""
PORT=5101
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN_DIR="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --conns) CONNS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --every) EVERY="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --store-from) FROM="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$BIN_DIR" ] || { echo "--bin is required" >&2; exit 2; }
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
if [ -n "$FROM" ] && [ ! -f "$WORK/store-$SIZE/seeded" ]; then
    rm -rf "$WORK/store-$SIZE"
    cp -a "$FROM" "$WORK/store-$SIZE"
fi
CONFIG=$WORK/store-$SIZE/regauth.toml
SAMPLES=$WORK/rss-$(date -u +%Y%m%dT%H%M%SZ).txt

bash scripts/bench/load.sh --sizes "$SIZE" --conns "$CONNS" --duration "$DURATION" \
    --rounds "$ROUNDS" --warmup 3 --bin "$BIN_DIR/regauth" --seed "$BIN_DIR/regauth-seed" \
    --work "$WORK" --port "$PORT" --out "$WORK/load.md" >/dev/null &
LOAD=$!
trap 'kill $LOAD 2>/dev/null || true' EXIT
start=$(date +%s)
while kill -0 "$LOAD" 2>/dev/null; do
    pid=$(pgrep -f -- "serve --config $CONFIG" | head -1 || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
        awk -v t="$(( $(date +%s) - start ))" '/^VmRSS/ { printf "%d %.1f\n", t, $2 / 1024 }' \
            "/proc/$pid/status" | tee -a "$SAMPLES"
    fi
    sleep "$EVERY"
done
wait "$LOAD"
trap - EXIT
cat "$WORK/load.md"
