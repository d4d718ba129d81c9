"""Indicator glue for the idea scanner: thin wrappers over the ``ta`` library (bukosabino/ta), last values only.

The scanner needs a handful of numbers per symbol (RSI, EMA, SMA, relative volume, gap, range); the
indicators themselves come from ``ta`` (a maintained, tested library) rather than being re-implemented here:

- RSI: ``ta.momentum.RSIIndicator`` (Wilder's smoothing: an EMA with alpha = 1/window);
- EMA: ``ta.trend.EMAIndicator`` (``ewm(span=window, adjust=False)``, first value after ``window`` points);
- SMA: ``ta.trend.SMAIndicator`` (rolling mean);
- VWAP over bars: ``ta.volume.VolumeWeightedAveragePrice`` (typical price (H+L+C)/3 weighted by volume).

Everything returns a float or None (too few bars, or a NaN), never raises on short input: a symbol with 10 days
of history simply has no SMA50 and scores no points for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd


def _last(series: pd.Series) -> float | None:
    if series.empty:
        return None
    value = float(series.iloc[-1])
    return value if math.isfinite(value) else None


def _series(values: Sequence[float]) -> pd.Series:
    return pd.Series([float(v) for v in values], dtype="float64")


def rsi(closes: Sequence[float], window: int = 14) -> float | None:
    """The last RSI(window) of ``closes`` (oldest first); None with fewer than ``window + 1`` closes."""
    from ta.momentum import RSIIndicator

    if len(closes) < window + 1:
        return None
    return _last(RSIIndicator(_series(closes), window=window).rsi())


def ema(closes: Sequence[float], window: int) -> float | None:
    """The last EMA(window) of ``closes``; None with fewer than ``window`` closes."""
    from ta.trend import EMAIndicator

    if len(closes) < window:
        return None
    return _last(EMAIndicator(_series(closes), window=window).ema_indicator())


def sma(closes: Sequence[float], window: int) -> float | None:
    """The last SMA(window) of ``closes``; None with fewer than ``window`` closes."""
    from ta.trend import SMAIndicator

    if len(closes) < window:
        return None
    return _last(SMAIndicator(_series(closes), window=window).sma_indicator())


def vwap(highs: Sequence[float], lows: Sequence[float], closes: Sequence[float], volumes: Sequence[float],
         window: int) -> float | None:
    """Volume-weighted typical price over the last ``window`` bars; None when too short or without volume."""
    from ta.volume import VolumeWeightedAveragePrice

    if len(closes) < window or sum(volumes[-window:]) <= 0:
        return None
    return _last(VolumeWeightedAveragePrice(_series(highs), _series(lows), _series(closes), _series(volumes),
                                            window=window).volume_weighted_average_price())


def relative_volume(volume: float | None, past_volumes: Sequence[float], window: int = 20) -> float | None:
    """Today's volume over the mean of the last ``window`` completed sessions' volumes (None if unknown)."""
    past = [v for v in past_volumes[-window:] if v is not None and v > 0]
    if volume is None or not past:
        return None
    return volume / (sum(past) / len(past))


def pct(a: float | None, b: float | None) -> float | None:
    """(a − b) / b in percent; None when either is missing or b is 0."""
    if a is None or b is None or not b or not math.isfinite(a) or not math.isfinite(b):
        return None
    return (a - b) / b * 100.0
