"""Live bar builder: ticks in, completed bars out — each bar exactly once, when it closes.

A bar covers ``[start, start + seconds)``. It closes when a tick of a later bar arrives or when the clock passes
its end plus a small grace (`close_due`), whichever comes first; it is then emitted once and never again:
- a late tick (its bar already emitted) is counted in ``late_ticks`` and dropped, never re-opening a bar;
- out-of-order ticks inside the open bar are fine: open/close follow the tick *times*, not arrival order;
- bars without a single tick are not invented (the backtester's stored bars have none either); the hole is
  counted in ``gaps`` and the emitted bar carries ``gap_before`` (bars missing before it).
"""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from trader.strategy.models import Bar

_UNITS = {"sec": 1, "secs": 1, "second": 1, "seconds": 1, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "hour": 3600, "hours": 3600, "day": 86_400, "days": 86_400}


def bar_seconds(bar_size: str) -> int:
    """Seconds in an IB-style bar size (``"5 secs"``, ``"1 min"``, ``"15 mins"``, ``"1 hour"``, ``"1 day"``)."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]+)\s*", bar_size or "")
    if not m or m.group(2).lower() not in _UNITS or int(m.group(1)) <= 0:
        raise ValueError(f"unknown bar size {bar_size!r}; use e.g. '5 secs', '1 min', '15 mins', '1 hour', '1 day'")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class _Forming:
    __slots__ = ("start", "open", "open_t", "high", "low", "close", "close_t", "volume", "ticks")

    def __init__(self, start: float, t: float, price: float, size: float) -> None:
        self.start = start
        self.open = self.high = self.low = self.close = price
        self.open_t = self.close_t = t
        self.volume = size
        self.ticks = 1

    def add(self, t: float, price: float, size: float) -> None:
        if t < self.open_t:
            self.open, self.open_t = price, t
        if t >= self.close_t:
            self.close, self.close_t = price, t
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.volume += size
        self.ticks += 1


class BarBuilder:
    """Builds bars of ``seconds`` for any number of conIds (see the module doc for the rules)."""

    def __init__(self, seconds: int, grace: float = 0.25) -> None:
        if seconds <= 0:
            raise ValueError("bar seconds must be > 0")
        self.seconds = int(seconds)
        self.grace = float(grace)
        self._forming: dict[int, _Forming] = {}
        self._last_emitted: dict[int, float] = {}  # conId -> start (epoch s) of the last bar emitted
        self.late_ticks = 0
        self.gaps = 0

    def _bucket(self, t: float) -> float:
        return math.floor(t / self.seconds) * self.seconds

    def seed(self, con_id: int, last_bar_start: datetime) -> None:
        """Treat bars up to ``last_bar_start`` (e.g. the last history bar) as already emitted."""
        self._last_emitted[con_id] = max(self._last_emitted.get(con_id, -math.inf), last_bar_start.timestamp())

    def forget(self, con_id: int) -> None:
        """Drop a conId's forming bar and its seed (re-primed on other history: `LiveRunner` seeds it again)."""
        self._forming.pop(con_id, None)
        self._last_emitted.pop(con_id, None)

    def on_tick(self, con_id: int, time: datetime, price: float, size: float = 0.0) -> list[Bar]:
        """Add one trade/quote price; returns the bars this tick closed (zero or one)."""
        if price is None or not math.isfinite(price) or price <= 0:
            return []
        t = time.timestamp()
        start = self._bucket(t)
        if start <= self._last_emitted.get(con_id, -math.inf):
            self.late_ticks += 1  # its bar is out already: a bar is never emitted twice
            return []
        size = float(size) if size is not None and math.isfinite(size) and size > 0 else 0.0
        forming = self._forming.get(con_id)
        if forming is None:
            self._forming[con_id] = _Forming(start, t, float(price), size)
            return []
        if start == forming.start:
            forming.add(t, float(price), size)
            return []
        if start < forming.start:  # an older bar than the one forming, not yet emitted: it is late too
            self.late_ticks += 1
            return []
        out = [self._emit(con_id, forming)]
        self._forming[con_id] = _Forming(start, t, float(price), size)
        return out

    def close_due(self, now: datetime) -> list[Bar]:
        """Emit every forming bar whose end (plus grace) has passed by ``now``."""
        cutoff = now.timestamp() - self.grace
        out = []
        for con_id, forming in list(self._forming.items()):
            if forming.start + self.seconds <= cutoff:
                out.append(self._emit(con_id, forming))
                del self._forming[con_id]
        return out

    def _emit(self, con_id: int, f: _Forming) -> Bar:
        prev = self._last_emitted.get(con_id)
        gap = 0 if prev is None or not math.isfinite(prev) else max(0, int(round((f.start - prev) / self.seconds)) - 1)
        self.gaps += gap
        self._last_emitted[con_id] = f.start
        return Bar(con_id=con_id, time=datetime.fromtimestamp(f.start, UTC), open=f.open, high=f.high, low=f.low,
                   close=f.close, volume=f.volume, seconds=self.seconds, ticks=f.ticks, gap_before=gap)
