"""Order validation, cash-amount sizing, reducing/opening split, no accidental shorts, resize plans."""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.errors import InvalidOrder, error_from_wire, error_to_wire
from trader.messaging.codec import packb, unpackb
from trader.trading.models import Action, OrderSource, OrderType, Position
from trader.trading.orders import (
    OrderRequest,
    check_sell_within_holding,
    held_quantity,
    instrument_lines,
    order_problems,
    resize_plan,
    same_instrument,
    shares_for_amount,
    split_reducing,
    validate_order,
    with_quantity_for_price,
)

BUY, SELL = Action.BUY, Action.SELL


def req(**kw) -> OrderRequest:
    base = dict(symbol="AAPL", action=BUY, quantity=10.0)
    base.update(kw)
    return OrderRequest(**base)


# --------------------------------------------------------------------------- validate_order
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(order_type=OrderType.LIMIT, limit_price=100.0),
        dict(order_type=OrderType.STOP, stop_price=100.0),
        dict(order_type=OrderType.STOP_LIMIT, stop_price=100.0, limit_price=100.0),  # BUY: limit == stop ok
        dict(order_type=OrderType.STOP_LIMIT, stop_price=100.0, limit_price=101.0),
        dict(action=SELL, order_type=OrderType.STOP_LIMIT, stop_price=100.0, limit_price=99.0),
        dict(order_type=OrderType.TRAILING_STOP, trailing_percent=2.0),
        dict(order_type=OrderType.TRAILING_STOP, trailing_amount=1.5, stop_price=95.0),
        dict(order_type=OrderType.LIMIT, limit_price=100.0, take_profit=110.0, stop_loss=95.0),
        dict(action=SELL, order_type=OrderType.LIMIT, limit_price=100.0, take_profit=90.0, stop_loss=105.0),
        dict(quantity=None, amount=1000.0),
    ],
)
def test_valid_orders_pass(kw):
    validate_order(req(**kw))
    assert order_problems(req(**kw)) == []


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(quantity=0.0), "quantity must be a positive finite number"),
        (dict(quantity=-5.0), "quantity must be a positive finite number"),
        (dict(quantity=math.nan), "quantity must be a positive finite number"),
        (dict(quantity=math.inf), "quantity must be a positive finite number"),
        (dict(quantity=None), "a quantity or an amount is required"),
        (dict(amount=100.0), "either a quantity or an amount, not both"),
        (dict(symbol=" "), "symbol is empty"),
        (dict(order_type=OrderType.LIMIT), "a LMT order needs a limit price"),
        (dict(order_type=OrderType.LIMIT, limit_price=0.0), "limit price must be a positive finite number"),
        (dict(order_type=OrderType.STOP), "a STP order needs a stop price"),
        (dict(order_type=OrderType.STOP_LIMIT, stop_price=100.0), "needs both a stop price and a limit price"),
        (dict(order_type=OrderType.STOP_LIMIT, stop_price=100.0, limit_price=99.99), "at or above stop price"),
        (dict(action=SELL, order_type=OrderType.STOP_LIMIT, stop_price=100.0, limit_price=100.01), "at or below"),
        (dict(limit_price=100.0), "a MKT order takes no limit price"),
        (dict(order_type=OrderType.LIMIT, limit_price=1.0, stop_price=1.0), "a LMT order takes no stop price"),
        (dict(order_type=OrderType.TRAILING_STOP), "exactly one of trailing percent and trailing amount"),
        (dict(order_type=OrderType.TRAILING_STOP, trailing_percent=1.0, trailing_amount=1.0), "exactly one"),
        (dict(order_type=OrderType.TRAILING_STOP, trailing_percent=100.0), "trailing percent must be between"),
        (dict(order_type=OrderType.TRAILING_STOP, trailing_amount=-1.0), "trailing amount must be a positive"),
        (dict(order_type=OrderType.LIMIT, limit_price=1.0, trailing_percent=1.0), "takes no trailing percent"),
        (dict(take_profit=110.0), "a bracket needs both a take-profit and a stop-loss"),
        (dict(order_type=OrderType.TRAILING_STOP, trailing_percent=1.0, take_profit=110.0, stop_loss=90.0),
         "trailing-stop entry"),
    ],
)
def test_each_structural_problem_is_named(kw, fragment):
    with pytest.raises(InvalidOrder) as ei:
        validate_order(req(**kw))
    assert any(fragment in p for p in ei.value.problems), ei.value.problems
    assert fragment in str(ei.value)


def test_every_problem_is_listed_not_just_the_first():
    bad = req(quantity=-1.0, order_type=OrderType.LIMIT, take_profit=90.0, stop_loss=110.0)
    problems = order_problems(bad)
    assert len(problems) == 3, problems
    assert any("quantity" in p for p in problems)
    assert any("needs a limit price" in p for p in problems)
    assert any("stop-loss 110.0 must be below take-profit 90.0" in p for p in problems)


@pytest.mark.parametrize(
    "action, entry, tp, sl, ok",
    [
        (BUY, 100.0, 110.0, 95.0, True),
        (BUY, 100.0, 100.0, 95.0, False),  # take-profit at the entry: not strictly above
        (BUY, 100.0, 110.0, 100.0, False),  # stop-loss at the entry
        (BUY, 100.0, 99.0, 95.0, False),  # both below
        (BUY, 100.0, 95.0, 110.0, False),  # swapped
        (SELL, 100.0, 90.0, 105.0, True),
        (SELL, 100.0, 105.0, 90.0, False),  # BUY-style bracket on a SELL
        (SELL, 100.0, 90.0, 100.0, False),
    ],
)
def test_bracket_prices_on_the_right_side_of_the_entry(action, entry, tp, sl, ok):
    r = req(action=action, order_type=OrderType.LIMIT, limit_price=entry, take_profit=tp, stop_loss=sl)
    assert (order_problems(r) == []) is ok, order_problems(r)


def test_market_bracket_is_checked_against_the_market_price_when_known():
    r = req(take_profit=110.0, stop_loss=95.0)
    assert order_problems(r) == []
    assert order_problems(r, market_price=100.0) == []
    problems = order_problems(r, market_price=111.0)
    assert problems and "market price 111.0 must lie between" in problems[0]


def test_stop_entry_bracket_uses_the_stop_price():
    r = req(order_type=OrderType.STOP, stop_price=120.0, take_profit=130.0, stop_loss=115.0)
    assert order_problems(r) == []
    assert order_problems(replace(r, stop_price=131.0))


def test_invalid_order_crosses_the_wire_as_itself():
    with pytest.raises(InvalidOrder) as ei:
        validate_order(req(quantity=0.0))
    back = error_from_wire(error_to_wire(ei.value))
    assert isinstance(back, InvalidOrder) and "quantity" in str(back)


def test_order_request_round_trips_the_codec():
    r = req(order_type=OrderType.LIMIT, limit_price=1.5, source=OrderSource.STRATEGY, correlation_id="c-1")
    assert unpackb(packb(r)) == r
    assert r.leg_count == 1 and req(take_profit=1.0, stop_loss=0.5).leg_count == 3


# --------------------------------------------------------------------------- shares_for_amount
@pytest.mark.parametrize(
    "amount, price, shares",
    [
        (1000.0, 100.0, 10),
        (999.99, 100.0, 9),  # rounded down
        (100.0, 0.1, 1000),
        (0.7, 0.1, 7),  # float: 0.7 / 0.1 = 6.999…
        (0.3, 0.1, 3),  # float: 0.3 / 0.1 = 2.999…
        (5000.0, 187.23, 26),
        (100.0, 100.0, 1),  # exactly one share
    ],
)
def test_shares_for_amount(amount, price, shares):
    assert shares_for_amount(amount, price) == shares


@pytest.mark.parametrize("amount, price", [(99.99, 100.0), (0.0, 10.0), (-5.0, 1.0), (10.0, 0.0), (math.nan, 1.0)])
def test_shares_for_amount_refuses_less_than_a_share_or_bad_numbers(amount, price):
    with pytest.raises(InvalidOrder):
        shares_for_amount(amount, price)


@settings(max_examples=400, deadline=None)
@given(
    amount=st.floats(min_value=0.01, max_value=1e9, allow_nan=False, allow_infinity=False),
    price=st.floats(min_value=0.0001, max_value=1e6, allow_nan=False, allow_infinity=False),
)
def test_shares_for_amount_never_exceeds_the_amount_and_is_maximal(amount, price):
    a, p = Decimal(repr(amount)), Decimal(repr(price))
    try:
        n = shares_for_amount(amount, price)
    except InvalidOrder:
        assert p > a  # refused only when not even one share fits
        return
    assert n >= 1
    assert n * p <= a  # never more notional than asked (exact, on the numbers as written)
    assert (n + 1) * p > a  # and the most whole shares that fit


def test_with_quantity_for_price_converts_amounts_only():
    r = req(quantity=None, amount=1000.0)
    q = with_quantity_for_price(r, 99.0)
    assert q.quantity == 10.0 and q.amount is None
    assert with_quantity_for_price(req(), 99.0) == req()


# --------------------------------------------------------------------------- split_reducing / holding
@pytest.mark.parametrize(
    "held, action, qty, expected",
    [
        (100.0, SELL, 40.0, (40.0, 0.0)),
        (100.0, SELL, 100.0, (100.0, 0.0)),
        (100.0, SELL, 150.0, (100.0, 50.0)),  # crosses zero
        (-100.0, BUY, 30.0, (30.0, 0.0)),
        (-100.0, BUY, 130.0, (100.0, 30.0)),
        (100.0, BUY, 10.0, (0.0, 10.0)),  # adds
        (-100.0, SELL, 10.0, (0.0, 10.0)),
        (0.0, SELL, 10.0, (0.0, 10.0)),
        (0.0, BUY, 10.0, (0.0, 10.0)),
    ],
)
def test_split_reducing(held, action, qty, expected):
    assert split_reducing(held, action, qty) == expected


@given(
    held=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    action=st.sampled_from([BUY, SELL]),
    qty=st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
)
def test_split_reducing_parts_add_up(held, action, qty):
    reducing, opening = split_reducing(held, action, qty)
    assert reducing >= 0 and opening >= 0
    assert reducing <= abs(held)
    assert math.isclose(reducing + opening, qty, rel_tol=1e-12, abs_tol=1e-9)
    if opening > 0 and reducing > 0:
        assert reducing == abs(held)  # only a full close can open the other way


def test_sell_never_exceeds_the_holding_unless_short_is_asked():
    check_sell_within_holding(req(action=SELL, quantity=100.0), held=100.0)
    check_sell_within_holding(req(action=BUY, quantity=1e6), held=0.0)
    with pytest.raises(InvalidOrder, match="exceeds the 100 held"):
        check_sell_within_holding(req(action=SELL, quantity=100.5), held=100.0)
    with pytest.raises(InvalidOrder, match="exceeds the 0 held"):
        check_sell_within_holding(req(action=SELL, quantity=1.0), held=-50.0)  # already short
    check_sell_within_holding(req(action=SELL, quantity=500.0, allow_short=True), held=100.0)


def test_held_quantity_matches_instrument_not_just_symbol():
    positions = [
        Position("AAPL", 100.0, 150.0, con_id=265598),
        Position("AAPL", 5.0, 2.0, con_id=999, sec_type="OPT", multiplier=100.0),
        Position("MSFT", -10.0, 300.0),
    ]
    assert held_quantity(positions, "AAPL") == 100.0
    assert held_quantity(positions, "aapl", con_id=265598) == 100.0
    assert held_quantity(positions, "AAPL", con_id=999, sec_type="OPT") == 5.0
    assert held_quantity(positions, "MSFT") == -10.0
    assert held_quantity(positions, "NVDA") == 0.0


_lines = st.lists(st.builds(Position, st.sampled_from(["AAPL", "aapl", "MSFT"]), st.integers(-50, 50).map(float),
                            st.just(1.0), con_id=st.sampled_from([0, 7, 9]), sec_type=st.sampled_from(["STK", "opt"])),
                  max_size=8)


@given(_lines, st.sampled_from(["AAPL", "msft", "NVDA"]), st.sampled_from([0, 7, 9]), st.sampled_from(["STK", "OPT"]))
@settings(max_examples=200, deadline=None)
def test_instrument_lines_and_held_quantity_are_exactly_what_same_instrument_matches(positions, symbol, con_id, sec_type):
    lines = [p for p in positions if same_instrument(p, symbol, con_id, sec_type)]
    assert instrument_lines(positions, symbol, con_id, sec_type) == lines
    assert held_quantity(positions, symbol, con_id, sec_type) == float(sum(p.quantity for p in lines))


# --------------------------------------------------------------------------- resize_plan
def pos(symbol, qty, price, mult=1.0):
    return Position(symbol, qty, price, market_price=price, multiplier=mult)


def test_resize_down_to_max_bound():
    plan = resize_plan([pos("AAPL", 100, 100.0), pos("MSFT", 50, 200.0)], max_bound=10_000.0)  # gross 20,000
    assert [(o.symbol, o.action, o.quantity, o.target_quantity) for o in plan] == [
        ("AAPL", SELL, 50.0, 50.0),
        ("MSFT", SELL, 25.0, 25.0),
    ]


def test_resize_up_to_min_bound_and_shorts_scale_too():
    plan = resize_plan([pos("AAPL", 10, 100.0), pos("TSLA", -10, 100.0)], min_bound=4_000.0)  # gross 2,000
    assert [(o.symbol, o.action, o.quantity, o.target_quantity) for o in plan] == [
        ("AAPL", BUY, 10.0, 20.0),
        ("TSLA", SELL, 10.0, -20.0),
    ]


def test_resize_within_bounds_does_nothing_and_rounds_toward_zero():
    assert resize_plan([pos("AAPL", 10, 100.0)], max_bound=1_000.0) == []  # at the bound: nothing to do
    assert resize_plan([pos("AAPL", 10, 100.0)], max_bound=2_000.0, min_bound=500.0) == []
    plan = resize_plan([pos("AAPL", 7, 100.0)], max_bound=350.0)  # 3.5 shares → 3
    assert plan[0].target_quantity == 3.0 and plan[0].quantity == 4.0


def test_resize_refuses_bad_bounds_and_unpriced_positions():
    with pytest.raises(InvalidOrder):
        resize_plan([pos("AAPL", 1, 1.0)])
    with pytest.raises(InvalidOrder, match="above max bound"):
        resize_plan([pos("AAPL", 1, 1.0)], max_bound=10.0, min_bound=20.0)
    with pytest.raises(InvalidOrder, match="no market price for MSFT"):
        resize_plan([pos("AAPL", 1, 1.0), Position("MSFT", 5, 10.0)], max_bound=1.0)


@settings(max_examples=200, deadline=None)
@given(
    holdings=st.lists(
        st.tuples(st.integers(-500, 500), st.floats(0.5, 2000.0), st.sampled_from([1.0, 100.0])),
        min_size=1, max_size=6,
    ),
    bound=st.floats(100.0, 5e6),
)
def test_resize_to_max_bound_never_ends_above_it(holdings, bound):
    positions = [pos(f"S{i}", float(q), p, m) for i, (q, p, m) in enumerate(holdings)]
    plan = {o.symbol: o for o in resize_plan(positions, max_bound=bound)}
    after = 0.0
    for p in positions:
        target = plan[p.symbol].target_quantity if p.symbol in plan else p.quantity
        assert abs(target) <= abs(p.quantity)
        assert target == 0 or math.copysign(1, target) == math.copysign(1, p.quantity)  # a shrink never flips
        after += abs(target * p.market_price * p.multiplier)
    before = sum(abs(p.market_value) for p in positions)
    if before > bound:
        assert after <= bound * (1 + 1e-9)
    else:
        assert plan == {} and after == pytest.approx(before)
