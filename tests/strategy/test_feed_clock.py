"""The live runtime's feed clock (trader/strategy/clock.py): broker time = local time + a measured offset."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from trader.strategy.bars import BarBuilder
from trader.strategy.clock import DEAD_BAND, FeedClock
from trader.strategy.live import LiveRunner

LOCAL = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


class Wall:
    """A settable local clock."""

    def __init__(self) -> None:
        self.t = LOCAL

    def __call__(self) -> datetime:
        return self.t


def test_unmeasured_clock_is_the_wall_clock() -> None:
    wall = Wall()
    clock = FeedClock(wall)
    assert not clock.known and clock.offset == 0.0
    assert clock.now() == LOCAL
    assert clock.tick_time(LOCAL - timedelta(seconds=1)) == LOCAL - timedelta(seconds=1)


def test_a_replayed_day_in_the_past_sets_the_offset() -> None:
    wall = Wall()
    clock = FeedClock(wall)
    replayed = datetime(2026, 3, 2, 14, 35, tzinfo=UTC)
    moved = clock.measured(replayed)
    assert clock.known and moved == clock.offset == (replayed - LOCAL).total_seconds()
    assert clock.now() == replayed
    wall.t = LOCAL + timedelta(seconds=90)  # time passes at the local rate between measurements
    assert clock.now() == replayed + timedelta(seconds=90)
    # a tick received now is stamped on the replayed day, and a trade time behind it does not pull it back
    assert clock.tick_time(wall.t, replayed + timedelta(seconds=89)) == replayed + timedelta(seconds=90)
    # the sim moved on to another replayed day: a new measurement moves the clock back
    assert clock.measured(replayed - timedelta(days=1), wall.t) < 0
    assert clock.now() == replayed - timedelta(days=1)


def test_dead_band_keeps_a_live_broker_on_the_wall_clock() -> None:
    wall = Wall()
    clock = FeedClock(wall)
    # the real IB answers whole seconds of wall time: up to DEAD_BAND off is no offset at all
    assert clock.measured(LOCAL - timedelta(seconds=DEAD_BAND - 0.1)) == 0.0
    assert clock.known and clock.offset == 0.0 and clock.now() == LOCAL
    assert clock.measured(LOCAL + timedelta(seconds=1.5)) == 0.0 and clock.offset == 0.0
    # a trade time a little ahead (exchange/local skew) stamps its tick but does not move the clock
    ahead = LOCAL + timedelta(seconds=1)
    assert clock.tick_time(LOCAL, ahead) == ahead and clock.offset == 0.0
    # beyond the band the offset is real
    assert clock.measured(LOCAL + timedelta(seconds=DEAD_BAND + 1)) == DEAD_BAND + 1
    assert clock.offset == DEAD_BAND + 1


def test_fresh_trade_times_ahead_move_the_clock_forward_only() -> None:
    wall = Wall()
    clock = FeedClock(wall)
    clock.measured(LOCAL + timedelta(minutes=10))  # an accelerated sim, ten minutes ahead when measured
    wall.t = LOCAL + timedelta(seconds=1)  # one local second later the sim is a minute further on
    trade = LOCAL + timedelta(minutes=11, seconds=1)
    assert clock.tick_time(wall.t, trade) == trade
    assert clock.now() == trade and clock.offset == 660.0
    clock.advance(trade - timedelta(minutes=5))  # never backward
    assert clock.now() == trade
    # a measurement a little behind the trade-advanced clock (whole seconds) leaves it where it is
    assert clock.measured(trade - timedelta(seconds=1), wall.t) == 0.0 and clock.now() == trade


def test_bar_closes_follow_the_feed_clock() -> None:
    """On a replayed day a forming bar closes when the broker's clock passes its end, not on the wall clock."""
    wall = Wall()
    clock = FeedClock(wall)
    replayed = datetime(2026, 3, 2, 14, 35, 10, tzinfo=UTC)
    clock.measured(replayed)
    builder = BarBuilder(60)
    assert builder.on_tick(7, clock.tick_time(wall.t), 100.0) == []
    assert builder.close_due(clock.now()) == []  # the wall clock (months later) would have closed it already
    wall.t += timedelta(seconds=51)
    bars = builder.close_due(clock.now())
    assert [(b.time, b.close) for b in bars] == [(replayed.replace(second=0), 100.0)]


def test_forget_drops_a_seed_from_history_after_the_replayed_moment() -> None:
    builder = BarBuilder(60)
    day = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
    builder.seed(7, day + timedelta(days=200))  # primed on the wall clock: history up to today
    assert builder.on_tick(7, day, 100.0) == [] and builder.late_ticks == 1
    builder.forget(7)
    builder.seed(7, day - timedelta(minutes=1))  # re-primed up to the replayed moment
    builder.on_tick(7, day, 100.0)
    assert [b.time for b in builder.on_tick(7, day + timedelta(minutes=1), 101.0)] == [day]
    assert builder.late_ticks == 1


def _runner(wall: Wall) -> tuple[LiveRunner, list[dict]]:
    """A LiveRunner with only what its clock-dependent parts touch: the clock, one 1-minute strategy, a data_service
    that records its history_read calls."""
    calls: list[dict] = []

    class Data:
        async def call(self, method: str, *args, **kwargs):
            calls.append({"method": method, "args": args, **kwargs})
            return []

    async def symbol(con_id: int) -> str:
        return "AAPL"

    runner = LiveRunner.__new__(LiveRunner)
    runner.clock = FeedClock(wall)
    runner._primed = {}
    runner.runtime = SimpleNamespace(strategies={"ma": SimpleNamespace(seconds=60)})
    runner._data = Data()
    runner._symbol = symbol
    return runner, calls


def test_history_window_ends_at_the_broker_clock_and_a_clock_gone_back_reprimes() -> None:
    wall = Wall()
    runner, calls = _runner(wall)
    entry = SimpleNamespace(name="ma", historical_days_prior=2, bar_size="1 min")
    replayed = datetime(2026, 3, 2, 15, 0, 42, tzinfo=UTC)
    runner.clock.measured(replayed)
    asyncio.run(runner._history(entry, [7]))
    [call] = calls
    assert call["end"] == replayed.replace(second=0)  # the last whole bar: the forming one is not history yet
    assert call["start"] == replayed - timedelta(days=2)
    # primed on the wall clock before the broker's was known, then the replayed day was measured: prime again
    runner.clock = FeedClock(wall)
    runner._primed["ma"] = runner.clock.now()
    assert not runner._clock_went_back("ma")
    wall.t += timedelta(seconds=5)
    runner.clock.measured(replayed)
    assert runner._clock_went_back("ma")
    # an accelerated clock only runs ahead of the moment it was primed at: never primed again for that
    runner.clock = FeedClock(wall)
    runner._primed["ma"] = runner.clock.now()
    runner.clock.measured(wall.t + timedelta(hours=3))
    assert not runner._clock_went_back("ma")
