#!/usr/bin/env bash
# .ci/scaleout.sh - make sure Debian's PostgreSQL server and HAProxy are installed; idempotent.
#
#   bash .ci/scaleout.sh       install postgresql and haproxy from Debian's packages when
#                              /usr/lib/postgresql/*/bin/postgres or /usr/sbin/haproxy is missing
#
# The scale-out tests (tests/integration/gallery/test_postgres_store.py, tests/e2e/test_scaleout.py)
# start their own PostgreSQL cluster (initdb in a temp dir, a Unix socket and 127.0.0.1 only) and
# their own HAProxy; nothing here starts a service. Needs root to install; with both present it
# does nothing.
set -euo pipefail

have() {
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && [[ -x /usr/sbin/haproxy ]]
}

if have; then
    echo "scaleout: $(ls -d /usr/lib/postgresql/*/bin/postgres | tail -1) and $(/usr/sbin/haproxy -v | head -1) already installed"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "scaleout: must run as root to install postgresql and haproxy" >&2
    exit 1
fi

echo "scaleout: installing postgresql and haproxy from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
if ! compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null || ! apt-cache show haproxy >/dev/null 2>&1; then
    apt-get update -q
fi
# policy-rc.d: the packages' own services stay stopped (the tests start private instances).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -q --no-install-recommends postgresql haproxy >/dev/null

if ! have; then
    echo "scaleout: postgresql or haproxy still missing after apt-get install" >&2
    exit 1
fi
echo "scaleout: $(/usr/sbin/haproxy -v | head -1) installed"
