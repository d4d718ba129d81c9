"""Trade proposals and their state machine (pure: the store does the persistent compare-and-set).

::

    PENDING ──► APPROVED ──► EXECUTED
       │   ◄───────┤ (released: refused for a transient reason, nothing sent)
       │           └──────► FAILED
       ├──► REJECTED
       ├──► EXPIRED
       └──► FAILED

REJECTED, EXPIRED, FAILED and EXECUTED are terminal: nothing leaves them. Every change goes through
:func:`transition`, which returns a new :class:`Proposal` with ``version + 1``; the store persists it with
``UPDATE proposals SET … WHERE id = ? AND state = ? AND version = ?`` using :func:`transition_guard` of the
*old* proposal, so of several concurrent approvals exactly one matches a row and the others re-read the
proposal and get :class:`InvalidProposalTransition` ("already APPROVED").

Times are timezone-aware UTC datetimes; ``expires_at`` is None for proposals that never expire.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from trader.errors import InvalidProposal, InvalidProposalTransition
from trader.messaging.codec import wire
from trader.trading.combos import ComboLeg, coerce_legs, combo_problems, max_loss
from trader.trading.models import Action, OrderType
from trader.trading.orders import ABSOLUTE_MAX_AMOUNT, ABSOLUTE_MAX_QUANTITY
from trader.trading.sizing import SizingResult
from trader.trading.text import MAX_NAME, MAX_REASON, MAX_REASONING, clean_text

__all__ = [
    "ProposalState",
    "TERMINAL_STATES",
    "LEGAL_TRANSITIONS",
    "DEFAULT_TTL",
    "Proposal",
    "TransitionGuard",
    "is_legal",
    "transition",
    "transition_guard",
    "is_expired",
    "expire_if_due",
    "expires_at_for",
    "entry_price",
    "proposal_notional",
    "proposal_to_dict",
    "proposal_from_dict",
]

# How long a proposal waits for a decision unless configured otherwise (an agent loop runs every few minutes).
DEFAULT_TTL = timedelta(hours=1)

_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-/ ]{0,23}$")


@wire(name="trading.ProposalState")
class ProposalState(str, Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"
    EXECUTED = "EXECUTED"

    @property
    def terminal(self) -> bool:
        """True for states nothing may leave."""
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[ProposalState] = frozenset(
    {ProposalState.REJECTED, ProposalState.EXPIRED, ProposalState.FAILED, ProposalState.EXECUTED}
)

LEGAL_TRANSITIONS: Mapping[ProposalState, frozenset[ProposalState]] = {
    ProposalState.PENDING: frozenset(
        {ProposalState.APPROVED, ProposalState.REJECTED, ProposalState.EXPIRED, ProposalState.FAILED}
    ),
    # An approved proposal has been claimed by one approval, which alone decides how it ends: EXECUTED with its
    # order ids, or FAILED (refused before anything was sent). Reject and expiry act only on PENDING, so they
    # can never contradict an order that went out.
    # APPROVED → PENDING releases the claim when the executioner refused for a reason that passes (order-rate
    # window, market closed, broker not ready) before anything was sent: the proposal is approvable again.
    ProposalState.APPROVED: frozenset({ProposalState.EXECUTED, ProposalState.FAILED, ProposalState.PENDING}),
    **{s: frozenset() for s in TERMINAL_STATES},
}


def _opt_positive(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InvalidProposal(f"{name} must be a positive number, got {value!r}")


@wire(name="trading.Proposal")
@dataclass(frozen=True, slots=True)
class Proposal:
    """A trade idea waiting for a decision. Exactly one of ``quantity`` / ``amount_usd`` may be set; with
    neither, the sizer fills ``quantity`` and ``sizing`` when the proposal is created."""

    id: int
    symbol: str
    action: Action
    created_at: datetime
    quantity: float | None = None
    amount_usd: float | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    trailing_stop_pct: float | None = None
    confidence: float | None = None
    group: str | None = None
    reasoning: str = ""
    exchange: str = "SMART"
    currency: str = "USD"
    sec_type: str = "STK"
    expires_at: datetime | None = None
    state: ProposalState = ProposalState.PENDING
    state_reason: str = ""
    updated_at: datetime | None = None
    order_ids: tuple[int, ...] = ()
    sizing: SizingResult | None = None
    risk_preview: dict[str, Any] | None = field(default=None, compare=False)
    version: int = 0
    allow_short: bool = False  # a SELL may go beyond the holding (open or add to a short)
    tif: str = "DAY"  # time in force of the order (a bracket's exits are GTC when this is GTC)
    # Once executed: the quantity sent (an amount converted to shares), and what had filled at what average.
    executed_quantity: float | None = None
    filled_quantity: float | None = None
    avg_fill_price: float | None = None
    # The client's request id (a retried `propose` with the same id returns this proposal, never a second one).
    request_id: str = ""
    # A combo (spread) proposal: its legs as bought (trader.trading.combos); the order is one BAG order.
    legs: tuple[ComboLeg, ...] = ()
    # The contract multiplier (options 100, futures e.g. 50), read from the broker when the order is previewed:
    # the notional (and the approver-key threshold) is price × multiplier × quantity.
    multiplier: float = 1.0
    # A plain stop order's trigger price (order_type STP: a market order once the price trades through it).
    stop_price: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.symbol, str) and self.symbol != self.symbol.strip().upper():
            object.__setattr__(self, "symbol", self.symbol.strip().upper())  # frozen: normalise once, here
        if not _SYMBOL_RE.match(self.symbol or ""):
            raise InvalidProposal(f"invalid symbol {self.symbol!r} (upper-case ticker expected)")
        if not isinstance(self.action, Action):
            raise InvalidProposal(f"action must be BUY or SELL, got {self.action!r}")
        self._clean_text_fields()
        if self.quantity is not None and self.amount_usd is not None:
            raise InvalidProposal("give either a quantity or an amount, not both")
        _opt_positive("quantity", self.quantity)
        _opt_positive("amount", self.amount_usd)
        if self.quantity is not None and self.quantity > ABSOLUTE_MAX_QUANTITY:
            raise InvalidProposal(f"quantity {self.quantity:g} is above the absolute limit {ABSOLUTE_MAX_QUANTITY:g}")
        if self.amount_usd is not None and self.amount_usd > ABSOLUTE_MAX_AMOUNT:
            raise InvalidProposal(f"amount {self.amount_usd:g} is above the absolute limit {ABSOLUTE_MAX_AMOUNT:g}")
        _opt_positive("limit price", self.limit_price)
        _opt_positive("take-profit", self.take_profit)
        _opt_positive("stop-loss", self.stop_loss)
        _opt_positive("stop price", self.stop_price)
        if self.confidence is not None and not (0.0 <= self.confidence <= 1.0):
            raise InvalidProposal(f"confidence must be between 0 and 1, got {self.confidence!r}")
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise InvalidProposal("a limit order needs a limit price")
        if self.order_type in (OrderType.MARKET, OrderType.TRAILING_STOP, OrderType.STOP) \
                and self.limit_price is not None:
            raise InvalidProposal(f"a {self.order_type.value} order takes no limit price")
        if (self.order_type is OrderType.STOP) != (self.stop_price is not None):
            raise InvalidProposal("a stop order (STP) has a stop price, and only a stop order has one")
        if self.order_type is OrderType.TRAILING_STOP and self.trailing_stop_pct is None:
            raise InvalidProposal("a trailing-stop order needs a trailing stop %")
        if self.tif not in ("DAY", "GTC", "IOC"):
            raise InvalidProposal(f"time in force must be DAY, GTC or IOC, got {self.tif!r}")
        if self.trailing_stop_pct is not None and not (0.0 < self.trailing_stop_pct < 100.0):
            raise InvalidProposal(f"trailing stop % must be in (0, 100), got {self.trailing_stop_pct!r}")
        if (self.take_profit is None) != (self.stop_loss is None):
            raise InvalidProposal("a bracket needs both a take-profit and a stop-loss")
        if self.take_profit is not None and self.stop_loss is not None:
            self._check_bracket(self.take_profit, self.stop_loss)
        if self.expires_at is not None and self.expires_at < self.created_at:
            raise InvalidProposal("expires_at is before created_at")
        if self.version < 0:
            raise InvalidProposal("version must be >= 0")
        _opt_positive("multiplier", self.multiplier)
        if self.legs:
            problems = combo_problems(self.legs)
            if self.limit_price is None or self.amount_usd is not None:
                problems.append("a combo proposal needs a net limit price and a quantity (or none: sized by its "
                                "max loss), not an amount")
            if problems:
                raise InvalidProposal("; ".join(problems))

    def _clean_text_fields(self) -> None:
        # Free text is stored and printed: capped and stripped of control characters here, once, so a reason
        # given to transition() or a row read back is cleaned the same way (clean_text is idempotent).
        for name, cap, newlines in (("reasoning", MAX_REASONING, True), ("state_reason", MAX_REASON, False),
                                    ("exchange", MAX_NAME, False), ("currency", MAX_NAME, False),
                                    ("sec_type", MAX_NAME, False)):
            value = getattr(self, name)
            cleaned = clean_text(value, cap, keep_newlines=newlines)
            if cleaned != value:
                object.__setattr__(self, name, cleaned)  # frozen: normalise once, here
        if self.group is not None:
            group = clean_text(self.group, MAX_NAME)
            object.__setattr__(self, "group", group or None)

    def _check_bracket(self, tp: float, sl: float) -> None:
        # BUY: stop below, target above; SELL (short): the mirror image. Checked against the entry when known.
        lo, hi = (sl, tp) if self.action is Action.BUY else (tp, sl)
        if not lo < hi:
            side = "below" if self.action is Action.BUY else "above"
            raise InvalidProposal(f"{self.action.value} bracket: the stop-loss must be {side} the take-profit")
        if self.limit_price is not None and not (lo < self.limit_price < hi):
            raise InvalidProposal(
                f"{self.action.value} bracket: the limit price {self.limit_price} must lie between "
                f"stop-loss {sl} and take-profit {tp}"
            )

    @property
    def terminal(self) -> bool:
        """True once the proposal can no longer change."""
        return self.state.terminal


@dataclass(frozen=True, slots=True)
class TransitionGuard:
    """The WHERE parameters of the store's compare-and-set: the row must still be in this state and version."""

    id: int
    state: str
    version: int


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Proposal))


def with_unchecked(p: Proposal, **changes: Any) -> Proposal:
    """``dataclasses.replace(p, **changes)`` for fields no check of ``__post_init__`` reads (``id``,
    ``risk_preview``), without re-running the checks: every other field is ``p``'s, already checked (a bar
    close's batch replaces both once per order)."""
    if not changes.keys() <= _UNCHECKED:
        raise ValueError(f"with_unchecked only sets {sorted(_UNCHECKED)}, not {sorted(changes.keys() - _UNCHECKED)}")
    out = object.__new__(Proposal)
    for name in _FIELD_NAMES:
        object.__setattr__(out, name, changes[name] if name in changes else getattr(p, name))
    return out


_UNCHECKED = frozenset({"id", "risk_preview"})
_SIZED = ("quantity", "sizing", "multiplier", "risk_preview")


def with_sizing_of(own: Proposal, checked: Proposal) -> Proposal:
    """``own`` (built and checked by ``__post_init__``) with the quantity, sizing, multiplier and risk preview of
    ``checked``, an order of the same batch alike to it (`propose_many`: they differ only in their own words), without
    re-running the checks: each of those fields passed them on ``checked``, and the one check relating them to
    another field (a quantity or an amount, not both) holds because both have the same amount. Raises ValueError
    when they are not alike in those terms."""
    if (own.symbol, own.action, own.amount_usd, own.legs) != (checked.symbol, checked.action, checked.amount_usd,
                                                              checked.legs):
        raise ValueError(f"proposal for {own.symbol} is not alike to the checked one for {checked.symbol}")
    out = object.__new__(Proposal)
    for name in _FIELD_NAMES:
        object.__setattr__(out, name, getattr(checked if name in _SIZED else own, name))
    return out


def is_legal(from_state: ProposalState, to_state: ProposalState) -> bool:
    """True if the state machine allows ``from_state → to_state``."""
    return to_state in LEGAL_TRANSITIONS[from_state]


def _illegal_message(p: Proposal, new_state: ProposalState) -> str:
    base = f"proposal {p.id}: cannot go from {p.state.value} to {new_state.value}"
    if p.state is new_state:
        return f"{base}: it is already {p.state.value}"
    if p.state.terminal:
        return f"{base}: {p.state.value} is final"
    allowed = ", ".join(sorted(s.value for s in LEGAL_TRANSITIONS[p.state]))
    return f"{base} (from {p.state.value} only {allowed})"


def transition(
    p: Proposal,
    new_state: ProposalState,
    reason: str,
    now: datetime,
    *,
    order_ids: Iterable[int] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Proposal:
    """Return ``p`` moved to ``new_state`` (version + 1, ``updated_at = now``, ``state_reason = reason``).

    ``order_ids`` (the broker orders placed for it) are added to the ones already recorded; ``changes`` sets
    the execution fields (``executed_quantity``, ``filled_quantity``, ``avg_fill_price``) in the same step.
    Raises :class:`InvalidProposalTransition` naming the id and both states when the move is illegal.
    """
    bad = set(changes or ()) - _EXECUTION_FIELDS
    if bad:
        raise InvalidProposal(f"a transition may only set {sorted(_EXECUTION_FIELDS)}, not {sorted(bad)}")
    new_state = ProposalState(new_state)
    if not is_legal(p.state, new_state):
        raise InvalidProposalTransition(
            _illegal_message(p, new_state), proposal_id=p.id, from_state=p.state.value, to_state=new_state.value
        )
    ids = p.order_ids + tuple(int(i) for i in order_ids or ())
    return dataclasses.replace(
        p, state=new_state, state_reason=reason, updated_at=now, order_ids=ids, version=p.version + 1,
        **dict(changes or {}),
    )


_EXECUTION_FIELDS = frozenset({"executed_quantity", "filled_quantity", "avg_fill_price"})


def transition_guard(p: Proposal) -> TransitionGuard:
    """Compare-and-set parameters for persisting a transition *from* ``p``.

    The store runs ``UPDATE proposals SET state = :new, version = :new_version, …
    WHERE id = :id AND state = :state AND version = :version`` and treats 0 rows updated as "someone else
    won": it re-reads the row and calls :func:`transition` again, which raises the clear error.
    """
    return TransitionGuard(id=p.id, state=p.state.value, version=p.version)


def expires_at_for(created_at: datetime, ttl: timedelta | float | None = DEFAULT_TTL) -> datetime | None:
    """Deadline for a proposal created at ``created_at``; ``ttl`` in seconds or a timedelta, None = never."""
    if ttl is None:
        return None
    delta = ttl if isinstance(ttl, timedelta) else timedelta(seconds=float(ttl))
    if delta <= timedelta(0):
        raise ValueError("proposal ttl must be positive")
    return created_at + delta


def is_expired(p: Proposal, now: datetime) -> bool:
    """True if ``p`` is EXPIRED, or still PENDING at or after its deadline (approved proposals never expire)."""
    if p.state is ProposalState.EXPIRED:
        return True
    return p.state is ProposalState.PENDING and p.expires_at is not None and now >= p.expires_at


def expire_if_due(p: Proposal, now: datetime) -> Proposal | None:
    """The EXPIRED version of a PENDING proposal past its deadline, else None (for the periodic sweep)."""
    if p.state is ProposalState.PENDING and is_expired(p, now):
        return transition(p, ProposalState.EXPIRED, f"expired at {p.expires_at.isoformat()}", now)
    return None


def entry_price(p: Proposal, market_price: float | None = None) -> float | None:
    """The price the order should fill near: the limit price, a stop's trigger, else the given market price."""
    if p.limit_price is not None:
        return p.limit_price
    return p.stop_price if p.stop_price is not None else market_price


def proposal_notional(p: Proposal, market_price: float | None = None) -> float | None:
    """Order value in the proposal's currency: the amount, a combo's defined max loss × quantity, or
    quantity × entry price × multiplier; None if unknown."""
    if p.amount_usd is not None:
        return p.amount_usd
    price = entry_price(p, market_price)
    if p.quantity is None or price is None:
        return None
    if p.legs:  # a combo counts for its defined max loss (inf when unbounded)
        return p.quantity * max_loss(p.legs, p.action, price)
    return p.quantity * price * p.multiplier


# --------------------------------------------------------------------------- JSON rows (store + CLI)
_PLAIN = (str, int, float, bool, type(None), dict)  # stored as they are (a dict: risk_preview, JSON-safe already)


def proposal_to_dict(p: Proposal) -> dict[str, Any]:
    """JSON-safe dict of every field (enums as values, datetimes ISO-8601, sizing as a dict)."""
    out: dict[str, Any] = {}
    for name in _FIELD_NAMES:  # not dataclasses.fields() per call: that was half of this function's time
        value = getattr(p, name)
        if type(value) in _PLAIN:
            pass
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = [x.to_dict() if isinstance(x, ComboLeg) else x for x in value]
        elif isinstance(value, SizingResult):
            value = value.to_dict()
        out[name] = value
    return out


def brief_dict(p: Proposal) -> dict[str, Any]:
    """What acting on a stored proposal needs (`propose_batch(brief=True)`: a strategy's answer per order):
    id, state, symbol, action, quantity, request id."""
    return {"id": p.id, "state": p.state.value, "symbol": p.symbol, "action": p.action.value,
            "quantity": p.quantity, "request_id": p.request_id}


def proposal_from_dict(data: Mapping[str, Any]) -> Proposal:
    """Inverse of :func:`proposal_to_dict` (unknown keys ignored, missing optional keys defaulted)."""
    names = {f.name for f in dataclasses.fields(Proposal)}
    kw = {k: v for k, v in data.items() if k in names}
    try:
        kw["action"] = Action(kw["action"])
        if "order_type" in kw:
            kw["order_type"] = OrderType(kw["order_type"])
        if "state" in kw:
            kw["state"] = ProposalState(kw["state"])
        for key in ("created_at", "expires_at", "updated_at"):
            if isinstance(kw.get(key), str):
                kw[key] = datetime.fromisoformat(kw[key])
        kw["order_ids"] = tuple(int(i) for i in kw.get("order_ids") or ())
        kw["legs"] = coerce_legs(kw.get("legs"))
        if isinstance(kw.get("sizing"), Mapping):
            kw["sizing"] = SizingResult.from_dict(dict(kw["sizing"]))
        return Proposal(**kw)
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, InvalidProposal):
            raise
        raise InvalidProposal(f"malformed proposal row: {type(exc).__name__}: {exc}") from None
