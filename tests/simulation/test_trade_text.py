"""A grid pass's trades JSON (`trade_text.round_trip_texts`) is byte for byte what msgspec writes for the stored
dicts of each run's round trips (`sweep_runner._row_dicts`), the form the per-run path stores."""
from __future__ import annotations

import json

import msgspec
import numpy as np
import pandas as pd

from trader.simulation.sweep_runner import _row_dicts
from trader.simulation.trade_text import round_trip_texts, stamp_texts, timestamp_texts

ENCODE = msgspec.json.Encoder().encode


def _runs(rng: np.random.Generator, n_bars: int, counts: list[int]) -> list[np.ndarray]:
    """Rows of TRADE_ROW fields: side, quantity, entry bar, entry price, exit bar, exit price, commission, pnl,
    return (awkward floats included: tiny, huge, negative zero, integral)."""
    out = []
    for c in counts:
        rows = rng.normal(0, 1, (c, 9)) * rng.choice([1e-9, 1.0, 123.456, 1e12], (c, 9))
        rows[:, 0] = rng.choice([1.0, -1.0], c)
        rows[:, 1] = np.floor(rng.uniform(0, 1e4, c))
        rows[:, 2] = rng.integers(0, n_bars, c)
        rows[:, 4] = rng.integers(0, n_bars, c)
        if c:
            rows[0, 7], rows[-1, 8] = -0.0, 0.0
        out.append(rows)
    return out


def test_texts_equal_the_encoded_dicts_run_by_run():
    rng = np.random.default_rng(3)
    idx = pd.date_range("2020-01-01", periods=300, freq="h", tz="UTC")
    texts = [str(t) for t in idx]
    stamps = stamp_texts(ENCODE, texts)
    counts = [0, 1, 5, 0, 200, 2, 0]
    runs = _runs(rng, len(idx), counts)
    got = round_trip_texts(ENCODE, 265598, runs, stamps)
    want = [ENCODE(_row_dicts([265598] * len(r), r, {265598: texts})) for r in runs]
    assert got == want
    assert [len(json.loads(g)) for g in got] == counts
    assert json.loads(got[1])[0]["entry_time"] == texts[int(runs[1][0, 2])]


def test_no_trades_at_all():
    stamps = stamp_texts(ENCODE, ["2020-01-01 00:00:00+00:00"])
    assert round_trip_texts(ENCODE, 1, [np.empty((0, 9))] * 3, stamps) == [b"[]"] * 3
    assert round_trip_texts(ENCODE, 1, [], stamps) == []


def test_timestamp_texts_are_str_of_each_timestamp() -> None:
    """The fast path (UTC, whole seconds) and the fallback both give exactly str() of each Timestamp."""
    import datetime as dt

    rng = np.random.default_rng(3)
    minutes = pd.Timestamp("2024-03-08 14:30", tz="UTC") + pd.to_timedelta(np.sort(rng.integers(0, 10**6, 500)), "min")
    indexes = [
        pd.bdate_range("2016-01-04", periods=2520, tz="UTC"),  # stored daily bars
        pd.DatetimeIndex(minutes),  # one-minute bars over a DST change (UTC has none)
        pd.DatetimeIndex(minutes).as_unit("s"), pd.DatetimeIndex(minutes).as_unit("ns"),
        pd.DatetimeIndex(minutes).tz_convert(dt.UTC),
        pd.DatetimeIndex(["2024-01-02 09:30:00.250", "2024-01-02 09:30:01"], tz="UTC"),  # sub-second: str()
        pd.DatetimeIndex(minutes).tz_convert("America/New_York"),  # another zone: str()
        pd.DatetimeIndex(["2024-01-02", None], tz="UTC"),  # NaT: str()
        pd.date_range("2024-01-01", periods=3, freq="D"),  # naive: str()
        pd.DatetimeIndex([], tz="UTC"),
    ]
    for index in indexes:
        assert timestamp_texts(index) == [str(t) for t in index], index[:3]
