"""`mmr backtest` / `backtests …` / `strategies inspect` end to end (no services needed)."""
from __future__ import annotations

import json
from pathlib import Path

from trader.testing import mmr, platform_env

STRATEGIES = Path(__file__).parents[2] / "strategies"


def _run(env, *args):
    p = mmr(env, "--json", *args, timeout=60)
    assert p.returncode == 0, p.stderr + p.stdout
    return json.loads(p.stdout)


def test_backtest_store_show_confidence_archive(tmp_path):
    env = platform_env(tmp_path / "home")
    env["STRATEGIES_DIRECTORY"] = str(STRATEGIES)
    names = {r["class_name"] for r in _run(env, "strategies", "inspect")}
    assert "MACrossover" in names
    out = _run(env, "backtest", "-s", "ma_crossover.py", "--conids", "265598", "--days", "300",
               "--commission-bps", "1", "--param", "FAST=5", "--check-lookahead", "--detail")
    assert out["metrics"]["trade_count"] == len(out["trades"]) > 0
    assert out["data"] == {"265598": "simulated"} and "SIMULATED" in out["warnings"][0]  # nothing stored here
    assert all(r["ok"] for r in out["lookahead"])
    rows = _run(env, "backtests")
    assert [r["id"] for r in rows] == [out["id"]]
    png = tmp_path / "run.png"
    shown = _run(env, "backtests", "show", out["id"], "--plot", str(png))
    assert shown["params"] == {"FAST": 5} and png.stat().st_size > 1000  # typed like the declared FAST = 10
    assert {c["name"] for c in shown["confidence"]} >= {"psr", "t_test", "bootstrap_sharpe"}
    conf = _run(env, "backtests", "confidence", out["id"])
    assert conf[0]["id"] == out["id"] and conf[0]["meanings"]
    assert _run(env, "backtests", "archive", out["id"]) == {"archived": 1}
    assert _run(env, "backtests") == []
    bad = mmr(env, "--json", "backtest", "-s", "../etc/passwd", "--conids", "1")
    assert bad.returncode != 0 and "StrategyLoadError" in bad.stdout


def test_backtest_over_a_universe(tmp_path):
    from trader.config import mmr_paths
    from trader.data.store import state_store
    from trader.data.universes import UniverseStore, _member

    env = platform_env(tmp_path / "home")
    env["STRATEGIES_DIRECTORY"] = str(STRATEGIES)
    paths = mmr_paths(env).ensure()
    universes = UniverseStore(state_store(paths.data_dir))
    universes.create("pair", [_member("AAPL"), _member("SPY")])
    unresolved = mmr(env, "--json", "backtest", "-s", "ma_crossover.py", "--universe", "pair", "--days", "200")
    assert unresolved.returncode == 2 and "without a conId" in json.loads(unresolved.stdout)["error"]["message"]
    universes.set_conid("pair", "AAPL", 265598)
    universes.set_conid("pair", "SPY", 756733)
    out = _run(env, "backtest", "-s", "ma_crossover.py", "--universe", "pair", "--days", "200")
    assert sorted(out["conids"]) == [265598, 756733]
    both = mmr(env, "--json", "backtest", "-s", "ma_crossover.py", "--universe", "pair", "--conids", "1")
    assert both.returncode == 2


def test_backtests_list_is_bounded_and_can_be_newest_first(tmp_path):
    # issue 14: 50 stored runs cost an agent ~4,400 tokens; the listing is --limit'ed (10) and takes --since
    env = platform_env(tmp_path / "home")
    env["STRATEGIES_DIRECTORY"] = str(STRATEGIES)
    _run(env, "bt-sweep", "-s", "ma_crossover.py", "--conids", "265598", "--days", "120",
         "--grid", '{"FAST": [3, 5, 8, 13]}')
    every = _run(env, "backtests", "--limit", "100")
    assert len(every) == 4
    assert len(_run(env, "backtests", "--limit", "2")) == 2
    newest = _run(env, "backtests", "--sort", "newest", "--limit", "3")
    stamps = [r["created_at"] for r in newest]
    assert len(newest) == 3 and stamps == sorted(stamps, reverse=True)
    assert _run(env, "backtests", "--since", "2099-01-01") == []
    assert len(_run(env, "backtests", "--since", "1d", "--limit", "100")) == 4
