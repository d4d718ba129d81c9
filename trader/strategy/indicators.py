"""Indicators for strategy code: pandas' own results, bit for bit, without its per-call overhead.

``frame.rolling(w).mean()`` over a bars × conIds frame runs pandas' C kernel once per column, but computes the
window bounds and wraps the result again for every column (~50 µs each, most of a live close's vectorized
decisions). `rolling_mean` calls the same kernel with the bounds computed once, so a strategy gets exactly
``Series.rolling(w).mean()``'s values (tests compare them bit for bit, NaN and inf included) at a fraction of the
cost, and its `signals`, `signals_wide` and `signals_grid` can share one definition. When pandas' kernel is not
where this pandas version keeps it, the public API computes the same values.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:  # pandas' rolling-mean kernel (what Rolling.mean calls); absent → the public API below
    from pandas._libs.window.aggregations import roll_mean as _roll_mean
except ImportError:  # pragma: no cover - another pandas layout
    _roll_mean = None


def rolling_mean(values: Any, window: int) -> np.ndarray:
    """``pd.Series(col).rolling(window).mean()`` of a 1-D array, or of each column of a 2-D one (bars × columns),
    as a float64 array of the same shape: NaN until a full window, a NaN or inf in the window gives NaN."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim not in (1, 2) or not isinstance(window, (int, np.integer)) or window < 1 or _roll_mean is None:
        return _public(a, window)
    inf = np.isinf(a)
    if inf.any():  # as pandas prepares values for its C functions
        a = np.where(inf, np.nan, a)
    n = a.shape[0]
    if n == 0:
        return a.copy()
    end = np.arange(1, n + 1, dtype=np.int64)
    start = np.clip(end - int(window), 0, n)
    with np.errstate(all="ignore"):
        if a.ndim == 1:
            return _roll_mean(np.ascontiguousarray(a), start, end, int(window))
        out = np.empty(a.shape, order="F")  # column j contiguous, as the kernel writes it
        for j in range(a.shape[1]):
            out[:, j] = _roll_mean(np.ascontiguousarray(a[:, j]), start, end, int(window))
        return out


def _public(a: np.ndarray, window: Any) -> np.ndarray:
    import pandas as pd

    if a.ndim == 1:
        return pd.Series(a).rolling(window).mean().to_numpy()
    return pd.DataFrame(a).rolling(window).mean().to_numpy()
