"""Market data through ib_async: streaming and snapshot ticks, history vs live, bars, tick-by-tick, depth."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import timedelta

import pytest
from ib_async import Forex, Index, Stock

from trader.sim import testkit
from trader.sim.testkit import START
from trader.testing import run_async, until


@contextlib.asynccontextmanager
async def connected(tmp_path):
    """gateway, client and the gateway's manual clock."""
    async with testkit.connected(tmp_path) as (gw, ib):
        yield gw, ib, gw.clock


@run_async
async def test_streaming_ticks_arrive_and_follow_the_clock(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ticker = ib.reqMktData(aapl)
        await until(lambda: not math.isnan(ticker.last) and ticker.bidSize > 0)
        q = gw.market.quote(aapl.conId)
        assert (ticker.bid, ticker.ask, ticker.last) == (q.bid, q.ask, q.last)
        assert ticker.close == q.close and ticker.volume == q.volume and ticker.high == q.high
        seen: list[float] = []
        ticker.updateEvent += lambda t: seen.append(t.last)
        for _ in range(5):
            clock.advance(timedelta(seconds=20))
            await asyncio.sleep(0.05)
        q2 = gw.market.quote(aapl.conId)
        await until(lambda: ticker.last == q2.last and ticker.volume == q2.volume)
        assert seen  # updates were streamed, not only the first image
        ib.cancelMktData(aapl)
        await until(lambda: not gw.sessions[1].mkt)


@run_async
async def test_snapshot_forex_and_index(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock):
        eur, spx = await ib.qualifyContractsAsync(Forex("EURUSD"), Index("SPX", "CBOE"))
        t_eur, t_spx = await ib.reqTickersAsync(eur, spx)
        q = gw.market.quote(eur.conId)
        assert (t_eur.bid, t_eur.ask) == (q.bid, q.ask)
        assert t_spx.last == gw.market.quote(spx.conId).last
        assert not gw.sessions[1].mkt  # snapshots leave no subscription behind


@run_async
async def test_history_last_bar_matches_live_stream_at_its_start(tmp_path):
    async with connected(tmp_path) as (_gw, ib, _clock):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(aapl, "", "1800 S", "1 min", "TRADES", False)
        assert len(bars) == 30
        assert bars[-1].date == START - timedelta(minutes=1) or bars[-1].date == START
        ticker = ib.reqMktData(aapl)
        await until(lambda: not math.isnan(ticker.last))
        assert ticker.last == bars[-1].close  # no jump between history and live
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)

        daily = await ib.reqHistoricalDataAsync(aapl, "", "10 D", "1 day", "TRADES", True)
        assert 5 <= len(daily) <= 11 and isinstance(daily[-1].date, type(START.date()))
        ended = await ib.reqHistoricalDataAsync(aapl, START - timedelta(hours=2), "1 D", "1 hour", "MIDPOINT", False)
        assert ended and ended[-1].date <= START - timedelta(hours=2)
        head = await ib.reqHeadTimeStampAsync(aapl, "TRADES", False, 1)
        assert head < START - timedelta(days=365)


@run_async
async def test_real_time_bars_tick_by_tick_and_depth(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        rt = ib.reqRealTimeBars(aapl, 5, "TRADES", False)
        tbt = ib.reqTickByTickData(aapl, "BidAsk")
        depth = ib.reqMktDepth(aapl, numRows=5)
        await until(lambda: len(depth.domBids) == 5 and len(depth.domAsks) == 5 and tbt.tickByTicks)
        q = gw.market.quote(aapl.conId)
        assert depth.domBids[0].price == q.bid and depth.domAsks[0].price == q.ask
        assert depth.domBids[1].price < depth.domBids[0].price < depth.domAsks[0].price
        assert tbt.tickByTicks[-1].bidPrice == q.bid
        clock.advance(timedelta(seconds=16))
        await until(lambda: len(rt) >= 3)
        assert [b.time for b in rt][:3] == [START, START + timedelta(seconds=5), START + timedelta(seconds=10)]
        bars5 = gw.market.history(aapl.conId, START + timedelta(seconds=15), 15, 5)
        assert [b.close for b in rt][:3] == pytest.approx([b.close for b in bars5])


@run_async
async def test_history_keep_up_to_date_streams_the_forming_bar(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(aapl, "", "600 S", "1 min", "TRADES", False, keepUpToDate=True)
        n = len(bars)
        clock.advance(timedelta(seconds=90))
        await until(lambda: len(bars) > n)
        expected = gw.market.history(aapl.conId, clock.now(), 60, 60)[-1]
        await until(lambda: bars[-1].close == expected.close)
        assert bars[-1].date == expected.time
        ib.cancelHistoricalData(bars)
        await until(lambda: not gw.sessions[1].hist)
