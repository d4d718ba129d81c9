"""`mmr --json status` and friends, run as an agent runs them: a subprocess, one JSON document on stdout."""

from __future__ import annotations

import json
import subprocess
import sys

from trader.testing import SERVICES, mmr, platform_env


def test_status_json_with_services_up(platform):
    res = mmr(platform.env, "--json", "status")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["all_up"] is True
    assert [r["service"] for r in doc["services"]] == list(SERVICES)
    for row in doc["services"]:
        assert row["up"] is True
        assert row["latency_ms"] > 0
        assert row["pid"] == platform.procs[row["service"]].pid
    assert doc["broker"]["state"] in ("not connected", "connecting") and doc["broker"]["ready"] is False


def test_status_json_with_services_down(tmp_path):
    env = platform_env(tmp_path)
    res = mmr(env, "--json", "status", timeout=20)
    assert res.returncode == 1  # a health check by exit code; the document is printed all the same
    doc = json.loads(res.stdout)
    assert doc["all_up"] is False
    for row in doc["services"]:
        assert row["up"] is False
        assert "not running" in row["error"]
    assert doc["broker"]["state"].startswith("unknown")


def test_human_status_prints_a_table(platform):
    res = mmr(platform.env, "status")
    assert res.returncode == 0
    assert "trader_service" in res.stdout and "up" in res.stdout


def test_commands_lists_every_command_with_json_schema(tmp_path):
    res = mmr(platform_env(tmp_path), "--json", "commands", "--full")
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    names = {c["name"] for c in doc["commands"]}
    assert {"status", "commands", "up", "down"} <= names
    status = next(c for c in doc["commands"] if c["name"] == "status")
    assert status["parameters"]["type"] == "object"
    assert status["parameters"]["properties"]["timeout"]["type"] == "number"
    assert status["parameters"]["properties"]["timeout"]["x-flags"] == ["--timeout"]
    # Defaults are JSON values only; a required option has none (click's "unset" marker never leaks).
    assert "object at 0x" not in res.stdout
    sweep = next(c for c in doc["commands"] if c["name"] == "bt-sweep")["parameters"]
    assert "default" not in sweep["properties"]["strategy_file"] and "strategy_file" in sweep["required"]
    assert sweep["properties"]["days"]["default"] == 365


def test_unknown_command_is_a_json_error_with_exit_2(tmp_path):
    res = mmr(platform_env(tmp_path), "--json", "stauts")
    assert res.returncode == 2
    doc = json.loads(res.stdout)
    assert doc["error"]["type"] == "UsageError"
    assert "status" in doc["error"]["message"]  # did-you-mean


def test_bad_option_value_is_a_json_error(tmp_path):
    res = mmr(platform_env(tmp_path), "--json", "status", "--timeout", "soon")
    assert res.returncode == 2
    assert "timeout" in json.loads(res.stdout)["error"]["message"].lower()


def test_invalid_config_is_a_clear_json_error(tmp_path):
    env = platform_env(tmp_path)
    env["TRADER_RPC_PORT"] = "not-a-port"
    res = mmr(env, "--json", "status")
    assert res.returncode == 1
    err = json.loads(res.stdout)["error"]
    assert err["type"] == "ConfigError"
    assert "trader_rpc_port" in err["message"] and "TRADER_RPC_PORT" in err["message"]
    assert "Traceback" not in res.stdout + res.stderr


def test_status_path_does_not_import_heavy_libraries(tmp_path):
    code = (
        "import sys, json\n"
        "from trader.mmr_cli import main\n"
        "import io, contextlib\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    main(['--json', 'status', '--timeout', '0.2'])\n"
        "heavy = [m for m in ('pandas', 'numpy', 'duckdb', 'vectorbt', 'ib_async', 'pyarrow') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], env=platform_env(tmp_path), capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
