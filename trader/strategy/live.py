"""strategy_service's live loop: strategy_runtime.yaml → runtime; trader_service ticks → bars → strategies →
signals → event store + MessageBus ``signal`` topic → proposals (approved automatically with ``auto_execute``).

The domain rules live in `runtime` (states, dispatch), `bars` (bar building) and `guards` (what may be
proposed/approved); this module only moves data between them and the other services. Store work runs in one
writer thread, never on the event loop. Orders only ever go through trader_service's ``propose`` and
``approve_proposal`` RPCs — the same sizing, risk gate and exactly-once path as a human approval — with the
signal's id as the request id, so a retry or a restart never approves twice.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from trader.config import StrategyEntry, StrategyRuntimeConfig, TraderConfig, load_section, load_trader_config
from trader.strategy.bars import BarBuilder
from trader.strategy.clock import FeedClock
from trader.strategy.guards import AutoExecGuard, CapBook, is_live_account
from trader.strategy.live_reads import EVENT_ORDER, EVENT_REFUSED, EVENT_SIGNAL, LiveReads
from trader.strategy.models import Bar, LiveSignal, describe
from trader.strategy.runtime import StrategyRuntime, StrategyState
from trader.trading.fills import FILL_TOPIC

log = logging.getLogger(__name__)

SIGNAL_TOPIC = "signal"
EVENT_STATE = "strategy_state"
PORTFOLIO_UNIVERSE = "portfolio"  # an entry's `universe: portfolio` runs on every conId held in the account


def strategies_dir(configured: str) -> Path:
    """``strategies_directory`` as `mmr backtest` reads it: absolute, relative to the working directory when
    it exists there, else relative to the MMR checkout."""
    path = Path(configured).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return Path(__file__).resolve().parents[2] / path


class LiveRunner(LiveReads):
    """Runs the deployed strategies inside strategy_service (see the module doc)."""

    def __init__(self, service: Any, *, bus: Any) -> None:
        from trader.data.events import EventStore
        from trader.data.store import STATE_SCHEMA, DuckStore

        self.service = service
        self.config: TraderConfig = service.config
        self.paths = service.paths
        self.bus = bus
        self.strategies_dir = strategies_dir(self.config.strategies_directory)
        self.runtime = StrategyRuntime(self.strategies_dir)
        self.runtime_path = self.paths.config_dir / "strategy_runtime.yaml"
        self.guard = AutoExecGuard(kill_switch=self.config.strategy_kill_switch,
                                   live_account=is_live_account(self.config),
                                   stale_bars=self.config.strategy_stale_bars)
        self.builders: dict[int, BarBuilder] = {}
        self.clock = FeedClock()  # the broker's time: a replayed or accelerated sim is not on the wall clock
        self._primed: dict[str, datetime] = {}  # strategy → the feed-clock time its history was read up to
        self.events = EventStore(DuckStore(self.paths.data_dir / "strategies.duckdb", STATE_SCHEMA))
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strategy-store")
        self.dispatcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strategy-dispatch")
        self._pending: list[tuple[str, dict[str, Any], str | None, str]] = []
        self._pending_lock = threading.Lock()
        self.caps = CapBook()
        self._bars_q: asyncio.Queue[list[Bar]] = asyncio.Queue()  # stage queues (`_drain`)
        self._signals_q: asyncio.Queue[list[LiveSignal]] = asyncio.Queue()
        self.symbols: dict[int, str] = {}
        self.positions: dict[tuple[str, int], float] = {}
        self._volume: dict[int, float] = {}
        self._subscribed: set[int] = set()
        self._tasks: list[asyncio.Task] = []
        self._trader: Any = None
        self._data: Any = None
        self._sub: Any = None
        self._reconcile_lock = asyncio.Lock()
        self._trader_ident: tuple[Any, str] | None = None  # trader_service's (pid, started_at): a restart changes it
        self._last_tick = time.monotonic()
        self._proposals: list[dict[str, Any]] = []  # strategy_proposal payloads (the fills' attribution index)
        self._fill_events: dict[str, list[dict[str, Any]]] = {"fill": [], "commission": []}  # read incrementally
        self._fill_cursor: dict[str, int] = {"fill": 0, "commission": 0}
        self._fill_lock = asyncio.Lock()
        self.dispatch_ms: list[float] = []  # bars in → their signals published (bench and status)
        self.propose_ms: list[float] = []  # bars in → their proposals stored (propose_batch answered)
        self._signals_since: float | None = None  # when the bars of the signals `_act` has not taken yet came in
        self._caps_read = False  # the caps' fills were read from the store once (then kept current by PubSub)
        self._held = False  # events wait for `_release`: the writer thread stays asleep while proposals are sent

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Restore positions from the store, load the YAML, subscribe, and start the loops."""
        from trader.messaging.pubsub import AsyncSubscriber
        from trader.messaging.rpc import AsyncRPCClient

        key = self.service.client_key()
        eps = self.config.rpc_endpoints()
        self._trader = AsyncRPCClient(eps["trader_service"], timeout=30.0, key=key)
        self._data = AsyncRPCClient(eps["data_service"], timeout=30.0, key=key)
        self._sub = AsyncSubscriber(self.config.endpoint(self.config.trader_pub_port), topics=(), key=key)
        self._sub.subscribe(FILL_TOPIC)  # fills and commissions as trader_service records them (the caps)
        for e in await self._store(self.events.read, kind=EVENT_ORDER, limit=100_000):
            k = (e.payload["strategy"], int(e.payload["con_id"]))
            self.positions[k] = self.positions.get(k, 0.0) + float(e.payload["signed_quantity"])
        self._proposals = [e.payload for e in await self._store(self.events.read, kind="strategy_proposal",
                                                                  limit=1_000_000)]
        self._tasks = [asyncio.create_task(self._reconcile_forever()), asyncio.create_task(self._ticks()),
                       asyncio.create_task(self._close_bars()),
                       asyncio.create_task(self._drain(self._bars_q, self.on_bars, "bar dispatch")),
                       asyncio.create_task(self._drain(self._signals_q, self._act, "signal handling"))]

    async def stop(self) -> None:
        """Cancel the loops and close the sockets and the store."""
        for t in self._tasks:
            t.cancel()
        self._release()  # events held for a batch that will not be proposed now are still written
        for c in (self._trader, self._data, self._sub):
            if c is not None:
                c.close()
        self.dispatcher.shutdown(wait=True)
        self.writer.shutdown(wait=True)

    async def _store(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, lambda: fn(*args, **kwargs))

    def record(self, kind: str, payload: dict[str, Any], correlation_id: str | None = None) -> None:
        """Append an event in the writer thread (fire and forget; ordered). Events recorded while the writer is
        busy are written together, in one transaction (a bar close's signals cost one store access, not one
        each)."""
        with self._pending_lock:
            self._pending.append((kind, payload, correlation_id, "strategy_service"))
            if len(self._pending) > 1 or self._held:
                return  # a flush is queued already and will take this one too (or `_release` queues one)
        self.writer.submit(self._flush)

    async def written(self) -> None:
        """Write the events recorded so far, held ones too (in the writer thread, after any queued write): a read
        of the event store then sees every signal the runtime has decided."""
        await self._store(self._flush)

    def _release(self) -> None:
        """End `_held`: queue a flush for the events recorded meanwhile."""
        self._held = False
        with self._pending_lock:
            waiting = bool(self._pending)
        if waiting:
            self.writer.submit(self._flush)

    def _flush(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        try:
            self.events.append_many(batch)
        except Exception:  # noqa: BLE001 - the audit trail must not stop the runtime; logged with its events
            log.exception("could not record %d strategy events: %s", len(batch), [b[0] for b in batch])

    # ------------------------------------------------------------------ reconcile
    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - the next pass retries; one bad pass must not stop the runtime
                log.exception("strategy reconcile failed")
            await self._refresh_caps(self.clock.now())  # the backstop for fill messages PubSub lost
            await asyncio.sleep(self.config.strategy_reconcile_seconds)

    async def reconcile(self, only: str | None = None, force: bool = False) -> list[dict[str, Any]]:
        """Re-read strategy_runtime.yaml: install new/changed entries (re-importing changed files), forget
        removed ones, (re)subscribe ticks, re-read the kill switch. Returns the rows of what was (re)loaded."""
        async with self._reconcile_lock:
            cfg = await asyncio.to_thread(load_section, "strategy_runtime.yaml", StrategyRuntimeConfig, self.paths,
                                          path=self.runtime_path)
            env_cfg = await asyncio.to_thread(load_trader_config, self.paths)
            self.guard.kill_switch = env_cfg.strategy_kill_switch
            await self._sync_clock()  # before installing: history is read up to the broker's now
            names = {e.name for e in cfg.strategies}
            for gone in set(self.runtime.strategies) - names:
                if only is None or gone == only:
                    await self._dispatch(self.runtime.remove, gone)
                    self._primed.pop(gone, None)
                    self.record(EVENT_STATE, {"strategy": gone, "state": StrategyState.NOT_INSTALLED.value})
            loaded = []
            for entry in cfg.strategies:
                if only is not None and entry.name != only:
                    continue
                conids = await self._conids(entry) if entry.universe else None
                running = self.runtime.strategies.get(entry.name)
                grown = conids is not None and running is not None and set(conids) != set(running.slots)
                back = self._clock_went_back(entry.name)  # primed on history after the broker's now
                if force or grown or back or self.runtime.changed(entry):
                    await self._install(entry, conids, reset=back)
                    loaded.append(self.runtime.strategies[entry.name].row())
                elif entry.enabled != self.runtime.strategies[entry.name].entry.enabled:
                    await self._dispatch(self.runtime.enable if entry.enabled else self.runtime.disable, entry.name)
            await self._check_trader_restart()
            await self._subscribe_all()
            if loaded:  # strategies and their primed history live on: out of the cyclic GC's scans (gc.freeze)
                gc.freeze()
            return loaded

    async def _sync_clock(self) -> None:
        """Measure the broker's clock (`FeedClock`) through trader_service's ``broker_time``; when it cannot be
        read (broker not connected yet) the clock keeps its last offset and the next reconcile measures again."""
        try:
            answer = await asyncio.wait_for(self._trader.call("broker_time"), 5.0)
            # taken as of the reply (not the round trip's middle): the clock may lag the broker by the round trip
            # (trade times move it on) but never runs ahead of it, which would stamp ticks into the next bar
            moved = self.clock.measured(datetime.fromisoformat(answer["broker_time"]), self.clock.local())
        except Exception as exc:  # noqa: BLE001 - down or not connected: the next reconcile looks again
            log.debug("broker time unreadable: %s", exc)
            return
        if moved:
            log.info("feed clock moved %+.1f s: broker time − local time = %.1f s", moved, self.clock.offset)

    def _clock_went_back(self, name: str) -> bool:
        """True when the feed clock is now more than a bar before the moment ``name`` was primed at (it was primed
        on the wall clock before the broker's clock was known, e.g. a replayed day): its history holds bars from
        the broker's future, and must be read again."""
        at, live = self._primed.get(name), self.runtime.strategies.get(name)
        return at is not None and live is not None and self.clock.now() < at - timedelta(seconds=live.seconds)

    async def _check_trader_restart(self) -> bool:
        """Re-subscribe every conId when trader_service restarted (its pid or start time changed) or its tick
        stream went silent for three reconcile periods; the event is recorded. False when nothing changed."""
        try:
            st = await self._trader.call("status")
        except Exception as exc:  # noqa: BLE001 - down or restarting: the next reconcile looks again
            log.warning("trader_service status: %s", exc)
            return False
        ident = (getattr(st, "pid", None), str(getattr(st, "started_at", "")))
        if not ((getattr(st, "details", None) or {}).get("broker") or {}).get("ready"):
            return False  # its broker is not connected yet: subscribing now would fail; the next pass looks again
        silent = time.monotonic() - self._last_tick > 3 * max(1.0, self.config.strategy_reconcile_seconds)
        restarted = self._trader_ident is not None and ident != self._trader_ident
        self._trader_ident = ident
        if not (restarted or (silent and self._subscribed)):
            return False
        why = "trader_service restarted" if restarted else "tick stream silent"
        self.record("strategy_resubscribe", {"reason": why, "trader_pid": ident[0], "conids": sorted(self._subscribed)})
        log.info("re-subscribing strategy ticks: %s", why)
        self._last_tick = time.monotonic()
        self._subscribed.clear()
        return True

    async def _conids(self, entry: StrategyEntry) -> list[int] | None:
        """The entry's conIds plus its universe's members (``universe: portfolio``: the conIds held in the
        account now), read again on every reconcile so new members and new positions are picked up; None when
        the universe cannot be read now."""
        conids = list(entry.conids)
        if not entry.universe:
            return conids
        try:
            if entry.universe == PORTFOLIO_UNIVERSE:
                members = await self._trader.call("positions")
            else:
                members = await self._data.call("universe_show", entry.universe)
        except Exception as exc:  # noqa: BLE001 - reported on the strategy; the next reconcile retries
            log.warning("universe %s of %s: %s", entry.universe, entry.name, exc)
            return None
        conids += [int(m["con_id"]) for m in members if m.get("con_id") and int(m["con_id"]) not in conids]
        return conids

    async def _install(self, entry: StrategyEntry, conids: list[int] | None = None, reset: bool = False) -> None:
        conids = conids if conids is not None else await self._conids(entry)
        live = await self._dispatch(self.runtime.install, entry, conids if conids is not None else list(entry.conids))
        self.record(EVENT_STATE, {"strategy": entry.name, "state": live.state.value, "error": live.error})
        if entry.forced and entry.auto_execute and self.guard.live_account:  # audited: may trade real money
            self.record("strategy_forced_live", {"strategy": entry.name, "module": entry.module,
                                                 "source_hash": live.source_hash,
                                                 "validated_hash": entry.validated_hash})
        if live.state is not StrategyState.INSTALLED:
            return
        await self._dispatch(self.runtime.begin_history, entry.name)
        self._primed[entry.name] = self.clock.now()
        history = await self._history(entry, conids)
        warm = await self._dispatch(self.runtime.prime, entry.name, history)
        builder = self.builders.setdefault(live.seconds, BarBuilder(live.seconds))
        for con_id in live.slots if reset else ():
            builder.forget(con_id)  # its seed came from history after the broker's now
        for other in list(self.runtime.strategies.values()):  # a copy; every strategy on these bars seeds them
            for con_id, slot in other.slots.items():
                if other.seconds == live.seconds and con_id in live.slots and slot.last_bar_time is not None:
                    builder.seed(con_id, slot.last_bar_time)
        self.record(EVENT_STATE, {"strategy": entry.name, "state": live.state.value, "error": live.error,
                                  "warmup_signals": len(warm)})

    async def _history(self, entry: StrategyEntry, conids: list[int]) -> dict[int, Any]:
        if not entry.historical_days_prior:
            return {}
        out = {}
        # Up to the broker's now (the last whole bar): bars stored after a replayed moment are never loaded.
        seconds = self.runtime.strategies[entry.name].seconds
        now = self.clock.now()
        end = datetime.fromtimestamp(now.timestamp() // seconds * seconds, UTC)
        start = now - timedelta(days=entry.historical_days_prior)
        for con_id in conids:
            symbol = await self._symbol(con_id)
            try:
                out[con_id] = await self._data.call("history_read", symbol, entry.bar_size, start=start, end=end)
            except Exception as exc:  # noqa: BLE001 - no stored history: start from live bars only
                log.warning("no history for %s (%s) of %s: %s", symbol, con_id, entry.name, exc)
        return out

    async def _symbol(self, con_id: int) -> str:
        if con_id not in self.symbols or con_id not in self._subscribed:
            sub = await self._trader.call("subscribe_ticks", "", con_id=con_id)
            self.symbols[con_id] = sub["symbol"]
            self._subscribed.add(con_id)
            self._sub.subscribe(sub["topic"])
        return self.symbols[con_id]

    async def _subscribe_all(self) -> None:
        wanted = {con_id for con_id, _ in self.runtime.subscriptions()}
        for con_id in sorted(wanted - self._subscribed):
            try:
                await self._symbol(con_id)
            except Exception as exc:  # noqa: BLE001 - broker not ready yet: the next reconcile retries
                log.warning("cannot subscribe to conId %s yet: %s", con_id, exc)

    async def resubscribe(self) -> None:
        """After a trader_service restart: ask for every conId's ticks again."""
        self._subscribed.clear()
        self.symbols.clear()
        await self._subscribe_all()

    # ------------------------------------------------------------------ ticks → bars
    async def _ticks(self) -> None:
        while True:
            msg = await self._sub.recv(timeout=1.0)
            if msg is None:
                continue
            topic, q = msg
            if topic.startswith(FILL_TOPIC):
                self._on_fill_event(q)
                continue
            self._last_tick = time.monotonic()
            try:
                con_id = int(q["con_id"])
                price = q.get("last")
                if price is None and q.get("bid") and q.get("ask"):
                    price = (q["bid"] + q["ask"]) / 2
                # trader_service's receive time on the broker's clock, or a trade time ahead of it (accelerated)
                trade = (datetime.fromisoformat(q["last_time"]) if q.get("last_time") and q.get("last") is not None
                         else None)
                t = self.clock.tick_time(datetime.fromisoformat(q["time"]) if q.get("time") else None, trade)
                vol, prev = q.get("volume"), self._volume.get(con_id)
                size = max(0.0, vol - prev) if vol is not None and prev is not None else 0.0
                if vol is not None:
                    self._volume[con_id] = vol
            except (KeyError, TypeError, ValueError):
                continue
            bars = [b for builder in self.builders.values() for b in builder.on_tick(con_id, t, price, size)]
            if bars:
                self._bars_q.put_nowait(bars)

    async def _close_bars(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = self.clock.now()
            bars = [b for builder in self.builders.values() for b in builder.close_due(now)]
            if bars:
                self._bars_q.put_nowait(bars)

    # ------------------------------------------------------------------ bars → signals → proposals
    @staticmethod
    async def _drain(queue: asyncio.Queue, handle: Any, what: str) -> None:
        """One pipeline stage: take everything queued (what arrived while the last batch was handled), handle
        it as one batch. Ticks → bars → strategies → proposals is three such stages, so a slow stage delays no
        earlier one (the tick reader never waits for an approval) and its backlog coalesces into one batch:
        one dispatch and one ``propose_batch`` for the bars that closed meanwhile. (asyncio queues, not reactivex:
        RxPY has no backpressure, and its time/count windows would delay every bar or split a bar close.)"""
        while True:
            batch = list(await queue.get())
            while not queue.empty():
                batch.extend(queue.get_nowait())
            try:
                await handle(batch)
            except Exception:  # noqa: BLE001 - one bad batch must not stop the stage
                log.exception("strategy %s failed on a batch of %d", what, len(batch))

    async def on_bars(self, bars: list[Bar]) -> list[LiveSignal]:
        """Dispatch completed bars (in the dispatch thread: strategies never run on the event loop); queue the
        signals for `_act` (proposals, approvals), publish and record them. Returns the signals.

        The signals are published just after `_act` has sent their proposals (``call_soon`` runs after its first
        step, which sends the RPC): trader_service starts on them ~2 ms sooner. The events recorded here wait
        until `_act` has its proposals stored (`_held`): the writer thread would compete with it for the GIL."""
        t0 = time.perf_counter()
        signals, failed = await self._dispatch(self._on_bars_sync, bars)
        if signals:
            self._held = True  # released by `_act` once this batch's proposals are stored (or refused)
            if self._signals_since is None:
                self._signals_since = t0
            self._signals_q.put_nowait(signals)
        asyncio.get_running_loop().call_soon(self._publish, signals, t0)
        for name, error in failed:
            self.record(EVENT_STATE, {"strategy": name, "state": "ERROR", "error": error})
        for sig in signals:
            self.record(EVENT_SIGNAL, describe(sig), correlation_id=sig.signal_id)
        return signals

    def _publish(self, signals: list[LiveSignal], t0: float) -> None:
        for sig in signals:
            self.bus.publish(SIGNAL_TOPIC, sig)
        self.dispatch_ms.append((time.perf_counter() - t0) * 1000)  # bars in → their signals published
        del self.dispatch_ms[:-1000]

    def _on_bars_sync(self, bars: list[Bar]) -> tuple[list[LiveSignal], list[tuple[str, str | None]]]:
        before = {n: s.state for n, s in self.runtime.strategies.items()}
        signals = self.runtime.on_bars(bars)
        failed = [(n, s.error) for n, s in self.runtime.strategies.items()
                  if s.state is StrategyState.ERROR and before.get(n) is not StrategyState.ERROR]
        return signals, failed

    async def _dispatch(self, fn: Any, *args: Any) -> Any:
        """Run runtime work (strategy code: install, prime, bars) in the one dispatch thread, in order."""
        return await asyncio.get_running_loop().run_in_executor(self.dispatcher, lambda: fn(*args))

    async def _act(self, signals: list[LiveSignal]) -> None:
        """Guards, then one ``propose_batch`` for the first leg of every signal (a reversal closes first, then
        opens), then the approvals of the auto-executed ones, each through ``approve_proposal``."""
        since, self._signals_since = self._signals_since, None
        try:
            stored = await self._propose(signals)
        finally:
            self._release()
        if stored is None:
            return
        if since is not None:
            self.propose_ms.append((time.perf_counter() - since) * 1000)
            del self.propose_ms[:-1000]
        plans, orders, answers = stored
        await asyncio.gather(*(self._after_propose(entry, sig, legs, o, a)
                               for (entry, sig, legs), o, a in zip(plans, orders, answers, strict=True)))

    async def _propose(self, signals: list[LiveSignal]) -> tuple[list[Any], list[dict[str, Any]],
                                                                   list[dict[str, Any]]] | None:
        """`_act`'s first part: the guards, then one ``propose_batch``; (plans, orders, answers), or None when
        nothing was proposed."""
        now = self.clock.now()  # stale bars, cooldowns, caps and "today" on the broker's clock
        # What each strategy holds (the closing legs, the caps): its fills as trader_service published them
        # (`_on_fill_event`), the store read once first and on every reconcile (a lost message), and its orders
        # in flight. No store read here: one costs ~100 ms on a bar close.
        if not self._caps_read:
            await self._refresh_caps(now)
        plans: list[tuple[StrategyEntry, LiveSignal, list[tuple[str, str, float | None]]]] = []
        for sig in signals:
            live = self.runtime.strategies.get(sig.strategy)
            if live is None:
                continue
            payload = describe(sig)
            why = self.guard.propose_refusal(sig, now, live.seconds)
            if why is None and live.state is not StrategyState.RUNNING:  # disabled (or failed) since it signalled
                why = f"strategy {live.state.value} since the signal: not proposed"
            if why is not None:
                self.record(EVENT_REFUSED, {**payload, "stage": "propose", "reason": why},
                            correlation_id=sig.signal_id)
                continue
            held = self.caps.position(sig.strategy, sig.con_id)
            legs: list[tuple[str, str, float | None]] = []  # (suffix, action, quantity; None = let the sizer size)
            if held and (sig.target == 0 or (held > 0) != (sig.target > 0)):
                legs.append(("close", "SELL" if held > 0 else "BUY", abs(held)))
            if sig.target != 0:
                legs.append(("open", "BUY" if sig.target > 0 else "SELL", sig.quantity))
            if not legs:
                self.record(EVENT_REFUSED, {**payload, "stage": "propose", "reason": "flat and nothing held"},
                            correlation_id=sig.signal_id)
                continue
            plans.append((live.entry, sig, legs))
        if not plans:
            return None
        orders = []
        for entry, sig, legs in plans:
            suffix, action, qty = legs[0]
            orders.append(await self._order(entry, sig, f"{sig.signal_id}-{suffix}", action, qty))
        try:
            answers = await self._trader.call("propose_batch", orders, brief=True)  # what `_approve` reads
        except Exception as exc:  # noqa: BLE001 - trader_service down or refused the batch: every signal recorded
            for (_, sig, _legs), o in zip(plans, orders, strict=True):
                self._refused(sig, o["request_id"], "propose", exc)
            return None
        return plans, orders, answers

    async def _order(self, entry: StrategyEntry, sig: LiveSignal, rid: str, action: str,
                     qty: float | None) -> dict[str, Any]:
        symbol = await self._symbol(sig.con_id)
        why = f" ({sig.reason})" if sig.reason else ""
        reasoning = (f"strategy {entry.name}: {sig.action} {symbol} on the {sig.bar_time.isoformat()} bar close "
                     f"{sig.price:g}{why} ({rid})")
        # The same request id as the approval, so a retried signal (a restart) finds its proposal.
        return {"symbol": symbol, "action": action, "quantity": qty, "reasoning": reasoning,
                "confidence": min(1.0, max(0.0, sig.probability)), "request_id": rid}

    async def _after_propose(self, entry: StrategyEntry, sig: LiveSignal, legs: list[tuple[str, str, float | None]],
                             order: dict[str, Any], answer: dict[str, Any]) -> None:
        for k, (suffix, action, qty) in enumerate(legs):
            if k:  # the opening leg of a reversal, once its closing leg was sent
                order = await self._order(entry, sig, f"{sig.signal_id}-{suffix}", action, qty)
                try:
                    answer = await self._trader.call("propose", **order)
                except Exception as exc:  # noqa: BLE001 - refused by the pipeline: recorded
                    answer = {"error": {"type": type(exc).__name__, "message": str(exc)}}
            if "error" in answer:
                err = answer["error"]
                self.record(EVENT_REFUSED, {"strategy": sig.strategy, "con_id": sig.con_id,
                                            "signal_id": sig.signal_id, "stage": "propose",
                                            "error": err.get("type"), "reason": err.get("message")},
                            correlation_id=order["request_id"])
                return
            if not await self._approve(entry, sig, order, answer, opening=suffix == "open"):
                return

    async def _approve(self, entry: StrategyEntry, sig: LiveSignal, order: dict[str, Any], proposal: dict[str, Any],
                       *, opening: bool) -> bool:
        rid, action = order["request_id"], order["action"]
        pid, quantity = proposal["id"], float(proposal.get("quantity") or 0.0)
        base = {"strategy": entry.name, "con_id": sig.con_id, "symbol": order["symbol"], "proposal_id": pid,
                "action": action, "quantity": quantity, "signal_id": sig.signal_id}
        self.record("strategy_proposal", base, correlation_id=rid)
        self._proposals.append(base)
        now = self.clock.now()
        why = self.guard.approve_refusal(entry, sig, now, opening=opening,
                                         position=self.caps.position(entry.name, sig.con_id), quantity=quantity,
                                         source_hash=self._source_hash(entry.name),
                                         orders_today=self.caps.orders_on(entry.name, now.date().isoformat()))
        if why is not None:
            self.record(EVENT_REFUSED, {**base, "stage": "approve", "reason": why}, correlation_id=rid)
            return False
        self.guard.note_order(entry, sig, now)
        signed = quantity if action == "BUY" else -quantity
        self.caps.sent(pid, entry.name, sig.con_id, signed, now)  # counts toward the caps until it fills
        try:
            await self._trader.call("approve_proposal", pid, request_id=rid, deadline=time.time() + 25.0)
        except Exception as exc:  # noqa: BLE001 - the risk gate refused (or the broker): recorded, nothing held
            self.caps.inflight.pop(int(pid), None)
            self._refused(sig, rid, "approve", exc, proposal_id=pid)
            return False
        k = (entry.name, sig.con_id)
        self.positions[k] = self.positions.get(k, 0.0) + signed
        self.record(EVENT_ORDER, {**base, "signed_quantity": signed}, correlation_id=rid)
        return True

    def _source_hash(self, name: str) -> str:
        live = self.runtime.strategies.get(name)
        return live.source_hash if live is not None else ""

    def _refused(self, sig: LiveSignal, rid: str, stage: str, exc: BaseException, **extra: Any) -> None:
        self.record(EVENT_REFUSED, {"strategy": sig.strategy, "con_id": sig.con_id, "signal_id": sig.signal_id,
                                    "stage": stage, "error": type(exc).__name__, "reason": str(exc), **extra},
                    correlation_id=rid)
