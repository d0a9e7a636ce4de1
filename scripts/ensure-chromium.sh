#!/usr/bin/env bash
# Headless Chromium for the admin-page browser tests. Playwright cannot download its own browser
# here, so the distribution's package is used through `executable_path`.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
    exit 0
fi
echo "chromium not found; install it (Debian: apt-get install chromium) to run the browser tests" >&2
exit 1
