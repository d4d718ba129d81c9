"""VWAP reversion (intraday bars): long when the close is ENTRY_BPS below the session's running VWAP, out when
it is back at the VWAP; flat from FLAT_AFTER (New York time) to the session's end. Sessions are New York dates."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class VWAPReversion(Strategy):
    """Fades intraday stretches from the volume-weighted average price; never holds overnight."""

    ENTRY_BPS = 30.0
    FLAT_AFTER = 15.75  # hours, New York time (15:45)
    ALLOW_SHORT = True

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        ny = prices.index.tz_convert("America/New_York")
        session = pd.Series(ny.date, index=prices.index)
        typical = (prices["high"] + prices["low"] + prices["close"]) / 3.0
        volume = prices["volume"]
        vwap = (typical * volume).groupby(session).cumsum() / volume.groupby(session).cumsum()
        close = prices["close"]
        band = vwap * self.ENTRY_BPS / 1e4
        out = pd.Series(np.nan, index=prices.index)
        out[(close - vwap).abs() < band / 3] = 0.0  # back near the VWAP: take the reversion
        out[close < vwap - band] = 1.0
        if self.ALLOW_SHORT:
            out[close > vwap + band] = -1.0
        hours = ny.hour + ny.minute / 60.0
        out[hours >= self.FLAT_AFTER] = 0.0
        return out
