"""Lookahead checker: a signal at bar t must not change when the bars after t are removed."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trader.simulation.backtester import _prepare, target_series
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


def check_lookahead(make_strategy: Callable[[], Strategy], bars: pd.DataFrame, *, checkpoints: int = 60,
                    mode: str = "auto") -> LookaheadReport:
    """Rerun a fresh strategy on histories truncated at `checkpoints` bars (evenly spaced, all bars when
    fewer) and compare each truncated run's last signal with the full run's signal at that bar."""
    df = _prepare(bars)
    full, _, _ = target_series(make_strategy(), df, mode)
    n = len(df)
    points = np.unique(np.linspace(1, n - 2, num=min(checkpoints, n - 2), dtype=int)) if n > 3 else np.arange(n)
    for t in points:
        part, _, _ = target_series(make_strategy(), df.iloc[: t + 1], mode)
        a, b = full[t], part[t]
        if not (a == b or (np.isnan(a) and np.isnan(b))):
            return LookaheadReport(False, len(points), str(df.index[t]), float(a), float(b),
                                   f"signal at {df.index[t]} changes when later bars are removed: lookahead")
    return LookaheadReport(True, len(points), meaning=f"no lookahead at {len(points)} checked bars")
