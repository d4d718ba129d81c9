"""Statistical confidence tests and the lookahead checker."""
from __future__ import annotations

import numpy as np
import pandas as pd

from trader.simulation.lookahead import check_lookahead
from trader.simulation.stats import confidence_report, deflated_sharpe, probabilistic_sharpe
from trader.strategy.api import Strategy


def _bars(n=80):
    idx = pd.date_range("2026-01-05", periods=n, freq="D", tz="UTC")
    c = 100 + np.cumsum(np.random.default_rng(1).normal(0, 1, n))
    return pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": 1.0}, index=idx)


class Peeker(Strategy):
    """Vectorized strategy that reads tomorrow's close (shift(-1)): lookahead."""

    def signals(self, prices):
        return (prices["close"].shift(-1) > prices["close"]).astype(float)


class Honest(Strategy):
    """Vectorized momentum using only past bars."""

    def signals(self, prices):
        return (prices["close"] > prices["close"].shift(1)).astype(float)


def test_lookahead_catches_peeker_and_names_bar():
    bars = _bars()
    bad = check_lookahead(Peeker, bars)
    assert not bad.ok and bad.first_bad_bar == str(bars.index[1])
    good = check_lookahead(Honest, bars)
    assert good.ok and good.checked_bars > 10


def test_psr_and_report_meanings():
    rng = np.random.default_rng(3)
    strong = rng.normal(0.002, 0.01, 1000)
    noise = rng.normal(0.0, 0.01, 1000)
    assert probabilistic_sharpe(strong) > 0.95 > probabilistic_sharpe(noise)
    assert deflated_sharpe(strong, list(rng.normal(0, 0.05, 100))) < probabilistic_sharpe(strong)
    rep = {r.name: r for r in confidence_report(noise, rng.normal(0, 0.01, 40), trial_sharpes=[0.1, 0.2, 0.3])}
    assert {"psr", "t_test", "bootstrap_sharpe", "bootstrap_mean", "tails", "losing_streak",
            "deflated_sharpe"} <= set(rep)
    assert "not distinguishable from noise" in rep["psr"].meaning
    lo, hi = rep["bootstrap_sharpe"].low, rep["bootstrap_sharpe"].high
    assert lo < rep["bootstrap_sharpe"].value < hi


class PanelPeeker(Strategy):
    """Panel strategy that trades conId 1 on conId 2's NEXT close (cross-sectional lookahead)."""

    def panel_signals(self, frames):
        other = frames[2]["close"]
        lead = (other.shift(-1) > other).astype(float).reindex(frames[1].index)
        return {1: lead, 2: pd.Series(0.0, index=frames[2].index)}


class PanelHonest(Strategy):
    """Panel strategy that trades conId 1 on conId 2's PAST move only."""

    def panel_signals(self, frames):
        other = frames[2]["close"]
        lag = (other > other.shift(1)).astype(float).reindex(frames[1].index)
        return {1: lag, 2: pd.Series(0.0, index=frames[2].index)}


def test_panel_lookahead_catches_a_cross_sectional_peeker_and_passes_honest_panels():
    from pathlib import Path

    from trader.strategy.loader import load_strategy_class

    a = _bars()
    b = a.copy()
    b["close"] = b["close"].to_numpy()[::-1].copy()  # a different path for the other conId
    panel = {1: a, 2: b}
    bad = check_lookahead(PanelPeeker, panel)
    assert not bad.ok and bad.con_id == 1 and "panel" in bad.meaning
    good = check_lookahead(PanelHonest, panel)
    assert good.ok and good.checked_bars > 10 and "panel" in good.meaning
    pairs = load_strategy_class(Path(__file__).parents[2] / "strategies", "pairs_zscore.py")
    assert check_lookahead(pairs, {1: _bars(150), 2: _bars(150) * 1.01}, checkpoints=15).ok
    # a dict of bars for a one-conId strategy checks each conId in turn and names the one that failed
    per = check_lookahead(Peeker, {7: a, 8: b})
    assert not per.ok and per.con_id == 7
