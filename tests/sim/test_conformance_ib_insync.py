"""ib_insync 0.9.86 (negotiates server version 176) against the simulated gateway: a client we did not write.

It reads faProfile in openOrder/completedOrder and no pendingPriceRevision in execDetails; a reply laid out
for 178 left it with no fills, commissions, open orders or executions. The test trades, reconnects as the
same client id and checks everything a restarted bot needs: its resting orders, its executions with their
commissions, its position.
"""

from __future__ import annotations

import asyncio

import pytest
from ib_insync import IB, LimitOrder, MarketOrder, Order, Stock

from trader.sim import testkit
from trader.testing import run_async, until


async def _connect(gw, client_id: int = 7) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=5)
    return ib


@run_async
async def test_ib_insync_trades_and_sees_everything_after_reconnect(tmp_path):
    async with testkit.gateway(tmp_path) as gw:
        ib = await _connect(gw)
        try:
            assert ib.client.serverVersion() == 176
            [cd] = await ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
            assert cd.contract.conId == 265598 and cd.stockType == "COMMON"
            assert [(t.tag, t.value) for t in cd.secIdList] == [("ISIN", "US0378331005")]
            aapl = cd.contract
            q = gw.market.quote(aapl.conId)

            buy = ib.placeOrder(aapl, MarketOrder("BUY", 10))
            await until(lambda: buy.isDone() and buy.fills and buy.fills[-1].commissionReport.execId)
            assert buy.orderStatus.status == "Filled" and buy.orderStatus.filled == 10
            assert buy.orderStatus.avgFillPrice == q.ask
            assert buy.fills[0].commissionReport.commission == pytest.approx(1.0)

            seen: list[tuple[str, float]] = []  # every openOrder as decoded, before ib_insync merges it
            on_open = ib.wrapper.openOrder
            ib.wrapper.openOrder = lambda oid, c, o, st: (seen.append((o.orderType, o.trailStopPrice)),
                                                          on_open(oid, c, o, st))
            trail = Order(action="SELL", totalQuantity=10, orderType="TRAIL", auxPrice=2.0, tif="GTC")
            stop = ib.placeOrder(aapl, trail)
            resting = ib.placeOrder(aapl, LimitOrder("BUY", 5, round(q.bid - 20, 2), tif="GTC"))
            await until(lambda: stop.orderStatus.status == "Submitted" and resting.orderStatus.status == "Submitted")
            # the first openOrder already carries the trailing stop's initial stop price
            first_trail = next(p for t, p in seen if t == "TRAIL")
            assert first_trail == pytest.approx(gw.market.quote(aapl.conId).last - 2.0, abs=0.011)
        finally:
            ib.disconnect()
        await asyncio.sleep(0.05)

        ib = await _connect(gw)  # a restarted bot with the same client id
        try:
            await until(lambda: len(ib.openTrades()) == 2 and ib.positions())
            by_type = {t.order.orderType: t for t in ib.openTrades()}
            assert set(by_type) == {"TRAIL", "LMT"}
            assert by_type["TRAIL"].order.trailStopPrice > 0 and by_type["TRAIL"].order.auxPrice == 2.0
            assert by_type["LMT"].order.totalQuantity == 5
            [pos] = ib.positions()
            assert pos.contract.conId == 265598 and pos.position == 10
            execs = await ib.reqExecutionsAsync()
            assert [(f.execution.side, f.execution.shares, f.execution.price) for f in execs] == [("BOT", 10, q.ask)]
            # ib_insync files commission reports under the fills it saw at connect (its reqExecutions)
            await until(lambda: ib.fills() and ib.fills()[0].commissionReport.execId)
            assert ib.fills()[0].commissionReport.commission == pytest.approx(1.0)
            ib.cancelOrder(by_type["LMT"].order)
            await until(lambda: by_type["LMT"].orderStatus.status == "Cancelled")
            done = await ib.reqCompletedOrdersAsync(apiOnly=True)
            assert {t.order.orderType for t in done} >= {"MKT", "LMT"}
        finally:
            ib.disconnect()
