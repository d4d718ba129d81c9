"""Gaps in stored bars, measured against the exchange's trading calendar (``exchange_calendars``).

Only regular trading hours are checked: a session is expected from its open to its close — early closes
(half days) end early and holidays expect nothing — so a half day with bars to 13:00 New York time or a
market holiday with no bars is not a gap. Daily bars are matched by session date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

# MMR's primary exchanges → exchange_calendars codes.
EXCHANGE_CALENDARS: dict[str, str] = {
    "NYSE": "XNYS", "NASDAQ": "XNAS", "ARCA": "XNYS", "BATS": "XNYS", "AMEX": "XNYS", "SMART": "XNYS",
    "ISLAND": "XNAS", "LSE": "XLON", "TSE": "XTKS", "ASX": "XASX", "TSX": "XTSE",
}

_BAR_SECONDS: dict[str, int] = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30, "1 min": 60, "2 mins": 120,
    "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900, "20 mins": 1200, "30 mins": 1800,
    "1 hour": 3600, "2 hours": 7200, "4 hours": 14400, "1 day": 86400,
}


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing bars: a whole session (``kind="session"``) or a run of bars inside one (``kind="bars"``)."""

    kind: str
    session: dt.date
    start: dt.datetime
    end: dt.datetime
    missing_bars: int


def calendar_for(exchange: str) -> str:
    """The exchange_calendars code for an exchange name (or a code passed through)."""
    return EXCHANGE_CALENDARS.get(exchange.upper(), exchange.upper())


def find_gaps(index: pandas.DatetimeIndex, bar_size: str, *, calendar: str = "XNYS",
              start: dt.date | None = None, end: dt.date | None = None) -> list[Gap]:
    """Gaps of a bar series (tz-aware index) between the sessions `start` and `end` (default: first/last bar).

    Intraday: every bar of each session's regular hours is expected; runs of missing bars are merged.
    A session with no bar at all is one ``session`` gap.
    """
    import exchange_calendars as xcals
    import pandas as pd

    if bar_size not in _BAR_SECONDS:
        raise ValueError(f"unknown bar size {bar_size!r}")
    if index.tz is None:
        raise ValueError("bar index must be tz-aware")
    cal = xcals.get_calendar(calendar_for(calendar))
    index = index.tz_convert("UTC")
    if len(index) == 0 and (start is None or end is None):
        return []
    def session_of(ts: pandas.Timestamp) -> pandas.Timestamp:
        if seconds >= 86400 and ts == ts.normalize():
            return ts.tz_localize(None)
        return ts.tz_convert(cal.tz).normalize().tz_localize(None)

    seconds = _BAR_SECONDS[bar_size]
    first = pd.Timestamp(start) if start else session_of(index.min())
    last = pd.Timestamp(end) if end else session_of(index.max())
    first = max(first, cal.first_session)
    last = min(last, cal.last_session)
    sessions = cal.sessions_in_range(first, last)
    gaps: list[Gap] = []
    if seconds >= 86400:
        # Daily bars are stamped with their session date (midnight UTC) or a time within the session.
        have = {ts.date() if ts == ts.normalize() else ts.tz_convert(cal.tz).date() for ts in index}
        for session in sessions:
            if session.date() not in have:
                opens, closes = cal.session_open(session), cal.session_close(session)
                gaps.append(Gap("session", session.date(), opens.to_pydatetime(), closes.to_pydatetime(), 1))
        return gaps
    freq = pd.Timedelta(seconds=seconds)
    stored = pd.DatetimeIndex(index.unique())
    for session in sessions:
        opens, closes = cal.session_open(session), cal.session_close(session)
        expected = pd.date_range(opens, closes, freq=freq, inclusive="left")
        missing = expected.difference(stored)
        if len(missing) == 0:
            continue
        if len(missing) == len(expected):
            gaps.append(Gap("session", session.date(), opens.to_pydatetime(), closes.to_pydatetime(), len(missing)))
            continue
        # Split the missing bars into contiguous runs.
        breaks = (missing[1:] - missing[:-1]) != freq
        run_start = 0
        for i, brk in enumerate([*breaks, True]):
            if brk:
                run = missing[run_start:i + 1]
                gaps.append(Gap("bars", session.date(), run[0].to_pydatetime(),
                                (run[-1] + freq).to_pydatetime(), len(run)))
                run_start = i + 1
    return gaps
