"""Moving-average crossover: long when the fast SMA is above the slow SMA, short (or flat) below.

Implements both `on_prices` (bar-by-bar) and `signals` (vectorized); the backtester prefers `signals`
and the tests prove both produce the same trades.
"""
import numpy as np
import pandas as pd

from trader.strategy.api import Action, Signal, Strategy
from trader.strategy.indicators import rolling_mean

# rolling_mean: pandas' rolling(w).mean(), bit for bit, without its per-call overhead (live and in sweeps).
# Returned bar after bar: one object each (a Signal is frozen), not a new one per call.
_BUY, _SELL, _FLAT = Signal(Action.BUY), Signal(Action.SELL), Signal(Action.FLAT)


class MACrossover(Strategy):
    """Fast/slow SMA crossover; ALLOW_SHORT=False means flat below the slow average."""

    FAST = 10
    SLOW = 30
    ALLOW_SHORT = False

    @classmethod
    def param_problems(cls, params):
        """A fast average must be shorter than the slow one (and at least one bar)."""
        fast, slow = params["FAST"], params["SLOW"]
        return [] if 1 <= fast < slow else [f"FAST must be at least 1 and below SLOW, got FAST={fast} SLOW={slow}"]

    def on_prices(self, prices):
        close = prices["close"]
        if len(close) < self.SLOW:
            return None
        # sum / count is the mean's own arithmetic (bit for bit) without its Python-level wrapper
        fast, slow = close[-self.FAST:], close[-self.SLOW:]
        if fast.sum() / fast.size > slow.sum() / slow.size:
            return _BUY
        return _SELL if self.ALLOW_SHORT else _FLAT

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        close = prices["close"]
        fast = rolling_mean(close, self.FAST)
        slow = rolling_mean(close, self.SLOW)
        out = np.where(fast > slow, 1.0, -1.0 if self.ALLOW_SHORT else 0.0)
        out[np.isnan(slow)] = np.nan
        return pd.Series(out, index=prices.index)

    def signals_wide(self, prices) -> np.ndarray:
        """`signals` of many conIds at once (`prices["close"]` is bars × conIds): both rolling means over the 2-D
        frame, one column per conId (the same values as `signals`, conId by conId)."""
        close = prices["close"]
        fast = rolling_mean(close, self.FAST)
        slow = rolling_mean(close, self.SLOW)
        out = np.where(fast > slow, 1.0, -1.0 if self.ALLOW_SHORT else 0.0)
        out[np.isnan(slow)] = np.nan
        return out

    def signals_grid(self, prices: pd.DataFrame, params_list: list[dict]) -> np.ndarray:
        """`signals` of every params dict of a sweep chunk in one pass, one column each: each window's SMA is
        computed once and shared by the combos that use it (the same values as `signals`, combo by combo)."""
        close = prices["close"]
        sma: dict[int, np.ndarray] = {}
        # bars × combos with each combo's column contiguous (Fortran order): the sweep's fill pass reads combos first
        out = np.empty((len(params_list), len(prices))).T
        for j, p in enumerate(params_list):
            s = type(self)().with_params(**p)
            for w in (s.FAST, s.SLOW):
                if w not in sma:
                    sma[w] = rolling_mean(close, w)
            fast, slow = sma[s.FAST], sma[s.SLOW]
            col = np.where(fast > slow, 1.0, -1.0 if s.ALLOW_SHORT else 0.0)
            col[np.isnan(slow)] = np.nan
            out[:, j] = col
        return out
