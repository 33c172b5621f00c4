#!/usr/bin/env sh
# Headless Chromium for the report's browser test: Debian's chromium package, installed
# when missing (as root, or through sudo) on CI (CI=true); elsewhere only a notice.
set -eu
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
# Only CI installs system packages unasked; elsewhere the browser tests skip, saying why.
if [ "${CI:-}" != "true" ]; then
    echo "chromium is missing: the browser tests will be skipped (CI=true installs it;" \
        "or: sudo apt-get install chromium)" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "chromium is missing and installing it needs root: apt-get install chromium" >&2
    exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
chromium --version
