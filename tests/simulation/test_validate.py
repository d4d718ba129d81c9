"""Promotion checklist: each threshold passes and fails; verdicts persist; the deploy gate relies on them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from trader.config import PromotionConfig, StrategyRuntimeConfig, defaults_dir, load_section
from trader.data.store import research_store
from trader.errors import AlreadyDeployed, NotValidated
from trader.simulation.backtester import BacktestResult, Costs, Trade
from trader.simulation.store import get_run, save_run
from trader.simulation.validate import deploy_run, latest_validation, promotion_checks, t_test_p, validate_run
from trader.simulation.walkforward import WalkForwardResult, save_walkforward

GOOD = {"trade_count": 40.0, "profit_factor": 2.0, "sharpe": 1.8, "max_drawdown": 0.08, "avg_loss": -10.0}
CRITERIA = PromotionConfig()

# (check, metric or argument, a value that passes, the threshold itself, which must fail)
EDGES = [
    ("min_trades", "trade_count", 30.0, 29.0),
    ("min_profit_factor", "profit_factor", 1.51, 1.5),
    ("min_sharpe", "sharpe", 1.01, 1.0),
    ("max_drawdown", "max_drawdown", 0.149, 0.15),
    ("max_t_test_p", "t_test_p", 0.049, 0.05),
    ("positive_oos", "oos_total_return", 0.001, 0.0),
    ("stored_bars", "stored_share", 1.0, 0.5),
]


def _checks(**over):
    metrics = {**GOOD, **{k: v for k, v in over.items() if k in GOOD}}
    return promotion_checks(metrics, t_test_p=over.get("t_test_p", 0.001),
                            oos_total_return=over.get("oos_total_return", 0.05),
                            criteria=over.get("criteria", CRITERIA), stored_share=over.get("stored_share", 1.0))


def test_all_pass_with_good_numbers():
    checks = _checks()
    assert [c.check for c in checks] == [e[0] for e in EDGES]
    assert all(c.passed for c in checks)


@pytest.mark.parametrize(("check", "key", "good", "bad"), EDGES)
def test_each_threshold_passes_and_fails(check, key, good, bad):
    ok = {c.check: c for c in _checks(**{key: good})}
    assert ok[check].passed and ok[check].value == good
    failed = {c.check: c for c in _checks(**{key: bad})}
    assert not failed[check].passed and failed[check].value == bad
    assert [c.check for c in failed.values() if not c.passed] == [check]  # only the line under test fails


@pytest.mark.parametrize("key", ["trade_count", "profit_factor", "sharpe", "max_drawdown", "t_test_p",
                                 "oos_total_return", "stored_share"])
def test_a_missing_number_fails_its_check(key):
    checks = _checks(**{key: None}) if key in ("t_test_p", "oos_total_return", "stored_share") else \
        promotion_checks({**GOOD, key: None} if key != "profit_factor" else {**GOOD, key: None, "avg_loss": -5.0},
                         t_test_p=0.001, oos_total_return=0.05, criteria=CRITERIA, stored_share=1.0)
    assert [c.check for c in checks if not c.passed] == [
        {"trade_count": "min_trades", "profit_factor": "min_profit_factor", "sharpe": "min_sharpe",
         "max_drawdown": "max_drawdown", "t_test_p": "max_t_test_p", "oos_total_return": "positive_oos",
         "stored_share": "stored_bars"}[key]]


def test_no_losing_trades_is_an_infinite_profit_factor():
    checks = promotion_checks({**GOOD, "profit_factor": None, "avg_loss": 0.0}, t_test_p=0.001,
                              oos_total_return=0.05, criteria=CRITERIA, stored_share=1.0)
    pf = next(c for c in checks if c.check == "min_profit_factor")
    assert pf.passed and pf.value is None and "infinite" in pf.note


def test_thresholds_come_from_promotion_yaml(tmp_path):
    path = tmp_path / "promotion.yaml"
    path.write_text("min_trades: 50\nmin_sharpe: 2.0\nrequire_positive_oos: false\n")
    criteria = load_section("promotion.yaml", PromotionConfig, path=path)
    checks = {c.check: c for c in _checks(criteria=criteria, oos_total_return=None)}
    assert "positive_oos" not in checks  # disabled
    assert not checks["min_trades"].passed and checks["min_trades"].threshold == 50
    assert not checks["min_sharpe"].passed and checks["max_drawdown"].passed


def test_shipped_defaults_match_the_issue():
    c = PromotionConfig()
    assert load_section("promotion.yaml", PromotionConfig, path=defaults_dir() / "promotion.yaml") == c
    assert (c.min_trades, c.min_profit_factor, c.min_sharpe, c.max_drawdown, c.max_t_test_p,
            c.require_positive_oos, c.require_stored_bars) == (30, 1.5, 1.0, 0.15, 0.05, True, True)


# --------------------------------------------------------------------------- stored runs


def _result(trade_returns: list[float], metrics: dict[str, float]) -> BacktestResult:
    """A hand-built run: one trade per day with the given returns, equity compounding them."""
    n = len(trade_returns)
    idx = pd.date_range("2025-01-01", periods=n + 1, freq="D", tz="UTC")
    equity = pd.Series(10_000.0 * np.cumprod([1.0, *[1 + r for r in trade_returns]]), index=idx)
    trades = [Trade(265598, 1, 10.0, idx[i], 100.0, idx[i + 1], 100.0 * (1 + r), 0.0, 1000.0 * r, r)
              for i, r in enumerate(trade_returns)]
    res = BacktestResult(equity=equity, trades=trades, exposure=pd.Series(1.0, index=idx), turnover=1.0,
                         initial_capital=10_000.0, mode="vectorized")
    res.metrics = metrics
    return res


def _save(store, result, params=None):
    return save_run(store, result, strategy="ma_crossover.py", class_name="MACrossover", source_hash="x",
                    params=params or {"FAST": 5}, conids=[265598], bar_size="1 day", costs=Costs())


def _walkforward(store, oos_total_return: float) -> str:
    res = WalkForwardResult(windows=[], summary={"oos_total_return": oos_total_return}, oos_equity=pd.Series())
    return save_walkforward(store, res, strategy="ma_crossover.py", class_name="MACrossover", conids=[265598],
                            bar_size="1 day", grid={})


@pytest.fixture
def store(tmp_path):
    """The state store, with real (stored) daily bars of 265598 covering the hand-built runs' span."""
    from trader.data.bars import BarStore
    from trader.simulation.data import sim_bars

    BarStore.open(tmp_path / "data").ingest(265598, "1 day", "ib", sim_bars(265598, 700, "1 day"))
    return research_store(tmp_path / "data")


def _validate(store, run_id, **kw):
    return validate_run(store, run_id, CRITERIA, data_dir=store.path.parent, **kw)


def _good_run(store):
    rets = [0.02, -0.005] * 20
    return _save(store, _result(rets, {**GOOD, "trade_count": 40.0}))


def test_t_test_p_of_a_stored_run(store):
    good = get_run(store, _good_run(store))
    assert t_test_p(good) < 0.001
    noise = get_run(store, _save(store, _result([0.01, -0.01] * 20, GOOD)))
    assert t_test_p(noise) == pytest.approx(0.5, abs=0.01)


def test_validate_run_passes_and_persists(store):
    run_id = _good_run(store)
    assert latest_validation(store, run_id) is None
    wf = _walkforward(store, 0.04)
    doc = _validate(store, run_id, walkforward_id=wf)
    assert doc["passed"] and doc["failed"] == [] and doc["walkforward_id"] == wf
    oos = next(c for c in doc["checks"] if c["check"] == "positive_oos")
    assert oos["value"] == pytest.approx(0.04)
    stored = latest_validation(store, run_id)
    assert stored["passed"] and stored["walkforward_id"] == wf and len(stored["checks"]) == 7


def test_validate_run_fails_on_negative_out_of_sample(store):
    run_id = _good_run(store)
    doc = _validate(store, run_id, walkforward_id=_walkforward(store, -0.01))
    assert not doc["passed"] and doc["failed"] == ["positive_oos"]
    assert latest_validation(store, run_id)["failed"] == ["positive_oos"]


def test_validate_run_fails_on_metrics_of_the_stored_run(store):
    run_id = _save(store, _result([0.02, -0.005] * 20, {**GOOD, "sharpe": 0.4, "max_drawdown": 0.3}))
    doc = _validate(store, run_id, walkforward_id=_walkforward(store, 0.04))
    assert doc["failed"] == ["min_sharpe", "max_drawdown"]
    with pytest.raises(KeyError):
        _validate(store, "missing", walkforward_id="x")


# --------------------------------------------------------------------------- deploy gate


def test_deploy_refuses_unvalidated_and_failed_runs(store, tmp_path):
    path = tmp_path / "config" / "strategy_runtime.yaml"
    run_id = _good_run(store)
    with pytest.raises(NotValidated, match="never validated"):
        deploy_run(store, run_id, path)
    _validate(store, run_id, walkforward_id=_walkforward(store, -0.01))
    with pytest.raises(NotValidated, match="positive_oos"):
        deploy_run(store, run_id, path)
    assert not path.exists()
    entry = deploy_run(store, run_id, path, force=True)
    assert entry["validated"] is False and entry["paper"] is True and entry["run_id"] == run_id


def test_deploy_after_validation_writes_a_loadable_runtime_file(store, tmp_path):
    path = tmp_path / "strategy_runtime.yaml"
    path.write_text("# header kept\nstrategies:\n- name: existing\n  module: x.py\n  class: X\n")
    run_id = _good_run(store)
    _validate(store, run_id, walkforward_id=_walkforward(store, 0.02))
    entry = deploy_run(store, run_id, path, name="ma_live")
    assert entry == {"name": "ma_live", "module": "ma_crossover.py", "class": "MACrossover", "conids": [265598],
                     "bar_size": "1 day", "params": {"FAST": 5}, "paper": True, "run_id": run_id, "validated": True}
    assert path.read_text().startswith("# header kept\n")
    cfg = load_section("strategy_runtime.yaml", StrategyRuntimeConfig, path=path)
    assert [s.name for s in cfg.strategies] == ["existing", "ma_live"]
    assert cfg.strategies[1].validated and cfg.strategies[1].class_ == "MACrossover"
    with pytest.raises(AlreadyDeployed):
        deploy_run(store, run_id, path, name="ma_live")
    assert len(yaml.safe_load(path.read_text())["strategies"]) == 2


def test_deploy_refuses_a_strategy_file_changed_since_the_backtest(store, tmp_path):
    root = tmp_path / "strategies"
    root.mkdir()
    (root / "ma_crossover.py").write_text("# the code that was backtested\n")
    run_id = _good_run(store)  # stored with source_hash "x": not the file's hash
    _validate(store, run_id, walkforward_id=_walkforward(store, 0.02))
    path = tmp_path / "strategy_runtime.yaml"
    with pytest.raises(NotValidated, match="changed since run"):
        deploy_run(store, run_id, path, strategies_root=root)
    assert not path.exists()
    assert deploy_run(store, run_id, path, strategies_root=root, force=True)["run_id"] == run_id



def test_a_run_on_simulated_bars_never_validates(tmp_path):
    bare = research_store(tmp_path / "nothing_stored")  # no bars.duckdb content: the run used simulated prices
    run_id = _good_run(bare)
    doc = validate_run(bare, run_id, CRITERIA, walkforward_id=_walkforward(bare, 0.02),
                       data_dir=tmp_path / "nothing_stored")
    assert not doc["passed"] and doc["failed"] == ["stored_bars"]
    check = doc["checks"][-1]
    assert check["value"] == 0.0 and "SIMULATED" in check["note"]
