"""The broker session: one ``ib_async.IB`` connection, kept alive and honest.

- Connects with the configured clientId; on a socket drop (``disconnectedEvent``) or an upstream loss reported
  by IB (1100, 2110) the state becomes DISCONNECTED; it reconnects with capped exponential backoff.
- After every (re)connect it *reconciles*: positions, open orders and executions are fetched with timeouts.
  A failed or timed-out query is never read as "flat" or "no orders": the last known book is kept, the session
  stays not-ready, and reconciliation is retried. Until it succeeds, opening orders are refused.
- Market-data subscriptions are remembered and re-requested after a reconnect or IB's 1101 (data lost).
- Being disconnected longer than ``alarm_after`` seconds raises an alarm: shown in ``status()``, recorded through
  the event sink and logged at ERROR — never silence.

The session is the same code for a real IB Gateway/TWS and for MMR's simulated gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trader.broker.ib_errors import classify
from trader.errors import MMRError
from trader.objects import BrokerState

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]


class BrokerNotReady(MMRError):
    """The broker cannot take this order now (disconnected, or the book is not reconciled yet)."""


@dataclass
class BookSnapshot:
    """What the broker last told us: positions (conId → qty, avg cost), open orders (permId → summary)."""

    positions: dict[int, tuple[float, float]] = field(default_factory=dict)
    open_orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    exec_ids: set[str] = field(default_factory=set)


@dataclass
class _Backoff:
    initial: float = 0.5
    cap: float = 30.0
    current: float = 0.0

    def next(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.cap, self.current * 2)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class BrokerSession:
    """Connection manager around ``ib_async.IB``."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: int,
        *,
        account: str = "",
        alarm_after: float = 60.0,
        connect_timeout: float = 5.0,
        sync_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_cap: float = 30.0,
        events: EventSink | None = None,
    ) -> None:
        from ib_async import IB

        self.host, self.port, self.client_id, self.account = host, port, client_id, account
        self.alarm_after = alarm_after
        self.connect_timeout = connect_timeout
        self.sync_timeout = sync_timeout
        self.ib = IB()
        self.state = BrokerState.NOT_CONNECTED
        self.reconciled = False
        self.book = BookSnapshot()
        self.last_error: dict[str, Any] | None = None
        self.recent_errors: list[dict[str, Any]] = []
        self.connected_since: float | None = None
        self.disconnected_since: float | None = time.time()
        self.reconnects = 0
        self._ever_connected = False
        self.alarm = False
        self._events = events or (lambda kind, payload: None)
        self._backoff = _Backoff(backoff_initial, backoff_cap)
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._lost = asyncio.Event()
        self._upstream_lost = False
        self._subscriptions: dict[int, Any] = {}  # conId -> Contract we stream market data for
        # Called after every successful (re)connect + reconciliation (e.g. re-request the P&L subscription,
        # which ib_async forgets on disconnect).
        self.on_ready: list[Callable[[], None]] = []
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected
        # Keep the local book current while connected: ib_async clears its state *before* it reports a
        # disconnect, so the book to reconcile against must already be ours.
        self.ib.orderStatusEvent += self._refresh_book
        self.ib.execDetailsEvent += self._refresh_book
        self.ib.positionEvent += self._refresh_book

    # --- public ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the connect/reconnect loop in the background."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="broker-session")

    async def stop(self) -> None:
        """Disconnect and stop reconnecting."""
        self._stopping = True
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.ib.isConnected():
            self.ib.disconnect()
        self.state = BrokerState.NOT_CONNECTED

    @property
    def ready(self) -> bool:
        """Connected, upstream up, and the book reconciled: orders may be sent."""
        return self.state is BrokerState.CONNECTED and self.reconciled and not self._upstream_lost

    def require_ready(self, *, opening: bool = True) -> None:
        """Raise ``BrokerNotReady`` with the reason when an order must not be sent now.

        Reducing orders need a live connection too, but not a reconciled book."""
        if self.state is not BrokerState.CONNECTED or self._upstream_lost or not self.ib.isConnected():
            since = self.disconnected_since
            for_s = f" for {time.time() - since:.0f} s" if since else ""
            alarm = " (ALARM: disconnected longer than allowed)" if self.alarm else ""
            raise BrokerNotReady(
                f"broker not connected{for_s}{alarm}: {self.host}:{self.port} clientId {self.client_id}; "
                f"nothing was sent to it"
            )
        if opening and not self.reconciled:
            raise BrokerNotReady("broker book not reconciled yet (positions/orders query pending); opening orders refused")

    def status(self) -> dict[str, Any]:
        """Connection state for ``status`` (JSON-able)."""
        now = time.time()
        self._check_alarm(now)
        return {
            "state": self.state.value,
            "ready": self.ready,
            "reconciled": self.reconciled,
            "upstream_lost": self._upstream_lost,
            "address": f"{self.host}:{self.port}",
            "client_id": self.client_id,
            "connected_for_s": round(now - self.connected_since, 1) if self.connected_since else None,
            "disconnected_for_s": round(now - self.disconnected_since, 1) if self.disconnected_since else None,
            "alarm": self.alarm,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            # IB messages seen lately, each classified: advisory (farm OK, delayed data …) vs the rest
            "recent_errors": self.recent_errors[-10:],
        }

    def subscribe_market_data(self, contract: Any, generic_ticks: str = "") -> Any:
        """Stream market data for a qualified contract; remembered and re-requested after reconnects."""
        self._subscriptions[contract.conId] = contract
        return self.ib.reqMktData(contract, generic_ticks, False, False)

    def streamed_ticker(self, con_id: int) -> Any | None:
        """The ib_async ticker of a conId this session streams (`subscribe_market_data`) while the connection and
        IB's upstream are up, else None. (A snapshot request shares the same Ticker object, so only a
        subscription counts: a snapshot-only ticker is not kept current.)"""
        contract = self._subscriptions.get(int(con_id))
        if contract is None or self.state is not BrokerState.CONNECTED or self._upstream_lost \
                or not self.ib.isConnected():
            return None
        return self.ib.ticker(contract)

    def unsubscribe_market_data(self, contract: Any) -> None:
        self._subscriptions.pop(contract.conId, None)
        if self.ib.isConnected():
            self.ib.cancelMktData(contract)

    # --- internals ---------------------------------------------------------------------------------
    def _record(self, kind: str, **payload: Any) -> None:
        try:
            self._events(kind, payload)
        except Exception:  # the audit sink must never take the connection down
            log.exception("could not record broker event %s", kind)

    def _set_state(self, state: BrokerState) -> None:
        if state is self.state:
            return
        prev, self.state = self.state, state
        now = time.time()
        if state is BrokerState.CONNECTED:
            self.connected_since, self.disconnected_since, self.alarm = now, None, False
        elif prev is BrokerState.CONNECTED:
            self.connected_since, self.disconnected_since = None, now
        self._record("broker_state", state=state.value, previous=prev.value)
        log.info("broker %s → %s", prev.value, state.value)

    def _check_alarm(self, now: float) -> None:
        if self.disconnected_since and not self.alarm and now - self.disconnected_since > self.alarm_after:
            self.alarm = True
            msg = f"broker disconnected for {now - self.disconnected_since:.0f} s (> {self.alarm_after:.0f} s)"
            log.error(msg)
            self._record("broker_alarm", message=msg)

    def _on_disconnected(self) -> None:
        if self.state is BrokerState.CONNECTED:
            self._set_state(BrokerState.DISCONNECTED)
        self.reconciled = False
        self._lost.set()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        info = classify(code)
        err = {"code": code, "name": info.name, "message": message, "req_id": req_id, "severity": info.severity,
               "advisory": info.severity == "advisory", "time": time.time()}
        self.recent_errors = (self.recent_errors + [err])[-50:]
        if info.severity != "advisory":
            self.last_error = err
        if code in (1100, 2110):  # connectivity between IB and its servers lost: the socket may stay up
            self._upstream_lost = True
            self._set_state(BrokerState.DISCONNECTED)
            self._record("broker_upstream_lost", code=code, message=message)
        elif code in (1101, 1102):  # restored; 1101 = market data lost, must re-subscribe
            self._upstream_lost = False
            if self.ib.isConnected():
                self._set_state(BrokerState.CONNECTED)
            self._record("broker_upstream_restored", code=code, message=message, data_lost=code == 1101)
            if code == 1101:
                self._resubscribe()

    def _resubscribe(self) -> None:
        for contract in list(self._subscriptions.values()):
            try:
                self.ib.cancelMktData(contract)
            except Exception:  # a stale subscription id on the server side is harmless here
                pass
            self.ib.reqMktData(contract, "", False, False)
        if self._subscriptions:
            self._record("market_data_resubscribed", con_ids=sorted(self._subscriptions))

    async def _run(self) -> None:
        while not self._stopping:
            try:
                self._set_state(BrokerState.CONNECTING if self.state is not BrokerState.DISCONNECTED else self.state)
                await self.ib.connectAsync(
                    self.host, self.port, clientId=self.client_id, timeout=self.connect_timeout,
                    account=self.account, raiseSyncErrors=True,
                )
                self._lost.clear()
                self._upstream_lost = False
                self._set_state(BrokerState.CONNECTED)
                if self._ever_connected:
                    self.reconnects += 1
                self._ever_connected = True
                await self._reconcile_until_done()
                if self._subscriptions:
                    self._resubscribe()
                for hook in self.on_ready:
                    try:
                        hook()
                    except Exception:  # a hook must not take the connection down
                        log.exception("on_ready hook failed")
                self._backoff.reset()
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, timed out, sync failed: retry with backoff
                self.last_error = {"code": None, "message": f"{type(exc).__name__}: {exc}", "time": time.time()}
                log.warning("broker connect to %s:%s failed: %s", self.host, self.port, exc)
                if self.ib.isConnected():
                    self.ib.disconnect()
                if self.state is BrokerState.CONNECTED:
                    self._set_state(BrokerState.DISCONNECTED)
            if self._stopping:
                break
            delay = self._backoff.next()
            self._check_alarm(time.time())
            await asyncio.sleep(delay)

    async def _reconcile_until_done(self) -> None:
        """Reconcile, retrying with backoff while connected; never mark the book flat on failure."""
        backoff = _Backoff(self._backoff.initial, self._backoff.cap)
        while self.ib.isConnected() and not self._stopping:
            try:
                await self.reconcile()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.reconciled = False
                self._record("reconcile_failed", error=f"{type(exc).__name__}: {exc}")
                log.warning("reconciliation failed (%s); opening orders refused until it succeeds", exc)
                await asyncio.sleep(backoff.next())

    def _refresh_book(self, *_: Any) -> None:
        if not self.reconciled or not self.ib.isConnected():
            return
        self.book = BookSnapshot(
            positions={p.contract.conId: (float(p.position), float(p.avgCost)) for p in self.ib.positions()
                       if p.position},
            open_orders={t.order.permId: _order_summary(t) for t in self.ib.openTrades() if t.order.permId},
            exec_ids={f.execution.execId for f in self.ib.fills()} | self.book.exec_ids,
        )

    async def reconcile(self) -> dict[str, Any]:
        """Fetch positions, open orders and executions (with timeouts) and record differences to the last book."""
        t = self.sync_timeout
        positions = await asyncio.wait_for(self.ib.reqPositionsAsync(), t)
        trades = await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), t)
        fills = await asyncio.wait_for(self.ib.reqExecutionsAsync(), t)
        new = BookSnapshot(
            positions={p.contract.conId: (float(p.position), float(p.avgCost)) for p in positions if p.position},
            open_orders={tr.order.permId: _order_summary(tr) for tr in trades},
            exec_ids={f.execution.execId for f in fills},
        )
        diff = _book_diff(self.book, new)
        self.book = new
        self.reconciled = True
        self._record("reconciled", **diff, positions=len(new.positions), open_orders=len(new.open_orders))
        if any(diff.values()):
            log.warning("reconciliation found differences: %s", diff)
        return diff


def _order_summary(trade: Any) -> dict[str, Any]:
    return {"order_id": trade.order.orderId, "symbol": trade.contract.symbol, "action": trade.order.action,
            "quantity": float(trade.order.totalQuantity), "status": trade.orderStatus.status}


def _book_diff(old: BookSnapshot, new: BookSnapshot) -> dict[str, Any]:
    changed = {
        str(cid): {"was": old.positions.get(cid, (0.0, 0.0))[0], "now": new.positions.get(cid, (0.0, 0.0))[0]}
        for cid in set(old.positions) | set(new.positions)
        if old.positions.get(cid, (0.0, 0.0))[0] != new.positions.get(cid, (0.0, 0.0))[0]
    }
    return {
        "position_changes": changed,
        "orders_gone": sorted(set(old.open_orders) - set(new.open_orders)),
        "orders_new": sorted(set(new.open_orders) - set(old.open_orders)),
        "new_executions": sorted(new.exec_ids - old.exec_ids),
    }
