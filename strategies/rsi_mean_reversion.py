"""RSI mean reversion: buy when RSI drops below OVERSOLD, exit when it rises above EXIT_LEVEL."""
import numpy as np

from trader.strategy.api import Action, Signal, Strategy


class RSIMeanReversion(Strategy):
    """Wilder-free simple RSI over PERIOD bars; long-only."""

    PERIOD = 14
    OVERSOLD = 30.0
    EXIT_LEVEL = 55.0

    def on_prices(self, prices):
        close = prices["close"]
        if len(close) <= self.PERIOD:
            return None
        delta = np.diff(close[-(self.PERIOD + 1):])
        gain, loss = delta[delta > 0].sum(), -delta[delta < 0].sum()
        rsi = 100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss)
        if rsi < self.OVERSOLD:
            return Signal(Action.BUY, probability=min(1.0, (self.OVERSOLD - rsi) / self.OVERSOLD + 0.5))
        if rsi > self.EXIT_LEVEL:
            return Signal(Action.FLAT)
        return None
