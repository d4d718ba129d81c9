"""What a bar-by-bar strategy's ``on_prices(prices)`` reads: a `BarView` over the bars up to the current one.

The backtester moves one view over a whole prepared frame; the live runtime (`trader.strategy.dispatch`) grows
its arrays bar by bar and gives the strategy the same view, so a strategy cannot tell the two apart.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


class BarView:
    """Cheap growing window over preallocated bar arrays: `view["close"]` or `view.close` is a numpy
    slice of the bars up to now; `view.index` the timestamps; `len(view)` the bar count."""

    __slots__ = ("_cols", "_index", "_n")

    def __init__(self, cols: dict[str, np.ndarray], index: pd.DatetimeIndex) -> None:
        self._cols = cols
        self._index = index
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def last(self, name: str) -> float:
        """The current bar's value of a column or precomputed indicator (`view.last("close")`), the cheap form of
        `view[name][-1]`."""
        return self._cols[name][self._n - 1]  # a numpy float64 (a float)

    def time(self, i: int = -1) -> pd.Timestamp:
        """Bar ``i``'s start (-1 = the current bar, counted as in `view.index`), the cheap form of
        `view.index[i]`: the same Timestamp without building the index of the view."""
        return self._index[self._position(i)]

    def _position(self, i: int) -> int:
        n = self._n
        if not -n <= i < n:
            raise IndexError(f"bar {i} of a view of {n} bars")
        return i % n

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cols[name][: self._n]

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self._cols[name][: self._n]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def index(self) -> pd.DatetimeIndex:
        """Timestamps of the bars in view."""
        return self._index[: self._n]

    def to_frame(self) -> pd.DataFrame:
        """A real DataFrame of the bars in view (slow path, for strategies that need pandas)."""
        return pd.DataFrame({k: v[: self._n] for k, v in self._cols.items()}, index=self.index)
