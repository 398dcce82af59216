#!/usr/bin/env bash
# Admin creates per second (POST /api/v1/registries/default/tokens, each with a new name), on
# the sled store and on PostgreSQL. Each 201 is sent only after the token is durable: sled
# flushes before it answers; PostgreSQL commits with synchronous_commit on, in a private
# cluster with fsync on (initdb as the postgres user under WORK/pg, port --port + 100). Not part
# of `cargo test` or CI; sibling of scripts/bench/load.sh (same release build).
#
# Usage: scripts/bench/creates.sh [--conns "1 16"] [--duration 5] [--port 5201]
#                                 [--no-build] [--work target/bench-creates] [--out FILE]
# Needs: wrk, curl, PostgreSQL (Debian's postgresql package).
set -euo pipefail

cd "$(dirname "$0")/../.."
CONNS="1 16"
DURATION=5
PORT=5201
BUILD=1
WORK=target/bench-creates
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --conns) CONNS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
if [ "$BUILD" = 1 ]; then
    cargo build --release --features bench-baseline --bin regauth
fi
BIN=$PWD/target/release/regauth
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK/results-$(date -u +%Y%m%dT%H%M%SZ).md}
ADMIN=bench-admin-token-0123456789

# Each request creates a token named c<thread>-<n>; `done` prints one machine-readable line.
cat >"$WORK/create.lua" <<'LUA'
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
end
local n = 0
function request()
    n = n + 1
    local body = string.format(
        '{"properties":{"name":"c%d-%d","scopes":[{"type":"repository","name":"team/*","actions":["pull"]}]}}',
        thread_id, n)
    return wrk.format("POST", "/api/v1/registries/default/tokens",
        { ["Authorization"] = "Bearer bench-admin-token-0123456789",
          ["Content-Type"] = "application/json" }, body)
end
function done(summary, latency, requests)
    local s = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d non2xx=%d\n",
        summary.requests / s, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

for p in "$PORT" "$((PORT + 100))"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use; pass --port" >&2
        exit 1
    fi
done
PG_DATA=$WORK/pg/data
PG_PORT=$((PORT + 100))
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    if [ -f "$PG_DATA/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
mkdir -p "$WORK/pg/socket"
chown -R postgres:postgres "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w \
    -o "-p $PG_PORT -k $WORK/pg/socket -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" \
    start >/dev/null

{
    echo "Run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Command: \`scripts/bench/creates.sh --conns \"$CONNS\" --duration $DURATION\`"
    echo
    echo "| store | conns | creates/s | p50 ms | p99 ms |"
    echo "|---|---:|---:|---:|---:|"
} | tee "$OUT"

for store in sled postgres; do
    dir=$WORK/$store
    mkdir -p "$dir"
    store_toml=""
    if [ "$store" = postgres ]; then
        runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$WORK/pg/socket" -p "$PG_PORT" -U postgres \
            -c "CREATE DATABASE creates" >/dev/null
        store_toml="[store]
url = \"postgres://postgres@127.0.0.1:$PG_PORT/creates\"
tls = \"disable\""
    fi
    cat >"$dir/regauth.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "$dir/data"
[admin]
token = "$ADMIN"
[jwt]
key = "$dir/signing.key"
certificate = "$dir/signing.crt"
$store_toml
TOML
    "$BIN" serve --config "$dir/regauth.toml" >"$dir/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    for c in $CONNS; do
        threads=1
        [ "$c" -ge 2 ] && threads=2
        out=$(wrk -t"$threads" -c"$c" -d"${DURATION}s" --timeout 10s -s "$WORK/create.lua" "http://127.0.0.1:$PORT" 2>&1)
        line=$(grep '^RESULT' <<<"$out") || { echo "wrk failed: $out" >&2; exit 1; }
        errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
        non2xx=$(sed -E 's/.* non2xx=([0-9]+).*/\1/' <<<"$line")
        if [ "$errors" != 0 ] || [ "$non2xx" != 0 ]; then
            echo "$store at $c connections: $errors socket errors, $non2xx non-2xx replies" >&2
            tail -5 "$dir/server.log" >&2
            exit 1
        fi
        sed -E "s/RESULT rps=([0-9.]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/| $store | $c | \1 | \2 | \3 |/" <<<"$line" | tee -a "$OUT"
        # Names restart at c<thread>-1 in each run: empty the store before the next run.
        kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true
        rm -rf "$dir/data"
        if [ "$store" = postgres ]; then
            runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$WORK/pg/socket" -p "$PG_PORT" -U postgres -d creates \
                -c "SET client_min_messages = warning" -c "TRUNCATE regauth_tokens CASCADE" >/dev/null
        fi
        "$BIN" serve --config "$dir/regauth.toml" >>"$dir/server.log" 2>&1 &
        SERVER=$!
        for _ in $(seq 100); do
            curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true
    SERVER=""
done
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)." | tee -a "$OUT"
echo "results in $OUT" >&2
