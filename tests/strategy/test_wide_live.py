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
             vector_window: int = 5000, wide: bool = True) -> tuple[StrategyRuntime, list[dict]]:
    """Two strategies on the same conIds (they share the bar stores), primed on ``warm`` bars; ``wide=False``:
    without the wide pass (every conId decided alone, warm-up included). The runtime and its warm-up signals."""
    rt = StrategyRuntime(root, vector_window=vector_window)
    idx = pd.date_range(T0, periods=warm, freq="1min")
    hist = {c: pd.DataFrame({"open": p[:warm], "high": p[:warm] + .2, "low": p[:warm] - .2, "close": p[:warm],
                             "volume": 1.0}, index=idx) for c, p in paths.items()}
    warm_signals = []
    for name in ("a", "b"):
        entry = msgspec.convert({"name": name, "module": module, "class": cls, "conids": CONIDS,
                                 "bar_size": "1 min", "params": params}, StrategyEntry)
        live = rt.install(entry)
        assert live.wide is not None
        if not wide:
            live.wide = None
        warm_signals += rt.prime(name, hist)
        assert rt.state(name) is StrategyState.RUNNING
    return rt, [describe(s) for s in warm_signals]


def _closes(paths: dict[int, np.ndarray], warm: int, n: int, skip: set[tuple[int, int]] = frozenset()) -> list:
    out = []
    for k in range(warm, n):
        t = T0 + timedelta(minutes=k)
        out.append([Bar(c, t, p[k], p[k] + .2, p[k] - .2, p[k], 1.0, 60) for c, p in paths.items()
                    if (k, c) not in skip])
    return out


def _run(rt: StrategyRuntime, closes: list, together: bool, per_call: int = 1) -> list[dict]:
    """Every close's signals: ``together``, ``per_call`` closes to one `on_bars` (a backlog), else bar by bar."""
    sigs = []
    for k in range(0, len(closes), per_call):
        bars = [b for close in closes[k:k + per_call] for b in close]
        sigs += rt.on_bars(bars) if together else [s for b in bars for s in rt.on_bar(b)]
    return [describe(s) for s in sigs]


@pytest.mark.parametrize("window", [5000, 40])
def test_wide_close_gives_the_per_conid_signals_in_order(window: int) -> None:
    """MACrossover (examples) over 4 conIds, 2 strategies: warm-up and live closes decided with one `signals_wide`
    per strategy and bar give the very signals, in order, of calling `signals` per conId (also once the bars so
    far exceed `vector_window`)."""
    warm, n = 60, 160
    paths = _paths(n)
    params = {"FAST": 3, "SLOW": 9}
    wide, warm_wide = _runtime(EXAMPLES, "ma_crossover.py", "MACrossover", params, warm, paths, window)
    one, warm_one = _runtime(EXAMPLES, "ma_crossover.py", "MACrossover", params, warm, paths, window, wide=False)
    assert len(warm_one) > 5 and warm_wide == warm_one
    got, want = _run(wide, _closes(paths, warm, n), True), _run(one, _closes(paths, warm, n), False)
    assert len(want) > 20 and got == want
    # every bar but the first of the warm-up (nothing to decide together yet), and every close
    assert all(live.wide.on and live.wide.closes == n - 1 for live in wide.strategies.values())


def _counting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: int = 0,
              skip: set[tuple[int, int]] = frozenset(), per_call: int = 1) -> tuple[list, list, dict]:
    """The Cross strategy with and without the wide pass over the same closes: (signals, signals without, counts
    of the live closes: `signals` calls, `signals_wide` calls, columns checked, and whether each wide pass is on)."""
    (tmp_path / "cross.py").write_text(COUNTING)
    warm, n = 30, 90
    paths = _paths(n, seed=9)
    checked = [0]
    column = wide_live.signal_values

    def counted(strategy, frame):
        checked[0] += 1
        return column(strategy, frame)

    monkeypatch.setattr(wide_live, "signal_values", counted)
    rt_wide, warm_wide = _runtime(tmp_path, "cross.py", "Cross", {"BROKEN": broken}, warm, paths)
    rt_one, warm_one = _runtime(tmp_path, "cross.py", "Cross", {"BROKEN": broken}, warm, paths, wide=False)
    assert warm_wide == warm_one
    modules = {id(g): g for g in (live.cls.signals.__globals__ for live in rt_wide.strategies.values())}
    for g in modules.values():  # each install loads the file anew: count both modules' calls
        g["CALLS"].update(signals=0, wide=0)
    checked[0] = 0
    got = _run(rt_wide, _closes(paths, warm, n, skip), True, per_call)
    counts = {k: sum(g["CALLS"][k] for g in modules.values()) for k in ("signals", "wide")}
    counts["checked"] = checked[0]
    counts["on"] = [live.wide.on for live in rt_wide.strategies.values()]
    assert [r["signals_wide"] for r in rt_wide.rows()] == ["on" if on else "off" for on in counts["on"]]
    assert [r["signals_wide"] for r in rt_one.rows()] == [None, None]  # the pass taken away (`wide=False`)
    want = _run(rt_one, _closes(paths, warm, n, skip), False)
    for rt in (rt_wide, rt_one):
        assert all(live.state is StrategyState.RUNNING for live in rt.strategies.values())
    return got, want, counts


def test_one_wide_call_per_strategy_and_close_and_a_check_now_and_then(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    got, want, calls = _counting(tmp_path, monkeypatch)
    closes = 60
    assert got == want and len(want) > 10
    assert calls["wide"] == 2 * closes and calls["on"] == [True, True]
    # trusted during the warm-up (SLOW bars in): one column every CHECK_EVERY decisions after (29 in warm-up)
    assert calls["checked"] == 2 * len([k for k in range(29, 29 + closes) if k % wide_live.CHECK_EVERY == 0])
    assert calls["checked"] == 2 and calls["signals"] == calls["checked"]


def test_a_backlog_of_closes_is_decided_close_by_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three closes handed over at once (a backlog coalesced into one batch): each close is decided together on
    the bars before it, in order, and the signals are the same as bar by bar."""
    got, want, calls = _counting(tmp_path, monkeypatch, per_call=3)
    assert got == want and len(want) > 10
    assert calls["wide"] == 2 * 60 and calls["on"] == [True, True]
    assert calls["signals"] == calls["checked"]  # no close fell back to `signals` per conId


def test_a_conid_missing_a_bar_decides_alone_and_the_others_together(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """ConId 13 misses bar 40 and ConId 14 bar 50: from then on each decides alone, the others still together
    (and every signal is the same as conId by conId)."""
    got, want, calls = _counting(tmp_path, monkeypatch, skip={(40, 13), (50, 14)})
    assert got == want and len(want) > 10
    assert calls["wide"] == 2 * 60  # every close: 4, then 3, then 2 conIds together
    assert calls["on"] == [True, True]
    # 13 and 14 decided alone after their missed bars: `signals` once per close each, beyond the checks
    assert calls["signals"] == calls["checked"] + 2 * ((89 - 40) + (89 - 50))


@pytest.mark.parametrize("broken", [1, 2])
def test_a_wrong_or_failing_signals_wide_is_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       broken: int) -> None:
    """Off by a sign on its last column, or raising: every column is checked until the targets are not all NaN,
    so the warm-up turns it off before a preset is used, and every signal is `signals`' own."""
    got, want, calls = _counting(tmp_path, monkeypatch, broken=broken)
    assert got == want and len(want) > 10
    assert calls["on"] == [False, False] and calls["wide"] == 0


def test_a_conid_with_other_bar_times_warms_up_alone() -> None:
    """ConId 13's stored history lacks a bar: the three others warm up together, 13 alone, and the warm-up and
    live signals are those of the per-conId path."""
    warm, n = 60, 120
    paths = _paths(n, seed=3)
    idx = pd.date_range(T0, periods=warm, freq="1min")
    out = []
    for wide in (True, False):
        rt = StrategyRuntime(EXAMPLES)
        hist = {c: pd.DataFrame({"open": p[:warm], "high": p[:warm] + .2, "low": p[:warm] - .2, "close": p[:warm],
                                 "volume": 1.0}, index=idx) for c, p in paths.items()}
        hist[13] = hist[13].drop(idx[20])
        entry = msgspec.convert({"name": "a", "module": "ma_crossover.py", "class": "MACrossover", "conids": CONIDS,
                                 "bar_size": "1 min", "params": {"FAST": 3, "SLOW": 9}}, StrategyEntry)
        live = rt.install(entry)
        if not wide:
            live.wide = None
        warmed = [describe(s) for s in rt.prime("a", hist)]
        out.append((warmed, _run(rt, _closes(paths, warm, n), wide), live))
    (warm_wide, got, live), (warm_one, want, _) = out
    assert len(warm_one) > 5 and warm_wide == warm_one and got == want and len(want) > 10
    assert live.wide.on and live.wide.closes == (warm - 1) + (n - warm)  # 13 left out, the others together
    assert live.slots[13].n == live.slots[11].n - 1
