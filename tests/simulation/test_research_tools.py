"""`sweep overfit` (PBO over a sweep's runs), `backtests compare` and `backtests delete`."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from trader.data.store import research_store
from trader.errors import BacktestError, NotFound
from trader.simulation.backtester import BacktestResult, Costs
from trader.simulation.research import compare_runs, delete_runs, plot_compare, sweep_overfit
from trader.simulation.store import get_run, list_runs, save_run


def _result(returns: np.ndarray) -> BacktestResult:
    idx = pd.date_range("2024-01-01", periods=len(returns), freq="D", tz="UTC")
    equity = pd.Series(100_000.0 * np.cumprod(1 + returns), index=idx)
    res = BacktestResult(equity=equity, trades=[], exposure=pd.Series(1.0, index=idx), turnover=0.0,
                         initial_capital=100_000.0, mode="vectorized")
    res.metrics = {"sharpe": float(returns.mean() / returns.std()), "trade_count": 0.0, "max_drawdown": 0.1}
    return res


def _sweep(store, sweep_id: str, columns: np.ndarray) -> list[str]:
    store.execute("INSERT INTO sweeps (id, name, status, created_at, jobs, total, errors) VALUES (?, ?, ?, ?, ?, ?, '[]')",
                  [sweep_id, "t", "done", datetime.now(UTC), json.dumps([{"name": "j", "conids": [1]}]),
                   columns.shape[1]])
    return [save_run(store, _result(columns[:, k]), strategy="s.py", class_name="S", source_hash="h",
                     params={"K": k}, conids=[1], bar_size="1 day", costs=Costs(), sweep_id=sweep_id,
                     sweep_job="j", combo_key=str(k)) for k in range(columns.shape[1])]


def test_pbo_of_a_constructed_overfit_sweep_and_of_a_real_edge(tmp_path):
    store = research_store(tmp_path)
    rng = np.random.default_rng(7)
    # Overfit: 12 configurations of pure noise; whichever looks best in sample is a coin flip out of sample.
    t, n = 320, 12
    noise = rng.normal(0, 0.01, (t, n))
    _sweep(store, "swnoise", noise)
    overfit = sweep_overfit(store, "swnoise", blocks=8)[0]
    assert overfit["runs"] == n and overfit["periods"] == t and overfit["splits"] == 70
    assert overfit["pbo"] > 0.3
    # A real edge: configuration k earns k × 2 bps a bar on top of the same noise; the best stays the best.
    edge = noise + np.arange(n) * 2e-4
    _sweep(store, "swedge", edge)
    real = sweep_overfit(store, "swedge", blocks=8)[0]
    assert real["pbo"] < 0.1 < overfit["pbo"] and "holds up" in real["meaning"]


def test_sweep_overfit_refusals(tmp_path):
    store = research_store(tmp_path)
    _sweep(store, "swone", np.full((40, 1), 0.001))
    with pytest.raises(BacktestError, match="at least 2 runs"):
        sweep_overfit(store, "swone", blocks=4)
    with pytest.raises(NotFound):
        sweep_overfit(store, "swone", job="nope")


def test_compare_plot_and_delete(tmp_path):
    store = research_store(tmp_path)
    rng = np.random.default_rng(1)
    a, b = (save_run(store, _result(rng.normal(m, 0.01, 60)), strategy="s.py", class_name="S", source_hash="h",
                     params={}, conids=[1], bar_size="1 day", costs=Costs()) for m in (0.001, -0.001))
    rows = compare_runs(store, [a, b])
    assert [r["id"] for r in rows] == [a, b] and rows[0]["sharpe"] > 0 > rows[1]["sharpe"]
    assert {"provenance", "min_coverage", "total_return", "periods_per_year"} <= set(rows[0])
    png = plot_compare(store, [a, b], tmp_path / "cmp.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    store.execute("INSERT INTO run_validations VALUES (?, ?, ?, ?, ?, ?, ?)",
                  ["v1", a, datetime.now(UTC), None, False, "[]", "{}"])
    with pytest.raises(NotFound):
        delete_runs(store, [a, "missing"])
    assert len(list_runs(store)) == 2  # nothing deleted when one id is unknown
    assert delete_runs(store, [a]) == 1
    assert [r["id"] for r in list_runs(store)] == [b]
    assert store.execute("SELECT count(*) FROM run_validations", write=False)[0][0] == 0
    with pytest.raises(NotFound):
        get_run(store, a)
