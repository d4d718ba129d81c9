"""The simulator's clock: real time, accelerated, or manual (tests advance it explicitly)."""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

import numpy as np


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class SimClock:
    """UTC, tz-aware simulated time.

    - real time (speed=1): ``now()`` follows the wall clock from `start`;
    - accelerated (speed>1): simulated seconds pass `speed` times faster;
    - manual: time stands still until ``advance()``/``set()`` is called (deterministic tests).
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0, manual: bool = False) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._lock = threading.Lock()
        self._base = _aware(start) if start is not None else datetime.now(UTC)
        self._mono0 = time.monotonic()
        self._speed = float(speed)
        self.manual = manual

    def now(self) -> datetime:
        """The current simulated time (UTC, tz-aware)."""
        with self._lock:
            if self.manual:
                return self._base
            return self._base + timedelta(seconds=(time.monotonic() - self._mono0) * self._speed)

    def _rebase(self) -> None:
        # Fold elapsed time into the base so a later speed change doesn't rewrite the past.
        if not self.manual:
            now_mono = time.monotonic()
            self._base += timedelta(seconds=(now_mono - self._mono0) * self._speed)
            self._mono0 = now_mono

    def advance(self, delta: timedelta | float) -> None:
        """Move simulated time forward (seconds or timedelta); works in any mode."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=float(delta))
        with self._lock:
            self._rebase()
            self._base += delta

    def set(self, when: datetime) -> None:
        """Jump to a given time (tests)."""
        with self._lock:
            self._base = _aware(when)
            self._mono0 = time.monotonic()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (1 = real time)."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        with self._lock:
            self._rebase()
            self._speed = float(speed)

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self._speed


# ---------------------------------------------------------------------------------------------- calendars

DAY = 86_400

# IB exchange (primary or listing) -> exchange_calendars name
EXCHANGE_CALENDARS: dict[str, str] = {
    "NYSE": "XNYS", "NASDAQ": "XNYS", "ARCA": "XNYS", "AMEX": "XNYS", "BATS": "XNYS", "CBOE": "XNYS",
    "RUSSELL": "XNYS", "SMART": "XNYS", "IBIS": "XETR", "LSE": "XLON", "TSEJ": "XTKS", "ASX": "XASX",
    "TSE": "XTSE", "EBS": "XSWX", "CME": "CMES",
}
FX_CALENDAR = "FX24x5"
ALWAYS_CALENDAR = "24x7"  # crypto: every second of every day
# built session arrays, shared by every TradingCalendar in the process (exchange_calendars is slow to load)
_SESSIONS: dict[tuple[str, date, date], Sessions] = {}
# Extended hours (pre/post market) around the regular session, in exchange-local time: US equities only.
_US_EXTENDED = ("04:00", "20:00")


@dataclass(frozen=True, slots=True)
class Sessions:
    """Sorted session boundaries as epoch seconds: regular [open, close) and extended [ext_open, ext_close)."""

    open: np.ndarray
    close: np.ndarray
    ext_open: np.ndarray
    ext_close: np.ndarray

    def index_at(self, ts: int, extended: bool) -> int:
        """Index of the session containing `ts` (regular or extended hours), or -1."""
        opens, closes = (self.ext_open, self.ext_close) if extended else (self.open, self.close)
        i = int(np.searchsorted(opens, ts, side="right")) - 1
        return i if i >= 0 and ts < closes[i] else -1

    def last_started(self, ts: int, extended: bool) -> int:
        """Index of the last session that opened at or before `ts` (may have closed), or -1."""
        opens = self.ext_open if extended else self.open
        return int(np.searchsorted(opens, ts, side="right")) - 1


class TradingCalendar:
    """When each contract trades: around the clock ("24x7", sessions are UTC days) or by exchange calendar.

    In "exchange" mode the regular sessions come from `exchange_calendars` (XNYS for US listings, XETR,
    XLON, XTKS, XASX, CMES …); US equities also have extended hours 04:00–20:00 ET; FX (IDEALPRO) trades
    24x5 from Sunday 17:00 to Friday 17:00 New York time.
    """

    def __init__(self, mode: str = "24x7", years_back: int = 3, years_ahead: int = 1) -> None:
        if mode not in ("24x7", "exchange"):
            raise ValueError(f"unknown calendar mode {mode!r} (use '24x7' or 'exchange')")
        self.mode = mode
        today = datetime.now(UTC).date()
        self._start = today.replace(year=today.year - years_back, day=1)
        self._end = today.replace(year=today.year + years_ahead, day=28)

    @property
    def always_open(self) -> bool:
        """True in 24x7 mode."""
        return self.mode == "24x7"

    def calendar_name(self, exchange: str, primary_exchange: str, sec_type: str) -> str:
        """The calendar a contract follows in exchange mode."""
        if sec_type == "CRYPTO":
            return ALWAYS_CALENDAR
        if sec_type == "CASH":
            return FX_CALENDAR
        for ex in (primary_exchange, exchange):
            if ex in EXCHANGE_CALENDARS:
                return EXCHANGE_CALENDARS[ex]
        return "XNYS"

    def sessions(self, name: str) -> Sessions:
        """Session arrays for a calendar name (cached per process)."""
        key = (name, self._start, self._end)
        s = _SESSIONS.get(key)
        if s is None:
            s = _SESSIONS[key] = self._build(name)
        return s

    def _build(self, name: str) -> Sessions:
        if name == ALWAYS_CALENDAR:  # one session per UTC day, back to back
            days = np.arange(_epoch_day(self._start), _epoch_day(self._end) + 1, dtype=np.int64) * DAY
            return Sessions(days, days + DAY, days, days + DAY)
        if name == FX_CALENDAR:
            ny = ZoneInfo("America/New_York")
            days = [d for d in _date_range(self._start, self._end) if d.weekday() < 5]
            opens = [datetime.combine(d - timedelta(days=1), dtime(17), ny).timestamp() for d in days]
            closes = [datetime.combine(d, dtime(17), ny).timestamp() for d in days]
            o = np.array(opens, dtype=np.int64)
            c = np.array(closes, dtype=np.int64)
            return Sessions(o, c, o, c)
        import exchange_calendars as xcals  # heavy; only in exchange mode

        with warnings.catch_warnings():  # exchange_calendars trips a pandas deprecation warning internally
            warnings.simplefilter("ignore")
            cal = xcals.get_calendar(name, start=self._start.isoformat(), end=self._end.isoformat())
            sched = cal.schedule
        o = (sched["open"].dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64))
        c = (sched["close"].dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64))
        if name == "XNYS":
            ny = ZoneInfo("America/New_York")
            pre, post = (dtime.fromisoformat(x) for x in _US_EXTENDED)
            dates = [ts.date() for ts in sched.index]
            eo = np.array([datetime.combine(d, pre, ny).timestamp() for d in dates], dtype=np.int64)
            ec = np.array([datetime.combine(d, post, ny).timestamp() for d in dates], dtype=np.int64)
            ec = np.maximum(ec, c)  # half days close early but post-market still runs to 20:00
            return Sessions(o, c, np.minimum(eo, o), ec)
        return Sessions(o, c, o, c)


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _date_range(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)
