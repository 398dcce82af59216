#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/e2e) need on a fresh Debian machine:
# the real peers (CNCF distribution registry, skopeo, dockerd + containerd + ctr, wrk,
# docker-compose to check that docker-compose.yml parses, zsh and fish to check the shell
# completion scripts)
# from Debian's packages, and the IONOS Container Registry Python SDK in .venv/.
# Idempotent: when everything is present it only checks and returns.
# Must run as root (apt-get). Safe to run without a terminal (CI).
set -euo pipefail

cd "$(dirname "$0")/.."


log() { printf 'install-test-deps: %s\n' "$*"; }

need_apt=0
for bin in /usr/bin/docker-registry /usr/bin/skopeo /usr/sbin/dockerd /usr/bin/docker /usr/bin/ctr /usr/bin/containerd /usr/bin/wrk /usr/bin/docker-compose /usr/bin/zsh /usr/bin/fish; do
    if [ ! -x "$bin" ]; then
        log "missing $bin"
        need_apt=1
    fi
done

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
    log "apt-get install docker-registry skopeo docker.io containerd wrk docker-compose zsh fish"
    apt-get install -y -qq \
        docker-registry skopeo docker.io containerd wrk docker-compose zsh fish \
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

log "ok: $(/usr/bin/docker-registry --version 2>&1 | head -1); $(/usr/bin/skopeo --version); $(/usr/sbin/dockerd --version); $("$venv/bin/pip" show ionoscloud-container-registry 2>/dev/null | sed -n "s/^Version: /ionoscloud-container-registry /p")"
