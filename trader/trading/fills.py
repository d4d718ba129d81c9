"""The fill ledger: executions keyed by execId, corrections, late (or early) commissions, per-order totals.

IB reports each execution once per execId and may later *correct* it: the correction has the same execId with
the last dot-separated component bumped (``0000e1a7.6571b3c2.01.01`` → ``…01.02``) and replaces the earlier
report; it never adds to it. Commission reports arrive separately, usually after the execution, sometimes
before it (after a reconnect, or out of order); either way they attach to the fill with the same execId.
The ledger is idempotent: the same execution or commission delivered twice changes nothing.

Pure domain code: the broker adapter converts ib_async ``Fill`` / ``CommissionReport`` objects into
:class:`Fill` / :class:`Commission` and feeds them in; the outcome of each call says what to record in the
event store (nothing for a duplicate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from trader.messaging.codec import wire
from trader.trading.models import Action

__all__ = [
    "Fill",
    "Commission",
    "FillOutcome",
    "OrderFills",
    "FillLedger",
    "execution_key",
    "execution_revision",
    "FILL_TOPIC",
]

# trader_service publishes each fill and commission event it records on its PubSub topic FILL_TOPIC + kind
# ("fills.fill", "fills.commission"); strategy_service's caps follow them (trader.strategy.live).
FILL_TOPIC = "fills."


@wire(name="trading.Fill")
@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. ``quantity`` is positive; ``action`` is the side (IB's BOT → BUY, SLD → SELL).

    ``commission`` / ``realized_pnl`` are filled in by the ledger from the matching :class:`Commission`.
    """

    exec_id: str
    order_id: int
    symbol: str
    action: Action
    quantity: float
    price: float
    time: datetime | None = None
    perm_id: int = 0
    con_id: int = 0
    exchange: str = ""
    account: str = ""
    commission: float | None = None
    commission_currency: str = ""
    realized_pnl: float | None = None


@wire(name="trading.Commission")
@dataclass(frozen=True, slots=True)
class Commission:
    """A commission report for one execId (IB sends ``realizedPNL`` as a huge sentinel when it has none)."""

    exec_id: str
    commission: float
    currency: str = "USD"
    realized_pnl: float | None = None


@wire(name="trading.FillOutcome")
class FillOutcome(str, Enum):
    """What the ledger did with an execution or commission report."""

    NEW = "new"  # first report of an execution
    CORRECTED = "corrected"  # replaced an earlier revision of the same execution
    DUPLICATE = "duplicate"  # already known: nothing changed
    STALE = "stale"  # an older revision than the one held: ignored
    COMMISSION_ATTACHED = "commission_attached"  # commission attached to its fill
    COMMISSION_PENDING = "commission_pending"  # kept until its execution arrives
    COMMISSION_SUPERSEDED = "commission_superseded"  # for a revision already replaced by a correction


@wire(name="trading.OrderFills")
@dataclass(frozen=True, slots=True)
class OrderFills:
    """Fill totals for one order: filled quantity, volume-weighted average price, commissions."""

    order_id: int
    symbol: str
    action: Action | None
    filled_quantity: float
    avg_price: float | None
    commission: float  # sum of the commissions received so far
    commissions_pending: int  # fills whose commission report has not arrived yet
    realized_pnl: float | None
    fills: tuple[Fill, ...]


def execution_key(exec_id: str) -> str:
    """The part of an execId that identifies the execution across corrections (all but the last component)."""
    head, dot, _ = exec_id.rpartition(".")
    return head if dot else exec_id


def execution_revision(exec_id: str) -> tuple[int, str]:
    """Sort key of an execId's revision (its last component: ``01`` < ``02``; hex digits as IB writes them)."""
    _, dot, tail = exec_id.rpartition(".")
    if not dot:
        return (0, "")
    try:
        return (int(tail, 16), tail)
    except ValueError:
        return (0, tail)


def _pnl(value: float | None) -> float | None:
    # IB reports "no realized P&L" as 1.7976931348623157e308 (Double.MAX_VALUE); keep it as unknown.
    if value is None or not math.isfinite(value) or abs(value) >= 1e300:
        return None
    return value


class FillLedger:
    """Executions by execId (one current revision per execution) and commissions by execId."""

    def __init__(self) -> None:
        self._fills: dict[str, Fill] = {}  # execution_key -> current revision (commission not attached)
        self._commissions: dict[str, Commission] = {}  # exec_id -> report, also for fills not yet seen
        self._by_order: dict[int, list[str]] = {}  # order_id -> execution keys, in arrival order

    def __len__(self) -> int:
        return len(self._fills)

    def add_execution(self, fill: Fill) -> FillOutcome:
        """Record an execution: new, a correction replacing its earlier revision, or a duplicate/stale no-op.

        A commission carried on ``fill`` itself is recorded as if reported separately.
        """
        if fill.commission is not None:
            self.add_commission(Commission(fill.exec_id, fill.commission, fill.commission_currency or "USD",
                                           fill.realized_pnl))
        bare = replace(fill, commission=None, commission_currency="", realized_pnl=None)
        key = execution_key(fill.exec_id)
        held = self._fills.get(key)
        if held is None:
            self._fills[key] = bare
            self._by_order.setdefault(fill.order_id, []).append(key)
            return FillOutcome.NEW
        if held.exec_id == fill.exec_id:
            return FillOutcome.DUPLICATE
        if execution_revision(fill.exec_id) < execution_revision(held.exec_id):
            return FillOutcome.STALE
        self._fills[key] = bare
        if held.order_id != fill.order_id:  # should not happen; keep the per-order index true if it does
            self._by_order[held.order_id].remove(key)
            self._by_order.setdefault(fill.order_id, []).append(key)
        return FillOutcome.CORRECTED

    def add_commission(self, report: Commission) -> FillOutcome:
        """Attach a commission report to its fill now, or keep it until the execution arrives."""
        known = self._commissions.get(report.exec_id)
        self._commissions[report.exec_id] = report
        held = self._fills.get(execution_key(report.exec_id))
        if held is None:
            return FillOutcome.DUPLICATE if known == report else FillOutcome.COMMISSION_PENDING
        if held.exec_id != report.exec_id:
            return FillOutcome.COMMISSION_SUPERSEDED
        return FillOutcome.DUPLICATE if known == report else FillOutcome.COMMISSION_ATTACHED

    def _with_commission(self, fill: Fill) -> Fill:
        report = self._commissions.get(fill.exec_id)
        if report is None:
            return fill
        return replace(fill, commission=report.commission, commission_currency=report.currency,
                       realized_pnl=_pnl(report.realized_pnl))

    def fill(self, exec_id: str) -> Fill | None:
        """The current revision of the execution ``exec_id`` belongs to (with its commission), or None."""
        held = self._fills.get(execution_key(exec_id))
        return None if held is None else self._with_commission(held)

    def fills(self, order_id: int | None = None) -> list[Fill]:
        """Current fills (with commissions), for one order or all, in arrival order."""
        if order_id is None:
            return [self._with_commission(f) for f in self._fills.values()]
        return [self._with_commission(self._fills[k]) for k in self._by_order.get(order_id, [])]

    def pending_commissions(self) -> list[str]:
        """execIds of current fills still waiting for their commission report."""
        return [f.exec_id for f in self._fills.values() if f.exec_id not in self._commissions]

    def order_summary(self, order_id: int) -> OrderFills:
        """Filled quantity, VWAP and commissions of one order (zeros and None when nothing filled)."""
        fills = self.fills(order_id)
        qty = math.fsum(f.quantity for f in fills)
        vwap = math.fsum(f.quantity * f.price for f in fills) / qty if qty > 0 else None
        pnls = [f.realized_pnl for f in fills if f.realized_pnl is not None]
        return OrderFills(
            order_id=order_id,
            symbol=fills[0].symbol if fills else "",
            action=fills[0].action if fills else None,
            filled_quantity=qty,
            avg_price=vwap,
            commission=math.fsum(f.commission for f in fills if f.commission is not None),
            commissions_pending=sum(1 for f in fills if f.commission is None),
            realized_pnl=math.fsum(pnls) if pnls else None,
            fills=tuple(fills),
        )
