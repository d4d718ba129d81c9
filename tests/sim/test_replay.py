"""Replay (sim_source: replay): a stored day in a temp bar store drives quotes, history, real-time bars and fills."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from ib_async import MarketOrder, Stock

from trader.data.bars import BarStore
from trader.sim import testkit
from trader.sim.clock import SimClock
from trader.sim.gateway import replay_setup
from trader.sim.market import SimMarket
from trader.sim.replay import ReplayError, ReplaySeries, parse_start
from trader.testing import run_async, until

AAPL = 265598
DAY_OPEN = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 09:30 New York
DAY_CLOSE = DAY_OPEN + timedelta(minutes=390)
MISSING = 100  # minute index left out: a gap the replay must not fill with an invented bar


def stored_day() -> pd.DataFrame:
    """390 one-minute AAPL bars on the cent grid (one minute missing), with gaps between close and next open."""
    rng = np.random.default_rng(7)
    rows, price = [], 230.0
    for i in range(390):
        if i == MISSING:
            continue
        o = round(price + rng.integers(-3, 4) * 0.01, 2)
        c = round(o + rng.integers(-15, 16) * 0.01, 2)
        h = round(max(o, c) + rng.integers(0, 8) * 0.01, 2)
        lo = round(min(o, c) - rng.integers(0, 8) * 0.01, 2)
        rows.append({"ts": DAY_OPEN + timedelta(minutes=i), "open": o, "high": h, "low": lo, "close": c,
                     "volume": float(rng.integers(1_000, 50_000)), "vwap": round((h + lo + c) / 3, 4),
                     "bar_count": int(rng.integers(10, 500))})
        price = c
    return pd.DataFrame(rows).set_index("ts")


@pytest.fixture
def bars_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    BarStore.open(d).ingest(AAPL, "1 min", "test", stored_day())
    return d


def _row(df: pd.DataFrame, at: datetime) -> pd.Series:
    return df.loc[pd.Timestamp(at.replace(second=0))]


def test_replayed_market_reproduces_the_stored_day(bars_dir, universe):
    df = stored_day()
    feed, clock, _ = replay_setup(bars_dir, speed=60, universe=universe)
    assert feed.default_start(universe) == DAY_OPEN  # the first bar of the most recent stored day
    assert clock.speed == 60 and DAY_OPEN <= clock.now() < DAY_OPEN + timedelta(hours=1)
    clock = SimClock(DAY_CLOSE, manual=True)
    market = SimMarket(universe, clock, replay=feed)

    bars = market.history(AAPL, DAY_CLOSE, 390 * 60, 60)
    got = [(b.time, b.open, b.high, b.low, b.close, b.volume, b.wap, b.count) for b in bars]
    want = [(t.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume, r.vwap, r.bar_count)
            for t, r in df.iterrows()]
    assert got == want  # exact, gap kept

    five = market.history(AAPL, DAY_CLOSE, 390 * 60, 300)
    assert len(five) == 78
    first = df.iloc[:5]
    assert (five[0].open, five[0].high, five[0].low, five[0].close, five[0].volume) == (
        first.open.iloc[0], first.high.max(), first.low.min(), first.close.iloc[-1], first.volume.sum())
    [daily] = market.history(AAPL, DAY_CLOSE, 86_400, 86_400)
    assert (daily.open, daily.high, daily.low, daily.close, daily.volume) == (
        df.open.iloc[0], df.high.max(), df.low.min(), df.close.iloc[-1], df.volume.sum())

    # Inside a bar the price runs O→L→H→C (up bar) or O→H→L→C (down bar), never leaving [low, high].
    t = DAY_OPEN + timedelta(minutes=42)
    r = _row(df, t)
    path = [market.quote(AAPL, t + timedelta(seconds=s)) for s in range(60)]
    assert path[0].last == r.open and path[59].last == r.close
    up = r.close >= r.open
    assert path[20].last == (r.low if up else r.high) and path[39].last == (r.high if up else r.low)
    assert all(r.low <= q.bid <= q.last <= q.ask <= r.high for q in path)
    # In the gap the price stands at the previous close; after the data ends, at the last close.
    gap = DAY_OPEN + timedelta(minutes=MISSING, seconds=30)
    assert market.quote(AAPL, gap).last == _row(df, gap - timedelta(minutes=1)).close
    assert market.quote(AAPL, DAY_CLOSE + timedelta(hours=3)).last == df.close.iloc[-1]
    # The current bar is cut from the path: it closes at the live price.
    mid = DAY_OPEN + timedelta(minutes=200, seconds=30)
    partial = market.history(AAPL, mid, 600, 60)[-1]
    assert partial.time == mid.replace(second=0) and partial.close == market.quote(AAPL, mid).last
    # Contracts without stored bars keep the seeded model.
    msft = universe.find(symbol="MSFT", sec_type="STK")[0]
    assert market.quote(msft.con_id).last == SimMarket(universe, clock).quote(msft.con_id).last


def test_replay_refuses_an_empty_store_and_bad_start(tmp_path, universe):
    with pytest.raises(ReplayError, match="no bar store"):
        replay_setup(tmp_path, universe=universe)
    with pytest.raises(ReplayError, match="ISO"):
        parse_start("yesterday")
    assert parse_start("2026-03-02T15:00") == datetime(2026, 3, 2, 15, tzinfo=UTC)
    short = ReplaySeries(1, [0, 1], [1.0, 2.0], [1.5, 2.5], [0.5, 1.5], [1.2, 2.2], [10, 20])
    assert short.price(0) == 1.2 and short.price(5) == 2.2  # 1-second bars: the close is the price


@run_async
async def test_ib_async_history_ticks_realtime_bars_and_fill_follow_the_stored_day(bars_dir, universe, tmp_path):
    df = stored_day()
    feed, _, _ = replay_setup(bars_dir, universe=universe)
    clock = SimClock(DAY_CLOSE, manual=True)
    async with testkit.connected(tmp_path, clock=clock, replay=feed, universe=universe) as (gw, ib):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(aapl, "", "23400 S", "1 min", "TRADES", False)
        got = [(b.date.astimezone(UTC), b.open, b.high, b.low, b.close, b.volume) for b in bars]
        assert got == [(t.to_pydatetime(), r.open, r.high, r.low, r.close, r.volume) for t, r in df.iterrows()]

        t = DAY_OPEN + timedelta(minutes=250)
        clock.set(t)
        r = _row(df, t)
        ticker = ib.reqMktData(aapl)
        await until(lambda: ticker.last == r.open and ticker.bid > 0)
        rt = ib.reqRealTimeBars(aapl, 5, "TRADES", False)
        for _ in range(4):
            clock.advance(5)
            await asyncio.sleep(0.05)
        await until(lambda: len(rt) >= 3)
        assert all(r.low <= b.low <= b.high <= r.high for b in rt)
        assert ticker.last == gw.market.quote(aapl.conId).last and r.low <= ticker.last <= r.high

        trade = ib.placeOrder(aapl, MarketOrder("BUY", 100))
        await until(lambda: trade.orderStatus.status == "Filled")
        fill = trade.fills[0]
        bar = _row(df, fill.execution.time.astimezone(UTC))
        assert bar.low <= fill.execution.price <= bar.high and not math.isnan(fill.execution.price)
        ib.cancelRealTimeBars(rt)
        ib.cancelMktData(aapl)
