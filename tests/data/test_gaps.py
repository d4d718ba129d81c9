"""Gap detection against the NYSE calendar: holidays and half days are not gaps; missing bars are."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from trader.data.gaps import find_gaps


def _session_minutes(day: str, close: str = "16:00") -> pd.DatetimeIndex:
    return pd.date_range(f"{day} 09:30", f"{day} {close}", freq="min", inclusive="left",
                         tz="America/New_York").tz_convert("UTC")


def test_thanksgiving_holiday_and_half_day_are_not_gaps() -> None:
    # 2024-11-27 full day, 11-28 Thanksgiving (closed), 11-29 half day (closes 13:00), 12-02 full day.
    index = _session_minutes("2024-11-27").append(_session_minutes("2024-11-29", "13:00")).append(
        _session_minutes("2024-12-02"))
    assert find_gaps(index, "1 min") == []


def test_missing_session_and_missing_bars_are_found() -> None:
    half_day = _session_minutes("2024-11-29", "13:00")
    index = _session_minutes("2024-11-26").append(half_day.delete(slice(10, 15))).append(
        _session_minutes("2024-12-02"))
    gaps = find_gaps(index, "1 min")
    assert [(g.kind, g.session, g.missing_bars) for g in gaps] == [
        ("session", dt.date(2024, 11, 27), 390), ("bars", dt.date(2024, 11, 29), 5)]
    assert gaps[1].start == dt.datetime(2024, 11, 29, 14, 40, tzinfo=dt.UTC)
    # Bars missing at the end of the half day (after 12:59) would not count: the session ended at 13:00.
    assert find_gaps(half_day, "1 min") == []


def test_daily_bars_across_a_holiday() -> None:
    days = pd.DatetimeIndex(["2024-07-02", "2024-07-03", "2024-07-05", "2024-07-09"], tz="UTC")
    gaps = find_gaps(days, "1 day")
    assert [(g.kind, g.session) for g in gaps] == [("session", dt.date(2024, 7, 8))]  # July 4th is a holiday


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        find_gaps(pd.DatetimeIndex(["2024-07-02"]), "1 day")
    with pytest.raises(ValueError, match="bar size"):
        find_gaps(pd.DatetimeIndex([], tz="UTC"), "7 min")
