"""OrderPlacer and the ib_async → MMR conversions, end to end against the simulated gateway."""

from __future__ import annotations

import asyncio
import math

import pytest
from ib_async import Ticker

from trader.broker import convert
from trader.broker.placement import OrderPlacer
from trader.errors import OrderNotFound, OrderRejected
from trader.testing import run_async, until
from trader.trading.models import Action, OrderType
from trader.trading.orders import OrderRequest

from .conftest import AAPL_CON_ID, ACCOUNT


def req(action: Action = Action.BUY, order_type: OrderType = OrderType.MARKET, **kw) -> OrderRequest:
    return OrderRequest(symbol="AAPL", action=action, quantity=kw.pop("quantity", 10), order_type=order_type,
                        correlation_id=kw.pop("correlation_id", "corr-1"), **kw)


def live_orders(b) -> list:
    return b.gw.engine.open_orders()


def sim_position(b, con_id: int = AAPL_CON_ID) -> float:
    return b.gw.account.position(con_id)[0]


# --------------------------------------------------------------------------- build_order
def test_build_order_maps_every_type_and_keeps_market_orders_inside_rth():
    build = OrderPlacer.build_order
    mkt = build(req(), 5)
    assert (mkt.orderType, mkt.action, mkt.totalQuantity, mkt.tif) == ("MKT", "BUY", 5.0, "DAY")
    assert mkt.outsideRth is False and mkt.orderRef == "corr-1"
    assert build(req(outside_rth=True), 5).outsideRth is True
    lmt = build(req(order_type=OrderType.LIMIT, limit_price=101.5), 5)
    assert (lmt.orderType, lmt.lmtPrice) == ("LMT", 101.5)
    stp = build(req(Action.SELL, OrderType.STOP, stop_price=99.0), 5)
    assert (stp.orderType, stp.auxPrice, stp.action) == ("STP", 99.0, "SELL")
    stl = build(req(Action.SELL, OrderType.STOP_LIMIT, stop_price=99.0, limit_price=98.5), 5)
    assert (stl.orderType, stl.auxPrice, stl.lmtPrice) == ("STP LMT", 99.0, 98.5)
    pct = build(req(Action.SELL, OrderType.TRAILING_STOP, trailing_percent=3.0), 5)
    assert (pct.orderType, pct.trailingPercent) == ("TRAIL", 3.0)
    assert not math.isfinite(pct.auxPrice) or pct.auxPrice > 1e300  # unset: IB reads the percent
    amt = build(req(Action.SELL, OrderType.TRAILING_STOP, trailing_amount=2.5, stop_price=97.0), 5)
    assert (amt.auxPrice, amt.trailStopPrice) == (2.5, 97.0)


# --------------------------------------------------------------------------- single orders end to end
@run_async
async def test_market_order_fills_and_reports_the_fill(sim_broker):
    async with sim_broker() as b:
        ask = b.quote().ask
        res = await b.placer.place(b.aapl, req(quantity=10), 10)
        assert res.status == "Filled" and res.filled == 10 and res.avg_fill_price == pytest.approx(ask)
        assert len(res.order_ids) == 1 and res.perm_ids[0] > 0 and res.error_codes == ()
        assert b.gw.engine.order(res.order_ids[0], 1).outside_rth is False
        assert b.gw.engine.order(res.order_ids[0], 1).order_ref == "corr-1"


@run_async
async def test_limit_order_rests_then_fills_at_its_limit_or_better(sim_broker):
    async with sim_broker() as b:
        limit = round(b.quote().bid - 5, 2)
        res = await b.placer.place(b.aapl, req(order_type=OrderType.LIMIT, limit_price=limit), 10)
        assert res.status == "Submitted" and res.filled == 0
        [row] = [convert.trade_to_order_row(t) for t in b.ib.openTrades()]
        assert row["order_id"] == res.order_ids[0] and row["limit_price"] == limit and row["stop_price"] is None
        assert row["order_type"] == "LMT" and row["remaining"] == 10 and row["status"] == "Submitted"
        b.move(AAPL_CON_ID, limit - 1)
        await until(lambda: not live_orders(b))
        # The sim retires the order before the client has read its execDetails: wait for the client's view.
        await until(lambda: len(b.ib.fills()) == 1)
        [fill] = b.ib.fills()
        assert fill.execution.price <= limit and sim_position(b) == 10


@run_async
async def test_stop_and_stop_limit_rest_then_trigger(sim_broker):
    async with sim_broker() as b:
        await b.placer.place(b.aapl, req(quantity=20), 20)
        last = b.quote().last
        stop = await b.placer.place(b.aapl, req(Action.SELL, OrderType.STOP, stop_price=round(last - 2, 2)), 10)
        stop_lmt = await b.placer.place(b.aapl, req(Action.SELL, OrderType.STOP_LIMIT, stop_price=round(last - 3, 2),
                                                    limit_price=round(last - 4, 2)), 10)
        assert stop.status == "Submitted" and stop_lmt.status == "Submitted"
        b.move(AAPL_CON_ID, last - 2.5)
        await until(lambda: b.gw.engine.order(stop.order_ids[0], 1).status == "Filled")
        assert b.gw.engine.order(stop_lmt.order_ids[0], 1).status == "Submitted"
        b.move(AAPL_CON_ID, last - 3.5)
        await until(lambda: sim_position(b) == 0)


@run_async
async def test_trailing_stops_by_percent_and_amount_rest_with_a_trail_stop(sim_broker):
    async with sim_broker() as b:
        await b.placer.place(b.aapl, req(quantity=20), 20)
        base = b.quote().last
        b.move(AAPL_CON_ID, base)
        pct = await b.placer.place(b.aapl, req(Action.SELL, OrderType.TRAILING_STOP, trailing_percent=5.0), 10)
        amt = await b.placer.place(b.aapl, req(Action.SELL, OrderType.TRAILING_STOP, trailing_amount=2.0,
                                               stop_price=round(base - 2, 2)), 10)
        assert pct.status == "Submitted" and amt.status == "Submitted"
        sim_pct, sim_amt = (b.gw.engine.order(r.order_ids[0], 1) for r in (pct, amt))
        assert sim_pct.trailing_percent == 5.0 and sim_amt.aux_price == 2.0
        await until(lambda: b.gw.engine.order(amt.order_ids[0], 1).trail_stop_price is not None)
        assert b.gw.engine.order(amt.order_ids[0], 1).trail_stop_price == pytest.approx(base - 2, abs=0.01)
        rows = {r["order_id"]: r for r in map(convert.trade_to_order_row, b.ib.openTrades())}
        assert rows[pct.order_ids[0]]["trailing_percent"] == 5.0
        assert rows[amt.order_ids[0]]["trailing_amount"] == 2.0
        b.move(AAPL_CON_ID, base - 2.5)  # through the amount trail only
        await until(lambda: b.gw.engine.order(amt.order_ids[0], 1).status == "Filled")
        assert b.gw.engine.order(pct.order_ids[0], 1).status == "Submitted"


@run_async
async def test_a_rejected_order_raises_with_ibs_code_and_message(sim_broker):
    async with sim_broker() as b:
        b.gw.faults.reject_next_order(201, "Order rejected - reason:test says no")
        with pytest.raises(OrderRejected) as exc:
            await b.placer.place(b.aapl, req(), 10)
        assert exc.value.code == 201 and "test says no" in exc.value.message and exc.value.leg == ""
        assert sim_position(b) == 0 and not live_orders(b)


# --------------------------------------------------------------------------- brackets
def bracket(b, entry_type: OrderType = OrderType.LIMIT, entry_offset: float = -2.0, **kw) -> OrderRequest:
    q = b.quote()
    limit = round(q.ask + entry_offset, 2) if entry_type is OrderType.LIMIT else None
    ref = limit or q.ask
    return req(order_type=entry_type, limit_price=limit, take_profit=round(ref + 5, 2),
               stop_loss=round(ref - 5, 2), **kw)


@run_async
async def test_bracket_places_three_legs_children_wait_for_the_parent_then_tp_cancels_sl(sim_broker):
    async with sim_broker() as b:
        r = bracket(b, entry_offset=-2.0)  # entry rests below the market
        res = await b.placer.place_bracket(b.aapl, r, 10)
        entry_id, tp_id, sl_id = res.order_ids
        assert res.status == "Submitted" and res.leg_statuses == ("Submitted", "PreSubmitted", "PreSubmitted")
        tp, sl = b.gw.engine.order(tp_id, 1), b.gw.engine.order(sl_id, 1)
        assert tp.parent_id == sl.parent_id == entry_id and tp.oca_group and tp.oca_group == sl.oca_group
        assert (tp.action, tp.order_type, tp.lmt_price) == ("SELL", "LMT", r.take_profit)
        assert (sl.action, sl.order_type, sl.aux_price) == ("SELL", "STP", r.stop_loss)
        b.move(AAPL_CON_ID, r.limit_price - 0.5)  # entry fills, children go live
        await until(lambda: b.gw.engine.order(tp_id, 1).status == "Submitted"
                    and b.gw.engine.order(sl_id, 1).status == "Submitted")
        assert sim_position(b) == 10
        b.move(AAPL_CON_ID, r.take_profit + 1)
        await until(lambda: not live_orders(b))
        assert b.gw.engine.order(tp_id, 1).status == "Filled"
        assert b.gw.engine.order(sl_id, 1).status == "Cancelled"
        assert sim_position(b) == 0


@run_async
async def test_market_bracket_fills_the_entry_and_leaves_both_exits_working(sim_broker):
    async with sim_broker() as b:
        res = await b.placer.place_bracket(b.aapl, bracket(b, OrderType.MARKET), 10)
        assert res.status == "Filled" and res.filled == 10
        await until(lambda: [b.gw.engine.order(i, 1).status for i in res.order_ids[1:]] == ["Submitted"] * 2)
        assert sim_position(b) == 10


@pytest.mark.parametrize(("skip", "leg"), [(1, "take-profit"), (2, "stop-loss")])
@pytest.mark.parametrize("entry_type", [OrderType.MARKET, OrderType.LIMIT])
@run_async
async def test_bracket_rolls_back_when_a_leg_is_rejected(sim_broker, skip, leg, entry_type):
    async with sim_broker() as b:
        b.gw.faults.reject_next_order(201, f"Order rejected - reason:no {leg}", skip=skip)
        with pytest.raises(OrderRejected) as exc:
            await b.placer.place_bracket(b.aapl, bracket(b, entry_type, entry_offset=+1.0), 10)
        assert exc.value.leg == leg and exc.value.code == 201 and f"no {leg}" in str(exc.value)
        assert "cancelled" in str(exc.value)
        # the rollback was confirmed before the error was raised: nothing live, nothing held, nothing filled
        assert live_orders(b) == [] and b.ib.openTrades() == []
        assert sim_position(b) == 0 and b.gw.engine.executions() == []
        await asyncio.sleep(0.1)  # a few ticks later still nothing
        assert sim_position(b) == 0 and b.gw.engine.executions() == []


# --------------------------------------------------------------------------- cancel
@run_async
async def test_cancel_one_order_and_unknown_ids(sim_broker):
    async with sim_broker() as b:
        res = await b.placer.place(b.aapl, req(order_type=OrderType.LIMIT, limit_price=round(b.quote().bid - 9, 2)), 5)
        assert await b.placer.cancel(res.order_ids[0]) == "Cancelled"
        assert live_orders(b) == []
        assert await b.placer.cancel(res.order_ids[0]) == "Cancelled"  # already done: reported, not re-sent
        with pytest.raises(OrderNotFound):
            await b.placer.cancel(987654)


@run_async
async def test_cancel_all_cancels_every_open_order_including_bracket_children(sim_broker):
    async with sim_broker() as b:
        bid = b.quote().bid
        one = await b.placer.place(b.aapl, req(order_type=OrderType.LIMIT, limit_price=round(bid - 9, 2)), 5)
        two = await b.placer.place_bracket(b.aapl, bracket(b, entry_offset=-3.0), 5)
        cancelled = await b.placer.cancel_all()
        assert sorted(cancelled) == sorted([*one.order_ids, *two.order_ids])
        assert b.ib.openTrades() == [] and live_orders(b) == []
        assert await b.placer.cancel_all() == []


# --------------------------------------------------------------------------- quotes and conversions
@run_async
async def test_snapshot_quote_matches_the_gateway(sim_broker):
    async with sim_broker() as b:
        q = b.quote()
        snap = await b.placer.snapshot(b.aapl)
        assert snap["bid"] == pytest.approx(q.bid) and snap["ask"] == pytest.approx(q.ask)
        assert snap["last"] == pytest.approx(q.last) and snap["bid"] < snap["ask"]
        assert set(snap) >= {"time", "bid_size", "ask_size", "volume", "close", "open", "high", "low"}


def test_ticker_to_quote_turns_nan_and_minus_one_into_none():
    t = Ticker()  # its __post_init__ resets every field to nan: set them afterwards, as the wrapper does
    t.bid, t.ask, t.last, t.bidSize, t.askSize = -1.0, 101.0, float("nan"), float("nan"), 3.0
    q = convert.ticker_to_quote(t)
    assert q["bid"] is None and q["last"] is None and q["bid_size"] is None and q["time"] is None
    assert q["ask"] == 101.0 and q["ask_size"] == 3.0
    assert convert.num(1.7976931348623157e308) is None and convert.num("") is None and convert.num("2.5") == 2.5


@run_async
async def test_positions_account_and_fills_after_a_buy_match_the_gateway_account(sim_broker):
    async with sim_broker() as b:
        unknown = convert.account_snapshot(b.ib, "DU-NOT-MINE")  # nothing streamed for it: unknown, not zero
        assert (unknown.net_liquidation, unknown.cash, unknown.daily_pnl) == (None, None, None)
        convert.start_pnl(b.ib, ACCOUNT)
        convert.start_pnl(b.ib, ACCOUNT)  # idempotent
        assert len(b.ib.pnl(ACCOUNT)) == 1
        res = await b.placer.place(b.aapl, req(quantity=100), 100)
        price = res.avg_fill_price
        await until(lambda: b.ib.fills() and b.ib.fills()[-1].commissionReport.execId)
        commission = b.ib.fills()[-1].commissionReport.commission
        expected_cash = 1_000_000 - 100 * price - commission
        await until(lambda: convert.account_snapshot(b.ib, ACCOUNT).cash == pytest.approx(expected_cash)
                    and convert.position_rows(b.ib))
        [pos] = convert.position_rows(b.ib)
        assert (pos.symbol, pos.con_id, pos.quantity, pos.sec_type) == ("AAPL", AAPL_CON_ID, 100.0, "STK")
        assert pos.avg_cost == pytest.approx(price + commission / 100)  # IB's average cost carries commission
        assert pos.market_price is not None and pos.market_value == pytest.approx(100 * pos.market_price)
        assert pos.unrealized_pnl == pytest.approx(100 * pos.market_price - (100 * price + commission), abs=0.05)
        acct = convert.account_snapshot(b.ib, ACCOUNT)
        sim = {tag: float(v) for tag, (v, _c) in b.gw.account.values(b.gw.market).items()
               if tag in ("TotalCashValue",)}
        assert acct.cash == pytest.approx(sim["TotalCashValue"])
        assert acct.net_liquidation == pytest.approx(expected_cash + 100 * pos.market_price, rel=1e-4)
        assert acct.buying_power is not None and acct.currency == "USD"
        await until(lambda: convert.daily_pnl(b.ib, ACCOUNT) is not None)
        [fill] = [convert.fill_to_row(f) for f in b.ib.fills()]
        assert fill["side"] == "BOT" and fill["shares"] == 100 and fill["price"] == pytest.approx(price)
        assert fill["commission"] == pytest.approx(commission) and not fill["realized_pnl"]  # opening fill
        assert fill["order_id"] == res.order_ids[0] and fill["con_id"] == AAPL_CON_ID


@run_async
async def test_positions_known_only_from_ib_positions_have_unknown_prices(sim_broker):
    async with sim_broker() as b:
        await b.placer.place(b.aapl, req(quantity=10), 10)
        await until(lambda: b.ib.positions() and b.ib.portfolio())
        b.ib.wrapper.portfolio.clear()  # as before the first portfolio update arrives
        [pos] = convert.position_rows(b.ib)
        assert pos.quantity == 10 and pos.market_price is None and pos.unrealized_pnl is None
        assert pos.market_value is None


@run_async
async def test_bracket_leg_refused_by_the_gateway_itself_rolls_back_too(sim_broker):
    async with sim_broker() as b:
        r = bracket(b, OrderType.MARKET)
        off_tick = OrderRequest(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                                   "take_profit": r.take_profit + 0.003})
        with pytest.raises(OrderRejected) as exc:
            await b.placer.place_bracket(b.aapl, off_tick, 10)
        assert (exc.value.leg, exc.value.code) == ("take-profit", 110)  # IB: price not on the minimum tick
        assert live_orders(b) == [] and sim_position(b) == 0 and b.gw.engine.executions() == []
