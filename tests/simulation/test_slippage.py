"""Slippage models on hand-computed cases: the spread model and square-root market impact."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trader.errors import BacktestError
from trader.simulation.backtester import Costs, impact_inputs, run_backtest
from trader.strategy.api import Strategy


class _Preset(Strategy):
    """Targets given up front (+1 long, 0 flat, NaN hold)."""

    vectorized = True
    TARGETS: tuple = ()

    def signals(self, df):
        return pd.Series(list(self.TARGETS), index=df.index, dtype=float)


def _bars(opens, closes, volume=10_000.0):
    idx = pd.date_range("2026-01-05", periods=len(opens), freq="D", tz="UTC")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, closes), "low": np.minimum(opens, closes),
                         "close": closes, "volume": volume}, index=idx)


def _strategy(targets):
    return type("S", (_Preset,), {"TARGETS": tuple(targets)})()


def test_spread_model_pays_half_the_spread_on_each_side():
    bars = _bars([100.0] * 5, [100.0] * 5)
    r = run_backtest(_strategy([1, np.nan, 0, np.nan, np.nan]), bars, quantity=100, costs=Costs(spread_bps=20))
    (t,) = r.trades
    assert t.entry_price == pytest.approx(100.10) and t.exit_price == pytest.approx(99.90)  # ±10 bps
    assert t.pnl == pytest.approx(-20.0)
    both = run_backtest(_strategy([1, np.nan, 0, np.nan, np.nan]), bars, quantity=100,
                        costs=Costs(spread_bps=20, slippage_bps=5))
    assert both.trades[0].entry_price == pytest.approx(100.15)  # fixed slippage adds on top


def test_square_root_impact_by_hand():
    # Returns of bars 1..3: +10%, -10%, +10% -> sample std 0.115470; mean volume 10,000 shares.
    closes = [100.0, 110.0, 99.0, 108.9, 100.0, 100.0, 100.0]
    bars = _bars([100.0] * 7, closes)
    # Signal at bar 3 -> entry at bar 4's open, priced from bars 1..3 only (window 3).
    targets = [np.nan, np.nan, np.nan, 1, np.nan, np.nan, np.nan]
    r = run_backtest(_strategy(targets), bars, quantity=100,
                     costs=Costs(impact_coefficient=0.5, impact_window=3))
    sigma = float(np.std([0.1, -0.1, 0.1], ddof=1))
    assert sigma == pytest.approx(0.1154700538)
    impact = 0.5 * sigma * math.sqrt(100 / 10_000)  # 0.0057735
    equity_at_entry = 100_000 - 100 * 100 * (1 + impact) + 100 * 100.0
    assert float(r.equity.iloc[4]) == pytest.approx(equity_at_entry)
    assert 100 * 100 * impact == pytest.approx(57.735, abs=1e-3)
    # Ten times the volume: sqrt(10) times less impact per share.
    calm = run_backtest(_strategy(targets), bars.assign(volume=100_000.0), quantity=100,
                        costs=Costs(impact_coefficient=0.5, impact_window=3))
    cost_calm = 100_000 - float(calm.equity.iloc[4])
    assert cost_calm == pytest.approx(100 * 100 * impact / math.sqrt(10))


def test_impact_uses_only_bars_before_the_fill_and_none_without_history():
    bars = _bars([100.0] * 6, [100.0, 110.0, 99.0, 108.9, 100.0, 500.0])
    k_sigma, vol = impact_inputs(bars, 1.0, 3)
    assert np.isnan(k_sigma[:4]).all() and np.isnan(vol[:3]).all()  # bar 3 has only 2 returns before it
    assert k_sigma[4] == pytest.approx(np.std([0.1, -0.1, 0.1], ddof=1))
    # bar 5's jump to 500 is not in bar 5's own figure
    assert k_sigma[5] == pytest.approx(np.std([-0.1, 0.1, 100 / 108.9 - 1], ddof=1))
    early = run_backtest(_strategy([1, np.nan, np.nan, np.nan, np.nan, np.nan]), bars, quantity=10,
                         costs=Costs(impact_coefficient=1.0, impact_window=3))
    assert float(early.equity.iloc[1]) == pytest.approx(100_000 - 10 * 100 + 10 * 110)  # no σ yet: no impact


def test_all_in_sizing_fits_the_cash_after_impact():
    # 10,000 at 100 buys 100 shares before impact; their impact (σ 0.11547 × sqrt(100/50)) prices the fill at
    # 116.33, so the size shrinks to what the cash pays at that price: floor(10,000 / 116.33) = 85 shares.
    bars = _bars([100.0] * 7, [100.0, 110.0, 99.0, 108.9, 100.0, 100.0, 100.0], volume=50.0)
    r = run_backtest(_strategy([np.nan, np.nan, np.nan, 1, np.nan, np.nan, np.nan]), bars, capital=10_000.0,
                     costs=Costs(impact_coefficient=1.0, impact_window=3))
    fill = 100 * (1 + np.std([0.1, -0.1, 0.1], ddof=1) * math.sqrt(100 / 50))
    assert fill == pytest.approx(116.32993, abs=1e-4)
    cash = 10_000.0 - 85 * fill
    assert cash >= 0
    assert float(r.equity.iloc[4]) == pytest.approx(cash + 85 * 100.0)


@pytest.mark.parametrize("kw", [{"spread_bps": -1.0}, {"impact_coefficient": float("nan")},
                                {"impact_window": 1}, {"impact_window": 2.5}])
def test_bad_slippage_settings_are_refused(kw):
    with pytest.raises(BacktestError):
        Costs(**kw)
