"""Options math and chain helpers (pure: no I/O, no broker types).

Black-Scholes (European, continuous rate, no dividends) value and greeks in IB's units — vega per volatility
point (1 %), theta per calendar day — an implied-volatility solver, and the helpers ``options chain`` uses to
bound its answer (the strikes nearest the money inside a range).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

__all__ = [
    "Greeks",
    "black_scholes",
    "greeks",
    "implied_vol",
    "years_to_expiry",
    "strikes_near",
    "parse_expiry",
    "MAX_CHAIN_STRIKES",
]

MAX_CHAIN_STRIKES = 20  # strikes (each with its call and put) one `options chain` answer lists at most
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class Greeks:
    """Model value and sensitivities of one option: vega per 1 % of volatility, theta per calendar day."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _d1_d2(spot: float, strike: float, years: float, vol: float, rate: float) -> tuple[float, float]:
    sq = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / sq
    return d1, d1 - sq


def _right(right: str) -> str:
    r = right.strip().upper()[:1]
    if r not in ("C", "P"):
        raise ValueError(f"right must be C or P, got {right!r}")
    return r


def black_scholes(spot: float, strike: float, years: float, vol: float, right: str, rate: float = 0.0) -> float:
    """European option value; its intrinsic value at or after expiry (or with no volatility)."""
    r = _right(right)
    if years <= 0 or vol <= 0:
        return max(spot - strike, 0.0) if r == "C" else max(strike - spot, 0.0)
    d1, d2 = _d1_d2(spot, strike, years, vol, rate)
    disc = math.exp(-rate * years)
    if r == "C":
        return spot * _cdf(d1) - strike * disc * _cdf(d2)
    return strike * disc * _cdf(-d2) - spot * _cdf(-d1)


def greeks(spot: float, strike: float, years: float, vol: float, right: str, rate: float = 0.0) -> Greeks:
    """Value, delta, gamma, vega (per vol point) and theta (per calendar day); ValueError past expiry."""
    r = _right(right)
    if years <= 0 or vol <= 0 or spot <= 0 or strike <= 0:
        raise ValueError("greeks need a positive spot, strike, volatility and time to expiry")
    d1, d2 = _d1_d2(spot, strike, years, vol, rate)
    pdf = math.exp(-0.5 * d1 * d1) / _SQRT_2PI
    disc = math.exp(-rate * years)
    decay = -spot * pdf * vol / (2.0 * math.sqrt(years))
    if r == "C":
        delta, theta = _cdf(d1), decay - rate * strike * disc * _cdf(d2)
    else:
        delta, theta = _cdf(d1) - 1.0, decay + rate * strike * disc * _cdf(-d2)
    return Greeks(price=black_scholes(spot, strike, years, vol, r, rate), delta=delta,
                  gamma=pdf / (spot * vol * math.sqrt(years)), vega=spot * pdf * math.sqrt(years) / 100.0,
                  theta=theta / 365.0)


def implied_vol(price: float, spot: float, strike: float, years: float, right: str, rate: float = 0.0,
                lo: float = 1e-4, hi: float = 5.0, tol: float = 1e-8) -> float | None:
    """The volatility at which Black-Scholes gives ``price`` (bisection); None when no volatility can (a price
    below intrinsic value or above the bound, or no time left)."""
    if years <= 0 or price <= 0:
        return None
    f_lo = black_scholes(spot, strike, years, lo, right, rate) - price
    f_hi = black_scholes(spot, strike, years, hi, right, rate) - price
    if f_lo > 0 or f_hi < 0:
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if black_scholes(spot, strike, years, mid, right, rate) < price:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return 0.5 * (lo + hi)


def parse_expiry(text: str) -> str:
    """An expiry as IB writes it (YYYYMMDD) from YYYYMMDD or YYYY-MM-DD; ValueError otherwise."""
    digits = text.strip().replace("-", "")
    datetime.strptime(digits, "%Y%m%d")  # raises ValueError on a bad date
    return digits


def years_to_expiry(expiry: str, today: date) -> float:
    """Calendar years from ``today`` to the expiry date (YYYYMMDD), 0 when it has passed."""
    d = datetime.strptime(expiry[:8], "%Y%m%d").date()
    return max((d - today).days, 0) / 365.0


def strikes_near(strikes: Sequence[float], spot: float | None, *, strike_min: float | None = None,
                 strike_max: float | None = None, limit: int = MAX_CHAIN_STRIKES) -> list[float]:
    """The strikes inside [strike_min, strike_max], at most ``limit`` of them: those nearest ``spot`` (the
    middle of the range when the spot is unknown), returned in ascending order."""
    inside = sorted({float(k) for k in strikes if (strike_min is None or k >= strike_min)
                     and (strike_max is None or k <= strike_max)})
    if len(inside) <= limit:
        return inside
    centre = spot if spot is not None and math.isfinite(spot) else inside[len(inside) // 2]
    return sorted(sorted(inside, key=lambda k: (abs(k - centre), k))[:limit])
