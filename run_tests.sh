#!/usr/bin/env bash
# Run MMR's test suite: installs what is missing (virtualenv + package with [test] extras), then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh tests/messaging -x
set -euo pipefail
cd "$(dirname "$0")"
MMR_EXTRAS="test" source scripts/ensure_venv.sh
exec "$MMR_PY" -m pytest "$@"
