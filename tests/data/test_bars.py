"""BarStore: idempotent overlapping ingests, tz-aware range reads, inventory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.data.bars import BarStore


def _bars(start: str, n: int, value: float = 1.0) -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="min", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": value, "high": value + 1, "low": value - 1, "close": np.arange(n, dtype=float),
         "volume": 100.0, "vwap": value, "bar_count": 5},
        index=index,
    )


def test_overlapping_ingests_neither_duplicate_nor_lose(data_dir: Path) -> None:
    store = BarStore.open(data_dir)
    assert store.ingest(1, "1 min", "ib", _bars("2026-03-02 14:30", 100)) == 100
    # Overlaps the last 50 bars and adds 50 new ones; the stored 50 are kept as they were.
    assert store.ingest(1, "1 min", "ib", _bars("2026-03-02 15:20", 100, value=9.0)) == 50
    assert store.ingest(1, "1 min", "ib", _bars("2026-03-02 14:30", 100)) == 0
    frame = store.read(1, "1 min")
    assert len(frame) == 150
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    assert frame["open"].iloc[99] == 1.0 and frame["open"].iloc[100] == 9.0


def test_repeated_timestamps_inside_one_batch_are_stored_once(data_dir: Path) -> None:
    store = BarStore.open(data_dir)
    bars = _bars("2026-03-02 14:30", 10)
    doubled = pd.concat([bars, bars.iloc[3:6].assign(open=7.0)])  # unsorted, three repeats
    assert store.ingest(2, "1 min", "ib", doubled) == 10
    frame = store.read(2, "1 min")
    assert len(frame) == 10 and (frame["open"] == 1.0).all()  # the first occurrence wins
    # A batch that overlaps stored bars and repeats a new timestamp: only the two new bars land.
    tail = _bars("2026-03-02 14:38", 4)  # 14:38, 14:39 stored; 14:40, 14:41 new
    assert store.ingest(2, "1 min", "ib", pd.concat([tail, tail.iloc[[3]]])) == 2
    assert len(store.read(2, "1 min")) == 12


def test_read_range_is_tz_aware_and_half_open(data_dir: Path) -> None:
    store = BarStore.open(data_dir)
    store.ingest(7, "1 min", "ib", _bars("2026-03-02 14:30", 60))
    start = dt.datetime(2026, 3, 2, 9, 40, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    frame = store.read(7, "1 min", start=start, end=start + dt.timedelta(minutes=10), tz="America/New_York")
    assert len(frame) == 10
    assert str(frame.index.tz) == "America/New_York"
    assert frame.index[0] == pd.Timestamp("2026-03-02 14:40", tz="UTC")
    assert list(frame.columns[:7]) == ["open", "high", "low", "close", "volume", "vwap", "bar_count"]


def test_naive_timestamps_are_rejected(data_dir: Path) -> None:
    frame = _bars("2026-03-02 14:30", 3)
    frame.index = frame.index.tz_localize(None)
    with pytest.raises(ValueError, match="tz-aware"):
        BarStore.open(data_dir).ingest(1, "1 min", "ib", frame)


def test_inventory_and_sources(data_dir: Path) -> None:
    store = BarStore.open(data_dir)
    store.ingest(1, "1 min", "ib", _bars("2026-03-02 14:30", 10))
    store.ingest(1, "1 min", "massive", _bars("2026-03-02 14:35", 10, value=3.0))
    store.ingest(2, "1 day", "ib", _bars("2026-03-02 00:00", 3))
    inv = store.inventory()
    assert [(i.conid, i.bar_size, i.source, i.bar_count) for i in inv] == [
        (1, "1 min", "ib", 10), (1, "1 min", "massive", 10), (2, "1 day", "ib", 3)]
    assert inv[0].first == dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
    merged = store.read(1, "1 min")
    assert len(merged) == 15 and merged.index.is_unique  # one bar per time; "ib" wins the overlap
    assert (merged["source"].iloc[:10] == "ib").all()
    assert store.last_bar_time(1, "1 min", "massive") == dt.datetime(2026, 3, 2, 14, 44, tzinfo=dt.UTC)
    assert store.last_bar_time(3, "1 min") is None


def test_missing_columns_reversed_batches_and_two_sources_read_back_right(data_dir: Path) -> None:
    store = BarStore.open(data_dir)
    bars = _bars("2026-03-02 14:30", 6).drop(columns=["vwap", "bar_count"])
    assert store.ingest(3, "1 min", "massive", bars.iloc[::-1]) == 6  # newest first, as some vendors send
    assert store.ingest(3, "1 min", "ib", _bars("2026-03-02 14:33", 6, value=5.0)) == 6  # 3 overlap in time
    frame = store.read(3, "1 min")  # one bar per time: the alphabetically first source ("ib") wins
    assert len(frame) == 9 and frame.index.name == "ts" and str(frame.index.tz) == "UTC"
    assert list(frame["source"]) == ["massive"] * 3 + ["ib"] * 6
    assert frame["vwap"].iloc[:3].isna().all() and (frame["vwap"].iloc[3:] == 5.0).all()
    assert frame["close"].dtype == np.float64 and list(frame["close"].iloc[:3]) == [0.0, 1.0, 2.0]
    only = store.read(3, "1 min", source="massive")
    assert len(only) == 6 and frame.index.is_monotonic_increasing and only.index.is_monotonic_increasing


def test_a_batch_as_long_as_the_stored_range_but_with_other_stamps_still_lands(data_dir: Path) -> None:
    """Re-ingest short-cuts only when the stored stamps of the range are exactly the batch's: the same count
    with one different stamp must still store the new bar."""
    store = BarStore.open(data_dir)
    assert store.ingest(4, "1 min", "ib", _bars("2026-03-02 14:30", 10)) == 10
    again = _bars("2026-03-02 14:30", 10)
    assert store.ingest(4, "1 min", "ib", again.iloc[::-1]) == 0  # the same stamps, any order
    shifted = pd.concat([again.iloc[:9], _bars("2026-03-02 14:45", 1)])  # range holds the 10 stored bars
    assert store.ingest(4, "1 min", "ib", shifted) == 1
    assert len(store.read(4, "1 min")) == 11
