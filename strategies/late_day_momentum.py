"""Late-day momentum (intraday bars): at ENTRY_AT (New York time), if the session is up more than MOVE_PCT from its
open go long (down: short) and hold to FLAT_AFTER — the last hour tends to continue the day's move."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class LateDayMomentum(Strategy):
    """One trade at most per session, in the direction of the day so far."""

    ENTRY_AT = 15.0  # hours, New York time
    FLAT_AFTER = 15.9
    MOVE_PCT = 0.3

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        ny = prices.index.tz_convert("America/New_York")
        session = pd.Series(ny.date, index=prices.index)
        hours = pd.Series(ny.hour + ny.minute / 60.0, index=prices.index)
        day_return = prices["close"] / prices["open"].groupby(session).transform("first") - 1.0
        window = (hours >= self.ENTRY_AT) & (hours < self.FLAT_AFTER)
        entry = window & ~window.groupby(session).shift(1, fill_value=False)  # the window's first bar
        decision = pd.Series(np.where(day_return.abs() * 100 > self.MOVE_PCT, np.sign(day_return), 0.0),
                             index=prices.index).where(entry)
        held = decision.groupby(session).ffill()
        return held.where(window, 0.0).fillna(0.0)
