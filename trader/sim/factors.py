"""Market structure of the simulated market: factors, betas, stochastic volatility, fat tails and news jumps.

A root contract's (STK, IND, CASH) log price at the start of UTC day d is

    x(d) = log(csv price) + drift · (d − anchor) / 365.25 + Σ_k β_k · X_k(d)

over components k: the market factor ``M``, one sector factor (the CSV industry, or a theme for ETFs, FX and
indices: ``USD``, ``Rates``, ``Gold``, ``Intl``, ``Energy`` …), the volatility factor ``VOL`` (VIX and the
volatility ETFs load on it) and the contract's own idiosyncratic component. Each component is a very slowly
mean-reverting walk (``REVERSION`` per year: a half-life of ~5 years, so prices trend and drift for years but
stay plausible) with

- Student-t daily shocks (``T_DOF`` degrees of freedom, scaled to unit variance): fat tails;
- stochastic volatility: the shock is multiplied by exp(h(d)) where h is an AR(1) log-volatility (persistence
  ``VOL_PERSISTENCE`` per day, std ``VOL_OF_VOL``, E[exp(2h)] = 1 so the CSV volatility holds on average):
  volatility clusters. The market's h also drives ``VOL`` and, with a leverage correlation
  ``LEVERAGE``, rises when the market falls;
- the idiosyncratic component of a stock (not an ETF) gets a news jump on about ``JUMPS_PER_YEAR`` weekdays a
  year (earnings-like, several daily sigmas; the news set headlines it, trader/sim/discovery.py); the jump
  lands in the gap minute before that day's session (trader/sim/profiles.py).

Betas come from the CSV's industry (a table below) times a per-symbol jitter, ETFs/indices/FX from a
symbol table; the idiosyncratic volatility is what is left of the CSV volatility after the factors and the
jumps, so each contract keeps its CSV volatility. Every value is a pure function of (seed, component, day):
components are built in blocks of ``BLOCK`` days forward and backward from the anchor day (2025-01-01, where
every component is 0 and the CSV prices hold), each block seeded on its own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np

from trader.sim.models import SimContract

ANCHOR_DAY = (date(2025, 1, 1) - date(1970, 1, 1)).days  # every component is 0 here: CSV prices hold
BLOCK = 512  # days per generated block
YEAR_DAYS = 365.25
REVERSION = 0.15  # per year, every component (half-life ≈ 4.6 years)
T_DOF = 6.0  # Student-t degrees of freedom of daily shocks
VOL_PERSISTENCE = 0.98  # AR(1) coefficient of daily log-volatility (half-life ≈ 34 days)
VOL_OF_VOL = 0.5  # stationary std of log-volatility
COMMON_VOL = 0.7  # weight of the market's log-volatility in every other component's (regimes are market-wide)
WEEKEND_VARIANCE = 0.15  # variance of a UTC Saturday/Sunday relative to a weekday (annual variance unchanged)
LEVERAGE = -0.6  # correlation of the market's shock with its next log-volatility innovation
VIX_LOADING = 0.6  # VOL factor = VIX_LOADING · (h_M − mean): the log level of VIX-like contracts
EQUITY_DRIFT = 0.06  # annual log drift per unit of market beta
JUMPS_PER_YEAR = 4.0  # news-day jumps of a single stock
JUMP_DAILY_SIGMAS = 2.5  # typical jump size in daily sigmas of the stock (at least JUMP_MIN)
JUMP_MIN = 0.03

FACTOR_VOL: dict[str, float] = {"M": 0.16, "USD": 0.07, "Rates": 0.10, "Gold": 0.14, "Intl": 0.10}
SECTOR_VOL = 0.12  # every other sector factor
# CSV industry -> (market beta, sector beta) before the per-symbol jitter
INDUSTRY_BETAS: dict[str, tuple[float, float]] = {
    "Technology": (1.2, 1.0), "Communications": (1.05, 1.0), "Consumer, Cyclical": (1.1, 1.0),
    "Consumer, Non-cyclical": (0.7, 1.0), "Financial": (1.1, 1.0), "Industrial": (1.0, 1.0),
    "Energy": (0.9, 1.0), "Basic Materials": (1.0, 1.0), "Utilities": (0.5, 1.0),
}
# ETFs and indices by symbol: (market beta, sector or "", sector beta)
SYMBOL_BETAS: dict[str, tuple[float, str, float]] = {
    "SPY": (1.0, "", 0.0), "VOO": (1.0, "", 0.0), "VTI": (1.02, "", 0.0), "DIA": (0.95, "", 0.0),
    "SPX": (1.0, "", 0.0), "IWM": (1.15, "", 0.0), "RUT": (1.15, "", 0.0),
    "QQQ": (1.1, "Technology", 0.5), "NDX": (1.1, "Technology", 0.5), "SMH": (1.4, "Technology", 1.2),
    "XLK": (1.1, "Technology", 0.9), "ARKK": (1.5, "Technology", 1.0), "TQQQ": (3.3, "Technology", 1.5),
    "SQQQ": (-3.3, "Technology", -1.5), "XLF": (1.1, "Financial", 0.9), "XLE": (0.9, "Energy", 0.9),
    "USO": (0.4, "Energy", 1.0), "XLV": (0.75, "Consumer, Non-cyclical", 0.7),
    "XLP": (0.6, "Consumer, Non-cyclical", 0.8), "SCHD": (0.8, "Consumer, Non-cyclical", 0.3),
    "XLI": (1.0, "Industrial", 0.9), "XLY": (1.1, "Consumer, Cyclical", 0.9), "XLU": (0.5, "Utilities", 0.9),
    "EFA": (0.85, "Intl", 0.8), "EEM": (0.9, "Intl", 1.0), "FXI": (0.9, "Intl", 1.3),
    "GLD": (0.05, "Gold", 1.0), "SLV": (0.2, "Gold", 1.4), "GDX": (0.5, "Gold", 1.8),
    "TLT": (-0.2, "Rates", 1.2), "IEF": (-0.1, "Rates", 0.6), "LQD": (0.1, "Rates", 0.7),
    "HYG": (0.3, "Rates", 0.3), "VIX": (0.0, "VOL", 1.0), "UVXY": (0.0, "VOL", 1.5), "VXX": (0.0, "VOL", 1.0),
}
_RISK_ON = {"AUD": 0.15, "NZD": 0.15, "CAD": 0.05}
_JUMP_M2 = 0.36 + 2 * 0.6 * 0.8 * math.sqrt(2 / math.pi) + 0.64  # E[(0.6 + 0.8|z|)^2]: jump magnitude²


@dataclass(frozen=True, slots=True)
class Loadings:
    """How one root contract loads on the components: (component key, beta) pairs, its own component's
    annual volatility, annual log drift and whether it gets news jumps."""

    betas: tuple[tuple[str, float], ...]
    idio_vol: float
    drift: float
    jumps: bool
    jump_size: float


def _unit(*parts: object) -> float:
    """A stable uniform number in [0, 1) from its parts (no dependence on Python's hash seed)."""
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def factor_vol(key: str) -> float:
    """Annual volatility of a factor component."""
    return FACTOR_VOL.get(key, SECTOR_VOL)


@lru_cache(maxsize=4096)
def loadings(c: SimContract) -> Loadings:
    """The factor loadings of a root contract (STK, IND, CASH, CRYPTO)."""
    vol = max(c.volatility, 0.01)
    jumps = False
    if c.sec_type == "CASH":
        usd = 1.0 if c.symbol == "USD" else -1.0 if c.currency == "USD" else 0.0
        beta_m = _RISK_ON.get(c.symbol, 0.0) - _RISK_ON.get(c.currency, 0.0)
        betas: list[tuple[str, float]] = [("M", beta_m), ("USD", usd)]
        drift = 0.0
    elif c.symbol in SYMBOL_BETAS:
        beta_m, sector, beta_s = SYMBOL_BETAS[c.symbol]
        betas = [("M", beta_m)] + ([(sector, beta_s)] if sector else [])
        drift = EQUITY_DRIFT * beta_m
    else:
        base_m, base_s = INDUSTRY_BETAS.get(c.industry, (1.0, 0.6 if c.industry else 0.0))
        beta_m = base_m * (0.75 + 0.5 * _unit("beta_m", c.symbol, c.con_id))
        beta_s = base_s * (0.7 + 0.6 * _unit("beta_s", c.symbol, c.con_id))
        sector = c.industry if c.industry and c.industry != "Funds" else ""
        betas = [("M", beta_m)] + ([(sector, beta_s)] if sector else [])
        drift = EQUITY_DRIFT * beta_m
        jumps = c.sec_type == "STK" and c.industry != "Funds"
    daily = vol / math.sqrt(252.0)
    jump_size = max(JUMP_MIN, JUMP_DAILY_SIGMAS * daily) if jumps else 0.0
    factor_var = sum((b * (VIX_LOADING * VOL_OF_VOL if k == "VOL" else factor_vol(k))) ** 2 for k, b in betas)
    jump_var = JUMPS_PER_YEAR * jump_size**2 * _JUMP_M2
    idio = math.sqrt(max(vol * vol - factor_var - jump_var, (0.15 * vol) ** 2))
    return Loadings(tuple((k, b) for k, b in betas if b), idio, drift, jumps, jump_size)


class FactorModel:
    """Day-level components of the simulated market: levels X_k(d), per-day shock std and news jumps."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._blocks: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._phi = math.exp(-REVERSION / YEAR_DAYS)
        self._t_scale = math.sqrt((T_DOF - 2.0) / T_DOF)
        self._idio_vol: dict[str, float] = {}
        self._jump_spec: dict[str, tuple[float, Callable[[int], bool]]] = {}

    # ---------------------------------------------------------------- blocks
    def _gen(self, key: str, b: int) -> np.random.Generator:
        ident = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=6).digest(), "big")
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 7, ident, b + 10**6])))

    def block(self, key: str, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(levels at the starts of BLOCK + 1 days, shock std of each of the BLOCK days, jumps of each day)
        of component `key` (``M``, a sector, ``VOL``, or ``E:<conId>`` whose jumps the caller adds)."""
        hit = self._blocks.get((key, b))
        if hit is not None:
            return hit
        if key == "VOL":
            out = self._vol_block(b)
        else:
            out = self._walk_block(key, b)
        self._blocks[(key, b)] = out
        return out

    def _logvol(self, key: str, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(log-volatility h of each day of block b, the standardized t shocks of those days).

        h[j] = mean + φ·(h[j-1] − mean) + innovation; for the market, the innovation takes LEVERAGE of the
        previous day's shock (a falling market raises tomorrow's volatility and VOL). Blocks before the anchor
        run backward from the next block and have no leverage term (it would bias the drift backward)."""
        g = self._gen(key, b)
        shocks = g.standard_t(T_DOF, BLOCK) * self._t_scale
        noise = g.standard_normal(BLOCK)
        mean, step, phi = -VOL_OF_VOL**2, VOL_OF_VOL * math.sqrt(1 - VOL_PERSISTENCE**2), VOL_PERSISTENCE
        h = [0.0] * BLOCK
        if b >= 0:
            lev = LEVERAGE if key == "M" else 0.0
            if b == 0:
                prev, prev_shock = mean, 0.0
            else:
                ph, ps = self._h_cache(key, b - 1)
                prev, prev_shock = float(ph[-1]), float(ps[-1])
            eps = (math.sqrt(1 - lev * lev) * noise).tolist()
            lagged = np.concatenate(([prev_shock], np.clip(shocks[:-1], -4, 4))).tolist()
            for j in range(BLOCK):
                h[j] = prev = mean + (prev - mean) * phi + step * (lev * lagged[j] + eps[j])
        else:
            nxt = float(self._h_cache(key, b + 1)[0][0])
            eps = noise.tolist()
            for j in range(BLOCK - 1, -1, -1):
                h[j] = nxt = mean + (nxt - mean) * phi + step * eps[j]
        return np.array(h), shocks

    def _h_cache(self, key: str, b: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._blocks.get(("h:" + key, b))
        if hit is None:
            h, shocks = self._logvol(key, b)
            hit = self._blocks[("h:" + key, b)] = (h, shocks, np.zeros(0))
        return hit[0], hit[1]

    def _walk_block(self, key: str, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, shocks = self._h_cache(key, b)
        if key != "M":  # volatility regimes are largely market-wide: blend in the market's log-volatility
            mean = -VOL_OF_VOL**2
            h = mean + COMMON_VOL * (self._h_cache("M", b)[0] - mean) + math.sqrt(1 - COMMON_VOL**2) * (h - mean)
        days = ANCHOR_DAY + b * BLOCK + np.arange(BLOCK)
        weekend = ((days + 3) % 7) >= 5  # UTC Saturday and Sunday: markets closed, little news
        scale = math.sqrt(7.0 / (5.0 + 2.0 * WEEKEND_VARIANCE))
        sd = np.exp(h) * (self._annual_vol(key) / math.sqrt(YEAR_DAYS)) * np.where(
            weekend, scale * math.sqrt(WEEKEND_VARIANCE), scale)
        jumps = self._jumps(key, b)
        noise = (shocks * sd + jumps).tolist()
        phi = self._phi
        out = [0.0] * (BLOCK + 1)
        if b >= 0:
            out[0] = 0.0 if b == 0 else float(self.block(key, b - 1)[0][-1])
            for j in range(BLOCK):
                out[j + 1] = out[j] * phi + noise[j]
        else:  # backward from the next block's start; the increment out[j+1] - out[j] is ≈ noise[j]
            out[BLOCK] = float(self.block(key, b + 1)[0][0])
            for j in range(BLOCK - 1, -1, -1):
                out[j] = out[j + 1] * phi - noise[j]
        return np.array(out), sd, jumps

    def _vol_block(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """VOL at the start of day j = VIX_LOADING · (h_M of day j − h_M at the anchor): the market's volatility
        of the day, which rises over a day the market falls (leverage); its per-day std is h's."""
        h = self._h_cache("M", b)[0]
        after = self._h_cache("M", b + 1)[0][0]
        level = VIX_LOADING * (np.concatenate((h, [after])) - self._h_cache("M", 0)[0][0])
        sd = np.full(BLOCK, VIX_LOADING * VOL_OF_VOL * math.sqrt(1 - VOL_PERSISTENCE**2))
        return level, sd, np.zeros(BLOCK)

    def _annual_vol(self, key: str) -> float:
        if key.startswith("E:"):
            return self._idio_vol.get(key, 0.0)
        return factor_vol(key)

    def _jumps(self, key: str, b: int) -> np.ndarray:
        spec = self._jump_spec.get(key)
        if spec is None:
            return np.zeros(BLOCK)
        size, eligible = spec
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 8, int(key[2:]), b + 10**6])))
        u, z = g.random(BLOCK), g.standard_normal(BLOCK)
        out = np.zeros(BLOCK)
        for j in np.nonzero(u < JUMPS_PER_YEAR / 252.0)[0]:
            if eligible(ANCHOR_DAY + b * BLOCK + int(j)):
                out[j] = math.copysign(size * (0.6 + 0.8 * abs(z[j])), z[j])
        return out

    # ---------------------------------------------------------------- contracts
    def register(self, c: SimContract, jump_days) -> Loadings:
        """Register a root contract's own component (idempotent); `jump_days(day) -> bool` says on which
        UTC days a jump may land (days with a session gap)."""
        ld = loadings(c)
        key = f"E:{c.con_id}"
        if key not in self._idio_vol:
            self._idio_vol[key] = ld.idio_vol
            if ld.jumps:
                self._jump_spec[key] = (ld.jump_size, jump_days)
        return ld

    def level(self, key: str, day: int) -> float:
        """X_k at the start of UTC day `day`."""
        b, j = divmod(day - ANCHOR_DAY, BLOCK)
        return float(self.block(key, b)[0][j])

    def day_sd(self, key: str, day: int) -> float:
        """Std of component k's diffusive shock over UTC day `day` (log units)."""
        b, j = divmod(day - ANCHOR_DAY, BLOCK)
        return float(self.block(key, b)[1][j])

    def jump(self, key: str, day: int) -> float:
        """The news jump of component k on UTC day `day` (0.0 if none)."""
        b, j = divmod(day - ANCHOR_DAY, BLOCK)
        return float(self.block(key, b)[2][j])

    def log_price(self, c: SimContract, day: int) -> float:
        """Log price of a registered root contract at the start of UTC day `day`."""
        ld = loadings(c)
        x = math.log(c.start_price) + ld.drift * (day - ANCHOR_DAY) / YEAR_DAYS + self.level(f"E:{c.con_id}", day)
        for k, beta in ld.betas:
            x += beta * self.level(k, day)
        return x
