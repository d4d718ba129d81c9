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
from typing import Any

import numpy as np
import pandas as pd

from trader.simulation.backtester import COLUMNS, panel_targets, precompute_columns, target_series
from trader.strategy.api import Signal, Strategy
from trader.strategy.exits import TimeExits, signal_rule, strategy_rule
from trader.strategy.models import Bar, LiveSignal, signal_id
from trader.strategy.view import BarView

_ACTIONS = {1: "BUY", -1: "SELL", 0: "FLAT"}
_UTC_NS = pd.DatetimeTZDtype("ns", UTC)


def _utc_index(values: np.ndarray) -> pd.DatetimeIndex:
    """A UTC DatetimeIndex over datetime64[ns] values (UTC). Built per call of a strategy that reads its index,
    so it takes pandas' internal constructor (~2 µs, the public one ~27 µs), with the public one as fallback."""
    try:
        return pd.DatetimeIndex._simple_new(pd.arrays.DatetimeArray._simple_new(values, dtype=_UTC_NS))
    except (AttributeError, TypeError):  # another pandas version
        return pd.DatetimeIndex(values, tz=UTC)


def signal_values(strategy: Strategy, frame: pd.DataFrame) -> np.ndarray:
    """A vectorized strategy's `signals(frame)` as floats aligned to the frame's bars (a Series by its index)."""
    sig = strategy.signals(frame)  # type: ignore[attr-defined]
    return np.asarray(pd.Series(sig).reindex(frame.index) if isinstance(sig, pd.Series) else sig, dtype=float)


def bar_stamp(t: datetime) -> int:
    """A bar time as `BarSeries` stores it: int64 nanoseconds since the epoch, at microsecond precision."""
    return int(t.timestamp() * 1_000_000) * 1000


def bar_row(t: datetime, o: float, h: float, low: float, c: float, v: float, vwap: float | None = None) -> tuple:
    """A bar as `BarStore.append` takes it: (stamp, open, high, low, close, volume, vwap), the vwap (h + l + c) / 3
    when missing or not finite, as in the backtester's prepared frame."""
    if vwap is None or not math.isfinite(vwap):
        vwap = (h + low + c) / 3.0
    return bar_stamp(t), o, h, low, c, v, vwap


def live_row(bar: Bar) -> tuple:
    """`bar_row` of a live bar. The runtime builds it once per bar for all the strategies on the conId: the ones
    sharing a store then take the store's bar without comparing it (`BarStore.holds`: the very same row)."""
    return bar_row(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume)


class _GrowingBarView(BarView):
    """A `BarView` over a `BarStore`, whose arrays may be reallocated as bars arrive; the index is built on demand."""

    __slots__ = ("_store",)

    def __init__(self, cols: dict[str, np.ndarray], store: BarStore) -> None:
        super().__init__(cols, pd.DatetimeIndex([], tz=UTC))
        self._store = store

    @property
    def index(self) -> pd.DatetimeIndex:
        return _utc_index(self._store.times[: self._n])

    def time(self, i: int = -1) -> pd.Timestamp:
        """`view.index[i]` without building the index (see `BarView.time`)."""
        j, store = self._position(i), self._store
        asked = store.time_asked  # built once per bar for the strategies sharing the store: it never changes
        if asked[0] != j:
            asked = store.time_asked = (j, pd.Timestamp(store.times[j], tz=UTC))
        return asked[1]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({k: v[: self._n] for k, v in self._cols.items()}, index=self.index)


class BarStore:
    """One conId's bars as growing numpy arrays (the backtester's prepared columns and the bar starts), which the
    `BarSeries` of several strategies on that conId may share: a series sees the store's first ``n`` bars, which
    never change once written. Only a series at the store's end writes (appends); one whose next bar is not
    bit for bit the store's next bar forks a copy of its own, so every series holds exactly the bars it was given.
    Shared, the 20 strategies on a conId read one set of arrays (hot in the CPU cache) instead of 20."""

    __slots__ = ("__weakref__", "arrays", "cap", "cols", "last_row", "n", "stamps", "time_asked", "times")

    def __init__(self, cap: int = 256) -> None:
        self.cap = cap
        self.n = 0
        self.cols = {k: np.empty(cap) for k in COLUMNS}
        self.times = np.empty(cap, dtype="datetime64[ns]")
        self.last_row: tuple[Any, ...] = ()  # bar n - 1 as it was appended (stamp first): the cheap comparison
        self.time_asked: tuple[int, pd.Timestamp | None] = (-1, None)  # the last bar time a view built (`time`)
        self._bind()

    def _bind(self) -> None:
        # what `append` writes into, without a dict lookup per column: the arrays in COLUMNS order, and the
        # times as int64 nanoseconds (a view of `times`)
        self.arrays = tuple(self.cols[k] for k in COLUMNS)
        self.stamps = self.times.view(np.int64)

    def append(self, row: tuple[Any, ...]) -> None:
        """Write ``(stamp, open, high, low, close, volume, vwap)`` as bar ``n``."""
        i = self.n
        if i == self.cap:
            self._grow()
        stamp, o, h, low, c, v, vwap = row
        a_open, a_high, a_low, a_close, a_volume, a_vwap = self.arrays
        a_open[i] = o
        a_high[i] = h
        a_low[i] = low
        a_close[i] = c
        a_volume[i] = v
        a_vwap[i] = vwap
        self.stamps[i] = stamp
        self.n = i + 1
        self.last_row = row

    def holds(self, i: int, row: tuple[Any, ...]) -> bool:
        """True when bar ``i`` is bit for bit what appending ``row`` would write (a NaN matches only the very same
        float object: otherwise the series forks, which is always safe)."""
        if i == self.n - 1 and row is self.last_row:
            return True  # the very row appended last (a live bar's, built once for every strategy)
        held = self.last_row if i == self.n - 1 and self.last_row else (self.stamps[i], *(a[i] for a in self.arrays))
        # == holds for 0.0 and -0.0 alike, which are different bits
        return row == held and (0.0 not in row or all(math.copysign(1.0, x) == math.copysign(1.0, y)
                                                      for x, y in zip(row, held, strict=True)))

    def copy(self, n: int) -> BarStore:
        """A private store holding this one's first ``n`` bars."""
        out = BarStore(self.cap)
        for k, v in self.cols.items():
            out.cols[k][:n] = v[:n]
        out.times[:n] = self.times[:n]
        out.n = n  # its last_row stays empty: `holds` reads bar n - 1 from the arrays
        return out

    def _grow(self) -> None:
        self.cap *= 2
        for k, v in self.cols.items():  # in place: views hold this dict
            new = np.empty(self.cap)
            new[: self.n] = v[: self.n]
            self.cols[k] = new
        times = np.empty(self.cap, dtype="datetime64[ns]")
        times[: self.n] = self.times[: self.n]
        self.times = times
        self._bind()


class BarSeries:
    """One conId's bars, history first, then live: the first ``n`` bars of its `BarStore` (its own, or one shared
    with the other strategies on the conId)."""

    def __init__(self, con_id: int, store: BarStore | None = None) -> None:
        self.con_id = con_id
        self.n = 0
        self.store = store if store is not None else BarStore()
        self._view = _GrowingBarView(self.store.cols, self.store)
        self.last_bar_time: datetime | None = None

    @property
    def _cols(self) -> dict[str, np.ndarray]:
        return self.store.cols

    @property
    def _times(self) -> np.ndarray:
        return self.store.times

    def _append(self, t: datetime, o: float, h: float, low: float, c: float, v: float, vwap: float | None) -> None:
        self._append_row(t, bar_row(t, o, h, low, c, v, vwap))

    def _append_row(self, t: datetime, row: tuple) -> None:
        """Add one bar (``row``: its `bar_row`, starting at ``t``)."""
        store, i = self.store, self.n
        if i < store.n:  # another series on this store is ahead: this bar may be its bar i already
            if store.holds(i, row):
                self.n, self.last_bar_time = i + 1, t
                return
            store = self.store = store.copy(i)  # not the same bars: from here on, a store of its own
            self._view = _GrowingBarView(store.cols, store)
        store.append(row)
        self.n, self.last_bar_time = i + 1, t

    def frame(self) -> pd.DataFrame:
        """Every bar this series holds, as the backtester's prepared frame (for parity checks)."""
        return self._frame(0)

    def _frame(self, lo: int, hi: int | None = None) -> pd.DataFrame:
        hi = self.n if hi is None else hi
        idx = _utc_index(self._times[lo:hi])
        return pd.DataFrame({k: v[lo:hi] for k, v in self._cols.items()}, index=idx)

    def upto(self, t: datetime) -> int:
        """How many bars start at or before ``t``."""
        return int(np.searchsorted(self._times[: self.n], np.datetime64(int(t.timestamp() * 1_000_000), "us"),
                                   side="right"))

    def _signal(self, strategy_name: str, t: datetime, target: float, s: Signal | None, exits: TimeExits,
                warmup: bool) -> LiveSignal | None:
        """The time exits on the raw target, then a signal when the wanted direction changes."""
        # most signals carry no exit rule: skip building one (signal_rule would return None)
        plain = s is None or (type(s) is Signal and s.max_hold_bars is None and not s.close_by_time)
        target = exits.step(self.n - 1, t, target, None if plain else signal_rule(s))
        if math.isnan(target):
            return None
        want = (target > 0) - (target < 0)
        if want == self.want:
            return None
        previous, self.want = self.want, want
        c = float(self._cols["close"][self.n - 1])
        return LiveSignal(
            signal_id=signal_id(strategy_name, self.con_id, t), strategy=strategy_name,
            con_id=self.con_id, bar_time=t, action=_ACTIONS[want], target=want, previous=previous, price=c,
            probability=float(s.probability) if s is not None else 1.0,
            quantity=s.quantity if s is not None else None, fraction=s.fraction if s is not None else None,
            warmup=warmup, reason=exits.last_reason)


class ConIdSlot(BarSeries):
    """One strategy instance on one conId's bars: history first (warm-up), then live bars, one call per bar.
    ``mode`` as the backtester's (auto: vectorized when the class has `signals()`)."""

    def __init__(self, strategy_name: str, strategy: Strategy, con_id: int, *, vector_window: int = 5000,
                 mode: str = "auto", store: BarStore | None = None) -> None:
        super().__init__(con_id, store)
        self.strategy_name = strategy_name
        self.strategy = strategy
        if mode not in ("auto", "vectorized", "bar-by-bar"):
            raise ValueError(f"mode {mode!r}: use auto, vectorized or bar-by-bar")
        self.vectorized = strategy.vectorized if mode == "auto" else mode == "vectorized"
        self.precomputes = callable(getattr(type(strategy), "precompute", None))
        self.vector_window = vector_window
        self.want = 0
        self.exits = TimeExits(strategy_rule(strategy))
        self._plain = not self.vectorized and not self.precomputes  # on_prices on the view, nothing else
        # (row, n before it, target): this bar's target decided with the other conIds' (`wide_live`), taken in
        # place of `signals` when the bar appended is that very row
        self.preset: tuple[tuple, int, float] | None = None

    def _decide(self) -> tuple[float, Signal | None]:
        if self.vectorized:
            lo = max(0, self.n - self.vector_window)
            return float(signal_values(self.strategy, self._frame(lo))[-1]), None
        view = self._view
        if self.precomputes:  # the indicators over the last `vector_window` bars, as the backtester slices them
            lo = max(0, self.n - self.vector_window)
            pre = precompute_columns(self.strategy, self._frame(lo))
            cols = dict(self._cols)
            for name, values in pre.items():
                cols[name] = np.full(self.n, np.nan)
                cols[name][lo:] = values
            view = _GrowingBarView(cols, self.store)
        view._n = self.n
        s = self.strategy.on_prices(view)
        return (math.nan, None) if s is None else (float(s.target), s)

    def on_bar(self, t: datetime, o: float, h: float, low: float, c: float, v: float, vwap: float | None = None,
               *, warmup: bool = False) -> LiveSignal | None:
        """Append one completed bar, call the strategy once, and return a signal when its direction changes.
        Exceptions from the strategy propagate (the runtime turns them into ERROR)."""
        return self.on_row(t, bar_row(t, o, h, low, c, v, vwap), warmup=warmup)

    def on_row(self, t: datetime, row: tuple, *, warmup: bool = False) -> LiveSignal | None:
        """`on_bar` for a bar given as its `bar_row` (starting at ``t``): its preset target when it has one for
        this very row (`wide_live`), else the strategy called on it."""
        self._append_row(t, row)
        pre, self.preset = self.preset, None
        if pre is not None and pre[0] is row and pre[1] == self.n - 1:
            target, s = pre[2], None
        else:
            target, s = self._decide()
        return self._signal(self.strategy_name, t, target, s, self.exits, warmup)

    def on_live_bar(self, bar: Bar, row: tuple | None = None) -> LiveSignal | None:
        """`on_bar` for a bar from the `BarBuilder` (``row``: its `live_row`, when the caller has it)."""
        # on_bar's body (and _decide's for a plain bar-by-bar strategy) without their calls: this runs for every
        # strategy on every bar
        t = bar.time
        if row is None:
            row = live_row(bar)
        if not self._plain:
            return self.on_row(t, row)
        self._append_row(t, row)
        view = self._view
        view._n = self.n
        s = self.strategy.on_prices(view)
        return self._signal(self.strategy_name, t, math.nan if s is None else float(s.target), s, self.exits, False)

    def warm_up(self, history: pd.DataFrame) -> list[LiveSignal]:
        """Replay stored bars (oldest first) through the strategy; their signals are marked warm-up."""
        out = []
        for _, ts, o, h, low, c, v, vwap in _rows(history):
            sig = self.on_bar(ts, o, h, low, c, v, vwap, warmup=True)
            if sig is not None:
                out.append(sig)
        return out


def _rows(history: pd.DataFrame) -> Any:
    cols = [history[k].to_numpy(float) for k in ("open", "high", "low", "close")]
    vol = history["volume"].to_numpy(float) if "volume" in history else np.zeros(len(history))
    vwap = history["vwap"].to_numpy(float) if "vwap" in history else np.full(len(history), np.nan)
    for i, ts in enumerate(history.index):
        yield i, ts.to_pydatetime(), cols[0][i], cols[1][i], cols[2][i], cols[3][i], vol[i], vwap[i]


class PanelMember(BarSeries):
    """One conId of a panel strategy: its bars, its wanted direction and its time exits."""

    def __init__(self, con_id: int, exits: TimeExits) -> None:
        super().__init__(con_id)
        self.want = 0
        self.exits = exits


class PanelSlot:
    """A panel strategy (`panel_signals(frames)`) over several conIds, deciding as the backtester does.

    A bar time *t* is decided once every conId's bar of *t* is in (each conId's last bar is at or after *t*),
    or a later bar of any conId has arrived (a conId without a bar at *t* has a gap there). The strategy then
    gets every conId's bars up to *t* (the frames the backtester gives it, cut at *t*) and each conId with a bar
    at *t* takes its target there; signals come out by conId."""

    def __init__(self, strategy_name: str, strategy: Strategy, con_ids: list[int]) -> None:
        self.strategy_name = strategy_name
        self.strategy = strategy
        rule = strategy_rule(strategy)
        self.members = {int(c): PanelMember(int(c), TimeExits(rule)) for c in sorted(con_ids)}
        self.pending: set[datetime] = set()

    def on_bar(self, con_id: int, t: datetime, o: float, h: float, low: float, c: float, v: float,
               vwap: float | None = None, *, warmup: bool = False) -> list[LiveSignal]:
        """Append one conId's completed bar; returns the signals of every bar time that became decidable."""
        self.members[con_id]._append(t, o, h, low, c, v, vwap)
        self.pending.add(t)
        out: list[LiveSignal] = []
        lasts = [m.last_bar_time for m in self.members.values()]
        for when in sorted(self.pending):
            if not (all(x is not None and x >= when for x in lasts) or any(x is not None and x > when for x in lasts)):
                break
            self.pending.discard(when)
            out.extend(self._decide(when, warmup))
        return out

    def _decide(self, when: datetime, warmup: bool) -> list[LiveSignal]:
        cut = {c: m.upto(when) for c, m in self.members.items()}
        frames = {c: m._frame(0, cut[c]) for c, m in self.members.items() if cut[c]}
        raw = self.strategy.panel_signals(frames)  # type: ignore[attr-defined]
        out = []
        for c, df in frames.items():
            m = self.members[c]
            if df.index[-1].to_pydatetime() != when:
                continue  # no bar of this conId at `when`: nothing to decide for it
            sig = raw.get(c) if isinstance(raw, dict) else None
            if sig is None:
                target = 0.0
            else:
                values = np.asarray(pd.Series(sig).reindex(df.index) if isinstance(sig, pd.Series) else sig, dtype=float)
                target = float(values[-1])
            n = m.n
            m.n = cut[c]  # decide on the bar at `when` (later bars of this conId may be in already)
            try:
                s = m._signal(self.strategy_name, when, target, None, m.exits, warmup)
            finally:
                m.n = n
            if s is not None:
                out.append(s)
        return out

    def on_live_bar(self, bar: Bar) -> list[LiveSignal]:
        """`on_bar` for a bar from the `BarBuilder`."""
        return self.on_bar(bar.con_id, bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume)

    def warm_up(self, history: dict[int, pd.DataFrame]) -> list[LiveSignal]:
        """Replay every conId's stored bars merged in time order (then by conId); signals marked warm-up."""
        rows = sorted(((ts, c, row) for c, df in history.items() if c in self.members and df is not None
                       for _, ts, *row in _rows(df.sort_index())), key=lambda r: (r[0], r[1]))
        out: list[LiveSignal] = []
        for ts, c, (o, h, low, cl, v, vwap) in rows:
            out.extend(self.on_bar(c, ts, o, h, low, cl, v, vwap, warmup=True))
        return out


def _changes(tgt: np.ndarray, index: pd.DatetimeIndex) -> list[tuple[datetime, str]]:
    out, want = [], 0
    for i, x in enumerate(tgt):
        if math.isnan(x) or int(np.sign(x)) == want:
            continue
        want = int(np.sign(x))
        out.append((index[i].to_pydatetime(), _ACTIONS[want]))
    return out


def backtest_signals(strategy: Strategy, bars: pd.DataFrame, mode: str = "auto") -> list[tuple[datetime, str]]:
    """The backtester's direction changes on ``bars``: (bar time, BUY/SELL/FLAT) where its wanted position
    changes — the bars after which its fill loop trades. The reference for the live = backtest parity test."""
    from trader.simulation.backtester import _prepare

    df = _prepare(bars)
    tgt, _, _ = target_series(strategy, df, mode)
    return _changes(tgt, df.index)


def backtest_panel_signals(strategy: Strategy, bars: dict[int, pd.DataFrame]) -> list[tuple[datetime, int, str]]:
    """`backtest_signals` for a panel strategy: (bar time, conId, BUY/SELL/FLAT), by time then conId."""
    from trader.simulation.backtester import _prepare

    targets = panel_targets(strategy, bars)
    if targets is None:
        raise ValueError(f"{type(strategy).__name__} is not a panel strategy (no panel_signals)")
    out = [(t, c, a) for c, tgt in targets.items() for t, a in _changes(tgt, _prepare(bars[c]).index)]
    return sorted(out, key=lambda r: (r[0], r[1]))
