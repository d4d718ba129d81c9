"""Lookahead checker: a signal at bar t must not change when the bars after t are removed.

One conId: the strategy reruns on histories truncated at checkpoints. A panel strategy (`panel_signals`, all
conIds at once): every conId's history is truncated at the same instant, so a strategy that reads a later bar of
any conId — its own or another's — is caught too.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader.simulation.backtester import _prepare, is_panel, panel_targets, target_series
from trader.strategy.api import Strategy


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """Outcome of a lookahead check; `first_bad_bar` names the first bar whose signal differed."""

    ok: bool
    checked_bars: int
    first_bad_bar: str | None = None
    full_signal: float | None = None
    truncated_signal: float | None = None
    meaning: str = ""
    con_id: int | None = None  # panel checks: the conId whose signal changed


def _same(a: float, b: float) -> bool:
    return bool(a == b or (np.isnan(a) and np.isnan(b)))


def check_lookahead(make_strategy: Callable[[], Strategy], bars: pd.DataFrame | dict[int, pd.DataFrame], *,
                    checkpoints: int = 60, mode: str = "auto") -> LookaheadReport:
    """Rerun a fresh strategy on histories truncated at `checkpoints` bars (evenly spaced, all bars when
    fewer) and compare each truncated run's last signal with the full run's signal at that bar. `bars` may be a
    dict of conId → bars: a panel strategy is then checked over all of them at once (`check_panel_lookahead`);
    for another strategy each conId is checked in turn and the first failure is reported."""
    if isinstance(bars, dict):
        if is_panel(make_strategy()) and mode in ("auto", "panel"):
            return check_panel_lookahead(make_strategy, bars, checkpoints=checkpoints)
        reports = [(c, check_lookahead(make_strategy, b, checkpoints=checkpoints, mode=mode))
                   for c, b in bars.items()]
        bad = next(((c, r) for c, r in reports if not r.ok), None)
        if bad is not None:
            c, r = bad
            return LookaheadReport(False, r.checked_bars, r.first_bad_bar, r.full_signal, r.truncated_signal,
                                   f"conId {c}: {r.meaning}", c)
        n = sum(r.checked_bars for _, r in reports)
        return LookaheadReport(True, n, meaning=f"no lookahead at {n} checked bars over {len(reports)} conIds")
    df = _prepare(bars)
    full, _, _ = target_series(make_strategy(), df, mode)
    n = len(df)
    points = np.unique(np.linspace(1, n - 2, num=min(checkpoints, n - 2), dtype=int)) if n > 3 else np.arange(n)
    for t in points:
        part, _, _ = target_series(make_strategy(), df.iloc[: t + 1], mode)
        a, b = full[t], part[t]
        if not _same(a, b):
            return LookaheadReport(False, len(points), str(df.index[t]), float(a), float(b),
                                   f"signal at {df.index[t]} changes when later bars are removed: lookahead")
    return LookaheadReport(True, len(points), meaning=f"no lookahead at {len(points)} checked bars")


def check_panel_lookahead(make_strategy: Callable[[], Strategy], bars: dict[int, pd.DataFrame], *,
                          checkpoints: int = 60) -> LookaheadReport:
    """The lookahead check of a panel strategy: at each checkpoint instant t (evenly spaced over the union of
    the conIds' timestamps, from where every conId has 2 bars) every conId's bars after t are removed together,
    and each conId's signal at its last bar ≤ t must equal the full run's signal at that bar."""
    frames = {int(c): _prepare(b) for c, b in bars.items()}
    full = panel_targets(make_strategy(), frames)
    assert full is not None  # the caller checked is_panel
    union = pd.DatetimeIndex(sorted(set().union(*(f.index for f in frames.values()))))
    start = max(f.index[1] for f in frames.values())  # earlier cut-offs would leave a conId with < 2 bars
    cands = union[union >= start][:-1]  # the last instant removes nothing
    if not len(cands):
        return LookaheadReport(True, 0, meaning="too few bars to check")
    picks = cands[np.unique(np.linspace(0, len(cands) - 1, num=min(checkpoints, len(cands)), dtype=int))]
    for t in picks:
        cut = {c: f[f.index <= t] for c, f in frames.items()}
        part = panel_targets(make_strategy(), cut)
        assert part is not None
        for c, f in cut.items():
            i = len(f) - 1
            a, b = full[c][i], part[c][i]
            if not _same(a, b):
                return LookaheadReport(False, len(picks), str(f.index[i]), float(a), float(b),
                                       f"conId {c}: signal at {f.index[i]} changes when the panel's later bars are "
                                       "removed: lookahead", c)
    return LookaheadReport(True, len(picks), meaning=f"no lookahead at {len(picks)} checked instants over "
                                                     f"{len(frames)} conIds (panel)")
