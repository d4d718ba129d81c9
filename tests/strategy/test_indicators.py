"""`rolling_mean` is pandas' ``rolling(w).mean()`` bit for bit, 1-D and column by column (trader/strategy/indicators.py)."""
import numpy as np
import pandas as pd
import pytest

from trader.strategy import indicators
from trader.strategy.indicators import rolling_mean


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    x = 100 + np.cumsum(rng.normal(0, 1, n))
    if n > 5:  # holes and infinities, which pandas turns into NaN windows
        x[rng.integers(0, n, 2)] = np.nan
        x[rng.integers(0, n)] = np.inf
        x[rng.integers(0, n)] = -np.inf
    return x


@pytest.mark.parametrize("seed", range(12))
def test_rolling_mean_is_pandas_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    for window in (1, 2, 3, 7, 30, max(1, n), n + 3):
        x = _series(rng, n)
        want = pd.Series(x).rolling(window).mean().to_numpy()
        assert np.array_equal(rolling_mean(x, window), want, equal_nan=True)
        assert np.array_equal(rolling_mean(pd.Series(x), window), want, equal_nan=True)
        wide = np.column_stack([_series(rng, n) for _ in range(5)]) if n else np.empty((0, 5))
        got = rolling_mean(wide, window)
        assert got.shape == wide.shape
        assert np.array_equal(got, pd.DataFrame(wide).rolling(window).mean().to_numpy(), equal_nan=True)


def test_rolling_mean_without_the_kernel_uses_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indicators, "_roll_mean", None)
    x = _series(np.random.default_rng(3), 50)
    assert np.array_equal(rolling_mean(x, 5), pd.Series(x).rolling(5).mean().to_numpy(), equal_nan=True)
    with pytest.raises(ValueError):  # pandas' own error for a negative window
        rolling_mean(x, -1)
