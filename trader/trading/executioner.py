"""The single order chokepoint: every order — CLI buy/sell, proposal approval, strategy signal — goes through
``Executioner.submit``: validate → resolve → size (amount → shares) → holding check → risk gate → broker.

Pure orchestration: the broker, the gate context and the audit trail come in through small interfaces, so
this module imports neither ib_async nor zmq nor duckdb.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from trader.errors import DeadlineExceeded, OrderRejected, OutcomeUnknown, RiskRejected
from trader.trading.combos import legs_as_resolved
from trader.trading.contract_select import contract_multiplier
from trader.trading.orders import (
    OrderRequest,
    check_quantity_for_contract,
    check_sell_within_holding,
    held_quantity,
    validate_order,
    with_quantity_for_price,
)
from trader.trading.risk_gate import GateContext, GateDecision, RiskGate

log = logging.getLogger(__name__)

Audit = Callable[..., Awaitable[None]]
Note = Callable[..., None]


class BrokerPort(Protocol):
    """What the executioner needs from a broker adapter. Optional, used when present: ``combo_quote(contract,
    req)`` (a combo's legs quoted and its ``price``, instead of ``price``) and ``what_if(contract, req,
    quantity)`` (the broker's margin preview of a combo, in ``preview``)."""

    def require_ready(self, *, opening: bool) -> None: ...

    async def resolve_for(self, req: OrderRequest) -> dict[str, Any]: ...

    async def price(self, contract: dict[str, Any], req: OrderRequest) -> float | None: ...

    async def place(self, contract: dict[str, Any], req: OrderRequest, quantity: float) -> dict[str, Any]: ...

    def working_quantity(self, con_id: int, symbol: str, sec_type: str, action: str, *,
                         exclude_order_id: int = 0, exclude_oca: str = "") -> float: ...


ContextProvider = Callable[[OrderRequest, dict[str, Any], float | None], Awaitable[GateContext]]


class Executioner:
    """Validate, gate and place orders; record every step in the audit trail."""

    def __init__(self, gate: RiskGate, broker: BrokerPort, context: ContextProvider, audit: Audit,
                 note: Note | None = None) -> None:
        """``audit`` records an event and waits until it is durable; ``note`` records one without waiting
        (ordered before any later ``audit``). Without ``note``, ``audit`` is used for both."""
        self.gate = gate
        self.broker = broker
        self.context = context
        self.audit = audit
        self.note = note

    async def submit(self, req: OrderRequest, *, deadline: float | None = None) -> dict[str, Any]:
        """Place ``req`` if it is valid and passes the risk gate; raise ``InvalidOrder``/``RiskRejected``/
        ``BrokerNotReady`` otherwise. Returns the placement result with the gate decision.

        ``deadline`` (epoch seconds): the caller stops waiting then, so an order whose submission record
        became durable only after it is not sent (``DeadlineExceeded``). The broker order's ``orderRef`` is
        the request's correlation id. A broker call that fails in a way that leaves the order's fate open
        (anything but a rejection) raises ``OutcomeUnknown`` carrying the correlation id: never retry blindly.
        """
        if not req.correlation_id:
            req = replace(req, correlation_id=uuid.uuid4().hex[:16])
        cid = req.correlation_id
        if self.note is not None:  # made durable together with the submission record below
            self.note("order_requested", _req_payload(req), correlation_id=cid, source=req.source.value)
        else:
            await self.audit("order_requested", _req_payload(req), correlation_id=cid, source=req.source.value)
        try:
            req, contract, _price, decision, quote = await self._prepare(req)
            if decision.rejected and decision.reducing_quantity <= 0:
                decision.raise_if_rejected()
            quantity = decision.allowed_quantity
            self.broker.require_ready(opening=decision.allowed and decision.opening_quantity > 0)
        except Exception as exc:
            await self.audit("order_refused", {"error": type(exc).__name__, "message": str(exc),
                                               **_req_payload(req)}, correlation_id=cid, source=req.source.value)
            raise
        await self.audit("order_submitted", {**_req_payload(req), "quantity": quantity,
                                             "decision": decision.to_dict()},
                         correlation_id=cid, source=req.source.value)
        if deadline is not None and time.time() > deadline:
            # The store was slow (locked?) and the caller has given up: sending now would be a surprise.
            msg = f"the caller's deadline passed {time.time() - deadline:.1f} s before the order could be sent"
            await self.audit("order_expired", {"message": msg, **_req_payload(req)}, correlation_id=cid,
                             source=req.source.value)
            raise DeadlineExceeded(msg + "; nothing was sent")
        try:
            result = await self.broker.place(contract, req, quantity)
        except OrderRejected as exc:
            await self.audit("order_failed", {"error": type(exc).__name__, "message": str(exc)},
                             correlation_id=cid, source=req.source.value)
            raise
        except BaseException as exc:  # incl. cancellation: the order may be at the broker
            await _shielded(self.audit("order_unknown", {"error": type(exc).__name__, "message": str(exc)},
                                       correlation_id=cid, source=req.source.value))
            if not isinstance(exc, Exception):
                raise
            raise OutcomeUnknown(f"{type(exc).__name__} while sending the order: {exc}; it may be live at the "
                                 f"broker (orderRef {cid}); reconciliation will settle it", cid,
                                 f"mmr --json orders --request {cid}") from exc
        result = {**result, "symbol": req.symbol, "action": req.action.value, "quantity": quantity,
                  "correlation_id": cid, "decision": decision.to_dict(),
                  "reducing_quantity": decision.reducing_quantity, "opening_quantity": decision.opening_quantity,
                  **({"combo_quote": quote} if quote is not None else {})}
        if decision.rejected:  # crossed zero: only the reducing part went out
            result["risk_refused"] = decision.summary()
        await self.audit("order_placed", {k: v for k, v in result.items() if k != "decision"},
                         correlation_id=cid, source=req.source.value)
        return result


    async def _prepare(self, req: OrderRequest) -> tuple[OrderRequest, dict[str, Any], float | None, GateDecision,
                                                         dict[str, Any] | None]:
        """Every check before the broker, in order: structure, contract size rules, amount → shares (at the
        order's own price when it has one), the holding check, the risk gate. Raises on the first refusal.
        The last item is a combo's legs quoted (``BrokerPort.combo_quote``, when the broker has it), else None."""
        validate_order(req)
        self.broker.require_ready(opening=False)  # resolving and pricing need a live connection
        contract = await self.broker.resolve_for(req)
        max_qty = getattr(self.gate.filters, "max_order_quantity", None)
        check_quantity_for_contract(req, contract, max_qty)  # min size, increment, configured maximum
        req = replace(req, con_id=int(contract["con_id"]), multiplier=contract_multiplier(contract),
                      primary_exchange=req.primary_exchange or contract.get("primary_exchange") or "")
        if req.is_combo:  # the gate's max loss uses the broker's strikes, never the client's word for them
            req = replace(req, legs=legs_as_resolved(req.legs, contract["legs"]))
            validate_order(req)
        quote = None
        if req.is_combo and hasattr(self.broker, "combo_quote"):  # the legs' quotes price it: one snapshot each
            quote = await self.broker.combo_quote(contract, req)
            price = quote.get("price")
        else:
            price = await self.broker.price(contract, req)
        validate_order(req, market_price=price)  # again, now that a market-priced bracket can be checked
        ctx = await self.context(req, contract, price)  # nothing in it depends on the quantity
        if req.quantity is None:
            if price is None and req.entry_price is None:
                raise RiskRejected(f"no price for {req.symbol}: cannot convert ${req.amount:,.2f} to shares")
            if ctx.fx_rate is None:
                raise RiskRejected(f"no exchange rate from {req.currency} to the base currency: cannot convert "
                                   f"{req.amount:,.2f} to {req.symbol} shares")
            # An order with its own price (limit, stop) buys what the amount pays at that price; the amount is in
            # the base currency, the price in the contract's.
            local = req.entry_price if req.entry_price is not None else price
            req = with_quantity_for_price(req, local * ctx.fx_rate)  # type: ignore[operator]
            check_quantity_for_contract(req, contract, max_qty)
        if ctx.positions is not None and not req.is_combo:  # a combo's short legs: the gate's max-loss rules
            working = self.broker.working_quantity(req.con_id, req.symbol, req.sec_type, "SELL",
                                                   **_not_counted(req))
            check_sell_within_holding(req, held_quantity(ctx.positions, req.symbol, req.con_id, req.sec_type),
                                      working)
        return req, contract, price, self.gate.check(req, ctx), quote

    async def preview(self, req: OrderRequest) -> dict[str, Any]:
        """What ``submit`` would decide for ``req`` now, sending nothing and recording nothing: the quantity
        (an amount converted), the price used and the risk gate's decision. Raises what ``submit`` would raise
        before the gate (``InvalidOrder`` for a malformed order or a SELL beyond the holding, ``BrokerNotReady``).

        A combo's preview adds ``combo_quote`` (each leg's bid/ask/mid, the natural and mid net price) and
        ``margin_what_if``: the broker's own whatIf of the BAG order (``BrokerPort.what_if``: margin change,
        commission), or ``{"error": ...}`` when it could not answer — advice, never a refusal."""
        req, contract, price, decision, quote = await self._prepare(req)
        out = {"quantity": req.quantity, "price": price, "multiplier": req.multiplier,
               "decision": decision.to_dict()}
        if req.is_combo:
            out["combo_quote"] = quote
            out["margin_what_if"] = await self._margin_what_if(contract, req)
        return out

    async def _margin_what_if(self, contract: dict[str, Any], req: OrderRequest) -> dict[str, Any] | None:
        what_if = getattr(self.broker, "what_if", None)
        if what_if is None or not req.quantity:
            return None
        try:
            return await what_if(contract, req, req.quantity)
        except Exception as exc:  # noqa: BLE001 - a preview: the gate's decision stands without it
            return {"error": f"{type(exc).__name__}: {exc}"}


def _not_counted(req: OrderRequest) -> dict[str, Any]:
    """Working orders the holding check must not count against ``req``: the order it modifies, and its own
    OCA group (only one exit of a group can fill)."""
    out: dict[str, Any] = {}
    if req.modify_order_id:
        out["exclude_order_id"] = req.modify_order_id
    if req.oca_group:
        out["exclude_oca"] = req.oca_group
    return out


async def _shielded(aw: Awaitable[None]) -> None:
    import asyncio

    try:
        await asyncio.shield(aw)
    except BaseException:  # noqa: BLE001 - best effort while already failing
        log.exception("could not record an order's unknown outcome")


def _req_payload(req: OrderRequest) -> dict[str, Any]:
    return {
        "symbol": req.symbol, "action": req.action.value, "quantity": req.quantity, "amount": req.amount,
        "order_type": req.order_type.value, "limit_price": req.limit_price, "stop_price": req.stop_price,
        "trailing_percent": req.trailing_percent, "trailing_amount": req.trailing_amount,
        "take_profit": req.take_profit, "stop_loss": req.stop_loss, "outside_rth": req.outside_rth,
        "sec_type": req.sec_type, "exchange": req.exchange, "currency": req.currency, "con_id": req.con_id,
        "tif": req.tif, **({"group": req.group} if req.group else {}),
        **({"oca_group": req.oca_group} if req.oca_group else {}),
        **({"modify_order_id": req.modify_order_id} if req.modify_order_id else {}),
        **({"legs": [leg.to_dict() for leg in req.legs]} if req.legs else {}),
    }
