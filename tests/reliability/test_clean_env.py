"""Tests start from a clean environment: MMR settings in the caller's shell never reach a test or its children."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trader.config import TraderConfig, mmr_env_vars
from trader.testing import clean_env, platform_env

ROOT = Path(__file__).resolve().parents[2]

# What a developer's shell (or an agent's) might hold: each would break a test that inherited it.
HOSTILE = {
    "BROKER": "ib", "MMR_ROLE": "approver", "RPC_TIMEOUT": "0.001", "TRADER_RPC_PORT": "1", "DATA_RPC_PORT": "1",
    "STRATEGY_RPC_PORT": "1", "SIM_CALENDAR": "exchange", "GROUP_BUDGET_MODE": "reject",
    "PROPOSAL_TTL_MINUTES": "0.001", "MMR_APPROVER_KEY": "hostile", "MMR_CLIENT_KEY": "garbage",
    "MMR_CONFIG_DEFAULTS": "/nonexistent/defaults", "TRADER_CONFIG": "/nonexistent/trader.yaml",
    "MMR_HOME": "/nonexistent/home", "IB_SERVER_PORT": "1", "MASSIVE_API_KEY": "leaked",
}


def test_every_trader_yaml_override_is_an_mmr_variable():
    env = {key.upper(): "x" for key in TraderConfig.__struct_fields__} | {"PATH": "/bin", "MMR_NEW_THING": "1"}
    names = mmr_env_vars(env)
    assert "PATH" not in names and "MMR_NEW_THING" in names
    assert {key.upper() for key in TraderConfig.__struct_fields__} <= set(names)


def test_the_test_process_has_no_mmr_variables(tmp_path):
    # ... but the suite's own cache dir (tests/conftest.py), so derived files never land in the user's cache
    assert mmr_env_vars() == ["MMR_CACHE_DIR"]
    from trader.config import cache_dir

    assert str(cache_dir()).startswith(str(tmp_path.parents[1]))  # pytest's base temp dir, not ~/.cache


def test_platform_env_passes_only_the_allow_list(tmp_path):
    base = {**HOSTILE, "PATH": "/usr/bin", "HOME": "/h", "LC_ALL": "C.UTF-8", "SOME_TOKEN": "secret"}
    assert clean_env(base) == {"PATH": "/usr/bin", "HOME": "/h", "LC_ALL": "C.UTF-8"}
    env = platform_env(tmp_path)
    assert env["MMR_HOME"] == str(tmp_path)
    assert not set(env) & (set(HOSTILE) - {"MMR_HOME", "TRADER_RPC_PORT", "DATA_RPC_PORT", "STRATEGY_RPC_PORT",
                                          "IB_SERVER_PORT", "RPC_TIMEOUT"})
    assert int(env["TRADER_RPC_PORT"]) > 1
    assert env["RPC_TIMEOUT"] == "10"  # set explicitly for isolated installs, never the caller's 0.001


def test_suite_passes_with_a_hostile_environment(tmp_path):
    env = {**os.environ, **HOSTILE}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"),
         "tests/test_config.py",
         "tests/e2e/test_cli_status.py::test_status_json_with_services_up",
         "tests/e2e/test_cli_status.py::test_status_json_with_services_down",
         "tests/e2e/test_cli_status.py::test_invalid_config_is_a_clear_json_error"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout
