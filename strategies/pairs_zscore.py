"""Pairs trading (panel: two conIds): the spread log(A) − β·log(B), β from a rolling regression, is traded when its
z-score leaves ±ENTRY_Z — short the rich leg, long the cheap one — and closed inside ±EXIT_Z."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class PairsZScore(Strategy):
    """Market-neutral mean reversion of a co-moving pair; conIds beyond the first two (by id) stay flat."""

    LOOKBACK = 60
    ENTRY_Z = 2.0
    EXIT_Z = 0.5

    def panel_signals(self, frames: dict) -> dict:
        ids = sorted(frames)[:2]
        out = {c: pd.Series(0.0, index=df.index) for c, df in frames.items()}
        if len(ids) < 2:
            return out
        both = pd.concat({c: np.log(frames[c]["close"]) for c in ids}, axis=1).ffill().dropna()
        a, b, idx = both[ids[0]], both[ids[1]], both.index
        beta = a.rolling(self.LOOKBACK).cov(b) / b.rolling(self.LOOKBACK).var()
        spread = a - beta * b
        z = (spread - spread.rolling(self.LOOKBACK).mean()) / spread.rolling(self.LOOKBACK).std()
        leg = pd.Series(np.nan, index=idx)
        leg[z.abs() < self.EXIT_Z] = 0.0
        leg[z > self.ENTRY_Z] = -1.0  # A rich vs B: short A, long B
        leg[z < -self.ENTRY_Z] = 1.0
        out[ids[0]] = leg.reindex(frames[ids[0]].index)
        out[ids[1]] = (-leg).reindex(frames[ids[1]].index)
        return out
