"""Pure helpers of the simulated market: UTC stamps, hashing, tick rounding, nominal volume, Black-Scholes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from trader.sim.models import SimContract

RISK_FREE_RATE = 0.04


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _ts(dt: datetime) -> int:
    return math.floor(_utc(dt).timestamp())


def _dt(ts: int | float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _mix(*parts: int) -> int:
    """A fast deterministic 64-bit hash (splitmix64 over the parts)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
        h = h * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h


def _norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(spot: float, strike: float, years: float, vol: float, right: str,
                  rate: float = RISK_FREE_RATE) -> float:
    """European option value; intrinsic value at or after expiry."""
    if years <= 0 or vol <= 0 or spot <= 0:
        return max(spot - strike, 0.0) if right == "C" else max(strike - spot, 0.0)
    sq = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / sq
    d2 = d1 - sq
    disc = math.exp(-rate * years)
    if right == "C":
        return spot * _norm_cdf(d1) - strike * disc * _norm_cdf(d2)
    return strike * disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def _round_tick(x, tick: float):
    """``x`` on the ``tick`` grid, rounded to 10 decimals (half to even, as numpy rounds)."""
    if type(x) is float and math.isfinite(x):  # a scalar: numpy's arithmetic in Python floats (~10x faster)
        y = round(x / tick) * tick  # round(): half to even, as np.round; ints below 2**53 convert exactly
        return round(y * 1e10) / 1e10 if abs(y) < 1e5 else float(np.round(y, 10))  # np.round(y, 10)'s steps
    return np.round(np.round(np.asarray(x) / tick) * tick, 10)



def _norm_cdf_vec(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf_vec(x / math.sqrt(2.0)))


_erf_vec = np.vectorize(math.erf, otypes=[float])


def _bs_vec(spot: np.ndarray, strike: float, years: np.ndarray, vol: float, right: str) -> np.ndarray:
    """Vectorised Black-Scholes (intrinsic where expired)."""
    spot = np.asarray(spot, dtype=float)
    years = np.asarray(years, dtype=float)
    intrinsic = np.maximum(spot - strike, 0.0) if right == "C" else np.maximum(strike - spot, 0.0)
    live = (years > 0) & (spot > 0)
    if not live.any():
        return intrinsic
    t = np.where(live, years, 1.0)
    s = np.where(live, spot, 1.0)
    sq = vol * np.sqrt(t)
    d1 = (np.log(s / strike) + (RISK_FREE_RATE + 0.5 * vol * vol) * t) / sq
    d2 = d1 - sq
    disc = np.exp(-RISK_FREE_RATE * t)
    if right == "C":
        val = s * _norm_cdf_vec(d1) - strike * disc * _norm_cdf_vec(d2)
    else:
        val = strike * disc * _norm_cdf_vec(-d2) - s * _norm_cdf_vec(-d1)
    return np.where(live, np.maximum(val, 0.0), intrinsic)


def _nominal_volume(c: SimContract) -> float:
    """Daily volume of a root path (indices and FX get a nominal one that derivatives scale from)."""
    return c.avg_volume if c.avg_volume > 0 else 1_000_000.0
