"""Keltner channel breakout: long on a close above EMA + MULT*ATR, exit on a close below the EMA."""
import numpy as np

from trader.strategy.api import Action, Signal, Strategy


class KeltnerBreakout(Strategy):
    """Channel = mean of the last PERIOD closes +/- MULT * mean true range of the last PERIOD bars."""

    PERIOD = 20
    MULT = 1.5

    def on_prices(self, prices):
        close, high, low = prices["close"], prices["high"], prices["low"]
        n = self.PERIOD
        if len(close) <= n:
            return None
        prev = close[-n - 1:-1]
        tr = np.maximum(high[-n:] - low[-n:], np.maximum(abs(high[-n:] - prev), abs(low[-n:] - prev)))
        mid = close[-n:].mean()
        if close[-1] > mid + self.MULT * tr.mean():
            return Signal(Action.BUY)
        if close[-1] < mid:
            return Signal(Action.FLAT)
        return None
