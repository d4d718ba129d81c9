"""Moving-average crossover: long when the fast SMA is above the slow SMA, short (or flat) below.

Implements both `on_prices` (bar-by-bar) and `signals` (vectorized); the backtester prefers `signals`
and the tests prove both produce the same trades.
"""
import numpy as np
import pandas as pd

from trader.strategy.api import Action, Signal, Strategy


class MACrossover(Strategy):
    """Fast/slow SMA crossover; ALLOW_SHORT=False means flat below the slow average."""

    FAST = 10
    SLOW = 30
    ALLOW_SHORT = False

    def on_prices(self, prices):
        close = prices["close"]
        if len(close) < self.SLOW:
            return None
        fast = close[-self.FAST:].mean()
        slow = close[-self.SLOW:].mean()
        if fast > slow:
            return Signal(Action.BUY)
        return Signal(Action.SELL if self.ALLOW_SHORT else Action.FLAT)

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        close = prices["close"]
        fast = close.rolling(self.FAST).mean()
        slow = close.rolling(self.SLOW).mean()
        below = -1.0 if self.ALLOW_SHORT else 0.0
        out = pd.Series(np.where(fast > slow, 1.0, below), index=prices.index)
        out[slow.isna()] = np.nan
        return out
