"""Time exits (max_hold_bars, close_by_time) and panel strategies: the live runtime gives the backtester's signals."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.simulation.backtester import run_backtest
from trader.strategy.api import Action, Signal, Strategy
from trader.strategy.dispatch import ConIdSlot, PanelSlot, backtest_panel_signals, backtest_signals
from trader.strategy.exits import TimeExits, make_rule
from trader.strategy.loader import load_strategy_class
from trader.strategy.models import Bar

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def _bars(n: int = 900, seed: int = 1, start: datetime = T0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    c = 100 + np.cumsum(rng.normal(0, 0.2, n))
    return pd.DataFrame({"open": c + rng.normal(0, 0.05, n), "high": c + 0.2, "low": c - 0.2, "close": c,
                         "volume": 1000.0}, index=idx)


class HoldFive(Strategy):
    """Buys whenever the close rose, holding at most 5 bars; never says sell."""

    def on_prices(self, prices):
        c = prices["close"]
        if len(c) > 1 and c[-1] > c[-2]:
            return Signal(Action.BUY, max_hold_bars=5)
        return None


class FlatByNY(Strategy):
    """Vectorized: long except on each hour's first bar; closed by 09:45 New York (14:45 UTC in January) by a
    strategy-wide rule."""

    CLOSE_BY_TIME = "09:45 America/New_York"

    def signals(self, prices):
        return pd.Series(np.where(prices.index.minute == 0, 0.0, 1.0), index=prices.index)


def _live(strategy: Strategy, df: pd.DataFrame, warm: int = 300) -> list[tuple[datetime, str]]:
    slot = ConIdSlot("s", strategy, 7)
    out = [(s.bar_time, s.action) for s in slot.warm_up(df.iloc[:warm])]
    for ts, r in df.iloc[warm:].iterrows():
        s = slot.on_live_bar(Bar(7, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 60))
        if s is not None:
            out.append((s.bar_time, s.action))
    return out


def test_time_exit_rules_step_by_step() -> None:
    ex = TimeExits()
    t = [T0 + timedelta(minutes=i) for i in range(10)]
    rule = make_rule(max_hold_bars=2)
    got = [ex.step(0, t[0], 1.0, rule), ex.step(1, t[1], 1.0, rule), ex.step(2, t[2], 1.0, rule)]
    assert got[:2] == [1.0, 1.0] and got[2] == 0.0 and "max_hold_bars" in ex.last_reason
    assert math.isnan(ex.step(3, t[3], 1.0, rule))  # still BUY: no re-entry after a time exit
    assert ex.step(4, t[4], 0.0) == 0.0 and ex.step(5, t[5], 1.0, rule) == 1.0  # a change re-arms it
    assert [ex.step(i, t[i], 1.0, rule) for i in (6, 7)] == [1.0, 0.0]
    assert math.isnan(ex.step(8, t[8], math.nan)) and ex.step(9, t[9], 1.0, rule) == 1.0  # a pause, then anew
    late = TimeExits(make_rule(close_by_time="14:32"))
    assert late.step(0, t[0], -1.0) == -1.0 and late.step(1, t[1], math.nan) != 0.0
    assert late.step(2, t[2], math.nan) == 0.0 and "close_by_time" in late.last_reason
    assert TimeExits(make_rule(close_by_time="14:00")).step(0, t[0], 1.0) == 0.0  # past it: never opens
    with pytest.raises(ValueError):
        make_rule(max_hold_bars=0)
    with pytest.raises(ValueError):
        make_rule(close_by_time="25:99")


@pytest.mark.parametrize("strategy", [HoldFive, FlatByNY])
def test_time_exits_live_equal_backtest(strategy: type[Strategy]) -> None:
    df = _bars(n=1700 if strategy is FlatByNY else 600)  # FlatByNY: into the next New York day
    expected = backtest_signals(strategy(), df)
    assert _live(strategy(), df) == expected
    assert any(a == "FLAT" for _, a in expected)
    trades = run_backtest(strategy(), df, quantity=1.0).trades
    if strategy is HoldFive:  # entered at bar i+1's open, closed at bar i+6's: held 5 bars
        assert len(trades) > 5 and all(t.exit_time - t.entry_time == timedelta(minutes=5) for t in trades)
    else:  # closed after 14:45 UTC (the rule) or an hour's first bar (the strategy); no entry after 14:45 UTC
        # until the New York day ends (05:00 UTC)
        by_rule = [t for t in trades if (t.exit_time.hour, t.exit_time.minute) == (14, 46)]
        assert len(by_rule) == 2 and all(t.exit_time.minute in (1, 46) for t in trades)
        assert not [t for t in trades if t.entry_time.hour >= 15 or t.entry_time.hour < 5]


def _feed(panel: PanelSlot, frames: dict[int, pd.DataFrame], order: list[tuple[pd.Timestamp, int]]) -> list:
    out = []
    for ts, c in order:
        r = frames[c].loc[ts]
        out += [(s.bar_time, s.con_id, s.action) for s in panel.on_live_bar(
            Bar(c, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 60))]
    return out


def test_panel_strategy_live_equals_backtest() -> None:
    """Pairs z-score over two conIds (one with gaps, bars arriving in either order) gives the backtester's
    per-conId signals, in the same order."""
    cls = load_strategy_class(EXAMPLES, "pairs_zscore.py")
    a = _bars(380, seed=3)
    b = a.copy()
    b[["open", "high", "low", "close"]] = b[["open", "high", "low", "close"]] * 0.5 + \
        np.random.default_rng(4).normal(0, 0.15, (len(b), 1))
    b = b.drop(b.index[[250, 251, 330]])  # gaps in B
    frames = {11: a, 22: b}
    strat = cls().with_params(LOOKBACK=20, ENTRY_Z=1.5, EXIT_Z=0.3)
    panel = PanelSlot("p", strat, [11, 22])
    live = [(s.bar_time, s.con_id, s.action) for s in panel.warm_up({c: f.iloc[:120] for c, f in frames.items()})]
    rest = sorted({(ts, c) for c, f in frames.items() for ts in f.index[120:]})
    rng = np.random.default_rng(5)
    by_time: dict = {}
    for ts, c in rest:
        by_time.setdefault(ts, []).append((ts, c))
    order = [x for ts in sorted(by_time) for x in rng.permutation(by_time[ts]).tolist()]
    live += _feed(panel, frames, [(pd.Timestamp(ts), int(c)) for ts, c in order])
    expected = [(t, c, a) for t, c, a in backtest_panel_signals(cls().with_params(LOOKBACK=20, ENTRY_Z=1.5,
                                                                                EXIT_Z=0.3), frames)]
    last = min(f.index[-1] for f in frames.values())
    assert len(expected) > 4 and {c for _, c, _ in expected} == {11, 22}
    assert [x for x in live if x[0] <= last] == [x for x in expected if x[0] <= last]


def test_runtime_runs_panels_and_modes(tmp_path: Path) -> None:
    """A panel entry gets one instance over its conIds (each conId in the listing); ``mode: bar-by-bar`` calls
    `on_prices` of a class that also has `signals()`, matching ``backtest --mode bar-by-bar``."""
    import msgspec

    from trader.config import StrategyEntry
    from trader.strategy.runtime import StrategyRuntime, StrategyState

    rt = StrategyRuntime(EXAMPLES)
    pairs = msgspec.convert({"name": "pairs", "module": "pairs_zscore.py", "class": "PairsZScore", "conids": [11, 22],
                             "params": {"LOOKBACK": 20}}, StrategyEntry)
    ma = msgspec.convert({"name": "ma", "module": "ma_crossover.py", "class": "MACrossover", "conids": [11],
                          "mode": "bar-by-bar", "params": {"FAST": 3, "SLOW": 9}}, StrategyEntry)
    a = _bars(200, seed=8)
    b = _bars(200, seed=9)
    for e in (pairs, ma):
        rt.install(e)
        rt.prime(e.name, {11: a.iloc[:100], 22: b.iloc[:100]})
    assert rt.state("pairs") is rt.state("ma") is StrategyState.RUNNING
    assert rt.strategies["pairs"].panel is not None and set(rt.strategies["pairs"].slots) == {11, 22}
    assert not rt.strategies["ma"].slots[11].vectorized
    got: list = []
    for ts in a.index[100:]:
        for c, f in ((11, a), (22, b)):
            r = f.loc[ts]
            got += rt.on_bar(Bar(c, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 60))
    ma_live = [(s.bar_time, s.action) for s in got if s.strategy == "ma"]
    ma_cls = load_strategy_class(EXAMPLES, "ma_crossover.py")
    assert ma_live == [x for x in backtest_signals(ma_cls().with_params(FAST=3, SLOW=9), a, "bar-by-bar")
                       if x[0] >= a.index[100]]
    assert {s.con_id for s in got if s.strategy == "pairs"} <= {11, 22}
    assert rt.rows()[1]["name"] == "pairs" and set(rt.rows()[1]["targets"]) == {"11", "22"}


_SINGLE = sorted(f.name for f in EXAMPLES.glob("*.py") if "panel_signals" not in f.read_text())
_PARAMS = {"gap_fade.py": {"GAP_PCT": 0.01}}  # continuous synthetic sessions barely gap


@pytest.mark.parametrize("module", _SINGLE)
def test_every_example_live_equals_backtest(module: str) -> None:
    """Every one-conId example strategy (bar-by-bar, precompute, vectorized, intraday): warm-up on history, then
    live bars one at a time give the backtester's signals, in order, over 3.5 days of 5-minute bars."""
    rng = np.random.default_rng(11)
    idx = pd.date_range(T0, periods=1000, freq="5min", tz="UTC")
    c = 100 + np.cumsum(rng.normal(0, 0.3, len(idx)))
    df = pd.DataFrame({"open": c + rng.normal(0, 0.1, len(idx)), "high": c + 0.3, "low": c - 0.3, "close": c,
                       "volume": 1000.0}, index=idx)
    cls = load_strategy_class(EXAMPLES, module)
    params = _PARAMS.get(module, {})
    slot = ConIdSlot("s", cls().with_params(**params), 7)
    live = [(s.bar_time, s.action) for s in slot.warm_up(df.iloc[:500])]
    for ts, r in df.iloc[500:].iterrows():
        s = slot.on_live_bar(Bar(7, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 300))
        if s is not None:
            live.append((s.bar_time, s.action))
    expected = backtest_signals(cls().with_params(**params), df)
    assert [x for x in expected if x[0] >= idx[500]] and live == expected
