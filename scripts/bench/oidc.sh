#!/usr/bin/env bash
# Load benchmark of ID-token logins (issue 18's Performance section). Not part of `cargo test`.
#
# Starts the keyless-CI tests' OpenID Connect issuer (tests/oidc-issuer, oidc-provider under
# node; `npm ci` there first, or scripts/test/install-deps.sh) over HTTPS with a CA made here by
# openssl, and one release `regauth serve` (sled) trusting it through `[federation] ca_file`.
# It creates a password token and a federated token (GitHub kind, the owner id pinned), mints
# 50 ID tokens (RS256, one hour), and drives the server from wrk on loopback:
#   GET /auth?service=registry.local&scope=repository:acme/app:pull,push
# with Basic credentials: the password token's, or the federated token's name with one of the
# ID tokens drawn at random. Every ID token is used once before measuring (warm JWKS cache, so
# no request makes a network call; the issuer's JWKS counter is reported to show it). For each
# connection count it runs --rounds rounds of password logins then ID-token logins, --duration
# seconds each, and reports the mean req/s, median p50, worst p99, the server's CPU time per
# request, and the ID-token/password ratio (with its lowest and highest round).
#
# Usage: scripts/bench/oidc.sh [--conns "16 64"] [--duration 5] [--rounds 3] [--port 5301]
#                              [--no-build] [--bin PATH] [--work target/bench-oidc] [--out FILE]
# Needs: wrk, curl, openssl, node.
set -euo pipefail

cd "$(dirname "$0")/../.."
CONNS="16 64"
DURATION=5
ROUNDS=3
PORT=5301
BUILD=1
BIN=""
WORK=target/bench-oidc
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --conns) CONNS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN="$2"; BUILD=0; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
for tool in wrk curl openssl node; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
[ -d tests/oidc-issuer/node_modules/oidc-provider ] \
    || { echo "run \`npm ci\` in tests/oidc-issuer (or scripts/test/install-deps.sh) first" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
    cargo build --release --bin regauth
fi
BIN=${BIN:-$PWD/target/release/regauth}
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK/results-$(date -u +%Y%m%dT%H%M%SZ).md}
ADMIN=bench-admin-token-0123456789
BASE="http://127.0.0.1:$PORT"
QUERY="service=registry.local&scope=repository:acme/app:pull,push"

PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap stop_all EXIT

# The issuer's CA and certificate (127.0.0.1).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=regauth bench issuer CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$WORK/issuer.key" -out "$WORK/issuer.csr" 2>/dev/null
openssl x509 -req -in "$WORK/issuer.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -days 2 \
    -CAcreateserial -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') -out "$WORK/issuer.pem" 2>/dev/null

node tests/oidc-issuer/issuer.mjs --cert "$WORK/issuer.pem" --key "$WORK/issuer.key" \
    --port-file "$WORK/issuer.port" --name bench >"$WORK/issuer.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do [ -s "$WORK/issuer.port" ] && break; sleep 0.1; done
[ -s "$WORK/issuer.port" ] || { echo "the issuer did not start:" >&2; cat "$WORK/issuer.log" >&2; exit 1; }
ISSUER="https://127.0.0.1:$(cat "$WORK/issuer.port")"
issuer_curl() { curl -sf --cacert "$WORK/ca.pem" "$@"; }

cat >"$WORK/regauth.toml" <<TOML
listen = "127.0.0.1:$PORT"
public_url = "$BASE"
data_dir = "$WORK/data"
[admin]
token = "$ADMIN"
[jwt]
key = "$WORK/certs/signing.key"
certificate = "$WORK/certs/signing.crt"
[federation]
ca_file = "$WORK/ca.pem"
[[federation.issuers]]
url = "$ISSUER"
kind = "github"
TOML
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "port $PORT is in use; pass --port" >&2
    exit 1
fi
"$BIN" serve --config "$WORK/regauth.toml" >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 600); do curl -sf "$BASE/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "$BASE/health" >/dev/null || { echo "regauth did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }

admin() { curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$@"; }
password=$(admin -d '{"properties":{"name":"bench-password","scopes":[{"type":"repository","name":"acme/*","actions":["pull","push"]}],"status":"enabled","expiryDate":null}}' \
    "$BASE/api/v1/registries/default/tokens" | sed -E 's/.*"password":"([^"]+)".*/\1/')
admin -d "{\"properties\":{\"name\":\"bench-oidc\",\"scopes\":[{\"type\":\"repository\",\"name\":\"acme/*\",\"actions\":[\"pull\",\"push\"]}],\"status\":\"enabled\",\"expiryDate\":null,\"federation\":{\"issuer\":\"$ISSUER\",\"audiences\":[\"https://registry.example.test\"],\"claims\":{\"repository_owner_id\":\"1234567\",\"ref\":\"refs/heads/main\"}}}}" \
    "$BASE/api/v1/registries/default/tokens" >/dev/null \
    || { echo "creating the federated token failed" >&2; exit 1; }

printf 'Basic %s\n' "$(printf 'bench-password:%s' "$password" | base64 -w0)" >"$WORK/password.txt"
: >"$WORK/idtoken.txt"
for i in $(seq 50); do
    claims="{\"sub\":\"repo:acme/app$i:ref:refs/heads/main\",\"repository\":\"acme/app$i\",\"repository_id\":\"$((5000 + i))\",\"repository_owner\":\"acme\",\"repository_owner_id\":\"1234567\",\"ref\":\"refs/heads/main\"}"
    id_token=$(issuer_curl "$ISSUER/token" -d grant_type=urn:regauth:test:mint-id-token -d client_id=minter \
        -d audience=https://registry.example.test --data-urlencode "claims=$claims" -d lifetime=3600 \
        | sed -E 's/.*"id_token":"([^"]+)".*/\1/')
    printf 'Basic %s\n' "$(printf 'bench-oidc:%s' "$id_token" | base64 -w0)" >>"$WORK/idtoken.txt"
done
while read -r line; do
    curl -sf -H "Authorization: $line" "$BASE/auth?$QUERY" | grep -q '"token"' \
        || { echo "GET /auth refused a benchmark credential (see $WORK/server.log)" >&2; exit 1; }
done < <(cat "$WORK/password.txt" "$WORK/idtoken.txt")
jwks_warm=$(issuer_curl "$ISSUER/test/stats")


proc_cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
# One wrk run: "req/s p50 p99 cpu_us_per_request".
run_wrk() {
    local creds=$1 conns=$2 dur=$3 c0 c1 line
    c0=$(proc_cpu "$SERVER")
    line=$(wrk -t2 -c"$conns" -d"${dur}s" -s scripts/bench/auth.lua "$BASE" -- "/auth?$QUERY" "$creds" | grep '^RESULT')
    c1=$(proc_cpu "$SERVER")
    read -r rps p50 p99 n errors non2xx <<<"$(sed -E 's/[a-z0-9_]+=//g; s/^RESULT //' <<<"$line")"
    [ "$errors" = 0 ] && [ "$non2xx" = 0 ] \
        || { echo "$creds at $conns connections: $errors socket errors, $non2xx non-2xx replies" >&2; return 1; }
    awk -v r="$rps" -v a="$p50" -v b="$p99" -v c="$((c1 - c0))" -v n="$n" \
        'BEGIN { printf "%s %s %s %.0f\n", r, a, b, c * 10000 / n }'
}
summarize() {
    sort -k2,2n | awk '{ rps += $1; p50[NR] = $2; if ($3 + 0 > p99) p99 = $3 + 0; cpu += $4 }
        END { printf "%.0f %s %s %.0f\n", rps / NR, p50[int((NR + 1) / 2)], p99, cpu / NR }'
}

run_wrk "$WORK/password.txt" 16 2 >/dev/null
run_wrk "$WORK/idtoken.txt" 16 2 >/dev/null
{
    echo "Run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))."
    echo "Command: \`scripts/bench/oidc.sh --conns \"$CONNS\" --duration $DURATION --rounds $ROUNDS\`"
    echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| conns | password req/s | p50 ms | p99 ms | CPU µs/req | ID token req/s | p50 ms | p99 ms | CPU µs/req | ID token / password (rounds: lowest–highest) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"
for c in $CONNS; do
    pw_runs=""; id_runs=""; ratios=""
    for _ in $(seq "$ROUNDS"); do
        pw=$(run_wrk "$WORK/password.txt" "$c" "$DURATION")
        id=$(run_wrk "$WORK/idtoken.txt" "$c" "$DURATION")
        pw_runs+="$pw"$'\n'; id_runs+="$id"$'\n'
        ratios+="$(awk -v a="${id%% *}" -v b="${pw%% *}" 'BEGIN { printf "%.0f", a / b * 100 }')"$'\n'
    done
    read -r pw_rps pw_p50 pw_p99 pw_cpu <<<"$(grep . <<<"$pw_runs" | summarize)"
    read -r id_rps id_p50 id_p99 id_cpu <<<"$(grep . <<<"$id_runs" | summarize)"
    range=$(grep . <<<"$ratios" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }')
    ratio=$(awk -v a="$id_rps" -v b="$pw_rps" 'BEGIN { printf "%.0f", a / b * 100 }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s %% (%s) |\n' "$c" "$pw_rps" "$pw_p50" "$pw_p99" \
        "$pw_cpu" "$id_rps" "$id_p50" "$id_p99" "$id_cpu" "$ratio" "$range" | tee -a "$OUT"
done
{
    echo
    echo "Issuer requests after the warm-up: $jwks_warm; after the runs: $(issuer_curl "$ISSUER/test/stats")"
    echo "(equal: no ID-token login made a network call)."
} | tee -a "$OUT"
