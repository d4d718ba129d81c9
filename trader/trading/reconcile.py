"""Order reconciliation by ``orderRef``: after a start or a reconnect, make MMR's records agree with the broker.

Every broker order MMR sends carries ``orderRef`` = the correlation id of its request (the client's request id
for buy/sell/close; ``proposal-<id>`` for an approved proposal; ``<request id>.<n>`` for resize legs). Given
the broker's orders (open and completed) and executions, `OrderReconciler.run`:

1. settles order intents left open by a crash: found at the broker → ``done`` (recovered, with the order
   ids); never submitted → ``refused`` ("interrupted before submission"); submitted but unknown to the broker
   → ``refused`` ("not found at the broker; nothing executed");
2. settles APPROVED proposals the same way (`ProposalPipeline.settle`);
3. records ``order_placed`` (recovered) for our orders whose placement record was lost, and
   ``order_adopted`` for broker orders MMR has no record of at all (placed elsewhere, or lost) — each once:
   a later reconciliation finds the earlier record and adds nothing.

Nothing is ever re-submitted. Blocking store work: run it in the order-records writer thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from trader.data.store import utc_now

log = logging.getLogger(__name__)

__all__ = ["BrokerOrder", "OrderReconciler", "refs_to_order_ids"]

# How far back the audit trail is searched for an order's earlier records (a real IB account reports the
# day's executions and the recent completed orders).
LOOKBACK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One order as the broker reports it (open or completed), or an execution's order."""

    order_id: int
    perm_id: int
    order_ref: str
    symbol: str = ""
    action: str = ""
    quantity: float = 0.0
    status: str = ""
    filled: float = 0.0

    @property
    def key(self) -> str:
        """Stable identity across reconnects: the permId when known, else the order id."""
        return f"perm:{self.perm_id}" if self.perm_id else f"id:{self.order_id}"


def refs_to_order_ids(orders: Iterable[BrokerOrder]) -> dict[str, list[int]]:
    """orderRef → the broker order ids carrying it (sorted, unique)."""
    out: dict[str, set[int]] = {}
    for o in orders:
        if o.order_ref and o.order_id:  # completed orders come without an id (0); their executions carry it
            out.setdefault(o.order_ref, set()).add(int(o.order_id))
    return {ref: sorted(ids) for ref, ids in out.items()}


class EventReader(Protocol):
    def read(self, *, kind: str | None = None, correlation_id: str | None = None, since: Any = None,
             limit: int | None = None) -> list[Any]: ...


class OrderReconciler:
    """Settles open intents and approved proposals and records lost/unknown broker orders (module doc)."""

    def __init__(self, intents: Any, settle_proposals: Callable[[Callable[[str], list[int]]], list[dict]],
                 events: EventReader, record: Callable[..., Any]) -> None:
        """``intents``: an `IntentStore`; ``settle_proposals``: `ProposalPipeline.settle`; ``record(kind,
        payload, correlation_id=…)`` appends to the audit trail (durably, in order)."""
        self.intents = intents
        self._known: dict[str, set[str | None]] = {}
        self.settle_proposals = settle_proposals
        self.events = events
        self.record = record

    def _has(self, kind: str, cid: str) -> bool:
        """Whether the audit trail holds a ``kind`` event for ``cid`` (from the run's preloaded sets)."""
        known = self._known.get(kind)
        if known is None:  # one query per kind per run, not one per order
            since = utc_now() - LOOKBACK
            known = {e.correlation_id for e in self.events.read(kind=kind, since=since)}
            self._known[kind] = known
        return cid in known

    def run(self, orders: list[BrokerOrder], *, busy: set[str] = frozenset()) -> dict[str, Any]:
        """Reconcile against ``orders`` (every open/completed order and execution the broker reported);
        ``busy``: request ids still running in this process (left alone). Returns a summary."""
        by_ref = refs_to_order_ids(orders)
        self._known: dict[str, set[str | None]] = {}

        def ids_for(ref: str) -> list[int]:
            legs = [i for r, ids in by_ref.items() if r == ref or r.startswith(ref + ".") for i in ids]
            return sorted(set(legs))

        summary: dict[str, Any] = {"intents_settled": [], "proposals_settled": [], "placed_recovered": [],
                                   "adopted": []}
        proposals = self.settle_proposals(ids_for)
        summary["proposals_settled"] = [p["id"] for p in proposals]
        by_proposal = {p["id"]: p for p in proposals}
        for intent in self.intents.open_intents():
            if intent.request_id in busy:
                continue
            summary["intents_settled"].append(self._settle_intent(intent, ids_for, by_proposal))
        summary["placed_recovered"] = self._recover_placements(orders, ids_for)
        summary["adopted"] = self._adopt_unknown(orders)
        return summary

    def _settle_intent(self, intent: Any, ids_for: Callable[[str], list[int]],
                       proposals: dict[int, dict]) -> dict[str, Any]:
        ref = intent.order_ref or intent.request_id
        ids = ids_for(ref)
        if intent.kind == "approve" and intent.proposal_id in proposals:
            p = proposals[intent.proposal_id]
            if p["state"] == "EXECUTED":
                state, result, error = "done", {**p, "recovered": True}, None
            else:
                state, result, error = "refused", None, {"type": "ProposalFailed", "message": p["state_reason"],
                                                         "args": [p["state_reason"]]}
        elif ids:
            state, result, error = "done", {"recovered": True, "order_ids": ids, "order_ref": ref}, None
        elif intent.kind in ("cancel", "cancel_all"):
            state, result, error = "done", {"recovered": True, "note": "interrupted by a restart; see `mmr orders`"}, None
        elif not self._has("order_submitted", ref):
            msg = "interrupted before submission (nothing was sent)"
            state, result, error = "refused", None, {"type": "Interrupted", "message": msg, "args": [msg]}
        else:
            msg = "submitted but not found at the broker after a restart (nothing executed)"
            state, result, error = "refused", None, {"type": "NotAtBroker", "message": msg, "args": [msg]}
        self.intents.finish(intent.request_id, state, result=result, error=error, order_ids=ids, only_open=True)
        self.record("intent_recovered", {"request_id": intent.request_id, "kind": intent.kind, "state": state,
                                         "order_ids": ids}, correlation_id=ref)
        log.warning("settled request %s (%s) after restart: %s %s", intent.request_id, intent.kind, state, ids)
        return {"request_id": intent.request_id, "state": state, "order_ids": ids}

    def _recover_placements(self, orders: list[BrokerOrder], ids_for: Callable[[str], list[int]]) -> list[str]:
        """``order_placed`` (recovered) for each of our refs that reached the broker but lost its record."""
        done = []
        for ref in sorted({o.order_ref for o in orders if o.order_ref}):
            if not self._has("order_submitted", ref) or self._has("order_placed", ref):
                continue
            mine = [o for o in orders if o.order_ref == ref]
            self.record("order_placed", {"order_ids": ids_for(ref), "perm_ids": sorted({o.perm_id for o in mine}),
                                         "symbol": mine[0].symbol, "status": mine[0].status,
                                         "filled": max(o.filled for o in mine), "recovered": True},
                        correlation_id=ref)
            self._known["order_placed"].add(ref)
            done.append(ref)
        return done

    def _adopt_unknown(self, orders: list[BrokerOrder]) -> list[dict[str, Any]]:
        """``order_adopted`` for each broker order MMR has no record of (once per order)."""
        since = utc_now() - LOOKBACK
        adopted_keys = {e.payload.get("key") for e in self.events.read(kind="order_adopted", since=since)}
        out = []
        seen: set[str] = set()
        for o in orders:
            if o.key in seen or o.key in adopted_keys:
                continue
            seen.add(o.key)
            if o.order_ref and self._has("order_submitted", o.order_ref):
                continue  # ours
            payload = {"key": o.key, "order_id": o.order_id, "perm_id": o.perm_id, "order_ref": o.order_ref,
                       "symbol": o.symbol, "action": o.action, "quantity": o.quantity, "status": o.status,
                       "filled": o.filled, "recovered": True}
            self.record("order_adopted", payload, correlation_id=o.order_ref or None)
            out.append(payload)
        return out
