#!/usr/bin/env bash
# Property-based check of the live server against its own OpenAPI document with
# schemathesis (installed into .venv-schemathesis/ by scripts/test/install-deps.sh).
# Starts target/debug/regauth on a random port with a temporary data dir, config and
# signing key, creates one token through the admin API, then runs `schemathesis run` against
# /api/v1/openapi.json: the admin bearer token for /api/v1, that token's Basic credentials and
# the configured service for /auth. Fails on any server error (5xx) or any response that does
# not match the document (schema, status code, content type). Bounded by
# SCHEMATHESIS_MAX_EXAMPLES (default 25 per operation), seeded by SCHEMATHESIS_SEED (default 1);
# extra arguments go to `schemathesis run`. Run from anywhere; `cargo build` first brings
# target/debug/regauth up to date.
set -euo pipefail

cd "$(dirname "$0")/../.."

st=.venv-schemathesis/bin/schemathesis
if [ ! -x "$st" ]; then
    echo "scripts/test/schemathesis.sh: $st missing; run scripts/test/install-deps.sh" >&2
    exit 1
fi

cargo build --quiet --bin regauth
bin=target/debug/regauth

tmp=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

token="schemathesis-admin-token-0123456789"
cat > "$tmp/regauth.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$tmp/data"

[jwt]
key = "$tmp/signing.key"
certificate = "$tmp/signing.crt"
TOML

REGAUTH_ADMIN_TOKEN="$token" "$bin" serve --config "$tmp/regauth.toml" \
    --bound-address-file "$tmp/addr" >"$tmp/server.log" 2>&1 &
pid=$!

for _ in $(seq 1 100); do
    [ -s "$tmp/addr" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$tmp/server.log" >&2
        echo "scripts/test/schemathesis.sh: regauth exited before binding" >&2
        exit 1
    fi
    sleep 0.1
done
if [ ! -s "$tmp/addr" ]; then
    cat "$tmp/server.log" >&2
    echo "scripts/test/schemathesis.sh: regauth did not write its bound address" >&2
    exit 1
fi
addr=$(cat "$tmp/addr")
echo "schemathesis: regauth at http://$addr"

# A token for the token endpoint (/auth): created through the admin API so its Basic
# credentials are known, and the one service of the default config, so /auth is exercised
# past its credential check instead of answering 400/401 to everything.
py=.venv-schemathesis/bin/python
password=$(ADDR="$addr" TOKEN="$token" "$py" - <<'PY'
import json, os, urllib.request
req = urllib.request.Request(
    f"http://{os.environ['ADDR']}/api/v1/registries/default/tokens",
    data=json.dumps({"properties": {"name": "schemathesis-basic", "scopes": [
        {"type": "repository", "name": "*", "actions": ["pull", "push"]}]}}).encode(),
    headers={"Authorization": f"Bearer {os.environ['TOKEN']}",
             "Content-Type": "application/json"},
    method="POST")
with urllib.request.urlopen(req) as r:
    print(json.load(r)["properties"]["credentials"]["password"])
PY
)

# Each security scheme of the document gets its credentials: the admin bearer token for
# /api/v1, that token's Basic credentials for GET /auth; POST /auth gets them as a password
# grant in its form body (the body.* keys apply only to POST, the query.* key only to GET).
cat > "$tmp/schemathesis.toml" <<TOML
[auth.openapi.adminToken]
bearer = "$token"

[auth.openapi.tokenCredentials]
username = "schemathesis-basic"
password = "$password"

[[operations]]
include-path = "/auth"

[operations.parameters]
"query.service" = "registry.local"
"body.grant_type" = "password"
"body.service" = "registry.local"
"body.username" = "schemathesis-basic"
"body.password" = "$password"
TOML

status=0
"$st" --config-file "$tmp/schemathesis.toml" run "http://$addr/api/v1/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color \
    "$@" || status=$?

if [ "$status" != 0 ]; then
    echo "scripts/test/schemathesis.sh: schemathesis failed (exit $status); server log:" >&2
    tail -50 "$tmp/server.log" >&2
fi
exit "$status"
