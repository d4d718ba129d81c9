"""The stored JSON text of many runs' round trips at once, byte for byte what msgspec writes for their dicts.

A sweep stores each run's trades as a JSON list of objects (`sweep_runner._row_dicts` encoded with msgspec). A
grid pass has every run's trades as rows of numbers, so building one dict per trade and encoding it (~2.5 µs a
trade, ~50 ms of a 1,000-run daily sweep) is skipped: each field is encoded once for all trades of the chunk
(msgspec, the same float and int formatting), split into one text per value, interleaved with the keys by list
slicing and joined per run — the same bytes (tests/simulation/test_trade_text.py).
"""
from __future__ import annotations

from typing import Any

import numpy as np

# The stored keys in their order, and the TRADE_ROW column each value comes from (None: the conId).
_FIELDS: tuple[tuple[str, int | None], ...] = (
    ("con_id", None), ("side", 0), ("quantity", 1), ("entry_time", 2), ("entry_price", 3), ("exit_time", 4),
    ("exit_price", 5), ("commission", 6), ("pnl", 7), ("return_pct", 8))
_KEYS = [(("{" if i == 0 else ",") + f'"{k}":').encode() for i, (k, _) in enumerate(_FIELDS)]
_STEP = 2 * len(_FIELDS) + 1  # a key and a value per field, then the closing brace


_FIRST_YEAR, _END_YEAR = np.datetime64("1000-01-01", "s"), np.datetime64("10000-01-01", "s")


def timestamp_texts(index: Any) -> list[str]:
    """``[str(t) for t in index]`` of a DatetimeIndex: the stored text of each bar's time. A UTC index of whole
    seconds (every bar store's) is formatted by numpy in one call — str() of each Timestamp cost ~7 µs, ~18 ms of
    a fresh 10-year daily sweep —; any other index (another zone, sub-second times, NaT) goes through str()."""
    import pandas as pd

    if isinstance(index, pd.DatetimeIndex) and len(index) and str(index.tz) == "UTC" and not index.hasnans:
        values = index.asi8.view(f"M8[{index.unit}]")  # the UTC times
        seconds = values.astype("M8[s]")
        if (seconds == values).all() and _FIRST_YEAR <= seconds.min() and seconds.max() < _END_YEAR:
            return [t.replace("T", " ") + "+00:00" for t in np.datetime_as_string(seconds, unit="s").tolist()]
    return [str(t) for t in index]


def stamp_texts(encode: Any, texts: list[str]) -> np.ndarray:
    """Each bar's timestamp text as a JSON string (an object array indexed by bar), encoded once per job."""
    out = np.empty(len(texts), dtype=object)
    out[:] = [encode(t) for t in texts]
    return out


def _values(encode: Any, column: np.ndarray) -> list[bytes]:
    # One encode for the whole column; numbers never contain a comma, so splitting gives each value's text.
    return encode(column.tolist())[1:-1].split(b",")


def round_trip_texts(encode: Any, con_id: int, runs: list[np.ndarray], stamps: np.ndarray) -> list[bytes]:
    """Per run, `encode` (a msgspec JSON encoder's method) of its round trips as stored dicts: runs[j] holds run
    j's trades as rows of `backtester.TRADE_ROW` fields on one conId's bars; `stamps` is `stamp_texts` of those
    bars. Equal to ``encode(_row_dicts([con_id] * len(rows), rows, texts))`` run by run."""
    counts = [len(r) for r in runs]
    total = sum(counts)
    if total == 0:
        return [b"[]"] * len(runs)
    rows = np.concatenate([r for r in runs if len(r)])
    pieces: list[bytes] = [b""] * (total * _STEP)
    for f, (key, (name, col)) in enumerate(zip(_KEYS, _FIELDS, strict=True)):
        pieces[2 * f::_STEP] = [key] * total
        if col is None:
            values = [encode(con_id)] * total
        elif name.endswith("_time"):
            values = stamps[rows[:, col].astype(np.int64)].tolist()
        elif name == "side":
            values = _values(encode, rows[:, col].astype(np.int64))
        else:
            values = _values(encode, rows[:, col])
        pieces[2 * f + 1::_STEP] = values
    pieces[_STEP - 1::_STEP] = [b"},"] * total
    out, at = [], 0
    for c in counts:
        if c:
            pieces[(at + c) * _STEP - 1] = b"}"  # the run's last trade: no comma after it
            out.append(b"[" + b"".join(pieces[at * _STEP:(at + c) * _STEP]) + b"]")
        else:
            out.append(b"[]")
        at += c
    return out
