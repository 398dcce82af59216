#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/e2e) need on a fresh Debian machine:
# chromium, chromium-driver, Node and playwright-core (npm ci) for the console tests;
# oidc-provider (npm ci) for the keyless-CI tests' OpenID Connect issuer;
# the real peers (CNCF distribution registry, skopeo, dockerd + containerd + ctr, wrk,
# docker-compose to run docker-compose.yml and docker-compose.ha.yml, debootstrap to build the
# debian:bookworm-slim stand-in the images start from, zsh and fish to check the shell
# completion scripts, PostgreSQL for the PostgreSQL store)
# from Debian's packages, the IONOS Container Registry Python SDK in .venv/, schemathesis
# (scripts/test/schemathesis.sh) in .venv-schemathesis/, and for the fuzz smoke run
# (scripts/fuzz/smoke.sh) the nightly Rust toolchain and cargo-fuzz.
# Idempotent: when everything is present it only checks and returns.
# Must run as root (apt-get). Safe to run without a terminal (CI).
set -euo pipefail

cd "$(dirname "$0")/../.."


log() { printf 'install-test-deps: %s\n' "$*"; }

need_apt=0
for bin in /usr/bin/docker-registry /usr/bin/skopeo /usr/sbin/dockerd /usr/bin/docker /usr/bin/ctr /usr/bin/containerd /usr/bin/wrk /usr/bin/docker-compose /usr/bin/zsh /usr/bin/fish /usr/sbin/debootstrap; do
    if [ ! -x "$bin" ]; then
        log "missing $bin"
        need_apt=1
    fi
done

# The console's browser tests (tests/e2e/console.rs): Debian's chromium and its driver, and
# Node to run playwright-core (tests/browser). Node and npm are only installed when absent, so
# a Node from elsewhere (e.g. NodeSource, which bundles npm) is left alone.
console_pkgs=""
for pair in /usr/bin/chromium:chromium /usr/bin/chromedriver:chromium-driver; do
    if [ ! -x "${pair%%:*}" ]; then
        log "missing ${pair%%:*}"
        console_pkgs="$console_pkgs ${pair#*:}"
        need_apt=1
    fi
done
if ! command -v node >/dev/null 2>&1; then
    log "missing node"
    console_pkgs="$console_pkgs nodejs"
    need_apt=1
fi
if ! command -v npm >/dev/null 2>&1; then
    log "missing npm"
    console_pkgs="$console_pkgs npm"
    need_apt=1
fi

# PostgreSQL for the PostgreSQL store's tests (tests/common/postgres.rs starts private
# clusters with initdb and pg_ctl; the package's own cluster service is not started).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "missing PostgreSQL (initdb)"
    console_pkgs="$console_pkgs postgresql"
    need_apt=1
fi

if [ "$need_apt" = 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        log "installing Debian packages needs root; run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Keep package post-install scripts from starting daemons (docker, registry):
    # the tests start their own instances on random ports.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    log "apt-get update"
    apt-get update -qq
    log "apt-get install docker-registry skopeo docker.io containerd wrk docker-compose debootstrap zsh fish$console_pkgs"
    apt-get install -y -qq \
        docker-registry skopeo docker.io containerd wrk docker-compose debootstrap zsh fish $console_pkgs \
        >/tmp/install-test-deps-apt.log 2>&1 || {
            tail -50 /tmp/install-test-deps-apt.log >&2
            exit 1
        }
    if [ "$created_policy" = 1 ]; then
        rm -f "$policy"
    fi
fi

# skopeo refuses to copy without a signature policy; Debian ships one via
# containers-common, but create the permissive default if it is absent.
if [ ! -e /etc/containers/policy.json ]; then
    mkdir -p /etc/containers
    printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' > /etc/containers/policy.json
fi

# The Debian registry package may have started its own service on :5000.
# The tests use random ports, so it is harmless, but say so when it is there.
if command -v ss >/dev/null 2>&1 && ss -ltn 2>/dev/null | grep -q '127.0.0.1:5000\|\*:5000\|:::5000'; then
    log "note: something listens on port 5000 (tests use random ports, ignoring)"
fi

# playwright-core for the console's browser tests, exactly as pinned in package-lock.json.
# It downloads no browser: the tests drive Debian's /usr/bin/chromium.
browser=tests/browser
lock_stamp="$browser/node_modules/.package-lock.installed"
if ! cmp -s "$browser/package-lock.json" "$lock_stamp"; then
    log "npm ci in $browser"
    (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$browser/package-lock.json" "$lock_stamp"
fi

# oidc-provider (panva) for the keyless-CI tests' OpenID Connect issuer (tests/oidc-issuer,
# started by tests/common/oidc.rs), exactly as pinned in package-lock.json; offline afterwards.
issuer=tests/oidc-issuer
issuer_stamp="$issuer/node_modules/.package-lock.installed"
if ! cmp -s "$issuer/package-lock.json" "$issuer_stamp"; then
    log "npm ci in $issuer"
    (cd "$issuer" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$issuer/package-lock.json" "$issuer_stamp"
fi

# Python SDK for the IONOS-compatibility test.
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
# Reinstall only when the pinned requirements changed since the last install.
req=tests/e2e/requirements.txt
stamp="$venv/.requirements.installed"
if ! cmp -s "$req" "$stamp"; then
    log "pip install -r $req"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
fi
"$venv/bin/python" -c 'import ionoscloud_container_registry' || {
    log "the IONOS SDK does not import from $venv; remove $venv and rerun" >&2
    exit 1
}

# schemathesis for scripts/test/schemathesis.sh, in its own venv so its dependencies cannot clash
# with the IONOS SDK's pins above. Reinstalled only when its pinned requirements changed.
st_venv=.venv-schemathesis
if [ ! -x "$st_venv/bin/python" ]; then
    log "creating $st_venv"
    python3 -m venv "$st_venv"
fi
st_req=tests/schemathesis/requirements.txt
st_stamp="$st_venv/.requirements.installed"
if ! cmp -s "$st_req" "$st_stamp"; then
    log "pip install -r $st_req"
    "$st_venv/bin/pip" install --quiet --disable-pip-version-check -r "$st_req"
    cp "$st_req" "$st_stamp"
fi
"$st_venv/bin/schemathesis" --version >/dev/null || {
    log "schemathesis does not run from $st_venv; remove $st_venv and rerun" >&2
    exit 1
}

# The fuzz smoke run (scripts/fuzz/smoke.sh): libFuzzer needs the nightly toolchain, and
# cargo-fuzz (from crates.io, pinned) drives it.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "rustup toolchain install nightly"
    rustup toolchain install nightly --profile minimal >/tmp/install-test-deps-rustup.log 2>&1 || {
        tail -20 /tmp/install-test-deps-rustup.log >&2
        exit 1
    }
fi
cargo_fuzz_version=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    log "cargo install cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --quiet
fi

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
log "ok: $("$pg_bin/postgres" --version); $(/usr/bin/chromium --version 2>/dev/null | head -1); node $(node --version); $(/usr/bin/docker-registry --version 2>&1 | head -1); $(/usr/bin/skopeo --version); $(/usr/sbin/dockerd --version); $("$venv/bin/pip" show ionoscloud-container-registry 2>/dev/null | sed -n "s/^Version: /ionoscloud-container-registry /p"); $("$st_venv/bin/schemathesis" --version); $(cargo fuzz --version); $(rustup run nightly rustc --version)"
