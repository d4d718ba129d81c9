"""Opening-range breakout (intraday bars): after the first RANGE_BARS bars of a UTC day, go long on a
close above the range high, short below the range low; flat at the last EXIT_BARS_BEFORE_END bars."""
from trader.strategy.api import Action, Signal, Strategy

# Returned bar after bar: one object each (a Signal is frozen), not a new one per call.
_BUY, _SELL, _FLAT = Signal(Action.BUY), Signal(Action.SELL), Signal(Action.FLAT)


class OpeningRangeBreakout(Strategy):
    """Works on any intraday bar size; on daily bars it never trades."""

    RANGE_BARS = 30
    ALLOW_SHORT = True

    def __init__(self):
        self._day = None
        self._start = 0

    def on_prices(self, prices):
        i = len(prices) - 1
        day = prices.time(i).date()  # prices.index[i], without building the index every bar
        if day != self._day:
            self._day, self._start = day, i
            return _FLAT
        if i - self._start < self.RANGE_BARS:
            return None
        rng = slice(self._start, self._start + self.RANGE_BARS)
        hi, lo, close = prices["high"][rng].max(), prices["low"][rng].min(), prices["close"][-1]
        if close > hi:
            return _BUY
        if close < lo and self.ALLOW_SHORT:
            return _SELL
        return None
