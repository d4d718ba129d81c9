"""Replay: the simulated market driven by bars stored in MMR's DuckDB bar store (``sim_source: replay``).

``mmr-sim-gateway --replay [--replay-start ISO] [--replay-speed X]`` (or ``sim_source: replay`` in trader.yaml)
loads, for every contract of the universe whose conId has intraday bars in ``bars.duckdb`` (the finest stored
bar size, 1 secs … 1 hour, is used), those bars and makes them the contract's price path:

- **Inside a bar** the price moves piecewise-linearly through four waypoints spread evenly over the bar's
  seconds: O→L→H→C for an up bar (close ≥ open), O→H→L→C for a down bar. The open is at the bar's first
  second, the close at its last, so a 1-minute bar opens at :00, reaches its first extreme at :20, the second at
  :39 and closes at :59. Between stored bars (gaps, nights) the price stands at the last close; before the first
  bar at the first open; after the last bar at the last close.
- **Quotes**: ``last`` is that price on the tick grid; bid and ask are the model's spread around it (½ bp for
  stocks and FX, at least one tick), clamped into the current bar's [low, high], so a market order always
  fills at a price the bar traded. Sizes come from the model. Session volume is the stored volume, spread
  evenly over each bar's seconds.
- **History**: bars whose size is a multiple of the stored one are the stored bars aggregated exactly (open of
  the first, max high, min low, close of the last, summed volume; a single stored bar keeps its VWAP and
  count); finer bars (e.g. 5-second real-time bars from 1-minute data) and the current, still open bar are
  cut from the interpolated path. Daily bars group the stored bars by the exchange session they fall in. No
  bars are invented for gaps.
- Options and futures on a replayed underlying follow it (Black-Scholes / cost of carry on the replayed
  price). **Contracts with no stored bars fall back to the seeded model** (the gateway logs which symbols
  replay); ``--replay`` refuses to start only when the store holds no intraday bars for any contract.

The clock starts at ``--replay-start`` (ISO; naive means UTC; default: the first stored bar of the most recent
stored day) and runs ``--replay-speed`` times real time, so ``--replay-speed 60`` plays a stored day in 24 minutes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from trader.sim.market_math import _round_tick
from trader.sim.models import Bar

if TYPE_CHECKING:
    from trader.data.bars import BarStore
    from trader.sim.contracts import ContractUniverse

log = logging.getLogger(__name__)

# Intraday bar sizes the replay can drive a price path from, finest first (the finest stored one is used).
INTRADAY_BAR_SECONDS: dict[str, int] = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30, "1 min": 60, "2 mins": 120,
    "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900, "20 mins": 1200, "30 mins": 1800,
    "1 hour": 3600,
}
# Contracts with a price path of their own (derivatives follow their underlying).
_PATH_SEC_TYPES = ("STK", "CASH", "IND", "CRYPTO", "CFD")


class ReplayError(RuntimeError):
    """Replay cannot start (no stored bars, a bad start time)."""


@dataclass(slots=True)
class _Piece:
    """OHLCV of part (or all) of one stored bar; `exact` when it is the whole stored bar."""

    start: int
    o: float
    h: float
    low: float
    c: float
    v: float
    exact: int  # index of the stored bar when the piece is all of it, else -1


class ReplaySeries:
    """One contract's stored bars (sorted, one bar size) and the price path they define."""

    def __init__(self, bar_seconds: int, t0: Sequence[int], open_: Sequence[float], high: Sequence[float],
                 low: Sequence[float], close: Sequence[float], volume: Sequence[float],
                 wap: Sequence[float] | None = None, count: Sequence[float] | None = None) -> None:
        if bar_seconds <= 0:
            raise ValueError("bar_seconds must be positive")
        self.bar_seconds = int(bar_seconds)
        self.t0 = np.asarray(t0, dtype=np.int64)
        if not len(self.t0):
            raise ValueError("a replay series needs at least one bar")
        if len(self.t0) > 1 and not np.all(np.diff(self.t0) > 0):
            raise ValueError("bar times must be strictly increasing")
        n = len(self.t0)
        self.open, self.high, self.low, self.close = (np.asarray(x, dtype=float) for x in (open_, high, low, close))
        self.volume = np.nan_to_num(np.asarray(volume, dtype=float), nan=0.0)
        self.wap = np.asarray(wap, dtype=float) if wap is not None else np.full(n, np.nan)
        self.count = np.asarray(count, dtype=float) if count is not None else np.full(n, np.nan)
        # waypoint seconds (offsets inside a bar) and values, one row per bar
        bs = self.bar_seconds
        self._pos = [round(k * (bs - 1) / 3) for k in range(4)]
        up = self.close >= self.open
        first = np.where(up, self.low, self.high)
        second = np.where(up, self.high, self.low)
        self._vals = np.stack([self.open, first, second, self.close], axis=1)

    @property
    def first_time(self) -> int:
        return int(self.t0[0])

    @property
    def last_time(self) -> int:
        """Start of the last stored bar."""
        return int(self.t0[-1])

    def _bar_at(self, ts: int) -> int:
        """Index of the last bar starting at or before `ts` (-1 before the first)."""
        return int(np.searchsorted(self.t0, ts, side="right")) - 1

    def _inside(self, i: int, offset: float) -> float:
        xs, vs = self._waypoints(i)
        return float(np.interp(offset, xs, vs))

    def _waypoints(self, i: int) -> tuple[list[int], list[float]]:
        pts: dict[int, float] = {}
        for p, v in zip(self._pos, self._vals[i].tolist(), strict=True):
            pts[p] = v  # a later waypoint on the same second wins (bars shorter than 4 s)
        return list(pts), list(pts.values())

    def price(self, ts: int) -> float:
        """The replayed price at second `ts` (unrounded)."""
        i = self._bar_at(ts)
        if i < 0:
            return float(self.open[0])
        off = ts - int(self.t0[i])
        if off >= self.bar_seconds:
            return float(self.close[i])
        return self._inside(i, off)

    def bar_range(self, ts: int) -> tuple[float, float] | None:
        """(low, high) of the stored bar containing `ts`, or None in a gap."""
        i = self._bar_at(ts)
        if i < 0 or ts - int(self.t0[i]) >= self.bar_seconds:
            return None
        return float(self.low[i]), float(self.high[i])

    def _piece(self, i: int, a: int, b: int) -> _Piece:
        """Seconds [a, b] (inclusive) of stored bar i."""
        t = int(self.t0[i])
        bs = self.bar_seconds
        if a <= t and b >= t + bs - 1:
            return _Piece(t, float(self.open[i]), float(self.high[i]), float(self.low[i]), float(self.close[i]),
                          float(self.volume[i]), i)
        a, b = max(a, t), min(b, t + bs - 1)
        xs, vs = self._waypoints(i)
        vals = [self._inside(i, a - t), self._inside(i, b - t)] + [v for x, v in zip(xs, vs, strict=True)
                                                                 if a - t <= x <= b - t]
        v = math.floor(float(self.volume[i]) * (b - a + 1) / bs)
        return _Piece(a, vals[0], max(vals), min(vals), vals[1], float(v), -1)

    def pieces(self, a: int, b: int, cut: int | None = None) -> list[_Piece]:
        """The stored bars overlapping seconds [a, b], cut to it (and, with `cut`, into `cut`-second slots)."""
        bs = self.bar_seconds
        i0 = int(np.searchsorted(self.t0, a - bs + 1, side="left"))
        i1 = int(np.searchsorted(self.t0, b, side="right"))
        out: list[_Piece] = []
        for i in range(i0, i1):
            t = int(self.t0[i])
            lo, hi = max(a, t), min(b, t + bs - 1)
            if lo > hi:
                continue
            if cut is None or (t // cut == (t + bs - 1) // cut):
                out.append(self._piece(i, lo, hi))
                continue
            s = lo
            while s <= hi:
                e = min(hi, (s // cut + 1) * cut - 1)
                out.append(self._piece(i, s, e))
                s = e + 1
        return out

    def range(self, a: int, b: int) -> tuple[float, float, float, float, float]:
        """(open, high, low, close, volume) of the path over seconds [a, b], gaps included (for session stats)."""
        o, c = self.price(a), self.price(b)
        hi, lo, v = max(o, c), min(o, c), 0.0
        i0 = int(np.searchsorted(self.t0, a - self.bar_seconds + 1, side="left"))
        i1 = int(np.searchsorted(self.t0, b, side="right"))
        inner = (self.t0[i0:i1] >= a) & (self.t0[i0:i1] + self.bar_seconds - 1 <= b)
        if inner.any():  # whole bars in bulk (a session of 1-minute bars is ~1000 of them)
            hi = max(hi, float(self.high[i0:i1][inner].max()))
            lo = min(lo, float(self.low[i0:i1][inner].min()))
            v += float(self.volume[i0:i1][inner].sum())
        for k in np.nonzero(~inner)[0]:
            p = self._piece(i0 + int(k), a, b)
            hi, lo, v = max(hi, p.h), min(lo, p.low), v + p.v
        return o, hi, lo, c, v

    def bars(self, start_ts: int, end_ts: int, bar_seconds: int, tick: float,
             sessions: Sequence[tuple[int, int, int]] | None = None) -> list[Bar]:
        """History bars over [start_ts, end_ts] (end inclusive: the bar containing it is the open, partial one).

        Intraday (`sessions` None or used as a filter): bars on the `bar_seconds` grid, starting at or after
        `start_ts`. Daily (bar_seconds ≥ 1 day): one bar per session, `sessions` = [(open, close, stamp)].
        """
        daily = bar_seconds >= 86_400
        if daily:
            first = start_ts
            cut = None
        else:
            first = -(-start_ts // bar_seconds) * bar_seconds
            cut = bar_seconds if bar_seconds < self.bar_seconds or bar_seconds % self.bar_seconds else None
        if first > end_ts:
            return []
        pieces = self.pieces(first, end_ts, cut)
        if sessions is not None:
            opens = np.array([s[0] for s in sessions], dtype=np.int64)
            keep: list[tuple[int, _Piece]] = []
            for p in pieces:
                j = int(np.searchsorted(opens, p.start, side="right")) - 1
                if j >= 0 and p.start < sessions[j][1]:
                    keep.append((sessions[j][2] if daily else p.start // bar_seconds * bar_seconds, p))
            keyed = keep
        else:
            keyed = [(p.start // bar_seconds * bar_seconds, p) for p in pieces]
        return self._group(keyed, tick)

    def _group(self, keyed: Iterable[tuple[int, _Piece]], tick: float) -> list[Bar]:
        groups: dict[int, list[_Piece]] = {}
        for key, p in keyed:
            if p.exact < 0:  # cut from the interpolated path: on the tick grid, as the live quotes are
                p.o, p.h, p.low, p.c = (float(x) for x in _round_tick(np.array([p.o, p.h, p.low, p.c]), tick))
            groups.setdefault(key, []).append(p)
        out: list[Bar] = []
        for key, g in groups.items():
            o, c = g[0].o, g[-1].c
            h, lo = max(p.h for p in g), min(p.low for p in g)
            v = sum(p.v for p in g)
            wap = count = None
            if len(g) == 1 and g[0].exact >= 0:
                i = g[0].exact
                if math.isfinite(self.wap[i]) and self.wap[i] > 0:
                    wap = float(self.wap[i])
                if math.isfinite(self.count[i]):
                    count = int(self.count[i])
            if wap is None:
                wap = float(_round_tick((h + lo + c) / 3.0, tick / 100.0))
            if count is None:
                count = max(1, int(v // 100)) if v > 0 else 0
            out.append(Bar(datetime.fromtimestamp(key, UTC), o, h, lo, c, v, wap, count))
        return out


class ReplayFeed:
    """The replayed contracts of a universe: conId → stored series (loaded on first use)."""

    def __init__(self, series: dict[int, ReplaySeries] | None = None, *, store: BarStore | None = None,
                 bar_sizes: dict[int, str] | None = None) -> None:
        self._series: dict[int, ReplaySeries] = dict(series or {})
        self._store = store
        self._bar_sizes: dict[int, str] = dict(bar_sizes or {})
        self._con_ids = frozenset(self._series) | frozenset(self._bar_sizes)

    @classmethod
    def from_store(cls, store: BarStore, universe: ContractUniverse) -> ReplayFeed:
        """Every contract of `universe` with intraday bars in `store` (the finest stored size of each)."""
        best: dict[int, str] = {}
        for info in store.inventory():
            secs = INTRADAY_BAR_SECONDS.get(info.bar_size)
            c = universe.by_con_id(info.conid)
            if secs is None or c is None or c.sec_type not in _PATH_SEC_TYPES:
                continue
            held = best.get(info.conid)
            if held is None or secs < INTRADAY_BAR_SECONDS[held]:
                best[info.conid] = info.bar_size
        return cls(store=store, bar_sizes=best)

    def __len__(self) -> int:
        return len(self._con_ids)

    @property
    def con_ids(self) -> frozenset[int]:
        """The replayed conIds."""
        return self._con_ids

    def covers(self, con_id: int) -> bool:
        """True when `con_id`'s price path is replayed."""
        return con_id in self._con_ids

    def series(self, con_id: int) -> ReplaySeries:
        """The stored series of a replayed conId (read from the bar store on first use)."""
        s = self._series.get(con_id)
        if s is None:
            if self._store is None or con_id not in self._bar_sizes:
                raise KeyError(f"conId {con_id} is not replayed")
            bar_size = self._bar_sizes[con_id]
            df = self._store.read(con_id, bar_size)
            t0 = df.index.tz_convert("UTC").as_unit("s").asi8 if len(df) else []
            s = ReplaySeries(INTRADAY_BAR_SECONDS[bar_size], t0, df["open"], df["high"], df["low"], df["close"],
                             df["volume"], df["vwap"], df["bar_count"])
            self._series[con_id] = s
            log.info("replay: conId %s, %d bars of %s", con_id, len(t0), bar_size)
        return s

    def default_start(self, universe: ContractUniverse) -> datetime:
        """The first stored bar of the most recent stored day (in the local time of the contract it comes from)."""
        if not self._con_ids:
            raise ReplayError("nothing to replay")
        latest = max(self._con_ids, key=lambda cid: self.series(cid).last_time)
        s = self.series(latest)
        c = universe.by_con_id(latest)
        tz = ZoneInfo((c.time_zone if c is not None else "") or "UTC")
        day = datetime.fromtimestamp(s.last_time, UTC).astimezone(tz).date()
        day_start = int(datetime.combine(day, time(0), tz).timestamp())
        i = int(np.searchsorted(s.t0, day_start, side="left"))
        return datetime.fromtimestamp(int(s.t0[i]), UTC)


def parse_start(text: str) -> datetime:
    """``--replay-start``: an ISO date or date-time; naive means UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ReplayError(f"--replay-start {text!r} is not an ISO date/time (e.g. 2026-03-02T14:30)") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
