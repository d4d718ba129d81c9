"""Calendars and diagonals (issue 17): legs of different expiries valued by the documented first-expiry bound
(trader.trading.combos module doc): a long calendar's max loss is its debit, a diagonal's the debit plus the
strike-width exposure; a calendar short beyond its cover is not defined risk and the gate refuses it unless
allowed; the sizer's notional is that max loss."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from trader.config import TradingFiltersConfig
from trader.trading import combos
from trader.trading.combos import ComboLeg
from trader.trading.models import AccountSnapshot, Action, OrderType
from trader.trading.orders import OrderRequest, order_problems
from trader.trading.proposals import Proposal, proposal_notional
from trader.trading.risk_gate import GateContext, RiskGate

NEAR, FAR = "20990115", "20990219"


def leg(con_id: int, action: Action, strike: float, right: str, expiry: str, ratio: int = 1) -> ComboLeg:
    return ComboLeg(con_id, action, ratio, strike, right, expiry)


CALL_CALENDAR = (leg(1, Action.BUY, 250, "C", FAR), leg(2, Action.SELL, 250, "C", NEAR))
PUT_CALENDAR = (leg(3, Action.BUY, 250, "P", FAR), leg(4, Action.SELL, 250, "P", NEAR))


def test_a_long_calendar_loses_at_most_its_debit():
    assert combos.is_multi_expiry(CALL_CALENDAR) and combos.expiries(CALL_CALENDAR) == [NEAR, FAR]
    assert combos.combo_problems(CALL_CALENDAR) == []
    for legs in (CALL_CALENDAR, PUT_CALENDAR):
        assert combos.is_defined_risk(legs, Action.BUY)
        assert combos.max_loss(legs, Action.BUY, 3.5) == pytest.approx(350.0)
    assert math.isnan(combos.max_profit(CALL_CALENDAR, Action.BUY, 3.5))  # depends on the far leg's volatility


def test_a_diagonal_adds_its_strike_width_exposure():
    # long the far 260 call, short the near 250 call: at the near expiry the short call may be 10 deeper in the
    # money than the long one is worth (its intrinsic value)
    wide = (leg(1, Action.BUY, 260, "C", FAR), leg(2, Action.SELL, 250, "C", NEAR))
    assert combos.max_loss(wide, Action.BUY, 2.0) == pytest.approx((2.0 + 10) * 100)
    # long the far 240 call, short the near 250: the long leg covers the short one's intrinsic value
    covered = (leg(1, Action.BUY, 240, "C", FAR), leg(2, Action.SELL, 250, "C", NEAR))
    assert combos.max_loss(covered, Action.BUY, 12.0) == pytest.approx(1200.0)
    # a put diagonal: long far 240 put, short near 250 put → debit + 10 width
    puts = (leg(3, Action.BUY, 240, "P", FAR), leg(4, Action.SELL, 250, "P", NEAR))
    assert combos.max_loss(puts, Action.BUY, 1.0) == pytest.approx(1100.0)
    assert all(combos.is_defined_risk(x, Action.BUY) for x in (wide, covered, puts))


def test_calendars_short_beyond_their_cover_are_not_defined_risk():
    # two near calls sold against one far call: one is naked
    short_near = (leg(1, Action.BUY, 250, "C", FAR), leg(2, Action.SELL, 250, "C", NEAR, ratio=2))
    assert not combos.is_defined_risk(short_near, Action.BUY)
    assert combos.max_loss(short_near, Action.BUY, 1.0) == math.inf
    # selling the calendar (short far, long near): naked once the near leg expires, though net flat
    assert not combos.is_defined_risk(CALL_CALENDAR, Action.SELL)
    assert combos.max_loss(CALL_CALENDAR, Action.SELL, 3.0) == math.inf
    assert not combos.is_defined_risk(PUT_CALENDAR, Action.SELL)
    # a short later leg covered by a still later long one is fine, valued at its upper bound (the underlying)
    three = (leg(1, Action.BUY, 250, "C", "20990319"), leg(2, Action.SELL, 260, "C", FAR),
             leg(3, Action.BUY, 270, "C", NEAR))
    assert combos.is_defined_risk(three, Action.BUY)
    assert combos.max_loss(three, Action.BUY, 1.0) == pytest.approx((1.0 + 250) * 100)  # short 260C worth S


def test_legs_of_several_expiries_must_each_name_one():
    vague = (leg(1, Action.BUY, 250, "C", FAR), leg(2, Action.SELL, 250, "C", ""))
    assert any("name their expiry" in p for p in combos.combo_problems(vague))


def _ctx(price: float | None) -> GateContext:
    acct = AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0)
    return GateContext(account=acct, positions=(), now=datetime(2026, 3, 2, 15, tzinfo=UTC), open_orders=0,
                       orders_in_window=0, regular_open=True, extended_open=True, market_price=price)


def _req(legs, action: Action, qty: float, limit: float) -> OrderRequest:
    return OrderRequest("AAPL", action, quantity=qty, order_type=OrderType.LIMIT, limit_price=limit,
                        sec_type="BAG", multiplier=100.0, legs=legs)


def test_the_gate_values_a_calendar_at_its_debit_and_refuses_one_sold_unless_allowed():
    gate = RiskGate(TradingFiltersConfig(max_position_value_usd=50_000.0, max_position_pct_nlv=100.0))
    ok = gate.check(_req(CALL_CALENDAR, Action.BUY, 100, 5.0), _ctx(4.9))  # 100 × 500 = 50,000
    assert ok.allowed and order_problems(_req(CALL_CALENDAR, Action.BUY, 100, 5.0)) == []
    over = gate.check(_req(CALL_CALENDAR, Action.BUY, 101, 5.0), _ctx(4.9))
    assert next(f for f in over.failures if f.rule == "position_value").value == pytest.approx(101 * 500)
    sold = gate.check(_req(CALL_CALENDAR, Action.SELL, 1, 5.0), _ctx(4.9))
    assert any(f.rule == "derivatives" and "defined risk" in f.message for f in sold.failures)
    allowed = RiskGate(TradingFiltersConfig(allow_uncovered_short_options=True, max_position_pct_nlv=100.0))
    assert not [f for f in allowed.check(_req(CALL_CALENDAR, Action.SELL, 1, 5.0), _ctx(4.9)).failures
                if f.rule == "derivatives"]


def test_a_calendar_proposal_is_sized_by_its_debit():
    p = Proposal(id=1, symbol="AAPL", action=Action.BUY, created_at=datetime(2026, 3, 2, tzinfo=UTC), quantity=4,
                 order_type=OrderType.LIMIT, limit_price=3.25, sec_type="BAG", legs=CALL_CALENDAR)
    assert proposal_notional(p) == pytest.approx(4 * 325)


def test_leg_quotes_and_net_prices_follow_the_order_direction():
    quotes = [{"bid": 5.0, "ask": 5.4}, {"bid": 2.0, "ask": 2.2}]  # far call, near call
    bought = combos.quote_legs(CALL_CALENDAR, Action.BUY, quotes)
    assert [(q["action"], q["mid"]) for q in bought["legs"]] == [("BUY", pytest.approx(5.2)), ("SELL", pytest.approx(2.1))]
    assert bought["natural"] == pytest.approx(5.4 - 2.0) and bought["mid"] == pytest.approx(3.1)  # debit paid
    sold = combos.quote_legs(CALL_CALENDAR, Action.SELL, quotes)
    assert [q["action"] for q in sold["legs"]] == ["SELL", "BUY"]
    assert sold["natural"] == pytest.approx(5.0 - 2.2) and sold["mid"] == pytest.approx(3.1)  # credit received
    one_sided = combos.quote_legs(CALL_CALENDAR, Action.BUY, [{"bid": 5.0, "ask": None}, {"bid": 2.0, "ask": 2.2}])
    assert one_sided["natural"] is None and one_sided["mid"] is None and one_sided["legs"][0]["bid"] == 5.0


def test_a_combo_leg_may_name_its_own_expiry():
    from trader.cli.combos import parse_leg

    assert parse_leg("BUY 250C 20270115") == ("BUY", 1, 250.0, "C", "20270115")
    assert parse_leg("sell 2 260.5p 2026-12-18") == ("SELL", 2, 260.5, "P", "20261218")
    assert parse_leg("BUY 250C") == ("BUY", 1, 250.0, "C", "")
