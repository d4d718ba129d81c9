"""Keltner channel breakout: long on a close above EMA + MULT*ATR, exit on a close below the EMA."""
import numpy as np

from trader.strategy.api import Action, Signal, Strategy

_BUY, _FLAT = Signal(Action.BUY), Signal(Action.FLAT)  # returned bar after bar: one object each (frozen)


class KeltnerBreakout(Strategy):
    """Channel = mean of the last PERIOD closes +/- MULT * mean true range of the last PERIOD bars."""

    PERIOD = 20
    MULT = 1.5

    def on_prices(self, prices):
        close, high, low = prices["close"], prices["high"], prices["low"]
        n = self.PERIOD
        if len(close) <= n:
            return None
        prev, hi, lo, recent = close[-n - 1:-1], high[-n:], low[-n:], close[-n:]
        tr = np.maximum(hi - lo, np.maximum(abs(hi - prev), abs(lo - prev)))
        # sum / count is the mean's own arithmetic (bit for bit) without its Python-level wrapper
        mid, last = recent.sum() / recent.size, close[-1]
        if last > mid + self.MULT * (tr.sum() / tr.size):
            return _BUY
        if last < mid:
            return _FLAT
        return None
