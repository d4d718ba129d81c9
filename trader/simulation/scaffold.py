"""`strategies create NAME --style bar|vectorized|panel`: a strategy file and its test from a template.

The strategy goes to ``<strategies_directory>/<name>.py``, its test to ``<strategies_directory>/tests/test_<name>.py``
(run it with pytest). Both pass as written: the template is a working strategy to edit, not a stub.
"""
from __future__ import annotations

import keyword
import re
from pathlib import Path

from trader.errors import BacktestError

STYLES = ("bar", "vectorized", "panel")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

_BAR = '''"""{title}: bar-by-bar — `on_prices` sees the bars up to now and returns a Signal (or None to hold)."""
from trader.strategy.api import Action, Signal, Strategy


class {cls}(Strategy):
    """Long while the close is above its LOOKBACK-bar average, flat otherwise. Edit me."""

    LOOKBACK = 20

    def on_prices(self, prices):
        close = prices["close"]
        if len(close) < self.LOOKBACK:
            return None
        return Signal(Action.BUY if close[-1] > close[-self.LOOKBACK:].mean() else Action.FLAT)
'''

_VECTORIZED = '''"""{title}: vectorized — `signals` returns +1/-1/0 (NaN = hold) for every bar at once, each decided on
that bar's close only (no shift(-1), no centered windows: `mmr backtest --check-lookahead` proves it)."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class {cls}(Strategy):
    """Long while the close is above its LOOKBACK-bar average, flat otherwise. Edit me."""

    LOOKBACK = 20

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        close = prices["close"]
        mean = close.rolling(self.LOOKBACK).mean()
        out = pd.Series(np.where(close > mean, 1.0, 0.0), index=prices.index)
        out[mean.isna()] = np.nan
        return out
'''

_PANEL = '''"""{title}: panel — `panel_signals` sees every conId's bars at once (pairs, cross-sectional ranking) and
returns a target Series per conId, each aligned to that conId's bars."""
import numpy as np
import pandas as pd

from trader.strategy.api import Strategy


class {cls}(Strategy):
    """Long the conId with the best LOOKBACK-bar return, flat the others. Edit me."""

    LOOKBACK = 20

    def panel_signals(self, frames: dict) -> dict:
        momentum = pd.DataFrame({{c: df["close"].pct_change(self.LOOKBACK) for c, df in frames.items()}})
        ready = momentum.notna().all(axis=1)
        best = momentum.fillna(-np.inf).idxmax(axis=1)
        out = {{}}
        for c, df in frames.items():
            target = pd.Series(np.where(best == c, 1.0, 0.0), index=momentum.index)
            target[~ready] = np.nan
            out[c] = target.reindex(df.index)
        return out
'''

_TEST = '''"""Test of {file} (scaffolded by `mmr strategies create`): it loads, trades on demo bars, and does not peek."""
from pathlib import Path

from trader.simulation.backtester import run_backtest
from trader.simulation.data import sim_bars
from trader.simulation.lookahead import check_lookahead
from trader.strategy.loader import load_strategy_class

ROOT = Path(__file__).resolve().parents[1]


def test_{name}_runs_and_does_not_peek():
    cls = load_strategy_class(ROOT, "{file}")
    bars = {bars}
    result = run_backtest(cls(), bars)
    assert result.metrics["trade_count"] >= 1
{lookahead}
'''


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part) or "MyStrategy"


def scaffold(strategies_root: Path, name: str, style: str, *, force: bool = False) -> dict[str, str]:
    """Write the strategy and its test; returns their paths and the class name. Refuses a bad name, an unknown
    style, or an existing file (unless `force`)."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise BacktestError(f"strategy name must be lower_snake_case (a-z, 0-9, _; up to 64), got {name!r}")
    if style not in STYLES:
        raise BacktestError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    root = Path(strategies_root)
    file, test = root / f"{name}.py", root / "tests" / f"test_{name}.py"
    for path in (file, test):
        if path.exists() and not force:
            raise BacktestError(f"{path} exists (pass --force to overwrite)")
    cls = _class_name(name)
    title = name.replace("_", " ").capitalize()
    template = {"bar": _BAR, "vectorized": _VECTORIZED, "panel": _PANEL}[style]
    if style == "panel":
        bars = "{c: sim_bars(c, 300) for c in (265598, 272093)}"
        lookahead = "    # panel strategies decide across conIds: run them through `mmr strategies gauntlet`"
    else:
        bars = "sim_bars(265598, 300)"
        lookahead = "    assert check_lookahead(cls, bars.iloc[:120], checkpoints=20).ok"
    test.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(template.format(title=title, cls=cls), encoding="utf-8")
    test.write_text(_TEST.format(file=f"{name}.py", name=name, bars=bars, lookahead=lookahead), encoding="utf-8")
    return {"strategy": str(file), "test": str(test), "class_name": cls, "style": style,
            "next": f"mmr --json strategies gauntlet {name}.py"}
