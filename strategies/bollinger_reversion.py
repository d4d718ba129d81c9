"""Bollinger-band mean reversion (daily bars): long when the close falls K standard deviations below its
LOOKBACK-bar mean, out when it is back above the mean (short the mirror image when ALLOW_SHORT)."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class BollingerReversion(Strategy):
    """Buys stretched-down closes, sells the return to the mean; holds in between (NaN = hold)."""

    LOOKBACK = 20
    K = 2.0
    ALLOW_SHORT = False

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        close = prices["close"]
        mean = close.rolling(self.LOOKBACK).mean()
        band = self.K * close.rolling(self.LOOKBACK).std()
        out = pd.Series(np.nan, index=prices.index)
        out[close >= mean] = 0.0
        out[close < mean - band] = 1.0
        if self.ALLOW_SHORT:
            out[close > mean + band] = -1.0
        out[mean.isna()] = np.nan
        return out
