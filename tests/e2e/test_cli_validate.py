"""`backtests walk-forward`, `backtests validate`, `strategies deploy/deployed` end to end (no services needed)."""
from __future__ import annotations

import json
from pathlib import Path

from trader.testing import mmr, platform_env

STRATEGIES = Path(__file__).parents[2] / "strategies"


def _mmr(env, *args):
    p = mmr(env, "--json", *args, timeout=60)
    return p.returncode, json.loads(p.stdout)


def _ok(env, *args):
    code, doc = _mmr(env, *args)
    assert code == 0, doc
    return doc


def test_walk_forward_validate_and_deploy_gate(tmp_path):
    home = tmp_path / "home"
    env = platform_env(home)
    env["STRATEGIES_DIRECTORY"] = str(STRATEGIES)
    # Market bars "downloaded" beforehand: a run on simulated prices would never validate (stored_bars).
    from trader.data.bars import BarStore
    from trader.simulation.data import sim_bars

    BarStore.open(home / "data").ingest(265598, "1 day", "ib", sim_bars(265598, 700, "1 day"))

    wf = _ok(env, "backtests", "walk-forward", "-s", "ma_crossover.py", "--conids", "265598", "--days", "600",
             "--grid", '{"FAST":[5,10],"SLOW":[30,50]}', "--train-days", "200", "--test-days", "100")
    assert len(wf["id"]) == 8 and len(wf["windows"]) >= 3 and wf["data"] == {"265598": "stored"}
    for a, b in zip(wf["windows"], wf["windows"][1:], strict=False):
        assert a["train_end"] <= a["test_start"] and a["test_end"] <= b["test_start"]
    assert wf["pbo"]["configs"] == 4 and 0 <= wf["summary"]["pbo"] <= 1
    assert {"is_mean_sharpe", "oos_mean_sharpe", "efficiency", "oos_total_return"} <= set(wf["summary"])

    run = _ok(env, "backtest", "-s", "ma_crossover.py", "--conids", "265598", "--days", "600")
    # Exit 1 and one JSON document with every line when a check fails (this run has too few trades).
    code, verdict = _mmr(env, "backtests", "validate", run["id"])
    assert code == 1 and verdict["passed"] is False and "min_trades" in verdict["failed"]
    assert [c["check"] for c in verdict["checks"]] == ["min_trades", "min_profit_factor", "min_sharpe",
                                                       "max_drawdown", "max_t_test_p", "positive_oos",
                                                       "stored_bars"]
    assert verdict["checks"][-1]["passed"]  # the bars were stored ones
    assert verdict["walkforward_id"]  # a walk-forward of the run's own params was run and stored
    oos = verdict["checks"][-2]
    assert oos["value"] is not None and oos["passed"] == (oos["value"] > 0)

    code, refused = _mmr(env, "strategies", "deploy", run["id"])
    assert code == 1 and refused["error"]["type"] == "NotValidated" and "min_trades" in refused["error"]["message"]
    forced = _ok(env, "strategies", "deploy", run["id"], "--force", "--name", "forced")
    assert forced["deployed"]["validated"] is False

    # A lenient checklist in the user's promotion.yaml: the same run now validates and deploys without --force.
    (home / "config" / "promotion.yaml").write_text(
        "min_trades: 1\nmin_profit_factor: 0\nmin_sharpe: -100\nmax_drawdown: 1\nmax_t_test_p: 1\n"
        "require_positive_oos: false\n")
    code, verdict = _mmr(env, "backtests", "validate", run["id"], "--walk-forward-id", wf["id"])
    assert code == 0 and verdict["passed"] and verdict["walkforward_id"] == wf["id"], verdict
    deployed = _ok(env, "strategies", "deploy", run["id"])
    assert deployed["deployed"]["validated"] is True and deployed["deployed"]["params"] == {}
    listed = _ok(env, "strategies", "deployed")
    assert [(s["name"], s["validated"]) for s in listed] == [("forced", False),
                                                            (f"macrossover_{run['id']}", True)]
    code, dup = _mmr(env, "strategies", "deploy", run["id"])
    assert code == 1 and dup["error"]["type"] == "AlreadyDeployed"
    assert {r["class_name"] for r in _ok(env, "strategies", "inspect")} >= {"MACrossover"}
    assert _ok(env, "backtests", "--sweep", "no-such-sweep") == []
