"""Position groups: named sets of symbols with a budget as % of net liquidation (pure).

A group's *usage* is the gross market value (sum of |value|) of its members' positions: a long and a short in
the same group both use budget, because the budget limits how much capital the theme ties up. A proposal
tagged ``--group NAME`` counts toward that group whether or not its symbol is already a member.

``check_group_budget`` answers "would this trade push the group over budget?" with the numbers; the mode
(``warn`` or ``reject``) decides whether the risk gate only flags it or refuses the order.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from trader.errors import GroupBudgetExceeded, InvalidGroup
from trader.messaging.codec import wire
from trader.trading.models import Position
from trader.trading.text import clean_text

__all__ = [
    "GroupMode",
    "PositionGroup",
    "GroupBudgetCheck",
    "position_value",
    "values_by_symbol",
    "group_exposure",
    "check_group_budget",
    "enforce_group_budget",
    "groups_for_symbol",
]

MAX_SYMBOL = 24
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")


@wire(name="trading.GroupMode")
class GroupMode(str, Enum):
    WARN = "warn"
    REJECT = "reject"


def _norm_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for s in symbols:
        sym = clean_text(s, MAX_SYMBOL).upper()  # symbols are stored and printed: no control characters
        if not sym:
            raise InvalidGroup("empty symbol in group")
        if sym not in out:
            out.append(sym)
    return tuple(sorted(out))


@wire(name="trading.PositionGroup")
@dataclass(frozen=True, slots=True)
class PositionGroup:
    """A named basket of symbols that may use at most ``budget_pct`` % of NLV (gross)."""

    name: str
    budget_pct: float
    symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name or ""):
            raise InvalidGroup(
                f"invalid group name {self.name!r}: letters, digits, '_', '.', '-' (max 40, no spaces)"
            )
        if not (isinstance(self.budget_pct, (int, float)) and math.isfinite(self.budget_pct)
                and 0.0 <= self.budget_pct <= 100.0):
            raise InvalidGroup(f"group {self.name}: budget must be between 0 and 100 %, got {self.budget_pct!r}")
        object.__setattr__(self, "symbols", _norm_symbols(self.symbols))  # frozen: normalise once, here

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.strip().upper() in self.symbols

    def with_symbols(self, symbols: Iterable[str]) -> PositionGroup:
        """A copy with ``symbols`` added (duplicates ignored)."""
        return dataclasses.replace(self, symbols=self.symbols + tuple(symbols))

    def without_symbols(self, symbols: Iterable[str]) -> PositionGroup:
        """A copy with ``symbols`` removed (absent ones ignored)."""
        drop = set(_norm_symbols(symbols))
        return dataclasses.replace(self, symbols=tuple(s for s in self.symbols if s not in drop))

    def with_budget(self, budget_pct: float) -> PositionGroup:
        """A copy with a new budget."""
        return dataclasses.replace(self, budget_pct=budget_pct)


@wire(name="trading.GroupBudgetCheck")
@dataclass(frozen=True, slots=True)
class GroupBudgetCheck:
    """A group's budget before and after a proposed trade (USD and % of NLV)."""

    group: str
    mode: GroupMode
    budget_pct: float
    budget_usd: float | None
    used_usd: float
    used_pct: float | None
    after_usd: float
    after_pct: float | None
    headroom_usd: float | None  # budget left after the trade (negative when over)
    within: bool
    message: str

    @property
    def exceeds(self) -> bool:
        """True when the trade would leave the group over budget (or the budget cannot be checked)."""
        return not self.within

    @property
    def blocking(self) -> bool:
        """True when the risk gate must refuse the trade (over budget and mode ``reject``)."""
        return self.exceeds and self.mode is GroupMode.REJECT


def position_value(p: Position) -> float:
    """Signed market value; falls back to cost basis when no market price is known (never None)."""
    value = p.market_value
    if value is None:
        value = p.quantity * p.avg_cost * p.multiplier
    return float(value) if math.isfinite(value) else 0.0


def values_by_symbol(positions: Sequence[Position]) -> dict[str, float]:
    """Signed market value per symbol (several lines of one symbol are added up)."""
    out: dict[str, float] = {}
    for p in positions:
        sym = p.symbol.upper()
        out[sym] = out.get(sym, 0.0) + position_value(p)
    return out


def group_exposure(group: PositionGroup, positions: Sequence[Position]) -> float:
    """Gross market value of the group's member positions."""
    return sum(abs(v) for s, v in values_by_symbol(positions).items() if s in group.symbols)


def _pct(value: float, nlv: float | None) -> float | None:
    return None if nlv is None else round(value / nlv * 100.0, 4)


def check_group_budget(
    group: PositionGroup,
    positions: Sequence[Position],
    nlv: float | None,
    proposed_symbol: str,
    proposed_value: float,
    mode: GroupMode | str = GroupMode.WARN,
) -> GroupBudgetCheck:
    """Would adding ``proposed_value`` (signed: + for BUY, − for SELL) of ``proposed_symbol`` keep ``group``
    within budget? The symbol counts toward the group even if not a member yet (the proposal is tagged).

    Unknown or non-positive NLV cannot be checked and reports ``within=False`` (fail closed).
    """
    mode = GroupMode(mode)
    sym = proposed_symbol.strip().upper()
    values = values_by_symbol(positions)
    members = set(group.symbols)
    used = sum(abs(v) for s, v in values.items() if s in members)
    after_values = {s: v for s, v in values.items() if s in members}
    # The tagged symbol's existing position joins the group too (conservative when it is not yet a member).
    after_values[sym] = values.get(sym, 0.0) + proposed_value
    after = sum(abs(v) for v in after_values.values())
    good_nlv = nlv if nlv is not None and math.isfinite(nlv) and nlv > 0 else None
    if good_nlv is None:
        return GroupBudgetCheck(
            group=group.name, mode=mode, budget_pct=group.budget_pct, budget_usd=None, used_usd=round(used, 2),
            used_pct=None, after_usd=round(after, 2), after_pct=None, headroom_usd=None, within=False,
            message=f"group {group.name}: net liquidation unknown, budget cannot be checked",
        )
    budget = group.budget_pct / 100.0 * good_nlv
    # A trade that shrinks the group is always fine, even if the group is already over budget.
    within = after <= budget + 1e-6 or after <= used + 1e-6
    after_pct = _pct(after, good_nlv)
    if within:
        message = (
            f"group {group.name}: {after_pct:.1f}% of NLV after the trade, within its {group.budget_pct:g}% budget"
        )
    else:
        verb = "rejected" if mode is GroupMode.REJECT else "warning"
        message = (
            f"group {group.name} over budget ({verb}): {after_pct:.1f}% of NLV after the trade "
            f"(${after:,.0f}) > {group.budget_pct:g}% (${budget:,.0f})"
        )
    return GroupBudgetCheck(
        group=group.name, mode=mode, budget_pct=group.budget_pct, budget_usd=round(budget, 2),
        used_usd=round(used, 2), used_pct=_pct(used, good_nlv), after_usd=round(after, 2), after_pct=after_pct,
        headroom_usd=round(budget - after, 2), within=within, message=message,
    )


def enforce_group_budget(check: GroupBudgetCheck) -> GroupBudgetCheck:
    """Raise :class:`GroupBudgetExceeded` if the check is blocking (mode reject); else return it."""
    if check.blocking:
        raise GroupBudgetExceeded(check.message)
    return check


def groups_for_symbol(groups: Iterable[PositionGroup], symbol: str) -> list[PositionGroup]:
    """Every group that lists ``symbol``."""
    return [g for g in groups if symbol in g]
