"""`prices.time(i)`, the cheap form of `prices.index[i]`: the same Timestamp in the backtester's view (any index
zone, or none) and the live runtime's, at every position a strategy may ask for."""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from trader.strategy.dispatch import BarSeries
from trader.strategy.view import BarView

T0 = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)  # the New York days around the DST change of 2026-03-08


def _same(view: BarView) -> None:
    n = len(view)
    for i in (0, 1, n // 2, n - 1, -1, -2, -n):
        got, want = view.time(i), view.index[i]
        assert got == want and isinstance(got, pd.Timestamp) and got.tz == want.tz and got.date() == want.date()
    for i in (n, -n - 1):
        with pytest.raises(IndexError):
            view.time(i)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", None])
def test_backtest_view_time_is_its_index(tz: str | None) -> None:
    idx = pd.date_range(T0, periods=4000, freq="1min").tz_convert(tz)
    view = BarView({"close": np.arange(4000.0)}, idx)
    for view._n in (2, 3, 700, 4000):
        _same(view)


def test_live_view_time_is_its_index() -> None:
    """Also on a store shared with a series further on (the store keeps the last time a view asked for)."""
    ahead, series = BarSeries(7), BarSeries(7)
    series.store = ahead.store
    series._view = type(series._view)(ahead.store.cols, ahead.store)
    times = pd.date_range(T0, periods=600, freq="1min")
    for k, t in enumerate(times):  # past the arrays' first capacity
        ahead._append(t.to_pydatetime(), 1.0 + k, 2.0 + k, 0.5 + k, 1.5 + k, 10.0, None)
        if k in (1, 2, 255, 256, 599):
            ahead._view._n = ahead.n
            _same(ahead._view)
    for k, t in enumerate(times[:300]):
        series._append(t.to_pydatetime(), 1.0 + k, 2.0 + k, 0.5 + k, 1.5 + k, 10.0, None)
        ahead._view.time(-1)
        series._view._n = series.n
        assert series.store is ahead.store and series._view.time(-1) == t
        if k:
            _same(series._view)
