"""Order requests and the structural checks every order passes before it reaches the broker.

Pure domain code (no ib_async, zmq or duckdb): the CLI, proposal approval and strategy signals build an
:class:`OrderRequest`; the executioner calls :func:`validate_order` (one chokepoint), converts a cash amount with
:func:`shares_for_amount`, refuses an unintended short with :func:`check_sell_within_holding`, asks the risk gate,
and only then hands the request to the broker adapter.

Price rules checked by :func:`validate_order` (every problem is reported, not just the first):

- quantity (or cash amount) is a positive finite number; exactly one of the two is given;
- ``MKT`` carries no prices; ``LMT`` a limit price; ``STP`` a stop price; ``STP LMT`` both, with the limit at
  or beyond the stop in the order's direction (BUY: limit ≥ stop; SELL: limit ≤ stop) so the order can still
  fill once triggered; ``TRAIL`` exactly one of ``trailing_percent`` (0 < % < 100) / ``trailing_amount`` (> 0)
  and optionally an initial ``stop_price``;
- a bracket has both a take-profit and a stop-loss, on the right side of the entry: BUY
  ``stop_loss < entry < take_profit``; SELL ``take_profit < entry < stop_loss``. The entry is the limit price
  (``LMT``/``STP LMT``), the stop price (``STP``), or the current market price for a market entry when known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal

from trader.errors import InvalidOrder
from trader.messaging.codec import wire
from trader.trading.combos import ComboLeg, combo_problems
from trader.trading.models import Action, OrderSource, OrderType, Position

__all__ = [
    "OrderRequest",
    "ResizeOrder",
    "order_problems",
    "validate_order",
    "shares_for_amount",
    "with_quantity_for_price",
    "split_reducing",
    "check_sell_within_holding",
    "check_quantity_for_contract",
    "size_rules",
    "working_quantity",
    "ABSOLUTE_MAX_QUANTITY",
    "ABSOLUTE_MAX_AMOUNT",
    "held_quantity",
    "same_instrument",
    "resize_plan",
    "TIME_IN_FORCE",
]


@wire(name="trading.OrderRequest")
@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order as asked for, before validation, sizing and the risk gate.

    Give ``quantity`` (shares/contracts) or ``amount`` (cash, converted to whole shares at the current price by
    :func:`with_quantity_for_price` before submission). ``take_profit`` + ``stop_loss`` make it a bracket.
    ``primary_exchange`` is the listing exchange of a SMART-routed contract (the exchange lists check both).
    """

    symbol: str
    action: Action
    quantity: float | None = None
    amount: float | None = None
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    trailing_percent: float | None = None
    trailing_amount: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    outside_rth: bool = False
    allow_short: bool = False
    con_id: int = 0
    sec_type: str = "STK"
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    multiplier: float = 1.0
    source: OrderSource = OrderSource.CLI
    correlation_id: str = ""
    group: str | None = None  # position group the order is tagged with (its budget is checked by the gate)
    tif: str = "DAY"  # time in force: DAY, GTC or IOC (a bracket's exits are GTC when the entry is GTC)
    oca_group: str = ""  # one-cancels-all group: protective exits of one position share one
    modify_order_id: int = 0  # not 0: modify this working order (e.g. to market) instead of placing a new one
    # A combo (IB BAG) order: its legs as bought (trader.trading.combos), one net limit price per combo unit.
    legs: tuple[ComboLeg, ...] = ()

    @property
    def is_combo(self) -> bool:
        """True for a combo (spread) order: several option legs placed and filled as one BAG order."""
        return bool(self.legs)

    @property
    def is_bracket(self) -> bool:
        """True when a take-profit or a stop-loss is attached (validation demands both)."""
        return self.take_profit is not None or self.stop_loss is not None

    @property
    def leg_count(self) -> int:
        """Orders this request puts at the broker: 3 for a bracket (entry, take-profit, stop-loss), else 1."""
        if self.modify_order_id:
            return 0  # a modification puts no new order at the broker
        return 3 if self.is_bracket else 1

    @property
    def exit_tif(self) -> str:
        """Time in force of a bracket's exits: GTC when asked, else DAY (an IOC exit would never rest)."""
        return "GTC" if self.tif == "GTC" else "DAY"

    @property
    def entry_price(self) -> float | None:
        """The price the order is priced at (limit for LMT/STP LMT, stop for STP), or None (MKT, TRAIL)."""
        if self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            return self.limit_price
        if self.order_type is OrderType.STOP:
            return self.stop_price
        return None


@wire(name="trading.ResizeOrder")
@dataclass(frozen=True, slots=True)
class ResizeOrder:
    """One order of a resize plan: trade ``quantity`` to take the position from ``current`` to ``target``."""

    symbol: str
    action: Action
    quantity: float
    current_quantity: float
    target_quantity: float
    con_id: int = 0
    sec_type: str = "STK"


# No order (or proposal) is ever this large, whatever the config says: 1e308 shares is a typo or an attack,
# never a trade. ``max_order_quantity`` in trading_filters.yaml sets the real limit, below this.
ABSOLUTE_MAX_QUANTITY = 1e9
ABSOLUTE_MAX_AMOUNT = 1e10
TIME_IN_FORCE = ("DAY", "GTC", "IOC")
# Smallest tradable unit when the broker does not say (IB's ContractDetails.minSize / sizeIncrement).
DEFAULT_MIN_SIZE = {"STK": 1.0, "FUT": 1.0, "OPT": 1.0, "FOP": 1.0, "BAG": 1.0}


# --------------------------------------------------------------------------- validation
def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _positive(name: str, value: float | None, problems: list[str]) -> bool:
    """Record a problem unless ``value`` is None or a positive finite number; True when usable."""
    if value is None:
        return False
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        problems.append(f"{name} must be a positive finite number, got {value!r}")
        return False
    return True


def _forbid(req: OrderRequest, names: Iterable[str], problems: list[str]) -> None:
    kind = req.order_type.value
    for name in names:
        if getattr(req, name) is not None:
            problems.append(f"a {kind} order takes no {name.replace('_', ' ')}")


def _check_prices(req: OrderRequest, problems: list[str]) -> None:
    t = req.order_type
    limit_ok = _positive("limit price", req.limit_price, problems)
    stop_ok = _positive("stop price", req.stop_price, problems)
    if t is OrderType.MARKET:
        _forbid(req, ("limit_price", "stop_price", "trailing_percent", "trailing_amount"), problems)
    elif t is OrderType.LIMIT:
        if req.limit_price is None:
            problems.append("a LMT order needs a limit price")
        _forbid(req, ("stop_price", "trailing_percent", "trailing_amount"), problems)
    elif t is OrderType.STOP:
        if req.stop_price is None:
            problems.append("a STP order needs a stop price")
        _forbid(req, ("limit_price", "trailing_percent", "trailing_amount"), problems)
    elif t is OrderType.STOP_LIMIT:
        if req.limit_price is None or req.stop_price is None:
            problems.append("a STP LMT order needs both a stop price and a limit price")
        _forbid(req, ("trailing_percent", "trailing_amount"), problems)
        if limit_ok and stop_ok:
            # Once triggered the order must still be able to fill: a buy limit below its stop (or a sell limit
            # above it) is almost always a typo and leaves a dead order in a moving market.
            lim, stop = req.limit_price, req.stop_price
            if req.action is Action.BUY and lim < stop:  # type: ignore[operator]
                problems.append(f"BUY stop-limit: limit price {lim} must be at or above stop price {stop}")
            if req.action is Action.SELL and lim > stop:  # type: ignore[operator]
                problems.append(f"SELL stop-limit: limit price {lim} must be at or below stop price {stop}")
    elif t is OrderType.TRAILING_STOP:
        _forbid(req, ("limit_price",), problems)
        pct, amt = req.trailing_percent, req.trailing_amount
        if (pct is None) == (amt is None):
            problems.append("a TRAIL order needs exactly one of trailing percent and trailing amount")
        if pct is not None and not (_is_number(pct) and math.isfinite(pct) and 0 < pct < 100):
            problems.append(f"trailing percent must be between 0 and 100 (exclusive), got {pct!r}")
        _positive("trailing amount", amt, problems)


def _check_bracket(req: OrderRequest, market_price: float | None, problems: list[str]) -> None:
    tp, sl = req.take_profit, req.stop_loss
    if tp is None and sl is None:
        return
    if tp is None or sl is None:
        problems.append("a bracket needs both a take-profit and a stop-loss")
    if req.order_type is OrderType.TRAILING_STOP:
        problems.append("a bracket cannot have a trailing-stop entry")
    tp_ok = _positive("take-profit", tp, problems)
    sl_ok = _positive("stop-loss", sl, problems)
    if not (tp_ok and sl_ok):
        return
    buy = req.action is Action.BUY
    if (buy and not sl < tp) or (not buy and not tp < sl):  # type: ignore[operator]
        want = "below" if buy else "above"
        problems.append(f"{req.action.value} bracket: stop-loss {sl} must be {want} take-profit {tp}")
        return
    entry = req.entry_price if req.entry_price is not None else market_price
    if entry is None or not (_is_number(entry) and math.isfinite(entry) and entry > 0):
        return  # a market entry with no known price: checked again once the price is known
    lo, hi = (sl, tp) if buy else (tp, sl)
    if not lo < entry < hi:  # type: ignore[operator]
        what = "entry" if req.entry_price is not None else "market price"
        order = "stop-loss < entry < take-profit" if buy else "take-profit < entry < stop-loss"
        problems.append(
            f"{req.action.value} bracket: {what} {entry} must lie between stop-loss {sl} and take-profit {tp} "
            f"({order})"
        )


def order_problems(req: OrderRequest, market_price: float | None = None) -> list[str]:
    """Every structural problem with ``req`` (empty list: the order is well-formed).

    ``market_price`` lets a bracket with a market entry be checked against the current price.
    """
    problems: list[str] = []
    if not isinstance(req.symbol, str) or not req.symbol.strip():
        problems.append("symbol is empty")
    if not isinstance(req.action, Action):
        problems.append(f"action must be BUY or SELL, got {req.action!r}")
        return problems  # every later rule depends on the side
    if not isinstance(req.order_type, OrderType):
        problems.append(f"unknown order type {req.order_type!r}")
        return problems
    if req.quantity is not None and req.amount is not None:
        problems.append("give either a quantity or an amount, not both")
    elif req.quantity is None and req.amount is None:
        problems.append("a quantity or an amount is required")
    if _positive("quantity", req.quantity, problems) and req.quantity > ABSOLUTE_MAX_QUANTITY:  # type: ignore[operator]
        problems.append(f"quantity {req.quantity:g} is above the absolute limit {ABSOLUTE_MAX_QUANTITY:g}")
    if _positive("amount", req.amount, problems) and req.amount > ABSOLUTE_MAX_AMOUNT:  # type: ignore[operator]
        problems.append(f"amount {req.amount:g} is above the absolute limit {ABSOLUTE_MAX_AMOUNT:g}")
    if not (_is_number(req.multiplier) and math.isfinite(req.multiplier) and req.multiplier > 0):
        problems.append(f"multiplier must be a positive finite number, got {req.multiplier!r}")
    if req.tif not in TIME_IN_FORCE:
        problems.append(f"time in force must be one of {', '.join(TIME_IN_FORCE)}, got {req.tif!r}")
    elif req.tif == "IOC" and req.is_bracket:
        problems.append("a bracket cannot be IOC (its exits must rest): use DAY or GTC")
    _check_prices(req, problems)
    _check_bracket(req, market_price, problems)
    if req.legs or req.sec_type == "BAG":
        _check_combo(req, problems)
    return problems


def _check_combo(req: OrderRequest, problems: list[str]) -> None:
    if not req.legs:
        problems.append("a BAG (combo) order needs its legs")
        return
    problems += combo_problems(req.legs)
    if req.order_type is not OrderType.LIMIT:
        problems.append("a combo order needs a net limit price (LMT)")
    if req.amount is not None:
        problems.append("a combo order takes a quantity of combos, not an amount")
    if req.is_bracket or req.modify_order_id:
        problems.append("a combo order cannot be a bracket or modify another order")


def validate_order(req: OrderRequest, market_price: float | None = None) -> None:
    """Raise :class:`InvalidOrder` listing every structural problem with ``req``; return None when it is sound."""
    problems = order_problems(req, market_price)
    if problems:
        head = f"invalid order {getattr(req.action, 'value', req.action)} {req.symbol}: "
        raise InvalidOrder(head + "; ".join(problems), problems)


# --------------------------------------------------------------------------- sizing by cash amount
def _decimal(x: float) -> Decimal:
    # repr() is the shortest string that round-trips: 0.1 stays 0.1, not 0.1000000000000000055…, so the
    # arithmetic below is exact on the numbers as the user (or the price feed) wrote them.
    return Decimal(repr(float(x)))


def shares_for_amount(amount: float, price: float) -> int:
    """Whole shares that ``amount`` of cash buys at ``price``: rounded down, never more notional than asked.

    Computed in decimal on the numbers as written, so 0.7 / 0.1 gives 7 (float division gives 6.999…).
    Raises :class:`InvalidOrder` when the amount or price is not a positive finite number, or when the amount
    buys less than one share.
    """
    problems: list[str] = []
    _positive("amount", amount, problems)
    _positive("price", price, problems)
    if amount is None or price is None:
        problems.append("amount and price are required")
    if problems:
        raise InvalidOrder("cannot convert amount to shares: " + "; ".join(problems), problems)
    shares = int((_decimal(amount) / _decimal(price)).to_integral_value(rounding=ROUND_FLOOR))
    # Decimal division is correctly rounded at 28 digits; step down if rounding pushed us over the amount.
    while shares > 0 and shares * _decimal(price) > _decimal(amount):
        shares -= 1
    if shares < 1:
        msg = f"amount ${amount:,.2f} buys less than one share at ${price:,.4g}"
        raise InvalidOrder(msg, [msg])
    return shares


def with_quantity_for_price(req: OrderRequest, price: float) -> OrderRequest:
    """The same request with its cash ``amount`` converted to whole shares (contracts) at ``price`` × the
    contract multiplier (no-op with a quantity): $30,000 of a 50× future at 5,000 is 0 contracts, not 6."""
    if req.amount is None:
        return req
    return replace(req, quantity=float(shares_for_amount(req.amount, price * (req.multiplier or 1.0))),
                   amount=None)


# --------------------------------------------------------------------------- reducing vs opening
def split_reducing(position_qty: float, action: Action, qty: float) -> tuple[float, float]:
    """Split an order into (reducing, opening) quantities against a signed position.

    A SELL against a long (or a BUY against a short) reduces up to the held size; whatever crosses through
    zero opens a new position the other way. Against a flat position, or in the position's own direction,
    everything opens. Both parts are ≥ 0 and add up to ``qty``.
    """
    qty = abs(qty)
    if position_qty == 0 or (position_qty > 0) == (action is Action.BUY):
        return 0.0, float(qty)
    reducing = min(qty, abs(position_qty))
    opening = qty - reducing
    return float(reducing), float(opening if opening > 0 else 0.0)


def same_instrument(p: Position, symbol: str, con_id: int = 0, sec_type: str = "STK") -> bool:
    """True when ``p`` is the instrument: same conId when both know it, else same symbol and security type."""
    if con_id and p.con_id:
        return p.con_id == con_id
    return p.symbol.upper() == symbol.upper() and p.sec_type.upper() == sec_type.upper()


def instrument_lines(positions: Iterable[Position], symbol: str, con_id: int = 0,
                     sec_type: str = "STK") -> list[Position]:
    """The position lines of one instrument (see :func:`same_instrument`), in order."""
    sym, kind = symbol.upper(), sec_type.upper()  # same_instrument inlined: a batch asks this per order and line
    return [p for p in positions if (
        p.con_id == con_id if con_id and p.con_id else p.symbol.upper() == sym and p.sec_type.upper() == kind)]


def held_quantity(positions: Iterable[Position], symbol: str, con_id: int = 0, sec_type: str = "STK") -> float:
    """Signed quantity held in one instrument (summed over accounts; see :func:`same_instrument`)."""
    return float(sum(p.quantity for p in instrument_lines(positions, symbol, con_id, sec_type)))


def check_sell_within_holding(req: OrderRequest, held: float, working_sells: float = 0.0) -> None:
    """Refuse a SELL larger than what is held and not already being sold, unless ``req.allow_short``.

    ``held`` is the signed position (negative when already short: then any sell adds to the short);
    ``working_sells`` the unfilled quantity of SELL orders already working on the instrument (see
    :func:`working_quantity`): a position of 38 with a working SELL 38 has nothing left to sell.
    Raises :class:`InvalidOrder`; BUY orders always pass.
    """
    if req.action is not Action.SELL or req.allow_short:
        return
    if req.quantity is None:
        raise InvalidOrder("convert the amount to a quantity before checking the holding")
    long_qty = max(held, 0.0)
    pending = max(working_sells or 0.0, 0.0)
    available = max(long_qty - pending, 0.0)
    if req.quantity > available:
        what = f"the {long_qty:g} held" if not pending else \
            f"the {available:g} available ({long_qty:g} held, {pending:g} already in working sell orders)"
        msg = (
            f"SELL {req.quantity:g} {req.symbol} exceeds {what}; "
            "ask for a short sale explicitly (allow_short) to sell more than you hold"
        )
        raise InvalidOrder(msg, [msg])


def working_quantity(orders: Iterable[dict], symbol: str, con_id: int = 0, sec_type: str = "STK",
                     action: Action | str = Action.SELL) -> float:
    """Unfilled quantity of working ``action`` orders on one instrument.

    ``orders`` are rows with ``symbol``, ``con_id``, ``sec_type``, ``action``, ``remaining`` and optionally
    ``oca_group``: orders of one OCA group (a bracket's take-profit and stop-loss) count once, at the largest,
    since only one of them can fill. The instrument matches as in :func:`same_instrument`.
    """
    side = action.value if isinstance(action, Action) else str(action).upper()
    by_group: dict[str, float] = {}
    for i, o in enumerate(orders):
        if str(o.get("action", "")).upper() != side:
            continue
        oc, os_ = int(o.get("con_id") or 0), str(o.get("symbol") or "")
        same = oc == con_id if (con_id and oc) else \
            (os_.upper() == symbol.upper() and str(o.get("sec_type") or "STK").upper() == sec_type.upper())
        remaining = float(o.get("remaining") or 0.0)
        if not same or not math.isfinite(remaining) or remaining <= 0:
            continue
        group = str(o.get("oca_group") or "") or f"#{i}"
        by_group[group] = max(by_group.get(group, 0.0), remaining)
    return math.fsum(by_group.values())


def size_rules(contract: dict) -> tuple[float, float]:
    """``(min_size, size_increment)`` of a resolved contract dict; when the broker did not say: 1 and 1 for
    stocks, futures and options (whole units), else no minimum (0) and any size (0)."""
    default = DEFAULT_MIN_SIZE.get(str(contract.get("sec_type") or "STK").upper(), 0.0)

    def usable(key: str) -> float | None:
        v = contract.get(key)
        return float(v) if _is_number(v) and math.isfinite(v) and 0 < v < ABSOLUTE_MAX_QUANTITY else None

    min_size = usable("min_size")
    increment = usable("size_increment")
    return (min_size if min_size is not None else default, increment if increment is not None else default)


def check_quantity_for_contract(req: OrderRequest, contract: dict, max_quantity: float | None = None) -> None:
    """Refuse a quantity the instrument cannot trade or that is beyond the configured maximum.

    The quantity must be finite, at least the contract's minimum size, a whole multiple of its size
    increment (:func:`size_rules`), and at most ``max_quantity`` (``max_order_quantity`` in
    trading_filters.yaml). A request still given as an amount passes: check it again once converted.
    Raises :class:`InvalidOrder` listing the problems.
    """
    qty = req.quantity
    if qty is None:
        return
    problems: list[str] = []
    if not _positive("quantity", qty, problems):
        raise InvalidOrder(f"invalid order {req.action.value} {req.symbol}: " + "; ".join(problems), problems)
    limit = ABSOLUTE_MAX_QUANTITY if max_quantity is None else min(max_quantity, ABSOLUTE_MAX_QUANTITY)
    if qty > limit:
        problems.append(f"quantity {qty:g} is above the maximum order quantity {limit:g} "
                        "(max_order_quantity in trading_filters.yaml)")
    min_size, increment = size_rules(contract)
    if qty < min_size:
        problems.append(f"quantity {qty:g} is below the minimum size {min_size:g} of {req.symbol}")
    elif increment > 0 and _decimal(qty) % _decimal(increment) != 0:
        problems.append(f"quantity {qty:g} is not a multiple of the size increment {increment:g} of {req.symbol}")
    if problems:
        raise InvalidOrder(f"invalid order {req.action.value} {req.symbol}: " + "; ".join(problems), problems)


# --------------------------------------------------------------------------- resize-positions
def _check_bound(name: str, value: float | None) -> None:
    if value is not None and not (_is_number(value) and math.isfinite(value) and value > 0):
        raise InvalidOrder(f"{name} must be a positive finite number, got {value!r}")


def resize_plan(
    positions: Sequence[Position], max_bound: float | None = None, min_bound: float | None = None
) -> list[ResizeOrder]:
    """Orders that scale every position by one factor so the gross value moves to a bound.

    Gross value is the sum of |market value| over non-zero positions. Above ``max_bound`` every position
    shrinks by ``max_bound / gross``; below ``min_bound`` every position grows by ``min_bound / gross``;
    within the bounds nothing is traded. Target quantities round toward zero to whole units, so a shrink
    always lands at or under ``max_bound`` and a grow never trades more than the factor asks (it may land a
    little under ``min_bound``). Shorts scale like longs (a shrink buys to cover, a grow sells more).
    Raises :class:`InvalidOrder` when no bound is given, the bounds cross, or a position has no price.
    """
    if max_bound is None and min_bound is None:
        raise InvalidOrder("give a max bound, a min bound or both")
    _check_bound("max bound", max_bound)
    _check_bound("min bound", min_bound)
    if max_bound is not None and min_bound is not None and min_bound > max_bound:
        raise InvalidOrder(f"min bound {min_bound:,.2f} is above max bound {max_bound:,.2f}")
    live = [p for p in positions if p.quantity != 0]
    unpriced = sorted(p.symbol for p in live if p.market_value is None)
    if unpriced:
        raise InvalidOrder(f"cannot resize: no market price for {', '.join(unpriced)}")
    gross = math.fsum(abs(p.market_value or 0.0) for p in live)
    if gross <= 0:
        return []
    if max_bound is not None and gross > max_bound:
        factor = max_bound / gross
    elif min_bound is not None and gross < min_bound:
        factor = min_bound / gross
    else:
        return []
    plan = []
    for p in live:
        # Scale in decimal so a factor like 0.5 on 7 shares is exactly 3.5 before rounding toward zero.
        scaled = abs(_decimal(p.quantity)) * _decimal(factor)
        target_abs = float(scaled.to_integral_value(rounding=ROUND_FLOOR))
        target = math.copysign(target_abs, p.quantity) if target_abs else 0.0
        delta = target - p.quantity
        if delta == 0:
            continue
        plan.append(
            ResizeOrder(
                symbol=p.symbol,
                action=Action.BUY if delta > 0 else Action.SELL,
                quantity=abs(delta),
                current_quantity=p.quantity,
                target_quantity=target,
                con_id=p.con_id,
                sec_type=p.sec_type,
            )
        )
    return plan
