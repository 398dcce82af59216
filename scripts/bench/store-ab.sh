#!/usr/bin/env bash
# A/B of two regauth builds on the store boundary (issue 22): short alternating rounds, medians.
# Not part of `cargo test` or CI; loopback only, bounded in time.
#
#   refresh-pg  POST /auth grant_type=refresh_token on PostgreSQL (docker's identity-token
#               request: find_refresh, then the token by name)
#   auth-sled   GET /auth with Basic credentials on sled
#   pg-down     PostgreSQL stopped, 64 connections of /auth for a token not cached: the
#               server's thread count, and the latency of /metrics and /health meanwhile
#
# Usage: scripts/bench/store-ab.sh A_BIN B_BIN [--rounds 3] [--duration 4] [--conns 16]
#                                  [--work target/bench-store-ab] [--port 5301]
# Needs wrk, curl, jq and PostgreSQL (initdb runs as the postgres user under WORK/pg).
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$1 B=$2
shift 2
ROUNDS=3 DURATION=4 CONNS=16 WORK=target/bench-store-ab PORT=5301
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
WORK=$(realpath -m "$WORK")
rm -rf "$WORK" && mkdir -p "$WORK/pg/socket"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PG_PORT=$((PORT + 100))
ADMIN=bench-admin-token-0123456789
chown -R postgres:postgres "$WORK/pg"
chmod o+x "$WORK" "$(dirname "$WORK")" 2>/dev/null || true
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
pg_start() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
        -o "-p $PG_PORT -k $WORK/pg/socket -c listen_addresses=127.0.0.1" start >/dev/null
}
pg_stop() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true; }
pg_start
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; pg_stop' EXIT

# start NAME BIN PORT STORE(sled|pg) -> starts a server, prints nothing
start() {
    local name=$1 bin=$2 port=$3 store=$4 dir=$WORK/$1 toml=""
    mkdir -p "$dir"
    if [ "$store" = pg ]; then
        runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$WORK/pg/socket" -p "$PG_PORT" -U postgres \
            -c "CREATE DATABASE ${name//-/_}" >/dev/null
        toml="[store]
url = \"postgres://postgres@127.0.0.1:$PG_PORT/${name//-/_}\"
tls = \"disable\""
    fi
    cat >"$dir/regauth.toml" <<TOML
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
data_dir = "$dir/data"
[admin]
token = "$ADMIN"
[jwt]
key = "$dir/certs/signing.key"
certificate = "$dir/certs/signing.crt"
$toml
TOML
    "$bin" serve --config "$dir/regauth.toml" >"$dir/server.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$dir/pid"
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
    local pw
    pw=$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        -d '{"properties":{"name":"bench-bot","scopes":[{"type":"repository","name":"bench/*","actions":["pull","push"]}]}}' \
        "http://127.0.0.1:$port/api/v1/registries/default/tokens" | jq -r .properties.credentials.password)
    printf 'Basic %s' "$(printf 'bench-bot:%s' "$pw" | base64 -w0)" >"$dir/basic"
    curl -sf -d "grant_type=password&username=bench-bot&password=$pw&service=registry.local&client_id=bench&access_type=offline" \
        "http://127.0.0.1:$port/auth" | jq -r .refresh_token >"$dir/refresh"
}

cat >"$WORK/get.lua" <<'LUA'
function init(args) wrk.headers["Authorization"] = args[1] end
function done(s, l, r)
    io.write(string.format("RESULT %.1f %.3f %.3f %d\n", s.requests / (s.duration / 1e6),
        l:percentile(50) / 1000, l:percentile(99) / 1000, s.errors.status))
end
LUA
cat >"$WORK/refresh.lua" <<'LUA'
function init(args)
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
    wrk.body = "grant_type=refresh_token&refresh_token=" .. args[1] .. "&service=registry.local&client_id=bench&scope=repository:bench/app:pull"
end
function done(s, l, r)
    io.write(string.format("RESULT %.1f %.3f %.3f %d\n", s.requests / (s.duration / 1e6),
        l:percentile(50) / 1000, l:percentile(99) / 1000, s.errors.status))
end
LUA

# run NAME PORT KIND -> "rps p50 p99 non2xx"
run() {
    local dir=$WORK/$1 url="http://127.0.0.1:$2/auth"
    if [ "$3" = refresh ]; then
        wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/refresh.lua" "$url" -- "$(cat "$dir/refresh")"
    else
        wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$WORK/get.lua" \
            "$url?service=registry.local&scope=repository:bench/app:pull" -- "$(cat "$dir/basic")"
    fi | awk '/^RESULT/{print $2, $3, $4, $5}'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

start a-pg "$A" "$PORT" pg
start b-pg "$B" $((PORT + 1)) pg
start a-sled "$A" $((PORT + 2)) sled
start b-sled "$B" $((PORT + 3)) sled
for kind in refresh-pg auth-sled; do
    for r in $(seq "$ROUNDS"); do
        for side in a b; do
            case $kind in
                refresh-pg) port=$([ $side = a ] && echo "$PORT" || echo $((PORT + 1))); run "$side-pg" "$port" refresh ;;
                auth-sled) port=$([ $side = a ] && echo $((PORT + 2)) || echo $((PORT + 3))); run "$side-sled" "$port" auth ;;
            esac >>"$WORK/$kind-$side.txt"
        done
    done
done
echo "| measurement | build | median req/s | median p50 ms | median p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|"
for kind in refresh-pg auth-sled; do
    for side in a b; do
        f=$WORK/$kind-$side.txt
        echo "| $kind | $side | $(awk '{print $1}' "$f" | median) | $(awk '{print $2}' "$f" | median) | $(awk '{print $3}' "$f" | median) | $(awk '{s+=$4} END {print s}' "$f") |"
    done
done

# PostgreSQL stopped: /auth for a name not cached (an unknown user) from 64 connections; the
# servers' threads and the latency of /metrics and /health meanwhile (10 samples each).
pg_stop
sleep 3
echo
echo "| PostgreSQL stopped | build | threads before | threads under load | /metrics median ms | /health median ms |"
echo "|---|---|---|---|---|---|"
printf 'Basic %s' "$(printf 'nobody:rga_x' | base64 -w0)" >"$WORK/nobody"
for side in a b; do
    port=$([ $side = a ] && echo "$PORT" || echo $((PORT + 1)))
    pid=$(cat "$WORK/$side-pg/pid")
    before=$(awk '/^Threads/{print $2}' "/proc/$pid/status")
    wrk -t2 -c64 -d8s -s "$WORK/get.lua" "http://127.0.0.1:$port/auth?service=registry.local" \
        -- "$(cat "$WORK/nobody")" >/dev/null 2>&1 &
    load=$!
    sleep 2
    during=$(awk '/^Threads/{print $2}' "/proc/$pid/status")
    m=$(for _ in $(seq 10); do curl -s -o /dev/null -m 10 -w '%{time_total}\n' "http://127.0.0.1:$port/metrics" -H "Authorization: Bearer $ADMIN"; done | awk '{print $1*1000}' | median)
    h=$(for _ in $(seq 10); do curl -s -o /dev/null -m 10 -w '%{time_total}\n' "http://127.0.0.1:$port/health"; done | awk '{print $1*1000}' | median)
    wait "$load" || true
    echo "| /auth from 64 connections | $side | $before | $during | $m | $h |"
done
