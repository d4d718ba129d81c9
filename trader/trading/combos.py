"""Option combos (spreads) placed as ONE order: their legs, structural checks, and the numbers the risk gate
and the sizer use — the payoff at expiry and the defined maximum loss.

Pure domain code (no ib_async, zmq or duckdb). A combo is an IB ``BAG`` order: legs with their actions and
ratios, one quantity and one **net** limit price per combo unit, filled as one.

Conventions (what every caller can rely on):

- The legs are written for **buying** the combo: a leg's ``action`` is what happens to it when the order is a
  BUY; a SELL order reverses every leg (IB's own BAG semantics).
- The net price is per combo unit, in premium points (× ``multiplier`` for money): the debit paid when the order
  is a BUY, the credit received when it is a SELL. :func:`vertical` writes the legs so that buying the combo is
  a debit (the more valuable leg is the bought one), so the price is positive for both directions:
  ``BUY`` = a debit vertical, ``SELL`` = a credit vertical.
- Max loss (:func:`max_loss`) is the worst P&L at expiry over every underlying price, for the order's
  direction and net price, × multiplier, per combo unit. For a credit vertical it is
  ``(width − credit) × multiplier``; for a debit vertical ``debit × multiplier``.
- A combo is **defined risk** when, in the order's direction, no right has more short than long contracts:
  net short calls lose without bound, net short puts are uncovered puts (both refused by the risk gate unless
  ``allow_uncovered_short_options``).

Calendars and diagonals (legs with different expiries) — the documented rule:

- **Defined risk**: per right, every short contract is covered by a long one of that right expiring no earlier
  (for each leg expiry E: longs − shorts among the legs expiring at or after E ≥ 0). A long calendar is defined
  risk; a reverse calendar (short far, long near) or a calendar short more near contracts than it holds far ones
  is not (it is naked once the near leg expires).
- **Max loss**: the worst P&L at the **first** expiry over every underlying price, the legs expiring then at
  intrinsic value and every later leg at its no-arbitrage bound against the holder of the combo: a long later
  leg at its intrinsic value (the least an American option — or a European call — is worth: its time value
  counted as 0), a short later leg at its most (a call at the underlying's price, a put at its strike). No
  volatility model is needed and the bound is never below the real worst case: a long calendar's max loss is
  its net debit, a long diagonal's the debit plus the strike-width exposure (e.g. long the far 110 call, short
  the near 100 call: debit + 10 × multiplier).
- :func:`max_profit` of a multi-expiry combo depends on the later legs' volatility: it is ``nan`` (unknown).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from trader.messaging.codec import wire
from trader.trading.models import Action

__all__ = [
    "ComboLeg",
    "MAX_LEGS",
    "coerce_legs",
    "combo_problems",
    "effective_legs",
    "payoff",
    "pnl_at_expiry",
    "max_loss",
    "max_profit",
    "is_defined_risk",
    "net_price",
    "vertical",
    "describe",
    "legs_as_resolved",
    "expiries",
    "is_multi_expiry",
    "quote_legs",
]

MAX_LEGS = 4
MIN_LEGS = 2


@wire(name="trading.ComboLeg")
@dataclass(frozen=True, slots=True)
class ComboLeg:
    """One leg of a combo: the option (by conId, with the strike, right and expiry the payoff needs), what is
    done to it when the combo is bought, and how many per combo unit."""

    con_id: int
    action: Action
    ratio: int = 1
    strike: float = 0.0
    right: str = ""  # C or P
    expiry: str = ""  # YYYYMMDD
    multiplier: float = 100.0
    local_symbol: str = ""
    exchange: str = "SMART"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the action as its value)."""
        return {"con_id": self.con_id, "action": self.action.value, "ratio": self.ratio, "strike": self.strike,
                "right": self.right, "expiry": self.expiry, "multiplier": self.multiplier,
                "local_symbol": self.local_symbol, "exchange": self.exchange}


def coerce_legs(legs: Iterable[ComboLeg | Mapping[str, Any]] | None) -> tuple[ComboLeg, ...]:
    """Legs from ``ComboLeg`` values or their dicts (a client's JSON); raises ``ValueError`` on a malformed one."""
    out = []
    for leg in legs or ():
        if isinstance(leg, ComboLeg):
            out.append(leg)
            continue
        if not isinstance(leg, Mapping):
            raise ValueError(f"a combo leg is a mapping, not {type(leg).__name__}")
        try:
            out.append(ComboLeg(
                con_id=int(leg["con_id"]), action=Action(str(leg["action"]).upper()),
                ratio=int(leg.get("ratio", 1)), strike=float(leg.get("strike") or 0.0),
                right=str(leg.get("right") or "").upper()[:1], expiry=str(leg.get("expiry") or "")[:8],
                multiplier=float(leg.get("multiplier") or 100.0), local_symbol=str(leg.get("local_symbol") or ""),
                exchange=str(leg.get("exchange") or "SMART")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed combo leg {dict(leg)!r}: {exc}") from None
    return tuple(out)


def combo_problems(legs: Sequence[ComboLeg]) -> list[str]:
    """Every structural problem of a combo's legs (empty: fine)."""
    problems = []
    if not MIN_LEGS <= len(legs) <= MAX_LEGS:
        problems.append(f"a combo has {MIN_LEGS} to {MAX_LEGS} legs, got {len(legs)}")
    ids = [leg.con_id for leg in legs]
    if len(set(ids)) != len(ids):
        problems.append("a combo lists each contract once")
    for leg in legs:
        if leg.con_id <= 0:
            problems.append(f"combo leg {leg.local_symbol or leg.strike}: no conId (resolve the option first)")
        if not (isinstance(leg.ratio, int) and 1 <= leg.ratio <= 100):
            problems.append(f"combo leg {leg.local_symbol or leg.con_id}: ratio must be 1..100, got {leg.ratio!r}")
        if leg.right not in ("C", "P") or not (math.isfinite(leg.strike) and leg.strike > 0):
            problems.append(f"combo leg {leg.local_symbol or leg.con_id}: an option leg needs a strike and C/P")
        if not (math.isfinite(leg.multiplier) and leg.multiplier > 0):
            problems.append(f"combo leg {leg.local_symbol or leg.con_id}: bad multiplier {leg.multiplier!r}")
    if len({leg.expiry for leg in legs}) > 1 and not all(leg.expiry for leg in legs):
        problems.append("legs of different expiries each name their expiry (YYYYMMDD)")
    if len({leg.multiplier for leg in legs}) > 1:
        problems.append("combo legs must share one multiplier")
    if legs and all(leg.action is Action.SELL for leg in legs):
        problems.append("write the combo's legs for buying it (at least one BUY leg); sell it with a SELL order")
    return problems


def effective_legs(legs: Sequence[ComboLeg], action: Action) -> tuple[ComboLeg, ...]:
    """The legs as the order trades them: reversed for a SELL order."""
    if action is Action.BUY:
        return tuple(legs)
    flip = {Action.BUY: Action.SELL, Action.SELL: Action.BUY}
    return tuple(replace(leg, action=flip[leg.action]) for leg in legs)


def expiries(legs: Sequence[ComboLeg]) -> list[str]:
    """The legs' distinct expiries (YYYYMMDD), earliest first."""
    return sorted({leg.expiry for leg in legs if leg.expiry})


def is_multi_expiry(legs: Sequence[ComboLeg]) -> bool:
    """True for a calendar or diagonal (legs of more than one expiry)."""
    return len(expiries(legs)) > 1


def _intrinsic(leg: ComboLeg, underlying: float) -> float:
    return max(underlying - leg.strike, 0.0) if leg.right == "C" else max(leg.strike - underlying, 0.0)


def payoff(legs: Sequence[ComboLeg], underlying: float) -> float:
    """Value at expiry of one combo unit as written (bought), in premium points (every leg at intrinsic: for a
    multi-expiry combo see :func:`pnl_at_expiry`)."""
    return math.fsum(leg.action.sign * leg.ratio * _intrinsic(leg, underlying) for leg in legs)


def _bound_value(leg: ComboLeg, underlying: float, first: str) -> float:
    """One traded leg's value at the first expiry under the module's rule, signed (+ held, − owed)."""
    if not leg.expiry or leg.expiry <= first:
        value = _intrinsic(leg, underlying)
    elif leg.action is Action.BUY:  # a later long leg: at least its intrinsic value
        value = _intrinsic(leg, underlying)
    else:  # a later short leg: at most the underlying (a call) or the strike (a put)
        value = underlying if leg.right == "C" else leg.strike
    return leg.action.sign * leg.ratio * value


def pnl_at_expiry(legs: Sequence[ComboLeg], action: Action, price: float, underlying: float) -> float:
    """P&L at the (first) expiry of one combo unit traded ``action`` at net ``price``, in premium points; for a
    calendar or diagonal the later legs at their bound (module doc), so the P&L is a lower bound."""
    traded = effective_legs(legs, action)
    first = (expiries(legs) or [""])[0]
    return math.fsum(_bound_value(leg, underlying, first) for leg in traded) - action.sign * price


def _covered(legs: Sequence[ComboLeg], action: Action, right: str) -> bool:
    """Per expiry E: the traded longs minus shorts of ``right`` expiring at or after E are ≥ 0."""
    traded = [leg for leg in effective_legs(legs, action) if leg.right == right]
    for e in expiries(traded) or [""]:
        if sum(leg.action.sign * leg.ratio for leg in traded if leg.expiry >= e) < 0:
            return False
    return True


def _net_calls(legs: Sequence[ComboLeg], action: Action, right: str) -> int:
    return sum(leg.action.sign * leg.ratio for leg in effective_legs(legs, action) if leg.right == right)


def is_defined_risk(legs: Sequence[ComboLeg], action: Action) -> bool:
    """True when, in the order's direction, every short call and put is covered (see module doc): for one
    expiry, no right is net short; for a calendar or diagonal, no short leg outlives its cover."""
    return _covered(legs, action, "C") and _covered(legs, action, "P")


def _extremes(legs: Sequence[ComboLeg], action: Action, price: float) -> list[float]:
    # The P&L is piecewise linear with kinks at the strikes: its extremes are at 0, a strike, or at infinity.
    points = [0.0, *sorted({leg.strike for leg in legs})]
    return [pnl_at_expiry(legs, action, price, s) for s in points]


def max_loss(legs: Sequence[ComboLeg], action: Action, price: float) -> float:
    """The largest loss of one combo unit, in money (× multiplier): at expiry, or for a calendar or diagonal at
    the first expiry under the module's bound; ``inf`` when unbounded (uncovered short calls). 0 when the
    combo cannot lose at that price."""
    if not _covered(legs, action, "C"):
        return math.inf
    worst = min(_extremes(legs, action, price))
    return max(-worst, 0.0) * (legs[0].multiplier if legs else 1.0)


def max_profit(legs: Sequence[ComboLeg], action: Action, price: float) -> float:
    """The largest gain at expiry of one combo unit, in money; ``inf`` when unbounded (net long calls), ``nan``
    for a calendar or diagonal (it depends on the later legs' volatility)."""
    if is_multi_expiry(legs):
        return math.nan
    if _net_calls(legs, action, "C") > 0:
        return math.inf
    best = max(_extremes(legs, action, price))
    return max(best, 0.0) * (legs[0].multiplier if legs else 1.0)


def net_price(legs: Sequence[ComboLeg], prices: Sequence[float | None]) -> float | None:
    """The combo's net price (buy orientation) from one price per leg; None when any leg has none."""
    if any(p is None or not math.isfinite(p) for p in prices):
        return None
    return math.fsum(leg.action.sign * leg.ratio * float(p) for leg, p in zip(legs, prices, strict=True))  # type: ignore[arg-type]


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def quote_legs(legs: Sequence[ComboLeg], action: Action, quotes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the user needs to judge a net limit: each leg's bid/ask/mid (one quote dict per leg, same order)
    as the order trades it, and the combo's net prices in the order's direction (the sign convention of the
    limit: a BUY pays, a SELL receives) — ``natural`` crossing every leg's spread (bought legs at the ask, sold
    at the bid), ``mid`` at the legs' mids. A net price is None when a leg lacks that side."""
    rows = []
    natural, mid = [], []
    for leg, traded, q in zip(legs, effective_legs(legs, action), quotes, strict=True):
        bid, ask = _positive(q.get("bid")), _positive(q.get("ask"))
        leg_mid = (bid + ask) / 2 if bid is not None and ask is not None else None
        rows.append({"con_id": leg.con_id, "local_symbol": leg.local_symbol.strip(), "action": traded.action.value,
                     "ratio": leg.ratio, "strike": leg.strike, "right": leg.right, "expiry": leg.expiry,
                     "bid": bid, "ask": ask, "mid": leg_mid})
        crossing = ask if traded.action is Action.BUY else bid  # what this leg trades at when the order crosses
        natural.append(None if crossing is None else traded.action.sign * leg.ratio * crossing)
        mid.append(None if leg_mid is None else traded.action.sign * leg.ratio * leg_mid)

    def net(parts: list[float | None]) -> float | None:
        # the order pays the traded legs' sum (BUY) or receives its negative (SELL): same sign as its limit
        return None if any(x is None for x in parts) else round(action.sign * math.fsum(parts), 6)  # type: ignore[arg-type]

    return {"legs": rows, "natural": net(natural), "mid": net(mid)}


def vertical(lower: Mapping[str, Any], upper: Mapping[str, Any]) -> tuple[ComboLeg, ComboLeg]:
    """The two legs of a vertical from the two resolved option contracts (dicts with con_id, strike, right,
    last_trade_date, multiplier, local_symbol, exchange), written as the **debit** spread: calls buy the lower
    strike, puts buy the upper one. BUY the combo = debit vertical, SELL = credit vertical."""
    def leg(c: Mapping[str, Any], action: Action) -> ComboLeg:
        return ComboLeg(con_id=int(c["con_id"]), action=action, ratio=1, strike=float(c["strike"]),
                        right=str(c.get("right") or "").upper()[:1], expiry=str(c.get("last_trade_date") or "")[:8],
                        multiplier=float(c.get("multiplier") or 100.0), local_symbol=str(c.get("local_symbol") or ""),
                        exchange=str(c.get("exchange") or "SMART"))

    lo, hi = sorted((lower, upper), key=lambda c: float(c["strike"]))
    if float(lo["strike"]) == float(hi["strike"]):
        raise ValueError("a vertical needs two different strikes")
    rights = {str(c.get("right") or "").upper()[:1] for c in (lo, hi)}
    if len(rights) != 1 or rights - {"C", "P"}:
        raise ValueError("a vertical's two legs are both calls or both puts")
    if rights == {"C"}:
        return leg(lo, Action.BUY), leg(hi, Action.SELL)
    return leg(hi, Action.BUY), leg(lo, Action.SELL)


def describe(legs: Sequence[ComboLeg], action: Action) -> str:
    """``+1 AAPL 250C / -1 AAPL 260C`` as the order trades it."""
    parts = []
    for leg in effective_legs(legs, action):
        name = leg.local_symbol.strip() or f"{leg.strike:g}{leg.right}"
        parts.append(f"{'+' if leg.action is Action.BUY else '-'}{leg.ratio} {name}")
    return " / ".join(parts)


def legs_as_resolved(legs: Sequence[ComboLeg], contracts: Sequence[Mapping[str, Any]]) -> tuple[ComboLeg, ...]:
    """The legs with strike, right, expiry, multiplier and local symbol taken from the broker's contracts (one per
    leg, same order): the max loss is computed on what will trade, not on what a client said it was."""
    out = []
    for leg, c in zip(legs, contracts, strict=True):
        out.append(replace(leg, strike=float(c.get("strike") or 0.0), right=str(c.get("right") or "").upper()[:1],
                           expiry=str(c.get("last_trade_date") or "")[:8],
                           multiplier=float(c.get("multiplier") or 100.0),
                           local_symbol=str(c.get("local_symbol") or leg.local_symbol),
                           exchange=str(c.get("exchange") or leg.exchange)))
    return tuple(out)
