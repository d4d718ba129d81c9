"""The simulated account: hand-computed cash, average cost, realized/unrealized/daily P&L, margin, commissions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from trader.sim.account import SimAccount

T0 = datetime(2026, 11, 24, 15, 30, 17, tzinfo=UTC)
AAPL, SPY, EURUSD = 265598, 756733, 12087792


@pytest.fixture
def aapl(universe):
    return universe.by_con_id(AAPL)


def _values(account, market) -> dict[str, float]:
    return {k: float(v) for k, (v, _) in account.values(market).items() if k not in ("AccountType", "Currency")}


def test_commissions(universe, aapl):
    acct = SimAccount()
    assert acct.commission_for(aapl, 100, 200.0) == 1.0  # $0.005/share is $0.50: the $1 minimum applies
    assert acct.commission_for(aapl, 1000, 50.0) == 5.0  # 1000 × $0.005
    assert acct.commission_for(aapl, 10, 1.0) == 0.1  # capped at 1% of the $10 trade value
    es = universe.find(symbol="ES", sec_type="FUT")[0]
    mes = universe.find(symbol="MES", sec_type="FUT")[0]
    assert acct.commission_for(es, 2, 6000.0) == 1.70
    assert acct.commission_for(mes, 2, 6000.0) == 0.50
    call = universe.find(symbol="SPY", sec_type="OPT", right="C")[0]
    assert acct.commission_for(call, 3, 2.5) == 1.95
    assert acct.commission_for(call, 1, 2.5) == 1.0  # $1 minimum
    eur = universe.by_con_id(EURUSD)
    assert acct.commission_for(eur, 20_000, 1.08) == 2.0  # minimum
    assert acct.commission_for(eur, 1_000_000, 1.10) == pytest.approx(22.0)  # 0.2 bps of $1.1M
    sap = universe.find(symbol="SAP", sec_type="STK")[0]
    assert acct.commission_for(sap, 100, 200.0) == pytest.approx(10.0)  # 0.05% of €20,000


def test_long_round_trip_hand_computed(aapl):
    acct = SimAccount(starting_cash=100_000.0)
    assert acct.apply_fill(aapl, "BUY", 100, 200.0, 1.0, at=T0) == 0.0
    assert acct.position(AAPL) == (100.0, pytest.approx(200.01))  # commission in the average cost
    assert acct.cash["USD"] == pytest.approx(100_000 - 20_000 - 1)
    acct.apply_fill(aapl, "BUY", 100, 210.0, 1.0, at=T0)
    assert acct.position(AAPL) == (200.0, pytest.approx((20_001 + 21_001) / 200))  # 205.01
    realized = acct.apply_fill(aapl, "SELL", 50, 220.0, 1.0, at=T0)
    assert realized == pytest.approx((220.0 - 205.01) * 50 - 1.0)  # 748.50
    assert acct.position(AAPL) == (150.0, pytest.approx(205.01))
    realized = acct.apply_fill(aapl, "SELL", 150, 190.0, 1.0, at=T0)
    assert realized == pytest.approx((190.0 - 205.01) * 150 - 1.0)  # -2252.50
    assert acct.position(AAPL) == (0.0, 0.0) and acct.positions() == []
    # cash = start − buys − commissions + sells: the realized P&L of the round trip
    assert acct.cash["USD"] == pytest.approx(100_000 - 20_000 - 21_000 + 11_000 + 28_500 - 4.0)
    assert acct.cash["USD"] - 100_000 == pytest.approx(748.50 - 2252.50)


def test_short_round_trip_and_flip(aapl):
    acct = SimAccount(starting_cash=100_000.0)
    acct.apply_fill(aapl, "SELL", 100, 200.0, 1.0, at=T0)
    assert acct.position(AAPL) == (-100.0, pytest.approx(199.99))  # IB deducts the commission for shorts
    assert acct.apply_fill(aapl, "BUY", 100, 190.0, 1.0, at=T0) == pytest.approx(998.0)
    acct.apply_fill(aapl, "BUY", 100, 100.0, 1.0, at=T0)
    realized = acct.apply_fill(aapl, "SELL", 300, 110.0, 3.0, at=T0)  # closes 100, opens 200 short
    assert realized == pytest.approx((110.0 - 100.01) * 100 - 1.0)
    assert acct.position(AAPL) == (-200.0, pytest.approx(110.0 - 2.0 / 200))


def test_futures_are_marked_to_market(universe):
    es = universe.find(symbol="ES", sec_type="FUT")[0]
    acct = SimAccount(starting_cash=100_000.0)
    acct.apply_fill(es, "BUY", 1, 6000.0, 0.85, at=T0)
    assert acct.cash["USD"] == 100_000.0  # no notional changes hands
    assert acct.position(es.con_id) == (1.0, pytest.approx(6000 * 50 + 0.85))
    realized = acct.apply_fill(es, "SELL", 1, 6010.0, 0.85, at=T0)
    assert realized == pytest.approx(10 * 50 - 1.70)  # 498.30
    assert acct.cash["USD"] == pytest.approx(100_000 + 498.30)


def test_values_and_margin(market, clock, aapl, universe):
    acct = SimAccount(starting_cash=100_000.0)
    market.set_price(AAPL, 200.0)
    acct.apply_fill(aapl, "BUY", 100, 200.0, 1.0, at=T0)
    market.set_price(AAPL, 205.0)
    v = _values(acct, market)
    assert v["TotalCashValue"] == pytest.approx(79_999.0)
    assert v["GrossPositionValue"] == pytest.approx(20_500.0)
    assert v["NetLiquidation"] == pytest.approx(79_999.0 + 20_500.0)
    assert v["UnrealizedPnL"] == pytest.approx(20_500.0 - 20_001.0)
    assert v["InitMarginReq"] == pytest.approx(0.5 * 20_500) and v["MaintMarginReq"] == pytest.approx(0.25 * 20_500)
    assert v["AvailableFunds"] == pytest.approx(100_499.0 - 10_250.0)
    assert v["ExcessLiquidity"] == pytest.approx(100_499.0 - 5_125.0)
    assert v["BuyingPower"] == pytest.approx(4 * v["AvailableFunds"])
    assert v["Cushion"] == pytest.approx(v["ExcessLiquidity"] / v["NetLiquidation"], abs=1e-6)
    assert acct.values(market)["NetLiquidation"][1] == "USD"
    # a futures position adds its fixed margin and only its P&L to the net liquidation value
    es = universe.find(symbol="ES", sec_type="FUT")[0]
    market.set_price(es.con_id, 6000.0)
    acct.apply_fill(es, "BUY", 1, 6000.0, 0.85, at=T0)
    market.set_price(es.con_id, 6002.0)
    v2 = _values(acct, market)
    assert v2["InitMarginReq"] == pytest.approx(10_250.0 + 25_000.0)
    assert v2["NetLiquidation"] == pytest.approx(100_499.0 + 2 * 50 - 0.85)


def test_daily_pnl_across_days(market, clock, aapl):
    acct = SimAccount(starting_cash=100_000.0)
    market.set_price(AAPL, 200.0)
    acct.apply_fill(aapl, "BUY", 100, 200.0, 1.0, at=clock.now())
    market.set_price(AAPL, 205.0)
    daily, unrealized, realized = acct.pnl(market)
    assert daily == pytest.approx(100 * 205 - 20_001)  # opened today: versus the fill
    assert unrealized == pytest.approx(499.0) and realized == 0.0
    assert acct.pnl_single(AAPL, market) == pytest.approx((100.0, 499.0, 499.0, 0.0, 20_500.0))
    # next day: previous close is 205 (the pinned price), daily P&L restarts from there
    clock.advance(timedelta(days=1))
    market.set_price(AAPL, 207.0)
    assert market.quote(AAPL).close == 205.0
    realized = acct.apply_fill(aapl, "SELL", 40, 207.0, 1.0, at=clock.now())
    assert realized == pytest.approx((207 - 200.01) * 40 - 1)
    pos, daily, unrealized, realized_today, value = acct.pnl_single(AAPL, market)
    assert pos == 60.0 and value == pytest.approx(60 * 207.0)
    # value now − start-of-day position at yesterday's close − today's flows (sale proceeds net of commission)
    assert daily == pytest.approx(60 * 207 - 100 * 205 - (-40 * 207 + 1))  # = 2 × 100 − 1
    assert unrealized == pytest.approx(60 * (207 - 200.01))
    assert realized_today == pytest.approx(278.6)


def test_foreign_currency_positions_convert_to_base(market, universe):
    sap = universe.find(symbol="SAP", sec_type="STK")[0]
    acct = SimAccount(starting_cash=100_000.0)
    market.set_price(EURUSD, 1.10)
    market.set_price(sap.con_id, 200.0)
    acct.apply_fill(sap, "BUY", 10, 200.0, 1.25, at=T0)
    assert acct.cash_balances() == {"USD": 100_000.0, "EUR": pytest.approx(-2001.25)}
    assert acct.fx_rate("EUR", market) == 1.10
    v = _values(acct, market)
    assert v["TotalCashValue"] == pytest.approx(100_000 - 2001.25 * 1.10)
    assert v["NetLiquidation"] == pytest.approx(100_000 - 1.25 * 1.10)


def test_save_restore_roundtrip(tmp_path, aapl, universe, market):
    path = tmp_path / "acct" / "account.json"
    acct = SimAccount(account_id="DU1234567", starting_cash=50_000.0, state_path=path)
    acct.apply_fill(aapl, "BUY", 10, 200.0, 1.0, at=T0)
    es = universe.find(symbol="ES", sec_type="FUT")[0]
    acct.apply_fill(es, "SELL", 2, 6000.0, 1.7, at=T0)
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    assert json.loads(path.read_text())["account_id"] == "DU1234567"
    again = SimAccount.restore(path)
    assert again.account_id == "DU1234567"
    assert again.positions() == acct.positions()
    assert again.cash_balances() == acct.cash_balances()
    assert again.pnl_single(AAPL, market) == acct.pnl_single(AAPL, market)
    fresh = SimAccount.restore(tmp_path / "missing.json", starting_cash=1.0)
    assert fresh.positions() == [] and fresh.cash == {"USD": 1.0}


def test_an_fx_trade_moves_both_currencies_cash_and_not_net_liquidation(market, universe):
    eur = universe.by_con_id(EURUSD)
    acct = SimAccount(starting_cash=100_000.0)
    market.set_price(EURUSD, 1.10)
    before = float(_values(acct, market)["NetLiquidation"])
    acct.apply_fill(eur, "BUY", 10_000, 1.10, 2.0, at=T0)
    assert acct.cash_balances() == {"USD": pytest.approx(100_000 - 11_000 - 2.0), "EUR": pytest.approx(10_000)}
    assert float(_values(acct, market)["NetLiquidation"]) == pytest.approx(before - 2.0)  # only the commission
    rows = {(tag, ccy): float(v) for tag, v, ccy in acct.currency_rows(market)}
    assert rows[("CashBalance", "EUR")] == 10_000 and rows[("ExchangeRate", "EUR")] == pytest.approx(1.10)
    assert rows[("CashBalance", "BASE")] == pytest.approx(100_000 - 11_000 - 2.0 + 11_000)
