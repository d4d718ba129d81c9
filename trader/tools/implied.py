"""The market-implied (risk-neutral) distribution of an underlying at an option expiry (Breeden–Litzenberger).

Pure numpy/scipy, no I/O. From one expiry's chain (per strike: call and put mid prices):

1. **Forward and discount** from put–call parity, ``C − P = D·(F − K)``: a least-squares line of C − P against K
   over the strikes with both quotes gives the discount factor ``D`` (−slope) and the forward ``F``
   (intercept / D) — no interest rate or dividend assumed.
2. **Implied volatility** of the out-of-the-money option at each strike (puts below F, calls above; Black-76 on
   F and D, ``scipy.optimize.brentq``), then a **smoothed IV curve** in log-moneyness
   (``scipy.interpolate.UnivariateSpline``, cubic), continued linearly beyond the listed strikes.
3. Undiscounted call prices ``c(K) = C(K)/D`` from that curve on a dense strike grid, and the density
   ``q(K) = ∂²c/∂K²`` (Breeden & Litzenberger, 1978) by central differences; negative noise is clipped.

The result: the density on the grid, its mass (≈ 1 when the grid covers the distribution — reported, then
normalised), mean (≈ F: the risk-neutral mean is the forward), standard deviation, percentiles, and the
probability of finishing above/below chosen levels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ImpliedDistribution", "implied_distribution", "forward_and_discount", "black76", "PERCENTILES"]

PERCENTILES = (5, 10, 25, 50, 75, 90, 95)
GRID_POINTS = 2001
MIN_STRIKES = 5


@dataclass(frozen=True, slots=True)
class ImpliedDistribution:
    """The risk-neutral distribution at expiry (see module doc). ``grid``/``density`` describe the curve."""

    forward: float
    discount: float
    years: float
    mass: float  # integral of the raw density over the grid (≈ 1)
    mean: float
    std: float
    percentiles: dict[int, float]
    prob_above: dict[float, float]
    prob_below: dict[float, float]
    grid: np.ndarray = field(repr=False)
    density: np.ndarray = field(repr=False)
    strikes_used: int = 0
    atm_iv: float = 0.0

    def to_dict(self, curve_points: int = 101) -> dict:
        """JSON-safe summary with the curve resampled to ``curve_points`` points (bounded)."""
        idx = np.linspace(0, len(self.grid) - 1, max(2, min(curve_points, len(self.grid)))).round().astype(int)
        return {"forward": self.forward, "discount": self.discount, "years": self.years, "mass": self.mass,
                "mean": self.mean, "std": self.std, "atm_iv": self.atm_iv, "strikes_used": self.strikes_used,
                "percentiles": [{"pct": p, "price": v} for p, v in self.percentiles.items()],
                "levels": [{"level": k, "prob_below": self.prob_below[k], "prob_above": self.prob_above[k]}
                           for k in self.prob_above],
                "curve": [[float(self.grid[i]), float(self.density[i])] for i in idx]}


def black76(forward: float, strike: np.ndarray | float, years: float, vol: np.ndarray | float,
            right: str = "C") -> np.ndarray:
    """Undiscounted Black-76 value of a call (or put) on the forward."""
    from scipy.stats import norm

    k = np.asarray(strike, dtype=float)
    v = np.maximum(np.asarray(vol, dtype=float), 1e-8) * math.sqrt(years)
    d1 = (np.log(forward / k) + 0.5 * v * v) / v
    d2 = d1 - v
    call = forward * norm.cdf(d1) - k * norm.cdf(d2)
    return call if right == "C" else call - (forward - k)


def forward_and_discount(strikes: Sequence[float], calls: Sequence[float], puts: Sequence[float]) -> tuple[float, float]:
    """(F, D) from put–call parity over strikes with both mids; ValueError when it cannot be read."""
    k, c, p = (np.asarray(x, dtype=float) for x in (strikes, calls, puts))
    ok = np.isfinite(c) & np.isfinite(p)
    if ok.sum() < 2:
        raise ValueError("put-call parity needs a call and a put quote at two strikes at least")
    slope, intercept = np.polyfit(k[ok], c[ok] - p[ok], 1)
    discount = -slope
    if not (0.5 < discount <= 1.05):
        raise ValueError(f"put-call parity gives a discount factor of {discount:.4f}: quotes inconsistent")
    return float(intercept / discount), float(min(discount, 1.0))


def _implied_vol(price: float, forward: float, strike: float, years: float, right: str) -> float | None:
    from scipy.optimize import brentq

    intrinsic = max(forward - strike, 0.0) if right == "C" else max(strike - forward, 0.0)
    if not (math.isfinite(price) and price > intrinsic + 1e-9 and price < (forward if right == "C" else strike)):
        return None
    try:
        return float(brentq(lambda v: float(black76(forward, strike, years, v, right)) - price, 1e-4, 5.0,
                            xtol=1e-8))
    except ValueError:
        return None


def _wings(spline, x: np.ndarray, lo: float, hi: float, years: float, floor: float) -> np.ndarray:
    """The smoothed IV on ``x``, continued linearly (same slope, so the density has no spike) beyond the
    listed strikes, the slope capped by Lee's moment bound on total variance and the IV floored."""
    vol = spline(np.clip(x, lo, hi))
    for edge, side in ((lo, x < lo), (hi, x > hi)):
        level = float(spline(edge))
        cap = 1.0 / (max(level, 1e-3) * years)  # d(σ²T)/dx ≤ 2
        slope = float(np.clip(spline.derivative()(edge), -cap, cap))
        vol = np.where(side, level + slope * (x - edge), vol)
    return np.maximum(vol, 0.5 * floor)


def implied_distribution(strikes: Sequence[float], call_mids: Sequence[float | None], put_mids: Sequence[float | None],
                         years: float, levels: Sequence[float] = (), smoothing: float = 1e-4) -> ImpliedDistribution:
    """The risk-neutral distribution at expiry from one expiry's mids (see module doc). ``None`` mids are
    skipped; ``levels`` are the prices whose above/below probabilities are reported. Raises ``ValueError``
    when the chain cannot support it (too few strikes, inconsistent parity, expiry passed)."""
    from scipy.interpolate import UnivariateSpline

    if not (math.isfinite(years) and years > 0):
        raise ValueError("the expiry has passed: no distribution to imply")
    k = np.asarray(strikes, dtype=float)
    c = np.array([np.nan if x is None else float(x) for x in call_mids])
    p = np.array([np.nan if x is None else float(x) for x in put_mids])
    order = np.argsort(k)
    k, c, p = k[order], c[order], p[order]
    forward, discount = forward_and_discount(k, c, p)
    xs, ivs = [], []
    for strike, call, put in zip(k, c / discount, p / discount, strict=True):
        right, price = ("P", put) if strike < forward else ("C", call)
        iv = _implied_vol(price, forward, strike, years, right) if math.isfinite(price) else None
        if iv is not None:
            xs.append(math.log(strike / forward))
            ivs.append(iv)
    if len(xs) < MIN_STRIKES:
        raise ValueError(f"only {len(xs)} strikes have a usable out-of-the-money quote ({MIN_STRIKES} needed)")
    x, y = np.asarray(xs), np.asarray(ivs)
    spline = UnivariateSpline(x, y, k=3, s=len(x) * smoothing)
    atm = float(spline(0.0))
    width = 8.0 * max(atm, float(y.min()), 0.05) * math.sqrt(years)
    grid = forward * np.exp(np.linspace(-width, width, GRID_POINTS))
    vol = _wings(spline, np.log(grid / forward), x.min(), x.max(), years, float(y.min()))
    undiscounted = black76(forward, grid, years, vol, "C")
    density = np.clip(np.gradient(np.gradient(undiscounted, grid), grid), 0.0, None)
    mass = float(np.trapezoid(density, grid))
    if not (mass > 0 and math.isfinite(mass)):
        raise ValueError("the smoothed curve gives no density")
    pdf = density / mass
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    mean = float(np.trapezoid(grid * pdf, grid))
    std = float(math.sqrt(max(np.trapezoid((grid - mean) ** 2 * pdf, grid), 0.0)))
    percentiles = {q: float(np.interp(q / 100.0, cdf, grid)) for q in PERCENTILES}
    below = {float(level): float(np.interp(float(level), grid, cdf)) for level in levels}
    return ImpliedDistribution(forward=forward, discount=discount, years=years, mass=mass, mean=mean, std=std,
                               percentiles=percentiles, prob_below=below,
                               prob_above={level: 1.0 - v for level, v in below.items()},
                               grid=grid, density=pdf, strikes_used=len(xs), atm_iv=atm)
