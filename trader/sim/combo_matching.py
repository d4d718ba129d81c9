"""Combo (BAG) orders in the matching engine: several option legs, one quantity and one net price, filled as one.

A BAG order is a ``SimOrder`` whose ``con_id`` is IB's generic combo conId (``BAG_CON_ID``) and whose
``extra["combo"]`` holds ``{"symbol", "currency", "exchange", "legs": [[conId, ratio, action], ...]}`` — the legs
as written for buying the combo (a SELL order reverses every leg, as IB does). Mixed into ``MatchingEngine``.

Matching: the combo is marketable when its net price at the touch — bought legs at the ask, sold legs at the bid
(for a SELL order: the reverse) — is at or better than the net limit (a BUY pays at most the limit, a SELL
receives at least it). A fill trades every leg at its touch price in ``quantity × ratio`` (the net of the leg
prices is the combo's fill price), limited by the smallest displayed size among the legs. Each fill produces
one execution per leg (positions and commissions per leg) and one execution of the BAG itself at the net price
(``ib_async``'s ``Trade.filled()`` counts only that one for a combo), like IB.
"""

from __future__ import annotations

import math
from datetime import datetime

from trader.sim.models import (
    FILLED,
    SUBMITTED,
    CommissionEvent,
    ExecutionEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    SimContract,
    SimEvent,
    SimOrder,
)

BAG_CON_ID = 28812380  # the conId IB gives combo (BAG) contracts
MAX_COMBO_LEGS = 4
_EPS = 1e-9


def is_combo(o: SimOrder) -> bool:
    """True for a BAG order."""
    return bool(o.extra.get("combo"))


def _reject(o: SimOrder, reason: str, code: int = 201) -> list[SimEvent]:
    return [OrderErrorEvent(o.order_id, o.client_id, code, f"Order rejected - reason:{reason}")]


class ComboMatching:
    """BAG order validation, evaluation and fills (mixin for MatchingEngine; uses its state and helpers)."""

    def combo_legs(self, o: SimOrder) -> list[tuple[SimContract | None, int, str]]:
        """(contract, ratio, action as traded by this order) per leg."""
        flip = o.action == "SELL"
        out = []
        for con_id, ratio, action in o.extra["combo"]["legs"]:
            if flip:
                action = "SELL" if action == "BUY" else "BUY"
            out.append((self.universe.by_con_id(int(con_id)), int(ratio), action))
        return out

    def combo_what_if(self, o: SimOrder) -> tuple[list[SimEvent], float, float]:
        """A whatIf of a BAG order, nothing placed: (the errors placing it would raise before its margin check,
        its initial margin as :meth:`combo_margin` — what that check compares with the available funds — and
        its commission)."""
        with self._lock:
            errors = self._validate_combo(o, margin=False)
            if errors:
                return errors, 0.0, 0.0
            return [], self.combo_margin(o) or 0.0, self.combo_commission(o)

    def _validate_combo(self, o: SimOrder, *, margin: bool = True) -> list[SimEvent]:
        legs = o.extra["combo"].get("legs") or []
        if not 2 <= len(legs) <= MAX_COMBO_LEGS:
            return _reject(o, f"A combo needs 2 to {MAX_COMBO_LEGS} legs, got {len(legs)}.")
        if o.action not in ("BUY", "SELL"):
            return _reject(o, f"Invalid action {o.action!r}.")
        if o.order_type not in ("LMT", "MKT"):
            return _reject(o, f"Combo orders are LMT or MKT, not {o.order_type!r}.", 387)
        if not o.total_quantity or o.total_quantity <= 0 or math.isnan(o.total_quantity):
            return _reject(o, "The order size cannot be zero.")
        if o.order_type == "LMT" and (o.lmt_price is None or not math.isfinite(o.lmt_price)):
            return _reject(o, "A limit price is required.")
        if o.parent_id:
            return _reject(o, "Combo orders cannot be bracket children in the simulator.")
        symbol = o.extra["combo"].get("symbol", "")
        for c, ratio, action in self.combo_legs(o):
            if c is None:
                return [OrderErrorEvent(o.order_id, o.client_id, 200,
                                        "No security definition has been found for the request")]
            if c.sec_type not in ("OPT", "FOP", "STK", "FUT") or c.symbol != symbol:
                return _reject(o, f"Combo leg {c.local_symbol or c.con_id} is not a leg of a {symbol} combo.")
            if ratio < 1 or action not in ("BUY", "SELL"):
                return _reject(o, f"Invalid combo leg ratio/action {ratio}/{action}.")
        if o.order_type == "LMT" and not _on_tick(o.lmt_price, 0.01):
            return [OrderErrorEvent(o.order_id, o.client_id, 110,
                                    "The price does not conform to the minimum price variation for this contract.")]
        if margin and self.check_margin:
            return self._combo_margin_check(o)
        return []

    def combo_margin(self, o: SimOrder) -> float | None:
        """The initial margin of a BAG order: its defined max loss per unit × quantity (IB's strategy-based
        margin; a calendar or diagonal by trader.trading.combos' first-expiry bound); an undefined-risk combo
        needs 20 % of its short calls' strike value. None when a leg is not an option (not modelled)."""
        from trader.trading.combos import ComboLeg, max_loss
        from trader.trading.models import Action

        written = [(self.universe.by_con_id(int(i)), int(r), a) for i, r, a in o.extra["combo"]["legs"]]
        legs = [ComboLeg(con_id=c.con_id, action=Action(a), ratio=r, strike=c.strike, right=c.right,
                         expiry=c.last_trade_date[:8], multiplier=c.multiplier_value)
                for c, r, a in written if c is not None and c.sec_type in ("OPT", "FOP")]
        if len(legs) != len(written):
            return None
        per_unit = max_loss(legs, Action(o.action), o.lmt_price if o.order_type == "LMT" else 0.0)
        if not math.isfinite(per_unit):  # short calls as traded: 20 % of their strike value
            per_unit = 0.2 * sum(c.strike * c.multiplier_value * r for c, r, a in self.combo_legs(o)
                                 if a == "SELL" and c.right == "C")
        return per_unit * o.total_quantity

    def combo_commission(self, o: SimOrder, now: datetime | None = None) -> float:
        """What filling the whole BAG order now would cost in commissions: each leg at its touch price."""
        total = 0.0
        for c, ratio, action in self.combo_legs(o):
            q = self.market.quote(c.con_id, now)
            price = (q.ask if action == "BUY" else q.bid) or q.last
            total += self.account.commission_for(c, o.total_quantity * ratio, price)
        return total

    def _combo_margin_check(self, o: SimOrder) -> list[SimEvent]:
        """Rejected (201) when :meth:`combo_margin` is above the available funds, like single orders."""
        need = self.combo_margin(o)
        if need is None:
            return []  # stock or future legs: not modelled, accepted
        available = float(self.account.values(self.market)["AvailableFunds"][0])
        if need > available:
            return _reject(o, f"YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR AVAILABLE "
                              f"FUNDS [{available:.2f}] MUST EXCEED THE INITIAL MARGIN [{need:.2f}]")
        return []

    def _combo_open(self, o: SimOrder, now: datetime) -> bool:
        return all(c is not None and self.market.is_open(c.con_id, now, o.outside_rth)
                   for c, _r, _a in self.combo_legs(o))

    def _evaluate_combo(self, o: SimOrder, now: datetime) -> list[SimEvent]:
        events: list[SimEvent] = []
        legs = self.combo_legs(o)
        if any(c is None for c, _r, _a in legs):
            return self._cancel(o, "A combo leg is no longer available")
        if not self._combo_open(o, now):
            return events
        key = (o.client_id, o.order_id)
        if key in self._evaluated:
            return events
        self._evaluated.add(key)
        if o.status != SUBMITTED:
            o.status = SUBMITTED
            events.append(OrderStatusEvent(o.snapshot()))
        prices, sizes = [], []
        for c, ratio, action in legs:
            q = self.market.quote(c.con_id, now)
            touch, size = (q.ask, q.ask_size) if action == "BUY" else (q.bid, q.bid_size)
            if touch <= 0 or size <= 0:
                return events
            prices.append(touch)
            sizes.append(size / ratio)
        # what the order pays per combo unit (BUY) or receives (SELL), from the legs it trades
        paid = math.fsum((1 if a == "BUY" else -1) * r * p for (_c, r, a), p in zip(legs, prices, strict=True))
        net = round(paid if o.action == "BUY" else -paid, 10)
        if o.order_type == "LMT" and ((o.action == "BUY" and net > o.lmt_price + _EPS)
                                      or (o.action == "SELL" and net < o.lmt_price - _EPS)):
            return events
        available = math.floor(min(sizes) * self.max_fill_fraction_of_size + _EPS)
        qty = min(o.remaining, float(max(available, 1)))
        return events + self._fill_combo(o, legs, prices, qty, net, now)

    def _fill_combo(self, o: SimOrder, legs: list, prices: list[float], qty: float, net: float,
                    now: datetime) -> list[SimEvent]:
        execs: list[SimEvent] = []
        comms: list[SimEvent] = []
        o.avg_fill_price = (o.avg_fill_price * o.filled + net * qty) / (o.filled + qty)
        o.filled += qty
        o.last_fill_price = net
        for (c, ratio, action), price in zip(legs, prices, strict=True):
            shares = qty * ratio
            commission = self.account.commission_for(c, shares, price)
            pos_before, _ = self.account.position(c.con_id)
            closing = pos_before != 0 and (pos_before > 0) != (action == "BUY")
            realized = self.account.apply_fill(c, action, shares, price, commission, at=now)
            o.commission += commission
            ex = self._combo_execution(o, c.con_id, action, shares, price, now,
                                       c.primary_exchange if c.exchange == "SMART" and c.primary_exchange
                                       else c.exchange)
            execs.append(ex)
            comms.append(CommissionEvent(ex.exec_id, commission, c.currency, round(realized, 6) if closing else None))
            self._commissions[ex.exec_id] = comms[-1]
        execs.append(self._combo_execution(o, BAG_CON_ID, o.action, qty, net, now,
                                           o.extra["combo"].get("exchange") or "SMART"))
        if o.remaining <= _EPS:
            o.status = FILLED
            o.completed_time = now
            o.completed_status = f"Filled Size: {o.filled:g}"
        self._executions += [e for e in execs if isinstance(e, ExecutionEvent)]
        self._prune()
        return [*execs, OrderStatusEvent(o.snapshot()), *comms]

    def _combo_execution(self, o: SimOrder, con_id: int, action: str, shares: float, price: float,
                         now: datetime, exchange: str) -> ExecutionEvent:
        self._exec_seq += 1
        exec_id = f"{self._exec_prefix}.{self._exec_seq & 0xFFFFFFFF:08x}.01.01"
        return ExecutionEvent(
            order_id=o.order_id, client_id=o.client_id, perm_id=o.perm_id, con_id=con_id, exec_id=exec_id,
            time=now, account=o.account or self.account.account_id, exchange=exchange,
            side="BOT" if action == "BUY" else "SLD", shares=shares, price=price,
            cum_qty=o.filled if con_id == BAG_CON_ID else shares, avg_price=o.avg_fill_price
            if con_id == BAG_CON_ID else price, order_ref=o.order_ref)


def _on_tick(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6
