#!/usr/bin/env bash
# Run by run_tests.sh: make sure headless Chromium (Debian's `chromium` package) is there for the dashboard's
# browser test (tests/web drives it with Playwright; `playwright install` is never used: no browser downloads).
# Installs it with apt-get when it is missing and we are root (or have password-less sudo); otherwise it says
# how and returns 0 — the browser test then FAILS with the same hint (it never skips).
# MMR_CHROMIUM overrides the path (default /usr/bin/chromium).
set -euo pipefail

chromium="${MMR_CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    echo "mmr: $chromium is missing and installing it needs root: run 'apt-get install -y chromium' as root" \
         "(or set MMR_CHROMIUM); tests/web will fail until then" >&2
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "mmr: $chromium is missing and there is no apt-get: install Chromium and set MMR_CHROMIUM;" \
       "tests/web will fail until then" >&2
  exit 0
fi
echo "mmr: installing chromium for the dashboard's browser test (apt-get)…" >&2
if ! { "${sudo_cmd[@]}" apt-get update -qq \
       && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2
then
  echo "mmr: apt-get could not install chromium; tests/web will fail until it is installed" >&2
fi
