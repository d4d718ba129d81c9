"""Currency pair parsing and conversion legs (trader/tools/forex.py)."""

from __future__ import annotations

import pytest

from trader.tools.forex import conversion_legs, convert, parse_pair

LISTED = {("EUR", "USD"), ("USD", "JPY"), ("GBP", "USD")}


def listed(a, b):
    return (a, b) in LISTED


@pytest.mark.parametrize("text", ["EURUSD", "eur.usd", "EUR/USD"])
def test_parse_pair_forms(text):
    assert parse_pair(text) == ("EUR", "USD")
    assert parse_pair("EUR", "usd") == ("EUR", "USD")


@pytest.mark.parametrize("bad", ["EUR", "EUREUR", "EURUSDX", "12345X"])
def test_parse_pair_refuses(bad):
    with pytest.raises(ValueError):
        parse_pair(bad)


def test_direct_inverse_and_cross_legs_round_trip():
    assert conversion_legs("EUR", "USD", listed) == [("EUR", "USD", False)]
    assert conversion_legs("USD", "EUR", listed) == [("EUR", "USD", True)]
    cross = conversion_legs("EUR", "JPY", listed)
    assert cross == [("EUR", "USD", False), ("USD", "JPY", False)]
    rates = {("EUR", "USD"): 1.08, ("USD", "JPY"): 150.0}
    there = convert(1000, cross, [rates[(a, b)] for a, b, _ in cross])
    back_legs = conversion_legs("JPY", "EUR", listed)
    back = convert(there, back_legs, [rates[(a, b)] for a, b, _ in back_legs])
    assert there == pytest.approx(162_000.0) and back == pytest.approx(1000.0)
    with pytest.raises(ValueError):
        conversion_legs("CHF", "SEK", listed)
