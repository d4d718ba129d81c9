"""Backtests with the live runtime's execution semantics (``backtest --execution live``).

The live runtime (trader/strategy/live.py) turns a signal on a bar's close into a proposal sized by the proposal
sizer (`trader.trading.sizing.size_position` with position_sizing.yaml, no confidence given: 0.5) unless the
Signal carries a quantity, and its guard refuses an opening order above the strategy's `max_position` shares.
The backtester already fills at the next bar's open; this module supplies the sizing: ATR (Wilder, the
configured period) and average volume from the bars before the fill, equity as the account value.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from trader.config import PositionSizingConfig

ADV_WINDOW = 20


def live_sizer_factory(cfg: PositionSizingConfig, *, max_position: float = 0.0
                       ) -> Callable[[pd.DataFrame], Callable[[int, float, float], float]]:
    """A `run_backtest(sizer_factory=…)` argument: per conId, shares for an entry at bar i as the live runtime
    would size it — 0 (refused) when above `max_position` (0 = no cap)."""
    from trader.trading.sizing import SizingInputs, size_position, wilder_atr_series

    def factory(df: pd.DataFrame) -> Callable[[int, float, float], float]:
        period = cfg.atr.period
        atr = wilder_atr_series(df["high"].to_numpy(float), df["low"].to_numpy(float), df["close"].to_numpy(float),
                                period)
        volume = df["volume"].to_numpy(float)
        daily = len(df) > 1 and (df.index[1] - df.index[0]).total_seconds() >= 86400 * 0.9
        # ADV of the bars before the fill; the live sizer's liquidity cap needs daily volume (none intraday)
        csum = np.concatenate(([0.0], np.cumsum(volume)))

        def size(i: int, price: float, equity: float) -> float:
            k = i - 1  # the last bar closed before the fill at bar i's open
            a = float(atr[k - period]) if 0 <= k - period < len(atr) else None
            adv = None
            if daily and i >= ADV_WINDOW:
                adv = float((csum[i] - csum[i - ADV_WINDOW]) / ADV_WINDOW) or None
            res = size_position(SizingInputs(price=price, atr=a, adv_shares=adv, nlv=max(equity, 0.0) or None),
                                cfg)
            q = float(res.shares)
            return 0.0 if max_position and q > max_position else q

        return size

    return factory
