#!/usr/bin/env bash
# Instructions per token request, and where they go (issue 22): the release server under
# callgrind, driven by wrk on loopback, /auth then the signing-only baseline /bench/sign.
# Instruction counts do not depend on how busy the machine is, so this measures the cost of
# each part of a request on the shared 2-core machine where req/s cannot. Not part of
# `cargo test` or CI.
#
# Seeds a store of 10 tokens (reused), starts `valgrind --tool=callgrind --instr-atstart=no
# regauth serve`, warms it up, then for each route: instrumentation on, wrk for --duration
# seconds, dump, instrumentation off. It prints, per route, the requests served and the
# inclusive instructions per request of the whole process and of the functions below, from
# `callgrind_annotate --inclusive=yes` (functions inlined into their caller count there).
# Under valgrind ring takes its non-ADX code path, so the signature's share is larger than
# natively.
#
# Usage: scripts/bench/profile.sh [--bin DIR] [--duration 20] [--conns 4]
#                                 [--work target/bench-profile] [--port 5191]
# DIR holds `regauth` and `regauth-seed` built with `--features bench-baseline` (default
# target/release). Needs valgrind, wrk, curl.
set -euo pipefail

cd "$(dirname "$0")/../.."
BIN_DIR=target/release
DURATION=20
CONNS=4
WORK=target/bench-profile
PORT=5191
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN_DIR="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --conns) CONNS="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
for tool in valgrind callgrind_control callgrind_annotate wrk curl; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
BIN_DIR=$(cd "$BIN_DIR" && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
QUERY="service=registry.local&scope=repository:bench/app:pull,push&scope=repository:bench/base:pull"
base="http://127.0.0.1:$PORT"

if [ ! -f "$WORK/seeded" ]; then
    rm -rf "$WORK/data"
    "$BIN_DIR/regauth-seed" --data-dir "$WORK/data" --count 10 --creds "$WORK/creds.txt" --sample 10 >&2
    touch "$WORK/seeded"
fi
cat >"$WORK/regauth.toml" <<TOML
listen = "127.0.0.1:$PORT"
public_url = "$base"
data_dir = "$WORK/data"
[admin]
token = "bench-admin-token-0123456789"
[jwt]
key = "$WORK/certs/signing.key"
certificate = "$WORK/certs/signing.crt"
TOML
cat >"$WORK/auth.lua" <<'LUA'
local creds = {}
function init(args)
    for line in io.lines(args[1]) do creds[#creds + 1] = line end
end
function request()
    return wrk.format(nil, nil, { ["Authorization"] = creds[math.random(#creds)] })
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT requests=%d errors=%d non2xx=%d\n", summary.requests,
        e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

rm -f "$WORK"/callgrind.out.*
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out.%p" \
    "$BIN_DIR/regauth" serve --config "$WORK/regauth.toml" >"$WORK/server.log" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    curl -sf "$base/health" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -sf "$base/health" >/dev/null || { echo "server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }
wrk -t1 -c"$CONNS" -d3s -s "$WORK/auth.lua" "$base/auth?$QUERY" -- "$WORK/creds.txt" >/dev/null
wrk -t1 -c"$CONNS" -d3s "$base/bench/sign" >/dev/null

# measure LABEL URL -> the dump file's requests; fails on errors.
measure() {
    local label=$1 url=$2 out
    callgrind_control -i on "$PID" >/dev/null
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/auth.lua" "$url" -- "$WORK/creds.txt" | grep '^RESULT')
    callgrind_control -d "$label" "$PID" >/dev/null
    callgrind_control -i off "$PID" >/dev/null
    case "$out" in *"errors=0 non2xx=0"*) ;; *) echo "$label: failed requests: $out" >&2; exit 1 ;; esac
    echo "$out" | sed 's/.*requests=\([0-9]*\).*/\1/'
}
AUTH_N=$(measure auth "$base/auth?$QUERY")
SIGN_N=$(measure sign "$base/bench/sign")

# The functions reported, as `callgrind_annotate` names them (a regular expression each).
FUNCS=(
    'regauth::service::auth::AuthService::issue'
    'regauth::service::auth::AuthService::check_password'
    'regauth::store::sled::Engine::find_by_name'
    'regauth::domain::secret::SecretHash::of'
    'regauth::domain::access::decide_with_public'
    'regauth::jwt::issuer::Issuer::issue'
    'regauth::service::auth::AuthService::observe'
    'regauth::service::throttle::Throttle::check'
    'regauth::service::throttle::Throttle::succeeded'
    'regauth::service::usage::UsageRecorder::record'
    'regauth::metrics::Metrics::decision'
    'regauth::metrics::Metrics::token_latency'
    'tracing_subscriber::fmt::fmt_layer::Layer<S,N,E,W> as tracing_subscriber::layer::Layer<S>>::on_event'
    'regauth::http::auth::reply'
    'regauth::http::extract::basic_credentials'
    'regauth::domain::request::parse_scope'
    'regauth::http::auth::scopes'
    'regauth::logging::Fields as tracing_core::field::Visit>::record_debug'
    'regauth::http::extract::parse_pairs'
    'regauth::http::extract::parse_query'
)
report() { # LABEL N DUMP-NUMBER
    local label=$1 n=$2 file=$WORK/callgrind.out.$PID.$3 total
    callgrind_annotate --inclusive=yes --threshold=100 "$file" >"$WORK/$label.annotate.txt"
    # The dump's own total (callgrind_annotate's "PROGRAM TOTALS" can wrap after a zeroing).
    total=$(awk '/^totals:/ { print $2; exit }' "$file")
    echo "### $label: $n requests, $((total / n)) instructions per request (whole process)"
    echo
    echo "| function (inclusive) | instructions per request |"
    echo "|---|---:|"
    for f in "${FUNCS[@]}"; do
        awk -v f="$f" -v n="$n" 'index($0, f) && $1 ~ /^[0-9,]+$/ {
            v = $1; gsub(/,/, "", v); if (v + 0 > best) best = v + 0 }
            END { if (best > 0) printf "| `%s` | %d |\n", f, best / n }' "$WORK/$label.annotate.txt"
    done
    echo
}
{
    echo "Profile $(date -u +%Y-%m-%dT%H:%M:%SZ), $BIN_DIR/regauth, $CONNS connections, ${DURATION}s per route, load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    report auth "$AUTH_N" 1
    report sign "$SIGN_N" 2
} | tee "$WORK/profile.md"
