"""``IBBroker``: the one object trader_service uses to reach the broker through ib_async.

It bundles the connection (``BrokerSession``), contract resolution, order placement and the conversions from
ib_async objects to MMR values, and implements the executioner's ``BrokerPort``. The same class serves a real
IB Gateway/TWS and the simulated gateway.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from trader.broker import convert
from trader.broker.connection import BrokerSession
from trader.broker.contracts import ContractCache, ContractResolver
from trader.broker.placement import OrderPlacer
from trader.trading.models import AccountSnapshot, Position
from trader.trading.orders import OrderRequest
from trader.trading.quote_scope import shared_now

log = logging.getLogger(__name__)


def _price_of(quote: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    """The first usable (finite, positive) of ``keys`` in a quote; "mid" from bid and ask when absent."""
    for key in keys:
        v = quote.get(key)
        if v is None and key == "mid" and quote.get("bid") and quote.get("ask"):
            v = (quote["bid"] + quote["ask"]) / 2
        if v is not None and math.isfinite(v) and v > 0:
            return float(v)
    return None


class IBBroker:
    """Broker port over ib_async (see ``trader.trading.executioner.BrokerPort``)."""

    def __init__(self, session: BrokerSession, cache: ContractCache | None = None, *,
                 quote_max_age: float = 3.0) -> None:
        self.session = session
        # Inside `quote_scope.streamed_quotes` (a proposal's pricing) a streamed ticker updated within this many
        # seconds stands in for a snapshot request (0: always request one); see `streamed_quote`.
        self.quote_max_age = quote_max_age
        self.ib = session.ib
        self.resolver = ContractResolver(self.ib, cache)
        self.placer = OrderPlacer(self.ib)

    # --- BrokerPort --------------------------------------------------------------------------------
    def require_ready(self, *, opening: bool) -> None:
        self.session.require_ready(opening=opening)

    async def resolve_for(self, req: OrderRequest) -> dict[str, Any]:
        if req.is_combo:
            return await self._resolve_combo(req)
        if req.con_id:  # the CLI resolved the selection flags (expiry, strike …) to one conId already
            return await self.resolve(req.symbol, req.sec_type, req.exchange, req.currency, con_id=req.con_id)
        return await self.resolve(req.symbol, req.sec_type, req.exchange, req.currency)

    async def price(self, contract: dict[str, Any], req: OrderRequest) -> float | None:
        """A price to size and value the order: last trade, else the midpoint, else the close. A combo's is its
        net price from its legs' midpoints (None when a leg has no market)."""
        if req.is_combo:
            return (await self.combo_quote(contract, req))["price"]
        return _price_of(await self.snapshot_contract(contract), ("last", "mid", "close"))

    async def combo_quote(self, contract: dict[str, Any], req: OrderRequest) -> dict[str, Any]:
        """A combo's legs quoted (``combos.quote_legs``: each leg's bid/ask/mid, the natural and mid net price)
        and ``price``, the net price that sizes and values it: the legs' mids, else last, else close."""
        import asyncio

        from trader.trading.combos import net_price, quote_legs

        snaps = await asyncio.gather(*(self.snapshot_contract(c) for c in contract["legs"]))
        out = quote_legs(req.legs, req.action, snaps)
        out["price"] = net_price(req.legs, [_price_of(q, ("mid", "last", "close")) for q in snaps])
        return out

    async def what_if(self, contract: dict[str, Any], req: OrderRequest, quantity: float,
                      timeout: float = 10.0) -> dict[str, Any]:
        """IB's whatIf preview of a combo order (``order.whatIf``: nothing placed): the initial/maintenance
        margin and equity-with-loan changes and the commission. Raises on an error or no answer in time."""
        import asyncio

        from ib_async import LimitOrder

        order = LimitOrder(req.action.value, quantity, req.limit_price, tif=req.tif)
        state = await asyncio.wait_for(self.ib.whatIfOrderAsync(self._bag(contract, req), order), timeout)
        if state is None or not getattr(state, "initMarginChange", ""):
            raise LookupError("the broker answered the whatIf preview without margin figures")

        def num(v: Any) -> float | None:
            try:
                f = float(v)
            except (TypeError, ValueError):
                return None
            return f if math.isfinite(f) and abs(f) < 1e300 else None  # IB's UNSET_DOUBLE is 1.8e308

        return {"init_margin_change": num(state.initMarginChange), "maint_margin_change": num(state.maintMarginChange),
                "equity_with_loan_change": num(state.equityWithLoanChange), "commission": num(state.commission),
                "init_margin_after": num(state.initMarginAfter), "warning": state.warningText or ""}

    async def _resolve_combo(self, req: OrderRequest) -> dict[str, Any]:
        """A combo's legs resolved by conId; each must be an option (or futures option) on ``req.symbol``.
        The combo's own dict carries them in ``legs`` and the first expiry (a calendar's near leg) as its
        ``last_trade_date``: past it, the gate refuses a new combo."""
        from trader.errors import InvalidOrder

        legs = [await self.resolve(req.symbol, con_id=leg.con_id) for leg in req.legs]
        wrong = [c for c in legs if c.get("sec_type") not in ("OPT", "FOP")
                 or str(c.get("symbol") or "").upper() != req.symbol.upper()]
        if wrong:
            names = ", ".join(f"{c.get('local_symbol') or c.get('con_id')} ({c.get('sec_type')})" for c in wrong)
            raise InvalidOrder(f"combo legs must be options on {req.symbol}: {names}")
        return {"symbol": req.symbol, "sec_type": "BAG", "con_id": 0, "currency": legs[0].get("currency") or "USD",
                "exchange": legs[0].get("exchange") or "SMART", "multiplier": legs[0].get("multiplier"),
                "last_trade_date": min(str(c.get("last_trade_date") or "") for c in legs), "legs": legs}

    async def place(self, contract: dict[str, Any], req: OrderRequest, quantity: float) -> dict[str, Any]:
        if req.is_combo:
            result = await self.placer.place(self._bag(contract, req), req, quantity)
            return dataclasses.asdict(result)
        ib_contract = await self.resolver.qualified(contract)
        if req.modify_order_id:
            result = await self.placer.to_market(req.modify_order_id)
        elif req.is_bracket:
            result = await self.placer.place_bracket(ib_contract, req, quantity)
        else:
            result = await self.placer.place(ib_contract, req, quantity)
        return dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)

    @staticmethod
    def _bag(contract: dict[str, Any], req: OrderRequest) -> Any:
        """The IB ``BAG`` contract of a combo: one ``ComboLeg`` per leg (conId, ratio, action as bought)."""
        from ib_async import ComboLeg, Contract

        exchange = str(contract.get("exchange") or "SMART")
        return Contract(secType="BAG", symbol=req.symbol, currency=str(contract.get("currency") or req.currency),
                        exchange=exchange, comboLegs=[
                            ComboLeg(conId=leg.con_id, ratio=leg.ratio, action=leg.action.value, exchange=exchange)
                            for leg in req.legs])

    # --- reads -------------------------------------------------------------------------------------
    async def resolve(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                      currency: str = "USD", **selection: Any) -> dict[str, Any]:
        """One contract; ``selection``: expiry, strike, right, multiplier, trading_class, local_symbol, con_id."""
        self.session.require_ready(opening=False)
        return await self.resolver.resolve(symbol, sec_type, exchange, currency, **selection)

    async def snapshot_contract(self, contract: dict[str, Any]) -> dict[str, Any]:
        """One quote for a resolved contract (shared by a batch's checks inside `quote_scope.shared_reads`).
        Inside `quote_scope.streamed_quotes` a fresh streamed quote (`streamed_quote`) is taken when there is
        one; otherwise, and everywhere else, a snapshot request."""
        from trader.trading.quote_scope import shared, shared_now, streamed_quotes_allowed

        con_id = contract.get("con_id")
        if not con_id:
            return await self._snapshot_contract(contract)
        if not streamed_quotes_allowed():
            return dict(await shared(("snapshot", int(con_id)), lambda: self._snapshot_contract(contract)))
        # Shared too: a batch's checks are all judged on the quote its first read of the contract took. A streamed
        # one is read without an await (`shared_now`: no task and no loop turns per contract, ~40 us each); only
        # when there is none does the batch share one snapshot request.
        streamed = shared_now(("streamed", int(con_id)), lambda: self.streamed_quote(contract))
        if streamed is not None:
            return dict(streamed)  # a copy each
        return dict(await shared(("quote", int(con_id)), lambda: self._snapshot_contract(contract)))

    def streamed_quote(self, contract: dict[str, Any]) -> dict[str, Any] | None:
        """The quote of a ticker this session already streams for the contract, when the ticker was updated
        (any tick: bid, ask, last, sizes) within ``quote_max_age`` seconds and has a price (last, mid or close);
        else None. The same fields a snapshot request answers, from the same ib_async Ticker."""
        import time

        from trader.broker.convert import ticker_to_quote

        if self.quote_max_age <= 0:
            return None
        ticker = self.session.streamed_ticker(int(contract.get("con_id") or 0))
        stamp = getattr(ticker, "timestamp", None)  # time.time() of the last update ib_async processed
        if ticker is None or not stamp or time.time() - stamp > self.quote_max_age:
            return None
        quote = ticker_to_quote(ticker)
        if _price_of(quote, ("last", "mid", "close")) is None:
            return None
        return {"symbol": contract.get("symbol"), "con_id": contract.get("con_id"), **quote}

    async def _snapshot_contract(self, contract: dict[str, Any]) -> dict[str, Any]:
        ib_contract = await self.resolver.qualified(contract)
        quote = await self.placer.snapshot(ib_contract)
        return {"symbol": contract.get("symbol"), "con_id": contract.get("con_id"), **quote}

    def positions(self) -> list[Position]:
        """Every position (a new list each call; one read per `quote_scope.shared_reads` batch)."""
        return list(shared_now(("positions",), lambda: tuple(convert.position_rows(self.ib))))

    def cash_balances(self) -> list[dict[str, Any]]:
        """Cash per currency with its base-currency value (``convert.cash_balances``)."""
        return convert.cash_balances(self.ib, self.session.account or "")

    def account(self) -> AccountSnapshot:
        """The account's figures (one read per `quote_scope.shared_reads` batch)."""
        account = self.session.account or self._account_id()
        return shared_now(("account", account), lambda: convert.account_snapshot(self.ib, account))

    def start_pnl(self) -> None:
        """Subscribe to the account's daily P&L (the risk gate fails closed without it) and to every position's
        (``reqPnLSingle``: the daily P&L of positions and the snapshot's top movers); positions opened later
        are subscribed as they appear."""
        account = self.session.account or self._account_id()
        convert.start_pnl(self.ib, account)
        for p in self.ib.positions(account):
            convert.start_pnl_single(self.ib, account, int(p.contract.conId))
        if not getattr(self, "_pnl_single_hooked", False):
            self._pnl_single_hooked = True
            self.ib.positionEvent += self._on_position

    def _on_position(self, position: Any) -> None:
        if position.position:
            convert.start_pnl_single(self.ib, position.account, int(position.contract.conId))

    def _account_id(self) -> str:
        accounts = self.ib.managedAccounts()
        return accounts[0] if accounts else ""

    def open_orders(self) -> list[dict[str, Any]]:
        return [convert.trade_to_order_row(t) for t in self.ib.openTrades()]

    def fills(self) -> list[dict[str, Any]]:
        return [convert.fill_to_row(f) for f in self.ib.fills()]

    def working_quantity(self, con_id: int, symbol: str, sec_type: str, action: str, *,
                         exclude_order_id: int = 0, exclude_oca: str = "") -> float:
        """Unfilled quantity of this session's working ``action`` orders on one instrument (an OCA group, such
        as a bracket's exits, counts once): what "never sell more than held" must subtract. The order being
        modified and the new order's own OCA group are left out."""
        from trader.trading.orders import working_quantity
        from trader.trading.quote_scope import shared_now

        def working() -> tuple[tuple[int, dict[str, Any]], ...]:  # once per batch of checks (`shared_now`)
            return tuple((t.order.orderId, {"con_id": t.contract.conId, "symbol": t.contract.symbol,
                                            "sec_type": t.contract.secType, "action": t.order.action,
                                            "remaining": t.remaining(), "oca_group": t.order.ocaGroup})
                         for t in self.ib.openTrades() if not t.isDone())

        rows = [row for order_id, row in shared_now(("working_orders",), working) if order_id != exclude_order_id
                and not (exclude_oca and row["oca_group"] == exclude_oca)]
        return working_quantity(rows, symbol, con_id, sec_type, action)

    def order_book(self) -> list[Any]:
        """Every order the broker reported (open and completed) and every execution's order, as
        `trader.trading.reconcile.BrokerOrder` values (what reconciliation matches by orderRef)."""
        from trader.trading.reconcile import BrokerOrder

        out = []
        for t in self.ib.trades():
            o, st = t.order, t.orderStatus
            out.append(BrokerOrder(order_id=int(o.orderId), perm_id=int(o.permId or st.permId or 0),
                                   order_ref=o.orderRef or "", symbol=t.contract.symbol, action=o.action,
                                   quantity=float(o.totalQuantity), status=st.status,
                                   filled=float(t.filled())))
        for f in self.ib.fills():
            ex = f.execution
            out.append(BrokerOrder(order_id=int(ex.orderId), perm_id=int(ex.permId or 0),
                                   order_ref=ex.orderRef or "", symbol=f.contract.symbol,
                                   action="BUY" if ex.side == "BOT" else "SELL", quantity=float(ex.shares),
                                   status="Filled", filled=float(ex.shares)))
        return out

    async def cancel(self, order_id: int) -> str:
        self.session.require_ready(opening=False)
        return await self.placer.cancel(order_id)

    async def cancel_all(self) -> list[int]:
        self.session.require_ready(opening=False)
        return await self.placer.cancel_all()
