"""Field fidelity of the simulated gateway: security ids, account subscriptions, trailing stops, order ids."""

from __future__ import annotations

from ib_async import MarketOrder, Order, Stock

from trader.sim import testkit
from trader.sim.account import SimAccount
from trader.sim.matching import MatchingEngine
from trader.sim.models import OpenOrderEvent, SimOrder
from trader.sim.security_ids import REAL_ISINS, isin_check_digit, isin_for, sec_id_list
from trader.testing import run_async, until

AAPL = 265598


def test_every_isin_has_a_valid_check_digit_and_placeholders_are_marked():
    assert isin_check_digit("US037833100") == "5"  # Apple's, a textbook example
    for isin in REAL_ISINS.values():
        assert len(isin) == 12 and isin_check_digit(isin[:11]) == isin[11], isin
    fake = isin_for("SAP", "EUR", 14204)
    assert fake.startswith("DEX") and isin_check_digit(fake[:11]) == fake[11]
    assert sec_id_list("CASH", "EUR", "USD", 12087792) == [] and sec_id_list("STK", "AAPL", "USD", AAPL) == \
        [("ISIN", "US0378331005")]


def test_a_trailing_stops_first_open_order_carries_its_initial_stop(universe, market):
    engine = MatchingEngine(universe, market, SimAccount(starting_cash=1e6))
    market.set_price(AAPL, 200.0)
    trail = SimOrder(order_id=1, client_id=1, perm_id=0, con_id=AAPL, action="SELL", total_quantity=10,
                     order_type="TRAIL", aux_price=1.5, tif="GTC")
    events = engine.place(trail)
    first = next(e for e in events if isinstance(e, OpenOrderEvent))
    assert first.order.trail_stop_price == 198.5  # last 200 − 1.5


@run_async
async def test_contract_details_list_isins_for_stocks_only(tmp_path):
    async with testkit.connected(tmp_path) as (_gw, ib):
        [aapl] = await ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
        [sap] = await ib.reqContractDetailsAsync(Stock("SAP", "SMART", "EUR"))
        [eur] = await ib.reqContractDetailsAsync(_forex())
        assert [(t.tag, t.value) for t in aapl.secIdList] == [("ISIN", "US0378331005")]
        assert sap.secIdList[0].tag == "ISIN" and sap.secIdList[0].value.startswith("DE")
        assert not eur.secIdList


def _forex():
    from ib_async import Forex

    return Forex("EURUSD")


@run_async
async def test_account_summary_is_a_subscription_that_resends_what_a_fill_changed(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        before = {v.tag: v.value for v in await ib.accountSummaryAsync()}
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 100))
        await until(trade.isDone)

        def summary(tag: str) -> str:  # ib_async's live copy, updated by every accountSummary message
            return next(v.value for v in ib.wrapper.acctSummary.values() if v.tag == tag)

        def cash() -> str:
            return summary("TotalCashValue")

        await until(lambda: cash() != before["TotalCashValue"])
        assert float(cash()) < float(before["TotalCashValue"]) - 100 * gw.market.quote(aapl.conId).bid * 0.99
        assert float(summary("GrossPositionValue")) > float(before["GrossPositionValue"])


@run_async
async def test_next_valid_id_counts_what_if_ids(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        state = await ib.whatIfOrderAsync(aapl, Order(action="BUY", totalQuantity=10, orderType="MKT"))
        assert state.initMarginChange
        used = ib.client._reqIdSeq - 1  # the id whatIfOrderAsync took
        assert gw.next_order_id(1) == used + 1
        ib.disconnect()
        ib2 = await testkit.connect(gw, 1)
        try:
            assert ib2.client.getReqId() > used  # seeded from nextValidId
        finally:
            ib2.disconnect()
