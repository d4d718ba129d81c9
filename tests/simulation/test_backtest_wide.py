"""Many conIds in one pass (trader/simulation/wide.py): a strategy's `signals_wide` over bars × conIds gives the
same backtest, bit for bit, as running `signals` and the fill loop conId by conId — on both fill loops, with every
cost model — and a wide pass that differs from `signals` (a peek ahead) or fails is not used."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.simulation.backtester import Costs, run_backtest
from trader.strategy.loader import load_strategy_class

STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"
MA = load_strategy_class(STRATEGIES, "ma_crossover.py")


def _frames(k: int, n: int, seed: int = 0, freq: str = "D") -> dict[int, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=n, freq=freq, tz="UTC")
    out = {}
    for j in range(k):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0, 0.005, n))
        out[1000 + j] = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.01,
                                      "low": np.minimum(open_, close) * 0.99, "close": close,
                                      "volume": rng.integers(1, 5_000, n).astype(float)}, index=idx)
    return out


class Counting(MA):
    """MA crossover that counts its `signals` calls (the wide pass calls it only to check two conIds)."""

    calls = 0

    def signals(self, prices):
        type(self).calls += 1
        return super().signals(prices)


class PerConId(MA):
    """The same strategy without a wide pass: the per-conId path, today's reference."""

    signals_wide = None


def _same(a, b) -> None:
    assert np.array_equal(a.equity.to_numpy(), b.equity.to_numpy())  # bit for bit
    assert a.equity.index.equals(b.equity.index)
    assert np.array_equal(a.exposure.to_numpy(), b.exposure.to_numpy())
    assert a.turnover == b.turnover and a.mode == b.mode == "vectorized"
    assert a.metrics == b.metrics
    assert a.trades == b.trades


@pytest.mark.parametrize("loop", ["python", "compiled"])
@pytest.mark.parametrize("case", range(4))
def test_wide_pass_equals_conid_by_conid(loop, case, monkeypatch):
    if loop == "compiled":
        pytest.importorskip("numba")
    monkeypatch.setenv("MMR_FILL_LOOP", loop)
    frames = _frames(7, 300 + 50 * case, seed=case)
    costs = [Costs(), Costs(commission_bps=1.0, slippage_bps=2.0, spread_bps=3.0),
             Costs(commission_per_share=0.01, slippage_per_share=0.02, impact_coefficient=0.5, impact_window=10),
             Costs(commission_bps=5.0)][case]
    params = {"FAST": 3 + case, "SLOW": 12 + 3 * case, "ALLOW_SHORT": case % 2 == 1}
    kw = dict(capital=70_000.0, costs=costs, quantity=None if case % 2 else 10.0, fraction=0.9)
    Counting.calls = 0
    got = run_backtest(Counting().with_params(**params), frames, **kw)
    assert Counting.calls == 2  # the first and last conIds' check; the rest came from the wide pass
    ref = run_backtest(PerConId().with_params(**params), frames, **kw)
    assert len(ref.trades) > 20
    _same(got, ref)


def test_wide_pass_that_peeks_ahead_is_not_used():
    class Peeks(MA):
        def signals_wide(self, prices):  # tomorrow's close: lookahead the per-conId `signals` does not have
            return super().signals_wide({"close": prices["close"].shift(-1)})

    frames = _frames(4, 200, seed=5)
    _same(run_backtest(Peeks(), frames), run_backtest(PerConId(), frames))


def test_wide_pass_that_raises_or_has_the_wrong_shape_falls_back():
    class Raises(MA):
        def signals_wide(self, prices):
            raise RuntimeError("no")

    class Short(MA):
        def signals_wide(self, prices):
            return np.zeros((3, 2))

    frames = _frames(3, 150, seed=6)
    ref = run_backtest(PerConId(), frames)
    _same(run_backtest(Raises(), frames), ref)
    _same(run_backtest(Short(), frames), ref)


def test_conids_with_different_timestamps_run_one_by_one():
    frames = _frames(3, 200, seed=7)
    frames[1001] = frames[1001].iloc[5:]  # a later listing: the union of timestamps, forward-filled
    Counting.calls = 0
    got = run_backtest(Counting(), frames)
    assert Counting.calls == 3
    _same(got, run_backtest(PerConId(), frames))


def test_wide_bars_fill_volume_and_vwap_as_prepare_does():
    from trader.simulation.backtester import _prepare
    from trader.simulation.wide import WideBars

    frames = {c: df.drop(columns=["volume"]) for c, df in _frames(2, 50, seed=8).items()}
    frames[1000] = frames[1000].assign(vwap=frames[1000]["close"] * 1.001, volume=7)
    prices = WideBars(frames, frames[1000].index)
    for j, c in enumerate(frames):
        prepared = _prepare(frames[c])
        for name in ("open", "high", "low", "close", "volume", "vwap"):
            assert np.array_equal(prices[name][c].to_numpy(), prepared[name].to_numpy())
            assert np.array_equal(prices.rows(name)[j], prepared[name].to_numpy())
