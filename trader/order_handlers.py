"""trader_service's order RPCs: every call that can place or cancel an order, exactly once per request id.

Mounted into `trader.trader_service.TraderService` (a mixin, so the service file stays a short list of what
it serves). Each order RPC takes ``request_id`` (the CLI makes one per invocation) and ``deadline`` (epoch
seconds, when the caller stops waiting) and runs through `trader.trading.intents.ExactlyOnce`: recorded in
``order_intents`` before the broker is touched, answered from that record on a retry. Every broker order
carries ``orderRef`` = the correlation id (the request id; ``proposal-<id>`` for approvals; ``<id>.<n>`` for
resize legs). Fills and commissions go to the durable fill ledger; after every (re)connect the broker's orders
and executions are reconciled against these records (`trader.trading.reconcile`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from trader.errors import OrderNotFound, OutcomeUnknown, PositionNotFound
from trader.messaging.rpc import rpcmethod
from trader.trading.fills import FILL_TOPIC, Commission, Fill, FillLedger, FillOutcome
from trader.trading.intents import ExactlyOnce, check_request_id, new_request_id
from trader.trading.models import Action, OrderSource, OrderType
from trader.trading.orders import OrderRequest, resize_plan

log = logging.getLogger(__name__)

_RECORDED = {FillOutcome.NEW, FillOutcome.CORRECTED}
# After an unknown outcome, look at the broker again this much later (the order's status has arrived by then).
_RESETTLE_AFTER = 3.0


class OrderHandlers:
    """Order RPCs, the durable fill ledger and reconciliation (mixin for TraderService)."""

    ledger: FillLedger

    # ------------------------------------------------------------------ wiring (from on_start)
    async def _start_order_records(self, store: Any) -> None:
        from trader.data.order_records import FillStore, Intent, IntentStore
        from trader.trading.reconcile import OrderReconciler

        # One writer thread for intents, fills and reconciliation: their records are written in event order.
        self.records_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="order-records")
        self.intent_store = IntentStore(store)
        self.fill_store = FillStore(store)
        self.once = ExactlyOnce(self.intent_store, Intent, self.records_writer,
                                on_error=lambda rid, err: log.error("could not record request %s: %s", rid, err))
        self.ledger = FillLedger()
        loop = asyncio.get_running_loop()
        stored_fills, stored_commissions = await loop.run_in_executor(
            self.records_writer, lambda: (self.fill_store.fills(), self.fill_store.commissions()))
        for sf in stored_fills:
            self.ledger.add_execution(sf.fill)
        for c in stored_commissions:
            self.ledger.add_commission(c)
        self.reconciler = OrderReconciler(
            self.intent_store, self.pipeline.settle, self.event_store,
            lambda kind, payload, correlation_id=None: self.audit.record(
                kind, payload, correlation_id=correlation_id, source=self.name).result())
        self._reconcile_task: asyncio.Task | None = None
        self.session.on_ready.append(self._schedule_reconcile)
        ib = self.session.ib
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.orderStatusEvent += self._on_order_status

    def _stop_order_records(self) -> None:
        if getattr(self, "records_writer", None) is not None:
            self.records_writer.shutdown(wait=True)

    # ------------------------------------------------------------------ fills
    def _ingest_fill(self, ib_fill: Any, order_ref: str, *, recovered: bool = False) -> None:
        if getattr(ib_fill.contract, "secType", "") == "BAG":
            return  # a combo's own execution (net price); its legs' executions carry the positions and P&L
        ex = ib_fill.execution
        f = Fill(exec_id=ex.execId, order_id=ex.orderId, symbol=ib_fill.contract.symbol,
                 action=Action.BUY if ex.side == "BOT" else Action.SELL, quantity=float(ex.shares),
                 price=float(ex.price), time=ex.time, perm_id=ex.permId, con_id=ib_fill.contract.conId,
                 exchange=ex.exchange, account=ex.acctNumber)
        outcome = self.ledger.add_execution(f)
        if outcome in _RECORDED:  # a duplicate (replayed after a restart) is neither stored nor logged again
            payload = {"outcome": outcome.value, "exec_id": f.exec_id, "order_id": f.order_id, "perm_id": f.perm_id,
                       "symbol": f.symbol, "side": ex.side, "shares": f.quantity, "price": f.price, "time": f.time,
                       **({"recovered": True} if recovered else {})}
            self.records_writer.submit(self._store_with_event, self.fill_store.put_fill, (f, order_ref),
                                       {"recovered": recovered}, "fill", payload, order_ref)
            self._publish_fill_event("fill", payload, order_ref)
        report = getattr(ib_fill, "commissionReport", None)
        if report is not None and getattr(report, "execId", ""):
            self._ingest_commission(report, order_ref)

    def _ingest_commission(self, report: Any, order_ref: str) -> None:
        pnl = report.realizedPNL
        c = Commission(exec_id=report.execId, commission=float(report.commission), currency=report.currency,
                       realized_pnl=pnl if pnl is not None and math.isfinite(pnl) and abs(pnl) < 1e300 else None)
        outcome = self.ledger.add_commission(c)
        if outcome is FillOutcome.DUPLICATE:  # already attached (e.g. re-sent on reconnect): once only
            return
        payload = {"outcome": outcome.value, "exec_id": c.exec_id, "commission": c.commission,
                   "currency": c.currency, "realized_pnl": c.realized_pnl}
        self.records_writer.submit(self._store_with_event, self.fill_store.put_commission, (c,), {},
                                   "commission", payload, order_ref)
        self._publish_fill_event("commission", payload, order_ref)

    def _publish_fill_event(self, kind: str, payload: dict[str, Any], order_ref: str) -> None:
        """The event just queued for the store, also on the PubSub topic ``fills.<kind>`` (as the event rows
        `events` answers: correlation_id and payload): strategy_service keeps its caps current from it without
        reading the store on a bar close. Lossy like every PubSub message; readers read the store as a backstop."""
        publisher = getattr(self, "publisher", None)
        if publisher is not None:
            publisher.publish(f"{FILL_TOPIC}{kind}", {"kind": kind, "correlation_id": order_ref, "payload": payload})

    def _store_with_event(self, put: Any, args: tuple, kwargs: dict, kind: str, payload: dict[str, Any],
                          order_ref: str) -> None:
        """The ledger row and its audit event in one transaction (writer thread): a crash keeps both or
        neither, so a restart never logs a fill or commission twice."""
        try:
            with self.fill_store.store.transaction():
                put(*args, **kwargs)
                self.event_store.append(kind, payload, correlation_id=order_ref or None, source=self.name)
        except Exception:  # noqa: BLE001 - the ledger in memory has it; reconciliation re-stores it after a restart
            log.exception("could not store %s %s", kind, payload.get("exec_id"))

    def _on_exec(self, trade: Any, fill: Any) -> None:
        self._ingest_fill(fill, trade.order.orderRef or fill.execution.orderRef or "")

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        self._ingest_commission(report, trade.order.orderRef or "")

    def _on_order_status(self, trade: Any) -> None:
        st = trade.orderStatus
        self._record("order_status", {"order_id": trade.order.orderId, "perm_id": trade.order.permId,
                                      "symbol": trade.contract.symbol, "status": st.status, "filled": st.filled,
                                      "remaining": st.remaining, "avg_fill_price": st.avgFillPrice},
                     correlation_id=trade.order.orderRef or None)

    # ------------------------------------------------------------------ reconciliation
    def _schedule_reconcile(self, delay: float = 0.0) -> None:
        """Reconcile soon (on every broker ready, and after an unknown outcome); one run at a time."""
        if self._reconcile_task is not None and not self._reconcile_task.done():
            return
        self._reconcile_task = asyncio.get_running_loop().create_task(self._reconcile(delay))

    async def _reconcile(self, delay: float = 0.0) -> dict[str, Any] | None:
        if delay:
            await asyncio.sleep(delay)
        if not self.session.ready:
            return None
        try:
            for f in list(self.session.ib.fills()):  # executions we missed while down (the ledger dedupes)
                self._ingest_fill(f, f.execution.orderRef or "", recovered=True)
            orders = self.broker.order_book()
            busy = set(self.once._inflight)
            summary = await asyncio.get_running_loop().run_in_executor(
                self.records_writer, lambda: self.reconciler.run(orders, busy=busy))
        except Exception:  # noqa: BLE001 - retried on the next ready/unknown outcome; never take the loop down
            log.exception("order reconciliation failed")
            return None
        if any(summary.values()):
            self._record("orders_reconciled", summary)
        return summary

    @rpcmethod
    async def reconcile_now(self) -> dict[str, Any]:
        """Reconcile with the broker now (``mmr reconcile``): its positions, open orders and executions against
        the last book (``book``: what changed) and our order records against the broker's (``orders``)."""
        self.session.require_ready(opening=False)
        book = await self.session.reconcile()
        orders = await self._reconcile()
        return {"book": book, "orders": orders, "differences": any(book.values()) or any((orders or {}).values())}

    # ------------------------------------------------------------------ RPC: order paths
    def _rid(self, request_id: str | None) -> str:
        return check_request_id(request_id) if request_id is not None else new_request_id()

    async def _once(self, kind: str, rid: str, action: Any, **kw: Any) -> Any:
        try:
            return await self.once.run(kind, rid, action, **kw)
        except OutcomeUnknown:
            self._schedule_reconcile(_RESETTLE_AFTER)
            raise

    @rpcmethod
    async def place_order(self, req: OrderRequest, request_id: str | None = None,
                          deadline: float | None = None) -> dict[str, Any]:
        """Validate, gate and place one order, exactly once per ``request_id`` (orderRef = the request id)."""
        if not isinstance(req, OrderRequest):
            raise TypeError(f"place_order takes an OrderRequest, not {type(req).__name__}")
        # A caller that set the request's correlation id (a strategy, a script) named it that way.
        rid = self._rid(request_id if request_id is not None else (req.correlation_id or None))
        req = replace(req, correlation_id=rid)
        return await self._once("place", rid, lambda: self.executioner.submit(req, deadline=deadline),
                                deadline=deadline, source=req.source.value, request=_describe(req))

    @rpcmethod
    async def approve_proposal(self, proposal_id: int, key: str | None = None, request_id: str | None = None,
                               deadline: float | None = None) -> dict[str, Any]:
        """Approve a PENDING proposal and execute it through the executioner, exactly once."""
        pid = int(proposal_id)
        rid = self._rid(request_id)

        async def approve() -> dict[str, Any]:  # audited under the proposal, with the request id that approved it
            self._record("proposal_approve_requested", {"id": pid, "request_id": rid},
                         correlation_id=f"proposal-{pid}")
            return await self.pipeline.approve(pid, key, deadline=deadline)

        return await self._once("approve", rid, approve,
                                deadline=deadline, source="proposal", order_ref=f"proposal-{pid}",
                                proposal_id=pid, request={"proposal_id": pid})

    @rpcmethod
    async def cancel_order(self, order_id: int, request_id: str | None = None,
                           deadline: float | None = None) -> dict[str, Any]:
        """Cancel one open order."""
        oid = int(order_id)

        async def cancel() -> dict[str, Any]:
            status = await self.broker.cancel(oid)
            self._record("order_cancel_requested", {"order_id": oid, "status": status}, correlation_id=rid)
            return {"order_id": oid, "status": status}

        rid = self._rid(request_id)
        return await self._once("cancel", rid, cancel, deadline=deadline, request={"order_id": oid})

    @rpcmethod
    async def cancel_all(self, request_id: str | None = None, deadline: float | None = None) -> dict[str, Any]:
        """Cancel every open order (IB global cancel)."""
        async def cancel_all() -> dict[str, Any]:
            cancelled = await self.broker.cancel_all()
            self._record("orders_cancel_all", {"order_ids": cancelled}, correlation_id=rid)
            return {"cancelled": cancelled}

        rid = self._rid(request_id)
        return await self._once("cancel_all", rid, cancel_all, deadline=deadline)

    @rpcmethod
    async def close_position(self, target: str, quantity: float | None = None, limit_price: float | None = None,
                             request_id: str | None = None, deadline: float | None = None,
                             tif: str = "DAY") -> dict[str, Any]:
        """Close (or reduce) a position by symbol or row number."""
        rid = self._rid(request_id)

        async def close() -> dict[str, Any]:
            req = replace(self._close_request(target, quantity, limit_price, rid), tif=tif)
            return await self.executioner.submit(req, deadline=deadline)

        return await self._once("close", rid, close, deadline=deadline, source=OrderSource.CLI.value,
                                request={"target": str(target), "quantity": quantity, "limit_price": limit_price})

    def _position_row(self, target: str) -> dict[str, Any]:
        rows = self.positions()
        target = str(target).strip()
        if target.isdigit():
            match = [r for r in rows if r["row"] == int(target)]
        else:
            match = [r for r in rows if r["symbol"].upper() == target.upper()]
        if not match:
            raise PositionNotFound(f"no position matches {target!r} (see `mmr positions`)")
        if len(match) > 1:
            raise PositionNotFound(f"{target!r} matches {len(match)} positions; close by row number")
        return match[0]

    def _close_request(self, target: str, quantity: float | None, limit_price: float | None,
                       rid: str) -> OrderRequest:
        pos = self._position_row(target)
        held = abs(pos["quantity"])
        qty = held if quantity is None else float(quantity)
        if not (math.isfinite(qty) and 0 < qty <= held):
            raise ValueError(f"quantity must be between 0 and the {held:g} held, got {qty:g}")
        return OrderRequest(
            symbol=pos["symbol"], action=Action.SELL if pos["quantity"] > 0 else Action.BUY, quantity=qty,
            order_type=OrderType.LIMIT if limit_price is not None else OrderType.MARKET, limit_price=limit_price,
            con_id=pos["con_id"], sec_type=pos["sec_type"], exchange="SMART" if pos["sec_type"] in ("STK", "OPT")
            else pos["exchange"], currency=pos["currency"], source=OrderSource.CLI, correlation_id=rid,
        )

    @rpcmethod
    async def resize_positions(self, max_bound: float | None = None, min_bound: float | None = None,
                               dry_run: bool = False, tif: str = "DAY", request_id: str | None = None,
                               deadline: float | None = None) -> dict[str, Any]:
        """Scale every position proportionally toward a total value between the bounds (legs: ``<id>.<n>``), each
        leg a market order with time in force ``tif``."""
        self.session.require_ready(opening=False)
        positions = self.broker.positions()
        plan = resize_plan(positions, max_bound=max_bound, min_bound=min_bound)
        total = sum(abs(p.market_value or 0.0) for p in positions)
        out = {"total_before": total, "max_bound": max_bound, "min_bound": min_bound,
               "plan": [{"symbol": o.symbol, "action": o.action.value, "quantity": o.quantity,
                         "current_quantity": o.current_quantity, "target_quantity": o.target_quantity}
                        for o in plan],
               "results": []}
        if dry_run:
            return out
        rid = self._rid(request_id)
        by_symbol = {p.symbol: p for p in positions}

        async def resize() -> dict[str, Any]:
            for n, o in enumerate(plan):
                p = by_symbol[o.symbol]
                req = OrderRequest(symbol=o.symbol, action=o.action, quantity=o.quantity, con_id=p.con_id,
                                   sec_type=p.sec_type, currency=p.currency, source=OrderSource.CLI, tif=tif,
                                   correlation_id=f"{rid}.{n}")
                try:
                    out["results"].append(await self.executioner.submit(req, deadline=deadline))
                except OutcomeUnknown:
                    raise
                except Exception as exc:  # report each leg; one refusal must not hide the others
                    out["results"].append({"symbol": o.symbol,
                                           "error": {"type": type(exc).__name__, "message": str(exc)}})
            out["order_ids"] = [i for r in out["results"] for i in r.get("order_ids", ())]
            return out

        return await self._once("resize", rid, resize, deadline=deadline, source=OrderSource.CLI.value,
                                request={"max_bound": max_bound, "min_bound": min_bound, "tif": tif})

    # ------------------------------------------------------------------ RPC: order control (issue 14)
    @rpcmethod
    async def protect_position(self, target: str, stop: float | None = None, trailing_pct: float | None = None,
                               take_profit: float | None = None, quantity: float | None = None, tif: str = "GTC",
                               request_id: str | None = None, deadline: float | None = None) -> dict[str, Any]:
        """Protective exits for a held position: a stop (or a trailing stop) and optionally a take-profit, in one
        OCA group (one fill cancels the other), GTC by default, full quantity by default. Each exit goes through
        the executioner (legs ``<id>.<n>``); they reduce the position, so the risk gate never blocks them."""
        if (stop is None) == (trailing_pct is None):
            raise ValueError("give exactly one of a stop price and a trailing percent")
        rid = self._rid(request_id)

        async def protect() -> dict[str, Any]:
            pos = self._position_row(target)
            held = abs(pos["quantity"])
            qty = held if quantity is None else float(quantity)
            if not (math.isfinite(qty) and 0 < qty <= held):
                raise ValueError(f"quantity must be between 0 and the {held:g} held, got {qty:g}")
            long = pos["quantity"] > 0
            if stop is not None and take_profit is not None and (stop >= take_profit if long else stop <= take_profit):
                side = "below" if long else "above"
                raise ValueError(f"the stop {stop:g} must be {side} the take-profit {take_profit:g}")
            base = dict(symbol=pos["symbol"], action=Action.SELL if long else Action.BUY, quantity=qty,
                        con_id=pos["con_id"], sec_type=pos["sec_type"], currency=pos["currency"], tif=tif,
                        exchange="SMART" if pos["sec_type"] in ("STK", "OPT") else pos["exchange"],
                        source=OrderSource.CLI, oca_group=f"protect-{rid}" if take_profit is not None else "")
            legs = [OrderRequest(order_type=OrderType.STOP, stop_price=stop, **base) if stop is not None else
                    OrderRequest(order_type=OrderType.TRAILING_STOP, trailing_percent=trailing_pct, **base)]
            if take_profit is not None:
                legs.append(OrderRequest(order_type=OrderType.LIMIT, limit_price=take_profit, **base))
            return await self._submit_legs(rid, legs, deadline, {"symbol": pos["symbol"], "quantity": qty})

        return await self._once("protect", rid, protect, deadline=deadline, source=OrderSource.CLI.value,
                                request={"target": str(target), "stop": stop, "trailing_pct": trailing_pct,
                                         "take_profit": take_profit, "quantity": quantity, "tif": tif})

    async def _submit_legs(self, rid: str, legs: list[OrderRequest], deadline: float | None,
                           out: dict[str, Any]) -> dict[str, Any]:
        """Submit each leg through the executioner as ``<rid>.<n>``; one refusal is reported, not hidden."""
        out["results"] = []
        for n, req in enumerate(legs):
            try:
                out["results"].append(await self.executioner.submit(replace(req, correlation_id=f"{rid}.{n}"),
                                                                    deadline=deadline))
            except OutcomeUnknown:
                raise
            except Exception as exc:  # report each leg; one refusal must not hide the others
                out["results"].append({"symbol": req.symbol,
                                       "error": {"type": type(exc).__name__, "message": str(exc)}})
        out["order_ids"] = [i for r in out["results"] for i in r.get("order_ids", ())]
        out["failed"] = sum(1 for r in out["results"] if "error" in r)
        return out

    @rpcmethod
    async def order_to_market(self, order_id: int, request_id: str | None = None,
                              deadline: float | None = None) -> dict[str, Any]:
        """Turn a working order into a market order (same order id and orderRef), through the executioner: its
        remaining quantity passes the same holding check and risk gate as a new market order would."""
        oid = int(order_id)
        rid = self._rid(request_id)

        async def to_market() -> dict[str, Any]:
            row = next((r for r in self.broker.open_orders() if r["order_id"] == oid), None)
            if row is None:
                raise OrderNotFound(f"no working order {oid} (see `mmr orders`)")
            sec_type = row.get("sec_type") or "STK"
            req = OrderRequest(symbol=row["symbol"], action=Action(row["action"]), quantity=row["remaining"],
                               con_id=row["con_id"], sec_type=sec_type, currency=row.get("currency") or "USD",
                               tif=row.get("tif") if row.get("tif") in ("DAY", "GTC") else "DAY",
                               modify_order_id=oid, source=OrderSource.CLI, correlation_id=rid)
            return {**await self.executioner.submit(req, deadline=deadline), "modified_order_id": oid,
                    "order_ref": row.get("order_ref")}

        return await self._once("to_market", rid, to_market, deadline=deadline, source=OrderSource.CLI.value,
                                request={"order_id": oid})

    @rpcmethod
    async def close_all_positions(self, dry_run: bool = False, tif: str = "DAY", request_id: str | None = None,
                                  deadline: float | None = None) -> dict[str, Any]:
        """One market order per position, closing it, through the executioner (legs ``<id>.<n>``)."""
        self.session.require_ready(opening=False)
        rows = [r for r in self.positions() if r["quantity"]]
        plan = [{"symbol": r["symbol"], "action": "SELL" if r["quantity"] > 0 else "BUY",
                 "quantity": abs(r["quantity"])} for r in rows]
        if dry_run:
            return {"plan": plan, "dry_run": True}
        rid = self._rid(request_id)

        async def close_all() -> dict[str, Any]:
            legs = [replace(self._close_request(str(r["row"]), None, None, rid), tif=tif) for r in rows]
            return await self._submit_legs(rid, legs, deadline, {"plan": plan})

        return await self._once("close_all", rid, close_all, deadline=deadline, source=OrderSource.CLI.value,
                                request={"positions": len(plan)})

    # ------------------------------------------------------------------ RPC: reads
    @rpcmethod
    async def order_intent(self, request_id: str) -> dict[str, Any]:
        """What became of a request id: its state, result or error, and order ids."""
        rid = check_request_id(request_id)
        found = await asyncio.get_running_loop().run_in_executor(
            self.records_writer, lambda: self.intent_store.get(rid))
        if found is None:
            raise OrderNotFound(f"no request {rid} was recorded (it never reached trader_service: safe to retry)")
        out = found.to_dict()
        out["running"] = rid in self.once._inflight
        return out

    @rpcmethod
    def trades(self, limit: int = 100) -> list[dict[str, Any]]:
        """Fills, newest first, with commissions attached (execution corrections replace earlier fills)."""
        rows = []
        for f in self.ledger.fills():
            rows.append({"exec_id": f.exec_id, "order_id": f.order_id, "perm_id": f.perm_id, "symbol": f.symbol,
                         "con_id": f.con_id, "side": "BOT" if f.action is Action.BUY else "SLD",
                         "shares": f.quantity, "price": f.price, "time": f.time, "commission": f.commission,
                         "realized_pnl": f.realized_pnl})
        # Newest first; fills in the same instant by order id (the later order first); fills without a time last.
        rows.sort(key=lambda r: (r["time"] is not None, r["time"] or 0, r["order_id"] or 0), reverse=True)
        return rows[: max(0, min(int(limit), 10_000))]


def _describe(req: OrderRequest) -> dict[str, Any]:
    return {"symbol": req.symbol, "action": req.action.value, "quantity": req.quantity, "amount": req.amount,
            "order_type": req.order_type.value, "limit_price": req.limit_price, "source": req.source.value}
