"""trader_service: the only process that talks to the broker.

A thin shell: it wires the broker session (ib_async, to a real IB Gateway/TWS or the simulated gateway), the
risk gate, the executioner (the single order chokepoint), the fill ledger, the audit trail and the tick
publisher, and exposes them as RPC methods (see ``docs``: the trader_service API in CLAUDE.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from trader.broker.adapter import IBBroker
from trader.broker.connection import BrokerSession
from trader.config import TradingFiltersConfig, load_section
from trader.data.audit import AuditWriter
from trader.data.events import EventStore
from trader.data.objects import ObjectStore
from trader.data.store import state_store
from trader.derivatives_handlers import DerivativesHandlers
from trader.discovery_handlers import DiscoveryHandlers
from trader.messaging.pubsub import Publisher
from trader.messaging.rpc import rpcmethod
from trader.order_handlers import OrderHandlers
from trader.risk_handlers import RiskHandlers
from trader.service import Service, latency_summary, run_service
from trader.trading.executioner import Executioner
from trader.trading.groups import GroupMode
from trader.trading.market_hours import session_flags, session_for
from trader.trading.models import Position
from trader.trading.orders import OrderRequest
from trader.trading.quote_scope import shared_now
from trader.trading.risk_gate import GateContext, RiskGate

if TYPE_CHECKING:
    from trader.trading.pipeline_service import ProposalPipeline

log = logging.getLogger(__name__)


class _ObjectStoreContractCache:
    """Contract details cached in memory and written through to DuckDB's object_store (off the event loop).

    Writes are coalesced: a scan that resolves 100 symbols makes one transaction, not 100 (each is a file lock,
    an open and a close of state.duckdb, ~30-300 ms, and they queued in the default executor ahead of other
    work such as the idea scanner's scoring)."""

    PREFIX = "contract:"

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects
        self._mem: dict[str, dict] = {}
        self._pending: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._writing = False

    def load(self) -> None:
        for key in self._objects.keys(self.PREFIX):
            value = self._objects.get(key)
            if isinstance(value, dict):
                self._mem[key[len(self.PREFIX):]] = value

    def get(self, key: str) -> dict | None:
        return self._mem.get(key)

    def put(self, key: str, value: dict) -> None:
        self._mem[key] = value
        with self._lock:
            self._pending[key] = value
            if self._writing:  # the running writer takes it in its next batch
                return
            self._writing = True
        try:
            asyncio.get_running_loop().run_in_executor(None, self._write_pending)
        except RuntimeError:  # no loop (tests): write synchronously
            self._write_pending()

    def _write_pending(self) -> None:
        """Write what is pending in batches until nothing is left (a worker thread)."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, {}
                if not batch:
                    self._writing = False
                    return
            try:
                self._objects.put_many({self.PREFIX + k: v for k, v in batch.items()}, kind="contract")
            except Exception:  # noqa: BLE001 - the memory cache still has them; only persistence is lost
                log.exception("could not store %d contract details", len(batch))


class TraderService(OrderHandlers, RiskHandlers, DiscoveryHandlers, DerivativesHandlers, Service):
    """Broker connection, orders, portfolio, risk gate, proposals."""

    name = "trader_service"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.publisher: Publisher | None = None
        self.session: BrokerSession | None = None
        self.broker: IBBroker | None = None
        self.audit: AuditWriter | None = None
        self.event_store: EventStore | None = None
        self.filters: TradingFiltersConfig = load_section("trading_filters.yaml", TradingFiltersConfig, self.paths)
        self.gate = RiskGate(self.filters)
        self.market_session = session_for(self.config.broker, self.config.sim_calendar)
        self.executioner: Executioner | None = None
        self.pipeline: ProposalPipeline | None = None  # built in on_start
        self._tick_topics: dict[int, str] = {}
        self._tick_refs: dict[int, int] = {}  # listeners per conId: market data is cancelled when it drops to 0
        self._warming: set[asyncio.Task] = set()  # background reads of streamed contracts' daily bars (_warm_sizing)
        self._submitted: deque[datetime] = deque()  # submission times in the rate window (from the event store)
        self._expiry_task: asyncio.Task | None = None
        # Position groups for the risk gate, read once: trader_service is the only writer of position_groups
        # (every `group` command goes through its RPC, which drops this copy), so no order pays a store read.
        self._groups_cache: list[Any] | None = None
        self._groups_reading: asyncio.Future | None = None  # the one read of the groups in flight (_all_groups)

    def rpc_port(self) -> int:
        return self.config.trader_rpc_port

    # --- lifecycle -------------------------------------------------------------------------------
    async def on_start(self) -> None:
        self.publisher = Publisher(self.config.endpoint(self.config.trader_pub_port), security=self.security)
        store = state_store(self.paths.data_dir)
        self.event_store = EventStore(store)
        self.audit = AuditWriter(self.event_store)
        cache = _ObjectStoreContractCache(ObjectStore(store))
        await asyncio.get_running_loop().run_in_executor(None, cache.load)
        if self.config.broker == "sim":
            host, port = "127.0.0.1", self.config.sim_gateway_port
        else:
            host, port = self.config.ib_server_address, self.config.ib_server_port
        self.session = BrokerSession(
            host, port, self.config.ib_client_id, account=self.config.ib_account,
            alarm_after=self.config.disconnect_alarm_seconds,
            events=lambda kind, payload: self.audit.record(kind, payload, source=self.name),
        )
        self.broker = IBBroker(self.session, cache, quote_max_age=self.config.proposal_quote_max_age_seconds)
        self.session.on_ready.append(self.broker.start_pnl)
        self.executioner = Executioner(self.gate, self.broker, self._gate_context, self._audit, self._note)
        await self._start_pipeline(store)
        try:  # read once now: the first bar close's checks (the gate, the what-if) find them
            await self._all_groups()
        except Exception:  # noqa: BLE001 - the first check reads them again and reports what fails
            log.warning("position groups unreadable at start; the first order's checks read them", exc_info=True)
        if self.config.proposal_ttl_minutes:
            self._expiry_task = asyncio.create_task(self._expire_proposals())
        await self._start_order_records(store)
        self.session.ib.pendingTickersEvent += self._on_tickers
        await asyncio.to_thread(self._restore_daily_halt)
        since = datetime.now(UTC) - timedelta(seconds=self.filters.order_window_seconds)
        recent = await asyncio.to_thread(self.event_store.read, kind="order_submitted", since=since)
        self._submitted.extend(e.ts for e in recent)  # the order-rate window survives a restart
        await self.session.start()

    async def on_stop(self) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
        if self.session is not None:
            await self.session.stop()
        if self.publisher is not None:
            self.publisher.close()
        self._stop_order_records()
        if self.audit is not None:
            self.audit.close()

    def endpoints(self) -> dict[str, str]:
        eps = super().endpoints()
        if self.publisher is not None:
            eps["pub"] = self.publisher.address
        return eps

    def details(self) -> dict[str, Any]:
        broker: dict[str, Any] = {"kind": self.config.broker}
        account: dict[str, Any] = {}
        if self.session is not None:
            broker.update(self.session.status())
            if self.session.ready:
                a = self.broker.account()
                account = {"net_liquidation": a.net_liquidation, "cash": a.cash, "daily_pnl": a.daily_pnl,
                           "unrealized_pnl": a.unrealized_pnl, "realized_pnl": a.realized_pnl}
        else:
            broker.update(state="not connected", ready=False, reconciled=False, address=f"{self.config.ib_server_address}:{self.config.ib_server_port}")
        halted = self.gate.halted_day
        out = {"broker": broker, "account": account, "trading_halted_for": halted.isoformat() if halted else None}
        if self.pipeline is not None:  # the last 1000 propose_batch calls: their checks and their store step
            batches = {k: s for k, v in self.pipeline.batch_ms.items() if (s := latency_summary(v))}
            if batches:
                out["propose_batch"] = batches
        return out

    # --- audit + broker events -------------------------------------------------------------------
    async def _audit(self, kind: str, payload: dict[str, Any], *, correlation_id: str | None = None,
                     source: str | None = None) -> None:
        # Durable before the caller goes on: an order is never sent without its record.
        if kind == "order_submitted":
            self._submitted.append(datetime.now(UTC))
        await self.audit.durable(kind, payload, correlation_id=correlation_id, source=source or self.name)

    def _note(self, kind: str, payload: dict[str, Any], *, correlation_id: str | None = None,
              source: str | None = None) -> None:
        if kind == "order_submitted":
            self._submitted.append(datetime.now(UTC))
        self.audit.record(kind, payload, correlation_id=correlation_id, source=source or self.name)

    def _record(self, kind: str, payload: dict[str, Any], correlation_id: str | None = None) -> None:
        self.audit.record(kind, payload, correlation_id=correlation_id, source=self.name)

    def _on_tickers(self, tickers: Any) -> None:
        from trader.broker.convert import ticker_to_quote

        for t in tickers:
            topic = self._tick_topics.get(t.contract.conId)
            if topic and self.publisher is not None:
                self.publisher.publish(topic, {"symbol": t.contract.symbol, "con_id": t.contract.conId,
                                               **ticker_to_quote(t)})

    def _restore_daily_halt(self) -> None:
        """Re-latch the daily-loss stop after a restart (the event store remembers it)."""
        today = self.gate.trading_day(datetime.now(UTC))
        for ev in self.event_store.read(kind="trading_halted", since=datetime.now(UTC) - timedelta(days=1)):
            if ev.payload.get("day") == today.isoformat():
                self.gate.halt_for_day(today)

    # --- LLM pipeline (issue 6): logic in trader.trading.pipeline_service and trader.pipeline ----------
    async def _start_pipeline(self, store: Any) -> None:
        import os

        from trader.config import PositionSizingConfig
        from trader.data.proposals import GroupStore, ProposalStore
        from trader.pipeline import BrokerFacts
        from trader.strategy.guards import approver_key_threshold
        from trader.trading.pipeline_service import ProposalPipeline

        groups = GroupStore(store)
        sizing = load_section("position_sizing.yaml", PositionSizingConfig, self.paths)
        self.facts = BrokerFacts(self.broker, self.session, ObjectStore(store), groups, sizing, self.filters,
                                 groups_list=self._all_groups)

        def events_for(kind: str, correlation_id: str) -> list[dict[str, Any]]:
            return [e.payload for e in self.event_store.read(kind=kind, correlation_id=correlation_id)]

        self.pipeline = ProposalPipeline(
            ProposalStore(store), groups, self.executioner.submit, self.facts, events_for,
            ttl_minutes=self.config.proposal_ttl_minutes or None, group_mode=self.config.group_budget_mode,
            sizer=self.facts.size, risk_delta=self.facts.what_if,
            approver_key=os.environ.get("MMR_APPROVER_KEY") or None,
            approver_key_threshold_usd=approver_key_threshold(self.config),  # live: 10,000 unless set
            max_quantity=self.filters.max_order_quantity, preview=self.executioner.preview,
            on_expired=lambda p: self._record("proposal_expired", {"id": p.id, "symbol": p.symbol},
                                              correlation_id=f"proposal-{p.id}"))
        # The proposal journal's replay: what a crash left journaled but not in proposal_store yet.
        await asyncio.to_thread(self.pipeline.proposals.flush)
        # Proposals left APPROVED by a crash whose order provably never went out fail now; the others are
        # settled against the broker's orders (by orderRef) once it is connected. Never re-submitted.
        for p in await asyncio.to_thread(self.pipeline.recover_unsent):
            self._record("proposal_recovered", {"id": p["id"], "state": p["state"], "reason": p["state_reason"]})
        # A strategy's first bar close then finds the journal created (and seeded) and the what-if's module loaded.
        await asyncio.to_thread(self.pipeline.proposals.journal.prepare)
        import trader.trading.what_if_delta  # noqa: F401 - and portfolio_risk with it

    @rpcmethod
    async def propose(self, symbol: str, action: str, **options: Any) -> dict[str, Any]:
        """Create a proposal (sized automatically without quantity/amount) with its risk preview."""
        options.pop("dry_run", None)  # a preview is propose_preview: this one always stores
        out = await self.pipeline.propose(symbol, action, **options)
        self._record_created([out])
        return out

    @rpcmethod
    async def propose_batch(self, orders: list[dict[str, Any]], brief: bool = False) -> list[dict[str, Any]]:
        """Several proposals at once (a strategy's signals of one bar close), checked like ``propose`` and
        stored in one transaction; per order the stored proposal (``brief``: only its id, state, symbol, action,
        quantity and request id) or ``{"error": {...}}``. At most 500."""
        from trader.errors import InvalidProposal

        if not isinstance(orders, list) or len(orders) > 500 or not all(
                isinstance(o, dict) and isinstance(o.get("symbol"), str) and isinstance(o.get("action"), str)
                and "dry_run" not in o for o in orders):
            raise InvalidProposal("orders must be a list of at most 500 dicts, each with symbol and action")
        out = await self.pipeline.propose_many(orders, brief=bool(brief))
        # Audit events after the answer is sent (call_soon runs after this reply's send): the audit writer thread
        # they wake would otherwise compete with it for the GIL. Stored already means durable (the journal).
        asyncio.get_running_loop().call_soon(self._record_created, out)
        return out

    def _record_created(self, proposals: list[dict[str, Any]]) -> None:
        """A ``proposal_created`` audit event per stored proposal (refusals, ``{"error": …}``, have none)."""
        for o in proposals:
            if "id" in o:
                self._record("proposal_created", {"id": o["id"], "symbol": o["symbol"], "action": o["action"]},
                             correlation_id=f"proposal-{o['id']}")

    @rpcmethod
    async def propose_preview(self, symbol: str, action: str, **options: Any) -> dict[str, Any]:
        """What ``propose`` would store (order checks, sizing, group budget, the risk gate's what-if), storing
        nothing: state ``PREVIEW``, id 0. Raises what ``propose`` would raise."""
        options.pop("dry_run", None)
        return await self.pipeline.propose(symbol, action, **options, dry_run=True)

    @rpcmethod
    async def reject_proposal(self, proposal_id: int, reason: str = "") -> dict[str, Any]:
        """Reject a PENDING (or APPROVED, not yet submitted) proposal (audited: ``proposal_rejected``)."""
        out = await asyncio.to_thread(self.pipeline.reject, proposal_id, reason)
        self._record("proposal_rejected", {"id": out["id"], "symbol": out["symbol"], "reason": reason},
                     correlation_id=f"proposal-{out['id']}")
        return out

    @rpcmethod
    async def groups(self, action: str = "list", name: str | None = None, symbols: list[str] | None = None,
                     budget_pct: float | None = None) -> Any:
        """Position groups: list | show | create | add | remove | set | delete."""
        from trader.trading.groups import group_exposure

        g = self.pipeline.groups
        if action == "list":
            return [self._group_row(x, group_exposure) for x in await asyncio.to_thread(g.list)]
        ops = {"show": lambda: g.get(name), "create": lambda: g.create(name, budget_pct or 0.0, symbols or ()),
               "add": lambda: g.add(name, symbols or ()), "remove": lambda: g.remove(name, symbols or ()),
               "set": lambda: g.set_budget(name, budget_pct), "delete": lambda: g.delete(name)}
        if action not in ops:
            raise ValueError(f"unknown group action {action!r}")
        result = await asyncio.to_thread(ops[action])  # DuckDB work off the event loop
        if action != "show":
            self._groups_cache = self._groups_reading = None
        return {"deleted": name} if action == "delete" else self._group_row(result, group_exposure)

    def _group_row(self, group: Any, exposure: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"name": group.name, "budget_pct": group.budget_pct, "symbols": list(group.symbols)}
        if self.session is not None and self.session.ready:
            used = exposure(group, self.broker.positions())
            nlv = self.broker.account().net_liquidation
            row["used_usd"] = round(used, 2)
            row["used_pct"] = round(used / nlv * 100, 2) if nlv else None
        return row

    @rpcmethod
    async def portfolio_risk(self) -> dict[str, Any]:
        """Exposure, concentration, group compliance and correlation clusters of the current book."""
        return await self.facts.risk_report()

    @rpcmethod
    def portfolio_snapshot(self) -> dict[str, Any]:
        """The compact portfolio state for an agent's context window."""
        return self.facts.snapshot()

    @rpcmethod
    async def portfolio_diff(self, since_key: str = "default") -> dict[str, Any]:
        """What changed since this caller's (``since_key``) previous diff call."""
        current = self.facts.snapshot()  # broker state is read on the loop; only the store work moves off it
        return await asyncio.to_thread(self.facts.diff, since_key, current)

    @rpcmethod
    def session_summary(self) -> dict[str, Any]:
        """Sizing settings, the gate's position limit, remaining daily loss, open-order and order-rate capacity."""
        return self.facts.session_summary(self._orders_in_window())

    # --- gate context ----------------------------------------------------------------------------
    def _gate_book(self) -> tuple[datetime, tuple[Position, ...] | None, int, Any, int]:
        """What every order's gate context reads of the account now: the time, positions, orders in the rate
        window, the market session's flags, open orders. Once per batch of checks (`quote_scope.shared_now`)."""
        now = datetime.now(UTC)
        positions = tuple(self.broker.positions()) if self.session.reconciled else None
        since = now - timedelta(seconds=self.filters.order_window_seconds)
        while self._submitted and self._submitted[0] <= since:
            self._submitted.popleft()
        return (now, positions, len(self._submitted), session_flags(self.market_session, now),
                len(self.session.ib.openTrades()))

    async def _gate_context(self, req: OrderRequest, contract: dict[str, Any], price: float | None) -> GateContext:
        now, positions, in_window, flags, open_orders = shared_now(("gate_book",), self._gate_book)
        halted_before = self.gate.halted_day
        ctx = GateContext(account=self.broker.account(), positions=positions, now=now,
                          open_orders=open_orders, orders_in_window=in_window,
                          regular_open=flags.regular_open, extended_open=flags.extended_open,
                          next_open=flags.next_open, market_price=price,
                          groups=await self._order_groups(req),
                          group_mode=GroupMode(self.config.group_budget_mode),
                          option_right=str(contract.get("right") or ""),
                          expiry=str(contract.get("last_trade_date") or ""),
                          fx_rate=await self.fx_to_base(str(contract.get("currency") or req.currency),
                                                        self.broker.account().currency))
        if halted_before != self.gate.trading_day(now) and ctx.account.daily_pnl is not None \
                and -ctx.account.daily_pnl >= self.filters.max_daily_loss_usd:
            # Durable before the refusal goes out: a restart right after must still find the halt.
            await self.audit.durable("trading_halted", {"day": self.gate.trading_day(now).isoformat(),
                                                        "daily_pnl": ctx.account.daily_pnl}, source=self.name)
        return ctx

    async def _all_groups(self) -> list[Any]:
        """Every position group, from the in-memory copy (read once; the `groups` RPC drops it on a change).
        Concurrent callers (a batch's checks) share one read."""
        if self._groups_cache is not None:
            return self._groups_cache
        reading = self._groups_reading
        if reading is None or reading.done():
            reading = self._groups_reading = asyncio.ensure_future(asyncio.to_thread(self.pipeline.groups.list))
        groups = await asyncio.shield(reading)
        if self._groups_reading is reading:  # not dropped (a `group` change) while it was read
            self._groups_cache = groups
        return groups

    async def _order_groups(self, req: OrderRequest) -> tuple[Any, ...]:
        """The groups an order counts toward: its tag (GroupNotFound if unknown) and every group listing it."""
        from trader.errors import GroupNotFound
        from trader.trading.groups import groups_for_symbol

        groups = await self._all_groups()
        tagged = [g for g in groups if g.name == req.group]
        if req.group and not tagged:
            raise GroupNotFound(f"no position group {req.group!r} (the order is tagged with it)")
        found = {g.name: g for g in (*tagged, *groups_for_symbol(groups, req.symbol))}
        return tuple(found.values())

    async def _expire_proposals(self) -> None:
        """Expire overdue PENDING proposals on a timer, so they expire even when nobody reads them."""
        every = max(1.0, min(60.0, (self.config.proposal_ttl_minutes or 1.0) * 60 / 10))
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(self.pipeline.expire_due)  # each one is audited by on_expired
            except Exception:  # noqa: BLE001 - a busy store must not kill the timer; the next tick retries
                log.exception("proposal expiry sweep failed")

    # --- RPC: reads ------------------------------------------------------------------------------
    @rpcmethod
    async def resolve(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                      currency: str = "USD", **selection: Any) -> dict[str, Any]:
        """Contract details for a symbol; ``selection`` narrows it (expiry, strike, right, multiplier,
        trading_class, local_symbol, con_id). AmbiguousContract lists a few candidates with their flags."""
        return await self.broker.resolve(symbol, sec_type, exchange, currency, **selection)

    @rpcmethod
    async def snapshot(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                       currency: str = "USD", **selection: Any) -> dict[str, Any]:
        """A current quote for a symbol (``selection`` as for ``resolve``)."""
        contract = await self.broker.resolve(symbol, sec_type, exchange, currency, **selection)
        return await self.broker.snapshot_contract(contract)

    @rpcmethod
    async def broker_time(self) -> dict[str, str]:
        """The broker's clock (``reqCurrentTime``) and ours, ISO UTC: the live strategy runtime runs on the broker's
        (a simulated gateway may run accelerated or replay a past day; the real IB answers wall time)."""
        self.session.require_ready(opening=False)
        broker = await asyncio.wait_for(self.session.ib.reqCurrentTimeAsync(), 5.0)
        if not isinstance(broker, datetime):
            raise TypeError(f"reqCurrentTime answered {broker!r}, not a time")
        broker = broker if broker.tzinfo else broker.replace(tzinfo=UTC)
        return {"broker_time": broker.astimezone(UTC).isoformat(), "local_time": datetime.now(UTC).isoformat()}

    @rpcmethod
    def positions(self) -> list[dict[str, Any]]:
        """Positions with stable 1-based row numbers (ordered by symbol)."""
        self.session.require_ready(opening=False)
        rows = []
        for i, p in enumerate(sorted(self.broker.positions(), key=lambda p: (p.symbol, p.con_id)), start=1):
            rows.append({"row": i, "symbol": p.symbol, "con_id": p.con_id, "sec_type": p.sec_type,
                         "exchange": p.exchange, "currency": p.currency, "quantity": p.quantity,
                         "avg_cost": p.avg_cost, "market_price": p.market_price, "market_value": p.market_value,
                         "unrealized_pnl": p.unrealized_pnl, "realized_pnl": p.realized_pnl,
                         "daily_pnl": p.daily_pnl})
        return rows

    @rpcmethod
    def portfolio(self) -> dict[str, Any]:
        """Account summary, positions and totals."""
        rows = self.positions()
        a = self.broker.account()
        values = [r["market_value"] for r in rows if r["market_value"] is not None]
        return {
            "account": {"net_liquidation": a.net_liquidation, "cash": a.cash, "daily_pnl": a.daily_pnl,
                        "realized_pnl": a.realized_pnl, "unrealized_pnl": a.unrealized_pnl,
                        "buying_power": a.buying_power, "currency": a.currency},
            "positions": rows,
            "cash": self.broker.cash_balances(),  # per currency, with its base-currency value (FX, foreign stocks)
            "totals": {"gross_value": sum(abs(v) for v in values), "net_value": sum(values), "count": len(rows)},
        }

    @rpcmethod
    def orders(self) -> list[dict[str, Any]]:
        """Open orders at the broker."""
        self.session.require_ready(opening=False)
        return self.broker.open_orders()

    @rpcmethod
    async def events(self, since_id: int = 0, kind: str | None = None, correlation_id: str | None = None,
                     limit: int = 200, since: str | None = None, newest_first: bool = False) -> list[dict[str, Any]]:
        """The audit trail (``since``: ISO time, events at or after it); an unknown ``kind`` is an
        UnknownEventKind naming the known ones, not an empty list."""
        from trader.data.events import check_event_kind, parse_iso

        if kind is not None:
            check_event_kind(kind, await asyncio.to_thread(self.event_store.kinds))
        found = await asyncio.to_thread(self.event_store.read, since_id=since_id, kind=kind,
                                        correlation_id=correlation_id, limit=limit,
                                        since=parse_iso(since) if since else None, newest_first=newest_first)
        return [{"id": e.id, "ts": e.ts, "kind": e.kind, "correlation_id": e.correlation_id, "source": e.source,
                 "payload": e.payload} for e in found]

    @rpcmethod
    async def subscribe_ticks(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                              currency: str = "USD", con_id: int | None = None) -> dict[str, Any]:
        """Stream a symbol's ticks on the PUB socket under ``ticks.<con_id>.`` (``con_id`` alone also works)."""
        contract = await self._tick_contract(symbol, sec_type, exchange, currency, con_id)
        con_id = int(contract["con_id"])
        topic = f"ticks.{con_id}."
        if con_id not in self._tick_topics:
            self.session.subscribe_market_data(await self.broker.resolver.qualified(contract))
            self._tick_topics[con_id] = topic
            self._warm_sizing(contract)
        self._tick_refs[con_id] = self._tick_refs.get(con_id, 0) + 1
        return {"topic": topic, "con_id": con_id, "symbol": contract["symbol"], "pub": self.publisher.address,
                "listeners": self._tick_refs[con_id]}

    @rpcmethod
    async def unsubscribe_ticks(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                                currency: str = "USD", con_id: int | None = None) -> dict[str, Any]:
        """One listener fewer; the market-data subscription is cancelled when nobody listens any more."""
        contract = await self._tick_contract(symbol, sec_type, exchange, currency, con_id)
        con_id = int(contract["con_id"])
        left = max(0, self._tick_refs.get(con_id, 0) - 1)
        self._tick_refs[con_id] = left
        cancelled = False
        if left == 0 and self._tick_topics.pop(con_id, None) is not None:
            self._tick_refs.pop(con_id, None)
            self.session.unsubscribe_market_data(await self.broker.resolver.qualified(contract))
            cancelled = True
        return {"con_id": con_id, "listeners": left, "market_data_cancelled": cancelled}


    def _warm_sizing(self, contract: dict[str, Any]) -> None:
        """Read a newly streamed contract's daily bars (sizing's ATR/ADV, the what-if) in the background: a strategy
        streams its conIds long before its first bar close, whose proposals then find them cached instead of
        fetching 50 symbols' bars from the broker inside that close (~2-5 s, paced). Advice only: a failure here
        just leaves the read to the first proposal."""
        async def warm() -> None:
            try:
                await self.facts.atr_adv(contract)
            except Exception:  # noqa: BLE001 - the first proposal reads them again and reports what fails
                log.debug("warming the daily bars of conId %s failed", contract.get("con_id"), exc_info=True)

        if contract.get("sec_type", "STK") in ("STK", "FUT", "CASH", "IND", "CFD") and hasattr(self, "facts"):
            task = asyncio.get_running_loop().create_task(warm())
            self._warming.add(task)
            task.add_done_callback(self._warming.discard)

    async def _tick_contract(self, symbol: str, sec_type: str, exchange: str, currency: str,
                             con_id: int | None) -> dict[str, Any]:
        if con_id:  # strategies know their instruments by conId
            self.session.require_ready(opening=False)
            return await self.broker.resolver.resolve(symbol or "", sec_type, exchange, currency, con_id=int(con_id))
        return await self.broker.resolve(symbol, sec_type, exchange, currency)


def main(argv: list[str] | None = None) -> int:
    return run_service(TraderService, argv)


if __name__ == "__main__":
    sys.exit(main())
