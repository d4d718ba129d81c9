"""Risk gate: every rule at its boundary (passes at/inside, rejects just over), fail-closed inputs, reducing
orders never blocked (even with every limit breached), crossing zero, and properties over random inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.config import TradingFiltersConfig
from trader.errors import InvalidOrder, RiskRejected
from trader.messaging.codec import packb, unpackb
from trader.trading.groups import GroupMode, PositionGroup
from trader.trading.models import AccountSnapshot, Action, OrderType, Position
from trader.trading.orders import OrderRequest
from trader.trading.risk_gate import (
    RULE_DAILY_LOSS,
    RULE_DERIVATIVES,
    RULE_EXCHANGE,
    RULE_MARKET_HOURS,
    RULE_OPEN_ORDERS,
    RULE_ORDER_RATE,
    RULE_POSITION_PCT,
    RULE_POSITION_VALUE,
    RULE_POSITIONS,
    RULE_SYMBOL,
    RULES,
    GateContext,
    GateDecision,
    RiskGate,
    count_in_window,
)

BUY, SELL = Action.BUY, Action.SELL
NOW = datetime(2024, 7, 8, 15, 0, tzinfo=UTC)  # a Monday, 11:00 New York
# Limits chosen so each rule can be hit alone: value $50,000 (position % is loose unless a test tightens it).
FILTERS = TradingFiltersConfig(
    max_position_value_usd=50_000.0,
    max_position_pct_nlv=10.0,
    max_daily_loss_usd=5_000.0,
    max_open_orders=20,
    max_orders_per_window=30,
    order_window_seconds=300.0,
)


def filters(**kw) -> TradingFiltersConfig:
    return msgspec.structs.replace(FILTERS, **kw)


def req(qty=10.0, action=BUY, symbol="AAPL", **kw) -> OrderRequest:
    return OrderRequest(symbol=symbol, action=action, quantity=qty, **kw)


def ctx(positions=(), nlv=1_000_000.0, daily_pnl=0.0, price=100.0, **kw) -> GateContext:
    base = dict(
        account=AccountSnapshot(net_liquidation=nlv, daily_pnl=daily_pnl),
        positions=None if positions is None else tuple(positions),
        now=NOW,
        open_orders=0,
        orders_in_window=0,
        regular_open=True,
        extended_open=True,
        market_price=price,
    )
    base.update(kw)
    return GateContext(**base)


def rules_failed(decision: GateDecision) -> set[str]:
    return {f.rule for f in decision.failures}


def long(symbol="AAPL", qty=100.0, price=100.0) -> Position:
    return Position(symbol, qty, price, market_price=price)


def test_a_plain_order_inside_every_limit_passes():
    d = RiskGate(FILTERS).check(req(), ctx())
    assert d.allowed and not d.rejected and d.failures == ()
    assert d.checked == RULES and d.allowed_quantity == 10.0 and d.opening_quantity == 10.0


# --------------------------------------------------------------------------- boundaries, rule by rule
def test_position_value_limit_is_inclusive():
    gate = RiskGate(FILTERS)
    assert gate.check(req(500.0), ctx(price=100.0)).allowed  # exactly $50,000
    d = gate.check(req(500.0), ctx(price=100.01))  # $50,005
    assert rules_failed(d) == {RULE_POSITION_VALUE}
    assert d.failures[0].message == "position value $50,005 > limit $50,000"
    assert d.failures[0].value == pytest.approx(50_005.0) and d.failures[0].limit == 50_000.0


def test_position_value_counts_what_is_already_held():
    gate = RiskGate(FILTERS)
    held = [long(qty=400.0, price=100.0)]  # $40,000 held
    assert gate.check(req(100.0), ctx(held)).allowed  # → $50,000
    d = gate.check(req(101.0), ctx(held))
    assert rules_failed(d) == {RULE_POSITION_VALUE} and "$50,100 > limit $50,000" in d.failures[0].message


def test_position_value_message_shows_enough_digits_to_explain_a_tiny_breach():
    d = RiskGate(FILTERS).check(req(1.0), ctx([long(qty=500.0, price=100.0)], price=0.25))
    assert d.failures[0].message == "position value $50,000.2 > limit $50,000"  # not "$50,000 > $50,000"


def test_position_pct_of_nlv_limit_is_inclusive_with_plain_words():
    gate = RiskGate(filters(max_position_value_usd=1e9))
    assert gate.check(req(100.0), ctx(nlv=100_000.0)).allowed  # $10,000 = 10% of NLV
    d = gate.check(req(124.0), ctx(nlv=100_000.0))  # 12.4%
    assert rules_failed(d) == {RULE_POSITION_PCT}
    assert d.failures[0].message == "position 12.4% of NLV > limit 10%"
    d = gate.check(req(100.0), ctx(nlv=99_999.0))  # 10.0001%
    assert d.failures[0].message == "position 10.0001% of NLV > limit 10%"


def test_limit_order_is_valued_at_its_limit_price():
    gate = RiskGate(FILTERS)
    r = req(500.0, order_type=OrderType.LIMIT, limit_price=100.0)
    assert gate.check(r, ctx(price=None)).allowed  # no market price needed
    assert rules_failed(gate.check(replace(r, limit_price=100.02), ctx(price=1.0))) == {RULE_POSITION_VALUE}


def test_multiplier_counts_in_the_position_value():
    d = RiskGate(FILTERS).check(req(6.0, sec_type="OPT", multiplier=100.0), ctx(price=100.0))  # $60,000
    assert rules_failed(d) == {RULE_POSITION_VALUE}


def test_daily_loss_stops_trading_when_the_limit_is_reached():
    gate = RiskGate(FILTERS)
    assert gate.check(req(), ctx(daily_pnl=-4_999.99)).allowed
    d = gate.check(req(), ctx(daily_pnl=-5_000.0))  # reaching the limit stops
    assert rules_failed(d) == {RULE_DAILY_LOSS}
    assert d.failures[0].message == "daily loss $5,000 reached limit $5,000: trading stopped for today"


def test_daily_loss_latches_for_the_rest_of_the_trading_day():
    gate = RiskGate(FILTERS)
    assert gate.check(req(), ctx(daily_pnl=-6_000.0)).rejected
    assert gate.halted_day == NOW.date()
    later = gate.check(req(), ctx(daily_pnl=+1_000.0, now=NOW + timedelta(hours=3)))  # P&L recovered
    assert rules_failed(later) == {RULE_DAILY_LOSS} and "hit earlier today" in later.failures[0].message
    tomorrow = gate.check(req(), ctx(daily_pnl=0.0, now=NOW + timedelta(days=1)))
    assert tomorrow.allowed


def test_daily_loss_latch_can_be_restored_after_a_restart():
    gate = RiskGate(FILTERS)
    gate.halt_for_day(gate.trading_day(NOW))
    assert rules_failed(gate.check(req(), ctx())) == {RULE_DAILY_LOSS}


def test_trading_day_is_the_new_york_date():
    gate = RiskGate(FILTERS)
    late_evening_ny = datetime(2024, 7, 9, 2, 0, tzinfo=UTC)  # 22:00 on the 8th in New York
    assert gate.trading_day(late_evening_ny).isoformat() == "2024-07-08"


def test_open_orders_limit_is_inclusive_and_counts_bracket_legs():
    gate = RiskGate(FILTERS)
    assert gate.check(req(), ctx(open_orders=19)).allowed  # 19 + 1 = 20
    d = gate.check(req(), ctx(open_orders=20))
    assert rules_failed(d) == {RULE_OPEN_ORDERS} and d.failures[0].message == "open orders 20 + 1 new = 21 > limit 20"
    bracket = req(order_type=OrderType.LIMIT, limit_price=100.0, take_profit=110.0, stop_loss=90.0)
    assert gate.check(bracket, ctx(open_orders=17)).allowed  # 17 + 3 = 20
    assert rules_failed(gate.check(bracket, ctx(open_orders=18))) == {RULE_OPEN_ORDERS}


def test_order_rate_limit_is_inclusive():
    gate = RiskGate(FILTERS)
    assert gate.check(req(), ctx(orders_in_window=29)).allowed
    d = gate.check(req(), ctx(orders_in_window=30))
    assert rules_failed(d) == {RULE_ORDER_RATE}
    assert d.failures[0].message == "orders in the last 300 s: 30 + 1 new = 31 > limit 30"


def test_order_rate_from_timestamps_counts_only_the_window():
    gate = RiskGate(filters(max_orders_per_window=2, order_window_seconds=60.0))
    times = (NOW - timedelta(seconds=60), NOW - timedelta(seconds=59), NOW - timedelta(seconds=1))
    assert count_in_window(times, NOW, 60.0) == 2  # the one exactly 60 s ago has left the window
    d = gate.check(req(), ctx(orders_in_window=None, recent_order_times=times))
    assert rules_failed(d) == {RULE_ORDER_RATE}
    assert gate.check(req(), ctx(orders_in_window=None, recent_order_times=times[:2])).allowed


def test_zero_limits_refuse_every_opening_order():
    gate = RiskGate(filters(max_open_orders=0, max_orders_per_window=0))
    assert rules_failed(gate.check(req(), ctx())) == {RULE_OPEN_ORDERS, RULE_ORDER_RATE}


def test_symbol_allow_and_deny_lists_are_case_insensitive():
    gate = RiskGate(filters(symbol_denylist=["gme"], symbol_allowlist=["AAPL", "GME"]))
    assert gate.check(req(symbol="aapl"), ctx()).allowed
    assert gate.check(req(symbol="GME"), ctx()).failures[0].message == "symbol GME is on the denylist"
    d = gate.check(req(symbol="MSFT"), ctx())
    assert rules_failed(d) == {RULE_SYMBOL} and d.failures[0].message == "symbol MSFT is not on the allowlist"
    assert RiskGate(FILTERS).check(req(symbol="ANYTHING"), ctx()).allowed  # empty lists allow all


def test_exchange_lists_check_routing_and_primary_exchange():
    gate = RiskGate(filters(exchange_denylist=["PINK"]))
    assert gate.check(req(primary_exchange="NASDAQ"), ctx()).allowed
    d = gate.check(req(primary_exchange="pink"), ctx())
    assert rules_failed(d) == {RULE_EXCHANGE} and d.failures[0].message == "exchange PINK is on the denylist"
    allow = RiskGate(filters(exchange_allowlist=["NASDAQ", "NYSE"]))
    assert allow.check(req(primary_exchange="NASDAQ"), ctx()).allowed
    d = allow.check(req(primary_exchange="ARCA"), ctx())
    assert rules_failed(d) == {RULE_EXCHANGE} and "SMART/ARCA is not on the allowlist" in d.failures[0].message


@pytest.mark.parametrize(
    "regular, extended, allow_ext, outside_rth, ok, fragment",
    [
        (True, True, False, False, True, ""),
        (False, True, True, True, True, ""),
        (False, True, False, True, False, "extended-hours trading is disabled"),
        (False, True, True, False, False, "must ask for extended hours"),
        (False, False, True, True, False, "market closed"),
        (None, None, True, True, False, "market session unknown"),
        (False, None, True, True, False, "extended session unknown"),
    ],
)
def test_market_hours(regular, extended, allow_ext, outside_rth, ok, fragment):
    gate = RiskGate(filters(allow_extended_hours=allow_ext))
    nxt = datetime(2024, 7, 9, 13, 30, tzinfo=UTC)
    d = gate.check(req(outside_rth=outside_rth), ctx(regular_open=regular, extended_open=extended, next_open=nxt))
    assert d.allowed is ok
    if not ok:
        assert rules_failed(d) == {RULE_MARKET_HOURS} and fragment in d.failures[0].message
    if fragment == "market closed":
        assert "next open 2024-07-09T13:30+00:00" in d.failures[0].message


# --------------------------------------------------------------------------- fail closed
@pytest.mark.parametrize(
    "kw, rule, fragment",
    [
        (dict(nlv=None), RULE_POSITION_PCT, "net liquidation unknown"),
        (dict(nlv=float("nan")), RULE_POSITION_PCT, "net liquidation unknown"),
        (dict(nlv=-10.0), RULE_POSITION_PCT, "net liquidation is $-10"),
        (dict(daily_pnl=None), RULE_DAILY_LOSS, "daily P&L unknown"),
        (dict(open_orders=None), RULE_OPEN_ORDERS, "open order count unknown"),
        (dict(orders_in_window=None), RULE_ORDER_RATE, "rate window unknown"),
        (dict(regular_open=None), RULE_MARKET_HOURS, "market session unknown"),
    ],
)
def test_opening_orders_fail_closed_on_unknown_inputs(kw, rule, fragment):
    d = RiskGate(FILTERS).check(req(), ctx(**kw))
    assert d.rejected and rules_failed(d) == {rule}
    assert fragment in d.failures[0].message


def test_unknown_price_or_position_value_fails_closed():
    gate = RiskGate(FILTERS)
    d = gate.check(req(), ctx(price=None))
    assert rules_failed(d) == {RULE_POSITION_VALUE, RULE_POSITION_PCT}
    assert "market price unknown" in d.failures[0].message
    unpriced = Position("AAPL", 10.0, 100.0, market_price=None)
    d = gate.check(req(), ctx([unpriced]))  # adding to a position whose value cannot be read
    assert rules_failed(d) == {RULE_POSITION_VALUE, RULE_POSITION_PCT}
    assert "value of the 10 AAPL held is unknown" in d.failures[0].message


def test_unknown_positions_refuse_everything_because_reducing_cannot_be_told_apart():
    d = RiskGate(FILTERS).check(req(action=SELL), ctx(positions=None))
    assert rules_failed(d) == {RULE_POSITIONS} and "positions unknown" in d.failures[0].message
    assert d.allowed_quantity == 0
    # The other rules still run, so the decision lists everything that is wrong.
    d = RiskGate(FILTERS).check(req(action=SELL), ctx(positions=None, open_orders=20, regular_open=False,
                                                        extended_open=False))
    assert rules_failed(d) == {RULE_POSITIONS, RULE_OPEN_ORDERS, RULE_MARKET_HOURS}


@pytest.mark.parametrize("qty", [None, 0.0, -5.0, float("nan")])
def test_an_order_without_a_usable_quantity_is_never_waved_through(qty):
    r = OrderRequest(symbol="AAPL", action=SELL, quantity=qty, amount=1000.0 if qty is None else None)
    with pytest.raises(InvalidOrder, match="needs a positive quantity"):
        RiskGate(FILTERS).check(r, ctx([long()]))


def test_every_failed_rule_is_listed_at_once():
    gate = RiskGate(filters(symbol_denylist=["AAPL"], exchange_denylist=["SMART"], sec_type_denylist=["STK"],
                            min_price=2_000.0))
    everything_wrong = ctx(nlv=10_000.0, daily_pnl=-10_000.0, open_orders=20, orders_in_window=30,
                           regular_open=False, extended_open=False, price=1_000.0,
                           groups=(PositionGroup("tech", 1.0, ("AAPL",)),), group_mode=GroupMode.REJECT)
    d = gate.check(req(100.0), everything_wrong)
    stock_rules = set(RULES) - {RULE_DERIVATIVES}  # the derivatives rule judges options only
    assert rules_failed(d) == stock_rules
    assert len(d.reasons) == len(stock_rules)
    with pytest.raises(RiskRejected) as ei:
        d.raise_if_rejected()
    assert ei.value.decision is d
    for reason in d.reasons:
        assert reason in str(ei.value)


# --------------------------------------------------------------------------- reducing orders are never blocked
def breach_everything() -> tuple[RiskGate, GateContext]:
    gate = RiskGate(filters(symbol_denylist=["AAPL"], exchange_denylist=["SMART"], max_open_orders=0,
                            max_orders_per_window=0, max_position_value_usd=0.0, max_position_pct_nlv=0.0,
                            sec_type_denylist=["STK"], min_price=1e6))
    gate.halt_for_day(gate.trading_day(NOW))
    c = ctx([long(qty=100.0)], nlv=None, daily_pnl=None, open_orders=None, orders_in_window=None,
            regular_open=False, extended_open=False, price=None)
    return gate, c


def test_reducing_order_passes_with_every_limit_breached_at_once():
    gate, c = breach_everything()
    d = gate.check(req(100.0, action=SELL), c)
    assert d.allowed and d.failures == () and d.checked == ()
    assert d.reducing_quantity == 100.0 and d.opening_quantity == 0.0 and d.allowed_quantity == 100.0
    assert "not gated" in d.notes[0]
    short = ctx([Position("AAPL", -50.0, 100.0)], nlv=None, daily_pnl=None, open_orders=None,
                orders_in_window=None, regular_open=None, price=None)
    assert gate.check(req(50.0, action=BUY), short).allowed  # covering a short


def test_crossing_zero_passes_the_reducing_part_and_gates_the_opening_part():
    gate, c = breach_everything()
    d = gate.check(req(150.0, action=SELL), c)
    assert d.rejected
    assert d.reducing_quantity == 100.0 and d.opening_quantity == 50.0
    assert d.allowed_quantity == 100.0  # the way out still goes
    assert "crosses zero" in d.notes[0] and "reducing part 100 may go" in d.summary()


def test_crossing_zero_values_only_the_new_opposite_position():
    gate = RiskGate(FILTERS)
    held = [long(qty=1_000.0, price=100.0)]  # $100,000 long, over the value limit already
    d = gate.check(req(1_500.0, action=SELL), ctx(held))  # closes 1,000, opens 500 short = $50,000
    assert d.allowed and d.reducing_quantity == 1_000.0 and d.opening_quantity == 500.0
    assert rules_failed(gate.check(req(1_501.0, action=SELL), ctx(held))) == {RULE_POSITION_VALUE}


def test_gate_decision_round_trips_the_codec_and_to_dict():
    d = RiskGate(FILTERS).check(req(), ctx(open_orders=20))
    back = unpackb(packb(d))
    assert back == d and back.rejected
    out = d.to_dict()
    assert out["allowed"] is False and out["failures"][0]["rule"] == RULE_OPEN_ORDERS and out["action"] == "BUY"


def test_enforce_raises_with_the_decision_and_returns_it_when_allowed():
    gate = RiskGate(FILTERS)
    assert gate.enforce(req(), ctx()).allowed
    with pytest.raises(RiskRejected, match="open orders 20 \\+ 1 new = 21 > limit 20") as ei:
        gate.enforce(req(), ctx(open_orders=20))
    assert isinstance(ei.value.decision, GateDecision)


# --------------------------------------------------------------------------- properties
maybe_float = st.none() | st.floats(-1e7, 1e7, allow_nan=False)
positions_st = st.lists(
    st.builds(
        Position,
        symbol=st.sampled_from(["AAPL", "MSFT"]),
        quantity=st.floats(-1000, 1000, allow_nan=False),
        avg_cost=st.just(100.0),
        market_price=st.none() | st.floats(0.01, 1000),
    ),
    max_size=3,
)
contexts = st.builds(
    ctx,
    positions=st.none() | positions_st,
    nlv=maybe_float,
    daily_pnl=maybe_float,
    price=st.none() | st.floats(0.01, 5000),
    open_orders=st.none() | st.integers(0, 40),
    orders_in_window=st.none() | st.integers(0, 40),
    regular_open=st.none() | st.booleans(),
    extended_open=st.none() | st.booleans(),
)
gates = st.builds(
    lambda **kw: RiskGate(filters(**kw)),
    max_position_value_usd=st.floats(0, 1e6),
    max_position_pct_nlv=st.floats(0, 100),
    max_daily_loss_usd=st.floats(0, 1e5),
    max_open_orders=st.integers(0, 30),
    max_orders_per_window=st.integers(0, 30),
    allow_extended_hours=st.booleans(),
    symbol_denylist=st.sampled_from([[], ["AAPL"], ["MSFT", "AAPL"]]),
)


@settings(max_examples=300, deadline=None)
@given(gate=gates, c=contexts, symbol=st.sampled_from(["AAPL", "MSFT"]), action=st.sampled_from([BUY, SELL]),
       fraction=st.floats(0.0, 1.0))
def test_property_a_purely_reducing_order_is_never_rejected(gate, c, symbol, action, fraction):
    if c.positions is None:
        return  # unknown positions: nothing is known to be reducing (covered by the fail-closed tests)
    held = sum(p.quantity for p in c.positions if p.symbol == symbol)
    if held == 0 or (held > 0) == (action is BUY):
        return  # nothing to reduce in this direction
    qty = abs(held) * fraction
    if qty <= 0:
        return
    d = gate.check(req(qty, action=action, symbol=symbol), c)
    assert d.allowed and d.failures == () and d.allowed_quantity == pytest.approx(qty)


@settings(max_examples=300, deadline=None)
@given(gate=gates, c=contexts, qty=st.floats(0.01, 5000), action=st.sampled_from([BUY, SELL]),
       symbol=st.sampled_from(["AAPL", "MSFT"]))
def test_property_failures_non_empty_iff_rejected_and_parts_add_up(gate, c, qty, action, symbol):
    d = gate.check(req(qty, action=action, symbol=symbol), c)
    assert d.rejected == bool(d.failures) == (not d.allowed)
    assert d.reducing_quantity + d.opening_quantity == pytest.approx(qty)
    assert d.allowed_quantity == pytest.approx(qty if d.allowed else d.reducing_quantity)
    assert all(f.rule in (*RULES, RULE_POSITIONS) and f.message for f in d.failures)
    if c.positions is None:
        assert d.rejected and d.allowed_quantity == 0
    if d.opening_quantity > 0 and (c.account.net_liquidation is None or c.account.daily_pnl is None):
        assert d.rejected  # fail closed


@settings(max_examples=200, deadline=None)
@given(c=contexts, qty=st.floats(0.01, 5000))
def test_property_the_gate_only_gets_stricter_as_limits_tighten(c, qty):
    loose, tight = RiskGate(filters(max_position_value_usd=1e6)), RiskGate(filters(max_position_value_usd=1e3))
    if loose.check(req(qty), c).rejected:
        assert tight.check(req(qty), c).rejected


# --------------------------------------------------------------------------- group budgets
TECH = PositionGroup("tech", 10.0, ("AAPL", "MSFT"))  # 10% of NLV, gross


def test_group_budget_reject_mode_refuses_an_order_that_overfills_the_group():
    # NLV 1M, budget $100k; MSFT holds $60k; buying $50k of AAPL → $110k = 11% > 10%.
    c = ctx([long("MSFT", 600.0, 100.0)], groups=(TECH,), group_mode=GroupMode.REJECT)
    d = RiskGate(FILTERS).check(req(500.0), c)
    assert rules_failed(d) == {"group_budget"}
    f = d.failures[0]
    assert f.value == pytest.approx(11.0) and f.limit == 10.0 and "tech" in f.message


def test_group_budget_at_the_limit_passes_and_warn_mode_only_notes():
    at_limit = ctx([long("MSFT", 600.0, 100.0)], groups=(TECH,), group_mode=GroupMode.REJECT)
    assert RiskGate(FILTERS).check(req(400.0), at_limit).allowed  # exactly $100k = 10%
    warn = ctx([long("MSFT", 600.0, 100.0)], groups=(TECH,), group_mode=GroupMode.WARN)
    d = RiskGate(FILTERS).check(req(500.0), warn)
    assert d.allowed
    assert any(n.startswith("group budget (warn)") and "tech" in n for n in d.notes)


def test_group_budget_never_blocks_a_reducing_order():
    # The group is already over budget; selling AAPL reduces it and is never gated.
    c = ctx([long("AAPL", 2_000.0, 100.0)], groups=(TECH,), group_mode=GroupMode.REJECT)
    d = RiskGate(FILTERS).check(req(500.0, action=Action.SELL), c)
    assert d.allowed and d.opening_quantity == 0


def test_group_budget_with_unknown_nlv_fails_closed_in_reject_mode():
    c = ctx([], nlv=None, groups=(TECH,), group_mode=GroupMode.REJECT)
    assert "group_budget" in rules_failed(RiskGate(FILTERS).check(req(10.0), c))


def test_sec_type_lists_and_min_price_gate_opening_orders_only():
    from trader.trading.risk_gate import RULE_MIN_PRICE, RULE_SEC_TYPE

    gate = RiskGate(filters(sec_type_allowlist=["stk"], sec_type_denylist=["FOP"]))
    assert gate.check(req(), ctx()).allowed
    d = gate.check(req(sec_type="OPT", symbol="AAPL"), ctx())
    assert rules_failed(d) == {RULE_SEC_TYPE} and d.failures[0].message == "security type OPT is not on the allowlist"
    d = gate.check(req(sec_type="FOP"), ctx())
    assert d.failures[0].message == "security type FOP is on the denylist"
    cheap = RiskGate(filters(min_price=5.0))
    d = cheap.check(req(), ctx(price=4.99))
    assert rules_failed(d) == {RULE_MIN_PRICE} and "below min_price 5" in d.failures[0].message
    assert cheap.check(req(), ctx(price=5.0)).allowed  # at the limit passes
    assert cheap.check(req(order_type=OrderType.LIMIT, limit_price=6.0), ctx(price=4.0)).allowed  # entry price
    assert rules_failed(cheap.check(req(), ctx(price=None))) >= {RULE_MIN_PRICE}  # unknown price fails closed
    held = [Position(symbol="AAPL", quantity=100, avg_cost=3.0, market_price=3.0)]
    assert cheap.check(req(qty=50, action=SELL), ctx(positions=held, price=3.0)).allowed  # reducing: never gated
    assert RULE_SEC_TYPE in RULES and RULE_MIN_PRICE in RULES
