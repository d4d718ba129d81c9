"""The idea scanner's core: metrics from a snapshot + daily bars, preset filters, scores, ranking (pure).

A source (IB through trader/broker/discovery.py, or Massive.com through trader/tools/massive_discovery.py) turns
each symbol into a :class:`MarketRow` — today's quote plus completed daily bars — and :func:`scan_rows` does the
rest. Presets and their scoring are in trader/tools/presets.py.

The result is compact on purpose (an agent reads it): per idea the score, the label, four or five numbers and the
points behind the score; ``detail=True`` adds every metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from trader.tools import indicators as ind
from trader.tools.presets import Preset


@dataclass(frozen=True, slots=True)
class MarketRow:
    """One symbol as a source sees it: today's quote and the completed daily bars before today (oldest first)."""

    symbol: str
    last: float | None
    prev_close: float | None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None
    vwap: float | None = None  # today's VWAP if the source has it
    closes: tuple[float, ...] = ()
    highs: tuple[float, ...] = ()
    lows: tuple[float, ...] = ()
    volumes: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Metrics:
    """The numbers presets filter and score on (see trader/tools/presets.py for their definitions)."""

    symbol: str
    price: float | None
    open: float | None
    prev_close: float | None
    volume: float | None
    change_pct: float | None
    gap_pct: float | None
    range_pct: float | None
    rvol: float | None
    rsi: float | None
    ema9: float | None
    sma20: float | None
    sma50: float | None
    vwap: float | None
    dist_sma20_pct: float | None
    dist_sma50_pct: float | None


def _ok(x: float | None) -> float | None:
    import math

    return float(x) if x is not None and math.isfinite(x) and x > 0 else None


def compute_metrics(row: MarketRow) -> Metrics:
    """Metrics of one row; today's price is appended to the closes for RSI/EMA/SMA (intraday view)."""
    price = _ok(row.last) or _ok(row.prev_close)
    prev = _ok(row.prev_close) or (row.closes[-1] if row.closes else None)
    closes = list(row.closes) + ([price] if price is not None else [])
    high, low = _ok(row.high), _ok(row.low)
    vwap = _ok(row.vwap)
    if vwap is None and high is not None and low is not None and price is not None:
        vwap = (high + low + price) / 3  # typical price: the source gave no VWAP
    sma20, sma50 = ind.sma(closes, 20), ind.sma(closes, 50)
    return Metrics(
        symbol=row.symbol, price=price, open=_ok(row.open), prev_close=prev, volume=row.volume,
        change_pct=ind.pct(price, prev), gap_pct=ind.pct(_ok(row.open), prev),
        range_pct=(high - low) / prev * 100 if high is not None and low is not None and prev else None,
        rvol=ind.relative_volume(row.volume, row.volumes, 20), rsi=ind.rsi(closes, 14), ema9=ind.ema(closes, 9),
        sma20=sma20, sma50=sma50, vwap=vwap, dist_sma20_pct=ind.pct(price, sma20),
        dist_sma50_pct=ind.pct(price, sma50))


def _r(x: float | None, places: int = 2) -> float | None:
    return None if x is None else round(x, places)


def idea(preset: Preset, m: Metrics, *, detail: bool = False) -> dict:
    """One scored idea: symbol, score, label, the key numbers and the points per component."""
    score, points = preset.score(m)
    out = {"symbol": m.symbol, "score": score, "label": preset.label(m, score), "price": _r(m.price),
           "change_pct": _r(m.change_pct), "rvol": _r(m.rvol), "rsi": _r(m.rsi, 1),
           "points": {k: v for k, v in points.items() if v}}
    if preset.name.startswith("gap"):
        out["gap_pct"] = _r(m.gap_pct)
    if detail:
        out["metrics"] = {k: _r(v, 4) if isinstance(v, float) else v for k, v in asdict(m).items()
                          if k != "symbol"}
    return out


def scan_rows(preset: Preset, rows: Iterable[MarketRow], *, overrides: Mapping[str, float | None] | None = None,
              num: int = 10, detail: bool = False) -> dict:
    """Filter, score and rank ``rows`` with ``preset``; the best ``num`` ideas (score, then symbol).

    The answer says how many symbols were scanned and how many passed the filters, so "no ideas" is visibly
    a result of looking, not of not being able to look.
    """
    filters = preset.filters.merged(overrides or {})
    scanned = 0
    passed: list[dict] = []
    for row in rows:
        scanned += 1
        m = compute_metrics(row)
        if m.price is None or filters.reject_reason(m) is not None:
            continue
        passed.append(idea(preset, m, detail=detail))
    passed.sort(key=lambda i: (-i["score"], i["symbol"]))
    return {"preset": preset.name, "filters": filters.as_dict(), "scanned": scanned, "passed": len(passed),
            "ideas": passed[:max(0, num)]}


def rows_from_bars(symbol: str, bars: Sequence[Mapping[str, float]], quote: Mapping[str, float | None]) -> MarketRow:
    """A MarketRow from completed daily bars (dicts with open/high/low/close/volume) and a quote dict
    (last, close = previous close, open, high, low, volume, vwap)."""
    return MarketRow(
        symbol=symbol, last=quote.get("last"), prev_close=quote.get("close"), open=quote.get("open"),
        high=quote.get("high"), low=quote.get("low"), volume=quote.get("volume"), vwap=quote.get("vwap"),
        closes=tuple(float(b["close"]) for b in bars), highs=tuple(float(b["high"]) for b in bars),
        lows=tuple(float(b["low"]) for b in bars), volumes=tuple(float(b["volume"]) for b in bars))
