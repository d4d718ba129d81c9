"""Orders through ib_async: every order type fills or rests, brackets, partial fills, cancel, P&L."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from ib_async import LimitOrder, MarketOrder, Order, Stock, StopLimitOrder, StopOrder

from trader.sim import testkit
from trader.sim.clock import SimClock
from trader.sim.gateway import SimGateway
from trader.testing import run_async, until


@contextlib.asynccontextmanager
async def connected(tmp_path, **kw):
    """gateway, client, clock and qualified AAPL."""
    async with testkit.connected(tmp_path, **kw) as (gw, ib):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        yield gw, ib, gw.clock, aapl


def move(gw: SimGateway, clock: SimClock, con_id: int, price: float) -> None:
    """Pin the simulated price and let a second pass so the tick loop sees it."""
    clock.advance(timedelta(seconds=1))
    gw.market.set_price(con_id, price)


@run_async
async def test_market_order_fills_at_the_ask_with_commission_and_position(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, aapl):
        q = gw.market.quote(aapl.conId)
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 100))
        await until(lambda: trade.isDone() and trade.fills and trade.fills[-1].commissionReport.execId)
        assert trade.orderStatus.status == "Filled"
        assert trade.orderStatus.avgFillPrice == q.ask
        fill = trade.fills[0]
        assert fill.execution.side == "BOT" and fill.execution.shares == 100
        assert fill.execution.execId.endswith(".01")
        assert fill.commissionReport.commission == pytest.approx(1.0)  # IB fixed: max($1, 100 × $0.005)
        await until(lambda: ib.positions() and ib.portfolio())
        [pos] = ib.positions()
        assert pos.position == 100 and pos.avgCost == pytest.approx(q.ask + 0.01)  # avg cost carries commission
        assert ib.portfolio()[0].position == 100


@run_async
async def test_limit_rests_until_marketable_then_fills_at_its_limit_or_better(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl):
        q = gw.market.quote(aapl.conId)
        limit = round(q.bid - 5, 2)
        trade = ib.placeOrder(aapl, LimitOrder("BUY", 10, limit))
        await until(lambda: trade.orderStatus.status == "Submitted")
        await asyncio.sleep(0.1)
        assert trade.orderStatus.status == "Submitted" and not trade.fills
        assert [t.order.orderId for t in ib.openTrades()] == [trade.order.orderId]
        move(gw, clock, aapl.conId, limit - 1)
        await until(trade.isDone)
        assert trade.orderStatus.status == "Filled"
        assert trade.orderStatus.avgFillPrice <= limit


@run_async
async def test_stop_and_stop_limit_trigger_on_the_cross(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl):
        buy = ib.placeOrder(aapl, MarketOrder("BUY", 20))
        await until(buy.isDone)
        last = gw.market.quote(aapl.conId).last
        stop = ib.placeOrder(aapl, StopOrder("SELL", 10, round(last - 2, 2)))
        stop_lmt = ib.placeOrder(aapl, StopLimitOrder("SELL", 10, round(last - 4, 2), round(last - 3, 2)))
        await until(lambda: stop.orderStatus.status == "Submitted" and stop_lmt.orderStatus.status == "Submitted")
        move(gw, clock, aapl.conId, last - 2.5)  # through the stop, not the stop-limit's trigger
        await until(stop.isDone)
        assert stop.orderStatus.status == "Filled" and stop.orderStatus.avgFillPrice <= last - 2
        assert stop_lmt.orderStatus.status == "Submitted"
        move(gw, clock, aapl.conId, last - 3.5)  # triggers at -3, limit -4: sells at the bid (≥ limit)
        await until(stop_lmt.isDone)
        assert stop_lmt.orderStatus.status == "Filled"
        assert stop_lmt.orderStatus.avgFillPrice >= round(last - 4, 2)


@run_async
async def test_trailing_stop_by_amount_and_percent_ratchets_then_fires(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl):
        buy = ib.placeOrder(aapl, MarketOrder("BUY", 20))
        await until(buy.isDone)
        base = gw.market.quote(aapl.conId).last
        move(gw, clock, aapl.conId, base)
        trail_amt = ib.placeOrder(aapl, Order(action="SELL", totalQuantity=10, orderType="TRAIL", auxPrice=2.0))
        trail_pct = ib.placeOrder(aapl, Order(action="SELL", totalQuantity=10, orderType="TRAIL",
                                              trailingPercent=5.0))
        await until(lambda: trail_amt.orderStatus.status == "Submitted")
        move(gw, clock, aapl.conId, base + 10)  # ratchet up: stops at base+8 and (base+10)*0.95
        await asyncio.sleep(0.1)
        assert not trail_amt.isDone() and not trail_pct.isDone()
        move(gw, clock, aapl.conId, base + 7.5)  # below base+8: the amount trail fires, the percent one holds
        await until(trail_amt.isDone)
        assert trail_amt.orderStatus.status == "Filled" and not trail_pct.isDone()
        move(gw, clock, aapl.conId, (base + 10) * 0.94)
        await until(trail_pct.isDone)
        assert trail_pct.orderStatus.status == "Filled"


@run_async
async def test_bracket_take_profit_fills_and_stop_loss_is_cancelled(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl):
        q = gw.market.quote(aapl.conId)
        parent, take_profit, stop_loss = ib.bracketOrder("BUY", 50, round(q.ask + 0.5, 2),
                                                         round(q.ask + 5, 2), round(q.bid - 5, 2))
        trades = [ib.placeOrder(aapl, o) for o in (parent, take_profit, stop_loss)]
        await until(lambda: trades[0].isDone())
        assert trades[0].orderStatus.status == "Filled"
        await until(lambda: trades[1].orderStatus.status == "Submitted" and trades[2].orderStatus.status == "Submitted")
        move(gw, clock, aapl.conId, q.ask + 6)
        await until(lambda: trades[1].isDone() and trades[2].isDone())
        assert trades[1].orderStatus.status == "Filled"
        assert trades[2].orderStatus.status == "Cancelled"
        await until(lambda: not ib.positions())
        assert ib.openTrades() == []


@run_async
async def test_large_order_fills_in_several_partial_executions(tmp_path):
    async with connected(tmp_path, max_fill_fraction_of_size=0.1) as (gw, ib, _clock, aapl):
        q = gw.market.quote(aapl.conId)
        qty = 6 * int(q.ask_size * 0.1)
        trade = ib.placeOrder(aapl, MarketOrder("BUY", qty))
        statuses: list[float] = []
        trade.statusEvent += lambda t: statuses.append(t.orderStatus.filled)
        await until(trade.isDone)
        assert len(trade.fills) >= 6
        assert sum(f.execution.shares for f in trade.fills) == qty
        assert trade.fills[-1].execution.cumQty == qty
        assert any(0 < f < qty for f in statuses)  # partially filled states were reported


@run_async
async def test_cancel_and_global_cancel(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, aapl):
        q = gw.market.quote(aapl.conId)
        errors: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
        t1 = ib.placeOrder(aapl, LimitOrder("BUY", 10, round(q.bid - 10, 2)))
        t2 = ib.placeOrder(aapl, LimitOrder("BUY", 10, round(q.bid - 11, 2)))
        await until(lambda: t1.orderStatus.status == "Submitted" and t2.orderStatus.status == "Submitted")
        ib.cancelOrder(t1.order)
        await until(t1.isDone)
        assert t1.orderStatus.status == "Cancelled"
        assert (t1.order.orderId, 202) in errors
        ib.reqGlobalCancel()
        await until(t2.isDone)
        assert t2.orderStatus.status == "Cancelled" and ib.openTrades() == []
        # modifying a resting order keeps its permId
        t3 = ib.placeOrder(aapl, LimitOrder("BUY", 10, round(q.bid - 10, 2)))
        await until(lambda: t3.orderStatus.status == "Submitted")
        perm = t3.order.permId
        t3.order.lmtPrice = round(q.bid - 9, 2)
        ib.placeOrder(aapl, t3.order)
        await until(lambda: gw.engine.order(t3.order.orderId, 1).lmt_price == round(q.bid - 9, 2))
        assert gw.engine.order(t3.order.orderId, 1).perm_id == perm


@run_async
async def test_pnl_matches_hand_computed_values(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl):
        pnl = ib.reqPnL("DU0000001")
        buy = ib.placeOrder(aapl, MarketOrder("BUY", 100))
        await until(lambda: buy.isDone() and buy.fills[-1].commissionReport.execId)
        cost = 100 * buy.orderStatus.avgFillPrice + buy.fills[-1].commissionReport.commission
        mark = round(buy.orderStatus.avgFillPrice + 3.0, 2)
        move(gw, clock, aapl.conId, mark)
        last = gw.market.quote(aapl.conId).last
        await until(lambda: pnl.unrealizedPnL == pytest.approx(100 * last - cost))
        single = ib.reqPnLSingle("DU0000001", "", aapl.conId)
        await until(lambda: single.position == 100)
        assert single.value == pytest.approx(100 * last)
        assert single.unrealizedPnL == pytest.approx(100 * last - cost)

        sell = ib.placeOrder(aapl, MarketOrder("SELL", 100))
        await until(lambda: sell.isDone() and sell.fills[-1].commissionReport.execId)
        proceeds = 100 * sell.orderStatus.avgFillPrice - sell.fills[-1].commissionReport.commission
        assert sell.fills[-1].commissionReport.realizedPNL == pytest.approx(proceeds - cost)
        await until(lambda: pnl.realizedPnL == pytest.approx(proceeds - cost) and pnl.unrealizedPnL == 0)
        await until(lambda: ib.accountValues() and any(
            v.tag == "TotalCashValue" and float(v.value) == pytest.approx(1_000_000 + proceeds - cost)
            for v in ib.accountValues()))


@run_async
async def test_what_if_order_previews_margin_and_commission_without_placing(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, aapl):
        state = await ib.whatIfOrderAsync(aapl, MarketOrder("BUY", 100))
        last = gw.market.quote(aapl.conId).last
        assert float(state.initMarginChange) == pytest.approx(100 * last * 0.25, rel=1e-6)
        assert state.commission == pytest.approx(1.0)
        assert gw.engine.open_orders() == [] and gw.engine.executions() == []
