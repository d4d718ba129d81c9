"""Quantity rules the service applies to every order: instrument minimum size and increment, the configured
maximum, and "never more than held" counting working sell orders."""

from __future__ import annotations

import pytest

from trader.errors import InvalidOrder
from trader.trading.models import Action
from trader.trading.orders import (
    ABSOLUTE_MAX_QUANTITY,
    OrderRequest,
    check_quantity_for_contract,
    check_sell_within_holding,
    order_problems,
    size_rules,
    working_quantity,
)

STK = {"con_id": 1, "symbol": "AAPL", "sec_type": "STK"}


def buy(qty: float, **kw) -> OrderRequest:
    return OrderRequest(symbol="AAPL", action=Action.BUY, quantity=qty, **kw)


def test_size_rules_default_to_whole_units_for_stocks_futures_options():
    for sec in ("STK", "FUT", "OPT"):
        assert size_rules({"sec_type": sec}) == (1.0, 1.0)
    assert size_rules({"sec_type": "CASH"}) == (0.0, 0.0)
    assert size_rules({"sec_type": "STK", "min_size": 0.0001, "size_increment": 0.0001}) == (0.0001, 0.0001)
    assert size_rules({"sec_type": "STK", "min_size": float("nan"), "size_increment": None}) == (1.0, 1.0)


@pytest.mark.parametrize("qty", [1e-300, 0.999, 2.5])
def test_stock_quantity_must_be_whole_shares_when_the_broker_says_nothing(qty):
    with pytest.raises(InvalidOrder):
        check_quantity_for_contract(buy(qty), STK, 1000)


def test_fractional_quantity_passes_where_the_contract_allows_it():
    frac = {**STK, "min_size": 0.0001, "size_increment": 0.0001}
    check_quantity_for_contract(buy(0.5), frac, 1000)
    with pytest.raises(InvalidOrder, match="increment"):
        check_quantity_for_contract(buy(0.00015), frac, 1000)


def test_increment_check_is_exact_on_decimals():
    check_quantity_for_contract(buy(0.3), {**STK, "min_size": 0.1, "size_increment": 0.1}, 1000)  # 0.3 % 0.1


def test_maximum_is_configured_and_capped_absolutely():
    check_quantity_for_contract(buy(1000), STK, 1000)
    with pytest.raises(InvalidOrder, match="max_order_quantity"):
        check_quantity_for_contract(buy(1001), STK, 1000)
    with pytest.raises(InvalidOrder, match="above"):
        check_quantity_for_contract(buy(ABSOLUTE_MAX_QUANTITY * 10), STK, None)


def test_non_finite_quantity_is_refused():
    with pytest.raises(InvalidOrder):
        check_quantity_for_contract(buy(float("inf")), STK, 1000)
    assert any("absolute limit" in p for p in order_problems(buy(1e308)))


def test_an_amount_is_checked_once_converted():
    check_quantity_for_contract(OrderRequest(symbol="AAPL", action=Action.BUY, amount=1e6), STK, 10)


def test_sell_within_holding_subtracts_working_sells():
    sell = OrderRequest(symbol="AAPL", action=Action.SELL, quantity=38)
    check_sell_within_holding(sell, 38)
    with pytest.raises(InvalidOrder, match="0 available"):
        check_sell_within_holding(sell, 38, working_sells=38)
    check_sell_within_holding(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=38, allow_short=True),
                              38, working_sells=38)
    check_sell_within_holding(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=8), 38, working_sells=30)


def test_working_quantity_matches_instrument_side_and_counts_an_oca_group_once():
    rows = [
        {"con_id": 1, "symbol": "AAPL", "sec_type": "STK", "action": "SELL", "remaining": 38},
        {"con_id": 1, "symbol": "AAPL", "sec_type": "STK", "action": "SELL", "remaining": 10, "oca_group": "b"},
        {"con_id": 1, "symbol": "AAPL", "sec_type": "STK", "action": "SELL", "remaining": 10, "oca_group": "b"},
        {"con_id": 1, "symbol": "AAPL", "sec_type": "STK", "action": "BUY", "remaining": 5},
        {"con_id": 2, "symbol": "MSFT", "sec_type": "STK", "action": "SELL", "remaining": 7},
        {"con_id": 1, "symbol": "AAPL", "sec_type": "STK", "action": "SELL", "remaining": 0},
    ]
    assert working_quantity(rows, "AAPL", 1, "STK", Action.SELL) == 48
    assert working_quantity(rows, "AAPL", 0, "STK", "SELL") == 48  # by symbol when the conId is unknown
    assert working_quantity(rows, "AAPL", 1, "STK", "BUY") == 5
    assert working_quantity(rows, "MSFT", 2) == 7
