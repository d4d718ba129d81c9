"""Idea-scanner presets: each one's filters, how it scores (0–100) and how it labels (BUY / SELL / WATCH).

Pure Python, no pandas: ``mmr ideas --presets`` lists them without starting anything. The metrics a preset reads
are computed by :func:`trader.tools.ideas.compute_metrics` (names below are those of :class:`Metrics`):

``price`` last trade · ``change_pct`` vs the previous close · ``gap_pct`` today's open vs the previous close ·
``range_pct`` (high − low) / previous close · ``rvol`` volume / mean volume of the last 20 sessions ·
``rsi`` RSI(14) · ``ema9`` · ``sma20`` · ``sma50`` (daily closes, today's price last) · ``vwap`` today's VWAP
(the typical price (H+L+C)/3 when the source has none) · ``dist_sma20_pct`` / ``dist_sma50_pct`` price vs SMA.

Scoring: every preset adds a few components, each a linear ramp between two values (``ramp(x, lo, hi, pts)``:
0 points at ``lo``, ``pts`` at ``hi`` and beyond) or a fixed award; the points per component are returned with
the idea, so the score is never a black box. A missing metric (too little history) scores 0 for its component.
Scores are capped at 100 and rounded to 0.1. A label is BUY/SELL only when the score is at least
``ACTION_SCORE`` and the preset's condition holds; otherwise WATCH.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

ACTION_SCORE = 60.0
MAX_SCORE = 100.0


@dataclass(frozen=True, slots=True)
class Filters:
    """Hard filters (inclusive bounds; None = no bound). A symbol failing one is not an idea."""

    min_price: float | None = None
    max_price: float | None = None
    min_volume: float | None = None
    min_change: float | None = None  # percent vs the previous close
    max_change: float | None = None
    min_gap: float | None = None  # percent, today's open vs the previous close
    max_gap: float | None = None

    def merged(self, overrides: Mapping[str, float | None]) -> Filters:
        """These filters with every non-None override replacing the preset's value."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})

    def as_dict(self) -> dict[str, float]:
        """The bounds that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def reject_reason(self, m: Any) -> str | None:
        """None if metrics ``m`` pass; else the first failed bound (a missing value fails a set bound)."""
        checks = (("min_price", m.price, 1), ("max_price", m.price, -1), ("min_volume", m.volume, 1),
                  ("min_change", m.change_pct, 1), ("max_change", m.change_pct, -1),
                  ("min_gap", m.gap_pct, 1), ("max_gap", m.gap_pct, -1))
        for name, value, sign in checks:
            bound = getattr(self, name)
            if bound is None:
                continue
            if value is None or (value - bound) * sign < 0:
                return name
        return None


def ramp(x: float | None, lo: float, hi: float, pts: float) -> float:
    """0 at ``lo`` (and below), ``pts`` at ``hi`` (and above), linear between; 0 for a missing value."""
    if x is None:
        return 0.0
    if x <= lo:
        return 0.0
    if x >= hi:
        return pts
    return pts * (x - lo) / (hi - lo)


def _between(x: float | None, lo: float, hi: float) -> bool:
    return x is not None and lo <= x <= hi


def _gt(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a > b


@dataclass(frozen=True, slots=True)
class Preset:
    """One scanner preset: filters, scoring components and labelling rule, with their descriptions."""

    name: str
    summary: str
    filters: Filters
    scoring: str  # the components in words, as listed by `ideas --presets`
    label_rule: str
    components: Callable[[Any], dict[str, float]]
    action: Callable[[Any], str | None]  # "BUY"/"SELL" when the preset's condition holds, else None

    def score(self, m: Any) -> tuple[float, dict[str, float]]:
        """(score capped at 100, points per component) for metrics ``m``."""
        parts = {k: round(v, 1) for k, v in self.components(m).items()}
        return round(min(MAX_SCORE, sum(parts.values())), 1), parts

    def label(self, m: Any, score: float) -> str:
        """BUY / SELL when ``score`` ≥ ACTION_SCORE and the preset's condition holds, else WATCH."""
        if score >= ACTION_SCORE:
            return self.action(m) or "WATCH"
        return "WATCH"

    def describe(self) -> dict[str, Any]:
        """The preset as `ideas --presets` shows it."""
        return {"name": self.name, "summary": self.summary, "filters": self.filters.as_dict(),
                "score": self.scoring, "label": self.label_rule}


def _momentum(m: Any) -> dict[str, float]:
    return {"change": ramp(m.change_pct, 2, 10, 35), "rvol": ramp(m.rvol, 1, 3, 25),
            "rsi": 20.0 if _between(m.rsi, 50, 80) else 0.0, "above_ema9": 20.0 if _gt(m.price, m.ema9) else 0.0}


def _gap_up(m: Any) -> dict[str, float]:
    d = m.dist_sma20_pct
    return {"gap": ramp(m.gap_pct, 3, 10, 40), "rvol": ramp(m.rvol, 1, 3, 25),
            "rsi": 15.0 if _between(m.rsi, 50, 75) else 0.0,
            "sma20": 20.0 if _between(d, 0, 10) else 10.0 if (d is not None and d > 10) else 0.0}


def _gap_down(m: Any) -> dict[str, float]:
    d = m.dist_sma20_pct
    gap = -m.gap_pct if m.gap_pct is not None else None
    return {"gap": ramp(gap, 3, 10, 40), "rvol": ramp(m.rvol, 1, 3, 25),
            "rsi": 15.0 if _between(m.rsi, 25, 50) else 0.0,
            "sma20": 20.0 if _between(d, -10, 0) else 10.0 if (d is not None and d < -10) else 0.0}


def _neg(x: float | None) -> float | None:
    return -x if x is not None else None


def _mean_reversion(m: Any) -> dict[str, float]:
    oversold = 40 - m.rsi if m.rsi is not None else None
    return {"rsi": ramp(oversold, 0, 20, 35), "below_sma20": ramp(_neg(m.dist_sma20_pct), 0, 10, 25),
            "below_sma50": ramp(_neg(m.dist_sma50_pct), 0, 15, 20), "rvol": ramp(m.rvol, 1, 3, 20)}


def _aligned(m: Any) -> bool:
    return _gt(m.price, m.ema9) and _gt(m.ema9, m.sma20)


def _breakout(m: Any) -> dict[str, float]:
    trend = 30.0 if _aligned(m) else 15.0 if _gt(m.price, m.ema9) else 0.0
    return {"above_vwap": 20.0 if _gt(m.price, m.vwap) else 0.0, "trend": trend,
            "rvol": ramp(m.rvol, 1, 3, 30), "change": ramp(m.change_pct, 1, 5, 20)}


def _volatile(m: Any) -> dict[str, float]:
    extreme = abs(m.rsi - 50) if m.rsi is not None else None
    change = abs(m.change_pct) if m.change_pct is not None else None
    return {"range": ramp(m.range_pct, 2, 10, 35), "rvol": ramp(m.rvol, 1, 3, 25),
            "change": ramp(change, 1, 10, 20), "rsi_extreme": ramp(extreme, 20, 40, 20)}


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("momentum", "strong up day on volume, in an uptrend",
           Filters(min_price=5, min_volume=500_000, min_change=2),
           "change ramp 2→10% = 0→35; rvol ramp 1→3x = 0→25; RSI in 50–80 = 20; price > EMA9 = 20",
           "BUY if score ≥ 60, else WATCH", _momentum, lambda m: "BUY"),
    Preset("gap-up", "opened ≥ 3% above the previous close",
           Filters(min_gap=3),
           "gap ramp 3→10% = 0→40; rvol ramp 1→3x = 0→25; RSI in 50–75 = 15; "
           "price 0–10% above SMA20 = 20 (more than 10% above = 10)",
           "BUY if score ≥ 60 and price ≥ today's open (the gap holds), else WATCH",
           _gap_up, lambda m: "BUY" if m.open is not None and m.price >= m.open else None),
    Preset("gap-down", "opened ≥ 3% below the previous close",
           Filters(max_gap=-3),
           "gap ramp −3→−10% = 0→40; rvol ramp 1→3x = 0→25; RSI in 25–50 = 15; "
           "price 0–10% below SMA20 = 20 (more than 10% below = 10)",
           "SELL if score ≥ 60 and price ≤ today's open (the gap holds), else WATCH",
           _gap_down, lambda m: "SELL" if m.open is not None and m.price <= m.open else None),
    Preset("mean-reversion", "down on the day and stretched below its averages",
           Filters(max_change=-0.1),
           "RSI ramp 40→20 = 0→35; below SMA20 ramp 0→10% = 0→25; below SMA50 ramp 0→15% = 0→20; "
           "rvol ramp 1→3x = 0→20",
           "BUY if score ≥ 60 and RSI ≤ 30, else WATCH",
           _mean_reversion, lambda m: "BUY" if m.rsi is not None and m.rsi <= 30 else None),
    Preset("breakout", "up on the day above VWAP with the averages stacked",
           Filters(min_change=1),
           "price > VWAP = 20; price > EMA9 > SMA20 = 30 (price > EMA9 only = 15); rvol ramp 1→3x = 0→30; "
           "change ramp 1→5% = 0→20",
           "BUY if score ≥ 60, price > VWAP and price > EMA9 > SMA20, else WATCH",
           _breakout, lambda m: "BUY" if _gt(m.price, m.vwap) and _aligned(m) else None),
    Preset("volatile", "wide range and heavy volume, either direction",
           Filters(min_price=2, min_volume=300_000),
           "range ramp 2→10% = 0→35; rvol ramp 1→3x = 0→25; |change| ramp 1→10% = 0→20; "
           "|RSI − 50| ramp 20→40 = 0→20 (RSI ≥ 70 or ≤ 30 scores)",
           "always WATCH (volatility has no direction)", _volatile, lambda m: None),
)}

ROTATION = ("momentum", "mean-reversion", "breakout", "volatile", "gap-down")


def preset(name: str) -> Preset:
    """The preset called ``name``; ValueError lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}") from None
