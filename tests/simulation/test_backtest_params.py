"""Backtest parameters are validated in the domain: a refusal names the parameter, and nothing is stored."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trader.errors import BacktestError, ConfigError
from trader.simulation.backtester import Costs, check_backtest_params, run_backtest
from trader.simulation.sweep import SweepJob
from trader.testing import mmr, platform_env

STRATEGIES = Path(__file__).parents[2] / "strategies"


@pytest.mark.parametrize("field", ["commission_bps", "commission_per_share", "slippage_bps", "slippage_per_share"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 1e308])
def test_costs_must_be_finite_and_non_negative(field, value):
    with pytest.raises(BacktestError, match=field):
        Costs(**{field: value})


@pytest.mark.parametrize(("kw", "name"), [
    ({"capital": -1e308}, "capital"), ({"capital": 0.0}, "capital"), ({"capital": math.nan}, "capital"),
    ({"capital": 1e308}, "capital"), ({"capital": 1e5, "quantity": math.inf}, "quantity"),
    ({"capital": 1e5, "quantity": -3.0}, "quantity"), ({"capital": 1e5, "fraction": math.nan}, "fraction"),
])
def test_capital_quantity_fraction_are_checked(kw, name):
    with pytest.raises(BacktestError, match=name):
        check_backtest_params(**kw)


def test_run_backtest_and_sweep_jobs_refuse_bad_capital_before_running():
    with pytest.raises(BacktestError, match="capital"):
        run_backtest(None, {}, capital=-1.0)  # type: ignore[arg-type] - refused before the strategy is used
    with pytest.raises(BacktestError, match="capital"):
        SweepJob(name="j", strategy_file="s.py", class_name=None, conids=(1,), grid={}, capital=math.nan)
    check_backtest_params(capital=100_000.0, quantity=10.0, fraction=1.0)


def test_sweep_spec_names_the_job_and_parameter(tmp_path):
    from trader.simulation.sweep_spec import load_spec

    spec = tmp_path / "nightly.yaml"
    spec.write_text("name: n\njobs:\n  - strategy: ma_crossover.py\n    conids: [1]\n    grid: {FAST: [5]}\n"
                    "    costs: {commission_bps: .nan}\n")
    with pytest.raises(ConfigError, match=r"jobs\[0\].*commission_bps"):
        load_spec(spec)
    spec.write_text("name: n\ndefaults: {capital: -5}\njobs:\n  - strategy: ma_crossover.py\n    conids: [1]\n"
                    "    grid: {FAST: [5]}\n")
    with pytest.raises(ConfigError, match="capital"):
        load_spec(spec)


@pytest.mark.parametrize(("flag", "value"), [("--commission-bps", "nan"), ("--capital", "-1e308")])
def test_cli_backtest_refuses_and_stores_nothing(tmp_path, flag, value):
    env = {**platform_env(tmp_path / "home"), "STRATEGIES_DIRECTORY": str(STRATEGIES)}
    res = mmr(env, "--json", "backtest", "-s", "ma_crossover.py", "--conids", "265598", "--days", "60", flag, value)
    assert res.returncode != 0
    err = json.loads(res.stdout)["error"]
    assert err["type"] == "BacktestError" and flag.lstrip("-").replace("-", "_") in err["message"]
    listed = mmr(env, "--json", "backtests")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
