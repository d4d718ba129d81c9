"""The column-vectorized fill loop (trader/simulation/fill_grid.py) gives, column by column, bit-identical equity,
round trips, metrics and ranking moments to the per-run path (`run_backtest` with the Python fill loop)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trader.simulation import fill_grid
from trader.simulation.backtester import Costs, _prepare, run_backtest
from trader.simulation.fill_grid import (
    equity_from_segments,
    grid_metrics,
    grid_moments,
    longest_runs,
    simulate_grid,
)
from trader.simulation.metrics import _longest_run
from trader.simulation.sweep_rank import moments, period_returns
from trader.strategy.api import Strategy


class _Unused(Strategy):
    """run_backtest needs a strategy; with `targets` given it is never called."""

    def signals(self, prices):  # pragma: no cover - never called
        raise AssertionError("targets were given")


def _bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    idx = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    return _prepare(pd.DataFrame({"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
                                  "close": close, "volume": 1e5}, index=idx))


def _targets(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """Columns of every kind: NaN holds anywhere, a NaN warm-up prefix, shorts, flat, never a target."""
    cols = []
    for j in range(m):
        kind = j % 4
        if kind == 0:  # NaN = hold between targets
            cols.append(rng.choice([np.nan, np.nan, 1.0, -1.0, 0.0, 0.5, -2.0], size=n))
        elif kind == 1:  # a crossover-like column: NaN warm-up, then long/flat runs
            col = np.repeat(rng.choice([1.0, 0.0], size=n // 5 + 1), 5)[:n]
            col[: int(rng.integers(0, n))] = np.nan
            cols.append(col)
        elif kind == 2:
            cols.append(rng.choice([1.0, -1.0], size=n))
        else:
            cols.append(np.full(n, np.nan) if j % 8 == 3 else np.zeros(n))
    return np.column_stack(cols)


@pytest.mark.parametrize("seed", range(12))
def test_grid_equals_the_per_run_path_bit_for_bit(seed, monkeypatch):
    monkeypatch.setenv("MMR_FILL_LOOP", "python")
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 300)), int(rng.integers(1, 24))
    df = _bars(n, seed)
    targets = _targets(rng, n, m)
    costs = Costs(*(float(x) for x in rng.choice([0.0, 1.0, 5.0], size=5)))
    # Small capitals make some entries unaffordable (the loop retries them bar after bar).
    capital = float(rng.choice([100_000.0, 1_000.0, 60.0]))
    quantity = None if seed % 3 else float(rng.choice([10.0, 0.5]))
    fraction = float(rng.choice([1.0, 0.5, 2.0]))
    # The metrics and moments reduce the equity matrix in row blocks: one row a block, a few rows, all rows.
    monkeypatch.setattr(fill_grid, "BLOCK_CELLS", (1, 3 * n, 1 << 16)[seed % 3])
    fills = simulate_grid(df["open"].to_numpy(), df["close"].to_numpy(), targets, capital=capital,
                          quantity=quantity, fraction=fraction, costs=costs)
    metrics = grid_metrics(fills, df.index, capital)
    stored = fills.equity.round(6)
    ranked = grid_moments(stored, capital)
    assert fills.equity.shape == (m, n)
    for j in range(m):
        ref = run_backtest(_Unused(), {0: df}, capital=capital, quantity=quantity, fraction=fraction, costs=costs,
                           targets={0: targets[:, j]})
        assert np.array_equal(fills.equity[j], ref.equity.to_numpy())  # bit-identical
        assert np.array_equal(equity_from_segments(fills.segments[j], df["close"].to_numpy()), fills.equity[j])
        starts = fills.segments[j][:, 0]
        assert starts[0] == 0 and np.all(np.diff(starts) > 0) and starts[-1] < n
        assert np.array_equal(fills.trades[j], ref.trade_table()[1])
        assert list(metrics[j]) == list(ref.metrics)
        for k, v in ref.metrics.items():
            assert metrics[j][k] == v or (math.isnan(v) and math.isnan(metrics[j][k])), (j, k)
        assert ranked[j] == moments(period_returns(capital, ref.equity.round(6).to_numpy()))


def test_a_sweep_like_grid_trades_and_agrees(monkeypatch):
    """An MA-crossover-like grid on 10 years of daily bars: every column trades, the same as the per-run path."""
    monkeypatch.setenv("MMR_FILL_LOOP", "python")
    df = _bars(2_520, 99)
    close = df["close"]
    cols = []
    for fast in (2, 5, 10):
        for slow in (20, 50):
            f, s = close.rolling(fast).mean(), close.rolling(slow).mean()
            col = np.where(f > s, 1.0, 0.0)
            col[s.isna().to_numpy()] = np.nan
            cols.append(col)
    targets = np.column_stack(cols)
    fills = simulate_grid(df["open"].to_numpy(), close.to_numpy(), targets, capital=100_000.0)
    metrics = grid_metrics(fills, df.index, 100_000.0)
    for j in range(targets.shape[1]):
        ref = run_backtest(_Unused(), {0: df}, targets={0: targets[:, j]})
        assert len(fills.trades[j]) > 10
        assert metrics[j] == ref.metrics


def test_row_blocks_cover_every_row_once(monkeypatch):
    monkeypatch.setattr(fill_grid, "BLOCK_CELLS", 100)
    for m, n in ((0, 10), (1, 1000), (7, 30), (10, 33), (250, 1)):
        blocks = fill_grid.row_blocks(m, n)
        assert [i for b in blocks for i in range(m)[b]] == list(range(m))
        assert all(b.stop - b.start == max(1, 100 // n) for b in blocks[:-1])


def test_longest_runs_per_row():
    rng = np.random.default_rng(5)
    mask = rng.random((30, 57)) < 0.6
    mask[3] = False
    mask[4] = True
    assert longest_runs(mask).tolist() == [_longest_run(row) for row in mask]


def test_impact_is_refused():
    df = _bars(10, 1)
    with pytest.raises(ValueError, match="impact"):
        simulate_grid(df["open"].to_numpy(), df["close"].to_numpy(), np.ones((10, 2)),
                      costs=Costs(impact_coefficient=1.0))


@pytest.mark.parametrize("seed", range(8))
def test_the_scheduled_events_equal_the_general_loop(seed, monkeypatch):
    """With every entry affordable the fills come from the change schedule (`_scheduled_events`); forcing the
    general loop instead gives the same equity, segments, trades, exposure and notional, bit for bit — shorts,
    NaN holds, costs, fixed quantities and columns that never trade included."""
    rng = np.random.default_rng(100 + seed)
    n, m = int(rng.integers(2, 400)), int(rng.integers(1, 40))
    df = _bars(n, seed)
    targets = _targets(rng, n, m)
    costs = Costs(*(float(x) for x in rng.choice([0.0, 1.0, 5.0], size=5)))
    quantity = None if seed % 2 else 3.0
    args = dict(capital=1e9, quantity=quantity, costs=costs)  # every entry affordable: the schedule applies
    o, c = df["open"].to_numpy(), df["close"].to_numpy()
    used = _spy_on_schedule(monkeypatch)
    fast = simulate_grid(o, c, targets, **args)
    assert used == [True]
    monkeypatch.setattr(fill_grid, "_scheduled_events", lambda *a, **k: None)
    loop = simulate_grid(o, c, targets, **args)
    assert np.array_equal(fast.equity, loop.equity) and np.array_equal(fast.held, loop.held)
    assert np.array_equal(fast.exposure, loop.exposure) and np.array_equal(fast.notional, loop.notional)
    for j in range(m):
        assert np.array_equal(fast.segments[j], loop.segments[j])
        assert np.array_equal(fast.trades[j], loop.trades[j])
    # Without positions: the same equity, no held matrix.
    bare = simulate_grid(o, c, targets, positions=False, **args)
    assert bare.held is None and np.array_equal(bare.equity, loop.equity)


def _spy_on_schedule(monkeypatch) -> list[bool]:
    """Record, per `simulate_grid` call, whether the change schedule gave the events (else the loop did)."""
    used: list[bool] = []
    scheduled = fill_grid._scheduled_events

    def spy(*args, **kwargs):
        events = scheduled(*args, **kwargs)
        used.append(events is not None)
        return events

    monkeypatch.setattr(fill_grid, "_scheduled_events", spy)
    return used


def test_an_unaffordable_entry_leaves_the_schedule_for_the_loop(monkeypatch):
    """Capital below one share's price: the entry is retried bar after bar, which only the general loop models;
    the results are still the per-run path's."""
    monkeypatch.setenv("MMR_FILL_LOOP", "python")
    df = _bars(60, 3)
    targets = np.ones((60, 2))
    targets[:, 1] = np.where(np.arange(60) % 7 < 3, 1.0, 0.0)
    price = float(df["open"].iloc[1])
    used = _spy_on_schedule(monkeypatch)
    fills = simulate_grid(df["open"].to_numpy(), df["close"].to_numpy(), targets, capital=price / 2)
    assert used == [False]
    for j in range(2):
        ref = run_backtest(_Unused(), {0: df}, capital=price / 2, targets={0: targets[:, j]})
        assert np.array_equal(fills.equity[j], ref.equity.to_numpy())


def test_squared_deviations_give_numpys_std():
    rng = np.random.default_rng(9)
    for n in (2, 3, 7, 8, 9, 127, 128, 129, 1000, 2520):
        x = rng.normal(0, 0.01, (5, n)) * rng.choice([1.0, 1e-6, 1e6])
        mu = x.mean(axis=1, keepdims=True)
        ss = fill_grid.squared_deviations(x, mu).sum(axis=1)
        assert np.array_equal(np.sqrt(ss / (n - 1)), x.std(axis=1, ddof=1))
        assert np.array_equal(ss / n, np.mean((x - mu) ** 2, axis=1))
