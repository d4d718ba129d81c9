"""vectorbt as an independent oracle: same signals, next-bar-open fills, same fees -> same trades,
final equity (1e-6 relative) and Sharpe."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.simulation.backtester import Costs, run_backtest, target_series
from trader.simulation.data import sim_bars
from trader.strategy.loader import load_strategy_class

STRATEGIES = Path(__file__).parents[2] / "strategies"


@pytest.mark.parametrize("fee_bps,slip_bps", [(0.0, 0.0), (5.0, 3.0)])
def test_matches_vectorbt(fee_bps, slip_bps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt as vbt

    bars = sim_bars(265598, 700)
    strategy = load_strategy_class(STRATEGIES, "ma_crossover.py")()
    costs = Costs(commission_bps=fee_bps, slippage_bps=slip_bps)
    ours = run_backtest(strategy, bars, capital=100_000.0, quantity=100, costs=costs)

    # Target decided at bar t's close -> order at bar t+1's open: shift the signals one bar for vectorbt.
    tgt, _, _ = target_series(strategy, bars.assign(vwap=0.0))
    held = pd.Series(tgt, index=bars.index).ffill().fillna(0.0)
    long_now = (held > 0).shift(1, fill_value=False)
    entries = long_now & ~long_now.shift(1, fill_value=False)
    exits = ~long_now & long_now.shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(bars["close"], entries=entries, exits=exits, price=bars["open"],
                                    size=100, init_cash=100_000.0, fees=fee_bps / 1e4,
                                    slippage=slip_bps / 1e4, freq="1D")
    rec = pf.trades.records_readable
    closed = rec[rec["Status"] == "Closed"]
    assert len(ours.trades) == len(closed) > 5
    for t, (_, v) in zip(ours.trades, closed.iterrows(), strict=True):
        assert t.entry_time == v["Entry Timestamp"] and t.exit_time == v["Exit Timestamp"]
        assert t.entry_price == pytest.approx(v["Avg Entry Price"], rel=1e-12)
        assert t.exit_price == pytest.approx(v["Avg Exit Price"], rel=1e-12)
        assert t.pnl == pytest.approx(v["PnL"], rel=1e-9, abs=1e-9)
    assert ours.equity.iloc[-1] == pytest.approx(pf.final_value(), rel=1e-6)
    vbt_rets = pf.returns().to_numpy()
    # Simulated stock history follows NYSE sessions: annualised from the bars' own frequency, ~252 a year.
    ppy = ours.metrics["periods_per_year"]
    span_days = (bars.index[-1] - bars.index[0]).days + 1
    assert ppy == pytest.approx(len(bars) * 365.25 / span_days, rel=1e-9) and 245 < ppy < 256
    vbt_sharpe = vbt_rets.mean() / vbt_rets.std(ddof=1) * np.sqrt(ppy)
    assert ours.metrics["sharpe"] == pytest.approx(vbt_sharpe, rel=1e-9)
    assert ours.metrics["sharpe"] == pytest.approx(
        pf.sharpe_ratio(year_freq=f"{ppy} days"), rel=1e-9)
