"""Many conIds in one backtest, decided in one pass: a vectorized strategy's optional `signals_wide(prices)`.

`run_backtest` over a dict of conIds normally calls `signals(df)` once per conId and runs the fill loop once per
conId. When every conId has the same bar timestamps and the strategy implements `signals_wide`, the strategy gets
all of them at once as bars × conIds frames (`WideBars`: `prices["close"]` is one DataFrame, a column per conId),
so its rolling indicators run over one 2-D array; the fills then run column by column in the compiled loop
when numba is loaded, else over all columns at once in numpy (`fill_grid`; the Python loop per conId for
square-root impact), and the result is assembled exactly as the per-conId path does:
the same equity (summed in conId order), exposure, trades, turnover and metrics, bit for bit.

Column j must equal `signals` on conId j's bars (what the lookahead check vets): the first and last columns are
checked against it, and a mismatch (or an error in `signals_wide`) runs the per-conId path instead.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trader.strategy.exits import apply_time_exits, strategy_rule

if TYPE_CHECKING:
    from trader.simulation.backtester import BacktestResult, Costs
    from trader.strategy.api import Strategy


class WideBars:
    """The bars of several conIds that share one index, a field at a time: `prices["close"]` (or
    `prices.close`) is a bars × conIds DataFrame whose columns are the conIds, built on first access;
    `prices.index` the shared timestamps, `prices.con_ids` the conIds in column order."""

    def __init__(self, frames: dict[int, pd.DataFrame], index: pd.DatetimeIndex) -> None:
        self._frames = frames
        self.index = index
        self.con_ids = list(frames)
        self._rows: dict[str, np.ndarray] = {}  # field -> (conIds, bars) array, each conId's bars contiguous

    def rows(self, name: str) -> np.ndarray:
        """A field as a (conIds, bars) float array: row j is conId j's series (as `_prepare` builds it)."""
        out = self._rows.get(name)
        if out is None:
            if name in ("volume", "vwap") and any(name not in f for f in self._frames.values()):
                if name == "volume":
                    out = np.stack([f["volume"].to_numpy(float) if "volume" in f else np.zeros(len(f))
                                    for f in self._frames.values()])
                else:  # as _prepare: (high + low + close) / 3 where a frame has no vwap
                    out = np.stack([f["vwap"].to_numpy(float) if "vwap" in f else
                                    (np.array(f["high"].to_numpy(), dtype=float) + np.array(f["low"].to_numpy(),
                                     dtype=float) + np.array(f["close"].to_numpy(), dtype=float)) / 3.0
                                    for f in self._frames.values()])
            else:
                out = np.stack([f[name].to_numpy(float) for f in self._frames.values()])
            self._rows[name] = out
        return out

    def __getitem__(self, name: str) -> pd.DataFrame:
        return pd.DataFrame(self.rows(name).T, index=self.index, columns=self.con_ids)

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]


def _shared_index(bars: dict[int, pd.DataFrame]) -> pd.DatetimeIndex | None:
    """The one index every frame has (sorted, at least 2 bars, OHLC present), else None."""
    first = next(iter(bars.values()))
    if not isinstance(first, pd.DataFrame):
        return None
    index = first.index
    if len(index) < 2 or not index.is_monotonic_increasing:
        return None
    for df in bars.values():
        if not isinstance(df, pd.DataFrame) or not {"open", "high", "low", "close"} <= set(df.columns) or \
                not (df.index is index or df.index.equals(index)):
            return None
    return index


def wide_targets(strategy: Strategy, bars: dict[int, pd.DataFrame], mode: str
                 ) -> tuple[WideBars, np.ndarray] | None:
    """(the bars, targets as a (conIds, bars) array with time exits applied) from the strategy's
    `signals_wide`, or None — run conId by conId — when the strategy has none, is not run vectorized, the conIds'
    timestamps differ, or the wide pass fails or differs from `signals` on the first or last conId."""
    from trader.simulation.backtester import _prepare, is_panel, target_series

    if len(bars) < 2 or mode not in ("auto", "vectorized") or not strategy.vectorized or \
            not callable(getattr(type(strategy), "signals_wide", None)) or is_panel(strategy):
        return None
    index = _shared_index(bars)
    if index is None:
        return None
    prices = WideBars(bars, index)
    try:
        raw = strategy.signals_wide(prices)  # type: ignore[attr-defined]
        if isinstance(raw, pd.DataFrame):
            raw = raw.reindex(index=index, columns=prices.con_ids)
        tgt = np.array(np.asarray(raw, dtype=float).T, order="C")
        if tgt.shape != (len(bars), len(index)):
            return None
        if strategy_rule(strategy) is not None:
            tgt = np.stack([apply_time_exits(strategy, row, index) for row in tgt])
        for j in {0, len(bars) - 1}:
            want = target_series(strategy, _prepare(bars[prices.con_ids[j]]), "vectorized")[0]
            if not np.array_equal(want, tgt[j], equal_nan=True):
                return None
    except Exception:  # noqa: BLE001 - the per-conId path raises the strategy's own error, if any
        return None
    return prices, tgt


def run_wide(prices: WideBars, tgt: np.ndarray, *, capital: float, quantity: float | None, fraction: float,
             costs: Costs) -> BacktestResult:
    """The backtest of every conId of `prices` on its row of `tgt` (capital split equally), assembled as
    `run_backtest`'s per-conId path assembles it: equity summed over conIds in their order, exposure their mean,
    trades kept as rows per conId, metrics attached."""
    from trader.simulation.backtester import BacktestResult, _simulate_compiled, _use_compiled, simulate_rows
    from trader.simulation.fill_grid import grid_supported, simulate_grid
    from trader.simulation.metrics import compute_metrics

    index, con_ids = prices.index, prices.con_ids
    per = capital / len(con_ids)
    o, c = prices.rows("open"), prices.rows("close")
    equity = np.empty_like(c)
    held = np.empty_like(c)
    trades = []
    notional = 0.0
    compiled = _use_compiled(None)  # numba already loaded (or forced): the compiled loop, no frame per conId
    if not compiled and grid_supported(costs, quantity):  # all columns at once in numpy (fill_grid)
        fills = simulate_grid(o, c, tgt.T, capital=per, quantity=quantity, fraction=fraction, costs=costs)
        equity, held = fills.equity, fills.held != 0
        trades = [(con_id, index, fills.trades[j]) for j, con_id in enumerate(con_ids)]
        for x in fills.notional.tolist():  # summed in conId order, as the per-conId path adds them
            notional += x
    else:
        for j, con_id in enumerate(con_ids):
            if compiled:
                frame = _impact_frame(prices, j) if costs.impact_coefficient else None
                eq, rows, posn, notl = _simulate_compiled(o[j], c[j], tgt[j], None, capital=per, quantity=quantity,
                                                          fraction=fraction, costs=costs, impact_df=frame)
            else:
                eq, rows, posn, notl = simulate_rows(_impact_frame(prices, j), tgt[j], capital=per,
                                                     quantity=quantity, fraction=fraction, costs=costs,
                                                     sizes=np.full(len(index), np.nan))
            equity[j] = eq
            held[j] = posn != 0
            trades.append((con_id, index, rows))
            notional += notl
    # Row-wise reductions over a (conIds, bars) array add the conIds in order, as pandas' sum over the concat does.
    curve = pd.Series(equity.sum(axis=0), index=index)
    result = BacktestResult(equity=curve, trades=None, exposure=pd.Series(held.mean(axis=0), index=index),
                            turnover=notional / max(float(curve.mean()), 1e-12), initial_capital=capital,
                            mode="vectorized", trade_rows=trades)
    result.metrics = compute_metrics(result)
    return result


def _impact_frame(prices: WideBars, j: int) -> pd.DataFrame:
    """ConId j's open, close and volume as a frame (what the fill loop and the impact model read)."""
    return pd.DataFrame({k: prices.rows(k)[j] for k in ("open", "close", "volume")}, index=prices.index)
