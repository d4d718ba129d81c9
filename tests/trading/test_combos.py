"""Combo (spread) math and its use by the risk gate (issue 17): max loss of verticals and combos, defined risk,
a combo valued by its max loss — never its legs as unrelated trades."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from trader.config import TradingFiltersConfig
from trader.errors import InvalidProposal
from trader.trading import combos
from trader.trading.combos import ComboLeg
from trader.trading.models import AccountSnapshot, Action, OrderType
from trader.trading.orders import OrderRequest, order_problems
from trader.trading.proposals import Proposal, proposal_from_dict, proposal_notional, proposal_to_dict
from trader.trading.risk_gate import GateContext, RiskGate


def _opt(strike: float, right: str, con_id: int) -> dict:
    return {"con_id": con_id, "strike": strike, "right": right, "last_trade_date": "20990115", "multiplier": "100",
            "local_symbol": f"X {strike:g}{right}"}


PUT_SPREAD = combos.vertical(_opt(5200, "P", 1), _opt(5300, "P", 2))  # buy 5300P / sell 5200P as written


def test_vertical_is_written_as_the_debit_spread_whatever_the_order_of_its_strikes():
    assert [(leg.strike, leg.action) for leg in PUT_SPREAD] == [(5300, Action.BUY), (5200, Action.SELL)]
    calls = combos.vertical(_opt(260, "C", 3), _opt(250, "C", 4))
    assert [(leg.strike, leg.action) for leg in calls] == [(250, Action.BUY), (260, Action.SELL)]
    with pytest.raises(ValueError):
        combos.vertical(_opt(250, "C", 3), _opt(250, "P", 4))


def test_max_loss_of_credit_and_debit_verticals():
    # SELL the spread for 20 credit: max loss (width − credit) × multiplier; BUY it for 30 debit: the debit
    assert combos.max_loss(PUT_SPREAD, Action.SELL, 20.0) == pytest.approx((100 - 20) * 100)
    assert combos.max_profit(PUT_SPREAD, Action.SELL, 20.0) == pytest.approx(20 * 100)
    assert combos.max_loss(PUT_SPREAD, Action.BUY, 30.0) == pytest.approx(30 * 100)
    assert combos.is_defined_risk(PUT_SPREAD, Action.SELL) and combos.is_defined_risk(PUT_SPREAD, Action.BUY)


def test_net_short_calls_are_unbounded_and_not_defined_risk():
    ratio = (ComboLeg(1, Action.BUY, 1, 250.0, "C", "20990115"), ComboLeg(2, Action.SELL, 2, 260.0, "C", "20990115"))
    assert combos.max_loss(ratio, Action.BUY, 1.0) == math.inf
    assert not combos.is_defined_risk(ratio, Action.BUY)
    assert combos.is_defined_risk(ratio, Action.SELL)  # sold: short one 250 call, long two 260 calls


def test_combo_structure_is_checked():
    one = (PUT_SPREAD[0],)
    assert any("2 to 4 legs" in p for p in combos.combo_problems(one))
    req = OrderRequest("SPX", Action.SELL, quantity=1, order_type=OrderType.MARKET, sec_type="BAG", legs=PUT_SPREAD)
    assert any("net limit price" in p for p in order_problems(req))


def _ctx(price: float | None) -> GateContext:
    acct = AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0)
    return GateContext(account=acct, positions=(), now=datetime(2026, 3, 2, 15, tzinfo=UTC), open_orders=0,
                       orders_in_window=0, regular_open=True, extended_open=True, market_price=price)


def test_the_gate_values_a_credit_vertical_at_its_max_loss():
    gate = RiskGate(TradingFiltersConfig(max_position_value_usd=50_000.0, max_position_pct_nlv=100.0))
    req = OrderRequest("SPX", Action.SELL, quantity=6, order_type=OrderType.LIMIT, limit_price=20.0,
                       sec_type="BAG", multiplier=100.0, legs=PUT_SPREAD)
    assert gate.check(req, _ctx(21.0)).allowed  # 6 × 8,000 = 48,000 ≤ 50,000 (the legs' premiums would be far less)
    big = gate.check(OrderRequest(**{**_fields(req), "quantity": 7}), _ctx(21.0))
    failure = next(f for f in big.failures if f.rule == "position_value")
    assert failure.value == pytest.approx(7 * 8_000)
    naked = (PUT_SPREAD[0], ComboLeg(1, Action.SELL, 2, 5200.0, "P", "20990115"))
    refused = gate.check(OrderRequest(**{**_fields(req), "quantity": 1, "legs": naked, "action": Action.BUY}),
                         _ctx(21.0))  # bought as written: net short one put
    assert any(f.rule == "derivatives" and "defined risk" in f.message for f in refused.failures)
    blind = gate.check(req, _ctx(None))
    assert any(f.rule == "derivatives" and "no market" in f.message for f in blind.failures)


def _fields(req: OrderRequest) -> dict:
    return {name: getattr(req, name) for name in req.__dataclass_fields__}


def test_a_combo_proposal_round_trips_and_its_notional_is_the_max_loss():
    p = Proposal(id=1, symbol="SPX", action=Action.SELL, created_at=datetime(2026, 3, 2, tzinfo=UTC), quantity=2,
                 order_type=OrderType.LIMIT, limit_price=20.0, sec_type="BAG", legs=PUT_SPREAD)
    back = proposal_from_dict(proposal_to_dict(p))
    assert back.legs == PUT_SPREAD
    assert proposal_notional(back) == pytest.approx(2 * 8_000)
    with pytest.raises(InvalidProposal):
        Proposal(id=1, symbol="SPX", action=Action.SELL, created_at=datetime(2026, 3, 2, tzinfo=UTC), quantity=2,
                 sec_type="BAG", legs=PUT_SPREAD)  # no net limit price
