"""When a market is open: the session the risk gate's market-hours rule asks about.

Two implementations of :class:`MarketSession`:

- :class:`ExchangeSession` — a real exchange calendar from ``exchange_calendars`` (XNYS by default), for IB.
  Regular hours come from the calendar (holidays and early closes included). Extended hours, for US equities,
  run from 04:00 exchange time to four hours after the regular close (20:00 ET; 17:00 ET on an early-close
  day), on trading days only. ``exchange_calendars`` is imported on first use (it pulls in pandas).
- :class:`AlwaysOpenSession` — the simulated gateway's 24x7 market.

:func:`session_for` picks one from ``trader.yaml``; :func:`session_flags` turns a session and a time into the
``regular_open`` / ``extended_open`` / ``next_open`` values of the gate's context.

Times must be timezone-aware (a naive time is refused: guessing its zone is how orders go out at 3 am).
Intervals are half-open: a session is open at its open and closed at its close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

__all__ = [
    "MarketSession",
    "ExchangeSession",
    "AlwaysOpenSession",
    "SessionFlags",
    "session_flags",
    "session_for",
]


@runtime_checkable
class MarketSession(Protocol):
    """A market's trading hours."""

    name: str

    def is_open(self, at: datetime, extended: bool = False) -> bool:
        """True when the market trades at ``at``: regular hours, or regular + extended hours when ``extended``."""
        ...

    def next_open(self, at: datetime, extended: bool = False) -> datetime:
        """The first moment at or after ``at`` at which the market is open (``at`` itself when it is open)."""
        ...


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"market hours need a timezone-aware time, got naive {at.isoformat()}")


@dataclass(frozen=True, slots=True)
class AlwaysOpenSession:
    """The simulated 24x7 market: always open, regular and extended alike."""

    name: str = "24x7"

    def is_open(self, at: datetime, extended: bool = False) -> bool:
        """Always True."""
        _require_aware(at)
        return True

    def next_open(self, at: datetime, extended: bool = False) -> datetime:
        """``at`` itself: the market is already open."""
        _require_aware(at)
        return at


@lru_cache(maxsize=8)
def _calendar(name: str) -> Any:
    import exchange_calendars as xcals  # heavy (pandas); only when a real calendar is asked for

    return xcals.get_calendar(name)


class ExchangeSession:
    """Trading hours of one exchange from ``exchange_calendars`` (e.g. ``XNYS``, ``XLON``).

    ``pre_market`` (exchange-local start of the pre-market) and ``post_market`` (length of the after-hours
    session after the regular close) define the extended session; pass ``pre_market=None`` for a market without
    one (then extended hours equal regular hours).
    """

    def __init__(self, name: str = "XNYS", pre_market: time | None = time(4, 0),
                 post_market: timedelta = timedelta(hours=4)) -> None:
        self.name = name
        self.pre_market = pre_market
        self.post_market = post_market if pre_market is not None else timedelta(0)
        self._cal: Any = None

    def __repr__(self) -> str:
        return f"ExchangeSession({self.name!r})"

    @property
    def calendar(self) -> Any:
        """The ``exchange_calendars`` calendar (loaded on first use, shared per name)."""
        if self._cal is None:
            self._cal = _calendar(self.name)
        return self._cal

    def _ts(self, at: datetime) -> Any:
        import pandas as pd

        _require_aware(at)
        ts = pd.Timestamp(at).tz_convert("UTC")
        cal = self.calendar
        if not (cal.first_minute <= ts <= cal.last_minute):
            raise ValueError(
                f"{at.isoformat()} is outside the {self.name} calendar ({cal.first_session.date()} to "
                f"{cal.last_session.date()})"
            )
        return ts

    def _window(self, session: Any, extended: bool) -> tuple[datetime, datetime]:
        """[open, close) of one session as aware datetimes (UTC), extended or regular."""
        cal = self.calendar
        open_ = cal.session_open(session).to_pydatetime()
        close = cal.session_close(session).to_pydatetime()
        if extended and self.pre_market is not None:
            pre = datetime.combine(session.date(), self.pre_market, tzinfo=ZoneInfo(str(cal.tz)))
            open_ = min(open_, pre)
            close = close + self.post_market
        return open_, close

    def _sessions_from(self, ts: Any) -> Any:
        """Sessions that may contain ``ts`` or come after it: from the local date before ``ts`` onwards."""
        cal = self.calendar
        local = ts.tz_convert(cal.tz).tz_localize(None).normalize()
        start = cal.date_to_session(max(local - timedelta(days=1), cal.first_session), direction="next")
        return start

    def is_open(self, at: datetime, extended: bool = False) -> bool:
        """True when the exchange trades at ``at`` (regular hours; plus pre/post-market when ``extended``)."""
        ts = self._ts(at)
        if not extended:
            return bool(self.calendar.is_open_on_minute(ts, ignore_breaks=False))
        session = self._sessions_from(ts)
        for _ in range(3):  # the session before, of, and (if ``at`` is past midnight local) after ``at``
            open_, close = self._window(session, extended=True)
            if open_ <= at < close:
                return True
            if open_ > at or session >= self.calendar.last_session:
                return False
            session = self.calendar.next_session(session)
        return False

    def next_open(self, at: datetime, extended: bool = False) -> datetime:
        """``at`` when open, else the next (regular or extended) session open after it."""
        if self.is_open(at, extended):
            return at
        ts = self._ts(at)
        if not extended:
            return self.calendar.next_open(ts).to_pydatetime()
        session = self._sessions_from(ts)
        while True:
            open_, _close = self._window(session, extended=True)
            if open_ > at:
                return open_
            session = self.calendar.next_session(session)


@dataclass(frozen=True, slots=True)
class SessionFlags:
    """A market session at one moment, as the risk gate's context wants it."""

    regular_open: bool
    extended_open: bool
    next_open: datetime | None


def session_flags(session: MarketSession, at: datetime) -> SessionFlags:
    """Regular/extended open flags at ``at`` and, when closed for regular trading, the next regular open."""
    regular = session.is_open(at, extended=False)
    extended = regular or session.is_open(at, extended=True)
    return SessionFlags(regular, extended, None if regular else session.next_open(at, extended=False))


def session_for(broker: str, sim_calendar: str = "24x7", exchange_calendar: str = "XNYS") -> MarketSession:
    """The session for the broker in use: the simulated 24x7 market, or a real exchange calendar.

    Call as ``session_for(cfg.broker, cfg.sim_calendar)`` with a ``TraderConfig``.
    """
    if broker == "sim" and sim_calendar == "24x7":
        return AlwaysOpenSession()
    return ExchangeSession(exchange_calendar)
