#!/usr/bin/env bash
# Run MMR's test suite: installs what is missing (virtualenv + package with [test] extras), then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh tests/messaging -x
set -euo pipefail
cd "$(dirname "$0")"
MMR_EXTRAS="test" source scripts/ensure_venv.sh
scripts/ensure_browser.sh  # Debian's chromium for the dashboard's browser test (installed when missing and root)
# nautilus_trader in its own .venv-nautilus for its IB-adapter conformance test (the test fails if this can't)
scripts/ensure_nautilus.sh >/dev/null || true
# Two workers, each test file on one worker (module-scoped platforms stay shared within a file); every test
# uses free ports and its own temp MMR_HOME, so files run side by side safely. Add `-n 0` for one process.
exec "$MMR_PY" -m pytest -n 2 --dist loadfile "$@"
