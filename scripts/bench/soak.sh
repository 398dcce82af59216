#!/usr/bin/env bash
# Soak test: a release build of `regauth serve` on a fresh data directory under a mixed load
# for --duration seconds (default 3600), recording RSS, open fds, threads, CPU, per-interval
# p50/p99 of the token requests and the statuses of every kind of request every --interval
# seconds (default 30). Not part of the test command. See benches/RESULTS.md ("Soak").
#
#   scripts/bench/soak.sh [--duration 3600] [--interval 30] [--rate 400] [--conns 4]
#                   [--port 5201] [--work target/soak] [--out DIR] [--no-build]
#                   [--bin PATH --seed PATH] [--loads token,logins,admin,bad]
#
# The load (scripts/bench/soak.py does it): token requests from wrk (GET /auth, Basic, rate-limited
# to about --rate per second), password logins with refresh tokens then refresh grants, admin
# churn (create, patch, replace, rotate, delete, list), failing logins with wrong passwords
# (from 127.0.0.2), and expiry sweeps: the store is seeded by regauth-seed with 1000 tokens
# plus tokens whose expiries are spread over the run, so each sweep (every 30 s) deletes some.
# The server and the load generators run under `nice -n 5`. Writes soak.csv, soak.md (table
# and summary: first/last/max and slope of RSS, fds, threads, p99) and soak.svg to --out
# (default: the work directory). --loads runs only some of the loads (to find what a growth
# comes from). Needs wrk (Debian's /usr/bin/wrk) and python3.
set -euo pipefail

cd "$(dirname "$0")/../.."
DURATION=3600
INTERVAL=30
RATE=400
CONNS=4
PORT=5201
WORK=target/soak
OUT=""
BUILD=1
BIN=""
SEED=""
LOADS=token,logins,admin,bad
cmdline="scripts/bench/soak.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --interval) INTERVAL="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --conns) CONNS="$2"; shift 2 ;;
        --port) PORT="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN="$2"; BUILD=0; shift 2 ;;
        --seed) SEED="$2"; BUILD=0; shift 2 ;;
        --loads) LOADS="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "soak: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "soak: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "soak: python3 is not installed" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
    # The seeder exists only with the bench feature; one build serves both binaries (the
    # feature only adds the benchmark's /bench/sign route, which the soak never calls).
    nice -n 10 cargo build --release --features bench-baseline --bin regauth --bin regauth-seed
fi
BIN=${BIN:-$PWD/target/release/regauth}
SEED=${SEED:-$PWD/target/release/regauth-seed}
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "soak: port $PORT is in use; pass --port" >&2
    exit 1
fi

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK}
run="$WORK/run"
rm -rf "$run"
mkdir -p "$run"
# Expiring tokens: about 8 per 30-second sweep over the whole run.
expiring=$(( DURATION * 8 / 30 ))
"$SEED" --data-dir "$run/data" --count 1000 --sample 1000 --creds "$run/creds.txt" \
    --expiring "$expiring" --expire-within "$DURATION" >&2
admin_token="soak-admin-token-0123456789abcdef"
cat >"$run/regauth.toml" <<TOML
listen = "127.0.0.1:$PORT"
public_url = "http://127.0.0.1:$PORT"
data_dir = "$run/data"
[admin]
token = "$admin_token"
[jwt]
ttl_seconds = 60
key = "$run/certs/signing.key"
certificate = "$run/certs/signing.crt"
TOML

exec python3 scripts/bench/soak.py --bin "$BIN" --config "$run/regauth.toml" --data-dir "$run/data" \
    --creds "$run/creds.txt" --admin-token "$admin_token" --port "$PORT" \
    --duration "$DURATION" --interval "$INTERVAL" --rate "$RATE" --conns "$CONNS" \
    --out "$OUT" --work "$run" --command "$cmdline" --loads "$LOADS"
