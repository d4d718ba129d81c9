"""The feed clock: the broker's time as the live strategy runtime sees it.

A live strategy must run on the clock of the market it trades, not on this machine's: the simulated gateway can run
accelerated (``SIM_SPEED``) or replay a stored day in the past (``sim_source: replay``), and both answer
``reqCurrentTime`` with their own clock. `FeedClock` keeps ``offset`` = broker time − local time:

- measured from trader_service's ``broker_time`` RPC at start and on every reconcile pass (`measured`); the real
  IB answers wall time (to the second), so an offset under `DEAD_BAND` seconds counts as 0 and a live feed keeps
  exactly the wall clock;
- moved forward by a fresh trade time more than `DEAD_BAND` ahead of it (`tick_time`: the accelerated clock runs
  ahead between two measurements), never backward by one.

The runtime reads it for tick times, bar closes, the history window, the stale-bar guard, cooldowns, caps and
"today". Plain (no I/O): `trader.strategy.live` feeds it.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

DEAD_BAND = 2.0  # seconds: below this a measured offset (or a change of it) is noise (IB answers whole seconds)


class FeedClock:
    """broker time = local time + ``offset`` seconds (see the module doc). ``known`` once measured."""

    def __init__(self, now: object = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))  # local wall clock (tests inject one)
        self.offset = 0.0
        self.known = False

    def local(self) -> datetime:
        """This machine's time (UTC)."""
        return self._now()

    def now(self) -> datetime:
        """The broker's time now, as far as the runtime knows it."""
        return self._now() + timedelta(seconds=self.offset)

    def shift(self, local: datetime) -> datetime:
        """A local time (e.g. when trader_service received a tick) on the broker's clock."""
        return local + timedelta(seconds=self.offset)

    def measured(self, broker: datetime, local: datetime | None = None) -> float:
        """Take a measurement: the broker answered ``broker`` at local time ``local`` (the middle of the round
        trip; default now). Returns how far the clock moved (seconds, signed). A change within `DEAD_BAND` is
        ignored (a trade time may have moved the clock ahead of a whole-second answer), as is an offset within it
        (the real broker: wall clock exactly)."""
        offset = (broker - (local or self._now())).total_seconds()
        if abs(offset) < DEAD_BAND:
            offset = 0.0
        self.known = True
        if abs(offset - self.offset) < DEAD_BAND:
            return 0.0
        moved, self.offset = offset - self.offset, offset
        return moved

    def tick_time(self, received: datetime | None, trade: datetime | None = None) -> datetime:
        """A tick's time on the broker's clock: its receive time shifted by the offset, or its trade time when that
        is ahead. A trade time more than `DEAD_BAND` ahead moves the clock forward to it (an accelerated feed runs
        ahead between measurements); a smaller lead is exchange/local clock skew and leaves the clock alone."""
        t = self.shift(received) if received is not None else self.now()
        if trade is None or trade <= t:
            return t
        if (trade - self.now()).total_seconds() > DEAD_BAND:
            self.advance(trade)
        return trade

    def advance(self, broker: datetime) -> None:
        """The broker's time is at least ``broker`` now: move the clock forward to it (never backward)."""
        ahead = (broker - self.now()).total_seconds()
        if ahead > 0:
            self.offset += ahead
