"""A minimal nautilus_trader TradingNode against the simulated gateway; run in the nautilus venv, not MMR's.

    .venv-nautilus/bin/python tests/sim/nautilus_driver.py --port PORT --account DU0000001 --report out.json

tests/sim/test_conformance_nautilus.py starts the gateway, runs this script (scripts/ensure_nautilus.sh makes
the venv: nautilus-trader 1.221.0 needs pandas < 3, which MMR's own venv has moved past) and asserts on the
JSON report it writes. The node has nautilus' own IB data and execution clients; one strategy does, in order:

1. waits for the instruments (a stock and EUR.USD) and a few quotes of each, and asks for the stock's last
   30 one-minute bars;
2. buys the stock at market, then EUR.USD at market (fills with their commissions);
3. places a buy limit far under the market and cancels it once IB accepted it, then the same with a sell
   trailing stop (offset 2.00);
4. submits a bracket (OrderList: market entry, take-profit limit 3.00 over the bid, stop-loss stop 5.00 under
   it); the test pins the gateway's price over the take-profit once the entry filled, the take-profit fills and
   IB cancels the stop-loss; the step ends when all three are closed in nautilus' cache;
5. once the bars are in too, records positions, the account and the stock's realized/unrealized P&L as
   nautilus sees them; the node stops and is disposed. With ``--leave-resting`` it first places one more GTC limit and leaves it working at the gateway.

With ``--reconnect`` the node is a restarted one: it reports the orders its start-up reconciliation found open at
the gateway, cancels them and stops.

Everything the strategy saw (and every error nautilus logged) goes into the report; the driver asserts
nothing itself, so the test can say exactly what differed. No MMR imports: this runs beside MMR, not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_trader.adapters.interactive_brokers.common import IB, IBContract
from nautilus_trader.adapters.interactive_brokers.config import (
    IBMarketDataTypeEnum,
    InteractiveBrokersDataClientConfig,
    InteractiveBrokersExecClientConfig,
    InteractiveBrokersInstrumentProviderConfig,
    SymbologyMethod,
)
from nautilus_trader.adapters.interactive_brokers.factories import (
    InteractiveBrokersLiveDataClientFactory,
    InteractiveBrokersLiveExecClientFactory,
)
from nautilus_trader.config import (
    LiveExecEngineConfig,
    LoggingConfig,
    RoutingConfig,
    StrategyConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import Bar, BarType, QuoteTick
from nautilus_trader.model.enums import OrderSide, OrderType, TimeInForce, TrailingOffsetType
from nautilus_trader.model.events import OrderAccepted, OrderCanceled, OrderFilled, OrderRejected
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.trading.strategy import Strategy

QUOTES_WANTED = 3


class ConformanceConfig(StrategyConfig, frozen=True):
    stock_symbol: str = "AAPL"
    stock_qty: int = 10
    fx_qty: int = 20_000
    limit_qty: int = 5
    history_end: datetime | None = None
    leave_resting: bool = False  # finish with a GTC limit resting at IB (for a later --reconnect run)
    reconnect: bool = False  # only reconcile: report the open orders found at start, cancel them, stop


class Conformance(Strategy):
    """Drives the steps above from its own events; ``done`` is set when the last step finished (or failed)."""

    def __init__(self, config: ConformanceConfig) -> None:
        super().__init__(config)
        self.report: dict[str, Any] = {"steps": [], "quotes": {}, "fills": [], "accepted": [], "canceled": [],
                                       "rejected": [], "bars": [], "failure": None}
        self.done = asyncio.Event()
        self.stock: InstrumentId | None = None
        self.fx: InstrumentId | None = None
        self._step = "quotes"
        self._orders: dict[str, str] = {}  # client order id -> role ("stock_mkt", "fx_mkt", "limit")
        self._waiting = {"reconnect"} if config.reconnect else {"trading", "bars"}

    # ---------------------------------------------------------------- helpers
    def _step_done(self, name: str) -> None:
        self.report["steps"].append(name)

    def _finished(self, what: str) -> None:
        self._waiting.discard(what)
        if not self._waiting:
            self.done.set()

    def fail(self, why: str) -> None:
        if self.report["failure"] is None:
            self.report["failure"] = why
        self.done.set()

    # ---------------------------------------------------------------- lifecycle
    def on_start(self) -> None:
        instruments = self.cache.instruments()
        self.report["instruments"] = [
            {"id": str(i.id), "type": type(i).__name__, "price_increment": str(i.price_increment),
             "size_increment": str(i.size_increment), "sec_ids": (i.info or {}).get("secIdList") if hasattr(i, "info")
             else None}
            for i in instruments
        ]
        for inst in instruments:
            kind = type(inst).__name__
            if kind == "Equity" and inst.id.symbol.value == self.config.stock_symbol:
                self.stock = inst.id
            elif kind == "CurrencyPair" and inst.id.symbol.value.startswith("EUR"):
                self.fx = inst.id
        if self.stock is None or self.fx is None:
            self.fail(f"instruments missing: stock={self.stock} fx={self.fx}")
            return
        self._step_done("instruments")
        if self.config.reconnect:
            self._cancel_reconciled()
            return
        for iid in (self.stock, self.fx):
            self.report["quotes"][str(iid)] = {"count": 0, "distinct": []}
            self.subscribe_quote_ticks(iid)
        self.snapshot("start")
        bar_type = BarType.from_str(f"{self.stock}-1-MINUTE-LAST-EXTERNAL")
        end = self.config.history_end or self.clock.utc_now()  # the gateway's clock may not be the wall clock
        self.request_bars(bar_type, start=end - timedelta(minutes=30), end=end, callback=self._bars_done)

    def _cancel_reconciled(self) -> None:
        """A restarted node: the orders IB reports open were reconciled into the cache; cancel every one."""
        self.snapshot("start")
        open_orders = self.cache.orders_open()
        self.report["reconciled_open"] = [
            {"instrument": str(o.instrument_id), "side": o.side.name, "type": o.order_type.name,
             "qty": float(o.quantity), "price": float(o.price) if getattr(o, "price", None) is not None else None,
             "tif": o.time_in_force.name, "status": o.status.name,
             "venue_order_id": o.venue_order_id.value if o.venue_order_id else None}
            for o in open_orders
        ]
        if not open_orders:
            self.fail("no open order reconciled at start")
            return
        for o in open_orders:
            self._orders[o.client_order_id.value] = "reconciled"
            self.cancel_order(o)
        # reconciled orders belong to nautilus' EXTERNAL strategy, whose events this strategy does not get: poll
        self.clock.set_timer("reconciled-cancel", timedelta(milliseconds=50), callback=self._check_reconciled)

    def _check_reconciled(self, event: Any) -> None:
        if self.cache.orders_open() or self._step == "finished":
            return
        self._step = "finished"
        self.clock.cancel_timer("reconciled-cancel")
        self.report["canceled"] = [{"role": "reconciled", "venue_order_id": o.venue_order_id.value,
                                    "status": o.status.name} for o in self.cache.orders_closed()
                                   if self._orders.get(o.client_order_id.value) == "reconciled"]
        self._step_done("cancel_reconciled")
        self._finished("reconnect")

    def on_historical_data(self, data: Any) -> None:
        if isinstance(data, Bar):
            self.report["bars"].append([data.ts_event // 1_000_000_000, float(data.open), float(data.high),
                                        float(data.low), float(data.close), float(data.volume)])

    def _bars_done(self, request_id: Any) -> None:
        self._step_done("bars")
        self._finished("bars")

    def on_stop(self) -> None:
        for iid in (self.stock, self.fx):
            if iid is not None:
                self.unsubscribe_quote_ticks(iid)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        seen = self.report["quotes"].setdefault(str(tick.instrument_id), {"count": 0, "distinct": []})
        seen["count"] += 1
        pair = [float(tick.bid_price), float(tick.ask_price)]
        if pair not in seen["distinct"] and len(seen["distinct"]) < 10:
            seen["distinct"].append(pair)
        if self._step == "quotes" and all(q["count"] >= QUOTES_WANTED and len(q["distinct"]) >= 2
                                          for q in self.report["quotes"].values()):
            self._step = "stock_mkt"
            self._step_done("quotes")
            self._market(self.stock, self.config.stock_qty, "stock_mkt")

    def _market(self, iid: InstrumentId, qty: int, role: str) -> None:
        inst = self.cache.instrument(iid)
        order = self.order_factory.market(iid, OrderSide.BUY, inst.make_qty(qty))
        self._orders[order.client_order_id.value] = role
        self.submit_order(order)

    def on_order_filled(self, event: OrderFilled) -> None:
        role = self._orders.get(event.client_order_id.value, "external")
        self.report["fills"].append({
            "role": role, "instrument": str(event.instrument_id), "side": event.order_side.name,
            "qty": float(event.last_qty), "price": float(event.last_px), "trade_id": event.trade_id.value,
            "venue_order_id": event.venue_order_id.value,
            "commission": float(event.commission) if event.commission is not None else None,
            "commission_currency": event.commission.currency.code if event.commission is not None else None,
        })
        order = self.cache.order(event.client_order_id)
        self._bracket_check()
        if order is None or not order.is_closed:
            return
        if role == "stock_mkt" and self._step == "stock_mkt":
            self._step = "fx_mkt"
            self._step_done("stock_mkt")
            self._market(self.fx, self.config.fx_qty, "fx_mkt")
        elif role == "fx_mkt" and self._step == "fx_mkt":
            self._step = "limit"
            self._step_done("fx_mkt")
            self._limit("limit", 20)

    def _trail(self) -> None:
        """A GTC sell trailing stop 2.00 under the last trade (IB's TRAIL: auxPrice the offset, trailStopPrice)."""
        inst = self.cache.instrument(self.stock)
        quote = self.cache.quote_tick(self.stock)
        trigger = inst.make_price(float(quote.bid_price) - 2)
        order = self.order_factory.trailing_stop_market(
            self.stock, OrderSide.SELL, inst.make_qty(self.config.limit_qty), trailing_offset=Decimal("2.00"),
            trailing_offset_type=TrailingOffsetType.PRICE, trigger_price=trigger, time_in_force=TimeInForce.GTC)
        self._orders[order.client_order_id.value] = "trail"
        self.report["trail_trigger"] = float(trigger)
        self.submit_order(order)

    def _limit(self, role: str, below: float) -> None:
        """A GTC buy limit ``below`` under the bid: it rests."""
        inst = self.cache.instrument(self.stock)
        quote = self.cache.quote_tick(self.stock)
        price = inst.make_price(float(quote.bid_price) - below)
        order = self.order_factory.limit(self.stock, OrderSide.BUY, inst.make_qty(self.config.limit_qty),
                                         price, time_in_force=TimeInForce.GTC)
        self._orders[order.client_order_id.value] = role
        self.report[f"{role}_price"] = float(price)
        self.submit_order(order)

    def on_order_accepted(self, event: OrderAccepted) -> None:
        role = self._orders.get(event.client_order_id.value, "external")
        self.report["accepted"].append({"role": role, "venue_order_id": event.venue_order_id.value})
        if role in ("limit", "trail"):
            self.cancel_order(self.cache.order(event.client_order_id))
        elif role == "resting":
            self._step_done("resting")
            self._finished("trading")

    def on_order_canceled(self, event: OrderCanceled) -> None:
        role = self._orders.get(event.client_order_id.value, "external")
        self.report["canceled"].append({"role": role, "venue_order_id": event.venue_order_id.value
                                        if event.venue_order_id else None})
        if role == "limit" and self._step == "limit":
            self._step_done("cancel")
            self._step = "trail"
            self._trail()
        elif role == "trail" and self._step == "trail":
            self._step_done("trail")
            self._step = "bracket"
            self._bracket()
        self._bracket_check()

    def _bracket(self) -> None:
        """A market entry with a take-profit limit 3.00 over the bid and a stop-loss 5.00 under it, as one OrderList
        (nautilus sends IB a parent and two children, transmit on the last, the children in one OCA group)."""
        inst = self.cache.instrument(self.stock)
        bid = float(self.cache.quote_tick(self.stock).bid_price)
        tp, sl = inst.make_price(bid + 3), inst.make_price(bid - 5)
        bracket = self.order_factory.bracket(
            self.stock, OrderSide.BUY, inst.make_qty(self.config.stock_qty), entry_order_type=OrderType.MARKET,
            tp_price=tp, tp_post_only=False, sl_trigger_price=sl, time_in_force=TimeInForce.GTC)
        roles = {OrderType.MARKET: "entry", OrderType.LIMIT: "tp", OrderType.STOP_MARKET: "sl"}
        for order in bracket.orders:  # nautilus orders the list entry, stop-loss, take-profit
            self._orders[order.client_order_id.value] = roles[order.order_type]
        self.report["bracket"] = {"tp_price": float(tp), "sl_trigger": float(sl),
                                  "sent": [roles[o.order_type] for o in bracket.orders]}
        self.submit_order_list(bracket)

    def _bracket_check(self) -> None:
        """The bracket is over once the take-profit filled and the stop-loss was cancelled (the test moves the
        gateway's price through the take-profit once the entry filled)."""
        if self._step != "bracket":
            return
        by_role = {self._orders.get(o.client_order_id.value): o for o in self.cache.orders()}
        if not all(r in by_role and by_role[r].is_closed for r in ("entry", "tp", "sl")):
            return
        self.report["bracket"]["orders"] = {
            r: {"status": by_role[r].status.name, "type": by_role[r].order_type.name, "side": by_role[r].side.name,
                "filled": float(by_role[r].filled_qty),
                "avg_px": float(by_role[r].avg_px) if by_role[r].avg_px else None,
                "venue_order_id": by_role[r].venue_order_id.value if by_role[r].venue_order_id else None,
                "parent": by_role[r].parent_order_id.value if by_role[r].parent_order_id else None,
                "linked": sorted(self._orders.get(x.value) for x in (by_role[r].linked_order_ids or []))}
            for r in ("entry", "tp", "sl")}
        self._step_done("bracket")
        if self.config.leave_resting:
            self._step = "resting"
            self._limit("resting", 30)
        else:
            self._step = "finished"
            self._finished("trading")


    def on_order_rejected(self, event: OrderRejected) -> None:
        role = self._orders.get(event.client_order_id.value, "external")
        self.report["rejected"].append({"role": role, "reason": event.reason})
        self.fail(f"order rejected ({role}): {event.reason}")

    def snapshot(self, key: str) -> None:
        """Positions, account and orders as nautilus holds them now, under ``report[key]``."""
        out = self.report[key] = {}
        out["positions"] = [
            {"instrument": str(p.instrument_id), "side": p.side.name, "qty": float(p.signed_qty),
             "avg_px_open": p.avg_px_open}
            for p in self.cache.positions_open()
        ]
        out["net_positions"] = {
            str(iid): float(self.portfolio.net_position(iid)) for iid in (self.stock, self.fx) if iid is not None
        }
        account = self.portfolio.account(Venue(IB))
        if account is None:
            out["account"] = None
        else:
            out["account"] = {
                "id": account.id.value, "type": account.type.name,
                "balances": {c.code: {"total": float(b.total), "free": float(b.free), "locked": float(b.locked)}
                             for c, b in account.balances().items()},
            }
        if self.stock is not None:
            realized, unrealized = self.portfolio.realized_pnl(self.stock), self.portfolio.unrealized_pnl(self.stock)
            quote = self.cache.quote_tick(self.stock)
            out["pnl"] = {"realized": float(realized) if realized is not None else None,
                          "unrealized": float(unrealized) if unrealized is not None else None,
                          "bid": float(quote.bid_price) if quote else None,
                          "ask": float(quote.ask_price) if quote else None}
        out["orders_open"] = [str(o.client_order_id) for o in self.cache.orders_open()]
        out["orders"] = {o.client_order_id.value: {"status": o.status.name, "role": self._orders.get(
            o.client_order_id.value, "external"), "filled": float(o.filled_qty)} for o in self.cache.orders()}


def _contracts(stock: str) -> frozenset[IBContract]:
    return frozenset({
        IBContract(secType="STK", symbol=stock, exchange="SMART", primaryExchange="NASDAQ", currency="USD"),
        IBContract(secType="CASH", symbol="EUR", exchange="IDEALPRO", currency="USD"),
    })


def build_node(port: int, account: str, client_id: int, stock: str, log_level: str) -> TradingNode:
    provider = InteractiveBrokersInstrumentProviderConfig(symbology_method=SymbologyMethod.IB_SIMPLIFIED,
                                                          load_contracts=_contracts(stock))
    config = TradingNodeConfig(
        trader_id="MMR-CONFORMANCE-001",
        logging=LoggingConfig(log_level=log_level, log_colors=False),
        exec_engine=LiveExecEngineConfig(reconciliation=True, reconciliation_lookback_mins=1440),
        data_clients={IB: InteractiveBrokersDataClientConfig(
            ibg_host="127.0.0.1", ibg_port=port, ibg_client_id=client_id, dockerized_gateway=None,
            market_data_type=IBMarketDataTypeEnum.REALTIME, use_regular_trading_hours=False,
            instrument_provider=provider, connection_timeout=20, request_timeout=10)},
        exec_clients={IB: InteractiveBrokersExecClientConfig(
            ibg_host="127.0.0.1", ibg_port=port, ibg_client_id=client_id, account_id=account,
            dockerized_gateway=None, instrument_provider=provider, connection_timeout=20,
            routing=RoutingConfig(default=True))},
        timeout_connection=20.0,
        timeout_reconciliation=10.0,
        timeout_portfolio=10.0,
        timeout_disconnection=10.0,
        timeout_post_stop=1.0,
    )
    node = TradingNode(config=config)
    node.add_data_client_factory(IB, InteractiveBrokersLiveDataClientFactory)
    node.add_exec_client_factory(IB, InteractiveBrokersLiveExecClientFactory)
    return node


async def _drive(node: TradingNode, strategy: Conformance, timeout: float) -> None:
    run = asyncio.ensure_future(node.run_async())
    started = time.monotonic()
    try:
        await asyncio.wait_for(strategy.done.wait(), timeout)
    except TimeoutError:
        strategy.fail(f"timed out after {timeout:.0f}s in step {strategy._step!r}")
    strategy.report["elapsed_s"] = round(time.monotonic() - started, 3)
    await asyncio.sleep(0.5)  # late position/account updates after the cancel
    strategy.snapshot("end")
    stop_started = time.monotonic()
    await node.stop_async()
    strategy.report["stop_s"] = round(time.monotonic() - stop_started, 3)
    # stopped engines drain their queues and end, which ends run_async (cancelling it would log an error)
    await asyncio.wait_for(run, 5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--account", default="DU0000001")
    ap.add_argument("--client-id", type=int, default=11)
    ap.add_argument("--stock", default="AAPL")
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--history-end", type=datetime.fromisoformat, default=None,
                    help="end of the stock's 30 minutes of 1-minute bars (ISO, with offset; default: now)")
    ap.add_argument("--leave-resting", action="store_true",
                    help="finish with a GTC buy limit resting at the gateway")
    ap.add_argument("--reconnect", action="store_true",
                    help="a restarted node: report the open orders reconciled at start, cancel them, stop")
    ap.add_argument("--timeout", type=float, default=25.0)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)

    import nautilus_trader

    report: dict[str, Any] = {"nautilus_trader": nautilus_trader.__version__, "python": sys.version.split()[0]}
    node = build_node(args.port, args.account, args.client_id, args.stock, args.log_level)
    strategy = Conformance(ConformanceConfig(stock_symbol=args.stock, history_end=args.history_end,
                                             leave_resting=args.leave_resting, reconnect=args.reconnect))
    node.trader.add_strategy(strategy)
    node.build()
    try:
        node.get_event_loop().run_until_complete(_drive(node, strategy, args.timeout))
        report.update(strategy.report)
    except Exception:
        report.update(strategy.report)
        report["failure"] = report.get("failure") or traceback.format_exc()
    finally:
        node.dispose()
        report["disposed"] = True
        args.report.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
