"""The risk gate's derivatives rule (issue 17): option notional = premium × multiplier × contracts; writing
options uncovered refused unless allowed; expired options and options with no market refused."""

from __future__ import annotations

from datetime import UTC, datetime

from trader.config import TradingFiltersConfig
from trader.trading.models import AccountSnapshot, Action, Position
from trader.trading.orders import OrderRequest
from trader.trading.risk_gate import RULE_DERIVATIVES, RULE_POSITION_VALUE, GateContext, RiskGate

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
OCC = "AAPL  260320C00200000"


def opt(action=Action.BUY, qty=2.0, **kw) -> OrderRequest:
    return OrderRequest(symbol="AAPL", action=action, quantity=qty, sec_type="OPT", multiplier=100.0, con_id=7,
                        **kw)


def ctx(positions=(), price=3.5, right="C", expiry="20260320", **kw) -> GateContext:
    return GateContext(account=AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0),
                       positions=tuple(positions), now=NOW, open_orders=0, orders_in_window=0, regular_open=True,
                       extended_open=True, market_price=price, option_right=right, expiry=expiry, **kw)


def gate(**kw) -> RiskGate:
    return RiskGate(TradingFiltersConfig(max_position_value_usd=1_000.0, **kw))


def failed(d) -> dict[str, str]:
    return {f.rule: f.message for f in d.failures}


def test_long_option_notional_is_premium_times_multiplier_times_contracts():
    assert gate().check(opt(qty=2.0), ctx(price=5.0)).allowed  # 2 × 5 × 100 = $1,000: at the limit
    d = gate().check(opt(qty=3.0), ctx(price=5.0))  # $1,500
    assert failed(d).keys() == {RULE_POSITION_VALUE} and "$1,500" in failed(d)[RULE_POSITION_VALUE]


def test_writing_options_uncovered_is_refused_unless_allowed():
    d = gate().check(opt(Action.SELL, qty=1.0, allow_short=True), ctx(price=2.0, right="P"))
    assert "uncovered" in failed(d)[RULE_DERIVATIVES]
    naked_call = gate().check(opt(Action.SELL, qty=2.0, allow_short=True), ctx(price=2.0))
    assert "200 shares" in failed(naked_call)[RULE_DERIVATIVES]
    shares = Position("AAPL", 150.0, 190.0, market_price=190.0)
    assert RULE_DERIVATIVES in failed(gate().check(opt(Action.SELL, qty=2.0), ctx([shares], price=2.0)))
    covered = gate().check(opt(Action.SELL, qty=1.0), ctx([shares], price=2.0))
    assert RULE_DERIVATIVES not in failed(covered)
    allowed = gate(allow_uncovered_short_options=True).check(opt(Action.SELL, qty=1.0), ctx(price=2.0, right="P"))
    assert RULE_DERIVATIVES not in failed(allowed)


def test_selling_a_held_option_is_a_way_out_never_gated():
    held = Position(OCC, 2.0, 3.0, market_price=3.0, con_id=7, sec_type="OPT")
    d = gate().check(opt(Action.SELL, qty=2.0), ctx([held], price=None, expiry="20200101"))
    assert d.allowed and d.opening_quantity == 0


def test_expired_or_marketless_options_are_refused():
    d = gate().check(opt(qty=1.0), ctx(price=None, expiry="20260227"))
    msgs = [f.message for f in d.failures if f.rule == RULE_DERIVATIVES]
    assert any("expired on 20260227" in m for m in msgs) and any("no market" in m for m in msgs)
    stock = OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1.0)
    assert RULE_DERIVATIVES not in failed(gate().check(stock, ctx(price=100.0, right="", expiry="")))
