"""A close's bars decided in one `signals_wide` call (trader/strategy/wide_live.py) give exactly the signals, in
the same order, that calling `signals` conId by conId gives; misaligned conIds, a wrong or failing `signals_wide`
fall back to that path, and nothing else changes."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from trader.config import StrategyEntry
from trader.strategy import wide_live
from trader.strategy.models import Bar, describe
from trader.strategy.runtime import StrategyRuntime, StrategyState

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
CONIDS = [11, 12, 13, 14]

COUNTING = '''
import numpy as np
import pandas as pd
from trader.strategy.api import Strategy

CALLS = {"signals": 0, "wide": 0}


class Cross(Strategy):
    FAST = 3
    SLOW = 8
    BROKEN = 0  # 1: signals_wide is off by a sign on the last column; 2: it raises

    def on_prices(self, prices):
        return None

    def signals(self, prices):
        CALLS["signals"] += 1
        close = prices["close"]
        out = np.where(close.rolling(self.FAST).mean() > close.rolling(self.SLOW).mean(), 1.0, -1.0)
        out[close.rolling(self.SLOW).mean().isna().to_numpy()] = np.nan
        return pd.Series(out, index=prices.index)

    def signals_wide(self, prices):
        CALLS["wide"] += 1
        if self.BROKEN == 2:
            raise RuntimeError("wide pass broken")
        close = prices["close"]
        fast, slow = close.rolling(self.FAST).mean().to_numpy(), close.rolling(self.SLOW).mean().to_numpy()
        out = np.where(fast > slow, 1.0, -1.0)
        out[np.isnan(slow)] = np.nan
        if self.BROKEN == 1:
            out[:, -1] = -out[:, -1]
        return out
'''


def _paths(n: int, seed: int = 5) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: 100 + np.cumsum(rng.normal(0, 0.5, n)) for c in CONIDS}


def _runtime(root: Path, module: str, cls: str, params: dict, warm: int, paths: dict[int, np.ndarray],
             vector_window: int = 5000) -> StrategyRuntime:
    rt = StrategyRuntime(root, vector_window=vector_window)
    idx = pd.date_range(T0, periods=warm, freq="1min")
    hist = {c: pd.DataFrame({"open": p[:warm], "high": p[:warm] + .2, "low": p[:warm] - .2, "close": p[:warm],
                             "volume": 1.0}, index=idx) for c, p in paths.items()}
    for name in ("a", "b"):  # two strategies on the same conIds: they share the bar stores
        entry = msgspec.convert({"name": name, "module": module, "class": cls, "conids": CONIDS,
                                 "bar_size": "1 min", "params": params}, StrategyEntry)
        rt.install(entry)
        rt.prime(name, hist)
        assert rt.state(name) is StrategyState.RUNNING
    return rt


def _closes(paths: dict[int, np.ndarray], warm: int, n: int, skip: set[tuple[int, int]] = frozenset()) -> list:
    out = []
    for k in range(warm, n):
        t = T0 + timedelta(minutes=k)
        out.append([Bar(c, t, p[k], p[k] + .2, p[k] - .2, p[k], 1.0, 60) for c, p in paths.items()
                    if (k, c) not in skip])
    return out


def _run(rt: StrategyRuntime, closes: list, together: bool) -> list[dict]:
    sigs = []
    for bars in closes:
        sigs += rt.on_bars(bars) if together else [s for b in bars for s in rt.on_bar(b)]
    return [describe(s) for s in sigs]


@pytest.mark.parametrize("window", [5000, 40])
def test_wide_close_gives_the_per_conid_signals_in_order(window: int) -> None:
    """MACrossover (examples) over 4 conIds, 2 strategies: one `signals_wide` per strategy and close, the very
    signals of calling `signals` per conId (also once the bars so far exceed `vector_window`)."""
    warm, n = 60, 160
    paths = _paths(n)
    params = {"FAST": 3, "SLOW": 9}
    wide = _runtime(EXAMPLES, "ma_crossover.py", "MACrossover", params, warm, paths, window)
    one = _runtime(EXAMPLES, "ma_crossover.py", "MACrossover", params, warm, paths, window)
    got, want = _run(wide, _closes(paths, warm, n), True), _run(one, _closes(paths, warm, n), False)
    assert len(want) > 20 and got == want
    assert all(live.wide is not None and live.wide.on and live.wide.closes == n - warm
               for live in wide.strategies.values())


def _counting(tmp_path: Path, broken: int = 0, skip: set[tuple[int, int]] = frozenset()) -> tuple[list, list, dict]:
    (tmp_path / "cross.py").write_text(COUNTING)
    warm, n = 30, 90
    paths = _paths(n, seed=9)
    rt_wide = _runtime(tmp_path, "cross.py", "Cross", {"BROKEN": broken}, warm, paths)
    modules = {id(g): g for g in (live.cls.signals.__globals__ for live in rt_wide.strategies.values())}
    for g in modules.values():  # each install loads the file anew: count both modules' calls
        g["CALLS"].update(signals=0, wide=0)
    got = _run(rt_wide, _closes(paths, warm, n, skip), True)
    counted = {k: sum(g["CALLS"][k] for g in modules.values()) for k in ("signals", "wide")}
    rt_one = _runtime(tmp_path, "cross.py", "Cross", {"BROKEN": broken}, warm, paths)
    want = _run(rt_one, _closes(paths, warm, n, skip), False)
    for rt in (rt_wide, rt_one):
        assert all(live.state is StrategyState.RUNNING for live in rt.strategies.values())
    counted["on"] = [live.wide.on for live in rt_wide.strategies.values()]
    return got, want, counted


def test_one_wide_call_per_strategy_and_close_and_a_check_now_and_then(tmp_path: Path) -> None:
    got, want, calls = _counting(tmp_path)
    closes = 60
    assert got == want and len(want) > 10
    assert calls["wide"] == 2 * closes and calls["on"] == [True, True]
    # the check: every column against `signals` at the first close, then one every CHECK_EVERY closes
    assert calls["signals"] == 2 * (len(CONIDS) + len(range(wide_live.CHECK_EVERY, closes, wide_live.CHECK_EVERY)))


def test_a_conid_missing_a_bar_decides_alone_and_the_others_together(tmp_path: Path) -> None:
    """ConId 13 misses bar 40 and ConId 14 bar 50: from then on each decides alone, the others still together
    (and every signal is the same as conId by conId)."""
    got, want, calls = _counting(tmp_path, skip={(40, 13), (50, 14)})
    assert got == want and len(want) > 10
    assert calls["wide"] == 2 * 60  # every close: 4, then 3, then 2 conIds together
    assert calls["on"] == [True, True]
    # that 13 and 14 decided alone: `signals` once per close each (after their missed bars), beyond the checks
    assert calls["signals"] == 2 * (len(CONIDS) + (89 - 40) + (89 - 50))


@pytest.mark.parametrize("broken", [1, 2])
def test_a_wrong_or_failing_signals_wide_is_turned_off(tmp_path: Path, broken: int) -> None:
    """Off by a sign on a column, or raising: the check (or the error) turns it off at the first close, nothing
    preset is used, and every signal is `signals`' own."""
    got, want, calls = _counting(tmp_path, broken=broken)
    assert got == want and len(want) > 10
    assert calls["on"] == [False, False] and calls["wide"] == 2
