"""Backtester speed: bar-by-bar vs vectorized vs vectorbt's Portfolio.from_signals on the same signals.

Workloads: 16,000 1-minute bars (MA crossover written with on_prices, target >= 40,000 bars/s),
10 years of daily bars x 100 symbols, and 1M minute bars of one symbol. Run: .venv/bin/python bench/bench_backtest.py
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from trader.simulation.backtester import run_backtest, target_series
from trader.strategy.loader import load_strategy_class

STRATEGIES = Path(__file__).parents[1] / "strategies"


def _bars(n: int, freq: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    idx = pd.date_range("2016-01-04", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                         "low": np.minimum(open_, close) * 0.999, "close": close, "volume": 1e5}, index=idx)


def _vbt(vbt, bars: dict[int, pd.DataFrame], strategy) -> float:
    t0 = time.perf_counter()
    for df in bars.values():
        tgt, _, _ = target_series(strategy, df.assign(vwap=0.0), "vectorized")
        held = pd.Series(tgt, index=df.index).ffill().fillna(0.0)
        long_now = (held > 0).shift(1, fill_value=False)
        vbt.Portfolio.from_signals(df["close"], entries=long_now & ~long_now.shift(1, fill_value=False),
                                   exits=~long_now & long_now.shift(1, fill_value=False), price=df["open"],
                                   size=100, init_cash=1e6, fees=1e-4, freq="1D").final_value()
    return time.perf_counter() - t0


def bench(name: str, bars: dict[int, pd.DataFrame], vbt, modes=("bar-by-bar", "vectorized")) -> None:
    cls = load_strategy_class(STRATEGIES, "ma_crossover.py")
    n = sum(len(b) for b in bars.values())
    figures = {}
    for mode in modes:
        t0 = time.perf_counter()
        run_backtest(cls(), bars, quantity=100, mode=mode)
        figures[mode] = n / (time.perf_counter() - t0)
    _vbt(vbt, {0: next(iter(bars.values()))[:100]}, cls())  # warm numba
    figures["vectorbt"] = n / _vbt(vbt, bars, cls())
    parts = "  ".join(f"{k}: {v:,.0f} bars/s" for k, v in figures.items())
    ratio = figures["vectorized"] / figures["vectorbt"]
    print(f"{name} ({n:,} bars)  {parts}  vectorized/vectorbt = {ratio:.2f}x")


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt as vbt
    warnings.simplefilter("ignore")
    quick = "--quick" in sys.argv
    bench("16k 1-minute bars, 1 symbol", {0: _bars(16_000, "min", 1)}, vbt)
    bench("10y daily x 100 symbols", {i: _bars(2520, "D", i) for i in range(10 if quick else 100)}, vbt)
    bench("1M 1-minute bars, 1 symbol", {0: _bars(100_000 if quick else 1_000_000, "min", 2)}, vbt)


if __name__ == "__main__":
    main()
