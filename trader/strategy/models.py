"""Value types of the live strategy runtime that cross process boundaries (bus messages, RPC replies)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trader.messaging.codec import wire


@wire(name="strategy.Bar")
@dataclass(frozen=True, slots=True)
class Bar:
    """One completed bar of one conId (``time`` = the bar's start, UTC, as the stored history's index)."""

    con_id: int
    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    seconds: int
    ticks: int = 0
    gap_before: int = 0  # whole bars with no tick between the previous emitted bar and this one

    @property
    def end(self) -> datetime:
        """When the bar closed (start + length)."""
        return datetime.fromtimestamp(self.time.timestamp() + self.seconds, UTC)


@wire(name="strategy.LiveSignal")
@dataclass(frozen=True, slots=True)
class LiveSignal:
    """A change of one strategy's wanted direction on one conId, decided on the close of the bar at ``bar_time``.

    ``signal_id`` (``sig-<strategy>-<conId>-<bar epoch>``) is the request id of everything it causes, so a retry
    or a restart never acts on it twice. ``warmup`` signals were decided on history and are never traded."""

    signal_id: str
    strategy: str
    con_id: int
    bar_time: datetime
    action: str  # BUY, SELL or FLAT: the wanted direction from now on
    target: int
    previous: int
    price: float  # the bar's close
    probability: float = 1.0
    quantity: float | None = None
    fraction: float | None = None
    warmup: bool = False
    reason: str = ""  # e.g. "time exit: held 5 bars (max_hold_bars)"


def signal_id(strategy: str, con_id: int, bar_time: datetime) -> str:
    """The deterministic id of a signal: one per (strategy, conId, bar)."""
    return f"sig-{strategy}-{con_id}-{int(bar_time.timestamp())}"


def describe(sig: LiveSignal) -> dict[str, Any]:
    """A signal as plain JSON-able data (CLI and event payloads)."""
    return {"signal_id": sig.signal_id, "strategy": sig.strategy, "con_id": sig.con_id,
            "bar_time": sig.bar_time.isoformat(), "action": sig.action, "target": sig.target,
            "previous": sig.previous, "price": sig.price, "probability": sig.probability,
            "quantity": sig.quantity, "fraction": sig.fraction, "warmup": sig.warmup,
            "reason": sig.reason}
