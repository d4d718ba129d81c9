"""Donchian channel breakout (daily bars, the turtle rule): long on a close above the highest high of the
previous ENTRY bars, out on a close below the lowest low of the previous EXIT bars."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class DonchianBreakout(Strategy):
    """Trend entry on new highs, exit on a shorter channel's low; the channels exclude the current bar."""

    ENTRY = 20
    EXIT = 10

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        close = prices["close"]
        upper = prices["high"].rolling(self.ENTRY).max().shift(1)
        lower = prices["low"].rolling(self.EXIT).min().shift(1)
        out = pd.Series(np.nan, index=prices.index)
        out[close < lower] = 0.0
        out[close > upper] = 1.0
        return out
