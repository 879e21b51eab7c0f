#!/usr/bin/env bash
# Install the Debian packages the test suite drives: chromium (the CSM page's
# headless-browser test, through playwright) and promtool (the Prometheus alert
# rules' unit tests, from the `prometheus` package).
#
# Why Debian packages: they come from the distribution mirror (reachable from CI
# and these machines) and need no run-time download (`playwright install` cannot
# fetch browsers here; promtool is not on PyPI). Idempotent: installs only what is
# missing, so README/Makefile/CI can call it every time. Installing `prometheus`
# does not start a server where there is no init system; nothing here needs one.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PROMTOOL="${PROMTOOL:-/usr/bin/promtool}"

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium fonts-dejavu-core)
[ -x "$PROMTOOL" ] || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
    echo "already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"), $("$PROMTOOL" --version 2>&1 | head -1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: ${missing[*]} missing and installing needs root (or sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
echo "installed: $("$CHROMIUM" --version 2>/dev/null), $("$PROMTOOL" --version 2>&1 | head -1)"
