"""RSI mean reversion: buy when RSI drops below OVERSOLD, exit when it rises above EXIT_LEVEL."""
from trader.strategy.api import Action, Signal, Strategy

_FLAT = Signal(Action.FLAT)  # returned bar after bar: one object (a Signal is frozen)


class RSIMeanReversion(Strategy):
    """Wilder-free simple RSI over PERIOD bars; long-only."""

    PERIOD = 14
    OVERSOLD = 30.0
    EXIT_LEVEL = 55.0

    def on_prices(self, prices):
        close = prices["close"]
        if len(close) <= self.PERIOD:
            return None
        last = close[-(self.PERIOD + 1):]
        delta = last[1:] - last[:-1]  # np.diff's own arithmetic, without its Python-level wrapper
        gain, loss = delta[delta > 0.0].sum(), -delta[delta < 0.0].sum()
        rsi = 100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss)
        if rsi < self.OVERSOLD:
            return Signal(Action.BUY, probability=min(1.0, (self.OVERSOLD - rsi) / self.OVERSOLD + 0.5))
        if rsi > self.EXIT_LEVEL:
            return _FLAT
        return None
