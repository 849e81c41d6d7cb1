#!/usr/bin/env bash
# .ci/browser.sh - make sure Debian's Chromium and its WebDriver are installed; idempotent.
#
#   bash .ci/browser.sh        install chromium and chromium-driver from Debian's packages when
#                              /usr/bin/chromium or /usr/bin/chromedriver is missing
#
# The operator console's browser test (tests/integration/test_console_browser.py) starts both
# itself, headless, with an empty profile; nothing is downloaded at run time (no browser or
# driver "manager"): the versions are Debian's, and the driver always matches the browser.
# Needs root to install; with both present it does nothing.
set -euo pipefail

have() {
    [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]
}

if have; then
    echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) and chromedriver already installed"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "browser: must run as root to install chromium and chromium-driver" >&2
    exit 1
fi

echo "browser: installing chromium and chromium-driver from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
# Only refresh the package lists when they were never fetched, or when the candidate is missing.
if ! compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null || ! apt-cache show chromium-driver >/dev/null 2>&1; then
    apt-get update -q
fi
apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null

if ! have; then
    echo "browser: chromium or chromedriver still missing after apt-get install" >&2
    exit 1
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null) installed"
