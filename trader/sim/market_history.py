"""Historical bars of the simulated market: windows, intraday/daily aggregation and whatToShow conversion.

A mixin of ``SimMarket`` (trader/sim/market.py): bars are aggregated from the same price path the live quotes
come from, so history always agrees with the stream.

History follows each instrument's own exchange calendar whatever the live clock mode (as IB's does): stocks
and indices have bars only in their sessions (extended hours unless useRTH), FX 24×5 (Sunday 17:00 to Friday
17:00 New York), crypto 24×7. So a year of daily stock bars has ~252 bars, not 365, even when the gateway's
live clock runs "24x7" — where the stream keeps moving over a weekend, history does not, and the two agree
inside sessions only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from trader.sim.clock import DAY
from trader.sim.market_math import _dt, _nominal_volume, _round_tick, _ts
from trader.sim.models import Bar, SimContract


class HistoryMixin:
    """History requests over the price model; needs SimMarket's path levels and prices."""

    # ------------------------------------------------------------------ history
    def history(self, con_id: int, end: datetime, duration_seconds: int, bar_seconds: int,
                what_to_show: str = "TRADES", use_rth: bool = False) -> list[Bar]:
        """Bars covering (end - duration, end], aligned to the bar grid (UTC midnight; daily bars per
        session), each stamped with its start time; the last bar may be partial and closes at the live
        price at `end`. Bars ≥ 1 day: daily bars (weekly for 7 days, monthly for ≥ 28 days)."""
        c = self.contract(con_id)
        end_ts = _ts(end)
        start_ts = end_ts - int(duration_seconds)
        if self.bars_source is not None:
            replay = self.bars_source(c, _dt(start_ts), _dt(end_ts), bar_seconds, what_to_show)
            if replay:
                return list(replay)
        if self._replayed(c):
            bars = self._replay_bars(c, start_ts, end_ts, int(bar_seconds), use_rth)
            return [self._show(c, b, what_to_show) for b in bars]
        if bar_seconds >= DAY:
            bars = self._session_bars(c, start_ts, end_ts, bar_seconds, use_rth)
        else:
            bars = self._intraday_bars(c, start_ts, end_ts, int(bar_seconds), use_rth)
        return [self._show(c, b, what_to_show) for b in bars]

    def _windows(self, c: SimContract, start_ts: int, end_ts: int, use_rth: bool) -> list[tuple[int, int]]:
        """Open time windows within [start, end], one per session of the contract's exchange calendar."""
        sess = self._sessions(c)
        opens, closes = (sess.open, sess.close) if use_rth else (sess.ext_open, sess.ext_close)
        mask = (closes > start_ts) & (opens <= end_ts)
        return [(max(int(a), start_ts), min(int(b), end_ts)) for a, b in zip(opens[mask], closes[mask], strict=True)]

    def history_arrays(self, con_id: int, end: datetime, duration_seconds: int, bar_seconds: int,
                       use_rth: bool = False) -> dict[str, np.ndarray]:
        """Intraday TRADES bars as numpy arrays (time [epoch s], open, high, low, close, volume) — the fast
        path behind `history` (a year of 1-minute bars in tens of milliseconds)."""
        c = self.contract(con_id)
        end_ts = _ts(end)
        start_ts = end_ts - int(duration_seconds)
        if self._replayed(c) or bar_seconds >= DAY:
            if self._replayed(c):
                bars = self._replay_bars(c, start_ts, end_ts, int(bar_seconds), use_rth)
            else:  # one bar per session (not per UTC day, which would split a US session in two)
                bars = self._session_bars(c, start_ts, end_ts, bar_seconds, use_rth)
            cols = list(zip(*[(b.time.timestamp(), b.open, b.high, b.low, b.close, b.volume) for b in bars],
                            strict=True)) or [()] * 6
            return {k: np.array(v, dtype=float) for k, v in
                    zip(("time", "open", "high", "low", "close", "volume"), cols, strict=True)}
        return self._intraday_arrays(c, start_ts, end_ts, int(bar_seconds), use_rth)

    def _replay_bars(self, c: SimContract, start_ts: int, end_ts: int, bar_seconds: int,
                     use_rth: bool) -> list[Bar]:
        """History of a replayed contract: its stored bars, aggregated (trader/sim/replay.py)."""
        series = self.replay.series(c.con_id)
        if bar_seconds < DAY:
            windows = self._windows(c, start_ts, end_ts, True) if use_rth else None
            sessions = [(a, b, a) for a, b in windows] if windows is not None else None
            return series.bars(start_ts, end_ts, bar_seconds, c.min_tick, sessions)
        tz = ZoneInfo(c.time_zone or "UTC")  # stamped with the session's local date, as model daily bars are
        sessions = [(a, b, _ts(datetime.combine(_dt(b - 1).astimezone(tz).date(), datetime.min.time(), UTC)))
                    for a, b in self._windows(c, start_ts, end_ts, use_rth)]
        bars = series.bars(start_ts, end_ts, DAY, c.min_tick, sessions)
        if bar_seconds >= 28 * DAY:
            return _group_bars(bars, lambda b: (b.time.year, b.time.month))
        if bar_seconds >= 7 * DAY:
            return _group_bars(bars, lambda b: b.time.isocalendar()[:2])
        return bars

    def _session_bars(self, c: SimContract, start_ts: int, end_ts: int, bar_seconds: int,
                      use_rth: bool) -> list[Bar]:
        """Daily bars, one per session, grouped into weeks (≥ 7 days) or months (≥ 28 days)."""
        bars = self._daily_bars(c, start_ts, end_ts, use_rth)
        if bar_seconds >= 28 * DAY:
            return _group_bars(bars, lambda b: (b.time.year, b.time.month))
        if bar_seconds >= 7 * DAY:
            return _group_bars(bars, lambda b: b.time.isocalendar()[:2])
        return bars

    def _intraday_bars(self, c: SimContract, start_ts: int, end_ts: int, bs: int, use_rth: bool) -> list[Bar]:
        a = self._intraday_arrays(c, start_ts, end_ts, bs, use_rth)
        return _bars_from_arrays(a, c.min_tick)

    def _intraday_arrays(self, c: SimContract, start_ts: int, end_ts: int, bs: int,
                         use_rth: bool) -> dict[str, np.ndarray]:
        if bs <= 0:
            raise ValueError("bar_seconds must be positive")
        path = self._path_contract(c)
        if DAY % bs == 0:
            start_ts = -(-start_ts // bs) * bs  # the first bar starts on the grid, never part-way
        cols: dict[str, list] = {k: [] for k in ("t0", "t1", "o", "h", "l", "c", "v")}

        def add_range(a: int, b: int) -> None:
            raw = self._range(path, a, b)
            for k, val in zip(("t0", "t1", "o", "h", "l", "c", "v"), (a, b, raw.o, raw.h, raw.l, raw.c, raw.v),
                              strict=True):
                cols[k].append(np.array([val], dtype=float))

        for w0, w1 in self._windows(c, start_ts, end_ts, use_rth):
            first = w0 - w0 % bs
            if bs % 60 == 0 and DAY % bs == 0 and not self._replayed(path):  # minute grid of the model path
                n, k = bs // 60, 1440 // (bs // 60)
                for day in range(first // DAY, (w1 - 1) // DAY + 1):
                    d = self._day(path, day)
                    starts = day * DAY + np.arange(k, dtype=float) * bs
                    full = (starts >= w0) & (starts + bs <= w1)
                    cols["t0"].append(starts[full])
                    cols["t1"].append(starts[full] + bs)
                    cols["o"].append(d.x[:-1:n][full])
                    cols["c"].append(d.x[n::n][full])
                    cols["h"].append(d.hi.reshape(k, n).max(axis=1)[full])
                    cols["l"].append(d.lo.reshape(k, n).min(axis=1)[full])
                    cols["v"].append(d.vol.reshape(k, n).sum(axis=1)[full])
                    for i in np.nonzero(~full & (starts < w1) & (starts + bs > w0))[0]:
                        a, b = max(int(starts[i]), w0), min(int(starts[i]) + bs, w1)
                        if b > a:
                            add_range(a, b)
            else:
                t = first
                while t < w1:
                    a, b = max(t, w0), min(t + bs, w1)
                    if b > a:
                        add_range(a, b)
                    t += bs
        arr = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
        if len(arr["t0"]) > 1 and not np.all(np.diff(arr["t0"]) > 0):
            order = np.argsort(arr["t0"], kind="stable")
            arr = {k: v[order] for k, v in arr.items()}
        return self._convert(c, arr)

    def _convert(self, c: SimContract, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Log-space root-path OHLC → `c`'s rounded prices (puts swap high and low)."""
        tick = c.min_tick
        t0, t1 = a["t0"], a["t1"]
        o = self._prices(c, a["o"], t0)
        h = self._prices(c, a["h"], t1)
        lo = self._prices(c, a["l"], t1)
        cl = self._prices(c, a["c"], t1)
        if c.is_derivative and c.right == "P":
            h, lo = lo, h
        o, h, lo, cl = (_round_tick(p, tick) for p in (o, h, lo, cl))
        h = np.maximum(np.maximum(h, o), cl)
        lo = np.minimum(np.minimum(lo, o), cl)
        path = self._path_contract(c)
        if c.sec_type in ("CASH", "IND"):
            v = np.zeros_like(a["v"])  # IB reports no traded volume for FX and indices
        elif c is path:
            v = a["v"]
        else:  # derivatives trade their own volume, shaped like the underlying's
            v = np.floor(a["v"] * (c.avg_volume / _nominal_volume(path)))
        return {"time": t0, "open": o, "high": h, "low": lo, "close": cl, "volume": v}

    def _daily_bars(self, c: SimContract, start_ts: int, end_ts: int, use_rth: bool) -> list[Bar]:
        path = self._path_contract(c)
        tz = ZoneInfo(c.time_zone or "UTC")  # a bar is stamped with its session's local date (a US session
        spans = [(a, b, (_ts(datetime.combine(_dt(b - 1).astimezone(tz).date(), datetime.min.time(), UTC))))
                 for a, b in self._windows(c, start_ts, end_ts, use_rth)]  # ends 01:00 UTC the next day)
        if not spans:
            return []
        raws = [self._range(path, a, b) for a, b, _ in spans]
        arr = {"t0": np.array([a for a, _, _ in spans], dtype=float),
               "t1": np.array([b for _, b, _ in spans], dtype=float),
               "o": np.array([r.o for r in raws]), "h": np.array([r.h for r in raws]),
               "l": np.array([r.l for r in raws]), "c": np.array([r.c for r in raws]),
               "v": np.array([r.v for r in raws], dtype=float)}
        out = self._convert(c, arr)
        out["time"] = np.array([stamp for _, _, stamp in spans], dtype=float)
        return _bars_from_arrays(out, c.min_tick)

    def _show(self, c: SimContract, bar: Bar, what: str) -> Bar:
        what = what.upper()
        if what in ("TRADES", "ADJUSTED_LAST", ""):
            return bar
        if what in ("HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY"):
            v = c.volatility
            return Bar(bar.time, v, v, v, v, -1.0, v, 0)
        books = [self._book(c, p) for p in (bar.open, bar.high, bar.low, bar.close)]
        if what == "BID":
            o, h, lo, cl = (b[0] for b in books)
        elif what == "ASK":
            o, h, lo, cl = (b[1] for b in books)
        elif what == "BID_ASK":  # IB: time-average bid, max ask, min bid, time-average ask
            o, h, lo, cl = books[3][0], books[1][1], books[2][0], books[3][1]
        else:  # MIDPOINT
            o, h, lo, cl = (round((b[0] + b[1]) / 2.0, 10) for b in books)
        return Bar(bar.time, o, max(o, h, lo, cl), min(o, h, lo, cl), cl, -1.0, round((h + lo) / 2.0, 10), 0)


def _bars_from_arrays(a: dict[str, np.ndarray], tick: float) -> list[Bar]:
    if not len(a["time"]):
        return []
    wap = _round_tick((a["high"] + a["low"] + a["close"]) / 3.0, tick / 100.0).tolist()
    count = np.where(a["volume"] > 0, np.maximum(1, a["volume"] // 100), 0).astype(np.int64).tolist()
    cols = (a["open"].tolist(), a["high"].tolist(), a["low"].tolist(), a["close"].tolist(), a["volume"].tolist())
    return [Bar(datetime.fromtimestamp(t, UTC), o, h, lo, cl, v, w, n)
            for t, o, h, lo, cl, v, w, n in zip(a["time"].tolist(), *cols, wap, count, strict=True)]


def _group_bars(bars: list[Bar], key) -> list[Bar]:
    """Aggregate daily bars into weekly/monthly ones (stamped with the first day)."""
    groups: dict = {}
    for b in bars:
        groups.setdefault(key(b), []).append(b)
    return [
        Bar(g[0].time, g[0].open, max(b.high for b in g), min(b.low for b in g), g[-1].close,
            sum(b.volume for b in g), sum(b.wap for b in g) / len(g), sum(b.count for b in g))
        for g in groups.values()
    ]
