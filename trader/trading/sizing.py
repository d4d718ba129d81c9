"""Position sizing for proposals that give no quantity or amount (pure: no I/O, numpy only).

Two methods, chosen by ``position_sizing.yaml`` ``method``:

**ATR (inverse volatility, the default)**::

    confidence_scale = max(confidence.floor, confidence)            # confidence clipped to [0, 1] first
    atr_pct          = 100 × ATR / price
    atr_adjustment   = clamp(atr.target_atr_pct / atr_pct, atr.min_adjustment, atr.max_adjustment)
    size_usd         = base_position_usd × risk_multiplier × confidence_scale × atr_adjustment

A stock whose daily range (ATR%) is twice the target gets half the base size; a quiet one gets more, up to
``max_adjustment``. Unknown ATR gives an adjustment of 1.0 (and a warning).

**Kelly (fractional)**::

    edge (full Kelly f*) = p − (1 − p) / b        # p = win probability, b = average win / average loss
    size_usd             = kelly.fraction × f* × NLV × risk_multiplier

``p`` defaults to the proposal's confidence; ``b`` comes from the bracket (take-profit distance / stop-loss
distance) or is given directly. No edge (f* ≤ 0) means no position. Without ``b`` the ATR method is used
instead (with a warning).

Then, for both methods, in this order (each step can only shrink the size, except the first clamp):

1. clamp to ``[min_position_usd, max_position_usd]``;
2. liquidity: at most ``liquidity.max_pct_adv`` % of average daily volume (shares × price), and × the
   ``wide_spread_penalty`` when the bid/ask spread is wider than ``wide_spread_bps`` (spread / mid × 10,000);
3. hard limits: the position (including what is already held in the same direction) stays within
   ``max_position_usd``, ``max_position_pct_nlv`` % of NLV and — when the trading filters are given — the risk
   gate's ``max_position_value_usd`` and ``max_position_pct_nlv``, so the sizer never proposes what the gate
   would refuse;
4. whole shares, rounded down.

Unknown or non-positive NLV sizes to zero shares (fail closed, as the risk gate does).

ATR and ADV come from daily bars: :func:`wilder_atr` (Wilder's smoothing, seeded with the simple mean of the
first ``period`` true ranges — the TA-Lib convention) and :func:`average_daily_volume`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from trader.config import PositionSizingConfig, TradingFiltersConfig
from trader.messaging.codec import wire

__all__ = [
    "DEFAULT_CONFIDENCE",
    "SizingInputs",
    "SizingResult",
    "size_position",
    "confidence_scale",
    "atr_adjustment",
    "kelly_edge",
    "win_loss_ratio_from_bracket",
    "spread_bps",
    "true_range",
    "wilder_atr_series",
    "wilder_atr",
    "average_daily_volume",
    "format_usd",
]

# Used when a proposal states no confidence: sizing then treats the idea as a coin flip, not as a sure thing.
DEFAULT_CONFIDENCE = 0.5

# Names recorded in SizingResult.clamps, in the order the steps run.
CLAMP_CONFIDENCE_FLOOR = "confidence_floor"
CLAMP_ATR_MIN = "atr_adjustment_min"
CLAMP_ATR_MAX = "atr_adjustment_max"
CLAMP_MIN_POSITION = "min_position_usd"
CLAMP_MAX_POSITION = "max_position_usd"
CAP_ADV = "adv_cap"
PENALTY_WIDE_SPREAD = "wide_spread"
CAP_MAX_VALUE = "max_position_value"
CAP_PCT_NLV = "max_pct_nlv"
NO_EDGE = "kelly_no_edge"
NO_NLV = "nlv_unknown"


@dataclass(frozen=True, slots=True)
class SizingInputs:
    """Market and account facts for one sizing decision.

    ``existing_value_usd`` is the absolute market value already held in the trade's direction (adding to a
    long): the hard caps apply to the resulting total. ``win_prob`` defaults to ``confidence`` for Kelly.
    """

    price: float
    confidence: float | None = None
    atr: float | None = None
    adv_shares: float | None = None
    bid: float | None = None
    ask: float | None = None
    nlv: float | None = None
    existing_value_usd: float = 0.0
    win_prob: float | None = None
    win_loss_ratio: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.price) and self.price > 0):
            raise ValueError(f"price must be a positive number, got {self.price!r}")


@wire(name="trading.SizingResult")
@dataclass(frozen=True, slots=True)
class SizingResult:
    """The size and every factor that produced it (shown by ``proposals show``)."""

    method: str
    shares: int
    usd: float  # shares × price: what the order is worth
    target_usd: float  # after every clamp and cap, before rounding down to whole shares
    formula_usd: float  # the raw formula product, before any clamp
    price: float
    base_usd: float = 0.0
    risk_multiplier: float = 1.0
    confidence: float = DEFAULT_CONFIDENCE
    confidence_scale: float = 1.0
    atr_pct: float | None = None
    atr_adjustment: float = 1.0
    kelly_edge: float | None = None
    kelly_fraction: float | None = None
    win_prob: float | None = None
    win_loss_ratio: float | None = None
    adv_cap_usd: float | None = None
    spread_bps: float | None = None
    spread_penalty: float = 1.0
    hard_cap_usd: float | None = None
    clamps: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    breakdown: str = ""

    def describe(self) -> str:
        """One line: the formula, each clamp/cap that applied, and the final whole-share size."""
        parts = [self.breakdown, *self.steps, f"{self.shares} shares ≈ {format_usd(self.usd)}"]
        return " → ".join(p for p in parts if p)

    def to_dict(self) -> dict:
        """JSON-safe dict (tuples as lists)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SizingResult:
        """Inverse of :meth:`to_dict` (unknown keys are ignored so old rows still load)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
        return cls(**kwargs)


# --------------------------------------------------------------------------- formatting
def format_usd(value: float) -> str:
    """``$5,000`` style: whole dollars with thousands separators (negative as ``-$1,200``)."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.0f}"


def _fmt_mult(value: float) -> str:
    """``1.0``, ``1.25``: at least one decimal, at most two (the risk multiplier in the breakdown)."""
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text


# --------------------------------------------------------------------------- factors
def confidence_scale(confidence: float | None, floor: float) -> float:
    """``max(floor, confidence)`` with confidence clipped to [0, 1]; None means :data:`DEFAULT_CONFIDENCE`."""
    c = DEFAULT_CONFIDENCE if confidence is None or not math.isfinite(confidence) else confidence
    return max(floor, min(1.0, max(0.0, c)))


def atr_adjustment(atr_pct: float | None, target_atr_pct: float, lo: float, hi: float) -> tuple[float, str | None]:
    """Inverse-volatility factor ``clamp(target / atr_pct, lo, hi)``; returns (factor, clamp name or None).

    Unknown or non-positive ATR% returns 1.0 (neutral): the hard limits still bound the size.
    """
    if atr_pct is None or not math.isfinite(atr_pct) or atr_pct <= 0:
        return 1.0, None
    raw = target_atr_pct / atr_pct
    if raw < lo:
        return lo, CLAMP_ATR_MIN
    if raw > hi:
        return hi, CLAMP_ATR_MAX
    return raw, None


def kelly_edge(win_prob: float, win_loss_ratio: float) -> float:
    """Full Kelly fraction ``f* = p − (1 − p) / b``; negative means the bet has no edge."""
    if not (0.0 <= win_prob <= 1.0):
        raise ValueError(f"win probability must be in [0, 1], got {win_prob}")
    if not (win_loss_ratio > 0 and math.isfinite(win_loss_ratio)):
        raise ValueError(f"win/loss ratio must be positive, got {win_loss_ratio}")
    return win_prob - (1.0 - win_prob) / win_loss_ratio


def win_loss_ratio_from_bracket(entry: float, take_profit: float, stop_loss: float) -> float | None:
    """``b`` for Kelly from a bracket: |take_profit − entry| / |entry − stop_loss| (None if degenerate)."""
    win = abs(take_profit - entry)
    loss = abs(entry - stop_loss)
    if loss <= 0 or win <= 0 or not math.isfinite(win / loss):
        return None
    return win / loss


def spread_bps(bid: float | None, ask: float | None) -> float | None:
    """Quoted spread in basis points of the mid price; None when the quote is missing or crossed."""
    if bid is None or ask is None or not (math.isfinite(bid) and math.isfinite(ask)):
        return None
    if bid <= 0 or ask < bid:
        return None
    mid = (bid + ask) / 2.0
    return (ask - bid) / mid * 10_000.0


# --------------------------------------------------------------------------- the sizer
def size_position(
    inputs: SizingInputs,
    cfg: PositionSizingConfig,
    filters: TradingFiltersConfig | None = None,
) -> SizingResult:
    """Size one trade with ``cfg.method`` (see the module docstring for every formula and the step order)."""
    price = inputs.price
    clamps: list[str] = []
    steps: list[str] = []
    warnings: list[str] = []
    conf = DEFAULT_CONFIDENCE if inputs.confidence is None else min(1.0, max(0.0, inputs.confidence))
    if inputs.confidence is None:
        warnings.append(f"no confidence given: assumed {DEFAULT_CONFIDENCE}")
    scale = confidence_scale(conf, cfg.confidence.floor)
    if scale > conf:
        clamps.append(CLAMP_CONFIDENCE_FLOOR)

    atr_pct = None
    if inputs.atr is not None and math.isfinite(inputs.atr) and inputs.atr > 0:
        atr_pct = inputs.atr / price * 100.0

    nlv = inputs.nlv if inputs.nlv is not None and math.isfinite(inputs.nlv) and inputs.nlv > 0 else None

    method = cfg.method
    edge = kelly_frac = ratio = p_win = None
    adj = 1.0
    if method == "kelly":
        p_win = conf if inputs.win_prob is None else inputs.win_prob
        ratio = inputs.win_loss_ratio
        if ratio is None or not (ratio > 0 and math.isfinite(ratio)):
            warnings.append("kelly needs a win/loss ratio (give a bracket TP/SL): used the ATR method instead")
            method = "atr"
        elif nlv is not None:  # unknown NLV sizes to zero below
            edge = kelly_edge(p_win, ratio)
            kelly_frac = cfg.kelly.fraction

    if method == "atr":
        adj, clamp = atr_adjustment(atr_pct, cfg.atr.target_atr_pct, cfg.atr.min_adjustment, cfg.atr.max_adjustment)
        if clamp:
            clamps.append(clamp)
        if atr_pct is None:
            warnings.append("ATR unknown: volatility adjustment 1.0")
        formula = cfg.base_position_usd * cfg.risk_multiplier * scale * adj
        breakdown = (
            f"base {format_usd(cfg.base_position_usd)} × {_fmt_mult(cfg.risk_multiplier)} risk × "
            f"{scale:.2f} confidence × {adj:.2f} ATR adj = {format_usd(formula)}"
        )
    elif edge is not None and nlv is not None:
        formula = max(0.0, cfg.kelly.fraction * edge * nlv * cfg.risk_multiplier)
        breakdown = (
            f"kelly {cfg.kelly.fraction:.2f} × {edge:.3f} edge (p {p_win:.2f}, b {ratio:.2f}) × "
            f"{format_usd(nlv)} NLV × {_fmt_mult(cfg.risk_multiplier)} risk = {format_usd(formula)}"
        )
    else:
        formula = 0.0
        breakdown = "kelly: NLV unknown"

    def result(
        target: float,
        *,
        adv_cap: float | None = None,
        sbps: float | None = None,
        penalty: float = 1.0,
        hard_cap: float | None = None,
    ) -> SizingResult:
        target = max(0.0, target)
        # A tiny epsilon keeps 2975.0000000001 / 29.75 from flooring to 99 through float noise.
        shares = int(math.floor(target / price + 1e-9)) if target > 0 else 0
        if shares * price > target + 1e-6:
            shares = max(0, shares - 1)
        return SizingResult(
            method=method, shares=shares, usd=round(float(shares * price), 2), target_usd=round(target, 2),
            formula_usd=round(formula, 2), price=price, base_usd=cfg.base_position_usd,
            risk_multiplier=cfg.risk_multiplier, confidence=conf, confidence_scale=scale,
            atr_pct=None if atr_pct is None else round(atr_pct, 4), atr_adjustment=round(adj, 4),
            kelly_edge=None if edge is None else round(edge, 6), kelly_fraction=kelly_frac,
            win_prob=p_win, win_loss_ratio=ratio, adv_cap_usd=adv_cap, spread_bps=sbps,
            spread_penalty=penalty, hard_cap_usd=hard_cap, clamps=tuple(clamps), steps=tuple(steps),
            warnings=tuple(warnings), breakdown=breakdown,
        )

    if nlv is None:
        clamps.append(NO_NLV)
        steps.append("NLV unknown: no position (fail closed)")
        return result(0.0)
    if edge is not None and edge <= 0:
        clamps.append(NO_EDGE)
        steps.append(f"no edge (f* {edge:.3f}): no position")
        return result(0.0)

    # 1. configured bounds
    size = formula
    if size < cfg.min_position_usd:
        size = cfg.min_position_usd
        clamps.append(CLAMP_MIN_POSITION)
        steps.append(f"min position {format_usd(size)}")
    elif size > cfg.max_position_usd:
        size = cfg.max_position_usd
        clamps.append(CLAMP_MAX_POSITION)
        steps.append(f"max position {format_usd(size)}")

    # 2. liquidity
    adv_cap = None
    if inputs.adv_shares is not None and math.isfinite(inputs.adv_shares) and inputs.adv_shares >= 0:
        adv_cap = cfg.liquidity.max_pct_adv / 100.0 * inputs.adv_shares * price
        if size > adv_cap:
            size = adv_cap
            clamps.append(CAP_ADV)
            steps.append(f"{cfg.liquidity.max_pct_adv:g}% ADV cap {format_usd(adv_cap)}")
    else:
        warnings.append("average daily volume unknown: liquidity cap not applied")
    sbps = spread_bps(inputs.bid, inputs.ask)
    penalty = 1.0
    if sbps is not None and sbps > cfg.liquidity.wide_spread_bps:
        penalty = cfg.liquidity.wide_spread_penalty
        size *= penalty
        clamps.append(PENALTY_WIDE_SPREAD)
        steps.append(f"spread {sbps:.0f} bps > {cfg.liquidity.wide_spread_bps:g}: × {penalty:.2f}")
    if sbps is not None:
        sbps = round(sbps, 2)

    # 3. hard limits on the resulting position (what is already held in this direction counts)
    held = max(0.0, inputs.existing_value_usd)
    caps = [(cfg.max_position_usd, CAP_MAX_VALUE), (cfg.max_position_pct_nlv / 100.0 * nlv, CAP_PCT_NLV)]
    if filters is not None:
        caps += [(filters.max_position_value_usd, CAP_MAX_VALUE), (filters.max_position_pct_nlv / 100.0 * nlv, CAP_PCT_NLV)]
    limit, limit_name = min(caps, key=lambda c: c[0])
    hard_cap = max(0.0, limit - held)
    if size > hard_cap:
        size = hard_cap
        clamps.append(limit_name)
        label = "max % of NLV" if limit_name == CAP_PCT_NLV else "max position value"
        held_txt = f" less {format_usd(held)} held" if held else ""
        steps.append(f"{label} {format_usd(limit)}{held_txt}: {format_usd(hard_cap)}")
    return result(size, adv_cap=None if adv_cap is None else round(adv_cap, 2), sbps=sbps, penalty=penalty,
                  hard_cap=round(hard_cap, 2))


# --------------------------------------------------------------------------- ATR / ADV from daily bars
def _as_arrays(*series: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=float) for s in series]
    n = len(arrays[0])
    if any(a.ndim != 1 or len(a) != n for a in arrays):
        raise ValueError("high, low and close must be 1-d and of equal length")
    return arrays


def true_range(high: Sequence[float], low: Sequence[float], close: Sequence[float]) -> np.ndarray:
    """True range of bars 1..n−1: ``max(H − L, |H − C₋₁|, |L − C₋₁|)`` (bar 0 has no previous close)."""
    h, lo, c = _as_arrays(high, low, close)
    if len(h) < 2:
        return np.empty(0)
    prev = c[:-1]
    return np.maximum.reduce([h[1:] - lo[1:], np.abs(h[1:] - prev), np.abs(lo[1:] - prev)])


def wilder_atr_series(
    high: Sequence[float], low: Sequence[float], close: Sequence[float], period: int = 14
) -> np.ndarray:
    """Wilder's ATR for every bar from ``period`` on (length n − period; empty if too few bars).

    ``ATR₀ = mean(TR₁ … TR_period)``, then ``ATRₜ = (ATRₜ₋₁ × (period − 1) + TRₜ) / period``.
    """
    if period < 1:
        raise ValueError("period must be >= 1")
    tr = true_range(high, low, close)
    if len(tr) < period:
        return np.empty(0)
    out = np.empty(len(tr) - period + 1)
    out[0] = tr[:period].mean()
    for i, value in enumerate(tr[period:], start=1):
        out[i] = (out[i - 1] * (period - 1) + value) / period
    return out


def wilder_atr(
    high: Sequence[float], low: Sequence[float], close: Sequence[float], period: int = 14
) -> float | None:
    """The latest Wilder ATR, or None with fewer than ``period + 1`` bars or non-finite data."""
    series = wilder_atr_series(high, low, close, period)
    if len(series) == 0 or not math.isfinite(series[-1]):
        return None
    return float(series[-1])


def average_daily_volume(volume: Sequence[float], window: int = 20) -> float | None:
    """Mean volume (shares) of the last ``window`` bars, ignoring missing (NaN) days; None if no data."""
    if window < 1:
        raise ValueError("window must be >= 1")
    v = np.asarray(volume, dtype=float)[-window:]
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None
    return float(v.mean())
