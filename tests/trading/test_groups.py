"""Position groups: validation, usage from positions, budget checks in warn and reject mode."""

from __future__ import annotations

import pytest

from trader.errors import GroupBudgetExceeded, InvalidGroup
from trader.messaging.codec import packb, unpackb
from trader.trading.groups import (
    GroupMode,
    PositionGroup,
    check_group_budget,
    enforce_group_budget,
    group_exposure,
    groups_for_symbol,
    position_value,
    values_by_symbol,
)
from trader.trading.models import Position

NLV = 100_000.0
TECH = PositionGroup("tech", 30.0, ("aapl", "MSFT", "MSFT"))
BOOK = [
    Position("AAPL", 100, 150.0, 160.0),  # +16,000
    Position("MSFT", -20, 400.0, 400.0),  # −8,000 (a short uses budget too)
    Position("XOM", 50, 100.0, 110.0),  # not in the group
]


def test_group_normalises_and_validates():
    assert TECH.symbols == ("AAPL", "MSFT")
    assert "aapl" in TECH and "XOM" not in TECH
    for bad in ("", "has space", "x" * 41):
        with pytest.raises(InvalidGroup, match="invalid group name"):
            PositionGroup(bad, 10.0)
    for budget in (-1.0, 100.5, float("nan")):
        with pytest.raises(InvalidGroup, match="budget"):
            PositionGroup("g", budget)


def test_edits_return_new_groups():
    g = TECH.with_symbols(["nvda", "AAPL"]).without_symbols(["msft"]).with_budget(25.0)
    assert g.symbols == ("AAPL", "NVDA") and g.budget_pct == 25.0
    assert TECH.symbols == ("AAPL", "MSFT")
    assert unpackb(packb(g)) == g


def test_values_and_exposure():
    assert position_value(Position("X", 10, 5.0)) == 50.0  # no market price: cost basis
    assert values_by_symbol([Position("A", 1, 1, 10.0), Position("a", 2, 1, 10.0)]) == {"A": 30.0}
    assert group_exposure(TECH, BOOK) == pytest.approx(24_000.0)


def test_within_budget():
    c = check_group_budget(TECH, BOOK, NLV, "NVDA", 5_000.0)
    assert c.within and not c.exceeds and not c.blocking
    assert c.used_usd == pytest.approx(24_000.0) and c.used_pct == pytest.approx(24.0)
    assert c.after_usd == pytest.approx(29_000.0) and c.after_pct == pytest.approx(29.0)
    assert c.budget_usd == pytest.approx(30_000.0) and c.headroom_usd == pytest.approx(1_000.0)
    assert "within its 30% budget" in c.message


def test_exceeds_warn_and_reject():
    warn = check_group_budget(TECH, BOOK, NLV, "AAPL", 7_000.0, mode="warn")
    assert warn.exceeds and not warn.blocking
    assert warn.after_usd == pytest.approx(31_000.0) and warn.headroom_usd == pytest.approx(-1_000.0)
    assert "over budget (warning)" in warn.message and "31.0%" in warn.message
    assert enforce_group_budget(warn) is warn
    reject = check_group_budget(TECH, BOOK, NLV, "AAPL", 7_000.0, mode=GroupMode.REJECT)
    assert reject.blocking
    with pytest.raises(GroupBudgetExceeded, match="tech over budget"):
        enforce_group_budget(reject)


def test_sell_nets_against_the_members_position():
    # Selling 10,000 of the 16,000 AAPL long shrinks the group: 6,000 + 8,000 = 14,000.
    c = check_group_budget(TECH, BOOK, NLV, "AAPL", -10_000.0)
    assert c.after_usd == pytest.approx(14_000.0) and c.within
    # Adding to the MSFT short grows it: |−8,000 − 10,000| + 16,000 = 34,000.
    c = check_group_budget(TECH, BOOK, NLV, "MSFT", -10_000.0)
    assert c.after_usd == pytest.approx(34_000.0) and c.exceeds


def test_tagged_non_member_counts_with_its_existing_position():
    c = check_group_budget(TECH, BOOK, NLV, "XOM", 1_000.0)
    assert c.after_usd == pytest.approx(24_000.0 + 5_500.0 + 1_000.0)


def test_reducing_an_over_budget_group_is_allowed():
    small = PositionGroup("small", 10.0, ("AAPL", "MSFT"))
    c = check_group_budget(small, BOOK, NLV, "AAPL", -1_000.0, mode="reject")
    assert c.within and not c.blocking


def test_unknown_nlv_fails_closed():
    c = check_group_budget(TECH, BOOK, None, "AAPL", 1.0, mode="reject")
    assert c.exceeds and c.blocking and c.after_pct is None
    assert "unknown" in c.message


def test_groups_for_symbol():
    energy = PositionGroup("energy", 20.0, ("XOM", "CVX"))
    assert groups_for_symbol([TECH, energy], "xom") == [energy]
    assert groups_for_symbol([TECH, energy], "IBM") == []
