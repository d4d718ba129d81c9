"""The matching engine: IB order semantics against the simulated market's top of book.

- MKT buys at the ask / sells at the bid; LMT fills when marketable at the touch (never worse than the
  limit) and rests otherwise; STP triggers when the last trade reaches the stop (or the whole spread has
  crossed it) and then behaves as MKT, STP LMT as LMT; TRAIL / TRAIL LIMIT ratchet `trail_stop_price` by
  an amount (aux_price) or a percentage (trailing_percent) of the last price.
- Each evaluation fills at most the displayed size at the touch × `max_fill_fraction_of_size`, so large
  orders fill in several executions over successive `on_time` calls (partial fills).
- Brackets: orders placed with transmit=False are staged until a transmit=True order of the same group
  (the parent or one of its children) arrives; children are active only once the parent is filled; the
  children of one parent are one-cancels-the-other (a fill reduces/cancels the siblings), like IB.
- OCA groups: oca_type 1 cancels the other members on a fill; types 2/3 reduce their quantity.
- Orders respect market hours (`SimMarket.is_open`) unless outside_rth; DAY orders expire at the regular
  close when the market follows an exchange calendar.

Every public method returns the `SimEvent`s the gateway must turn into TWS messages. State (orders,
executions, commissions) persists to a JSON file so a restarted gateway keeps its open orders.
"""

from __future__ import annotations

import json
import math
import threading
import time
import zlib
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path

from trader.sim.account import SimAccount, _atomic_write_json
from trader.sim.combo_matching import ComboMatching, is_combo
from trader.sim.contracts import ContractUniverse
from trader.sim.market import SimMarket
from trader.sim.models import (
    API_CANCELLED,
    CANCELLED,
    FILLED,
    ORDER_TYPES,
    PENDING_SUBMIT,
    PRE_SUBMITTED,
    SUBMITTED,
    CommissionEvent,
    ExecutionEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    SimContract,
    SimEvent,
    SimOrder,
)

MAX_COMPLETED_ORDERS = 500
MAX_EXECUTIONS = 2000
_EPS = 1e-9


def _rejected(order: SimOrder, reason: str, code: int = 201) -> list[SimEvent]:
    return [OrderErrorEvent(order.order_id, order.client_id, code, f"Order rejected - reason:{reason}")]


def _on_tick(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6


def _round_tick(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 10)


class MatchingEngine(ComboMatching):
    """Orders of every client against one simulated market and account (combo orders: ComboMatching)."""

    def __init__(self, universe: ContractUniverse, market: SimMarket, account: SimAccount, *,
                 state_path: Path | None = None, max_fill_fraction_of_size: float = 1.0,
                 autosave_interval: float = 0.5, check_margin: bool = True) -> None:
        self.universe = universe
        self.market = market
        self.account = account
        self.state_path = Path(state_path) if state_path is not None else None
        self.max_fill_fraction_of_size = float(max_fill_fraction_of_size)
        self.autosave_interval = autosave_interval
        self.check_margin = check_margin
        self._lock = threading.RLock()
        self._orders: dict[tuple[int, int], SimOrder] = {}
        self._executions: list[ExecutionEvent] = []
        self._commissions: dict[str, CommissionEvent] = {}
        self._reject_queue: list[list] = []  # [orders still to let through, code, message]
        self._next_perm_id = 1_000_000_000 + int(market.clock.now().timestamp()) % 100_000_000
        self._exec_prefix = f"{zlib.crc32(account.account_id.encode()) & 0xFFFFFFFF:08x}"
        self._exec_seq = int(market.clock.now().timestamp())
        self._dirty = False
        self._last_save = 0.0
        self._evaluated: set[tuple[int, int]] = set()  # orders already evaluated in this call
        if self.state_path is not None and self.state_path.exists():
            self._load(json.loads(self.state_path.read_text()))

    @classmethod
    def restore(cls, universe: ContractUniverse, market: SimMarket, account: SimAccount, state_path: Path,
                **kwargs) -> MatchingEngine:
        """An engine with the orders and executions saved at `state_path` (empty if the file is missing)."""
        return cls(universe, market, account, state_path=state_path, **kwargs)

    # ------------------------------------------------------------------ public API
    def place(self, order: SimOrder) -> list[SimEvent]:
        """A new order, or a modification of a live one (same client_id and order_id)."""
        with self._lock:
            key = (order.client_id, order.order_id)
            self._evaluated.clear()
            if self._reject_queue:
                if self._reject_queue[0][0] > 0:
                    self._reject_queue[0][0] -= 1  # let this one through; reject a later one
                else:
                    _, code, message = self._reject_queue.pop(0)
                    return [OrderErrorEvent(order.order_id, order.client_id, code, message)]
            existing = self._orders.get(key)
            if existing is not None and existing.is_done:
                if existing.status == FILLED:
                    return [OrderErrorEvent(order.order_id, order.client_id, 104, "Can't modify a filled order.")]
                return _rejected(order, f"Order {order.order_id} is {existing.status} and cannot be modified.")
            if is_combo(order):
                error = self._validate_combo(order)
                if error:
                    return error
                events = self._modify(existing, order) if existing is not None else self._accept(order)
                self._mark_dirty()
                return events
            contract = self.universe.by_con_id(order.con_id)
            if contract is None:
                return [OrderErrorEvent(order.order_id, order.client_id, 200,
                                        "No security definition has been found for the request")]
            error = self._validate(order, contract, existing)
            if error:
                return error
            if existing is not None:
                events = self._modify(existing, order)
            else:
                events = self._accept(order)
            self._mark_dirty()
            return events

    def cancel(self, order_id: int, client_id: int) -> list[SimEvent]:
        """Cancel one order (and its bracket children): orderStatus Cancelled + error 202."""
        with self._lock:
            o = self._orders.get((client_id, order_id))
            if o is None:
                return [OrderErrorEvent(order_id, client_id, 10147,
                                        f"OrderId {order_id} that needs to be cancelled is not found.")]
            if o.is_done:
                return [OrderErrorEvent(order_id, client_id, 10148,
                                        f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                                        f"state: {o.status}.")]
            events = self._cancel(o, "")
            self._mark_dirty()
            return events

    def global_cancel(self) -> list[SimEvent]:
        """reqGlobalCancel: cancel every open order of every client."""
        with self._lock:
            events: list[SimEvent] = []
            for o in list(self._orders.values()):
                if not o.is_done:
                    events += self._cancel(o, "Global Cancel")
            self._mark_dirty()
            return events

    def on_time(self, now: datetime | None = None) -> list[SimEvent]:
        """Evaluate every live order against the current quote: triggers, trailing stops, fills, expiry."""
        now = now or self.market.clock.now()
        with self._lock:
            self._evaluated.clear()
            events: list[SimEvent] = []
            for o in list(self._orders.values()):
                if not o.is_done and o.status != PENDING_SUBMIT:
                    events += self._expire_if_due(o, now)
                    if not o.is_done:
                        events += self._evaluate(o, now)
            if events:
                self._mark_dirty()
            self._maybe_save()
            return events

    def open_orders(self) -> list[SimOrder]:
        """Snapshots of every order that is not done (including staged, untransmitted ones)."""
        with self._lock:
            return [o.snapshot() for o in self._orders.values() if not o.is_done]

    def completed_orders(self) -> list[SimOrder]:
        """Snapshots of filled/cancelled orders, oldest first."""
        with self._lock:
            done = [o for o in self._orders.values() if o.is_done]
            return [o.snapshot() for o in sorted(done, key=lambda o: (o.completed_time or o.created, o.perm_id))]

    def order(self, order_id: int, client_id: int) -> SimOrder | None:
        """A snapshot of one order, or None."""
        with self._lock:
            o = self._orders.get((client_id, order_id))
            return o.snapshot() if o is not None else None

    def executions(self) -> list[ExecutionEvent]:
        """Every execution (corrections replace the execution they correct), oldest first."""
        with self._lock:
            return list(self._executions)

    def commission_of(self, exec_id: str) -> CommissionEvent | None:
        """The commission report of one execution."""
        return self._commissions.get(exec_id)

    def reject_next(self, code: int, message: str, skip: int = 0) -> None:
        """Fault hook: the next place() is rejected with this IB error (after letting ``skip`` orders through)."""
        with self._lock:
            self._reject_queue.append([max(int(skip), 0), int(code), message])

    def correct_execution(self, exec_id: str) -> list[SimEvent]:
        """Fault hook: re-issue an execution as an IB correction (…01 → …02); positions are unchanged."""
        with self._lock:
            for i, ex in enumerate(self._executions):
                if ex.exec_id == exec_id:
                    stem, _, n = ex.exec_id.rpartition(".")
                    new_id = f"{stem}.{int(n) + 1:02d}"
                    fixed = ExecutionEvent(**{**asdict(ex), "exec_id": new_id})
                    self._executions[i] = fixed
                    old = self._commissions.get(exec_id)
                    comm = CommissionEvent(new_id, old.commission if old else 0.0,
                                           old.currency if old else "USD", old.realized_pnl if old else None)
                    self._commissions[new_id] = comm
                    self._mark_dirty()
                    return [fixed, comm]
            raise KeyError(f"unknown execution {exec_id}")

    # ------------------------------------------------------------------ persistence
    def save(self) -> None:
        """Write orders, executions and commissions atomically (no-op without a state_path)."""
        if self.state_path is None:
            return
        with self._lock:
            data = {
                "version": 1,
                "next_perm_id": self._next_perm_id,
                "exec_seq": self._exec_seq,
                "exec_prefix": self._exec_prefix,
                "orders": [_order_to_json(o) for o in self._orders.values()],
                "executions": [{**asdict(e), "time": e.time.isoformat()} for e in self._executions],
                "commissions": [asdict(c) for c in self._commissions.values()],
            }
            self._dirty = False
            self._last_save = time.monotonic()
        _atomic_write_json(self.state_path, data)

    def _load(self, data: dict) -> None:
        self._next_perm_id = int(data.get("next_perm_id", self._next_perm_id))
        self._exec_seq = int(data.get("exec_seq", self._exec_seq))
        self._exec_prefix = data.get("exec_prefix", self._exec_prefix)
        for od in data.get("orders", []):
            o = _order_from_json(od)
            self._orders[(o.client_id, o.order_id)] = o
        self._executions = [
            ExecutionEvent(**{**e, "time": datetime.fromisoformat(e["time"])}) for e in data.get("executions", [])
        ]
        self._commissions = {c["exec_id"]: CommissionEvent(**c) for c in data.get("commissions", [])}

    def _mark_dirty(self) -> None:
        self._dirty = True
        self._maybe_save()

    def _maybe_save(self) -> None:
        if self._dirty and time.monotonic() - self._last_save >= self.autosave_interval:
            self.save()

    # ------------------------------------------------------------------ placing
    def _validate(self, o: SimOrder, c: SimContract, existing: SimOrder | None) -> list[SimEvent]:
        if c.sec_type == "IND":
            return _rejected(o, "Index contracts are not tradable.")
        if o.action not in ("BUY", "SELL"):
            return _rejected(o, f"Invalid action {o.action!r}.")
        if o.order_type not in ORDER_TYPES:
            return _rejected(o, f"Unsupported order type {o.order_type!r}.", 387)
        if not o.total_quantity or o.total_quantity <= 0 or math.isnan(o.total_quantity):
            return _rejected(o, "The order size cannot be zero.")
        if existing is not None and o.total_quantity < existing.filled - _EPS:
            return _rejected(o, "The order size cannot be below the filled quantity.")
        needs_lmt = o.order_type in ("LMT", "STP LMT")
        if needs_lmt and (o.lmt_price is None or o.lmt_price <= 0):
            return _rejected(o, "A limit price is required.")
        if o.order_type in ("STP", "STP LMT") and (o.aux_price is None or o.aux_price <= 0):
            return _rejected(o, "A stop price is required.")
        if o.order_type in ("TRAIL", "TRAIL LIMIT"):
            has_amount = o.aux_price is not None and o.aux_price > 0
            has_pct = o.trailing_percent is not None and o.trailing_percent > 0
            if not (has_amount or has_pct):
                return _rejected(o, "A trailing amount or percent is required.")
        for p in (o.lmt_price if needs_lmt else None, o.aux_price if o.order_type in ("STP", "STP LMT") else None):
            if p is not None and not _on_tick(p, c.min_tick):
                return [OrderErrorEvent(o.order_id, o.client_id, 110,
                                        "The price does not conform to the minimum price variation for this "
                                        "contract.")]
        if o.parent_id and (o.client_id, o.parent_id) not in self._orders:
            return _rejected(o, f"Parent order {o.parent_id} is not found.")
        if self.check_margin and existing is None and not o.parent_id:
            return self._margin_check(o, c)
        return []

    def _margin_check(self, o: SimOrder, c: SimContract) -> list[SimEvent]:
        """Reject orders whose initial margin exceeds the available funds (Reg-T, like IB's precheck)."""
        pos, _ = self.account.position(c.con_id)
        signed = o.total_quantity if o.action == "BUY" else -o.total_quantity
        if abs(pos + signed) <= abs(pos):
            return []  # reduces exposure
        price = o.lmt_price or self.market.quote(c.con_id).last
        rate = self.account.fx_rate(c.currency, self.market) if c.currency != self.account.base_currency else 1.0
        notional = abs(signed) * price * c.multiplier_value * rate
        if c.sec_type == "STK":
            need = notional * 0.5
        elif c.sec_type == "FUT":
            from trader.sim.account import DEFAULT_FUTURES_MARGIN, FUTURES_MARGIN

            need = abs(signed) * FUTURES_MARGIN.get(c.symbol, DEFAULT_FUTURES_MARGIN)[0] * rate
        elif c.sec_type == "CASH":
            need = notional * 0.03
        else:
            need = notional if signed > 0 else notional * 0.2
        available = float(self.account.values(self.market)["AvailableFunds"][0])
        if need > available:
            return _rejected(o, f"YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR "
                                f"AVAILABLE FUNDS [{available:.2f} {self.account.base_currency}] MUST EXCEED THE "
                                f"INITIAL MARGIN [{need:.2f} {self.account.base_currency}]")
        return []

    def _accept(self, order: SimOrder) -> list[SimEvent]:
        o = order.snapshot()  # the engine owns its copy
        now = self.market.clock.now()
        if not o.perm_id:
            o.perm_id = self._next_perm_id
            self._next_perm_id += 1
        o.filled, o.avg_fill_price, o.last_fill_price, o.commission = 0.0, 0.0, 0.0, 0.0
        o.triggered, o.why_held, o.created, o.completed_time, o.completed_status = False, "", now, None, ""
        o.status = PENDING_SUBMIT
        self._orders[(o.client_id, o.order_id)] = o
        if not o.transmit:
            return []  # staged: held until a transmit=True order of its group arrives
        return self._transmit_group(o, now)

    def _transmit_group(self, o: SimOrder, now: datetime) -> list[SimEvent]:
        root_id = o.parent_id or o.order_id
        group = []
        root = self._orders.get((o.client_id, root_id))
        if root is not None and root.status == PENDING_SUBMIT:
            group.append(root)
        group += [x for x in self._orders.values()
                  if x.client_id == o.client_id and x.parent_id == root_id and x.status == PENDING_SUBMIT
                  and x is not o]
        if o not in group:
            group.append(o)
        events: list[SimEvent] = []
        for x in group:
            x.transmit = True
            x.status = PRE_SUBMITTED if self._held(x, now) else SUBMITTED
            if x.status == SUBMITTED and x.order_type in ("TRAIL", "TRAIL LIMIT") and not x.trail_stop_price:
                # IB's first openOrder already carries the initial stop (a held child sets it when it works)
                self._ratchet(x, self.universe.by_con_id(x.con_id), self.market.quote(x.con_id, now).last)
            events += [OpenOrderEvent(x.snapshot()), OrderStatusEvent(x.snapshot())]
        for x in group:
            if not x.is_done:
                events += self._evaluate(x, now)
        return events

    def _held(self, o: SimOrder, now: datetime) -> bool:
        """True when the order may not work yet (child of an unfilled parent, or market closed)."""
        if o.parent_id:
            parent = self._orders.get((o.client_id, o.parent_id))
            if parent is not None and parent.status != FILLED:
                return True
        if is_combo(o):
            return not self._combo_open(o, now)
        return not self.market.is_open(o.con_id, now, o.outside_rth)

    def _modify(self, o: SimOrder, new: SimOrder) -> list[SimEvent]:
        for name in ("total_quantity", "lmt_price", "aux_price", "trailing_percent", "trail_stop_price",
                     "lmt_price_offset", "tif", "outside_rth", "order_ref", "oca_group", "oca_type", "account"):
            setattr(o, name, getattr(new, name))
        if o.order_type != new.order_type:
            o.order_type, o.triggered = new.order_type, False
        if o.status == PENDING_SUBMIT:
            if new.transmit:
                return self._transmit_group(o, self.market.clock.now())
            return []
        now = self.market.clock.now()
        events: list[SimEvent] = [OpenOrderEvent(o.snapshot()), OrderStatusEvent(o.snapshot())]
        return events + self._evaluate(o, now)

    # ------------------------------------------------------------------ working orders
    def _evaluate(self, o: SimOrder, now: datetime) -> list[SimEvent]:
        events: list[SimEvent] = []
        if o.is_done or o.status == PENDING_SUBMIT:
            return events
        if is_combo(o):
            return self._evaluate_combo(o, now)
        if o.parent_id:
            parent = self._orders.get((o.client_id, o.parent_id))
            if parent is not None and parent.status != FILLED:
                return events
        if self.universe.by_con_id(o.con_id) is None:
            return self._cancel(o, "Contract is no longer available")
        if not self.market.is_open(o.con_id, now, o.outside_rth):
            return events
        key = (o.client_id, o.order_id)
        if key in self._evaluated:
            return events  # at most one look at the book per order per call (fill size limits)
        self._evaluated.add(key)
        if o.status == PRE_SUBMITTED:
            o.status = SUBMITTED
            events.append(OrderStatusEvent(o.snapshot()))
        c = self.universe.by_con_id(o.con_id)
        q = self.market.quote(o.con_id, now)
        buy = o.action == "BUY"
        typ = o.order_type
        if typ in ("TRAIL", "TRAIL LIMIT") and not o.triggered:
            self._ratchet(o, c, q.last)
            stop = o.trail_stop_price
            if (buy and (q.last >= stop or q.bid >= stop)) or (not buy and (q.last <= stop or q.ask <= stop)):
                o.triggered = True
                if typ == "TRAIL LIMIT":
                    if o.lmt_price_offset is not None:
                        off = o.lmt_price_offset
                        o.lmt_price = _round_tick(stop + off if buy else stop - off, c.min_tick)
                    elif o.lmt_price is None:
                        o.lmt_price = stop
        elif typ in ("STP", "STP LMT") and not o.triggered:
            stop = o.aux_price
            if (buy and (q.last >= stop or q.bid >= stop)) or (not buy and (q.last <= stop or q.ask <= stop)):
                o.triggered = True
        if typ in ("STP", "STP LMT", "TRAIL", "TRAIL LIMIT") and not o.triggered:
            return events
        limit = o.lmt_price if typ in ("LMT", "STP LMT", "TRAIL LIMIT") else None
        touch, size = (q.ask, q.ask_size) if buy else (q.bid, q.bid_size)
        if touch <= 0 or size <= 0:
            return events
        if limit is not None and ((buy and touch > limit + _EPS) or (not buy and touch < limit - _EPS)):
            return events
        available = math.floor(size * self.max_fill_fraction_of_size + _EPS)
        qty = min(o.remaining, float(max(available, 1)))
        if qty <= _EPS:
            return events
        return events + self._fill(o, c, qty, touch, now)

    def _ratchet(self, o: SimOrder, c: SimContract, last: float) -> None:
        """Move a trailing stop in the order's favour only."""
        buy = o.action == "BUY"
        if o.trailing_percent is not None and o.trailing_percent > 0:
            offset = last * o.trailing_percent / 100.0
        else:
            offset = o.aux_price or 0.0
        candidate = _round_tick(last + offset if buy else last - offset, c.min_tick)
        if o.trail_stop_price is None or o.trail_stop_price <= 0:
            o.trail_stop_price = candidate
        elif buy:
            o.trail_stop_price = min(o.trail_stop_price, candidate)
        else:
            o.trail_stop_price = max(o.trail_stop_price, candidate)

    def _fill(self, o: SimOrder, c: SimContract, qty: float, price: float, now: datetime) -> list[SimEvent]:
        commission = self.account.commission_for(c, qty, price)
        pos_before, _ = self.account.position(c.con_id)
        signed = qty if o.action == "BUY" else -qty
        closing = pos_before != 0 and (pos_before > 0) != (signed > 0)
        realized = self.account.apply_fill(c, o.action, qty, price, commission, at=now)
        o.avg_fill_price = (o.avg_fill_price * o.filled + price * qty) / (o.filled + qty)
        o.filled += qty
        o.last_fill_price = price
        o.commission += commission
        if o.remaining <= _EPS:
            o.status = FILLED
            o.completed_time = now
            o.completed_status = f"Filled Size: {o.filled:g}"
        else:
            o.status = SUBMITTED
        self._exec_seq += 1
        exec_id = f"{self._exec_prefix}.{self._exec_seq & 0xFFFFFFFF:08x}.01.01"
        ex = ExecutionEvent(
            order_id=o.order_id, client_id=o.client_id, perm_id=o.perm_id, con_id=c.con_id, exec_id=exec_id,
            time=now, account=o.account or self.account.account_id,
            exchange=c.primary_exchange if c.exchange == "SMART" and c.primary_exchange else c.exchange,
            side="BOT" if o.action == "BUY" else "SLD", shares=qty, price=price, cum_qty=o.filled,
            avg_price=o.avg_fill_price, order_ref=o.order_ref,
        )
        comm = CommissionEvent(exec_id, commission, c.currency, round(realized, 6) if closing else None)
        self._executions.append(ex)
        self._commissions[exec_id] = comm
        events: list[SimEvent] = [ex, OrderStatusEvent(o.snapshot()), comm]
        events += self._after_fill(o, qty, now)
        self._prune()
        return events

    def _after_fill(self, o: SimOrder, qty: float, now: datetime) -> list[SimEvent]:
        events: list[SimEvent] = []
        # bracket siblings are one-cancels-the-other (reduce on partial fills)
        if o.parent_id:
            for s in self._siblings(o):
                events += self._reduce(s, qty, "OCA group")
        if o.oca_group:
            for s in list(self._orders.values()):
                if s is o or s.is_done or s.oca_group != o.oca_group or s.client_id != o.client_id:
                    continue
                if o.parent_id and s.parent_id == o.parent_id:
                    continue  # already handled as a bracket sibling
                if o.oca_type == 1:
                    events += self._cancel(s, "OCA group")
                else:
                    events += self._reduce(s, qty, "OCA group")
        if o.status == FILLED:  # children become active
            for child in [x for x in self._orders.values()
                          if x.client_id == o.client_id and x.parent_id == o.order_id and not x.is_done
                          and x.status != PENDING_SUBMIT]:
                events += self._evaluate(child, now)
        return events

    def _siblings(self, o: SimOrder) -> list[SimOrder]:
        return [x for x in self._orders.values()
                if x is not o and x.client_id == o.client_id and x.parent_id == o.parent_id and not x.is_done]

    def _reduce(self, o: SimOrder, qty: float, reason: str) -> list[SimEvent]:
        o.total_quantity = max(o.filled, o.total_quantity - qty)
        if o.remaining <= _EPS:
            return self._cancel(o, reason)
        return [OpenOrderEvent(o.snapshot()), OrderStatusEvent(o.snapshot())]

    def _cancel(self, o: SimOrder, reason: str, status: str = CANCELLED) -> list[SimEvent]:
        events: list[SimEvent] = []
        o.status = status if status in (CANCELLED, API_CANCELLED) else CANCELLED
        o.completed_time = self.market.clock.now()
        o.completed_status = f"Cancelled {reason}".strip()
        events.append(OrderStatusEvent(o.snapshot()))
        events.append(OrderErrorEvent(o.order_id, o.client_id, 202, f"Order Canceled - reason:{reason}"))
        for child in [x for x in self._orders.values()
                      if x.client_id == o.client_id and x.parent_id == o.order_id and not x.is_done]:
            events += self._cancel(child, "Parent order cancelled")
        return events

    def _expire_if_due(self, o: SimOrder, now: datetime) -> list[SimEvent]:
        """DAY orders end at the regular close (only when the market follows an exchange calendar)."""
        if o.tif != "DAY" or self.market.calendar.always_open or o.created is None:
            return []
        c = self.universe.by_con_id(o.con_id)
        if c is None:
            return []
        sess = self.market._sessions(c)
        ts = now.timestamp()
        i = sess.last_started(int(ts), extended=False)
        if i >= 0 and o.created.timestamp() < sess.close[i] <= ts:
            return self._cancel(o, "DAY order expired")
        return []

    def _prune(self) -> None:
        done = [k for k, o in self._orders.items() if o.is_done]
        for k in done[: max(0, len(done) - MAX_COMPLETED_ORDERS)]:
            del self._orders[k]
        if len(self._executions) > MAX_EXECUTIONS:
            for ex in self._executions[: len(self._executions) - MAX_EXECUTIONS]:
                self._commissions.pop(ex.exec_id, None)
            self._executions = self._executions[-MAX_EXECUTIONS:]


def _order_to_json(o: SimOrder) -> dict:
    d = asdict(o)
    for k in ("created", "completed_time"):
        if d[k] is not None:
            d[k] = d[k].isoformat()
    return d


_ORDER_FIELDS = {f.name for f in fields(SimOrder)}


def _order_from_json(d: dict) -> SimOrder:
    d = {k: v for k, v in d.items() if k in _ORDER_FIELDS}
    for k in ("created", "completed_time"):
        if d.get(k):
            d[k] = datetime.fromisoformat(d[k])
    return SimOrder(**d)
