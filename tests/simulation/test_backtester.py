"""Backtester: next-bar-open fills, costs, long/short, both dispatch modes, metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.simulation.backtester import Costs, run_backtest
from trader.simulation.data import sim_bars
from trader.strategy.api import Action, Signal, Strategy
from trader.strategy.loader import load_strategy_class

STRATEGIES = Path(__file__).parents[2] / "strategies"


def _bars(opens, closes):
    idx = pd.date_range("2026-01-05", periods=len(opens), freq="D", tz="UTC")
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) + 1, "low": np.minimum(o, c) - 1, "close": c,
                         "volume": 1000.0}, index=idx)


class Script(Strategy):
    """Emits a fixed target per bar (None = hold)."""

    def __init__(self, targets):
        self.targets = targets

    def on_prices(self, prices):
        t = self.targets[len(prices) - 1]
        return None if t is None else Signal({1: Action.BUY, -1: Action.SELL, 0: Action.FLAT}[t])


def test_fills_at_next_bar_open_not_signal_close():
    # Opens and closes differ everywhere, so a fill at the wrong price is visible.
    bars = _bars([10, 20, 30, 40, 50], [11, 21, 31, 41, 51])
    r = run_backtest(Script([1, None, 0, None, None]), bars, capital=1000.0, quantity=10)
    (t,) = r.trades
    assert (t.entry_time, t.entry_price) == (bars.index[1], 20.0)  # signal on bar 0 -> bar 1 open
    assert (t.exit_time, t.exit_price) == (bars.index[3], 40.0)    # flat on bar 2 -> bar 3 open
    assert t.pnl == pytest.approx(200.0)
    assert r.equity.iloc[-1] == pytest.approx(1200.0)
    assert r.equity.iloc[1] == pytest.approx(1000.0 + 10 * (21 - 20))  # marked at close


def test_short_with_costs():
    bars = _bars([100, 100, 90, 80], [100, 95, 85, 80])
    costs = Costs(commission_bps=10, commission_per_share=0.01, slippage_bps=5)
    r = run_backtest(Script([-1, None, 0, None]), bars, capital=10_000.0, quantity=10, costs=costs)
    (t,) = r.trades
    entry, exit_ = 100 * (1 - 5e-4), 80 * (1 + 5e-4)  # flat on bar 2 -> bar 3 open
    comm = 10 * entry * 1e-3 + 0.1 + 10 * exit_ * 1e-3 + 0.1
    assert t.side == -1 and t.entry_price == pytest.approx(entry) and t.exit_price == pytest.approx(exit_)
    assert t.pnl == pytest.approx(10 * (entry - exit_) - comm)
    assert r.equity.iloc[-1] == pytest.approx(10_000 + t.pnl)


def test_fraction_sizing_and_reversal():
    bars = _bars([10, 10, 10, 10, 10], [10, 10, 10, 10, 10])
    r = run_backtest(Script([1, -1, None, 0, None]), bars, capital=1000.0, fraction=0.5)
    assert [(t.side, t.quantity) for t in r.trades] == [(1, 50.0), (-1, 50.0)]


def test_vectorized_equals_bar_by_bar_and_many_conids():
    cls = load_strategy_class(STRATEGIES, "ma_crossover.py", "MACrossover")
    # AAPL and NVDA: on a bar where the two averages tie exactly in cents (MSFT has one in this window) the
    # strategy's own `>` depends on float summation order (rolling vs slice mean), not on the engines
    bars = {265598: sim_bars(265598, 600), 4815747: sim_bars(4815747, 600)}
    costs = Costs(commission_bps=1, slippage_bps=2)
    vec = run_backtest(cls().with_params(ALLOW_SHORT=True), bars, costs=costs, mode="vectorized")
    bar = run_backtest(cls().with_params(ALLOW_SHORT=True), bars, costs=costs, mode="bar-by-bar")
    assert vec.trades == bar.trades and len(vec.trades) > 10
    assert {t.con_id for t in vec.trades} == set(bars)
    assert vec.equity.iloc[-1] == pytest.approx(bar.equity.iloc[-1], rel=1e-12)


@pytest.mark.parametrize("file,bar_size", [("ma_crossover.py", "1 day"), ("rsi_mean_reversion.py", "1 day"),
                                           ("keltner_breakout.py", "1 day"),
                                           ("opening_range_breakout.py", "1 min")])
def test_examples_backtest_on_demo_data(file, bar_size):
    cls = load_strategy_class(STRATEGIES, file)
    bars = sim_bars(265598, 500 if bar_size == "1 day" else 5, bar_size)
    r = run_backtest(cls(), bars, costs=Costs(commission_bps=1))
    assert r.metrics["trade_count"] > 0
    keys = {"total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
            "max_drawdown_bars", "profit_factor", "win_rate", "expectancy_bps", "avg_win", "avg_loss",
            "trade_count", "time_in_market", "turnover"}
    assert keys <= set(r.metrics) and all(np.isfinite(r.metrics[k]) or k == "profit_factor" for k in keys)
    assert r.metrics["final_equity"] == pytest.approx(100_000 + sum(t.pnl for t in r.trades)
                                                      + _open_pnl(r), rel=1e-9)


def _open_pnl(r):
    return float(r.equity.iloc[-1]) - 100_000 - sum(t.pnl for t in r.trades)


def test_load_bars_says_where_the_bars_came_from(tmp_path):
    from trader.data.bars import BarStore
    from trader.simulation.data import load_bars, load_bars_between, source_report

    sim = load_bars(265598, 30, "1 day", str(tmp_path))  # nothing stored yet
    stored_frame = sim.copy()
    BarStore.open(tmp_path).ingest(265598, "1 day", "ib", stored_frame)
    real = load_bars(265598, 30, "1 day", str(tmp_path))
    sources, warnings = source_report({265598: real, 8314: load_bars(8314, 30, "1 day", str(tmp_path))}, "1 day")
    assert sources == {265598: "stored", 8314: "simulated"}
    simulated = [w for w in warnings if "SIMULATED" in w]
    assert len(simulated) == 1 and "8314" in simulated[0]
    # The stored bars end 2026-11-20 but the last 30 days were asked for: the short coverage is a warning too.
    short = [w for w in warnings if "expected 1 day bars" in w]
    assert [w.split(":")[0] for w in short] == ["conId 265598"]
    ranged = load_bars_between(8314, "2025-01-01", "2025-03-01", 0, "1 day", str(tmp_path))
    assert source_report({8314: ranged}, "1 day")[0] == {8314: "simulated"}


def test_several_conids_trades_are_built_lazily_in_entry_order():
    """With several conIds the round trips stay rows until asked for; `trades` lists them by (entry time,
    conId) and `trade_column` (what the metrics read) gives the same values in the same order."""
    from trader.simulation.backtester import BacktestResult

    rng = np.random.default_rng(3)
    frames = {}
    for c, (start, n) in {30: ("2020-01-06", 400), 10: ("2020-03-02", 300), 20: ("2020-01-06", 350)}.items():
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frames[c] = pd.DataFrame({"open": close, "high": close, "low": close, "close": close},
                                 index=pd.bdate_range(start, periods=n, tz="UTC"))
    cls = load_strategy_class(Path(__file__).parents[2] / "strategies", "ma_crossover.py")
    r = run_backtest(cls().with_params(FAST=3, SLOW=8), frames)
    assert r._trades is None  # nothing built yet
    pnl = r.trade_column("pnl")
    trades = r.trades
    assert len(trades) == len(pnl) == r.metrics["trade_count"] > 30 and {t.con_id for t in trades} == {10, 20, 30}
    assert trades == sorted(trades, key=lambda t: (t.entry_time, t.con_id))
    assert [t.pnl for t in trades] == pnl.tolist()
    eager = BacktestResult(r.equity, list(trades), r.exposure, r.turnover, r.initial_capital, r.mode)
    assert eager.trade_column("return_pct").tolist() == [t.return_pct for t in trades]
