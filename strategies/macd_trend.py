"""MACD trend (daily bars): long while the MACD line (FAST EMA − SLOW EMA) is above its SIGNAL-bar EMA,
flat otherwise."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class MACDTrend(Strategy):
    """The classic 12/26/9 MACD crossover, long only."""

    FAST = 12
    SLOW = 26
    SIGNAL = 9

    @classmethod
    def param_problems(cls, params):
        """The fast EMA must be shorter than the slow one (and at least one bar)."""
        fast, slow = params["FAST"], params["SLOW"]
        return [] if 1 <= fast < slow else [f"FAST must be at least 1 and below SLOW, got FAST={fast} SLOW={slow}"]

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        close = prices["close"]
        macd = close.ewm(span=self.FAST, adjust=False).mean() - close.ewm(span=self.SLOW, adjust=False).mean()
        line = macd.ewm(span=self.SIGNAL, adjust=False).mean()
        out = pd.Series(np.where(macd > line, 1.0, 0.0), index=prices.index)
        out.iloc[: self.SLOW] = np.nan  # the EMAs need SLOW bars to mean anything
        return out
