"""A strategy run live against a replayed day trades as its backtest on the same stored bars.

The replayed market (sim_source: replay) is sampled every second as a live feed sends ticks — a tick only when the
last price or the traded volume moved — and fed through the strategy runtime's own bar builder and dispatcher
(trader/strategy/bars.py, dispatch.py); the backtester's signals on the stored bars are the reference. The bars
must come out as stored (the missing minute stays missing) and the signals identical, bar for bar."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd

from trader.sim.clock import SimClock
from trader.sim.gateway import replay_setup
from trader.sim.market import SimMarket
from trader.strategy.bars import BarBuilder
from trader.strategy.dispatch import ConIdSlot, backtest_signals
from trader.strategy.loader import load_strategy_class

from .test_replay import AAPL, DAY_OPEN, MISSING, bars_dir, stored_day  # noqa: F401 - fixture

STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"
END = DAY_OPEN + timedelta(minutes=130)  # the first 130 minutes, every second (the missing minute is the 101st)


def test_live_on_a_replayed_day_equals_the_backtest_on_its_bars(bars_dir, universe):  # noqa: F811
    feed, _clock, _ = replay_setup(bars_dir, speed=60, universe=universe)
    clock = SimClock(DAY_OPEN, manual=True)
    market = SimMarket(universe, clock, replay=feed)
    cls = load_strategy_class(STRATEGIES, "ma_crossover.py", "MACrossover")
    slot = ConIdSlot("ma", cls().with_params(FAST=5, SLOW=20, ALLOW_SHORT=True), AAPL)
    builder = BarBuilder(60)
    live_bars, live = [], []

    def take(bars) -> None:
        for bar in bars:
            live_bars.append(bar)
            sig = slot.on_live_bar(bar)
            if sig is not None:
                live.append((sig.bar_time, sig.action))

    last = None
    t = DAY_OPEN
    while t < END:
        q = market.quote(AAPL, t)
        if (q.last, q.volume) != last:  # a feed ticks on a change only
            take(builder.on_tick(AAPL, t, q.last, q.volume - (last[1] if last else 0.0)))
            last = (q.last, q.volume)
        t += timedelta(seconds=1)
    take(builder.close_due(END + timedelta(seconds=1)))

    stored = stored_day().loc[:END - timedelta(minutes=1)]
    assert [(b.time, b.open, b.high, b.low, b.close) for b in live_bars] == [
        (ts.to_pydatetime(), r.open, r.high, r.low, r.close) for ts, r in stored.iterrows()]
    assert DAY_OPEN + timedelta(minutes=MISSING) not in {b.time for b in live_bars}  # no bar invented in the gap
    expected = backtest_signals(cls().with_params(FAST=5, SLOW=20, ALLOW_SHORT=True), stored)
    assert len(expected) >= 3, expected
    assert [(pd.Timestamp(t), a) for t, a in live] == [(pd.Timestamp(t), a) for t, a in expected]
