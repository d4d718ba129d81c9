"""Calling a strategy on live bars exactly as the backtester does, and the signals that come out.

The backtester (`trader.simulation.backtester.target_series`) calls ``on_prices(view)`` once per bar with a
`BarView` over the bars up to and including that bar, or ``signals(frame)`` once over the whole frame. Live,
`ConIdSlot` keeps the same arrays growing bar by bar and calls the strategy with the same view (bar-by-bar) or
the frame up to now, taking the last value (vectorized); a strategy's `precompute` indicators are recomputed
over the bars so far (the last `vector_window`) before each bar-by-bar call. A *signal* is a change of the wanted direction
(+1/-1/0), which is exactly where the backtester's fill loop trades: `backtest_signals` computes that list from
the backtester's own target series, so live and backtest are compared on the same definition.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from trader.simulation.backtester import COLUMNS, BarView, precompute_columns, target_series
from trader.strategy.api import Signal, Strategy
from trader.strategy.models import Bar, LiveSignal, signal_id

_ACTIONS = {1: "BUY", -1: "SELL", 0: "FLAT"}


class _GrowingBarView(BarView):
    """A `BarView` whose arrays may be reallocated as bars arrive; the index is built on demand."""

    __slots__ = ("_times",)

    def __init__(self, cols: dict[str, np.ndarray], times: np.ndarray) -> None:
        super().__init__(cols, pd.DatetimeIndex([], tz=UTC))
        self._times = times

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self._times[: self._n], tz=UTC)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({k: v[: self._n] for k, v in self._cols.items()}, index=self.index)


class ConIdSlot:
    """One strategy instance on one conId's bars: history first (warm-up), then live bars, one call per bar."""

    def __init__(self, strategy_name: str, strategy: Strategy, con_id: int, *, vector_window: int = 5000) -> None:
        self.strategy_name = strategy_name
        self.strategy = strategy
        self.con_id = con_id
        self.vectorized = strategy.vectorized
        self.precomputes = callable(getattr(type(strategy), "precompute", None))
        self.vector_window = vector_window
        self.want = 0
        self.n = 0
        self._cap = 256
        self._cols = {k: np.empty(self._cap) for k in COLUMNS}
        self._times = np.empty(self._cap, dtype="datetime64[ns]")
        self._view = _GrowingBarView(self._cols, self._times)
        self.last_bar_time: datetime | None = None

    def _grow(self) -> None:
        self._cap *= 2
        for k, v in self._cols.items():
            new = np.empty(self._cap)
            new[: self.n] = v[: self.n]
            self._cols[k] = new
        times = np.empty(self._cap, dtype="datetime64[ns]")
        times[: self.n] = self._times[: self.n]
        self._times = times
        self._view = _GrowingBarView(self._cols, self._times)

    def _append(self, t: datetime, o: float, h: float, low: float, c: float, v: float, vwap: float) -> None:
        if self.n == self._cap:
            self._grow()
        i = self.n
        for k, x in zip(COLUMNS, (o, h, low, c, v, vwap), strict=True):
            self._cols[k][i] = x
        self._times[i] = np.datetime64(int(t.timestamp() * 1_000_000), "us")
        self.n = i + 1
        self.last_bar_time = t

    def frame(self) -> pd.DataFrame:
        """Every bar this slot has seen, as the backtester's prepared frame (for parity checks)."""
        self._view._n = self.n
        return self._view.to_frame()

    def _frame(self, lo: int) -> pd.DataFrame:
        idx = pd.DatetimeIndex(self._times[lo: self.n], tz=UTC)
        return pd.DataFrame({k: v[lo: self.n] for k, v in self._cols.items()}, index=idx)

    def _decide(self) -> tuple[float, Signal | None]:
        if self.vectorized:
            lo = max(0, self.n - self.vector_window)
            df = self._frame(lo)
            sig = self.strategy.signals(df)  # type: ignore[attr-defined]
            values = np.asarray(pd.Series(sig).reindex(df.index) if isinstance(sig, pd.Series) else sig, dtype=float)
            return float(values[-1]), None
        view = self._view
        if self.precomputes:  # the indicators over the last `vector_window` bars, as the backtester slices them
            lo = max(0, self.n - self.vector_window)
            pre = precompute_columns(self.strategy, self._frame(lo))
            cols = dict(self._cols)
            for name, values in pre.items():
                cols[name] = np.full(self.n, np.nan)
                cols[name][lo:] = values
            view = _GrowingBarView(cols, self._times)
        view._n = self.n
        s = self.strategy.on_prices(view)
        return (math.nan, None) if s is None else (float(s.target), s)

    def on_bar(self, t: datetime, o: float, h: float, low: float, c: float, v: float, vwap: float | None = None,
               *, warmup: bool = False) -> LiveSignal | None:
        """Append one completed bar, call the strategy once, and return a signal when its direction changes.
        Exceptions from the strategy propagate (the runtime turns them into ERROR)."""
        self._append(t, o, h, low, c, v, (h + low + c) / 3.0 if vwap is None or not math.isfinite(vwap) else vwap)
        target, s = self._decide()
        if math.isnan(target):
            return None
        want = int(np.sign(target))
        if want == self.want:
            return None
        previous, self.want = self.want, want
        return LiveSignal(
            signal_id=signal_id(self.strategy_name, self.con_id, t), strategy=self.strategy_name,
            con_id=self.con_id, bar_time=t, action=_ACTIONS[want], target=want, previous=previous, price=float(c),
            probability=float(s.probability) if s is not None else 1.0,
            quantity=s.quantity if s is not None else None, fraction=s.fraction if s is not None else None,
            warmup=warmup)

    def on_live_bar(self, bar: Bar) -> LiveSignal | None:
        """`on_bar` for a bar from the `BarBuilder`."""
        return self.on_bar(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume)

    def warm_up(self, history: pd.DataFrame) -> list[LiveSignal]:
        """Replay stored bars (oldest first) through the strategy; their signals are marked warm-up."""
        out = []
        cols = {k: history[k].to_numpy(float) for k in ("open", "high", "low", "close")}
        vol = history["volume"].to_numpy(float) if "volume" in history else np.zeros(len(history))
        vwap = history["vwap"].to_numpy(float) if "vwap" in history else np.full(len(history), np.nan)
        for i, ts in enumerate(history.index):
            sig = self.on_bar(ts.to_pydatetime(), cols["open"][i], cols["high"][i], cols["low"][i],
                              cols["close"][i], vol[i], vwap[i], warmup=True)
            if sig is not None:
                out.append(sig)
        return out


def backtest_signals(strategy: Strategy, bars: pd.DataFrame) -> list[tuple[datetime, str]]:
    """The backtester's direction changes on ``bars``: (bar time, BUY/SELL/FLAT) where its wanted position
    changes — the bars after which its fill loop trades. The reference for the live = backtest parity test."""
    from trader.simulation.backtester import _prepare

    df = _prepare(bars)
    tgt, _, _ = target_series(strategy, df)
    out, want = [], 0
    for i, x in enumerate(tgt):
        if math.isnan(x) or int(np.sign(x)) == want:
            continue
        want = int(np.sign(x))
        out.append((df.index[i].to_pydatetime(), _ACTIONS[want]))
    return out
