"""Volatility-scaled trend follower (any bars, bar-by-bar): long while the close is above its LOOKBACK-bar
average, sized so the position's annualised volatility is TARGET_VOL (capped at MAX_LEVERAGE of equity)."""
import numpy as np

from trader.strategy.api import Action, Signal, Strategy


class VolScaledTrend(Strategy):
    """Risk parity for one instrument: calm markets get a bigger position, wild ones a smaller one."""

    LOOKBACK = 50
    VOL_WINDOW = 20
    TARGET_VOL = 0.15
    MAX_LEVERAGE = 1.0
    PERIODS_PER_YEAR = 252

    def on_prices(self, prices):
        close = prices["close"]
        if len(close) <= max(self.LOOKBACK, self.VOL_WINDOW):
            return None
        if close[-1] <= close[-self.LOOKBACK:].mean():
            return Signal(Action.FLAT)
        rets = np.diff(close[-self.VOL_WINDOW - 1:]) / close[-self.VOL_WINDOW - 1:-1]
        vol = float(rets.std(ddof=1)) * np.sqrt(self.PERIODS_PER_YEAR)
        fraction = self.MAX_LEVERAGE if vol <= 0 else min(self.MAX_LEVERAGE, self.TARGET_VOL / vol)
        return Signal(Action.BUY, fraction=fraction)
