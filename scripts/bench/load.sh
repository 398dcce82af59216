#!/usr/bin/env bash
# Load benchmark of the token endpoint (issue 5). Not part of `cargo test` or CI.
#
# For each store size it seeds a data directory (once; reused on later runs) and starts
# `regauth serve` built with `--features bench-baseline` (one server per size, all at once,
# on ports --port, --port+1, ...), and drives them from wrk on loopback:
#   GET /auth?service=registry.local&scope=repository:bench/app:pull,push&scope=repository:bench/base:pull
# with the Basic credentials of a token drawn at random among 10 000 seeded tokens spread over
# the whole store, and, against the same server in the same run, the baseline
#   GET /bench/sign   (one ES256 signature over fixed claims with the server's key, same JSON)
# at each connection count. Before measuring, every sampled token is requested once, so the
# cells measure a warm store rather than the disk. For each connection count it runs --rounds
# rounds; a round runs, for every size in turn, /auth then the baseline for --duration seconds
# each. So drift in the speed of this shared machine hits both routes and every size alike, and
# the comparisons (auth/baseline, N tokens/10 tokens) are between neighbouring runs. Only one
# server is under load at a time. It reports, per route, the mean req/s
# over the rounds, the median p50 and the worst p99 (wrk), the server's CPU time per request;
# the ratio of the mean req/s with the lowest and highest per-round ratio; the server's VmRSS
# after the runs (and VmHWM); and how busy the machine was with other work during the cell
# (CPU used neither by this server nor by this wrk, worst round).
#
# Usage: scripts/bench/load.sh [--sizes "10 10000 100000 1000000"] [--conns "1 16 64"]
#                              [--duration 5] [--rounds 3] [--warmup 3] [--port 5101]
#                              [--no-build] [--work target/bench-load] [--out FILE]
#                              [--bin PATH --seed PATH]   (other builds, e.g. to compare two
#                              versions; implies --no-build; give each its own --work)
#                              [--store sled|postgres] [--token-cache-bytes N]
# --store postgres runs every server on a PostgreSQL database of its own in a private cluster
# (initdb as the postgres user under WORK/pg, fsync on, port --port + 100), seeded once by
# regauth-seed --store-url; default --work is then target/bench-load-pg. --token-cache-bytes
# sets [store] token_cache_bytes, for either store (0: every /auth reads the store).
# Needs: wrk (Debian's /usr/bin/wrk), curl, GNU time; fincore is optional. The full matrix takes
# ~7 min once the stores are seeded; seeding 1 000 000 tokens (0.9 GB) adds ~2 min the first time.
set -euo pipefail

cd "$(dirname "$0")/../.."
SIZES="10 10000 100000 1000000"
CONNS="1 16 64"
DURATION=5
ROUNDS=3
WARMUP=3
PORT=5101
BUILD=1
WORK=target/bench-load
OUT=""
BIN=""
SEED=""
STORE=sled
TOKEN_CACHE=""
WORK_SET=0
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) SIZES="$2"; shift 2 ;;
        --conns) CONNS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --work) WORK="$2"; WORK_SET=1; shift 2 ;;
        --store) STORE="$2"; shift 2 ;;
        --token-cache-bytes) TOKEN_CACHE="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN="$2"; BUILD=0; shift 2 ;;
        --seed) SEED="$2"; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$STORE" in
    sled) ;;
    postgres) [ "$WORK_SET" = 1 ] || WORK=target/bench-load-pg ;;
    *) echo "--store must be sled or postgres" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
    cargo build --release --features bench-baseline --bin regauth --bin regauth-seed
fi
BIN=${BIN:-$PWD/target/release/regauth}
SEED=${SEED:-$PWD/target/release/regauth-seed}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK/results-$(date -u +%Y%m%dT%H%M%SZ).md}
QUERY="service=registry.local&scope=repository:bench/app:pull,push&scope=repository:bench/base:pull"

# The load generator: each request carries the credentials of a token drawn uniformly at random
# from the credentials file (not round-robin: cycling through a working set larger than sled's
# LRU cache would defeat the cache on purpose); `done` prints one machine-readable line.

# Jiffies the whole machine spent busy (all CPUs), and those of one process.
machine_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
proc_cpu() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }

SERVER_PIDS=()
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
        fi
    done
    SERVER_PIDS=()
}

# --store postgres: one private cluster for all sizes, kept (with its data) under WORK/pg.
PG_BIN=""
PG_PORT=$((PORT + 100))
PG_DATA=$WORK/pg/data
pg_sql() { runuser -u postgres -- "$PG_BIN/psql" -X -q -A -t -h "$WORK/pg/socket" -p "$PG_PORT" -U postgres -d "${2:-postgres}" -c "$1"; }
stop_pg() {
    if [ -n "$PG_BIN" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
trap 'stop_servers; stop_pg' EXIT
if [ "$STORE" = postgres ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        rm -rf "$WORK/pg"
        mkdir -p "$WORK/pg/socket"
        chown -R postgres:postgres "$WORK/pg"
        # The work dir may be under a directory the postgres user cannot enter.
        chmod o+x "$WORK" "$(dirname "$WORK")" 2>/dev/null || true
        runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    fi
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w \
        -o "-p $PG_PORT -k $WORK/pg/socket -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_connections=200" \
        start >/dev/null
fi

# run_wrk BASE PID PATH CONNS DURATION CREDS -> "rps p50 p99 others_pct
# server_cpu_us_per_request"; fails on any socket error or non-2xx reply.
run_wrk() {
    local base=$1 pid=$2 path=$3 conns=$4 dur=$5 creds=$6 threads=2 out b0 s0 b1 s1 ncpu
    [ "$conns" -lt 2 ] && threads=1
    b0=$(machine_busy); s0=$(proc_cpu "$pid")
    out=$( /usr/bin/time -f "WRKCPU %U %S" wrk -t"$threads" -c"$conns" -d"${dur}s" \
        -s scripts/bench/auth.lua "$base" -- "$path" "$creds" 2>&1 )
    b1=$(machine_busy); s1=$(proc_cpu "$pid")
    local line wrkcpu
    line=$(grep '^RESULT' <<<"$out") || { echo "wrk failed: $out" >&2; return 1; }
    wrkcpu=$(grep '^WRKCPU' <<<"$out" | awk '{print ($2+$3)*100}')  # seconds -> jiffies (USER_HZ 100)
    ncpu=$(nproc)
    local errors non2xx
    errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.* non2xx=([0-9]+).*/\1/' <<<"$line")
    if [ "$errors" != 0 ] || [ "$non2xx" != 0 ]; then
        echo "$path at $conns connections: $errors socket errors, $non2xx non-2xx replies" >&2
        return 1
    fi
    # Share of all CPUs busy with work other than this server and this wrk.
    local others
    others=$(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v w="$wrkcpu" -v d="$dur" -v n="$ncpu" \
        'BEGIN { o = (b - s - w) / (d * 100 * n) * 100; if (o < 0) o = 0; printf "%.0f", o }')
    local requests cpu_us
    requests=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
    cpu_us=$(awk -v s="$((s1 - s0))" -v n="$requests" 'BEGIN { printf "%.0f", s * 10000 / n }')
    sed -E 's/RESULT rps=([0-9.]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+).*/\1 \2 \3/' <<<"$line" \
        | tr -d '\n'
    echo " $others $cpu_us"
}

# Rounds of one route ("rps p50 p99 others cpu" lines) -> "mean_rps median_p50 max_p99
# max_others mean_cpu".
summarize() {
    grep . | sort -k2,2n | awk '
        BEGIN { p99 = 0; oth = 0 }
        { rps += $1; p50[NR] = $2; if ($3 + 0 > p99) p99 = $3 + 0; if ($4 + 0 > oth) oth = $4 + 0; cpu += $5 }
        END { printf "%.1f %s %s %s %.0f\n", rps / NR, p50[int((NR + 1) / 2)], p99, oth, cpu / NR }'
}

{
    echo "Run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))."
    echo "Command: \`scripts/bench/load.sh --sizes \"$SIZES\" --conns \"$CONNS\" --duration $DURATION --rounds $ROUNDS --warmup $WARMUP --store $STORE${TOKEN_CACHE:+ --token-cache-bytes $TOKEN_CACHE}\`"
    echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| tokens | conns | /auth req/s | p50 ms | p99 ms | /bench/sign req/s | p50 ms | p99 ms | auth/baseline req/s (rounds: lowest–highest) | server CPU µs/req (auth, sign) | others' CPU % (auth, sign) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} | tee "$OUT"

# Seed, start and warm one server per size.
read -r -a SIZE_LIST <<<"$SIZES"
BASES=(); STARTUPS=(); WARMUPS=(); RESIDENT=()
for i in "${!SIZE_LIST[@]}"; do
    size=${SIZE_LIST[$i]}
    port=$((PORT + i))
    base="http://127.0.0.1:$port"
    dir=$WORK/store-$size
    store_toml="${TOKEN_CACHE:+[store]
token_cache_bytes = $TOKEN_CACHE}"
    if [ "$STORE" = postgres ]; then
        db_url="postgres://postgres@127.0.0.1:$PG_PORT/bench_$size"
        store_toml="[store]
url = \"$db_url\"
tls = \"disable\"
${TOKEN_CACHE:+token_cache_bytes = $TOKEN_CACHE}"
    fi
    if [ ! -f "$dir/seeded" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        if [ "$STORE" = postgres ]; then
            pg_sql "DROP DATABASE IF EXISTS bench_$size" >/dev/null
            pg_sql "CREATE DATABASE bench_$size" >/dev/null
            "$SEED" --data-dir "$dir/data" --count "$size" --creds "$dir/creds.txt" --sample 10000 \
                --store-url "$db_url" --flush-every 10000 >&2
        else
            "$SEED" --data-dir "$dir/data" --count "$size" --creds "$dir/creds.txt" --sample 10000 >&2
        fi
        touch "$dir/seeded"
    fi
    cat >"$dir/regauth.toml" <<TOML
listen = "127.0.0.1:$port"
public_url = "$base"
data_dir = "$dir/data"
[admin]
token = "bench-admin-token-0123456789"
[jwt]
key = "$dir/certs/signing.key"
certificate = "$dir/certs/signing.crt"
$store_toml
TOML
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; pass --port" >&2
        exit 1
    fi
    resident="?"
    if [ "$STORE" = sled ] && command -v fincore >/dev/null; then
        resident=$(fincore --noheadings --output RES "$dir/data/store/db" | tr -d ' ')
    fi
    started=$(date +%s.%N)
    "$BIN" serve --config "$dir/regauth.toml" >"$dir/server.log" 2>&1 &
    SERVER_PIDS+=($!)
    # sled recovers its page table at start-up: a few seconds for 1 000 000 tokens.
    for _ in $(seq 1200); do
        curl -sf "$base/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    startup=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    curl -sf "$base/health" >/dev/null || { echo "server did not start:" >&2; cat "$dir/server.log" >&2; exit 1; }
    # One checked request per route: a token with both grants, and the baseline's token.
    auth=$(head -1 "$dir/creds.txt")
    curl -sf -H "Authorization: $auth" "$base/auth?$QUERY" | grep -q '"token"' \
        || { echo "GET /auth failed on the seeded store" >&2; exit 1; }
    curl -sf "$base/bench/sign" | grep -q '"token"' \
        || { echo "GET /bench/sign failed: build with --features bench-baseline" >&2; exit 1; }
    # Warm-up: every sampled token once (16 in parallel), so each cell measures a store whose
    # working set has been read, not the disk; then a short wrk run on each route.
    awk -v u="$base/auth?$QUERY" 'NR > 1 { print "next" }
        { print "url = \"" u "\"\nheader = \"Authorization: " $0 "\"\noutput = \"/dev/null\"" }' \
        "$dir/creds.txt" >"$WORK/warm.curl"
    warm_started=$(date +%s.%N)
    curl -s --parallel --parallel-max 16 -K "$WORK/warm.curl" >/dev/null 2>&1 || true
    warmup=$(awk -v a="$warm_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    run_wrk "$base" "${SERVER_PIDS[$i]}" "/auth?$QUERY" 16 "$WARMUP" "$dir/creds.txt" >/dev/null
    run_wrk "$base" "${SERVER_PIDS[$i]}" "/bench/sign" 16 "$WARMUP" "$dir/creds.txt" >/dev/null
    BASES+=("$base"); STARTUPS+=("$startup"); WARMUPS+=("$warmup"); RESIDENT+=("$resident")
done

# The measurements: per connection count, rounds of (every size: auth, sign).
declare -A A_RUNS B_RUNS
for c in $CONNS; do
    for _ in $(seq "$ROUNDS"); do
        for i in "${!SIZE_LIST[@]}"; do
            creds=$WORK/store-${SIZE_LIST[$i]}/creds.txt
            A_RUNS[$i,$c]+="$(run_wrk "${BASES[$i]}" "${SERVER_PIDS[$i]}" "/auth?$QUERY" "$c" "$DURATION" "$creds")"$'\n'
            B_RUNS[$i,$c]+="$(run_wrk "${BASES[$i]}" "${SERVER_PIDS[$i]}" "/bench/sign" "$c" "$DURATION" "$creds")"$'\n'
        done
    done
done

# ratio_of A_LINES B_LINES -> "mean(A rps)/mean(B rps) % (lowest–highest per-round ratio)"
ratio_of() {
    paste -d' ' <(grep . <<<"$1" | cut -d' ' -f1) <(grep . <<<"$2" | cut -d' ' -f1) |
        awk '{ a += $1; b += $2; r = $1 / $2 * 100
               if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r }
             END { printf "%.0f %% (%.0f–%.0f)", a / b * 100, lo, hi }'
}

for i in "${!SIZE_LIST[@]}"; do
    for c in $CONNS; do
        read -r a_rps a_p50 a_p99 a_oth a_cpu <<<"$(summarize <<<"${A_RUNS[$i,$c]}")"
        read -r b_rps b_p50 b_p99 b_oth b_cpu <<<"$(summarize <<<"${B_RUNS[$i,$c]}")"
        ratio=$(ratio_of "${A_RUNS[$i,$c]}" "${B_RUNS[$i,$c]}")
        printf '| %s | %s | %.0f | %s | %s | %.0f | %s | %s | %s | %s, %s | %s, %s |\n' \
            "${SIZE_LIST[$i]}" "$c" "$a_rps" "$a_p50" "$a_p99" "$b_rps" "$b_p50" "$b_p99" "$ratio" \
            "$a_cpu" "$b_cpu" "$a_oth" "$b_oth" | tee -a "$OUT"
    done
done

{
    echo
    echo "/auth req/s of each store size relative to the smallest (${SIZE_LIST[0]} tokens), from the same rounds:"
    echo
    echo "| tokens | $(for c in $CONNS; do printf '%s conns | ' "$c"; done)"
    echo "|---:|$(for _ in $CONNS; do printf -- '---:|'; done)"
    for i in "${!SIZE_LIST[@]}"; do
        printf '| %s |' "${SIZE_LIST[$i]}"
        for c in $CONNS; do
            printf ' %s |' "$(ratio_of "${A_RUNS[$i,$c]}" "${A_RUNS[0,$c]}")"
        done
        echo
    done
} | tee -a "$OUT"

RSS_LINES=()
for i in "${!SIZE_LIST[@]}"; do
    pid=${SERVER_PIDS[$i]}
    dir=$WORK/store-${SIZE_LIST[$i]}
    rss=$(awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$pid/status")
    if [ "$STORE" = postgres ]; then
        disk=$(pg_sql "SELECT pg_database_size('bench_${SIZE_LIST[$i]}') / 1048576")
    else
        disk=$(du -sm "$dir/data/store" | cut -f1)
    fi
    RSS_LINES+=("| ${SIZE_LIST[$i]} | $rss | $hwm | $disk | ${RESIDENT[$i]} | ${STARTUPS[$i]} | ${WARMUPS[$i]} |")
done
stop_servers
for size in "${SIZE_LIST[@]}"; do rm -f "$WORK/store-$size/server.log"; done

{
    echo
    echo "Per server: memory after its runs (VmRSS; VmHWM is the peak), the store's size on disk"
    echo "and how much of it was in the OS page cache before start (fincore), start-up time, and"
    echo "how long the warm-up (every sampled token once, 16 in parallel) took:"
    echo
    echo "| tokens | VmRSS MB | VmHWM MB | store on disk MB | in page cache at start | start-up s | warm-up s |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${RSS_LINES[@]}"
    echo
    echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee -a "$OUT"
echo "results in $OUT" >&2
