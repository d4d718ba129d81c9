"""The pre-trade risk gate: one pure check that every order path (CLI, proposal approval, strategy) passes.

``RiskGate(filters).check(request, context) -> GateDecision``. The gate does no I/O: the caller gathers the
:class:`GateContext` (account snapshot, positions, open-order count, orders in the rate window, market
session flags, a price) and the gate applies the limits in ``trading_filters.yaml``.

Reducing vs opening
    The order is first split against the position held (:func:`trader.trading.orders.split_reducing`). The part
    that only reduces exposure — a SELL against a long, a BUY against a short, up to the held size — is never
    gated: not by daily loss, rate limits, order counts, symbol lists nor market hours. A trader must always be
    able to get out. Market hours included: whether the exchange accepts an order outside its session is the
    broker's business, and refusing a way out here would only trade a visible broker error for a silent one.
    An order that crosses zero has its opening part gated; the decision carries both parts.

Fail closed
    For an opening part, anything the rules need but cannot read (net liquidation, daily P&L, the value of the
    position held, a price for the order, the open-order count, the rate-window count, the market session)
    fails that rule with the reason. Unknown positions (``positions=None``: reconciliation has not succeeded)
    mean the gate cannot tell reducing from opening, so the whole order is treated as opening and refused.

Rules and their boundaries (limit L, "at the limit" decided per rule):

================  ==========================================================  ==========================
rule              value checked                                               passes when
================  ==========================================================  ==========================
position_value    |position value| after the order (existing + opening part)  value ≤ L (inclusive)
position_pct_nlv  that value as % of net liquidation                          pct ≤ L (inclusive)
daily_loss        today's loss (−daily P&L), latched for the rest of the day  loss < L (hitting L stops)
open_orders       open orders + legs of this order                            total ≤ L (inclusive)
order_rate        orders in the last ``order_window_seconds`` + legs          total ≤ L (inclusive)
symbol_list       symbol in allowlist (when non-empty) and not in denylist    —
exchange_list     exchange or primary exchange allowed and not denied         —
sec_type_list     security type in allowlist (when non-empty), not denied     —
min_price         the order's price (entry, else market; ``min_price`` > 0)  price ≥ L (inclusive)
derivatives       options (OPT/FOP): not past expiry; a market price known;  —
                  a SELL that writes (opens a short) is covered — calls by
                  multiplier × contracts shares held — unless
                  ``allow_uncovered_short_options``
market_hours      regular session open; or extended session open and both     —
                  ``allow_extended_hours`` and the order's ``outside_rth``
group_budget      gross value of each group the order belongs to (its          after ≤ budget % of NLV
                  ``group`` tag and every group listing the symbol), after     (mode ``reject``; mode
                  the order                                                    ``warn`` only adds a note)
================  ==========================================================  ==========================

A long option's notional is its premium × multiplier × contracts (the position rules value every order at
price × ``multiplier`` × quantity, converted to the base currency at ``GateContext.fx_rate``; an unknown rate
fails them). A combo (spread, one BAG order) is valued at its defined maximum loss × quantity
(:func:`trader.trading.combos.max_loss` at its net limit price): a credit vertical at
(width − credit) × multiplier × quantity, never its legs as unrelated trades. The derivatives rule refuses a
combo that is not defined risk (net short calls or puts) unless ``allow_uncovered_short_options``.

Daily loss is the one exclusive limit: the limit is a loss you agreed to stop at, so reaching it stops trading
(for the rest of the trading day in ``timezone``, even if P&L recovers — :meth:`RiskGate.halted_day`).
Values are compared exactly, with no tolerance; messages print numbers with enough digits to show why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from trader.config import TradingFiltersConfig
from trader.errors import InvalidOrder, RiskRejected
from trader.messaging.codec import wire
from trader.trading import combos
from trader.trading.groups import GroupBudgetCheck, GroupMode, PositionGroup, check_group_budget
from trader.trading.models import AccountSnapshot, Action, Position
from trader.trading.orders import OrderRequest, held_quantity, instrument_lines, split_reducing

__all__ = [
    "RULES",
    "RuleFailure",
    "GateContext",
    "GateDecision",
    "RiskGate",
    "count_in_window",
    "order_value",
]

RULE_POSITIONS = "positions"
RULE_POSITION_VALUE = "position_value"
RULE_POSITION_PCT = "position_pct_nlv"
RULE_DAILY_LOSS = "daily_loss"
RULE_OPEN_ORDERS = "open_orders"
RULE_ORDER_RATE = "order_rate"
RULE_SYMBOL = "symbol_list"
RULE_EXCHANGE = "exchange_list"
RULE_MARKET_HOURS = "market_hours"
RULE_GROUP_BUDGET = "group_budget"
RULE_SEC_TYPE = "sec_type_list"
RULE_MIN_PRICE = "min_price"
RULE_DERIVATIVES = "derivatives"
RULES = (  # every rule an opening order is checked against, in report order
    RULE_POSITION_VALUE,
    RULE_POSITION_PCT,
    RULE_DAILY_LOSS,
    RULE_OPEN_ORDERS,
    RULE_ORDER_RATE,
    RULE_SYMBOL,
    RULE_EXCHANGE,
    RULE_SEC_TYPE,
    RULE_MIN_PRICE,
    RULE_DERIVATIVES,
    RULE_MARKET_HOURS,
    RULE_GROUP_BUDGET,
)


@wire(name="trading.RuleFailure")
@dataclass(frozen=True, slots=True)
class RuleFailure:
    """One failed rule: its name, a plain-words message with the numbers, and the numbers themselves."""

    rule: str
    message: str
    value: float | None = None
    limit: float | None = None


@wire(name="trading.GateContext")
@dataclass(frozen=True, slots=True)
class GateContext:
    """What the gate needs to know about the world at decision time. ``None`` always means *unknown*.

    - ``positions``: every position held; ``None`` until reconciliation with the broker has succeeded.
    - ``open_orders``: orders live at the broker now (not counting this one).
    - ``orders_in_window``: orders sent within ``order_window_seconds`` (event-store lookback); or give
      ``recent_order_times`` and the gate counts those inside the window ending at ``now``.
    - ``regular_open`` / ``extended_open``: the market session for this contract at ``now``
      (:func:`trader.trading.market_hours.session_flags`); ``next_open`` only makes messages friendlier.
    - ``market_price``: the price used to value a market or trailing order (limit/stop orders use their price).
    - ``option_right`` / ``expiry``: the option's right and last trade date (the derivatives rule).
    - ``groups``: the position groups the order counts toward (its tag and every group listing the symbol);
      ``group_mode`` ``reject`` makes an over-budget group a failure, ``warn`` only a note.
    """

    account: AccountSnapshot
    positions: tuple[Position, ...] | None
    now: datetime
    open_orders: int | None = None
    orders_in_window: int | None = None
    recent_order_times: tuple[datetime, ...] | None = None
    regular_open: bool | None = None
    extended_open: bool | None = None
    next_open: datetime | None = None
    market_price: float | None = None
    groups: tuple[PositionGroup, ...] = ()
    group_mode: GroupMode = GroupMode.WARN
    option_right: str = ""  # C/P of the order's option contract ("" for anything else)
    expiry: str = ""  # last trade date (YYYYMMDD) of a dated contract ("" unknown or none)
    # Base-currency units per unit of the order's currency (1 for the base currency, None when unknown): the
    # position rules compare values in the base currency (a EUR future's notional × EURUSD against USD limits).
    fx_rate: float | None = 1.0


@wire(name="trading.GateDecision")
@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's answer. Rejected iff ``failures`` is non-empty; the reducing part is never refused.

    ``allowed_quantity`` is what may go to the broker: the reducing part, plus the opening part when no rule
    failed. ``checked`` names the rules evaluated (empty for a purely reducing order).
    """

    symbol: str
    action: Action
    quantity: float
    reducing_quantity: float
    opening_quantity: float
    failures: tuple[RuleFailure, ...] = ()
    checked: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    correlation_id: str = ""

    @property
    def rejected(self) -> bool:
        """True when at least one rule failed (the opening part may not be sent)."""
        return bool(self.failures)

    @property
    def allowed(self) -> bool:
        """True when the whole order may be sent."""
        return not self.failures

    @property
    def allowed_quantity(self) -> float:
        """Quantity that may be sent: the reducing part, plus the opening part if nothing failed."""
        return self.reducing_quantity + (0.0 if self.failures else self.opening_quantity)

    @property
    def reasons(self) -> list[str]:
        """The failure messages, in rule order."""
        return [f.message for f in self.failures]

    def summary(self) -> str:
        """One line: what passed or every reason it did not."""
        head = f"{self.action.value} {_num(self.quantity)} {self.symbol}"
        if not self.failures:
            return f"{head}: passed the risk gate"
        part = ""
        if self.reducing_quantity:
            part = f" (opening part {_num(self.opening_quantity)}; reducing part {_num(self.reducing_quantity)} may go)"
        return f"{head} refused by the risk gate{part}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict:
        """JSON-safe form for the CLI and the event store."""
        return {
            "symbol": self.symbol,
            "action": self.action.value,
            "quantity": self.quantity,
            "reducing_quantity": self.reducing_quantity,
            "opening_quantity": self.opening_quantity,
            "allowed": self.allowed,
            "allowed_quantity": self.allowed_quantity,
            "failures": [
                {"rule": f.rule, "message": f.message, "value": f.value, "limit": f.limit} for f in self.failures
            ],
            "checked": list(self.checked),
            "notes": list(self.notes),
            "correlation_id": self.correlation_id,
        }

    def raise_if_rejected(self) -> GateDecision:
        """Raise :class:`RiskRejected` carrying this decision when rejected; return self otherwise."""
        if self.failures:
            raise RiskRejected(self.summary(), self)
        return self


# --------------------------------------------------------------------------- number formatting
def order_value(req: OrderRequest, quantity: float, price: float) -> float:
    """What ``quantity`` of ``req`` at ``price`` counts for in the position rules: price × multiplier ×
    quantity, and for a combo its defined max loss × quantity (``inf`` when unbounded)."""
    if req.is_combo:
        loss = combos.max_loss(req.legs, req.action, float(price))
        return loss * quantity if quantity else 0.0
    return quantity * price * req.multiplier


def _num(x: float, digits: int = 2) -> str:
    """``12.4``, ``10``, ``1,250.5``: up to ``digits`` decimals, trailing zeros dropped, thousands separated."""
    text = f"{x:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _pair(value: float, limit: float, digits: int = 1) -> tuple[str, str]:
    """Format value and limit with enough decimals that a value over the limit never prints equal to it."""
    for d in range(digits, 10):
        v, lim = _num(value, d), _num(limit, d)
        if (v != lim) == (value != limit):
            return v, lim
    return repr(value), repr(limit)


def _usd_pair(value: float, limit: float) -> tuple[str, str]:
    v, lim = _pair(value, limit, 0)
    return "$" + v, "$" + lim


def _known(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def count_in_window(times: Sequence[datetime], now: datetime, window_seconds: float) -> int:
    """How many of ``times`` fall in the window ``(now - window_seconds, now]``."""
    start = now - timedelta(seconds=window_seconds)
    return sum(1 for t in times if start < t <= now)


# --------------------------------------------------------------------------- the gate
@dataclass(frozen=True, slots=True)
class _Order:
    """What the rules see: the request and the part of it that opens exposure."""

    req: OrderRequest
    opening: float
    held: float  # signed quantity held before the order
    crosses: bool  # the order closes the held position and opens the other way


@dataclass
class RiskGate:
    """Pre-trade risk gate over ``trading_filters.yaml`` limits. See the module docstring for the rules.

    The only state is the daily-loss latch: once the loss limit is hit, opening orders stay refused for the
    rest of that trading day (dates in ``timezone``). The service can restore it after a restart with
    :meth:`halt_for_day` from the event store.
    """

    filters: TradingFiltersConfig
    timezone: str = "America/New_York"
    _halted_day: date | None = field(default=None, init=False, repr=False)

    # -- daily-loss latch
    def trading_day(self, at: datetime) -> date:
        """The trading day ``at`` belongs to: its date in the gate's timezone (a naive time is used as is)."""
        if at.tzinfo is None:
            return at.date()
        return at.astimezone(ZoneInfo(self.timezone)).date()

    @property
    def halted_day(self) -> date | None:
        """The trading day on which the daily loss limit was hit, if any."""
        return self._halted_day

    def halt_for_day(self, day: date) -> None:
        """Stop opening orders for ``day`` (restoring the latch, or a manual kill switch for the day)."""
        self._halted_day = day

    # -- the check
    def check(self, req: OrderRequest, ctx: GateContext) -> GateDecision:
        """Apply every rule to the opening part of ``req``; return a decision listing every failure.

        ``req`` must already be structurally valid with a quantity (``validate_order``, amount converted);
        a missing or non-positive quantity raises :class:`InvalidOrder` rather than pass as "nothing to gate".
        """
        if not (_known(req.quantity) and req.quantity > 0):  # type: ignore[operator]
            # Never read a missing quantity as "nothing to gate": that would wave the order through.
            raise InvalidOrder(f"the risk gate needs a positive quantity (convert an amount first), got {req.quantity!r}")
        qty = float(req.quantity)  # type: ignore[arg-type]
        base = dict(symbol=req.symbol, action=req.action, quantity=qty, correlation_id=req.correlation_id)
        if ctx.positions is None:
            # Without positions the order cannot be split, so all of it is treated as opening: the position
            # rules cannot be evaluated (that is the failure); every other rule still runs and reports.
            unknown = RuleFailure(
                RULE_POSITIONS,
                "positions unknown (not yet reconciled with the broker): cannot tell whether this order "
                "reduces or opens exposure",
            )
            order = _Order(req, qty, 0.0, crosses=False)
            failures = [unknown, *(f for rule in self._rules()[1:] for f in rule(order, ctx))]
            return GateDecision(**base, reducing_quantity=0.0, opening_quantity=qty, failures=tuple(failures),
                                checked=(RULE_POSITIONS, *RULES[2:]))
        held = held_quantity(ctx.positions, req.symbol, req.con_id, req.sec_type)
        reducing, opening = split_reducing(held, req.action, qty)
        if opening <= 0:
            note = f"reduces the {_num(held)} held: not gated (a way out is never blocked)"
            return GateDecision(**base, reducing_quantity=reducing, opening_quantity=0.0, notes=(note,))
        order = _Order(req, opening, held, crosses=reducing > 0)
        failures = [f for rule in self._rules() for f in rule(order, ctx)]
        notes: tuple[str, ...] = ()
        if reducing:
            notes = (f"crosses zero: {_num(reducing)} reduces the position (not gated), {_num(opening)} opens",)
        if ctx.group_mode is not GroupMode.REJECT:  # warn mode: over-budget groups are flagged, not refused
            notes += tuple(f"group budget (warn): {c.message}" for c in self.group_checks(req, ctx) if c.exceeds)
        return GateDecision(**base, reducing_quantity=reducing, opening_quantity=opening,
                            failures=tuple(failures), checked=RULES, notes=notes)

    def enforce(self, req: OrderRequest, ctx: GateContext) -> GateDecision:
        """:meth:`check`, raising :class:`RiskRejected` (carrying the decision) when any rule fails."""
        return self.check(req, ctx).raise_if_rejected()

    def _rules(self) -> tuple[Callable[[_Order, GateContext], list[RuleFailure]], ...]:
        # In RULES order; the position-size check (two rules) comes first.
        return (
            self._position_size,
            self._daily_loss,
            self._open_orders,
            self._order_rate,
            self._symbol_lists,
            self._exchange_lists,
            self._sec_type_lists,
            self._min_price,
            self._derivatives,
            self._market_hours,
            self._group_budget,
        )

    def group_checks(self, req: OrderRequest, ctx: GateContext) -> list[GroupBudgetCheck]:
        """Budget check of every group in ``ctx.groups`` after the whole order (signed: a SELL of a long
        frees budget). Without a price the change is unknown and counted as 0 (the position rules fail then)."""
        if not ctx.groups or ctx.positions is None:
            return []
        price = req.entry_price if req.entry_price is not None else ctx.market_price
        qty = float(req.quantity or 0.0)
        value = order_value(req, qty, price) * (ctx.fx_rate or 0.0) if _known(price) else 0.0
        value = value if math.isfinite(value) else 0.0  # an unbounded combo is refused by the derivatives rule
        signed = value if req.action is Action.BUY else -value
        return [check_group_budget(g, ctx.positions, ctx.account.net_liquidation, req.symbol, signed, ctx.group_mode)
                for g in ctx.groups]

    # -- rules: each returns the failures it found (empty list: passed)
    def _position_size(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """position_value and position_pct_nlv: the position after the order, inclusive limits."""
        f = self.filters
        price = o.req.entry_price if o.req.entry_price is not None else ctx.market_price
        if not (_known(price) and price > 0):  # type: ignore[operator]
            why = "no price to value the order (market price unknown)"
            return [RuleFailure(RULE_POSITION_VALUE, why), RuleFailure(RULE_POSITION_PCT, why)]
        existing = 0.0
        if o.held and not o.crosses:
            # Adding to a position: its current value counts. A crossing order closes it first.
            held = instrument_lines(ctx.positions or (), o.req.symbol, o.req.con_id, o.req.sec_type)
            values = [p.market_value for p in held if p.quantity]
            if any(v is None for v in values):
                why = f"value of the {_num(o.held)} {o.req.symbol} held is unknown (no market price)"
                return [RuleFailure(RULE_POSITION_VALUE, why), RuleFailure(RULE_POSITION_PCT, why)]
            existing = abs(math.fsum(v for v in values if v is not None))
        value = existing + order_value(o.req, o.opening, price)  # type: ignore[arg-type]
        if not (_known(ctx.fx_rate) and ctx.fx_rate > 0):  # type: ignore[operator]
            why = f"no exchange rate from {o.req.currency} to the base currency: cannot value the order"
            return [RuleFailure(RULE_POSITION_VALUE, why), RuleFailure(RULE_POSITION_PCT, why)]
        value *= ctx.fx_rate  # type: ignore[operator]  # in the base currency, as the limits are
        if not math.isfinite(value):
            why = "the combo's loss is unbounded (net short calls): no defined max loss to size it"
            return [RuleFailure(RULE_POSITION_VALUE, why), RuleFailure(RULE_POSITION_PCT, why)]
        out = []
        if value > f.max_position_value_usd:
            v, lim = _usd_pair(value, f.max_position_value_usd)
            out.append(RuleFailure(RULE_POSITION_VALUE, f"position value {v} > limit {lim}", value,
                                   f.max_position_value_usd))
        nlv = ctx.account.net_liquidation
        if not _known(nlv):
            out.append(RuleFailure(RULE_POSITION_PCT, "net liquidation unknown: cannot size against NLV"))
        elif nlv <= 0:  # type: ignore[operator]
            out.append(RuleFailure(RULE_POSITION_PCT, f"net liquidation is ${_num(nlv)}: no room for new exposure",
                                   None, f.max_position_pct_nlv))
        else:
            pct = value / nlv * 100.0  # type: ignore[operator]
            if pct > f.max_position_pct_nlv:
                p, lim = _pair(pct, f.max_position_pct_nlv)
                out.append(RuleFailure(RULE_POSITION_PCT, f"position {p}% of NLV > limit {lim}%", pct,
                                       f.max_position_pct_nlv))
        return out

    def _daily_loss(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """daily_loss: reaching the limit stops opening orders for the rest of the trading day."""
        limit = self.filters.max_daily_loss_usd
        day = self.trading_day(ctx.now)
        if self._halted_day == day:
            return [RuleFailure(RULE_DAILY_LOSS, f"daily loss limit ${_num(limit)} was hit earlier today: "
                                "trading stopped until the next trading day", None, limit)]
        pnl = ctx.account.daily_pnl
        if not _known(pnl):
            return [RuleFailure(RULE_DAILY_LOSS, "daily P&L unknown: cannot check the daily loss limit", None, limit)]
        loss = -pnl  # type: ignore[operator]
        if loss >= limit:
            self._halted_day = day
            v, lim = _usd_pair(loss, limit)
            return [RuleFailure(RULE_DAILY_LOSS, f"daily loss {v} reached limit {lim}: trading stopped for today",
                                loss, limit)]
        return []

    def _open_orders(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """open_orders: open orders plus this order's legs, inclusive limit."""
        limit = self.filters.max_open_orders
        if ctx.open_orders is None:
            return [RuleFailure(RULE_OPEN_ORDERS, "open order count unknown", None, limit)]
        total = ctx.open_orders + o.req.leg_count
        if total > limit:
            return [RuleFailure(RULE_OPEN_ORDERS, f"open orders {ctx.open_orders} + {o.req.leg_count} new = {total} "
                                f"> limit {limit}", total, limit)]
        return []

    def _order_rate(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """order_rate: orders within the window plus this order's legs, inclusive limit."""
        f = self.filters
        window = f.order_window_seconds
        sent = ctx.orders_in_window
        if sent is None and ctx.recent_order_times is not None:
            sent = count_in_window(ctx.recent_order_times, ctx.now, window)
        if sent is None:
            return [RuleFailure(RULE_ORDER_RATE, "orders sent in the rate window unknown", None,
                                f.max_orders_per_window)]
        total = sent + o.req.leg_count
        if total > f.max_orders_per_window:
            return [RuleFailure(RULE_ORDER_RATE, f"orders in the last {_num(window)} s: {sent} + {o.req.leg_count} "
                                f"new = {total} > limit {f.max_orders_per_window}", total, f.max_orders_per_window)]
        return []

    def _symbol_lists(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """symbol_list: not denylisted and, when an allowlist is set, on it (case-insensitive)."""
        sym = o.req.symbol.strip().upper()
        deny = {s.upper() for s in self.filters.symbol_denylist}
        allow = {s.upper() for s in self.filters.symbol_allowlist}
        if sym in deny:
            return [RuleFailure(RULE_SYMBOL, f"symbol {sym} is on the denylist")]
        if allow and sym not in allow:
            return [RuleFailure(RULE_SYMBOL, f"symbol {sym} is not on the allowlist")]
        return []

    def _exchange_lists(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """exchange_list: routing or primary exchange denied fails; with an allowlist, one of them must be on it."""
        names = [x.strip().upper() for x in (o.req.exchange, o.req.primary_exchange) if x and x.strip()]
        deny = {s.upper() for s in self.filters.exchange_denylist}
        allow = {s.upper() for s in self.filters.exchange_allowlist}
        denied = [x for x in names if x in deny]
        if denied:
            return [RuleFailure(RULE_EXCHANGE, f"exchange {denied[0]} is on the denylist")]
        if allow and not any(x in allow for x in names):
            shown = "/".join(names) or "unknown"
            return [RuleFailure(RULE_EXCHANGE, f"exchange {shown} is not on the allowlist")]
        return []

    def _sec_type_lists(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """sec_type_list: the security type not denied and, when an allowlist is set, on it."""
        kind = (o.req.sec_type or "").strip().upper()
        deny = {s.upper() for s in self.filters.sec_type_denylist}
        allow = {s.upper() for s in self.filters.sec_type_allowlist}
        if kind in deny:
            return [RuleFailure(RULE_SEC_TYPE, f"security type {kind} is on the denylist")]
        if allow and kind not in allow:
            return [RuleFailure(RULE_SEC_TYPE, f"security type {kind} is not on the allowlist")]
        return []

    def _derivatives(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """derivatives: an option order must be live (not past expiry), have a market, and — when it writes
        options — be covered (calls: multiplier × contracts of the underlying's shares held) unless
        ``allow_uncovered_short_options``."""
        req = o.req
        if req.sec_type not in ("OPT", "FOP") and not req.is_combo:
            return []
        out = []
        today = self.trading_day(ctx.now).strftime("%Y%m%d")
        if ctx.expiry and ctx.expiry[:8] < today:
            out.append(RuleFailure(RULE_DERIVATIVES, f"{req.symbol} expired on {ctx.expiry[:8]}: no new position"))
        if req.is_combo:  # a net price may be 0 or negative; unknown means a leg has no market
            if not _known(ctx.market_price):
                out.append(RuleFailure(RULE_DERIVATIVES, f"no market for every leg of the {req.symbol} combo"))
            if not combos.is_defined_risk(req.legs, req.action) and not self.filters.allow_uncovered_short_options:
                out.append(RuleFailure(RULE_DERIVATIVES, f"the {req.symbol} combo "
                                       f"({combos.describe(req.legs, req.action)}) is net short options, not "
                                       "defined risk: set allow_uncovered_short_options in trading_filters.yaml "
                                       "to permit it"))
            return out
        if not (_known(ctx.market_price) and ctx.market_price > 0):  # type: ignore[operator]
            out.append(RuleFailure(RULE_DERIVATIVES, f"no market for {req.symbol} (no bid, ask or last trade)"))
        if req.action is Action.SELL and not self.filters.allow_uncovered_short_options:
            short_after = o.opening + max(-o.held, 0.0) if not o.crosses else o.opening
            need = short_after * req.multiplier
            underlying = req.symbol.split()[0] if req.symbol.split() else req.symbol
            shares = math.fsum(p.quantity for p in ctx.positions or ()
                               if p.sec_type == "STK" and p.symbol.upper() == underlying.upper() and p.quantity > 0)
            if ctx.option_right != "C" or shares < need:
                what = "a put" if ctx.option_right == "P" else "an option"
                cover = (f" (covered call needs {_num(need)} shares, {_num(shares)} held)"
                         if ctx.option_right == "C" else "")
                out.append(RuleFailure(RULE_DERIVATIVES, f"writing {what} uncovered is not allowed{cover}: set "
                                       "allow_uncovered_short_options in trading_filters.yaml to permit it",
                                       shares, need))
        return out

    def _min_price(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """min_price: an opening order's price (entry, else market) at or above ``min_price``; unknown fails."""
        limit = self.filters.min_price
        if not limit or o.req.is_combo:  # a combo's net price says nothing about a penny stock
            return []
        price = o.req.entry_price if o.req.entry_price is not None else ctx.market_price
        if not _known(price):
            return [RuleFailure(RULE_MIN_PRICE, f"no price to check against min_price {_num(limit)}")]
        if price < limit:  # type: ignore[operator]
            return [RuleFailure(RULE_MIN_PRICE, f"price {_num(price)} is below min_price {_num(limit)}",
                                price, limit)]
        return []

    def _group_budget(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """group_budget: in mode ``reject``, every group the order counts toward stays within its budget."""
        if ctx.group_mode is not GroupMode.REJECT:
            return []
        return [RuleFailure(RULE_GROUP_BUDGET, c.message, c.after_pct, c.budget_pct)
                for c in self.group_checks(o.req, ctx) if c.blocking]

    def _market_hours(self, o: _Order, ctx: GateContext) -> list[RuleFailure]:
        """market_hours: regular session, or the extended session when both config and order allow it."""
        if ctx.regular_open is None:
            return [RuleFailure(RULE_MARKET_HOURS, "market session unknown")]
        if ctx.regular_open:
            return []
        when = f" (next open {ctx.next_open.isoformat(timespec='minutes')})" if ctx.next_open else ""
        if ctx.extended_open is None:
            return [RuleFailure(RULE_MARKET_HOURS, f"outside regular hours and extended session unknown{when}")]
        if not ctx.extended_open:
            return [RuleFailure(RULE_MARKET_HOURS, f"market closed{when}")]
        if not self.filters.allow_extended_hours:
            return [RuleFailure(RULE_MARKET_HOURS, "outside regular hours and extended-hours trading is disabled "
                                f"(allow_extended_hours: false){when}")]
        if not o.req.outside_rth:
            return [RuleFailure(RULE_MARKET_HOURS, "outside regular hours: the order must ask for extended hours "
                                f"(outside_rth){when}")]
        return []
