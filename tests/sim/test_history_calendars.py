"""History follows each instrument's exchange calendar whatever the live clock mode: stocks by session,
FX 24×5, crypto 24×7 — so a year of daily stock bars is ~252 bars, not 366 (which made CAGR and Sharpe
wrong when annualised by 252)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from trader.sim.clock import SimClock
from trader.sim.contracts import ContractUniverse
from trader.sim.market import SimMarket

from .conftest import T0

AAPL, EURUSD = 265598, 12087792
YEAR = 365 * 86400


@pytest.mark.parametrize("mode", ["24x7", "exchange"])
def test_a_year_of_daily_stock_bars_is_its_trading_days(universe, mode):
    market = SimMarket(universe, SimClock(T0, manual=True), seed=42, calendar=mode)
    days = market.history(AAPL, T0, YEAR, 86400)
    assert 250 <= len(days) <= 253
    assert all(d.time.weekday() < 5 for d in days)
    stamps = {d.time.date() for d in days}
    assert datetime(2026, 7, 3).date() not in stamps and datetime(2025, 12, 25).date() not in stamps  # holidays


def test_fx_history_is_24x5_on_the_24x7_clock(market):
    hours = market.history(EURUSD, T0, 14 * 86400, 3600)  # two weeks of hourly bars to Tue 10:30 NY
    assert not [b for b in hours if b.time.weekday() == 5]  # nothing on Saturdays
    # Tue 16:00 UTC → Fri 22:00 UTC (17:00 NY) = 78, a full week of 120, Sun 22:00 → Tue 15:30 = 42
    assert len(hours) == 78 + 120 + 42
    days = market.history(EURUSD, T0, 28 * 86400, 86400)
    assert all(d.time.weekday() < 5 for d in days) and len(days) == 21  # 4 weeks + the partial first day


def test_crypto_history_is_24x7(universe):
    btc = dataclasses.replace(universe.by_con_id(AAPL), con_id=479624278, symbol="BTC", sec_type="CRYPTO",
                              exchange="PAXOS", primary_exchange="PAXOS", local_symbol="BTC.USD",
                              trading_class="BTC", time_zone="UTC")
    crypto = ContractUniverse([*universe, btc])
    market = SimMarket(crypto, SimClock(T0, manual=True), seed=42)
    days = market.history(btc.con_id, T0, 28 * 86400, 86400)
    assert len(days) == 29 and {d.time.weekday() for d in days} == set(range(7))
    assert days[-1].time == datetime(2026, 11, 24, tzinfo=UTC)
