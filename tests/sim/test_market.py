"""The simulated market: determinism, history agreeing with live quotes, derivatives, calendars, clock."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from trader.sim.clock import SimClock, TradingCalendar
from trader.sim.market import RISK_FREE_RATE, SimMarket, black_scholes

T0 = datetime(2026, 11, 24, 15, 30, 17, tzinfo=UTC)  # a Tuesday, 10:30 New York
AAPL, SPY, EURUSD, SPX = 265598, 756733, 12087792, 416904


def _es(universe):
    return universe.find(symbol="ES", sec_type="FUT")[0]


def _atm(universe) -> float:
    """The SPY strike nearest the middle of its ladder (the ladder centres on the model's price of the day)."""
    strikes = universe.option_chain(SPY)[0][4]
    return strikes[len(strikes) // 2]


def _spy_call(universe, strike=None):
    strike = strike or _atm(universe)
    return universe.find(symbol="SPY", sec_type="OPT", last_trade_date="20261218", strike=strike, right="C")[0]


def test_same_seed_same_path_other_seed_other_path(universe, clock, market):
    twin = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    other = SimMarket(universe, SimClock(T0, manual=True), seed=7)
    times = [T0 + timedelta(seconds=s) for s in (0, 1, 59, 61, 3600, 86400 * 3 + 17)]
    assert [market.quote(AAPL, t) for t in times] == [twin.quote(AAPL, t) for t in times]
    assert [market.quote(AAPL, t).last for t in times] != [other.quote(AAPL, t).last for t in times]
    # order of queries does not matter (pure function of seed, conId, time)
    fresh = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    assert [fresh.quote(AAPL, t) for t in reversed(times)] == [market.quote(AAPL, t) for t in reversed(times)]


def test_quote_shape(market, clock):
    q = market.quote(AAPL)
    assert q.time == T0 and q.con_id == AAPL
    assert 0 < q.bid < q.ask and q.bid <= q.last <= q.ask
    assert round(q.ask - q.bid, 2) >= 0.01
    assert q.bid_size >= 100 and q.ask_size >= 100 and q.bid_size % 100 == 0
    assert q.volume > 0 and q.low <= q.last <= q.high and q.low <= q.open <= q.high
    assert q.close > 0
    ind = market.quote(SPX)
    assert ind.bid == ind.ask == ind.last and ind.bid_size == 0 and ind.volume == 0
    fx = market.quote(EURUSD)
    assert fx.ask > fx.bid and round((fx.ask - fx.bid) / 0.00005) >= 1
    # sub-second times fall on the same 1-second grid point
    assert market.quote(AAPL, T0 + timedelta(milliseconds=400)).last == q.last


def test_prices_start_near_csv_and_move(market, universe):
    aapl = universe.by_con_id(AAPL)
    assert 0.2 * aapl.start_price < market.quote(AAPL).last < 5 * aapl.start_price
    lasts = {market.quote(AAPL, T0 + timedelta(minutes=m)).last for m in range(30)}
    assert len(lasts) > 5


@pytest.mark.parametrize("bar_seconds,duration", [(1, 300), (5, 600), (60, 86400), (300, 86400 * 2),
                                                  (3600, 86400 * 3), (86400, 86400 * 10)])
def test_history_ends_at_the_live_quote(market, universe, bar_seconds, duration):
    for con_id in (AAPL, _es(universe).con_id, _spy_call(universe).con_id, EURUSD):
        bars = market.history(con_id, T0, duration, bar_seconds)
        assert bars, con_id
        assert bars[-1].close == market.quote(con_id, T0).last
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
        assert [b.time for b in bars] == sorted(b.time for b in bars)


def test_history_then_live_has_no_jump(market, clock):
    bars = market.history(AAPL, T0, 3600, 60)
    assert bars[-1].time == T0.replace(second=0)  # the partial current minute
    assert len(bars) == 60 and bars[0].time == T0.replace(second=0) - timedelta(minutes=59)
    for prev, nxt in zip(bars, bars[1:], strict=False):
        assert prev.close == nxt.open  # bars chain: each opens where the previous closed
    clock.advance(1)
    assert abs(market.quote(AAPL).last - bars[-1].close) < 1.0


def test_minute_bar_high_low_match_second_quotes(market):
    start = T0.replace(second=0) - timedelta(minutes=10)
    bars = market.history(AAPL, start + timedelta(minutes=1), 60, 60)
    assert len(bars) == 1
    seconds = [market.quote(AAPL, start + timedelta(seconds=s)).last for s in range(61)]
    b = bars[0]
    assert (b.open, b.high, b.low, b.close) == (seconds[0], max(seconds), min(seconds), seconds[-1])
    fives = market.history(AAPL, start + timedelta(minutes=1), 60, 5)
    assert len(fives) == 12 and max(x.high for x in fives) == b.high and min(x.low for x in fives) == b.low


def test_bar_sizes_aggregate_consistently(market):
    end = T0.replace(minute=0, second=0)
    ones = market.history(AAPL, end, 3600, 60)
    fives = market.history(AAPL, end, 3600, 300)
    hour = market.history(AAPL, end, 3600, 3600)
    assert len(ones) == 60 and len(fives) == 12 and len(hour) == 1
    for i, f in enumerate(fives):
        chunk = ones[i * 5:(i + 1) * 5]
        assert (f.open, f.close) == (chunk[0].open, chunk[-1].close)
        assert f.high == max(b.high for b in chunk) and f.low == min(b.low for b in chunk)
        assert f.volume == sum(b.volume for b in chunk)
    assert hour[0].high == max(b.high for b in ones) and hour[0].volume == sum(b.volume for b in ones)


def test_daily_weekly_bars_and_what_to_show(market, universe):
    days = market.history(AAPL, T0, 86400 * 30, 86400)
    # history follows NYSE sessions even on the 24x7 live clock: 22 trading days in the 30 to Tue 24 Nov
    assert len(days) == 22 and days[-1].time == datetime(2026, 11, 24, tzinfo=UTC)
    assert all(d.time.weekday() < 5 for d in days) and days[-1].close == market.quote(AAPL, T0).last
    exchange = SimMarket(universe, SimClock(T0, manual=True), seed=42, calendar="exchange")
    q = exchange.quote(AAPL, T0)  # on the exchange clock the live session and today's bar are one
    today = exchange.history(AAPL, T0, 86400 * 30, 86400)[-1]
    assert (today.open, today.volume, today.close) == (q.open, q.volume, q.last)
    weeks = market.history(AAPL, T0, 86400 * 28, 7 * 86400)
    assert 4 <= len(weeks) <= 5
    mids = market.history(AAPL, T0, 600, 60, what_to_show="MIDPOINT")
    bids = market.history(AAPL, T0, 600, 60, what_to_show="BID")
    asks = market.history(AAPL, T0, 600, 60, what_to_show="ASK")
    q = market.quote(AAPL, T0)
    assert bids[-1].close == q.bid and asks[-1].close == q.ask
    assert mids[-1].close == pytest.approx((q.bid + q.ask) / 2)
    assert mids[-1].volume == -1


def test_year_of_minute_bars(market):
    arrays = market.history_arrays(SPY, T0, 365 * 86400, 60)
    assert len(arrays["close"]) == 251 * 16 * 60  # 251 NYSE sessions of 04:00–20:00 ET, up to the current minute
    assert arrays["close"][-1] == market.quote(SPY, T0).last
    assert (arrays["high"] >= arrays["low"]).all()


def test_futures_follow_the_index_with_carry(market, universe):
    es = _es(universe)
    spx = market.quote(SPX).last
    fut = market.quote(es.con_id)
    years = (datetime(2026, 12, 18, 21, tzinfo=UTC) - T0).total_seconds() / (365.25 * 86400)
    assert fut.last == pytest.approx(spx * math.exp(RISK_FREE_RATE * years), abs=0.5)
    assert fut.last % 0.25 == 0 and fut.ask - fut.bid == 0.25
    mes = universe.find(symbol="MES", sec_type="FUT", last_trade_date="202612")[0]
    assert market.quote(mes.con_id).last == fut.last  # same index, same expiry


def test_options_are_black_scholes_on_the_underlying(market, universe, clock):
    k = _atm(universe)
    call = _spy_call(universe, k)
    put = universe.find(symbol="SPY", sec_type="OPT", last_trade_date="20261218", strike=k, right="P")[0]
    s = market.quote(SPY)
    assert abs(s.last / k - 1) < 0.05  # the ladder follows the market: its middle strike is near the money
    years = (datetime(2026, 12, 18, 21, tzinfo=UTC) - T0).total_seconds() / (365.25 * 86400)
    c, p = market.quote(call.con_id), market.quote(put.con_id)
    expected = black_scholes(s.last, k, years, call.volatility, "C")
    assert c.last == pytest.approx(expected, abs=0.5)
    # put-call parity on the mid
    assert c.last - p.last == pytest.approx(s.last - k * math.exp(-RISK_FREE_RATE * years), abs=0.5)
    assert c.bid < c.ask
    # the option moves with the stock
    market.set_price(SPY, s.last + 20)
    assert market.quote(call.con_id).last > c.last + 10
    assert market.quote(put.con_id).last < p.last
    greeks = market.option_greeks(call.con_id)
    assert 0 < greeks["delta"] < 1 and greeks["gamma"] > 0 and greeks["undPrice"] == pytest.approx(s.last + 20)


def test_set_price_pins_and_shifts(market, clock):
    before = market.quote(AAPL, T0 - timedelta(seconds=5))
    market.set_price(AAPL, 200.0)
    q = market.quote(AAPL)
    assert (q.bid, q.ask, q.last) == (200.0, 200.01, 200.0)
    clock.advance(30)
    assert market.quote(AAPL).last == 200.0  # pinned
    assert market.quote(AAPL, T0 - timedelta(seconds=5)) == before  # the past is unchanged
    bars = market.history(AAPL, clock.now(), 120, 60)
    assert bars[-1].close == 200.0
    market.release(AAPL)
    assert market.quote(AAPL).last != 200.0 or market.quote(AAPL, clock.now() + timedelta(seconds=9)).last != 200.0
    market.set_price(AAPL, 300.0, hold=False)
    assert market.quote(AAPL).last == 300.0
    clock.advance(600)
    assert market.quote(AAPL).last != 300.0  # keeps moving from the new level
    assert 250 < market.quote(AAPL).last < 350


def test_quotes_kept_for_the_second_equal_fresh_ones_and_follow_overrides(universe, market, clock):
    """`quote` keeps the latest second's quotes (a tick step asks ~3 times per held contract): they equal a fresh
    market's, an earlier second is answered right, and an override or a release at that very second shows."""
    fresh = SimMarket(universe, SimClock(T0, manual=True), seed=42)
    first = market.quote(AAPL)
    assert market.quote(AAPL) is first  # kept
    assert first == fresh.quote(AAPL, T0)
    assert market.quote(AAPL, T0 - timedelta(seconds=3)) == fresh.quote(AAPL, T0 - timedelta(seconds=3))
    assert market.quote(AAPL) is first  # an earlier second asked meanwhile does not drop the current one
    market.set_price(AAPL, 123.45)
    assert market.quote(AAPL).last == 123.45  # the same second, re-quoted after the override
    market.release(AAPL)
    assert market.quote(AAPL) == first
    clock.advance(1)
    assert market.quote(AAPL) == fresh.quote(AAPL, T0 + timedelta(seconds=1)) != first


@pytest.mark.parametrize("tick", [0.01, 0.05, 0.25, 0.0001, 0.005, 1.0, 0.03125])
def test_round_tick_scalar_matches_numpy(tick):
    """The scalar fast path of `_round_tick` gives numpy's result bit for bit (half to even included)."""
    import random

    import numpy as np

    from trader.sim.market_math import _round_tick

    rng = random.Random(int(tick * 1e5))
    xs = [rng.uniform(0, 2000) for _ in range(3000)] + [rng.uniform(-5, 5) for _ in range(1000)] + \
        [k * tick + tick / 2 for k in range(500)] + [rng.uniform(1e4, 3e5) for _ in range(500)]
    got = [_round_tick(x, tick) for x in xs]
    assert all(type(g) is float for g in got)
    assert got == np.round(np.round(np.asarray(xs) / tick) * tick, 10).tolist()
    assert math.isnan(_round_tick(math.nan, tick))


def test_24x7_calendar_is_always_open(market):
    saturday = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert market.is_open(AAPL, saturday)
    assert market.session(AAPL, saturday) == (datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
    trading, liquid = market.hours_text(AAPL, days=2, at=saturday)
    assert trading.count(";") == 1 and liquid.startswith("20261127:1900-")  # New York time


def test_exchange_calendar(universe):
    clock = SimClock(T0, manual=True)
    market = SimMarket(universe, clock, seed=42, calendar="exchange")
    assert market.is_open(AAPL, T0)
    assert market.session(AAPL, T0) == (datetime(2026, 11, 24, 14, 30, tzinfo=UTC),
                                        datetime(2026, 11, 24, 21, 0, tzinfo=UTC))
    premarket = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 07:00 New York
    assert not market.is_open(AAPL, premarket) and market.is_open(AAPL, premarket, outside_rth=True)
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    assert not market.is_open(AAPL, saturday, outside_rth=True) and market.session(AAPL, saturday) is None
    thanksgiving = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    assert not market.is_open(AAPL, thanksgiving)
    # prices stand still while closed
    assert market.quote(AAPL, saturday).last == market.quote(AAPL, saturday + timedelta(hours=5)).last
    assert market.is_open(EURUSD, datetime(2026, 11, 23, 3, 0, tzinfo=UTC))  # FX trades Monday in Asia
    assert not market.is_open(EURUSD, saturday)
    # regular-hours history only has bars inside the session
    bars = market.history(AAPL, datetime(2026, 11, 25, 22, 0, tzinfo=UTC), 2 * 86400, 3600, use_rth=True)
    for b in bars:
        assert 14 * 3600 + 1800 <= (b.time.hour * 3600 + b.time.minute * 60) < 21 * 3600, b.time
    assert bars[0].time == datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # first bar starts at the open
    daily = market.history(AAPL, datetime(2026, 11, 28, tzinfo=UTC), 7 * 86400, 86400, use_rth=True)
    assert [b.time.date() for b in daily] == [date(2026, 11, d) for d in (23, 24, 25, 27)]


def test_calendar_mode_is_validated():
    with pytest.raises(ValueError):
        TradingCalendar("sometimes")


def test_clock_modes():
    manual = SimClock(T0, manual=True)
    assert manual.now() == manual.now() == T0
    manual.advance(timedelta(minutes=2))
    manual.advance(3)
    assert manual.now() == T0 + timedelta(seconds=123)
    manual.set(datetime(2027, 1, 1))
    assert manual.now() == datetime(2027, 1, 1, tzinfo=UTC)
    live = SimClock(T0, speed=1000.0)
    a = live.now()
    b = live.now()
    assert b >= a >= T0
    live.set_speed(1.0)
    assert live.speed == 1.0 and live.now() >= b
    with pytest.raises(ValueError):
        SimClock(speed=0)


def test_exchange_mode_history_ends_at_the_frozen_quote(universe):
    market = SimMarket(universe, SimClock(T0, manual=True), seed=42, calendar="exchange")
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    for use_rth in (False, True):
        bars = market.history(AAPL, saturday, 3 * 86400, 60, use_rth=use_rth)
        assert bars
        if not use_rth:  # post-market ended Friday 20:00 New York (half day: regular close 13:00)
            assert bars[-1].time == datetime(2026, 11, 28, 0, 59, tzinfo=UTC)
            assert bars[-1].close == market.quote(AAPL, saturday).last
        else:
            assert bars[-1].time == datetime(2026, 11, 27, 17, 59, tzinfo=UTC)
    during = datetime(2026, 11, 24, 16, 0, 30, tzinfo=UTC)
    assert market.history(AAPL, during, 3600, 60)[-1].close == market.quote(AAPL, during).last
    trading, liquid = market.hours_text(AAPL, days=3, at=datetime(2026, 11, 24, tzinfo=UTC))
    assert "20261124:0930-20261124:1600" in liquid and "20261124:0400-20261124:2000" in trading


def test_bars_source_replays_stored_bars(universe):
    from trader.sim.models import Bar

    stored = [Bar(T0, 1.0, 2.0, 0.5, 1.5, 10.0, 1.2, 3)]
    calls = []

    def source(contract, start, end, bar_seconds, what_to_show):
        calls.append((contract.con_id, start, end, bar_seconds, what_to_show))
        return stored if contract.con_id == AAPL else None

    market = SimMarket(universe, SimClock(T0, manual=True), bars_source=source)
    assert market.history(AAPL, T0, 3600, 60) == stored
    assert calls == [(AAPL, T0 - timedelta(hours=1), T0, 60, "TRADES")]
    assert len(market.history(SPY, T0, 3600, 60)) == 60  # nothing stored: synthesised
