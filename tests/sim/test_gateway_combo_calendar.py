"""Calendars on the simulated gateway and whatIf previews of BAG orders (issue 17): a long call calendar (legs of
two expiries) filled as ONE order at its net price; whatIfOrder on a BAG answers with the margin its placement
is checked against (the spread's max loss) and the legs' commission, placing nothing."""

from __future__ import annotations

import pytest
from ib_async import ComboLeg, Contract, LimitOrder

from trader.sim import testkit
from trader.testing import run_async, until


def _calendar(gw, right: str = "C"):
    """(far, near): one AAPL strike near the money listed in the two furthest expiries."""
    today = gw.clock.now().strftime("%Y%m%d")
    opts = [c for c in gw.universe.find("AAPL", "OPT") if c.right == right and c.last_trade_date > today]
    near_exp, far_exp = sorted({c.last_trade_date for c in opts})[-2:]
    und = gw.market.quote(opts[0].underlying_con_id).last
    by = {(c.last_trade_date, c.strike): c for c in opts}
    strike = min((k for (e, k) in by if e == near_exp and (far_exp, k) in by), key=lambda k: abs(k - und))
    return by[(far_exp, strike)], by[(near_exp, strike)]


def _bag(buy, sell, symbol: str = "AAPL") -> Contract:
    return Contract(secType="BAG", symbol=symbol, currency="USD", exchange="SMART", comboLegs=[
        ComboLeg(conId=buy.con_id, ratio=1, action="BUY", exchange="SMART"),
        ComboLeg(conId=sell.con_id, ratio=1, action="SELL", exchange="SMART")])


@run_async
async def test_a_long_call_calendar_fills_as_one_order(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        far, near = _calendar(gw)
        assert far.last_trade_date > near.last_trade_date and far.strike == near.strike
        q_far, q_near = gw.market.quote(far.con_id), gw.market.quote(near.con_id)
        debit = q_far.ask - q_near.bid  # buy the far call at its ask, sell the near one at its bid
        trade = ib.placeOrder(_bag(far, near), LimitOrder("BUY", 3, round(debit + 0.05, 2)))
        await until(lambda: trade.isDone(), 10)
        assert trade.orderStatus.status == "Filled" and trade.filled() == 3
        assert trade.orderStatus.avgFillPrice == pytest.approx(debit)
        held = {con_id: pos for con_id, pos, _avg in gw.account.positions()}
        assert held == {far.con_id: 3, near.con_id: -3}


@run_async
async def test_what_if_of_a_bag_is_its_max_loss_and_the_legs_commission(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        far, near = _calendar(gw)
        state = await ib.whatIfOrderAsync(_bag(far, near), LimitOrder("BUY", 2, 4.0))
        # a long calendar's max loss is its debit: 4.00 × 100 × 2
        assert float(state.initMarginChange) == pytest.approx(800.0)
        assert float(state.maintMarginChange) == pytest.approx(800.0)
        assert state.commission == pytest.approx(2 * max(2 * 0.65, 1.0))  # two legs of 2 contracts
        assert float(state.equityWithLoanChange) == pytest.approx(-state.commission)
        assert gw.engine.open_orders() == [] and not gw.account.positions()  # nothing placed


@run_async
async def test_what_if_margin_is_the_one_the_placement_is_checked_against(tmp_path):
    errors: list[tuple[int, int]] = []
    async with testkit.connected(tmp_path, errors=errors) as (gw, ib):
        far, near = _calendar(gw, "P")
        funds = float(gw.account.values(gw.market)["AvailableFunds"][0])
        qty = int(funds // (50 * 100)) + 5  # at a 50.00 debit: just above the funds
        state = await ib.whatIfOrderAsync(_bag(far, near), LimitOrder("BUY", qty, 50.0))
        need = float(state.initMarginChange)
        assert need == pytest.approx(qty * 50 * 100) and need > funds
        trade = ib.placeOrder(_bag(far, near), LimitOrder("BUY", qty, 50.0))
        await until(lambda: any(code == 201 for _r, code in errors), 10)
        assert f"INITIAL MARGIN [{need:.2f}]" in trade.log[-1].message and trade.filled() == 0


@run_async
async def test_what_if_of_a_malformed_bag_is_an_error_not_a_preview(tmp_path):
    errors: list[tuple[int, int]] = []
    async with testkit.connected(tmp_path, errors=errors) as (gw, ib):
        far, near = _calendar(gw)
        bad = Contract(secType="BAG", symbol="AAPL", currency="USD", exchange="SMART", comboLegs=[
            ComboLeg(conId=far.con_id, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=999999999, ratio=1, action="SELL", exchange="SMART")])
        ib.client.placeOrder(ib.client.getReqId(), bad, LimitOrder("BUY", 1, 1.0, whatIf=True))
        await until(lambda: any(code == 200 for _r, code in errors), 10)
        assert gw.engine.open_orders() == []
