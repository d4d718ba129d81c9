"""The simulated market: deterministic seeded prices, quotes and historical bars.

The price of a contract is a pure function of (seed, con_id, time) on a 1-second grid, built in three
levels so that history is fast and always agrees with the live stream:

1. day-start log prices from the factor model (trader/sim/factors.py): a market factor, sector factors and
   per-symbol betas, Student-t shocks under stochastic (clustering) volatility, news jumps; CSV prices hold
   on 2025-01-01 and prices trend from there;
2. per day, 1-minute Brownian bridges of each component between its day endpoints, its variance spread
   over the day by the exchange's intraday template (trader/sim/profiles.py: U-shaped regular hours, quiet
   pre/post market and nights, a gap minute before the open that carries the overnight move and news
   jumps), plus each minute's high and low drawn from the exact distribution of a Brownian bridge's
   maximum/minimum, and a U-shaped volume;
3. per minute, on demand, a 1-second bridge between the minute's endpoints that touches exactly that
   high and low.

Minute bars therefore come straight from level 2 (a year of 1-minute bars in tens of milliseconds), and
1-second quotes from level 3 agree with them exactly. Futures are the underlying index times a
cost-of-carry factor; options are Black-Scholes on the underlying, so they move with it.

Historical bar aggregation lives in trader/sim/market_history.py (mixed into ``SimMarket``); the pure
pricing helpers in trader/sim/market_math.py.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime

import numpy as np

from trader.sim.clock import DAY, SimClock, TradingCalendar
from trader.sim.contracts import ContractUniverse
from trader.sim.factors import YEAR_DAYS, FactorModel, Loadings
from trader.sim.market_history import HistoryMixin
from trader.sim.market_math import (
    RISK_FREE_RATE as RISK_FREE_RATE,  # re-exported: tests and callers import it here
)
from trader.sim.market_math import _bs_vec, _dt, _mix, _nominal_volume, _norm_cdf, _round_tick, _ts
from trader.sim.market_math import black_scholes as black_scholes  # re-exported
from trader.sim.models import Quote, SimContract
from trader.sim.profiles import has_gap, profile, session_bounds, template_of
from trader.sim.replay import ReplayFeed

_YEAR_DAYS = YEAR_DAYS
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

    __slots__ = ("x", "hi", "lo", "vol", "cumvol", "var")

    def __init__(self, x: np.ndarray, hi: np.ndarray, lo: np.ndarray, vol: np.ndarray, var: np.ndarray) -> None:
        self.x, self.hi, self.lo, self.vol, self.var = x, hi, lo, vol, var
        self.cumvol = np.concatenate(([0.0], np.cumsum(vol)))


class _Raw:
    """OHLCV of a time range in log space (for the underlying path)."""

    __slots__ = ("o", "h", "l", "c", "v")

    def __init__(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.o, self.h, self.l, self.c, self.v = o, h, l, c, v



def register_root(factors: FactorModel, c: SimContract, template: str) -> Loadings:
    """Register a root contract with the factor model: its news jumps land on days its template has a gap."""
    return factors.register(c, lambda day: has_gap(template, day))


def model_spot(seed: int, day: date) -> Callable[[SimContract], float]:
    """`spot(root contract)`: the model's price at the start of `day` (UTC) — ContractUniverse.load centres the
    generated option ladders on it, so they follow the market rather than the CSV price."""
    factors = FactorModel(seed)
    epoch_day = (day - date(1970, 1, 1)).days

    def spot(c: SimContract) -> float:
        name = TradingCalendar("24x7").calendar_name(c.exchange, c.primary_exchange, c.sec_type)
        register_root(factors, c, template_of(name, c.sec_type))
        return math.exp(factors.log_price(c, epoch_day))

    return spot


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
        self.factors = FactorModel(self.seed)
        self._registered: dict[int, Loadings] = {}
        self._bridges = _LRU(4096)
        self._overrides: dict[int, list[tuple[int, str, float]]] = {}
        self._expiries: dict[int, float] = {}
        self._memo: tuple[int, dict[int, Quote]] = (-1, {})  # (second, conId → its quote then) (`quote`)

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

    # ------------------------------------------------------------------ level 1: days (trader/sim/factors.py)
    def _template(self, c: SimContract) -> str:
        return template_of(self.calendar.calendar_name(c.exchange, c.primary_exchange, c.sec_type), c.sec_type)

    def _loadings(self, c: SimContract) -> Loadings:
        ld = self._registered.get(c.con_id)
        if ld is None:
            ld = self._registered[c.con_id] = register_root(self.factors, c, self._template(c))
        return ld

    # ------------------------------------------------------------------ level 2: minutes
    def _component_day(self, key: str, day: int, template: str) -> np.ndarray:
        """1,441 values: component `key`'s Brownian bridge over UTC day `day` (relative to its day-start level,
        ending at its day's diffusive move, news jump excluded), with the variance spread by the template."""
        ck = (key, day, template)
        hit = self._bridges.fetch(ck)
        if hit is not None:
            return hit
        prof = profile(template, day)
        fm = self.factors
        move = fm.level(key, day + 1) - fm.level(key, day) - fm.jump(key, day)
        ident = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=6).digest(), "big")
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 9, ident, day])))
        w = np.concatenate(([0.0], np.cumsum(g.standard_normal(1440) * np.sqrt(prof.weight))))
        w *= fm.day_sd(key, day)
        return self._bridges.put(ck, w - prof.cum * (w[-1] - move))

    def _day(self, c: SimContract, day: int) -> _DayData:
        key = (c.con_id, day)
        hit = self._days.fetch(key)
        if hit is not None:
            return hit
        ld = self._loadings(c)
        template = self._template(c)
        prof = profile(template, day)
        fm = self.factors
        own = f"E:{c.con_id}"
        x = fm.log_price(c, day) + (ld.drift / YEAR_DAYS) * (np.arange(1441) / 1440.0)
        var = 0.0
        for k, beta in ld.betas + ((own, 1.0),):
            x = x + beta * self._component_day(k, day, template)
            var += (beta * fm.day_sd(k, day)) ** 2
        jump = fm.jump(own, day)
        if jump and prof.gap >= 0:  # the news lands before the session: the open gaps
            x[prof.gap + 1:] += jump
        var_m = var * prof.weight
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, c.con_id, 1, day])))
        z = g.standard_normal(1440)
        u = 1.0 - g.random((2, 1440))  # (0, 1]
        a, b = x[:-1], x[1:]
        d2 = (b - a) ** 2
        hi = (a + b + np.sqrt(d2 - 2.0 * var_m * np.log(u[0]))) / 2.0
        lo = (a + b - np.sqrt(d2 - 2.0 * var_m * np.log(u[1]))) / 2.0
        # volume: the template's intraday shape, more on volatile days and news days
        base_sd = max(c.volatility, 0.01) / math.sqrt(YEAR_DAYS)
        busy = min(max(math.sqrt(var) / base_sd, 0.5), 3.0) * (2.5 if jump else 1.0)
        vol = np.floor(_nominal_volume(c) * busy * prof.volume * (0.4 + 0.75 * np.abs(z)))
        return self._days.put(key, _DayData(x, hi, lo, vol, var_m))

    # ------------------------------------------------------------------ level 3: seconds
    def _minute_seconds(self, c: SimContract, day: int, minute: int) -> np.ndarray:
        """61 log prices (second 0..60) of one minute, touching the minute's high and low exactly."""
        key = (c.con_id, day, minute)
        hit = self._seconds.fetch(key)
        if hit is not None:
            return hit
        d = self._day(c, day)
        a, b, hi, lo = d.x[minute], d.x[minute + 1], d.hi[minute], d.lo[minute]
        ss = math.sqrt(d.var[minute] / 60.0)
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

    def news_jump(self, con_id: int, day: int) -> float:
        """The news jump (log return) of a stock on UTC day `day` (epoch days), 0.0 if none — the news set
        headlines it (trader/sim/discovery.py)."""
        c = self.contract(con_id)
        if c.sec_type != "STK" or self._replayed(c):
            return 0.0
        self._loadings(c)
        return self.factors.jump(f"E:{c.con_id}", day)

    def gap_time(self, con_id: int, day: date) -> datetime | None:
        """When the gap minute of UTC day `day` ends (the session's first quote moves by the overnight gap and
        any news jump), or None on a day without one."""
        c = self._path_contract(self.contract(con_id))
        epoch_day = (day - date(1970, 1, 1)).days
        gap = profile(self._template(c), epoch_day).gap
        return _dt(epoch_day * DAY + (gap + 1) * 60) if gap >= 0 else None

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
        self._memo = (-1, {})
        if hold:
            self._overrides.setdefault(c.con_id, []).append((ts, "pin", float(price)))
        else:
            current = self._mid(c, ts)
            self._overrides.setdefault(c.con_id, []).append((ts, "shift", math.log(price / current)))

    def release(self, con_id: int) -> None:
        """Remove every override of a contract (its path is the pure deterministic one again)."""
        self._overrides.pop(con_id, None)
        self._memo = (-1, {})

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
        elif c.sec_type == "FOP":  # Black-76: the future is the forward (its carry is already in its price)
            p = _bs_vec(s * np.exp(-RISK_FREE_RATE * years), c.strike, years, c.volatility, c.right)
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
        ts = _ts(at if at is not None else self.clock.now())
        # One tick step asks for each held, streamed contract's quote ~3 times (market data, pnlSingle, pnl), all
        # at the same second: the latest second's quotes are kept (a pure function of it, until an override).
        memo_ts, memo = self._memo  # one tuple, replaced whole: a quote is only ever kept under its own second
        if ts != memo_ts:
            if ts < memo_ts:
                return self._quote(con_id, ts)  # an earlier second (history, discovery): not kept
            memo = {}
            self._memo = (ts, memo)
        q = memo.get(con_id)
        if q is None:
            q = memo[con_id] = self._quote(con_id, ts)
        return q

    def _quote(self, con_id: int, ts: int) -> Quote:
        c = self.contract(con_id)
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
        """(start of the current session, end of the previous regular session) as epoch seconds: in exchange mode
        from the exchange calendar, in 24x7 mode from the contract's weekday session template (holidays aside the
        same sessions), so a 24x7 stream still reports the day's change against the last regular close and the
        open after the overnight gap."""
        if self.calendar.always_open:
            return session_bounds(self._template(self._path_contract(c)), te)
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
        theta, undPrice (Black-Scholes on the underlying's mid, flat volatility; futures options Black-76, their
        delta and gamma with respect to the future)."""
        c = self.contract(con_id)
        ts = self._effective_ts(c, _ts(at if at is not None else self.clock.now()))
        s = self._mid(self.contract(c.underlying_con_id), ts)
        t = max(self._years_to_expiry(c, ts), 1e-9)
        if c.sec_type == "FOP":
            return self._black76_greeks(c, s, t, ts)
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

    def _black76_greeks(self, c: SimContract, f: float, t: float, ts: int) -> dict[str, float]:
        """Black-76 greeks of a futures option on the future's price ``f`` (theta per calendar day)."""
        vol, k, r = c.volatility, c.strike, RISK_FREE_RATE
        sq = vol * math.sqrt(t)
        d1 = (math.log(f / k) + 0.5 * vol * vol * t) / sq
        pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
        disc = math.exp(-r * t)
        price = self._mid(c, ts)
        delta = disc * (_norm_cdf(d1) if c.right == "C" else _norm_cdf(d1) - 1.0)
        theta = -f * disc * pdf * vol / (2 * math.sqrt(t)) + r * price
        return {"impliedVol": vol, "delta": delta, "optPrice": price, "pvDividend": 0.0,
                "gamma": disc * pdf / (f * sq), "vega": f * disc * pdf * math.sqrt(t) / 100.0,
                "theta": theta / 365.0, "undPrice": f}

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
