"""The execution mode of a run (`backtest --execution live` vs the default) is stored with it and shown by
`backtests`, `backtests show`, `backtests validate` and a sweep's leaderboard and digest."""
from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from trader.mmr_cli import cli
from trader.simulation.digest import render_digest
from trader.testing import platform_env

STRATEGIES = Path(__file__).parents[2] / "strategies"


def _cli(*args):
    # In-process (a subprocess per command costs seconds on a loaded machine); the environment is the
    # test's own (see the monkeypatch below), never the user's.
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code in (0, 1) and (r.exception is None or type(r.exception).__name__ in (
        "SystemExit", "ExitAfterOutput")), (r.output, r.exception)
    return r.output


def _run(env, *args):
    return json.loads(_cli("--json", *args))


def test_execution_mode_is_stored_and_shown_everywhere(tmp_path, monkeypatch):
    env = platform_env(tmp_path / "home")
    env["STRATEGIES_DIRECTORY"] = str(STRATEGIES)
    for k in list(os.environ):
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = ("backtest", "-s", "ma_crossover.py", "--conids", "265598", "--days", "400")
    live = _run(env, *args, "--execution", "live")
    plain = _run(env, *args)
    assert (live["execution"], plain["execution"]) == ("live", "backtest")
    # different sizing, so a different run (the mode is what made the difference)
    assert live["metrics"]["total_return"] != plain["metrics"]["total_return"]
    listed = {r["id"]: r["execution"] for r in _run(env, "backtests")}
    assert listed == {live["id"]: "live", plain["id"]: "backtest"}
    assert _run(env, "backtests", "show", live["id"])["execution"] == "live"
    table = _cli("backtests", "show", plain["id"])  # the human table says it too
    assert "(execution: backtest)" in table, table
    assert _run(env, "backtests", "validate", live["id"])["execution"] == "live"
    sweep = _run(env, "bt-sweep", "-s", "ma_crossover.py", "--conids", "265598", "--days", "400",
                 "--grid", "{\"FAST\": [5, 10]}", "--workers", "1")
    assert {r["execution"] for r in sweep["leaderboard"]} == {"backtest"}
    assert "- execution: backtest" in Path(sweep["sweep"]["digest_path"]).read_text()


def test_digest_states_the_execution():
    rows = [{"id": "a", "job": "j", "score": 1.0, "execution": "backtest", "params": {}}]
    text = render_digest({"id": "s1", "name": "n", "jobs": [{"name": "j"}]}, rows)
    assert "- execution: backtest" in text
