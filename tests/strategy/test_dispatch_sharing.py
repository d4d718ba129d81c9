"""The live runtime's per-bar fast paths keep its semantics: strategies on a conId share one `BarStore` only while
they were given bit-for-bit the same bars (each series always holds exactly its own bars), and the runtime's
cached routes follow every change of state at once."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.config import StrategyEntry
from trader.simulation.backtester import COLUMNS
from trader.strategy.dispatch import BarSeries, BarStore, ConIdSlot, bar_row, live_row
from trader.strategy.loader import load_strategy_class
from trader.strategy.models import Bar
from trader.strategy.runtime import StrategyRuntime, StrategyState

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def _bits(series: BarSeries) -> list[bytes]:
    """A series' bars as raw bytes, column by column (0.0 and -0.0, NaN payloads all distinct)."""
    return [series._cols[k][: series.n].tobytes() for k in COLUMNS] + [series._times[: series.n].tobytes()]


def _row(k: int, variant: int) -> tuple:
    """Bar k (a minute after T0), in one of a few variants that are equal, or equal only by ==, or different."""
    volume = {0: 0.0, 1: -0.0, 2: float("nan"), 3: 0.0, 4: 5.0}[variant]
    close = 100.0 + k + (0.5 if variant == 3 else 0.0)
    return T0 + timedelta(minutes=k), 100.0 + k, close + 1, 99.0 + k, close, volume, None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([0, 0, 0, 1, 2, 3, 4])), max_size=80))
def test_series_sharing_a_store_hold_exactly_their_own_bars(ops: list[tuple[int, int]]) -> None:
    """Three series on one store, each given its own bars (often the same as the others', sometimes -0.0 for
    0.0, NaN or another close): each holds bit for bit what a series with a store of its own holds."""
    shared_store = BarStore(cap=4)  # small: the store grows (reallocates) under shared series too
    shared = [BarSeries(7, shared_store) for _ in range(3)]
    alone = [BarSeries(7) for _ in range(3)]
    built: dict[tuple[int, int], tuple] = {}  # one row object per bar, as the runtime gives a live bar to all
    for j, variant in ops:
        row = _row(shared[j].n, variant)
        if j > 0:  # series 1 and 2 append those objects; series 0 its own copies, compared value by value
            shared[j]._append_row(row[0], built.setdefault((shared[j].n, variant), bar_row(*row)))
        else:
            shared[j]._append(*row)
        alone[j]._append(*row)
    for a, b in zip(shared, alone, strict=True):
        assert a.n == b.n and _bits(a) == _bits(b)
        assert a.frame().equals(b.frame())


def test_same_bars_share_one_store_and_a_different_bar_forks() -> None:
    store = BarStore()
    a, b, c = BarSeries(7, store), BarSeries(7, store), BarSeries(7, store)
    for k in range(3):
        for s in (a, b, c):
            s._append(*_row(k, 0))
    assert a.store is b.store is c.store and store.n == 3
    a._append(*_row(3, 0))
    b._append(*_row(3, 1))  # volume -0.0 where a has 0.0: == says equal, the bits differ
    c._append(*_row(3, 0))
    assert b.store is not store and c.store is store
    assert np.signbit(b.frame()["volume"].iloc[-1]) and not np.signbit(a.frame()["volume"].iloc[-1])
    assert b.frame().iloc[:3].equals(a.frame().iloc[:3])


def _bars(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(T0, periods=n, freq="1min", tz="UTC")
    c = 100 + np.cumsum(rng.normal(0, 0.3, n))
    return pd.DataFrame({"open": c, "high": c + 0.2, "low": c - 0.2, "close": c, "volume": 1.0}, index=idx)


def _run(df: pd.DataFrame, store: BarStore | None) -> tuple[list[list[tuple]], list[ConIdSlot]]:
    """Four example strategies warmed up one after another (keltner on a later start), then fed live bars."""
    specs = [("ma_crossover.py", {"FAST": 3, "SLOW": 9}), ("rsi_mean_reversion.py", {"PERIOD": 6}),
             ("keltner_breakout.py", {"PERIOD": 10, "MULT": 0.5}), ("opening_range_breakout.py", {"RANGE_BARS": 5})]
    signals, slots = [], []
    for i, (module, params) in enumerate(specs):
        slot = ConIdSlot("s", load_strategy_class(EXAMPLES, module)().with_params(**params), 7, mode="bar-by-bar",
                         store=store)
        signals.append([(s.bar_time, s.action) for s in slot.warm_up(df.iloc[100 if i == 2 else 0:400])])
        slots.append(slot)
    for ts, r in df.iloc[400:].iterrows():
        bar = Bar(7, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 60)
        row = live_row(bar) if store is not None else None  # once per bar (as the runtime), or per slot
        for sigs, slot in zip(signals, slots, strict=True):
            s = slot.on_live_bar(bar, row)
            if s is not None:
                sigs.append((s.bar_time, s.action))
    return signals, slots


def test_strategies_on_a_shared_store_signal_as_on_their_own() -> None:
    """History then live bars through slots sharing a store (keltner's history starts later: not the store's
    bars, so it forks at once): the same signals, bar for bar, and the same bars, as on stores of their own."""
    df, store = _bars(700), BarStore()
    shared_signals, shared = _run(df, store)
    own_signals, own = _run(df, None)
    assert shared_signals == own_signals and all(shared_signals)
    assert [s.store is store for s in shared] == [True, True, False, True]
    for a, b in zip(shared, own, strict=True):
        assert _bits(a) == _bits(b)


def _entry(name: str, **kw: object) -> StrategyEntry:
    return msgspec.convert({"name": name, "module": "ma_crossover.py", "class": "MACrossover", "conids": [7],
                            "bar_size": "1 min", "params": {"FAST": 2, "SLOW": 4}, "mode": "bar-by-bar", **kw},
                           StrategyEntry)


def test_routes_follow_every_change_of_state(tmp_path: Path) -> None:
    """The runtime's cached (conId, bar size) routes: disable, enable, install, a failure and remove take effect
    on the very next bar; a strategy that missed bars while disabled forks from the others' store."""
    (tmp_path / "ma_crossover.py").write_text((EXAMPLES / "ma_crossover.py").read_text())
    (tmp_path / "boom.py").write_text(
        "from trader.strategy.api import Strategy\n\nclass Boom(Strategy):\n"
        "    def on_prices(self, prices):\n        if len(prices) > 2:\n            raise RuntimeError('kaboom')\n")
    rt = StrategyRuntime(tmp_path)
    df = _bars(40)
    bars = iter(Bar(7, ts.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, 60) for ts, r in df.iterrows())

    def feed(k: int = 1) -> dict[str, int]:
        for _ in range(k):
            rt.on_bar(next(bars))
        return {n: s.bars_seen for n, s in rt.strategies.items()}

    for name in ("a", "b"):
        rt.install(_entry(name))
        rt.prime(name, {})
    rt.install(_entry("slow", bar_size="5 mins"))
    rt.prime("slow", {})
    assert feed(2) == {"a": 2, "b": 2, "slow": 0}
    assert rt.strategies["a"].slots[7].store is rt.strategies["b"].slots[7].store
    rt.disable("b")
    assert feed() == {"a": 3, "b": 2, "slow": 0}
    rt.enable("b")
    assert feed() == {"a": 4, "b": 3, "slow": 0}
    a, b = rt.strategies["a"].slots[7], rt.strategies["b"].slots[7]
    assert b.store is not a.store and a.n == 4 and b.n == 3  # b missed a bar: its own store, its own bars
    assert b.frame().index.equals(df.index[[0, 1, 3]]) and a.frame().index.equals(df.index[:4])
    rt.install(_entry("c"))  # new, no history: gets bars from the next one on
    rt.prime("c", {})
    rt.install(_entry("boom", module="boom.py", params={}, **{"class": "Boom"}))
    rt.prime("boom", {})
    assert feed(3) == {"a": 7, "b": 6, "slow": 0, "c": 3, "boom": 2}
    assert rt.state("boom") is StrategyState.ERROR
    rt.remove("a")
    assert feed() == {"b": 7, "slow": 0, "c": 4, "boom": 2}
    rt.strategies["c"].state = StrategyState.DISABLED  # set from outside the runtime: still honoured
    assert feed() == {"b": 8, "slow": 0, "c": 4, "boom": 2}
