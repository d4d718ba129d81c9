"""A price line as inline SVG (pure): the dashboard's chart per position, drawn server-side with no library."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT, PAD = 320, 120, 6


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def price_svg(symbol: str, points: Sequence[tuple[float, float]], source: str = "") -> str:
    """An SVG (``WIDTH`` x ``HEIGHT``) of ``points`` (unix time, price) in time order: the line, the last price,
    the low and high; a short note instead of a line when there are fewer than two points."""
    title = escape(f"{symbol}: {source}" if source else symbol)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-symbol="{escape(symbol)}" '
            f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{title}</title>'
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fafafa" stroke="#ddd"/>')
    text = f'<text x="{PAD}" y="14" font-size="11">{escape(symbol)}'
    if len(points) < 2:
        last = f" {points[-1][1]:,.2f}" if points else ""
        return (f'{head}{text}{last}</text><text x="{PAD}" y="{HEIGHT // 2}" font-size="10" fill="#888">'
                f'not enough prices yet (the line grows with each refresh)</text></svg>')
    t0, t1 = points[0][0], points[-1][0]
    lo = min(p for _, p in points)
    hi = max(p for _, p in points)
    span_t = (t1 - t0) or 1.0
    span_p = (hi - lo) or 1.0
    top, bottom = 32, HEIGHT - PAD

    def xy(t: float, p: float) -> str:
        x = PAD + (t - t0) / span_t * (WIDTH - 2 * PAD)
        y = bottom - (p - lo) / span_p * (bottom - top)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(t, p) for t, p in points)
    last = points[-1][1]
    color = "#1a7f37" if last >= points[0][1] else "#cf222e"
    return (f'{head}{text} {last:,.2f}</text>'
            f'<text x="{PAD}" y="26" font-size="9" fill="#888">'
            f'{lo:,.2f}–{hi:,.2f} · {_stamp(t0)} → {_stamp(t1)}</text>'
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{line}"/></svg>')
