"""Combo (BAG) orders on the simulated gateway through ib_async: a vertical filled as ONE order at its net price,
one execution per leg (positions per leg) plus the BAG's own execution, like IB; a non-marketable net limit
rests; the open order echoes its combo legs to another client."""

from __future__ import annotations

import asyncio

from ib_async import ComboLeg, Contract, LimitOrder

from trader.sim import testkit
from trader.sim.combo_matching import BAG_CON_ID
from trader.testing import run_async, until


def _vertical(gw, right: str = "P"):
    """Two strikes of AAPL's furthest expiry near the money: (higher, lower)."""
    opts = [c for c in gw.universe.find("AAPL", "OPT") if c.right == right
            and c.last_trade_date > gw.clock.now().strftime("%Y%m%d")]
    expiry = max(c.last_trade_date for c in opts)
    und = gw.market.quote(opts[0].underlying_con_id).last
    chain = sorted((c for c in opts if c.last_trade_date == expiry), key=lambda c: abs(c.strike - und))[:6]
    hi, lo = sorted(chain[:2], key=lambda c: -c.strike)
    return hi, lo


def _bag(hi, lo) -> Contract:
    return Contract(secType="BAG", symbol="AAPL", currency="USD", exchange="SMART", comboLegs=[
        ComboLeg(conId=hi.con_id, ratio=1, action="BUY", exchange="SMART"),
        ComboLeg(conId=lo.con_id, ratio=1, action="SELL", exchange="SMART")])


@run_async
async def test_credit_vertical_fills_as_one_with_an_execution_per_leg(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        hi, lo = _vertical(gw)
        q_hi, q_lo = gw.market.quote(hi.con_id), gw.market.quote(lo.con_id)
        credit = round(q_hi.bid - q_lo.ask, 2)  # SELL the (buy hi / sell lo) put spread: sell hi at bid, buy lo at ask
        trade = ib.placeOrder(_bag(hi, lo), LimitOrder("SELL", 2, max(credit - 0.05, 0.01), orderRef="combo-1"))
        await until(lambda: trade.isDone(), 5)
        assert trade.orderStatus.status == "Filled" and trade.filled() == 2  # counted from the BAG's execution
        assert abs(trade.orderStatus.avgFillPrice - (q_hi.bid - q_lo.ask)) < 1e-6
        legs = {f.contract.conId: f for f in trade.fills if f.contract.secType != "BAG"}
        bag = [f for f in trade.fills if f.contract.secType == "BAG"]
        assert set(legs) == {hi.con_id, lo.con_id} and len(bag) == 1
        assert legs[hi.con_id].execution.side == "SLD" and legs[lo.con_id].execution.side == "BOT"
        assert legs[hi.con_id].execution.shares == 2 and legs[hi.con_id].execution.price == q_hi.bid
        assert bag[0].execution.orderRef == "combo-1" and bag[0].contract.conId == BAG_CON_ID
        held = {con_id: pos for con_id, pos, _avg in gw.account.positions()}
        assert held[hi.con_id] == -2 and held[lo.con_id] == 2  # positions per leg, no BAG position
        assert BAG_CON_ID not in held


@run_async
async def test_a_net_limit_below_the_market_rests_and_shows_its_legs(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        hi, lo = _vertical(gw, "C")
        trade = ib.placeOrder(_bag(lo, hi), LimitOrder("BUY", 1, 0.01))  # the call debit spread far below: rests
        await until(lambda: trade.orderStatus.status == "Submitted", 5)
        await asyncio.sleep(0.1)
        assert trade.filled() == 0 and not gw.account.positions()
        other = await testkit.connect(gw, client_id=0)
        try:
            listed = await other.reqAllOpenOrdersAsync()
            mine = [t for t in listed if t.order.orderId == trade.order.orderId]
            assert mine and mine[0].contract.secType == "BAG"
            assert [(leg.conId, leg.action) for leg in mine[0].contract.comboLegs] == \
                [(lo.con_id, "BUY"), (hi.con_id, "SELL")]
        finally:
            other.disconnect()
        ib.cancelOrder(trade.order)
        await until(lambda: trade.isDone(), 5)
        assert trade.orderStatus.status == "Cancelled"


@run_async
async def test_a_combo_with_an_unknown_leg_is_rejected(tmp_path):
    errors: list[tuple[int, int]] = []
    async with testkit.connected(tmp_path, errors=errors) as (gw, ib):
        hi, _lo = _vertical(gw)
        bag = Contract(secType="BAG", symbol="AAPL", currency="USD", exchange="SMART", comboLegs=[
            ComboLeg(conId=hi.con_id, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=999999999, ratio=1, action="SELL", exchange="SMART")])
        trade = ib.placeOrder(bag, LimitOrder("BUY", 1, 1.0))
        await until(lambda: any(code == 200 for _r, code in errors), 5)
        assert trade.filled() == 0 and not gw.account.positions()


@run_async
async def test_a_spread_whose_max_loss_exceeds_the_available_funds_is_rejected(tmp_path):
    errors: list[tuple[int, int]] = []
    async with testkit.connected(tmp_path, errors=errors) as (gw, ib):
        hi, lo = _vertical(gw)
        width = hi.strike - lo.strike
        funds = float(gw.account.values(gw.market)["AvailableFunds"][0])
        qty = int(funds // ((width - 0.01) * 100)) + 10  # credit 0.01: max loss ≈ width × 100 a spread
        trade = ib.placeOrder(_bag(hi, lo), LimitOrder("SELL", qty, 0.01))
        await until(lambda: any(code == 201 for _r, code in errors), 5)
        assert "MARGIN" in trade.log[-1].message and trade.filled() == 0 and not gw.account.positions()
