#!/usr/bin/env bash
# Sourced by start_mmr.sh and run_tests.sh: make sure a Python >= 3.11 environment with MMR installed exists.
# Uses the active virtualenv if there is one; otherwise creates .venv in the checkout. (Re)installs only when
# the environment is missing or pyproject.toml / the requested extras changed since the last install.
# Usage: MMR_EXTRAS="test" source scripts/ensure_venv.sh   → sets $MMR_PY to the environment's python.
set -euo pipefail

_mmr_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_mmr_pick_python() {
  local c
  for c in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "MMR needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "${VIRTUAL_ENV}/bin/python" ]; then
  _mmr_venv="$VIRTUAL_ENV"
else
  _mmr_venv="$_mmr_root/.venv"
  if [ ! -x "$_mmr_venv/bin/python" ]; then
    _mmr_sys_py="$(_mmr_pick_python)"
    echo "mmr: creating virtualenv $_mmr_venv with $($_mmr_sys_py --version)" >&2
    "$_mmr_sys_py" -m venv "$_mmr_venv"
  fi
fi
MMR_PY="$_mmr_venv/bin/python"

_mmr_extras="${MMR_EXTRAS:-}"
_mmr_spec="."
[ -n "$_mmr_extras" ] && _mmr_spec=".[$_mmr_extras]"
_mmr_stamp_file="$_mmr_venv/.mmr-install-stamp"
_mmr_stamp="$( (cat "$_mmr_root/pyproject.toml"; echo "$_mmr_extras"; echo "$_mmr_root") | sha256sum | cut -d' ' -f1)"
# An install for a superset of extras (e.g. "test") also satisfies a plain one.
if ! grep -qx "$_mmr_stamp" "$_mmr_stamp_file" 2>/dev/null \
   || ! "$MMR_PY" -c 'import trader' >/dev/null 2>&1; then
  echo "mmr: installing MMR${_mmr_extras:+ with [$_mmr_extras]} into $_mmr_venv (first run or pyproject.toml changed)…" >&2
  "$MMR_PY" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  # (pip's notices about missing local index folders on some machines are noise: filter them)
  (cd "$_mmr_root" && "$MMR_PY" -m pip install -q --disable-pip-version-check -e "$_mmr_spec" 2>&1 \
    | { grep -v -e 'is ignored: it is neither a file nor a directory' -e 'BuildBackendWarning' || true; } >&2)
  echo "$_mmr_stamp" >> "$_mmr_stamp_file"
fi
export PATH="$_mmr_venv/bin:$PATH"
