"""Moving-average crossover, bar by bar with precomputed averages: the same trades as `ma_crossover.py`.

`precompute` computes both averages once over the whole series; `on_prices` reads them for the current bar
only (`prices.last`), so a bar costs a few lookups instead of two means over the window.
"""
import math

from trader.strategy.api import Action, Signal, Strategy

BUY, SELL, FLAT = Signal(Action.BUY), Signal(Action.SELL), Signal(Action.FLAT)


class MACrossoverFast(Strategy):
    """Fast/slow SMA crossover; ALLOW_SHORT=False means flat below the slow average."""

    FAST = 10
    SLOW = 30
    ALLOW_SHORT = False

    @classmethod
    def param_problems(cls, params):
        """A fast average must be shorter than the slow one (and at least one bar)."""
        fast, slow = params["FAST"], params["SLOW"]
        return [] if 1 <= fast < slow else [f"FAST must be at least 1 and below SLOW, got FAST={fast} SLOW={slow}"]

    def precompute(self, prices):
        close = prices["close"]
        return {"fast": close.rolling(self.FAST).mean(), "slow": close.rolling(self.SLOW).mean()}

    def on_prices(self, prices):
        slow = prices.last("slow")
        if math.isnan(slow):
            return None
        if prices.last("fast") > slow:
            return BUY
        return SELL if self.ALLOW_SHORT else FLAT
