"""Time exits — ``max_hold_bars`` and ``close_by_time`` — applied identically by the backtester and live.

A rule comes from the signal that opens a position (`Signal(..., max_hold_bars=, close_by_time=)`) or, when
that signal has none, from the strategy's ``MAX_HOLD_BARS`` / ``CLOSE_BY_TIME`` attributes (which also cover
vectorized and panel strategies; being UPPER_CASE they are tunable parameters). `TimeExits.step` turns each
bar's raw target into the effective one, one bar at a time, so the backtester (a loop over its target array)
and the live runtime (one call per bar) share the exact same rule:

- ``max_hold_bars = N``: the position opened on the close of bar *i* is closed on the close of bar *i + N*
  (filled at the next open, like every decision): held N bars.
- ``close_by_time = "15:55"`` (or ``"15:55 America/New_York"``; no zone = UTC): closed on the close of the first
  bar whose time (bar start, as the stored bars' index) is at or after that time on the entry bar's day; a
  signal decided at or after it never opens.
- After a time exit the same direction is not re-entered while the strategy keeps repeating it bar after bar
  (a crossover that still says BUY does not buy again on the next bar); a bar without a decision (None / NaN)
  or another direction ends that, so the next BUY is a new entry (a dip-buyer buys the next dip).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np


@dataclass(frozen=True, slots=True)
class ExitRule:
    """When to close a position regardless of the strategy: after ``max_hold_bars`` and/or by ``close_by``."""

    max_hold_bars: int | None = None
    close_by: tuple[time, tzinfo] | None = None

    def deadline(self, entry: datetime) -> datetime | None:
        """The ``close_by`` time on the entry bar's day (in the rule's zone), as a UTC datetime."""
        if self.close_by is None:
            return None
        at, zone = self.close_by
        local = entry.astimezone(zone)
        return datetime.combine(local.date(), at, zone).astimezone(UTC)


@functools.lru_cache(maxsize=256)
def parse_close_by(text: str) -> tuple[time, tzinfo]:
    """``"HH:MM[:SS] [Area/City]"`` → (time, zone); ValueError when unreadable."""
    parts = str(text).split()
    if not parts or len(parts) > 2:
        raise ValueError(f"close_by_time {text!r}: use 'HH:MM' or 'HH:MM Area/City'")
    at = time.fromisoformat(parts[0])
    zone: tzinfo = ZoneInfo(parts[1]) if len(parts) == 2 else UTC
    return at.replace(tzinfo=None), zone


def make_rule(max_hold_bars: Any = None, close_by_time: Any = None) -> ExitRule | None:
    """An `ExitRule`, or None when neither is set. ValueError for a non-positive hold or an unreadable time."""
    if max_hold_bars is None and not close_by_time:
        return None
    hold = None
    if max_hold_bars is not None:
        hold = int(max_hold_bars)
        if hold < 1 or hold != max_hold_bars:
            raise ValueError(f"max_hold_bars must be a whole number >= 1, got {max_hold_bars!r}")
    close_by = None
    if close_by_time:
        close_by = parse_close_by(close_by_time.isoformat() if isinstance(close_by_time, time) else close_by_time)
    return ExitRule(hold, close_by)


def strategy_rule(strategy: Any) -> ExitRule | None:
    """The strategy-wide rule from its ``MAX_HOLD_BARS`` / ``CLOSE_BY_TIME`` attributes (None or 0 = unset)."""
    return make_rule(getattr(strategy, "MAX_HOLD_BARS", None) or None, getattr(strategy, "CLOSE_BY_TIME", None) or None)


def signal_rule(signal: Any) -> ExitRule | None:
    """The rule a `Signal` carries (None when it carries none)."""
    if signal is None:
        return None
    return make_rule(getattr(signal, "max_hold_bars", None), getattr(signal, "close_by_time", None))


class TimeExits:
    """The per-conId state machine (see the module doc). ``step`` returns the effective target: the raw one,
    NaN (hold; a suppressed re-entry), or 0.0 (a time exit, with ``last_reason`` saying which)."""

    __slots__ = ("default", "want", "entry", "rule", "deadline", "suppressed", "last_reason")

    def __init__(self, default: ExitRule | None = None) -> None:
        self.default = default
        self.want = 0
        self.entry = 0
        self.rule: ExitRule | None = None
        self.deadline: datetime | None = None
        self.suppressed: int | None = None
        self.last_reason = ""

    def step(self, i: int, ts: datetime, raw: float, rule: ExitRule | None = None) -> float:
        """Bar ``i`` (its start time ``ts``) with the strategy's raw target and the rule of its signal."""
        self.last_reason = ""
        out = raw
        d = None if math.isnan(raw) else (raw > 0) - (raw < 0)  # np.sign, without a numpy call per bar
        if self.suppressed is not None:
            if d == self.suppressed:  # still repeating the exited direction: not a new entry
                d, out = None, math.nan
            else:  # a bar without a decision, or another direction: the next entry is a new one
                self.suppressed = None
        if d is not None and d != self.want:
            self.want = d
            self.rule = (rule or self.default) if d != 0 else None
            self.entry = i
            self.deadline = self.rule.deadline(ts) if self.rule is not None else None
        if self.want != 0 and self.rule is not None:
            hold = self.rule.max_hold_bars
            if hold is not None and i - self.entry >= hold:
                self.last_reason = f"time exit: held {hold} bars (max_hold_bars)"
            elif self.deadline is not None and ts >= self.deadline:
                self.last_reason = f"time exit: close_by_time {self.deadline.isoformat()}"
            if self.last_reason:
                self.suppressed, self.want, self.rule, self.deadline = self.want, 0, None, None
                out = 0.0
        return out


def apply_time_exits(strategy: Any, target: np.ndarray, index: Any,
                     rules: dict[int, ExitRule] | None = None) -> np.ndarray:
    """The backtester's side: ``target`` (per bar, NaN = hold) with the time exits applied; the array itself
    when no rule is set anywhere. ``rules``: bar → the rule of the signal returned on that bar."""
    default = strategy_rule(strategy)
    if default is None and not rules:
        return target
    exits, rules = TimeExits(default), rules or {}
    out = np.array(target, dtype=float, copy=True)
    times = [t.to_pydatetime() if hasattr(t, "to_pydatetime") else t for t in index]
    for i in range(len(out)):
        out[i] = exits.step(i, _aware(times[i]), float(out[i]), rules.get(i))
    return out


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


__all__ = ["ExitRule", "TimeExits", "apply_time_exits", "make_rule", "parse_close_by", "signal_rule",
           "strategy_rule"]
