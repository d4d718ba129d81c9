"""Gap fade (intraday bars): when a session opens more than GAP_PCT away from the previous session's last close,
bet on the gap closing — short a gap up, long a gap down — until it has closed or FLAT_AFTER (New York time)."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class GapFade(Strategy):
    """Opening gaps that overshoot tend to partly fill; this trades that and nothing else."""

    GAP_PCT = 0.5  # percent
    FLAT_AFTER = 15.75  # hours, New York time

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        ny = prices.index.tz_convert("America/New_York")
        session = pd.Series(ny.date, index=prices.index)
        close = prices["close"]
        # the previous session's last close: known from this session's first bar on
        prev_close = session.map(close.groupby(session).last().shift(1))
        first_open = prices["open"].groupby(session).transform("first")
        gap = first_open / prev_close - 1.0
        side = pd.Series(np.where(gap.abs() * 100 > self.GAP_PCT, -np.sign(gap), 0.0), index=prices.index)
        filled = ((side < 0) & (close <= prev_close)) | ((side > 0) & (close >= prev_close))
        filled = filled.astype(int).groupby(session).cummax().astype(bool)
        hours = ny.hour + ny.minute / 60.0
        out = side.where(~filled & (hours < self.FLAT_AFTER), 0.0)
        out[prev_close.isna()] = np.nan
        return out
