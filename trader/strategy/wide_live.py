"""A bar close on many conIds decided in one call: a vectorized strategy's `signals_wide`, live.

At a bar close every conId of a strategy gets its bar at the same time. A strategy run vectorized calls
`signals(frame)` once per conId (`ConIdSlot._decide`: ~0.7 ms of pandas each, 50 conIds → ~35 ms a close). When it
also implements `signals_wide` (the backtester's wide path, `trader.simulation.wide`) and its conIds hold the same
bar times, the runtime calls that once over bars × conIds instead: column j is exactly the frame slot j would give
`signals` (its last `vector_window` bars, this one included). Each slot then takes its column's last value as a
*preset* in place of its own call (`ConIdSlot.on_row`); the time exits, the signal and the order of signals
stay the per-bar path's, so nothing a strategy emits changes.

Column j must equal `signals` on conId j's frame (what the lookahead check vets, and what the backtester's wide path
checks): every column is compared with `signals` at every close until one has a target that is not NaN (before,
a wrong column could not show), then one column (in turn) every `CHECK_EVERY` closes. A mismatch, a wrong shape or
an error turns the wide pass off for that strategy for good; its slots then run conId by conId, which raises the
strategy's own error, if any. A conId whose bar times differ from the others' (a missed bar) decides alone; the
others still decide together.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trader.simulation.backtester import COLUMNS
from trader.simulation.wide import WideBars
from trader.strategy.dispatch import _rows, _utc_index, bar_row, signal_values

if TYPE_CHECKING:
    from trader.strategy.dispatch import ConIdSlot
    from trader.strategy.models import Bar, LiveSignal

log = logging.getLogger(__name__)

CHECK_EVERY = 64  # closes between two checks of one column against `signals`, once the wide pass is trusted


class LiveWideBars(WideBars):
    """`WideBars` over live slots: each conId's stored bars ``[lo, n)`` and the bar closing now, a field at a
    time, built on first access (a strategy that reads only `close` copies only that)."""

    def __init__(self, members: list[tuple[ConIdSlot, Bar, tuple]], lo: int, n: int,
                 index: pd.DatetimeIndex) -> None:
        self.index = index
        self.con_ids = [slot.con_id for slot, _, _ in members]
        self._rows: dict[str, np.ndarray] = {}
        self._members = members
        self._lo, self._n = lo, n

    def rows(self, name: str) -> np.ndarray:
        out = self._rows.get(name)
        if out is None:
            if name not in COLUMNS:
                raise KeyError(name)
            k = 1 + COLUMNS.index(name)  # a row is (stamp, *COLUMNS), as `BarStore.append` takes it
            lo, n = self._lo, self._n
            out = np.empty((len(self._members), n - lo + 1))
            for j, (slot, _, row) in enumerate(self._members):
                out[j, :-1] = slot.store.cols[name][lo:n]
                out[j, -1] = row[k]
            self._rows[name] = out
        return out

    def frame(self, j: int) -> pd.DataFrame:
        """Column j as the frame `ConIdSlot._frame` gives `signals` once this bar is appended."""
        return pd.DataFrame({k: self.rows(k)[j] for k in COLUMNS}, index=self.index)


class WidePass:
    """One strategy's wide decisions: whether they are on, which bar times are known to agree, when to check."""

    __slots__ = ("closes", "on", "stores", "trusted", "verified")

    def __init__(self) -> None:
        self.on = True
        self.trusted = False  # every column checked until a close's targets are not all NaN
        self.closes = 0
        self.stores: tuple[Any, ...] = ()  # the slots' bar stores whose first `verified` bar times agree
        self.verified = 0

    def decide(self, name: str, members: list[tuple[ConIdSlot, Bar, tuple]], vector_window: int) -> None:
        """Preset the target of each member slot whose bar times agree with the most of them (all bars at one time)
        from one `signals_wide` call; the others, or all on any failure, decide one by one."""
        if not self.on or len(members) < 2:
            return
        n = Counter(slot.n for slot, _, _ in members).most_common(1)[0][0]
        if n == 0:  # nothing stored yet: the first bar decides one by one
            return
        lo = max(0, n + 1 - vector_window)
        members = self._aligned([m for m in members if m[0].n == n], lo, n)
        if len(members) < 2:
            return
        times = np.empty(n - lo + 1, dtype="datetime64[ns]")
        times[:-1] = members[0][0].store.times[lo:n]
        times.view(np.int64)[-1] = members[0][2][0]
        prices = LiveWideBars(members, lo, n, _utc_index(times))
        strategy = members[0][0].strategy
        try:
            raw = strategy.signals_wide(prices)  # type: ignore[attr-defined]
            if isinstance(raw, pd.DataFrame):
                raw = raw.reindex(index=prices.index, columns=prices.con_ids)
            tgt = np.asarray(raw, dtype=float)
            if tgt.shape != (len(prices.index), len(members)):
                raise ValueError(f"signals_wide returned shape {tgt.shape}, want {(len(prices.index), len(members))}")
            # every column until a close's targets are not all NaN (a warm-up's first frames are), then one
            # column (in turn) every CHECK_EVERY closes
            k, due = divmod(self.closes, CHECK_EVERY)
            checks = range(len(members)) if not self.trusted else () if due else (k % len(members),)
            for j in checks:
                if not np.array_equal(signal_values(strategy, prices.frame(j)), tgt[:, j], equal_nan=True):
                    raise ValueError(f"signals_wide differs from signals on conId {prices.con_ids[j]}")
            if not self.trusted:
                self.trusted = bool(np.isfinite(tgt).any())
        except Exception:  # noqa: BLE001 - user code: the per-conId path runs (and raises its own error, if any)
            self.on = False
            log.warning("strategy %s: signals_wide is off, deciding conId by conId", name, exc_info=True)
            return
        self.closes += 1
        for (slot, _, row), target in zip(members, tgt[-1].tolist(), strict=True):
            slot.preset = (row, n, target)

    def _aligned(self, members: list[tuple[ConIdSlot, Bar, tuple]], lo: int, n: int
                 ) -> list[tuple[ConIdSlot, Bar, tuple]]:
        """The members whose bar times ``[lo, n)`` are the first one's. When they all were at the last close,
        only the bars since are compared (a store's first bars never change)."""
        stores = [slot.store for slot, _, _ in members]
        same = len(stores) == len(self.stores) and all(a is b for a, b in zip(stores, self.stores, strict=True))
        start = max(lo, self.verified) if same else lo
        first = stores[0].stamps[start:n]
        kept = [m for m, store in zip(members, stores, strict=True)
                if store is stores[0] or np.array_equal(store.stamps[start:n], first)]
        self.stores, self.verified = (tuple(stores), n) if len(kept) == len(members) else ((), 0)
        return kept


def warm_up_together(name: str, wide: WidePass, slots: list[tuple[ConIdSlot, pd.DataFrame]],
                     vector_window: int) -> list[list[LiveSignal]]:
    """`ConIdSlot.warm_up` of several slots whose stored bars (sorted) have the same times, bar by bar, the bars
    of one time decided together (`WidePass.decide`): per slot, its warm-up signals, exactly `warm_up`'s."""
    rows = [[(ts, bar_row(ts, o, h, low, c, v, vwap)) for _, ts, o, h, low, c, v, vwap in _rows(df)]
            for _, df in slots]
    out: list[list[LiveSignal]] = [[] for _ in slots]
    for i in range(len(rows[0])):
        wide.decide(name, [(slot, None, r[i][1]) for (slot, _), r in zip(slots, rows, strict=True)],
                    vector_window)  # type: ignore[misc]
        for (slot, _), r, signals in zip(slots, rows, out, strict=True):
            sig = slot.on_row(*r[i], warmup=True)
            if sig is not None:
                signals.append(sig)
    return out
