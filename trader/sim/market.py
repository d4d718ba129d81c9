"""The simulated market: deterministic seeded prices, quotes and historical bars.

The price of a contract is a pure function of (seed, con_id, time) on a 1-second grid, built in three
levels so that history is fast and always agrees with the live stream:

1. day-start log prices: a slowly mean-reverting (Ornstein-Uhlenbeck) walk around the CSV price, which
   holds exactly on 2025-01-01, so prices stay plausible for years and option ladders stay near the money;
2. per day, a 1-minute Brownian bridge (GBM with the per-symbol volatility) between the day's endpoints, plus each minute's high and low
   drawn from the exact distribution of a Brownian bridge's maximum/minimum (1440×3 draws per day);
3. per minute, on demand, a 1-second bridge between the minute's endpoints that touches exactly that
   high and low.

Minute bars therefore come straight from level 2 (a year of 1-minute bars in tens of milliseconds), and
1-second quotes from level 3 agree with them exactly. Futures are the underlying index times a
cost-of-carry factor; options are Black-Scholes on the underlying, so they move with it.

Historical bar aggregation lives in trader/sim/market_history.py (mixed into ``SimMarket``); the pure
pricing helpers in trader/sim/market_math.py.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime

import numpy as np

from trader.sim.clock import DAY, SimClock, TradingCalendar
from trader.sim.contracts import ContractUniverse
from trader.sim.market_history import HistoryMixin
from trader.sim.market_math import (
    RISK_FREE_RATE as RISK_FREE_RATE,  # re-exported: tests and callers import it here
)
from trader.sim.market_math import _bs_vec, _dt, _mix, _nominal_volume, _norm_cdf, _round_tick, _ts
from trader.sim.market_math import black_scholes as black_scholes  # re-exported
from trader.sim.models import Quote, SimContract
from trader.sim.replay import ReplayFeed

ANCHOR_DAY = (date(2025, 1, 1) - date(1970, 1, 1)).days  # CSV prices hold on this day
_BLOCK = 512  # daily returns are drawn in blocks of this many days
_YEAR_DAYS = 365.25
_REVERSION = 2.0  # per year: daily levels stay within ~vol/2 of the CSV price
_SPREAD_BPS = {"STK": 0.5, "CASH": 0.5, "FUT": 0.0, "IND": 0.0}
_OPT_SPREAD_FRACTION = 0.01
_OPTION_EXPIRY_UTC_HOUR = 21  # 16:00 New York ≈ 21:00 UTC


class _LRU(OrderedDict):
    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.maxsize:
            self.popitem(last=False)
        return value

    def fetch(self, key):
        v = self.get(key)
        if v is not None:
            self.move_to_end(key)
        return v


class _DayData:
    """Level-2 data of one path for one UTC day (log prices, per-minute high/low/volume)."""

    __slots__ = ("x", "hi", "lo", "vol", "cumvol")

    def __init__(self, x: np.ndarray, hi: np.ndarray, lo: np.ndarray, vol: np.ndarray) -> None:
        self.x, self.hi, self.lo, self.vol = x, hi, lo, vol
        self.cumvol = np.concatenate(([0.0], np.cumsum(vol)))


class _Raw:
    """OHLCV of a time range in log space (for the underlying path)."""

    __slots__ = ("o", "h", "l", "c", "v")

    def __init__(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.o, self.h, self.l, self.c, self.v = o, h, l, c, v



class SimMarket(HistoryMixin):
    """Deterministic quotes and history for every contract of a universe."""

    def __init__(self, universe: ContractUniverse, clock: SimClock, seed: int = 42, *,
                 calendar: str = "24x7", bars_source: Callable | None = None,
                 replay: ReplayFeed | None = None) -> None:
        self.universe = universe
        self.clock = clock
        self.seed = int(seed)
        self.calendar = TradingCalendar(calendar)
        # bars_source(contract, start, end, bar_seconds, what_to_show) -> list[Bar] | None: replay stored
        # bars (e.g. MMR's DuckDB tick_data) instead of synthesising history when it has them.
        self.bars_source = bars_source
        # sim_source=replay: contracts with stored bars follow them (trader/sim/replay.py), the rest the model.
        self.replay = replay
        self._days = _LRU(1024)  # ~70 kB each: a year of one symbol, or today for ~1000
        self._seconds = _LRU(2048)
        self._blocks: dict[tuple[int, int], np.ndarray] = {}
        self._overrides: dict[int, list[tuple[int, str, float]]] = {}
        self._expiries: dict[int, float] = {}

    # ------------------------------------------------------------------ contract helpers
    def contract(self, con_id: int) -> SimContract:
        """The contract, or KeyError."""
        c = self.universe.by_con_id(con_id)
        if c is None:
            raise KeyError(f"unknown conId {con_id}")
        return c

    def _path_contract(self, c: SimContract) -> SimContract:
        """The contract whose own GBM path drives `c` (itself for STK/CASH/IND)."""
        while c.sec_type in ("FUT", "OPT", "FOP"):
            c = self.contract(c.underlying_con_id)
        return c

    def _years_to_expiry(self, c: SimContract, ts: float) -> float:
        return max((self._expiry_ts(c) - ts) / (_YEAR_DAYS * DAY), 0.0)

    # ------------------------------------------------------------------ level 1: daily
    def _sigmas(self, c: SimContract) -> tuple[float, float, float]:
        day = c.volatility / math.sqrt(_YEAR_DAYS)
        minute = day / math.sqrt(1440)
        return day, minute, minute / math.sqrt(60)

    def _block(self, c: SimContract, b: int) -> np.ndarray:
        """Log prices at the starts of days [ANCHOR + b·BLOCK, ANCHOR + (b+1)·BLOCK] (BLOCK + 1 values).

        Day to day the log price is a slowly mean-reverting Gaussian process around the CSV price
        (Ornstein-Uhlenbeck, stationary std = vol/sqrt(2θ)), so that the simulated market stays near
        realistic levels for years and the generated option ladders stay around the money; within a day
        the path is a Brownian bridge with the full per-symbol volatility.
        """
        key = (c.con_id, b)
        hit = self._blocks.get(key)
        if hit is not None:
            return hit
        mu = math.log(c.start_price)
        dt = 1.0 / _YEAR_DAYS
        phi = math.exp(-_REVERSION * dt)
        step = c.volatility * math.sqrt((1.0 - phi * phi) / (2.0 * _REVERSION))
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, c.con_id, 0, b + 10**6])))
        z = (g.standard_normal(_BLOCK) * step).tolist()
        out = [0.0] * (_BLOCK + 1)
        if b >= 0:  # forward from the block start (the anchor, or the previous block's end)
            out[0] = mu if b == 0 else float(self._block(c, b - 1)[-1])
            for j in range(_BLOCK):
                out[j + 1] = mu + (out[j] - mu) * phi + z[j]
        else:  # backward from the next block's start (the process is time-reversible)
            out[_BLOCK] = float(self._block(c, b + 1)[0])
            for j in range(_BLOCK - 1, -1, -1):
                out[j] = mu + (out[j + 1] - mu) * phi + z[j]
        arr = np.array(out)
        self._blocks[key] = arr
        return arr

    def _day_start(self, c: SimContract, day: int) -> float:
        b, j = divmod(day - ANCHOR_DAY, _BLOCK)
        return float(self._block(c, b)[j])

    # ------------------------------------------------------------------ level 2: minutes
    def _day(self, c: SimContract, day: int) -> _DayData:
        key = (c.con_id, day)
        hit = self._days.fetch(key)
        if hit is not None:
            return hit
        _, sm, _ = self._sigmas(c)
        x0, x1 = self._day_start(c, day), self._day_start(c, day + 1)
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, c.con_id, 1, day])))
        z = g.standard_normal(1440)
        u = 1.0 - g.random((2, 1440))  # (0, 1]
        w = np.concatenate(([0.0], np.cumsum(z * sm)))
        frac = np.arange(1441) / 1440.0
        x = x0 + w - frac * (w[-1] - (x1 - x0))
        a, b = x[:-1], x[1:]
        d2 = (b - a) ** 2
        var = sm * sm
        hi = (a + b + np.sqrt(d2 - 2.0 * var * np.log(u[0]))) / 2.0
        lo = (a + b - np.sqrt(d2 - 2.0 * var * np.log(u[1]))) / 2.0
        base = _nominal_volume(c) / 1440.0
        vol = np.floor(base * (0.4 + 0.75 * np.abs(z)))
        return self._days.put(key, _DayData(x, hi, lo, vol))

    # ------------------------------------------------------------------ level 3: seconds
    def _minute_seconds(self, c: SimContract, day: int, minute: int) -> np.ndarray:
        """61 log prices (second 0..60) of one minute, touching the minute's high and low exactly."""
        key = (c.con_id, day, minute)
        hit = self._seconds.fetch(key)
        if hit is not None:
            return hit
        d = self._day(c, day)
        a, b, hi, lo = d.x[minute], d.x[minute + 1], d.hi[minute], d.lo[minute]
        _, _, ss = self._sigmas(c)
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, c.con_id, 2, day, minute])))
        w = np.concatenate(([0.0], np.cumsum(g.standard_normal(60) * ss)))
        p = a + w - (np.arange(61) / 60.0) * (w[-1] - (b - a))
        p = np.clip(p, lo, hi)
        p[0], p[60] = a, b
        inner = p[1:60]
        imax = 1 + int(np.argmax(inner))
        imin = 1 + int(np.argmin(inner))
        if imin == imax:
            imin = 1 if imax != 1 else 2
        p[imax], p[imin] = hi, lo
        return self._seconds.put(key, p)

    def _replayed(self, c: SimContract) -> bool:
        """True when `c`'s own price path comes from stored bars (sim_source=replay)."""
        return self.replay is not None and self.replay.covers(c.con_id)

    def _x_at(self, c: SimContract, ts: int) -> float:
        if self._replayed(c):
            return math.log(self.replay.series(c.con_id).price(ts))
        day, s = divmod(ts, DAY)
        minute, sec = divmod(s, 60)
        if sec == 0:
            return float(self._day(c, day).x[minute])
        return float(self._minute_seconds(c, day, minute)[sec])

    def _range(self, c: SimContract, t0: int, t1: int) -> _Raw:
        """Log-space OHLC and volume of the path over the closed second range [t0, t1]."""
        if self._replayed(c):
            o, h, lo, cl, v = self.replay.series(c.con_id).range(t0, t1)
            return _Raw(math.log(o), math.log(h), math.log(lo), math.log(cl), math.floor(v))
        o = self._x_at(c, t0)
        cl = self._x_at(c, t1)
        h, lo, v = max(o, cl), min(o, cl), 0.0
        t = t0
        while t < t1:
            day = t // DAY
            d = self._day(c, day)
            seg_end = min(t1, (day + 1) * DAY)
            m0, sec0 = divmod(t - day * DAY, 60)
            m1, sec1 = divmod(seg_end - day * DAY, 60)
            parts: list[np.ndarray] = []
            if m0 == m1:
                parts.append(self._minute_seconds(c, day, m0)[sec0:sec1 + 1])
                v += d.vol[m0] * (sec1 - sec0) / 60.0
            else:
                first_full = m0
                if sec0:
                    parts.append(self._minute_seconds(c, day, m0)[sec0:])
                    v += d.vol[m0] * (60 - sec0) / 60.0
                    first_full = m0 + 1
                if m1 > first_full:
                    parts += [d.hi[first_full:m1], d.lo[first_full:m1]]
                    v += float(d.cumvol[m1] - d.cumvol[first_full])
                if sec1:
                    parts.append(self._minute_seconds(c, day, m1)[: sec1 + 1])
                    v += d.vol[m1] * sec1 / 60.0
            for part in parts:
                if len(part):
                    h, lo = max(h, float(part.max())), min(lo, float(part.min()))
            t = seg_end
        return _Raw(o, h, lo, cl, math.floor(v))

    # ------------------------------------------------------------------ overrides (test hooks)
    def set_price(self, con_id: int, price: float, *, hold: bool = True) -> None:
        """Test hook: from now on, pin the contract's price at `price` (hold=True) or shift its path so it
        passes through `price` now and keeps moving (hold=False). Derivatives of an overridden underlying
        follow it. Everything before now, and every other contract, keeps its deterministic path."""
        c = self.contract(con_id)
        ts = _ts(self.clock.now())
        if hold:
            self._overrides.setdefault(c.con_id, []).append((ts, "pin", float(price)))
        else:
            current = self._mid(c, ts)
            self._overrides.setdefault(c.con_id, []).append((ts, "shift", math.log(price / current)))

    def release(self, con_id: int) -> None:
        """Remove every override of a contract (its path is the pure deterministic one again)."""
        self._overrides.pop(con_id, None)

    def _apply_overrides(self, con_id: int, ts: np.ndarray, p: np.ndarray) -> np.ndarray:
        for t0, kind, val in self._overrides.get(con_id, ()):
            mask = ts >= t0
            if mask.any():
                p = p.copy()
                p[mask] = val if kind == "pin" else p[mask] * math.exp(val)
        return p

    # ------------------------------------------------------------------ prices
    def _effective_ts(self, c: SimContract, ts: int) -> int:
        """In exchange mode prices stand still while the contract is closed (even outside extended hours)."""
        if self.calendar.always_open:
            return ts
        sess = self._sessions(c)
        if sess.index_at(ts, extended=True) >= 0:
            return ts
        i = sess.last_started(ts, extended=True)
        return int(sess.ext_close[i]) if i >= 0 else ts

    def _expiry_ts(self, c: SimContract) -> float:
        ts = self._expiries.get(c.con_id)
        if ts is None:
            d = datetime.strptime(c.last_trade_date, "%Y%m%d").replace(hour=_OPTION_EXPIRY_UTC_HOUR, tzinfo=UTC)
            ts = self._expiries[c.con_id] = d.timestamp()
        return ts

    def _prices(self, c: SimContract, x: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Unrounded mids of `c` when its root path is at log prices `x` at times `ts` (vectorised; the one
        formula used by quotes and history alike, so both agree to the last bit)."""
        path = self._path_contract(c)
        root = self._apply_overrides(path.con_id, ts, np.exp(x))
        return self._derive(c, path, root, ts)

    def _derive(self, c: SimContract, path: SimContract, root: np.ndarray, ts: np.ndarray) -> np.ndarray:
        if c is path:
            return root
        und = self.contract(c.underlying_con_id)
        s = root if und is path else self._derive(und, path, root, ts)
        years = np.maximum((self._expiry_ts(c) - ts) / (_YEAR_DAYS * DAY), 0.0)
        if c.sec_type == "FUT":
            p = s * np.exp(RISK_FREE_RATE * years)
        else:
            p = _bs_vec(s, c.strike, years, c.volatility, c.right)
        return self._apply_overrides(c.con_id, ts, p)

    def _mid(self, c: SimContract, ts: int) -> float:
        """Unrounded mid price of any contract at an (effective) second."""
        path = self._path_contract(c)
        return float(self._prices(c, np.array([self._x_at(path, ts)]), np.array([float(ts)]))[0])

    def _spread_ticks(self, c: SimContract, mid: float) -> int:
        if c.sec_type in ("OPT", "FOP"):
            return max(1, round(mid * _OPT_SPREAD_FRACTION / c.min_tick))
        bps = _SPREAD_BPS.get(c.sec_type, 1.0)
        return max(1, round(mid * bps / 1e4 / c.min_tick))

    def _book(self, c: SimContract, mid: float) -> tuple[float, float, float]:
        """(bid, ask, last) from a mid price: last on the tick grid, the spread around it."""
        tick = c.min_tick
        last = float(_round_tick(mid, tick))
        if c.sec_type == "IND":
            return last, last, last
        s = self._spread_ticks(c, mid)
        bid = float(_round_tick(last - (s // 2) * tick, tick))
        ask = float(_round_tick(last + (s - s // 2) * tick, tick))
        if c.sec_type in ("OPT", "FOP"):
            bid = max(bid, 0.0)
            ask = max(ask, tick)
        return bid, ask, last

    def _sizes(self, c: SimContract, ts: int) -> tuple[float, float, float]:
        h1, h2, h3 = (_mix(self.seed, c.con_id, ts, k) for k in (1, 2, 3))
        if c.sec_type == "STK":
            lot = 100.0 if c.currency != "JPY" else 100.0
            return lot * (1 + h1 % 30), lot * (1 + h2 % 30), lot * (1 + h3 % 5)
        if c.sec_type == "CASH":
            return 100_000.0 * (1 + h1 % 50), 100_000.0 * (1 + h2 % 50), 0.0
        if c.sec_type == "FUT":
            return float(1 + h1 % 60), float(1 + h2 % 60), float(1 + h3 % 5)
        if c.sec_type in ("OPT", "FOP"):
            return float(1 + h1 % 100), float(1 + h2 % 100), float(1 + h3 % 10)
        return 0.0, 0.0, 0.0

    def quote(self, con_id: int, at: datetime | None = None) -> Quote:
        """Top of book and session statistics at `at` (default: the clock's now), on the 1-second grid."""
        c = self.contract(con_id)
        ts = _ts(at if at is not None else self.clock.now())
        te = self._effective_ts(c, ts)
        mid = self._mid(c, te)
        bid, ask, last = self._book(c, mid)
        if self._replayed(c):  # replay: the spread stays inside the current stored bar (fills at traded prices)
            bar = self.replay.series(c.con_id).bar_range(te)
            if bar is not None:
                bid, ask = max(bid, min(bar[0], last)), min(ask, max(bar[1], last))
        bid_size, ask_size, last_size = self._sizes(c, te)
        s0, prev_close_ts = self._session_bounds(c, te)
        o, h, lo, volume = self._session_stats(c, s0, te)
        close = float(_round_tick(self._mid(c, prev_close_ts), c.min_tick))
        return Quote(con_id=c.con_id, time=_dt(ts), bid=bid, ask=ask, last=last, bid_size=bid_size,
                     ask_size=ask_size, last_size=last_size, volume=volume, open=o, high=max(h, last),
                     low=min(lo, last), close=close)

    def price(self, con_id: int, at: datetime | None = None) -> float:
        """The last trade price (mark) at `at`."""
        return self.quote(con_id, at).last

    def _session_bounds(self, c: SimContract, te: int) -> tuple[int, int]:
        """(start of the current session, end of the previous regular session) as epoch seconds."""
        if self.calendar.always_open:
            s0 = te - te % DAY
            return s0, s0
        sess = self._sessions(c)
        i = sess.last_started(te, extended=True)
        if i < 0:
            return te, te
        s0 = int(sess.ext_open[i])
        prev = int(sess.close[i - 1]) if i > 0 else s0
        return s0, prev

    def _session_stats(self, c: SimContract, s0: int, te: int) -> tuple[float, float, float, float]:
        """(open, high, low, volume) of the session so far, in the contract's prices."""
        raw = self._range(self._path_contract(c), s0, te)
        a = self._convert(c, {"t0": np.array([float(s0)]), "t1": np.array([float(te)]), "o": np.array([raw.o]),
                              "h": np.array([raw.h]), "l": np.array([raw.l]), "c": np.array([raw.c]),
                              "v": np.array([float(raw.v)])})
        return float(a["open"][0]), float(a["high"][0]), float(a["low"][0]), float(a["volume"][0])

    def option_greeks(self, con_id: int, at: datetime | None = None) -> dict[str, float]:
        """Model greeks for tickOptionComputation: impliedVol, delta, optPrice, pvDividend, gamma, vega,
        theta, undPrice (Black-Scholes on the underlying's mid, flat volatility)."""
        c = self.contract(con_id)
        ts = self._effective_ts(c, _ts(at if at is not None else self.clock.now()))
        s = self._mid(self.contract(c.underlying_con_id), ts)
        t = max(self._years_to_expiry(c, ts), 1e-9)
        vol, k, r = c.volatility, c.strike, RISK_FREE_RATE
        sq = vol * math.sqrt(t)
        d1 = (math.log(s / k) + (r + 0.5 * vol * vol) * t) / sq
        d2 = d1 - sq
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
        disc = math.exp(-r * t)
        if c.right == "C":
            delta = _norm_cdf(d1)
            theta = -s * pdf * vol / (2 * math.sqrt(t)) - r * k * disc * _norm_cdf(d2)
        else:
            delta = _norm_cdf(d1) - 1.0
            theta = -s * pdf * vol / (2 * math.sqrt(t)) + r * k * disc * _norm_cdf(-d2)
        return {
            "impliedVol": vol, "delta": delta, "optPrice": self._mid(c, ts), "pvDividend": 0.0,
            "gamma": pdf / (s * sq), "vega": s * pdf * math.sqrt(t) / 100.0, "theta": theta / 365.0,
            "undPrice": s,
        }

    # ------------------------------------------------------------------ calendar
    def _sessions(self, c: SimContract):
        return self.calendar.sessions(self.calendar.calendar_name(c.exchange, c.primary_exchange, c.sec_type))

    def is_open(self, con_id: int, at: datetime | None = None, outside_rth: bool = False) -> bool:
        """True when the contract trades at `at` (regular hours, or extended hours with outside_rth)."""
        if self.calendar.always_open:
            return True
        c = self.contract(con_id)
        ts = _ts(at if at is not None else self.clock.now())
        return self._sessions(c).index_at(ts, extended=outside_rth) >= 0

    def session(self, con_id: int, at: datetime | None = None) -> tuple[datetime, datetime] | None:
        """The regular session (open, close) containing `at`, or None when closed (24x7: the UTC day)."""
        c = self.contract(con_id)
        ts = _ts(at if at is not None else self.clock.now())
        if self.calendar.always_open:
            s0 = ts - ts % DAY
            return _dt(s0), _dt(s0 + DAY)
        sess = self._sessions(c)
        i = sess.index_at(ts, extended=False)
        return (_dt(int(sess.open[i])), _dt(int(sess.close[i]))) if i >= 0 else None

    def hours_text(self, con_id: int, days: int = 7, at: datetime | None = None) -> tuple[str, str]:
        """(tradingHours, liquidHours) in IB's contractDetails format, e.g. "20240102:0930-20240102:1600;…",
        in the contract's time zone, for `days` days from `at`."""
        from zoneinfo import ZoneInfo

        c = self.contract(con_id)
        tz = ZoneInfo(c.time_zone or "UTC")
        start = _ts(at if at is not None else self.clock.now())
        start -= start % DAY
        end = start + days * DAY
        fmt = "%Y%m%d:%H%M"

        def span(a: int, b: int) -> str:
            return f"{_dt(a).astimezone(tz).strftime(fmt)}-{_dt(b).astimezone(tz).strftime(fmt)}"

        if self.calendar.always_open:
            parts = [span(t, t + DAY - 60) for t in range(start, end, DAY)]
            return ";".join(parts), ";".join(parts)
        sess = self._sessions(c)
        mask = (sess.close > start) & (sess.open < end)
        trading = ";".join(span(int(a), int(b)) for a, b in zip(sess.ext_open[mask], sess.ext_close[mask], strict=True))
        liquid = ";".join(span(int(a), int(b)) for a, b in zip(sess.open[mask], sess.close[mask], strict=True))
        return trading, liquid
