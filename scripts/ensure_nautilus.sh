#!/usr/bin/env bash
# Make sure .venv-nautilus holds nautilus_trader with its IB adapter, for tests/sim/test_conformance_nautilus.py
# (a nautilus TradingNode against the simulated gateway). It is a virtualenv of its own, never MMR's: the pinned
# nautilus_trader (scripts/nautilus-requirements.txt) needs pandas < 3, MMR's environment has pandas 3.
# Run by run_tests.sh and by the test itself; idempotent and instant once the venv matches the pins (a stamp
# of the requirements file). Prints the venv's python on stdout; exits 1 with the reason on stderr when the venv
# cannot be made (no Python 3.11..3.13, no route to the package index) — the test then FAILS with that reason.
# MMR_NAUTILUS_PYTHON names the interpreter that creates it (default: the first of python3, python3.11..3.13).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-nautilus"
reqs="$root/scripts/nautilus-requirements.txt"
stamp_file="$venv/.mmr-nautilus-stamp"
stamp="$(sha256sum "$reqs" | cut -d' ' -f1)"

ready() { [ -x "$venv/bin/python" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; }

if ready; then
  echo "$venv/bin/python"
  exit 0
fi

pick_python() {
  local c
  for c in "${MMR_NAUTILUS_PYTHON:-}" python3 python3.11 python3.12 python3.13; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    # the pinned nautilus_trader has wheels for CPython 3.11..3.13
    if "$c" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "mmr: no Python 3.11..3.13 to create $venv (set MMR_NAUTILUS_PYTHON)" >&2
  return 1
}

mkdir -p "$(dirname "$venv")"
lock="$venv.lock"
exec 9>"$lock"
flock 9  # two test workers (or run_tests.sh and a test) must not build it at once
if ready; then  # another process finished it while we waited
  echo "$venv/bin/python"
  exit 0
fi

py="$(pick_python)"
echo "mmr: creating $venv with $("$py" --version) for the nautilus_trader conformance test" \
     "(about 150 MB to fetch, 700 MB on disk, 30 s)…" >&2
rm -rf "$venv"
fail() {
  rm -rf "$venv"
  echo "mmr: could not create $venv: $1. tests/sim/test_conformance_nautilus.py fails until" \
       "scripts/ensure_nautilus.sh succeeds (it needs PyPI or a mirror for the packages in $reqs)" >&2
  exit 1
}
"$py" -m venv "$venv" || fail "'$py -m venv' failed"
# (pip's notices about missing local index folders on some machines are noise: filter them)
if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$reqs" 2>&1 \
     | { grep -v -e 'is ignored: it is neither a file nor a directory' || true; } >&2; then
  fail "pip could not install the pinned packages"
fi
"$venv/bin/python" -c 'import nautilus_trader.adapters.interactive_brokers.factories' >&2 \
  || fail "nautilus_trader's IB adapter does not import"
echo "$stamp" > "$stamp_file"
echo "$venv/bin/python"
