"""`what_if_delta` gives exactly `what_if(...).to_dict()`: on random books (longs, shorts, several lines of one
symbol, zero values), groups, correlated returns (clusters form, some symbols too short or flat to count),
thresholds low enough to warn, and trades that add, reduce, flip, close a holding exactly or open a new one."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from trader.trading.groups import PositionGroup, values_by_symbol
from trader.trading.models import Position
from trader.trading.portfolio_risk import (
    RiskInputs,
    RiskThresholds,
    correlation_structure,
    portfolio_risk,
    what_if,
)
from trader.trading.what_if_delta import BookBefore, what_if_delta

POOL = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH", "III", "JJJ"]


def _returns(rng: random.Random) -> dict[str, list[float]]:
    gen = np.random.default_rng(rng.randrange(1 << 30))
    factors = gen.normal(0, 0.01, (3, 60))
    out = {}
    for k, s in enumerate(POOL + ["NEW1", "NEW2"]):
        kind = rng.random()
        if kind < 0.08:
            out[s] = [0.001] * 60  # flat: not correlated
        elif kind < 0.15:
            out[s] = gen.normal(0, 0.01, 10).tolist()  # too short
        else:
            noise = rng.choice([0.001, 0.004, 0.02])
            sign = rng.choice([1, 1, -1])
            out[s] = (sign * factors[k % 3] + gen.normal(0, noise, 60)).tolist()
    return out


def _case(rng: random.Random) -> tuple[RiskInputs, list[Position]]:
    positions = []
    for _ in range(rng.randrange(0, 14)):
        sym = rng.choice(POOL)
        qty = rng.choice([0, rng.randint(-60, 60), rng.randint(1, 400)])
        price = rng.choice([None, round(rng.uniform(5, 300), 2)])
        positions.append(Position(rng.choice([sym, sym.lower()]), float(qty), round(rng.uniform(5, 300), 2), price))
    nlv = rng.choice([20_000.0, 100_000.0, 1_000_000.0, rng.uniform(5_000, 2_000_000)])
    groups = tuple(PositionGroup(f"g{k}", rng.choice([0.0, 5.0, 20.0, 60.0, 100.0]), rng.sample(POOL, rng.randint(1, 4)))
                   for k in range(rng.randrange(0, 4)))
    returns = None if rng.random() < 0.15 else _returns(rng)
    t = rng.choice([RiskThresholds(), RiskThresholds(position_warning_pct=2.0, position_critical_pct=5.0,
                                                     cluster_corr=0.5, cluster_net_pct=3.0, hhi_warning=0.1,
                                                     gross_warning_pct=20.0)])
    inputs = RiskInputs(tuple(positions), nlv, groups, returns, t)
    values = values_by_symbol(positions)
    held_lines = {}
    for p in positions:
        held_lines.setdefault(p.symbol.upper(), []).append(p)
    trades = []
    for _ in range(4):  # several trades against one book, as a batch prices them
        kind = rng.random()
        lines = held_lines.get(sym := rng.choice(list(held_lines) or POOL), [])
        price = round(rng.uniform(5, 300), 2)
        if kind < 0.25 and len(lines) == 1 and lines[0].market_price is not None:  # close the holding exactly
            new = Position(sym, -lines[0].quantity, price, lines[0].market_price)
            assert values[sym] + new.market_value == 0
        elif kind < 0.4:
            new = Position(rng.choice(["NEW1", "NEW2", "new1"]), float(rng.randint(-300, 300)), price, price)
        else:
            new = Position(rng.choice([sym, sym.lower()]), float(rng.choice([-1, 1, rng.randint(-500, 500)])),
                           price, rng.choice([price, None]))
        trades.append(new)
    return inputs, trades


@pytest.mark.parametrize("seed", range(12))
def test_the_delta_equals_what_if_on_random_books(seed: int) -> None:
    rng = random.Random(seed)
    fast_cases = 0
    for _ in range(100):
        inputs, trades = _case(rng)
        cache: dict = {}

        def correlations(symbols, inputs=inputs, cache=cache):
            if symbols not in cache:
                cache[symbols] = correlation_structure(symbols, inputs.returns, inputs.thresholds)
            return cache[symbols]

        before = portfolio_risk(inputs.positions, inputs.nlv, inputs.groups, inputs.returns, inputs.thresholds,
                                correlations)
        book_values = values_by_symbol(inputs.positions)
        # The book read with the held symbols' returns only (as the batch's first check reads it); each trade
        # brings its inputs with its own symbol's returns too (as BrokerFacts.risk_inputs gives them).
        held = {s for s in book_values}
        book_inputs = replace(inputs, returns=None if inputs.returns is None else
                              {s: r for s, r in inputs.returns.items() if s in held})
        book_cache: dict = {}

        def book_correlations(symbols, book_inputs=book_inputs, cache=book_cache):
            if symbols not in cache:
                cache[symbols] = correlation_structure(symbols, book_inputs.returns, book_inputs.thresholds)
            return cache[symbols]

        book = BookBefore(book_inputs, before, book_values, book_correlations)
        for new in trades:
            want = what_if(inputs, new, before=before, correlations=correlations, book_values=book_values).to_dict()
            got = what_if_delta(book, new, inputs, correlations)
            assert got == want, (inputs, new)
            assert list(got["changes"]) == list(want["changes"])  # the same keys in the same order
            fast_cases += bool(want["new_warnings"] or want["cleared_warnings"])
    assert fast_cases > 20  # the cases exercise the warnings, not only the figures


def test_it_covers_what_changes_most() -> None:
    """A hand-made book: the trade pushes its symbol over the critical weight, its group over budget and its
    cluster over the net threshold, and clears the concentration warning; each shows in the delta."""
    gen = np.random.default_rng(7)
    f = gen.normal(0, 0.01, 60)
    returns = {"AAA": (f + gen.normal(0, 0.001, 60)).tolist(), "BBB": (f + gen.normal(0, 0.001, 60)).tolist(),
               "CCC": gen.normal(0, 0.01, 60).tolist()}
    t = RiskThresholds(position_warning_pct=10, position_critical_pct=15, cluster_net_pct=30, hhi_warning=0.4)
    book = (Position("AAA", 100, 100.0, 100.0), Position("BBB", 100, 100.0, 100.0), Position("CCC", 500, 100.0, 100.0))
    inputs = RiskInputs(book, 100_000.0, (PositionGroup("tech", 25.0, ("AAA", "BBB")),), returns, t)
    cache: dict = {}

    def correlations(symbols):
        return cache.setdefault(symbols, correlation_structure(symbols, returns, t))

    before = portfolio_risk(book, 100_000.0, inputs.groups, returns, t, correlations)
    new = Position("AAA", 150, 100.0, 100.0)
    got = what_if_delta(BookBefore(inputs, before, values_by_symbol(book), correlations), new)
    assert got == what_if(inputs, new, before, correlations, values_by_symbol(book)).to_dict()
    assert got["changes"]["AAA_weight_pct"] == {"before": 10.0, "after": 25.0, "delta": 15.0}
    assert got["changes"]["group_tech_pct"] == {"before": 20.0, "after": 35.0, "delta": 15.0}
    assert got["changes"]["AAA_cluster_net_pct"]["after"] == 35.0
    assert any(w.startswith("AAA is 25.0% of NLV (critical") for w in got["new_warnings"])
    assert any(w.startswith("group tech over budget") for w in got["new_warnings"])
    assert any(w.startswith("correlated cluster AAA, BBB") for w in got["new_warnings"])
    assert any(w.startswith("concentrated book") for w in got["cleared_warnings"])


def test_without_a_valid_nlv_or_the_structures_it_is_what_if() -> None:
    """No NLV: what_if's ValueError; returns without shared correlation structures: what_if's own answer."""
    book = (Position("AAA", 10, 100.0, 100.0),)
    new = Position("AAA", 5, 100.0, 100.0)
    empty = portfolio_risk((), 1.0)
    with pytest.raises(ValueError, match="net liquidation"):
        what_if_delta(BookBefore(RiskInputs(book, 0.0), empty, values_by_symbol(book), None), new)
    returns = {"AAA": np.random.default_rng(1).normal(0, 0.01, 40).tolist()}
    inputs = RiskInputs(book, 10_000.0, returns=returns)
    before = portfolio_risk(book, 10_000.0, returns=returns)
    got = what_if_delta(BookBefore(inputs, before, values_by_symbol(book), None), new)
    assert got == what_if(inputs, new, before).to_dict()
    assert got["changes"]["AAA_weight_pct"] == {"before": 10.0, "after": 15.0, "delta": 5.0}
