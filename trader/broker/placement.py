"""Order placement through ib_async: build IB orders from ``OrderRequest``s, place, wait, cancel.

Only the executioner calls this (after validation and the risk gate). Every wait has a timeout.

Brackets are transactional. The legs go out as: entry (``transmit=False``), take-profit (child,
``transmit=False``), a round trip to the gateway (``reqOpenOrders``) so any rejection of a staged leg has arrived,
then the stop-loss (child, ``transmit=True``) whose transmit flushes all three. If any leg is rejected, every
other leg is cancelled and confirmed cancelled before ``OrderRejected`` names the failed leg — while the legs are
still staged no market exposure can exist. (A real gateway may, rarely, reject a staged leg only once the group
transmits; then the others are cancelled as soon as the rejection arrives and the error says whether the entry
had already filled.)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ib_async import IB, Contract, Order, Trade
from ib_async.util import UNSET_DOUBLE

from trader.broker.convert import num, ticker_to_quote
from trader.broker.ib_errors import classify
from trader.errors import OrderNotFound, OrderRejected
from trader.trading.models import OrderType
from trader.trading.orders import OrderRequest

log = logging.getLogger(__name__)

__all__ = ["PlacementResult", "OrderPlacer", "ACK_STATUSES", "DEAD_STATUSES"]

ACK_STATUSES = frozenset({"Submitted", "PreSubmitted", "Filled"})
# A status an order can reach without being accepted: a rejection (or a cancel before the ack).
DEAD_STATUSES = frozenset({"Cancelled", "ApiCancelled", "Inactive"})
_DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
_QUOTE_KEYS = ("time", "last_time", "bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume", "close",
               "open", "high", "low")


@dataclass(frozen=True, slots=True)
class PlacementResult:
    """What the broker said about one placement. For a bracket the first order id is the entry's and
    ``status``/``filled``/``avg_fill_price`` describe the entry; ``leg_statuses`` has every leg's status."""

    order_ids: tuple[int, ...]
    perm_ids: tuple[int, ...]
    status: str
    filled: float
    avg_fill_price: float | None
    error_codes: tuple[int, ...] = ()
    error_messages: tuple[str, ...] = ()
    leg_statuses: tuple[str, ...] = ()


def _errors(trade: Trade) -> list[tuple[int, str]]:
    """(code, message) of every IB error/warning logged on a trade (202 'cancelled' is not an error here)."""
    return [(e.errorCode, e.message) for e in trade.log if e.errorCode and e.errorCode != 202]


def _rejection(trade: Trade, *, staged: bool = False) -> tuple[int, str] | None:
    """(code, message) when ``trade`` was refused: it died before any ack, or IB sent an order-rejection code.

    ``staged``: the order was sent with transmit=False, which a gateway may report as Inactive without any
    error — only an error or a cancel counts then.
    """
    status = trade.orderStatus.status
    errors = _errors(trade)
    rejected = [e for e in errors if classify(e[0]).severity == "order_rejected"]
    dead = DEAD_STATUSES - {"Inactive"} if staged and not errors else DEAD_STATUSES
    if status in dead and not trade.fills:
        code, message = (rejected or errors or [(0, f"order ended {status} before it was accepted")])[-1]
        return code, message
    if rejected and status not in ACK_STATUSES and not trade.fills:
        return rejected[-1]
    return None


def _result(trades: list[Trade]) -> PlacementResult:
    entry = trades[0]
    errors = [e for t in trades for e in _errors(t)]
    return PlacementResult(
        order_ids=tuple(t.order.orderId for t in trades),
        perm_ids=tuple(int(t.order.permId or t.orderStatus.permId or 0) for t in trades),
        status=entry.orderStatus.status,
        filled=float(entry.filled()),
        avg_fill_price=num(entry.orderStatus.avgFillPrice) or None,
        error_codes=tuple(c for c, _ in errors),
        error_messages=tuple(m for _, m in errors),
        leg_statuses=tuple(t.orderStatus.status for t in trades),
    )


class OrderPlacer:
    """Places, waits for and cancels orders on one ``ib_async.IB`` (see module doc)."""

    def __init__(self, ib: IB, *, ack_timeout: float = 5.0, cancel_timeout: float = 5.0,
                 snapshot_timeout: float = 5.0) -> None:
        self.ib = ib
        self.ack_timeout = ack_timeout
        self.cancel_timeout = cancel_timeout
        self.snapshot_timeout = snapshot_timeout

    # ------------------------------------------------------------------ building
    @staticmethod
    def build_order(req: OrderRequest, quantity: float) -> Order:
        """The ib_async ``Order`` for ``req``: type and prices, its time in force (DAY unless asked), outsideRth
        only when asked, orderRef = the correlation id (so fills can be traced back to the request), and its
        OCA group when it is one of several protective exits."""
        o = Order(action=req.action.value, totalQuantity=float(quantity), orderType=req.order_type.value,
                  tif=req.tif or "DAY", outsideRth=bool(req.outside_rth), orderRef=req.correlation_id)
        if req.oca_group:
            o.ocaGroup, o.ocaType = req.oca_group, 1  # 1: cancel the others when one fills
        t = req.order_type
        if t in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            o.lmtPrice = float(req.limit_price)  # type: ignore[arg-type]
        if t in (OrderType.STOP, OrderType.STOP_LIMIT):
            o.auxPrice = float(req.stop_price)  # type: ignore[arg-type]
        if t is OrderType.TRAILING_STOP:
            if req.trailing_percent is not None:
                o.trailingPercent = float(req.trailing_percent)
            else:
                o.auxPrice = float(req.trailing_amount)  # type: ignore[arg-type]  # IB: trail amount in auxPrice
            if req.stop_price is not None:
                o.trailStopPrice = float(req.stop_price)  # the initial stop; IB computes it when unset
        return o

    # ------------------------------------------------------------------ waiting
    async def _wait(self, cond: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``cond()`` holds, re-checking on every order status, error or fill; False on timeout."""
        if cond():
            return True
        wake = asyncio.Event()

        def poke(*_: Any) -> None:
            wake.set()

        events = (self.ib.orderStatusEvent, self.ib.errorEvent, self.ib.execDetailsEvent, self.ib.openOrderEvent)
        for ev in events:
            ev += poke
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while not cond():
                left = deadline - loop.time()
                if left <= 0:
                    return False
                wake.clear()
                try:
                    # the short cap re-checks even if a change arrives through a path that emits no event
                    await asyncio.wait_for(wake.wait(), min(left, 0.1))
                except TimeoutError:
                    pass
            return True
        finally:
            for ev in events:
                ev -= poke

    async def _barrier(self) -> None:
        """A round trip to the gateway: every message it sent before our request has been handled after this."""
        try:
            await asyncio.wait_for(self.ib.reqOpenOrdersAsync(), self.ack_timeout)
        except TimeoutError:
            log.warning("open-orders round trip timed out after %.1f s", self.ack_timeout)

    # ------------------------------------------------------------------ single orders
    async def place(self, contract: Contract, req: OrderRequest, quantity: float, *,
                    wait_fill: float = 2.0) -> PlacementResult:
        """Place one order; wait for the ack (raise ``OrderRejected`` on a rejection), then for a market order
        wait up to ``wait_fill`` s for the fill. A slow ack or fill is reported in the result, never raised."""
        trade = self.ib.placeOrder(contract, self.build_order(req, quantity))
        acked = await self._wait(
            lambda: trade.orderStatus.status in ACK_STATUSES or _rejection(trade) is not None, self.ack_timeout)
        rejected = _rejection(trade)
        if rejected is not None:
            raise OrderRejected(rejected[0], rejected[1])
        if not acked:
            log.warning("order %s: no acknowledgement within %.1f s (status %s)", trade.order.orderId,
                        self.ack_timeout, trade.orderStatus.status)
        if req.order_type is OrderType.MARKET and wait_fill > 0:
            await self._wait(trade.isDone, wait_fill)
        return _result([trade])

    async def to_market(self, order_id: int, *, wait_fill: float = 2.0) -> PlacementResult:
        """Modify a working order into a market order (same order id, quantity and orderRef); wait for the ack
        and up to ~2 s for the fill like any market order. ``OrderNotFound`` when unknown or already done."""
        trade = self._find(int(order_id))
        if trade.isDone():
            raise OrderNotFound(f"order {order_id} is {trade.orderStatus.status}: nothing to modify")
        o = trade.order
        o.orderType = "MKT"
        o.lmtPrice = o.auxPrice = UNSET_DOUBLE
        o.trailingPercent = o.trailStopPrice = UNSET_DOUBLE
        if o.tif not in ("DAY", "GTC", "IOC"):
            o.tif = "DAY"
        trade = self.ib.placeOrder(trade.contract, o)
        # it was already acknowledged: wait for the fill (or a rejection of the change), as for a market order
        await self._wait(lambda: trade.isDone() or _rejection(trade) is not None, wait_fill)
        rejected = _rejection(trade)
        if rejected is not None:
            raise OrderRejected(rejected[0], rejected[1])
        return _result([trade])

    # ------------------------------------------------------------------ brackets
    def _bracket_orders(self, req: OrderRequest, quantity: float) -> tuple[Order, Order, Order]:
        entry = self.build_order(req, quantity)
        entry.orderId = self.ib.client.getReqId()
        entry.transmit = False
        exit_action = "SELL" if req.action.value == "BUY" else "BUY"
        oca = f"mmr-{entry.orderId}-{uuid.uuid4().hex[:8]}"
        common = dict(action=exit_action, totalQuantity=float(quantity), tif=req.exit_tif, parentId=entry.orderId,
                      outsideRth=bool(req.outside_rth), orderRef=req.correlation_id, ocaGroup=oca, ocaType=1)
        take_profit = Order(orderId=self.ib.client.getReqId(), orderType="LMT", lmtPrice=float(req.take_profit),
                            transmit=False, **common)  # type: ignore[arg-type]
        stop_loss = Order(orderId=self.ib.client.getReqId(), orderType="STP", auxPrice=float(req.stop_loss),
                          transmit=True, **common)  # type: ignore[arg-type]
        return entry, take_profit, stop_loss

    async def _confirm_gone(self, trades: list[Trade]) -> bool:
        """True once the gateway lists none of ``trades`` as open and each is done locally.

        ib_async marks a staged (transmit=False) order Cancelled the moment we *ask* to cancel it, so the local
        status proves nothing: the gateway's open-order list is the confirmation.
        """
        ids = {t.order.orderId for t in trades}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cancel_timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                # capped per try: a concurrent open-orders request (reconciliation) can swallow our reply
                listed = await asyncio.wait_for(self.ib.reqOpenOrdersAsync(), min(left, 1.0))
            except TimeoutError:
                continue
            still_open = [t for t in listed if t.order.orderId in ids and t.orderStatus.status not in _DONE]
            if not still_open and all(t.isDone() for t in trades):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def _roll_back(self, trades: list[Trade], legs: list[str], failed: int, code: int, message: str) -> None:
        """Cancel every leg but the failed one, confirm with the gateway, then raise ``OrderRejected``."""
        others = [t for i, t in enumerate(trades) if i != failed]
        for t in others:
            if t.orderStatus.status != "Filled":
                self.ib.cancelOrder(t.order)
        confirmed = await self._confirm_gone(others)
        notes = []
        if not confirmed:
            notes.append("NOT all other legs confirmed cancelled: " + ", ".join(
                f"{legs[i]} {t.orderStatus.status}" for i, t in enumerate(trades) if i != failed))
        if trades[0].filled():
            notes.append(f"the entry had already filled {trades[0].filled():g}: a position exists")
        suffix = f" [{'; '.join(notes)}]" if notes else "; the other legs were cancelled"
        log.error("bracket %s leg rejected (%s): %s%s", legs[failed], code, message, suffix)
        raise OrderRejected(code, message + suffix, legs[failed])

    async def place_bracket(self, contract: Contract, req: OrderRequest, quantity: float, *,
                            wait_fill: float = 2.0) -> PlacementResult:
        """Place entry + take-profit + stop-loss transactionally (module doc); raise ``OrderRejected`` naming the
        failed leg after the other legs are cancelled. The children rest PreSubmitted until the entry fills."""
        if req.take_profit is None or req.stop_loss is None:
            raise ValueError("a bracket needs both a take-profit and a stop-loss")
        legs = ["entry", "take-profit", "stop-loss"]
        orders = self._bracket_orders(req, quantity)
        trades = [self.ib.placeOrder(contract, orders[0]), self.ib.placeOrder(contract, orders[1])]
        await self._barrier()
        for i, t in enumerate(trades):
            rejected = _rejection(t, staged=True)
            if rejected is not None:
                await self._roll_back(trades, legs, i, *rejected)
        trades.append(self.ib.placeOrder(contract, orders[2]))

        def settled() -> bool:
            return all(t.orderStatus.status in ACK_STATUSES for t in trades) or any(
                _rejection(t) is not None for t in trades)

        acked = await self._wait(settled, self.ack_timeout)
        for i, t in enumerate(trades):
            rejected = _rejection(t)
            if rejected is not None:
                await self._roll_back(trades, legs, i, *rejected)
        if not acked:
            log.warning("bracket %s: not every leg acknowledged within %.1f s: %s", orders[0].orderId,
                        self.ack_timeout, [t.orderStatus.status for t in trades])
        if req.order_type is OrderType.MARKET and wait_fill > 0:
            await self._wait(trades[0].isDone, wait_fill)
        return _result(trades)

    # ------------------------------------------------------------------ cancelling
    def _find(self, order_id: int) -> Trade:
        for t in self.ib.trades():
            if t.order.orderId == order_id and t.order.clientId in (0, self.ib.client.clientId):
                return t
        for t in self.ib.trades():  # an order of another client / TWS, known by its permId
            if order_id and t.order.permId == order_id:
                return t
        raise OrderNotFound(f"no order {order_id} is known to this client")

    async def cancel(self, order_id: int) -> str:
        """Cancel one order and return its final status (or the status it still has after the timeout).

        Raises ``OrderNotFound`` when the id is unknown. An order already done is not touched.
        """
        trade = self._find(int(order_id))
        if trade.isDone():
            return trade.orderStatus.status
        self.ib.cancelOrder(trade.order)
        await self._wait(trade.isDone, self.cancel_timeout)
        return trade.orderStatus.status

    async def cancel_all(self) -> list[int]:
        """``reqGlobalCancel`` and wait until no open order remains (or the timeout); the ids now cancelled."""
        open_before = list(self.ib.openTrades())
        self.ib.reqGlobalCancel()
        await self._wait(lambda: not self.ib.openTrades(), self.cancel_timeout)
        return [t.order.orderId for t in open_before if t.orderStatus.status in DEAD_STATUSES]

    # ------------------------------------------------------------------ quotes
    async def snapshot(self, contract: Contract) -> dict[str, Any]:
        """One quote for ``contract`` (snapshot request); every field None when IB does not answer in time."""
        try:
            tickers = await asyncio.wait_for(self.ib.reqTickersAsync(contract), self.snapshot_timeout)
        except TimeoutError:
            log.warning("no quote for conId %s within %.1f s", contract.conId, self.snapshot_timeout)
            return dict.fromkeys(_QUOTE_KEYS)
        if not tickers:
            return dict.fromkeys(_QUOTE_KEYS)
        return ticker_to_quote(tickers[0])
