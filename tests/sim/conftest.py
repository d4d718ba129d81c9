"""Fixtures shared by the simulated-gateway tests: one contract universe, a manual clock, a seeded market."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trader.sim.clock import SimClock
from trader.sim.contracts import ContractUniverse
from trader.sim.market import SimMarket, model_spot

T0 = datetime(2026, 11, 24, 15, 30, 17, tzinfo=UTC)  # a Tuesday, 10:30 New York (tests use the same instant)


@pytest.fixture(scope="module")
def universe() -> ContractUniverse:
    return ContractUniverse.load(today=T0.date(), spot=model_spot(42, T0.date()))


@pytest.fixture
def clock() -> SimClock:
    return SimClock(T0, manual=True)


@pytest.fixture
def market(universe, clock) -> SimMarket:
    return SimMarket(universe, clock, seed=42)
