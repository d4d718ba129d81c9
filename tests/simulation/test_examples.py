"""Every example strategy in strategies/ loads, passes the gauntlet's import scan, trades on demo bars and (single
conId ones) never peeks ahead."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.simulation.backtester import run_backtest
from trader.simulation.data import sim_bars
from trader.simulation.gauntlet import import_problems
from trader.simulation.lookahead import check_lookahead
from trader.strategy.loader import load_strategy_class

STRATEGIES = Path(__file__).parents[2] / "strategies"


def _intraday(days: int = 6, seed: int = 5) -> pd.DataFrame:
    """One-minute regular-hours bars (09:30–16:00 New York) with opening gaps and intraday trends."""
    rng = np.random.default_rng(seed)
    frames, price = [], 100.0
    for day in pd.bdate_range("2026-03-02", periods=days):
        idx = pd.date_range(f"{day.date()} 09:30", periods=390, freq="1min", tz="America/New_York")
        price *= 1 + rng.choice([-0.012, 0.012])  # an opening gap every session
        drift = rng.choice([-1, 1]) * 0.0002
        close = price * np.cumprod(1 + drift + rng.normal(0, 0.0012, 390))
        opens = np.concatenate(([price], close[:-1]))
        frames.append(pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.0003,
                                    "low": np.minimum(opens, close) * 0.9997, "close": close,
                                    "volume": rng.integers(1_000, 5_000, 390).astype(float)}, index=idx))
        price = close[-1]
    return pd.concat(frames).tz_convert("UTC")


DAILY = ["ma_crossover.py", "ma_crossover_fast.py", "rsi_mean_reversion.py", "keltner_breakout.py", "bollinger_reversion.py",
         "donchian_breakout.py", "macd_trend.py", "vol_scaled_trend.py"]
INTRADAY = ["opening_range_breakout.py", "vwap_reversion.py", "gap_fade.py", "late_day_momentum.py"]
PANEL = ["pairs_zscore.py"]


def test_there_are_thirteen_examples_each_in_the_readme():
    files = sorted(DAILY + INTRADAY + PANEL)
    assert len(files) == 13 and all((STRATEGIES / f).is_file() for f in files)
    readme = (STRATEGIES / "README.md").read_text()
    assert all(f"`{f}`" in readme for f in files)


@pytest.mark.parametrize("file", DAILY + INTRADAY)
def test_example_trades_and_does_not_peek(file):
    cls = load_strategy_class(STRATEGIES, file)
    assert import_problems((STRATEGIES / file).read_text()) == []
    bars = sim_bars(265598, 500, "1 day") if file in DAILY else _intraday()
    result = run_backtest(cls(), bars)
    assert result.metrics["trade_count"] >= 1 and np.isfinite(result.metrics["final_equity"])
    sample = bars.iloc[:200] if file in DAILY else bars.iloc[: 390 * 2]
    report = check_lookahead(cls, sample, checkpoints=25)
    assert report.ok, report.meaning


def test_pairs_strategy_trades_both_legs_opposite():
    cls = load_strategy_class(STRATEGIES, "pairs_zscore.py")
    rng = np.random.default_rng(2)
    idx = pd.bdate_range("2024-01-01", periods=400, tz="UTC")
    common = np.cumsum(rng.normal(0, 0.01, 400))
    spread = np.zeros(400)
    for i in range(1, 400):  # a mean-reverting spread (AR(1))
        spread[i] = 0.9 * spread[i - 1] + rng.normal(0, 0.01)
    a, b = 100 * np.exp(common + spread), 50 * np.exp(common)
    frames = {c: pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": 1e6}, index=idx)
              for c, p in ((1, a), (2, b))}
    result = run_backtest(cls(), frames)
    assert result.mode == "panel"
    by_leg = {c: [t.side for t in result.trades if t.con_id == c] for c in (1, 2)}
    assert len(by_leg[1]) >= 3 and by_leg[2] == [-s for s in by_leg[1]]  # always opposite legs
    assert result.metrics["total_return"] > 0  # the spread reverts by construction
