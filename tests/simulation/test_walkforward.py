"""Walk-forward windows (no lookahead, disjoint out-of-sample) and PBO by CSCV on synthetic data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trader.data.store import research_store
from trader.errors import BacktestError
from trader.simulation.walkforward import (
    get_walkforward,
    pbo_cscv,
    save_walkforward,
    split_windows,
    walk_forward,
)
from trader.strategy.api import Strategy


class Direction(Strategy):
    """Always long (DIRECTION=1) or always short (-1): which one wins depends only on the regime."""

    DIRECTION = 1

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        return pd.Series(float(self.DIRECTION), index=prices.index)


def _regime_bars(regime: int = 50, regimes: int = 8) -> pd.DataFrame:
    """Prices that rise for `regime` bars, then fall for `regime` bars, and so on."""
    steps = np.concatenate([np.full(regime, 0.01 if k % 2 == 0 else -0.01) for k in range(regimes)])
    close = 100 * np.exp(np.cumsum(steps))
    idx = pd.date_range("2024-01-01", periods=len(close), freq="D", tz="UTC")
    return pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999, "close": close}, index=idx)


def _daily_index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")


def test_grid_is_the_sweep_engines_and_bad_grids_are_refused():
    bars = _regime_bars(regime=50, regimes=8)
    for bad in ({"DIRECTION": []}, {"DIRECTION": 3}):
        with pytest.raises(BacktestError):
            walk_forward(Direction, bars, bad, train_bars=100, test_bars=50)


@pytest.mark.parametrize("anchored", [False, True])
def test_bar_windows_train_precedes_test_and_tests_do_not_overlap(anchored):
    idx = _daily_index(100)
    ws = split_windows(idx, train_bars=30, test_bars=20, anchored=anchored)
    assert len(ws) == 3  # tests at bars 30-49, 50-69, 70-89; 90-109 is incomplete
    for w in ws:
        assert w.train_start < w.train_end <= w.test_start < w.test_end
        assert w.train_start == idx[0] if anchored else (w.test_start - w.train_start) == pd.Timedelta(days=30)
    for a, b in zip(ws, ws[1:], strict=False):
        assert a.test_end <= b.test_start  # disjoint out-of-sample
    assert [w.test_start for w in ws] == [idx[30], idx[50], idx[70]]


def test_day_windows_and_step():
    idx = _daily_index(365)
    ws = split_windows(idx, train_days=100, test_days=50, step=80)
    assert [w.test_start for w in ws] == [idx[100], idx[180], idx[260]]
    assert all(w.test_end - w.test_start == pd.Timedelta(days=50) for w in ws)
    assert all(w.test_start - w.train_start == pd.Timedelta(days=100) for w in ws)


def test_overlapping_or_ambiguous_windows_are_refused():
    idx = _daily_index(100)
    with pytest.raises(BacktestError, match="overlap"):
        split_windows(idx, train_bars=30, test_bars=20, step=10)
    with pytest.raises(BacktestError):
        split_windows(idx, train_bars=30, test_days=20)
    with pytest.raises(BacktestError):
        split_windows(idx, train_bars=0, test_bars=20)
    assert split_windows(idx, train_bars=90, test_bars=20) == []


def test_selection_sees_only_training_bars():
    # Each test window's regime is the opposite of its training window's: the in-sample winner must be the
    # training regime's direction and must then lose out of sample. A lookahead would pick the test's winner.
    bars = _regime_bars(regime=50, regimes=8)
    r = walk_forward(Direction, bars, {"DIRECTION": [1, -1]}, train_bars=50, test_bars=50)
    assert len(r.windows) == 7
    for w in r.windows:
        start = bars.index.get_loc(pd.Timestamp(w.train_start))
        rising = (start // 50) % 2 == 0
        assert w.best_params == {"DIRECTION": 1 if rising else -1}
        assert w.is_metrics["total_return"] > 0 > w.oos_metrics["total_return"]
        assert w.train_end <= w.test_start
    assert r.summary["is_mean_sharpe"] > 0 > r.summary["oos_mean_sharpe"]
    assert r.summary["efficiency"] < 0
    assert r.summary["oos_positive_windows"] == 0


def test_stitched_out_of_sample_is_the_chain_of_windows():
    bars = _regime_bars(regime=40, regimes=10)
    r = walk_forward(Direction, bars, {"DIRECTION": [1, -1]}, train_bars=60, test_bars=40, step=50,
                     capital=10_000.0)
    chained = np.prod([1 + w.oos_metrics["total_return"] for w in r.windows]) - 1
    assert r.summary["oos_total_return"] == pytest.approx(chained, rel=1e-9)
    assert len(r.oos_equity) == sum(w.test_bars for w in r.windows)
    assert r.oos_equity.index.is_monotonic_increasing and r.oos_equity.index.is_unique
    assert r.oos_equity.iloc[-1] == pytest.approx(10_000.0 * (1 + chained))


def test_map_fn_runs_the_grid_and_pbo_needs_two_configs():
    calls = []

    def counting_map(fn, items):
        items = list(items)
        calls.append(len(items))
        return map(fn, items)

    bars = _regime_bars(regime=50, regimes=8)
    r = walk_forward(Direction, bars, {"DIRECTION": [1, -1]}, train_bars=100, test_bars=50, map_fn=counting_map)
    assert calls and set(calls) == {2}  # every window's grid, and the full-sample PBO matrix, go through map_fn
    assert r.pbo is not None and r.summary["pbo"] == r.pbo.pbo and r.pbo.configs == 2
    single = walk_forward(Direction, bars, {"DIRECTION": [1]}, train_bars=100, test_bars=50)
    assert single.pbo is None and single.summary["pbo"] is None and single.grid_size == 1
    defaults = walk_forward(Direction, bars, {}, train_bars=100, test_bars=50)
    assert all(w.best_params == {} for w in defaults.windows)


def test_no_window_fits_is_an_error():
    with pytest.raises(BacktestError, match="no complete walk-forward window"):
        walk_forward(Direction, _regime_bars(regime=10, regimes=2), {"DIRECTION": [1]}, train_bars=30, test_bars=10)


def test_pbo_of_pure_noise_is_near_one_half():
    # One sample's PBO scatters widely (the splits share data); the mean over independent samples is ~0.5.
    values = [pbo_cscv(np.random.default_rng(seed).normal(0, 0.01, (800, 20)), blocks=10).pbo for seed in range(12)]
    assert 0.35 < float(np.mean(values)) < 0.65
    assert all(0.0 <= v <= 1.0 for v in values)


def test_pbo_with_one_real_edge_is_near_zero():
    for seed in range(3):
        m = np.random.default_rng(seed).normal(0, 0.01, (800, 20))
        m[:, 7] += 0.003  # per-period Sharpe 0.3: the in-sample winner every time, and top out of sample too
        res = pbo_cscv(m, blocks=16)
        assert res.pbo < 0.05 and res.logit_median > 0 and res.oos_loss_rate < 0.05
        assert res.combinations == 12870 and res.configs == 20


def test_pbo_input_checks():
    m = np.zeros((100, 3))
    with pytest.raises(BacktestError):
        pbo_cscv(m, blocks=5)
    with pytest.raises(BacktestError):
        pbo_cscv(np.zeros((100, 1)))
    with pytest.raises(BacktestError):
        pbo_cscv(np.zeros((10, 3)), blocks=16)
    flat = pbo_cscv(m, blocks=4)  # all configs tie everywhere: the winner sits exactly at the median
    assert flat.pbo == 1.0


def test_save_and_get_round_trip(tmp_path):
    store = research_store(tmp_path)
    r = walk_forward(Direction, _regime_bars(), {"DIRECTION": [1, -1]}, train_bars=100, test_bars=50)
    wf_id = save_walkforward(store, r, strategy="direction.py", class_name="Direction", conids=[0],
                             bar_size="1 day", grid={"DIRECTION": [1, -1]})
    got = get_walkforward(store, wf_id)
    assert got["summary"]["oos_total_return"] == pytest.approx(r.summary["oos_total_return"])
    assert len(got["windows"]) == len(r.windows) and got["pbo"]["pbo"] == pytest.approx(r.pbo.pbo)
    assert got["run_id"] is None and got["settings"]["train_bars"] == 100
    with pytest.raises(KeyError):
        get_walkforward(store, "nope")
