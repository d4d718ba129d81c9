"""The live strategy runtime's core: which strategies exist, their state, and bar → strategy → signal.

Plain Python (no sockets, no store): strategy_service feeds it bars and history and acts on the signals it
returns (`trader.strategy.live`). States::

    NOT_INSTALLED → INSTALLED → WAITING_HISTORY → RUNNING ⇄ DISABLED
                         any → ERROR (load failure, or the strategy raised; traceback kept)

A strategy that raises goes to ERROR alone: the bar still reaches every other strategy. ``reload`` re-reads
entries and re-imports a file whose source hash changed (an ERROR strategy is retried on reload).
"""
from __future__ import annotations

import logging
import traceback
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

from trader.config import StrategyEntry
from trader.simulation.backtester import is_panel
from trader.strategy.bars import Bar, bar_seconds
from trader.strategy.dispatch import BarStore, ConIdSlot, PanelMember, PanelSlot, live_row
from trader.strategy.loader import load_strategy_class, resolve_strategy_path, source_hash
from trader.strategy.models import LiveSignal, describe
from trader.strategy.wide_live import WidePass, warm_up_together

log = logging.getLogger(__name__)


class StrategyState(str, Enum):
    """Where a deployed strategy is in its life."""

    NOT_INSTALLED = "NOT_INSTALLED"
    INSTALLED = "INSTALLED"
    WAITING_HISTORY = "WAITING_HISTORY"
    RUNNING = "RUNNING"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


@dataclass
class LiveStrategy:
    """One entry of strategy_runtime.yaml as the runtime holds it."""

    entry: StrategyEntry
    state: StrategyState = StrategyState.NOT_INSTALLED
    seconds: int = 60
    source_hash: str = ""
    cls: type | None = None
    slots: dict[int, ConIdSlot | PanelMember] = field(default_factory=dict)  # per conId (a panel's members)
    panel: PanelSlot | None = None  # a panel strategy: one instance over every conId
    wide: WidePass | None = None  # run vectorized with `signals_wide`: a close's conIds decided in one call
    error: str | None = None
    last_bar_time: datetime | None = None
    last_signal: LiveSignal | None = None
    bars_seen: int = 0
    signals_seen: int = 0

    @property
    def name(self) -> str:
        return self.entry.name

    def row(self) -> dict[str, Any]:
        """The `strategies` listing row (plain data)."""
        e = self.entry
        return {"name": e.name, "state": self.state.value, "module": e.module, "class": e.class_,
                "conids": list(self.slots) or list(e.conids), "bar_size": e.bar_size, "enabled": e.enabled,
                "auto_execute": e.auto_execute, "paper_only": e.paper_only,
                "last_bar": self.last_bar_time.isoformat() if self.last_bar_time else None,
                "last_signal": describe(self.last_signal) if self.last_signal else None,
                "targets": {str(c): s.want for c, s in self.slots.items()},
                "bars": self.bars_seen, "signals": self.signals_seen, "error": self.error,
                "source_hash": self.source_hash[:12],
                # a vectorized class with signals_wide: "on", or "off" once it differed from signals() or raised
                # (its conIds then decide one by one; the log says why)
                "signals_wide": None if self.wide is None else "on" if self.wide.on else "off"}


class StrategyRuntime:
    """Every deployed strategy, keyed by name; routes completed bars to those that subscribe to them."""

    def __init__(self, strategies_dir: str | Path, *, vector_window: int = 5000) -> None:
        self.strategies_dir = Path(strategies_dir)
        self.vector_window = vector_window
        self.strategies: dict[str, LiveStrategy] = {}
        # (conId, bar seconds) -> the RUNNING strategies on those bars and their slots, in `strategies` order;
        # rebuilt after every change of state (`_changed`), so a bar never scans every strategy
        self._routes: dict[tuple[int, int], list[tuple[LiveStrategy, ConIdSlot | PanelMember]]] = {}
        # (conId, bar seconds) -> the bar store a new strategy's slot starts on: the strategies on a conId share
        # one while they are given the same bars (`BarStore`); weak, so a store goes with its last slot
        self._stores: weakref.WeakValueDictionary[tuple[int, int], BarStore] = weakref.WeakValueDictionary()

    # ------------------------------------------------------------------ lifecycle
    def install(self, entry: StrategyEntry, conids: list[int] | None = None) -> LiveStrategy:
        """Load (or reload) one entry's class: INSTALLED, DISABLED when the entry says so, ERROR if it fails.
        ``conids`` overrides the entry's own (a universe resolved to its members)."""
        live = LiveStrategy(entry=entry)
        self.strategies[entry.name] = live
        self._changed()
        try:
            live.seconds = bar_seconds(entry.bar_size)
            path = resolve_strategy_path(self.strategies_dir, entry.module)
            live.source_hash = source_hash(path)
            live.cls = load_strategy_class(self.strategies_dir, entry.module, entry.class_)
            wanted = [int(c) for c in (conids if conids is not None else entry.conids)]
            if is_panel(live.cls()) and entry.mode == "auto":
                live.panel = PanelSlot(entry.name, live.cls().with_params(**entry.params), wanted)
                live.slots = dict(live.panel.members)
            for con_id in wanted if live.panel is None else ():
                strategy = live.cls().with_params(**entry.params)
                live.slots[con_id] = ConIdSlot(entry.name, strategy, con_id, vector_window=self.vector_window,
                                               mode=entry.mode, store=self._store(con_id, live.seconds))
            if any(isinstance(s, ConIdSlot) and s.vectorized for s in live.slots.values()) and \
                    callable(getattr(live.cls, "signals_wide", None)):
                live.wide = WidePass()
        except Exception:  # noqa: BLE001 - any failure of user code is reported on the strategy, never raised
            self._fail(live)
            return live
        live.state = StrategyState.INSTALLED if entry.enabled else StrategyState.DISABLED
        self._changed()
        return live

    def begin_history(self, name: str) -> None:
        """INSTALLED → WAITING_HISTORY (the service is fetching its history)."""
        live = self.strategies[name]
        if live.state is StrategyState.INSTALLED:
            live.state = StrategyState.WAITING_HISTORY
            self._changed()

    def prime(self, name: str, history: dict[int, pd.DataFrame]) -> list[LiveSignal]:
        """Replay each conId's stored bars through the strategy (warm-up signals, never traded), then RUNNING.
        A disabled or failed strategy is left as it is."""
        live = self.strategies[name]
        if live.state not in (StrategyState.INSTALLED, StrategyState.WAITING_HISTORY):
            return []
        out: list[LiveSignal] = []
        try:
            if live.panel is not None:
                out.extend(live.panel.warm_up(history))
                live.bars_seen += sum(len(df) for c, df in history.items() if c in live.slots and df is not None)
            together = self._warm_together(live, history)
            for con_id, slot in live.slots.items():
                df = history.get(con_id)
                if df is not None and len(df):
                    if live.panel is None:
                        out.extend(together[con_id] if con_id in together else slot.warm_up(df.sort_index()))
                        live.bars_seen += len(df)
                    live.last_bar_time = max(filter(None, (live.last_bar_time, slot.last_bar_time)))
        except Exception:  # noqa: BLE001
            self._fail(live)
            return out
        live.state = StrategyState.RUNNING
        self._changed()
        for con_id, slot in live.slots.items() if live.panel is None else ():
            self._stores[(con_id, live.seconds)] = slot.store  # the next strategy starts on the newest bars
        return out

    def _warm_together(self, live: LiveStrategy, history: dict[int, pd.DataFrame]) -> dict[int, list[LiveSignal]]:
        """The warm-up signals of the conIds whose stored bars have the first one's times, replayed together
        (`wide_live.warm_up_together`: one `signals_wide` call a bar), by conId; the others warm up alone."""
        if live.wide is None or not live.wide.on:
            return {}
        frames = {c: df.sort_index() for c, df in history.items()
                  if c in live.slots and isinstance(live.slots[c], ConIdSlot) and df is not None and len(df)}
        first = next(iter(frames.values()), None)
        same = [c for c, df in frames.items() if first is not None and df.index.equals(first.index)]
        if len(same) < 2:
            return {}
        signals = warm_up_together(live.name, live.wide, [(live.slots[c], frames[c]) for c in same],
                                   self.vector_window)
        return dict(zip(same, signals, strict=True))

    def enable(self, name: str) -> LiveStrategy:
        """DISABLED → RUNNING (bars reach it again; its history so far is kept)."""
        live = self._get(name)
        live.entry = _with(live.entry, enabled=True)
        if live.state is StrategyState.DISABLED:
            live.state = StrategyState.RUNNING if live.cls is not None else StrategyState.INSTALLED
            self._changed()
        return live

    def disable(self, name: str) -> LiveStrategy:
        """RUNNING (or any live state) → DISABLED: no bars, no signals."""
        live = self._get(name)
        live.entry = _with(live.entry, enabled=False)
        if live.state is not StrategyState.ERROR:
            live.state = StrategyState.DISABLED
            self._changed()
        return live

    def remove(self, name: str) -> None:
        """Forget a strategy (undeployed): NOT_INSTALLED."""
        self.strategies.pop(name, None)
        self._changed()

    def state(self, name: str) -> StrategyState:
        """A strategy's state (NOT_INSTALLED when unknown)."""
        live = self.strategies.get(name)
        return live.state if live is not None else StrategyState.NOT_INSTALLED

    def changed(self, entry: StrategyEntry) -> bool:
        """True when ``entry`` differs from what runs (new, edited entry, edited file, or in ERROR)."""
        live = self.strategies.get(entry.name)
        if live is None or live.state is StrategyState.ERROR or _with(live.entry, enabled=True) != \
                _with(entry, enabled=True):
            return True
        try:
            return source_hash(resolve_strategy_path(self.strategies_dir, entry.module)) != live.source_hash
        except Exception:  # noqa: BLE001 - a vanished file is a change (the reload reports it)
            return True

    # ------------------------------------------------------------------ dispatch
    def subscriptions(self) -> dict[tuple[int, int], list[str]]:
        """(conId, bar seconds) → names of the strategies that want those bars."""
        out: dict[tuple[int, int], list[str]] = {}
        for live in list(self.strategies.values()):  # read on the event loop while the dispatch thread may install
            if live.state in (StrategyState.INSTALLED, StrategyState.WAITING_HISTORY, StrategyState.RUNNING,
                              StrategyState.DISABLED):
                for con_id in live.slots:
                    out.setdefault((con_id, live.seconds), []).append(live.name)
        return out

    def on_bars(self, bars: list[Bar]) -> list[LiveSignal]:
        """`on_bar` for each bar in order. A run of bars closing at one time on several conIds (a bar close; a
        backlog is several runs, one after the other) is first decided together for each strategy that can
        (`WidePass`: one `signals_wide` call instead of one `signals` per conId); the signals and their order are
        the same as bar by bar."""
        rows = [live_row(bar) for bar in bars]  # the bars as stored, built once, not once per strategy
        wide = len(bars) > 1 and any(live.wide is not None and live.wide.on for live in list(self.strategies.values()))
        out: list[LiveSignal] = []
        i = 0
        while i < len(bars):
            j, key = i + 1, (bars[i].seconds, bars[i].time)
            while j < len(bars) and (bars[j].seconds, bars[j].time) == key:
                j += 1
            if wide and j - i > 1:
                self._decide_wide(bars[i:j], rows[i:j])
            for bar, row in zip(bars[i:j], rows[i:j], strict=True):
                out.extend(self.on_bar(bar, row))
            i = j
        return out

    def _decide_wide(self, bars: list[Bar], rows: list[tuple]) -> None:
        """Preset the targets of one bar close (``bars``: one time and bar size) for every strategy that can."""
        seconds, t = bars[0].seconds, bars[0].time
        close: dict[int, tuple[Bar, tuple] | None] = {}  # conId -> its bar and row (None: twice, decided alone)
        for bar, row in zip(bars, rows, strict=True):
            close[bar.con_id] = None if bar.con_id in close else (bar, row)
        for live in list(self.strategies.values()):
            if live.wide is None or not live.wide.on or live.state is not StrategyState.RUNNING or \
                    live.seconds != seconds:
                continue
            members = []
            for con_id, slot in live.slots.items():
                got = close.get(con_id)
                if got is not None and isinstance(slot, ConIdSlot) and \
                        (slot.last_bar_time is None or t > slot.last_bar_time):
                    members.append((slot, *got))
            live.wide.decide(live.name, members, self.vector_window)

    def on_bar(self, bar: Bar, row: tuple | None = None) -> list[LiveSignal]:
        """Give a completed bar to every RUNNING strategy on its conId and bar size; a strategy that raises
        goes to ERROR and the others still get the bar. ``row``: the bar's `live_row`, when the caller has it."""
        routes = self._routes  # taken first: a change meanwhile replaces the dict, so no stale list is kept
        key = (bar.con_id, bar.seconds)
        route = routes.get(key)
        if route is None:
            route = routes[key] = self._route(*key)
        out: list[LiveSignal] = []
        t = bar.time
        if row is None:
            row = live_row(bar)  # the bar as stored, built once, not once per strategy
        for live, slot in route:
            if live.state is not StrategyState.RUNNING:
                continue  # failed on this very bar, or its state was set from outside the runtime
            if slot.last_bar_time is not None and t <= slot.last_bar_time:
                continue  # a bar it has already seen (history overlap): once only
            try:
                if live.panel is not None:
                    sigs = live.panel.on_live_bar(bar)
                else:
                    sig = slot.on_live_bar(bar, row)
                    sigs = None if sig is None else (sig,)
            except Exception:  # noqa: BLE001 - user code: isolate it
                self._fail(live)
                continue
            live.bars_seen += 1
            live.last_bar_time = t
            if sigs:
                live.last_signal = sigs[-1]
                live.signals_seen += len(sigs)
                out.extend(sigs)
        return out

    def _route(self, con_id: int, seconds: int) -> list[tuple[LiveStrategy, ConIdSlot | PanelMember]]:
        return [(live, live.slots[con_id]) for live in list(self.strategies.values())
                if live.state is StrategyState.RUNNING and live.seconds == seconds and con_id in live.slots]

    def _store(self, con_id: int, seconds: int) -> BarStore:
        store = self._stores.get((con_id, seconds))
        if store is None:
            store = self._stores[(con_id, seconds)] = BarStore()
        return store

    def _changed(self) -> None:
        """Forget the routes after any change of a strategy's state or slots (a new dict, never cleared in place:
        an `on_bar` building routes meanwhile stores them in the old one)."""
        self._routes = {}

    def rows(self) -> list[dict[str, Any]]:
        """Every strategy's listing row, by name."""
        live = dict(self.strategies)  # a copy: read on the event loop while the dispatch thread may install
        return [live[n].row() for n in sorted(live)]

    def _get(self, name: str) -> LiveStrategy:
        from trader.errors import StrategyLoadError

        live = self.strategies.get(name)
        if live is None:
            raise StrategyLoadError(f"no deployed strategy {name!r}; see `mmr strategies`")
        return live

    def _fail(self, live: LiveStrategy) -> None:
        live.state = StrategyState.ERROR
        self._changed()
        live.error = traceback.format_exc(limit=8)
        log.warning("strategy %s failed:\n%s", live.name, live.error)


def _with(entry: StrategyEntry, **changes: Any) -> StrategyEntry:
    import msgspec

    return msgspec.structs.replace(entry, **changes)
