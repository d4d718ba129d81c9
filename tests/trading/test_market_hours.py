"""Market sessions: XNYS regular and extended hours (holidays, early closes, weekends), always-open sim."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from trader.trading.market_hours import (
    AlwaysOpenSession,
    ExchangeSession,
    MarketSession,
    session_flags,
    session_for,
)

NY = ZoneInfo("America/New_York")


def ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


@pytest.fixture(scope="module")
def xnys() -> ExchangeSession:
    return ExchangeSession("XNYS")


@pytest.mark.parametrize(
    "when, regular, extended",
    [
        ("2024-07-08 09:29:59", False, True),  # Monday pre-market
        ("2024-07-08 09:30", True, True),  # the open is open (half-open interval)
        ("2024-07-08 15:59:59", True, True),
        ("2024-07-08 16:00", False, True),  # the close is closed; after-hours
        ("2024-07-08 19:59", False, True),
        ("2024-07-08 20:00", False, False),
        ("2024-07-08 03:59", False, False),
        ("2024-07-08 04:00", False, True),
        ("2024-07-06 12:00", False, False),  # Saturday
        ("2024-07-04 12:00", False, False),  # Independence Day
        ("2024-07-03 12:59", True, True),  # early close at 13:00
        ("2024-07-03 13:00", False, True),
        ("2024-07-03 16:59", False, True),  # after-hours on an early-close day end four hours after the close
        ("2024-07-03 17:00", False, False),
    ],
)
def test_xnys_regular_and_extended_hours(xnys, when, regular, extended):
    at = ny(when)
    assert xnys.is_open(at) is regular
    assert xnys.is_open(at, extended=True) is extended
    assert xnys.is_open(at.astimezone(UTC)) is regular  # any timezone, same instant


@pytest.mark.parametrize(
    "when, regular_next, extended_next",
    [
        ("2024-07-03 17:00", "2024-07-05 09:30", "2024-07-05 04:00"),  # over the holiday
        ("2024-07-05 20:00", "2024-07-08 09:30", "2024-07-08 04:00"),  # over the weekend
        ("2024-07-08 08:00", "2024-07-08 09:30", "2024-07-08 08:00"),  # pre-market is open now
    ],
)
def test_next_open(xnys, when, regular_next, extended_next):
    assert xnys.next_open(ny(when)) == ny(regular_next)
    assert xnys.next_open(ny(when), extended=True) == ny(extended_next)
    open_now = ny("2024-07-08 10:00")
    assert xnys.next_open(open_now) == open_now


def test_naive_times_are_refused(xnys):
    with pytest.raises(ValueError, match="timezone-aware"):
        xnys.is_open(datetime(2024, 7, 8, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        AlwaysOpenSession().is_open(datetime(2024, 7, 8, 10, 0))


def test_times_outside_the_calendar_are_refused(xnys):
    with pytest.raises(ValueError, match="outside the XNYS calendar"):
        xnys.is_open(datetime(1900, 1, 2, 15, 0, tzinfo=UTC))


def test_always_open_session():
    s = AlwaysOpenSession()
    at = datetime(2024, 7, 6, 3, 0, tzinfo=UTC)  # Saturday night
    assert s.is_open(at) and s.is_open(at, extended=True) and s.next_open(at) == at
    assert isinstance(s, MarketSession)


def test_session_flags_feed_the_gate(xnys):
    pre = session_flags(xnys, ny("2024-07-08 08:00"))
    assert (pre.regular_open, pre.extended_open, pre.next_open) == (False, True, ny("2024-07-08 09:30"))
    regular = session_flags(xnys, ny("2024-07-08 10:00"))
    assert (regular.regular_open, regular.extended_open, regular.next_open) == (True, True, None)
    assert session_flags(AlwaysOpenSession(), ny("2024-07-06 10:00")).regular_open is True


def test_session_for_broker():
    assert isinstance(session_for("sim", "24x7"), AlwaysOpenSession)
    assert isinstance(session_for("sim", "exchange"), ExchangeSession)
    ib = session_for("ib")
    assert isinstance(ib, ExchangeSession) and ib.name == "XNYS"
