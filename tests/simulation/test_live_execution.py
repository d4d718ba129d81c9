"""`backtest --execution live`: entries sized as the live runtime sizes its proposals, on a hand-computed case."""
from __future__ import annotations

import pandas as pd

from trader.config import PositionSizingConfig
from trader.simulation.backtester import run_backtest
from trader.simulation.live_sizing import live_sizer_factory
from trader.strategy.api import Action, Signal, Strategy


class _LongFrom30(Strategy):
    def on_prices(self, prices):
        return Signal(Action.BUY) if len(prices["close"]) == 30 else None


class _LongTen(Strategy):
    def on_prices(self, prices):
        return Signal(Action.BUY, quantity=10) if len(prices["close"]) == 30 else None


def _bars(n=40):
    idx = pd.bdate_range("2026-01-05", periods=n, tz="UTC")
    return pd.DataFrame({"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 1e6}, index=idx)


def test_live_sizing_by_hand():
    # ATR 2 on a price of 100 = the 2% target: adjustment 1.0; no confidence: 0.5.
    # $5,000 base × 1.0 risk × 0.5 confidence × 1.0 ATR = $2,500 → 25 shares at 100 (ADV and NLV caps far away).
    cfg = PositionSizingConfig()
    bars = _bars()
    live = run_backtest(_LongFrom30(), bars, sizer_factory=live_sizer_factory(cfg))
    allin = run_backtest(_LongFrom30(), bars)
    bump = bars.copy()
    bump.loc[bump.index[-1], "close"] = 110.0  # a last-bar move reveals the size held
    live2 = run_backtest(_LongFrom30(), bump, sizer_factory=live_sizer_factory(cfg))
    assert float(live2.equity.iloc[-1] - live.equity.iloc[-1]) == 25 * 10.0
    allin2 = run_backtest(_LongFrom30(), bump)
    assert float(allin2.equity.iloc[-1] - allin.equity.iloc[-1]) == 1000 * 10.0  # all-in: 100,000 / 100


def test_live_guard_refuses_above_max_position_and_signal_quantity_wins():
    cfg = PositionSizingConfig()
    bump = _bars()
    bump.loc[bump.index[-1], "close"] = 110.0
    refused = run_backtest(_LongFrom30(), bump, sizer_factory=live_sizer_factory(cfg, max_position=20))
    assert float(refused.equity.iloc[-1]) == 100_000.0  # 25 > 20 shares: the guard refuses the entry
    ten = run_backtest(_LongTen(), bump, sizer_factory=live_sizer_factory(cfg))
    assert float(ten.equity.iloc[-1]) == 100_000.0 + 10 * 10.0  # the Signal's quantity is what the runtime proposes
