"""Compact portfolio state for an LLM's context window: snapshot, diff, session summary (pure).

``portfolio_snapshot`` is a small JSON-ready dict with short keys and rounded numbers; positions and orders are
rows under a ``cols`` / ``ocols`` header instead of repeated objects (about 20 tokens per position, so 20
positions stay under ~500 tokens). The caller keeps the last snapshot and later asks ``portfolio_diff(prev,
curr)`` for only what changed; an unchanged book diffs to ``{"changed": false, "msg": "nothing changed"}``.

Snapshot keys: ``t`` time (UTC, minutes), ``ccy``, ``nlv``, ``cash``, ``day`` (day P&L), ``day%``, ``upnl``
(unrealized), ``n`` (positions), ``mv`` movers ``[sym, day P&L, day %]``, ``cols``/``pos`` positions
``[sym, qty, px, val, upnl]`` (``+ day`` on request), ``more`` (positions left out when truncated), ``ocols``/``ord`` orders
``[id, sym, side, qty, type, lmt, st, filled]`` with ``st`` one of open, partial, filled, cancelled, inactive.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trader.config import PositionSizingConfig, TradingFiltersConfig
from trader.messaging.codec import wire
from trader.trading.groups import position_value
from trader.trading.models import AccountSnapshot, Action, Position

__all__ = [
    "OrderSummary",
    "DiffThresholds",
    "POSITION_COLUMNS",
    "ORDER_COLUMNS",
    "portfolio_snapshot",
    "portfolio_diff",
    "session_summary",
    "session_brief",
    "estimate_tokens",
    "order_state",
]

POSITION_COLUMNS = ("sym", "qty", "px", "val", "upnl")
POSITION_COLUMNS_WITH_DAY = (*POSITION_COLUMNS, "day")
ORDER_COLUMNS = ("id", "sym", "side", "qty", "type", "lmt", "st", "filled")
OPEN_STATES = frozenset({"open", "partial"})
DONE_STATES = frozenset({"filled", "cancelled", "inactive"})


@wire(name="trading.OrderSummary")
@dataclass(frozen=True, slots=True)
class OrderSummary:
    """What the snapshot needs to know about one order (the broker adapter fills it from its trades)."""

    order_id: int
    symbol: str
    action: Action
    quantity: float
    order_type: str = "MKT"
    limit_price: float | None = None
    status: str = "Submitted"  # IB status: PendingSubmit, PreSubmitted, Submitted, Filled, Cancelled, …
    filled: float = 0.0
    avg_fill_price: float | None = None


def order_state(status: str, filled: float = 0.0, quantity: float | None = None) -> str:
    """IB order status → open | partial | filled | cancelled | inactive."""
    s = status.replace(" ", "").lower()
    if s == "filled" or (quantity is not None and quantity > 0 and filled >= quantity):
        return "filled"
    if s in ("cancelled", "apicancelled", "pendingcancel"):
        return "cancelled"
    if s == "inactive":
        return "inactive"
    return "partial" if filled > 0 else "open"


@dataclass(frozen=True, slots=True)
class DiffThresholds:
    """When a move is worth reporting in a diff.

    A position's unrealized P&L move is reported when it is at least ``pnl_usd`` *and* at least ``pnl_pct`` %
    of the position's value (so neither a big book's noise nor a tiny position's swings are reported). NLV is
    reported when it moved at least ``nlv_pct`` % of the previous NLV.
    """

    pnl_usd: float = 250.0
    pnl_pct: float = 1.0
    nlv_pct: float = 0.5


# --------------------------------------------------------------------------- rounding
def _num(x: float | None, digits: int = 0) -> float | int | None:
    """Round for display; whole numbers become ints (``100`` not ``100.0``) to save tokens."""
    if x is None or not math.isfinite(x):
        return None
    r = round(float(x), digits)
    return int(r) if r == int(r) else r


def _price(x: float | None) -> float | int | None:
    if x is None or not math.isfinite(x):
        return None
    return _num(x, 2 if abs(x) >= 1 else 4)


def _qty(x: float) -> float | int | None:
    return _num(x, 4)


def _minute(t: datetime) -> str:
    t = t.astimezone(UTC) if t.tzinfo is not None else t
    return t.strftime("%Y-%m-%dT%H:%MZ")


# --------------------------------------------------------------------------- snapshot
def _day_pct(p: Position, value: float) -> float | None:
    if p.daily_pnl is None:
        return None
    base = abs(value - p.daily_pnl)  # yesterday's value
    return None if base == 0 else p.daily_pnl / base * 100.0


def portfolio_snapshot(
    account: AccountSnapshot,
    positions: Sequence[Position],
    orders: Sequence[OrderSummary],
    now: datetime,
    *,
    top_movers: int = 5,
    max_positions: int | None = None,
    with_day: bool = False,
    max_done_orders: int = 10,
) -> dict[str, Any]:
    """Compact snapshot (see the module docstring for the keys). Positions are sorted by |value|;
    ``max_positions`` truncates the list (the rest summarized under ``more``). Open orders are all listed;
    finished ones (filled/cancelled) only the last ``max_done_orders`` by id, so a diff can report them.
    Each position's day P&L is a column only ``with_day`` (the movers already name the biggest ones)."""
    rows = []
    for p in positions:
        if p.quantity == 0:
            continue
        value = position_value(p)
        rows.append((p, value))
    rows.sort(key=lambda pv: -abs(pv[1]))

    snap: dict[str, Any] = {"t": _minute(now), "ccy": account.currency}
    snap["nlv"] = _num(account.net_liquidation)
    snap["cash"] = _num(account.cash)
    snap["day"] = _num(account.daily_pnl)
    if account.daily_pnl is not None and account.net_liquidation:
        prev_nlv = account.net_liquidation - account.daily_pnl
        snap["day%"] = _num(account.daily_pnl / prev_nlv * 100.0, 2) if prev_nlv else None
    upnl = [p.unrealized_pnl for p, _ in rows if p.unrealized_pnl is not None]
    snap["upnl"] = _num(account.unrealized_pnl if account.unrealized_pnl is not None else sum(upnl))
    snap["n"] = len(rows)

    movers = [(p, v, _day_pct(p, v)) for p, v in rows if p.daily_pnl]
    movers.sort(key=lambda m: -abs(m[0].daily_pnl or 0.0))
    if movers and top_movers > 0:
        snap["mv"] = [[p.symbol, _num(p.daily_pnl), _num(pct, 1)] for p, _, pct in movers[:top_movers]]

    shown = rows if max_positions is None else rows[:max_positions]
    snap["cols"] = list(POSITION_COLUMNS_WITH_DAY if with_day else POSITION_COLUMNS)
    snap["pos"] = [
        [p.symbol, _qty(p.quantity), _price(p.market_price), _num(v), _num(p.unrealized_pnl)]
        + ([_num(p.daily_pnl)] if with_day else [])
        for p, v in shown
    ]
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        snap["more"] = {"n": len(rest), "val": _num(sum(v for _, v in rest))}

    open_rows, done_rows = [], []
    for o in sorted(orders, key=lambda o: o.order_id):
        st = order_state(o.status, o.filled, o.quantity)
        row = [o.order_id, o.symbol, o.action.value, _qty(o.quantity), o.order_type, _price(o.limit_price), st,
               _qty(o.filled)]
        (open_rows if st in OPEN_STATES else done_rows).append(row)
    ord_rows = open_rows + done_rows[-max_done_orders:] if max_done_orders > 0 else open_rows
    if ord_rows:
        snap["ocols"] = list(ORDER_COLUMNS)
        snap["ord"] = ord_rows
    return snap


_PRETOKEN_RE = re.compile(r"[A-Za-z]+|\d{1,3}| ?[^\sA-Za-z\d]+|\s+")


def estimate_tokens(obj: Any) -> int:
    """Token estimate of ``obj`` as compact JSON (or of a string): the larger of characters / 4 and the
    number of BPE pre-tokens (letter runs, 1–3 digit groups, punctuation runs) — both are floors for
    cl100k-style tokenizers, which never merge across pre-token boundaries."""
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return max(math.ceil(len(text) / 4), len(_PRETOKEN_RE.findall(text)))


# --------------------------------------------------------------------------- diff
def _rows(snap: Mapping[str, Any], rows_key: str, cols_key: str) -> list[dict[str, Any]]:
    cols = snap.get(cols_key) or []
    return [dict(zip(cols, r, strict=False)) for r in snap.get(rows_key) or []]


def portfolio_diff(
    prev: Mapping[str, Any],
    curr: Mapping[str, Any],
    thresholds: DiffThresholds | None = None,
) -> dict[str, Any]:
    """What changed between two snapshots: ``new``/``closed`` positions, ``qty`` changes ``[sym, before,
    after]``, ``pnl`` moves ``[sym, before, after]`` over the thresholds, ``nlv``/``day`` ``[before, after]``,
    orders ``placed``, ``filled`` ``[id, sym, side, qty]``, ``cancelled`` ``[id, sym]`` and ``gone`` (ids no
    longer reported, outcome unknown). Keys with nothing to say are left out."""
    t = thresholds or DiffThresholds()
    out: dict[str, Any] = {"since": prev.get("t"), "t": curr.get("t")}

    p_nlv, c_nlv = prev.get("nlv"), curr.get("nlv")
    if p_nlv is not None and c_nlv is not None and p_nlv != 0 and abs(c_nlv - p_nlv) >= t.nlv_pct / 100 * abs(p_nlv):
        out["nlv"] = [p_nlv, c_nlv]
        out["day"] = [prev.get("day"), curr.get("day")]
    elif (p_nlv is None) != (c_nlv is None):
        out["nlv"] = [p_nlv, c_nlv]

    before = {r["sym"]: r for r in _rows(prev, "pos", "cols")}
    after = {r["sym"]: r for r in _rows(curr, "pos", "cols")}
    new = [[s, r.get("qty"), r.get("px"), r.get("val")] for s, r in after.items() if s not in before]
    # A truncated snapshot ("more") does not list every position: absence there does not mean closed.
    closed = [] if curr.get("more") else [[s, r.get("qty")] for s, r in before.items() if s not in after]
    qty, pnl = [], []
    for s, r in after.items():
        b = before.get(s)
        if b is None:
            continue
        if b.get("qty") != r.get("qty"):
            qty.append([s, b.get("qty"), r.get("qty")])
        bu, au = b.get("upnl"), r.get("upnl")
        if bu is not None and au is not None:
            move = abs(au - bu)
            if move >= t.pnl_usd and move >= t.pnl_pct / 100 * abs(r.get("val") or 0):
                pnl.append([s, bu, au])
    for key, items in (("new", new), ("closed", closed), ("qty", qty), ("pnl", pnl)):
        if items:
            out[key] = items

    o_before = {r["id"]: r for r in _rows(prev, "ord", "ocols")}
    o_after = {r["id"]: r for r in _rows(curr, "ord", "ocols")}
    placed, filled, cancelled, gone = [], [], [], []
    for oid, r in o_after.items():
        b = o_before.get(oid)
        st = r.get("st")
        was = b.get("st") if b else None
        if st in OPEN_STATES and b is None:
            placed.append([oid, r.get("sym"), r.get("side"), r.get("qty")])
        elif st == "filled" and was != "filled":
            filled.append([oid, r.get("sym"), r.get("side"), r.get("filled")])
        elif st in ("cancelled", "inactive") and was not in ("cancelled", "inactive"):
            cancelled.append([oid, r.get("sym")])
    for oid, b in o_before.items():
        if oid not in o_after and b.get("st") in OPEN_STATES:
            gone.append(oid)
    for key, items in (("placed", placed), ("filled", filled), ("cancelled", cancelled), ("gone", gone)):
        if items:
            out[key] = items

    if len(out) == 2:
        return {"changed": False, "msg": "nothing changed", "since": prev.get("t")}
    out["changed"] = True
    return out


# --------------------------------------------------------------------------- session
def gate_max_position(filters_cfg: TradingFiltersConfig, nlv: float | None) -> float | None:
    """The largest position value the risk gate lets a position reach: the lower of ``max_position_value_usd``
    and ``max_position_pct_nlv`` of NLV (None when NLV is unknown: the gate then refuses opening orders)."""
    if nlv is None or not nlv > 0:
        return None
    return min(filters_cfg.max_position_value_usd, filters_cfg.max_position_pct_nlv / 100 * nlv)


def order_rate_usage(filters_cfg: TradingFiltersConfig, in_window: int | None) -> dict[str, Any]:
    """The order-rate rule's window and how many orders it still admits (None: unknown)."""
    limit = filters_cfg.max_orders_per_window
    return {"limit": limit, "window_seconds": _num(filters_cfg.order_window_seconds), "in_window": in_window,
            "remaining": None if in_window is None else max(0, limit - in_window)}


def risk_limits(filters_cfg: TradingFiltersConfig, account: AccountSnapshot, open_orders: int | None,
                orders_in_window: int | None, halted_day: str | None = None) -> dict[str, Any]:
    """The risk gate's limits (``trading_filters.yaml``, as the running gate uses them) and today's usage of
    each: position size, daily loss, open orders, order rate; plus the lists and the trading-halt latch."""
    f = filters_cfg
    pnl = account.daily_pnl
    used = None if pnl is None else max(0.0, -pnl)
    return {
        "limits": {k: getattr(f, k) for k in type(f).__struct_fields__},
        "max_position_usd": _num(gate_max_position(f, account.net_liquidation)),
        "daily_loss": {"limit": _num(f.max_daily_loss_usd), "pnl": _num(pnl), "used": _num(used),
                       "remaining": None if used is None else _num(max(0.0, f.max_daily_loss_usd - used))},
        "open_orders": {"limit": f.max_open_orders, "open": open_orders,
                        "remaining": None if open_orders is None else max(0, f.max_open_orders - open_orders)},
        "order_rate": order_rate_usage(f, orders_in_window),
        "trading_halted_for": halted_day,
    }


def session_summary(
    sizing_cfg: PositionSizingConfig,
    filters_cfg: TradingFiltersConfig,
    account: AccountSnapshot,
    open_orders: Sequence[OrderSummary] | int,
    orders_in_window: int | None = None,
) -> dict[str, Any]:
    """What an agent needs at the start of a loop: the sizing settings, the largest position the risk gate
    lets it reach (``max_position_usd``; the sizer's own cap is ``sizing.max_usd``), the daily loss it may
    still take, how many more orders may be open and how many the order-rate window still admits.
    ``None`` means unknown."""
    nlv = account.net_liquidation
    max_position = _num(gate_max_position(filters_cfg, nlv))

    limit = filters_cfg.max_daily_loss_usd
    if account.daily_pnl is None:
        loss = {"limit": _num(limit), "pnl": None, "used": None, "remaining": None}
    else:
        used = max(0.0, -account.daily_pnl)
        loss = {"limit": _num(limit), "pnl": _num(account.daily_pnl), "used": _num(used),
                "remaining": _num(max(0.0, limit - used))}

    if isinstance(open_orders, int):
        n_open = open_orders
    else:
        n_open = sum(1 for o in open_orders if order_state(o.status, o.filled, o.quantity) in OPEN_STATES)
    orders = {"limit": filters_cfg.max_open_orders, "open": n_open,
              "remaining": max(0, filters_cfg.max_open_orders - n_open)}

    s = sizing_cfg
    return {
        "sizing": {
            "method": s.method, "base_usd": _num(s.base_position_usd), "risk": s.risk_multiplier,
            "min_usd": _num(s.min_position_usd), "max_usd": _num(s.max_position_usd),
            "max_pct_nlv": s.max_position_pct_nlv, "confidence_floor": s.confidence.floor,
            "atr_period": s.atr.period, "atr_target_pct": s.atr.target_atr_pct,
            "atr_adj": [s.atr.min_adjustment, s.atr.max_adjustment], "max_pct_adv": s.liquidity.max_pct_adv,
            "wide_spread_bps": s.liquidity.wide_spread_bps, "kelly_fraction": s.kelly.fraction,
        },
        "nlv": _num(nlv),
        "cash": _num(account.cash),
        "max_position_usd": max_position,
        "daily_loss": loss,
        "open_orders": orders,
        "order_rate": order_rate_usage(filters_cfg, orders_in_window),
        "max_order_quantity": _num(filters_cfg.max_order_quantity),
    }


SESSION_SIZING_KEYS = ("method", "base_usd", "risk", "max_usd")


def session_brief(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The default ``session`` view: the risk gate's limits and what is left of each (daily loss, open orders,
    order rate), the largest position the gate allows and the sizer's headline settings. ``summary`` is a
    :func:`session_summary`; the full one (every sizing knob, P&L used) is ``session --detail``."""
    loss = summary.get("daily_loss") or {}
    orders = summary.get("open_orders") or {}
    sizing = summary.get("sizing") or {}
    return {
        "nlv": summary.get("nlv"),
        "max_position_usd": summary.get("max_position_usd"),
        "daily_loss": {"limit": loss.get("limit"), "remaining": loss.get("remaining")},
        "open_orders": {"limit": orders.get("limit"), "remaining": orders.get("remaining")},
        "order_rate": summary.get("order_rate"),
        "max_order_quantity": summary.get("max_order_quantity"),
        "sizing": {k: sizing.get(k) for k in SESSION_SIZING_KEYS},
    }
