"""The proposal pipeline used by trader_service: propose → size → group preview → store; approve → CAS
PENDING→APPROVED → executioner → EXECUTED/FAILED; reject; expiry; crash recovery.

Orchestration only: the store, the order chokepoint (``Executioner.submit``), market facts and the audit
trail come in through small callables, so tests drive it with fakes and no broker.

Exactly-once approval: the PENDING→APPROVED compare-and-set in `ProposalStore.transition` lets one caller
through; every other concurrent ``approve`` gets ``InvalidProposalTransition`` before an order is built.
Reject and expiry go through the same compare-and-set and act only on PENDING, so once an approval has
claimed a proposal nothing else can move it: the approval ends it EXECUTED (with its order ids) or FAILED
(refused before anything was sent). When the broker call's outcome is unknown (``OutcomeUnknown``, or the
service died), the proposal stays APPROVED until reconciliation matches the broker's orders by ``orderRef``
(``proposal-<id>``): :meth:`ProposalPipeline.recover_unsent` at start (never submitted → FAILED) and
:meth:`ProposalPipeline.settle` once the broker's book is known (found → EXECUTED with the order ids; not at
the broker → FAILED). Nothing is ever re-submitted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from trader.data.proposals import GroupStore, ProposalStore
from trader.data.store import utc_now
from trader.errors import DeadlineExceeded, InvalidOrder, InvalidProposal, OutcomeUnknown
from trader.trading.groups import GroupMode, check_group_budget, enforce_group_budget
from trader.trading.intents import check_request_id
from trader.trading.models import AccountSnapshot, Action, OrderSource, OrderType, Position
from trader.trading.orders import OrderRequest, order_problems
from trader.trading.proposals import (
    Proposal,
    ProposalState,
    brief_dict,
    expires_at_for,
    proposal_notional,
    proposal_to_dict,
    with_sizing_of,
    with_unchecked,
)
from trader.trading.roles import check_approver_key, needs_approver_key

log = logging.getLogger(__name__)

__all__ = ["MarketPort", "ProposalPipeline", "correlation_id_for", "is_transient", "TRANSIENT_RULES"]

Submit = Callable[..., Awaitable[dict[str, Any]]]  # (OrderRequest, *, deadline=None) -> result
# (kind, correlation_id) -> payloads of matching audit events, oldest first
EventsFor = Callable[[str, str], list[dict[str, Any]]]
# (symbol, price, confidence, sec_type, exchange, currency) -> SizingResult | None
Sizer = Callable[..., Awaitable[Any]]
# (proposal, price) -> the what-if risk delta dict, or None when it cannot be computed
RiskDelta = Callable[[Proposal, float | None], Awaitable[dict[str, Any] | None]]
# OrderRequest -> what the executioner would decide now, sending nothing ({"quantity", "price", "decision"});
# raises what the executioner would raise before its risk gate (InvalidOrder, BrokerNotReady …)
Preview = Callable[[OrderRequest], Awaitable[dict[str, Any]]]

# Risk-gate rules whose refusal passes by itself (a window slides, the market opens, orders complete, the broker
# reconnects): a proposal refused only by these is released back to PENDING, approvable again.
TRANSIENT_RULES = frozenset({"order_rate", "open_orders", "market_hours", "daily_loss", "positions"})
_TRANSIENT_ERRORS = frozenset({"BrokerNotReady", "DeadlineExceeded"})


def is_transient(exc: BaseException) -> bool:
    """True when an approval's refusal passes by itself (see ``TRANSIENT_RULES``): nothing was sent and the
    same proposal may succeed later."""
    if type(exc).__name__ in _TRANSIENT_ERRORS:
        return True
    decision = getattr(exc, "decision", None)
    failures = getattr(decision, "failures", None)
    return bool(failures) and all(f.rule in TRANSIENT_RULES for f in failures)


_OWN_WORDS = frozenset({"reasoning", "request_id"})
_OWN_WORDS_SIZED = _OWN_WORDS | {"confidence"}


def _alike_orders(orders: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Indexes of ``orders`` grouped by everything but their own words (reasoning, request id; and confidence
    when a quantity or amount is given: only the sizer reads it), in input order (an order whose options cannot
    be compared, e.g. a combo's legs, is a group of its own)."""
    groups: dict[Any, list[int]] = {}
    for i, o in enumerate(orders):
        own = _OWN_WORDS if o.get("quantity") is None and o.get("amount") is None else _OWN_WORDS_SIZED
        try:
            key: Any = tuple(sorted((k, v) for k, v in o.items() if k not in own))
            hash(key)
        except TypeError:
            key = ("#", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class MarketPort(Protocol):
    """The market and account facts the pipeline needs."""

    async def price(self, symbol: str, sec_type: str, exchange: str, currency: str) -> float | None: ...

    def positions(self) -> Sequence[Position]: ...

    def account(self) -> AccountSnapshot: ...


def correlation_id_for(proposal_id: int) -> str:
    """The correlation id of the order placed for a proposal (links the audit trail to it)."""
    return f"proposal-{int(proposal_id)}"


class ProposalPipeline:
    """Create, decide and execute proposals; every state change is one compare-and-set in the store."""

    def __init__(self, proposals: ProposalStore, groups: GroupStore, submit: Submit, market: MarketPort,
                 events_for: EventsFor, *, ttl_minutes: float | None = 60.0,
                 group_mode: GroupMode | str = GroupMode.WARN, sizer: Sizer | None = None,
                 risk_delta: RiskDelta | None = None, approver_key: str | None = None,
                 approver_key_threshold_usd: float | None = None,
                 on_expired: Callable[[Proposal], None] | None = None,
                 max_quantity: float | None = None, preview: Preview | None = None) -> None:
        self.proposals = proposals
        self.groups = groups
        self.submit = submit
        self.market = market
        self.events_for = events_for
        self.ttl = timedelta(minutes=ttl_minutes) if ttl_minutes else None
        self.group_mode = GroupMode(group_mode)
        self.sizer = sizer
        self.risk_delta = risk_delta
        self.approver_key = approver_key
        self.approver_key_threshold_usd = approver_key_threshold_usd or None
        self.on_expired = on_expired  # told of every proposal this pipeline expires, whichever path did it
        self.max_quantity = max_quantity  # the gate's max_order_quantity: refused at propose, not at approve
        self.preview = preview  # the executioner's what-if: propose refuses what approve would refuse
        self._approving: set[int] = set()  # claimed by an approval running in this process: settle skips them
        self._flush_wanted = False
        self._flusher: asyncio.Task | None = None
        # The last 1000 batches (`propose_many`): their checks, and their store step (the journal's fsync'd
        # commit), in ms; trader_service's status reports them.
        self.batch_ms: dict[str, list[float]] = {"checks_ms": [], "store_ms": []}

    # ------------------------------------------------------------------ propose
    async def propose(self, symbol: str, action: str, *, quantity: float | None = None,
                      amount: float | None = None, limit_price: float | None = None,
                      confidence: float | None = None, group: str | None = None, reasoning: str = "",
                      take_profit: float | None = None, stop_loss: float | None = None,
                      trailing_stop_pct: float | None = None, stop_price: float | None = None,
                      exchange: str = "SMART", currency: str = "USD",
                      sec_type: str = "STK", allow_short: bool = False, tif: str = "DAY",
                      request_id: str | None = None, now: datetime | None = None,
                      dry_run: bool = False, legs: Sequence[Any] | None = None) -> dict[str, Any]:
        """Validate, size (when neither quantity nor amount is given), preview the group budget and the risk
        gate, store — or, with ``dry_run``, store nothing and return what would be stored (id 0, state
        ``PREVIEW``; no request-id lookup): the same checks and preview, e.g. for ``mmr nl TEXT``.

        A trailing stop % makes the order a trailing stop (``TRAIL``, like ``sell --trailing-pct``): a SELL
        trails that % below the high and sells when the price falls back. The order is checked exactly as the
        executioner will check it at approval (structure, size rules, a SELL beyond the holding without
        ``allow_short``): what would certainly fail there is refused here with the reason (``InvalidProposal``).
        The risk gate runs as a what-if: its failures are listed in ``risk_preview.warnings`` (the market may
        open, the window slide) and its decision in ``risk_preview.gate``.

        Returns the stored proposal as a dict with ``risk_preview`` filled in. Raises ``InvalidProposal``,
        ``GroupNotFound`` or (group mode ``reject``) ``GroupBudgetExceeded``.
        """
        p = self._new_proposal(
            symbol, action, quantity=quantity, amount=amount, limit_price=limit_price, confidence=confidence,
            group=group, reasoning=reasoning, take_profit=take_profit, stop_loss=stop_loss,
            trailing_stop_pct=trailing_stop_pct, stop_price=stop_price, exchange=exchange, currency=currency,
            sec_type=sec_type, allow_short=allow_short, tif=tif, request_id=request_id, now=now, legs=legs)
        if p.request_id and not dry_run:  # a retry: answer with the proposal the first call stored
            known = await asyncio.to_thread(self.proposals.by_request_id, p.request_id)
            if known is not None:
                return proposal_to_dict(known)
        p = await self._checked_streamed(p)
        if dry_run:
            return {**proposal_to_dict(p), "state": "PREVIEW"}
        stored = await asyncio.to_thread(self.proposals.insert, p)
        self._flush_soon()
        return proposal_to_dict(stored)

    def _new_proposal(self, symbol: str, action: str, *, quantity: float | None = None,
                      amount: float | None = None, limit_price: float | None = None,
                      confidence: float | None = None, group: str | None = None, reasoning: str = "",
                      take_profit: float | None = None, stop_loss: float | None = None,
                      trailing_stop_pct: float | None = None, stop_price: float | None = None,
                      exchange: str = "SMART", currency: str = "USD",
                      sec_type: str = "STK", allow_short: bool = False, tif: str = "DAY",
                      request_id: str | None = None, now: datetime | None = None,
                      legs: Sequence[Any] | None = None) -> Proposal:
        """The unchecked PENDING proposal `propose` starts from (its arguments, minus ``dry_run``)."""
        now = now or utc_now()
        order_type = OrderType.MARKET
        if trailing_stop_pct is not None:
            order_type = OrderType.TRAILING_STOP
        elif stop_price is not None:  # a plain stop (STP): a market order once the price trades through it
            order_type = OrderType.STOP
        elif limit_price is not None:
            order_type = OrderType.LIMIT
        return Proposal(
            id=0, symbol=symbol, action=Action(str(action).upper()), created_at=now, quantity=quantity,
            amount_usd=amount, order_type=order_type,
            limit_price=limit_price, take_profit=take_profit, stop_loss=stop_loss,
            trailing_stop_pct=trailing_stop_pct, stop_price=stop_price, confidence=confidence, group=group,
            reasoning=reasoning,
            exchange=exchange, currency=currency, sec_type=sec_type, expires_at=expires_at_for(now, self.ttl),
            updated_at=now, allow_short=bool(allow_short), tif=str(tif or "DAY").upper(),
            request_id=check_request_id(request_id) if request_id is not None else "",
            legs=_combo_legs(legs),
        )

    async def _checked_streamed(self, p: Proposal) -> Proposal:
        """`_checked`, priced from a fresh streamed quote when trader_service has one (never at approval)."""
        from trader.trading.quote_scope import streamed_quotes

        with streamed_quotes():
            return await self._checked(p)

    async def _checked(self, p: Proposal) -> Proposal:
        """`propose`'s checks of one proposal: price, size, order checks, the gate's preview, the group budget and
        the what-if; returns it sized with its ``risk_preview``. Raises what `propose` raises."""
        price = p.limit_price if p.limit_price is not None else await self.market.price(
            p.symbol, p.sec_type, p.exchange, p.currency)
        if p.quantity is None and p.amount_usd is None:
            if self.sizer is None or price is None:
                raise InvalidProposal(f"{p.symbol}: no quantity or amount given and no price to size it with")
            sizing = await self.sizer(p, price)
            if sizing.shares <= 0:
                raise InvalidProposal(f"{p.symbol}: the sizer gave 0 shares ({sizing.describe()})")
            p = dataclasses.replace(p, quantity=float(sizing.shares), sizing=sizing)
        if self.max_quantity is not None and p.quantity is not None and p.quantity > self.max_quantity:
            raise InvalidProposal(f"{p.symbol}: quantity {p.quantity:g} is above max_order_quantity "
                                  f"{self.max_quantity:g} (trading_filters.yaml)")
        problems = order_problems(self.order_request(p), market_price=price)
        if problems:
            raise InvalidProposal(f"{p.symbol}: the order would be refused at approval: " + "; ".join(problems))
        notional = proposal_notional(p, price)
        preview: dict[str, Any] = {"price": price, "notional": notional, "warnings": []}
        if self.preview is not None:
            await self._gate_preview(p, preview)
            multiplier = preview.get("multiplier")
            if multiplier and not p.legs and multiplier != p.multiplier:  # options 100, futures e.g. 50
                p = dataclasses.replace(p, multiplier=float(multiplier))
                notional = preview["notional"] = proposal_notional(p, price)
        if p.group is not None:
            g = await asyncio.to_thread(self.groups.get, p.group)  # GroupNotFound reaches the caller
            signed = (notional or 0.0) * (1 if p.action is Action.BUY else -1)
            check = check_group_budget(g, list(self.market.positions()), self.market.account().net_liquidation,
                                       p.symbol, signed, self.group_mode)
            preview["group_budget"] = {"group": check.group, "within": check.within, "mode": check.mode.value,
                                       "after_pct": check.after_pct, "budget_pct": check.budget_pct,
                                       "message": check.message}
            if not check.within:
                preview["warnings"].append(check.message)
            enforce_group_budget(check)
        if p.legs:  # a spread's legs are not one position in the underlying: the gate counts its max loss
            preview["what_if"] = None
        elif self.risk_delta is not None:
            try:
                preview["what_if"] = await self.risk_delta(p, price)
            except Exception as exc:  # the preview is advice: a missing input must not block the proposal
                preview["what_if"] = None
                preview["warnings"].append(f"what-if risk unavailable: {type(exc).__name__}: {exc}")
        return with_unchecked(p, risk_preview=preview)

    async def propose_many(self, orders: Sequence[dict[str, Any]], *, brief: bool = False) -> list[dict[str, Any]]:
        """`propose` for several orders (each a dict of propose's arguments: symbol, action, options), checked
        concurrently and stored in ONE transaction (`ProposalStore.insert_many`): a strategy's signals of one
        bar close. Per order, in input order: the stored proposal, or ``{"error": {"type", "message"}}`` for
        one propose refuses (the others are stored). Idempotent per request id: a known one answers with the
        proposal it stored first. ``brief``: each stored proposal as `brief_dict` (what a strategy acts on)."""
        async def check(order: dict[str, Any]) -> Proposal | BaseException:
            opts = dict(order)
            try:  # propose(..., dry_run=True) without the round trip through its answer's dict
                symbol, action = str(opts.pop("symbol")), str(opts.pop("action"))
                try:
                    p = self._new_proposal(symbol, action, **opts)
                except TypeError:  # e.g. an unknown option: refused as propose refuses it, in its words
                    await self.propose(symbol, action, **opts, dry_run=True)
                    raise
                return await self._checked_streamed(p)
            except Exception as exc:  # noqa: BLE001 - one refused order must not sink the batch
                return exc

        async def check_alike(first: int, alike: list[int]) -> None:
            """Orders that differ only in their own words (reasoning, request id) are judged alike: each check
            reads the batch's one shared state, so the first's sizing, checks and previews are every one's.
            Each still gets its own proposal (its own text cleaned, request id checked); if the first is
            refused, each is checked on its own (the refusal may be about its own words)."""
            checked[first] = await check(orders[first])
            for i in alike:
                checked[i] = await check(orders[i]) if isinstance(checked[first], BaseException) else \
                    self._alike(checked[first], orders[i])

        from trader.trading.quote_scope import shared_reads

        checked: list[Any] = [None] * len(orders)
        t0 = time.perf_counter()
        with shared_reads():  # the batch's checks share each contract's quote and the groups (one read each)
            await asyncio.gather(*(check_alike(ix[0], ix[1:]) for ix in _alike_orders(orders)))
        t1 = time.perf_counter()
        refused = {i: o.get("request_id") for i, o in enumerate(orders) if isinstance(checked[i], BaseException)}
        rids = [rid for rid in refused.values() if rid]
        fresh = [c for c in checked if isinstance(c, Proposal)]

        def store() -> tuple[dict[str, Proposal], list[Proposal]]:  # one worker hop for both
            # A retry whose checks no longer pass: the first answer still stands (one journal look for the batch).
            return self.proposals.by_request_ids(rids) if rids else {}, self.proposals.insert_many(fresh)

        known, inserted = await asyncio.to_thread(store)
        self._timed(checks_ms=t1 - t0, store_ms=time.perf_counter() - t1)
        self._flush_soon()
        as_dict = brief_dict if brief else proposal_to_dict
        stored = iter(inserted)
        out = []
        for i, c in enumerate(checked):
            rid = refused.get(i)
            if isinstance(c, Proposal):
                out.append(as_dict(next(stored)))
            elif rid and rid in known:
                out.append(as_dict(known[rid]))
            else:
                out.append({"error": {"type": type(c).__name__, "message": str(c)}})
        return out

    def _timed(self, **seconds: float) -> None:
        for key, s in seconds.items():
            kept = self.batch_ms[key]
            kept.append(s * 1000)
            del kept[:-1000]

    def _alike(self, checked: Proposal, order: dict[str, Any]) -> Proposal | BaseException:
        """``order``'s own proposal with the sizing, multiplier and previews of ``checked`` (an order alike)."""
        opts = dict(order)
        try:
            own = self._new_proposal(str(opts.pop("symbol")), str(opts.pop("action")), **opts)
            return with_sizing_of(own, checked)
        except Exception as exc:  # noqa: BLE001 - its own words refused (e.g. a malformed request id)
            return exc

    def _flush_soon(self) -> None:
        """Copy the journaled proposals into ``proposal_store`` in a worker, after the answer: stored already means
        durable (the journal), and any reader flushes first anyway; this only keeps the DuckDB table current."""
        self._flush_wanted = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_pending())

    async def _flush_pending(self) -> None:
        while self._flush_wanted:  # proposals stored during a flush get the next one
            self._flush_wanted = False
            try:
                await asyncio.to_thread(self.proposals.flush)
            except Exception:  # noqa: BLE001 - the next reader (or flush) copies them: nothing is lost
                log.warning("flushing the proposal journal failed; readers will retry", exc_info=True)

    async def _gate_preview(self, p: Proposal, preview: dict[str, Any]) -> None:
        """Run the executioner's checks as a what-if into ``preview``; refuse what approval would refuse."""
        try:
            what = await self.preview(self.order_request(p))  # type: ignore[misc]
        except InvalidOrder as exc:
            hint = " (propose --short to sell short)" if "allow_short" in str(exc) else ""
            raise InvalidProposal(f"{p.symbol}: the order would be refused at approval: {exc}{hint}") from None
        except Exception as exc:  # the broker may be down now and up at approval: advice, not a refusal
            preview["gate"] = None
            preview["warnings"].append(f"risk gate preview unavailable: {type(exc).__name__}: {exc}")
            return
        decision = what.get("decision") or {}
        preview["multiplier"] = what.get("multiplier")
        preview["gate"] = {"allowed": decision.get("allowed"), "quantity": what.get("quantity"),
                           "failures": decision.get("failures") or [], "notes": decision.get("notes") or []}
        if p.legs:  # a combo: its legs' quotes next to the net limit, and the broker's own margin what-if
            preview["combo_quote"] = what.get("combo_quote")
            preview["margin_what_if"] = what.get("margin_what_if")
        for f in decision.get("failures") or []:
            kind = "transient" if f.get("rule") in TRANSIENT_RULES else "blocking"
            preview["warnings"].append(f"risk gate ({f.get('rule')}, {kind}): {f.get('message')}")

    # ------------------------------------------------------------------ decisions
    def expire_due(self) -> list[Proposal]:
        """Expire every overdue PENDING proposal (blocking store work); reports each to ``on_expired``."""
        expired = self.proposals.expire_due()
        if self.on_expired is not None:
            for p in expired:
                self.on_expired(p)
        return expired

    def list(self, all_states: bool = False, states: Sequence[str] | None = None,
             limit: int = 200) -> list[dict[str, Any]]:
        """Pending proposals (expiring overdue ones first), every proposal with ``all_states``, or those in
        ``states``; newest first, at most ``limit``."""
        self.expire_due()
        if states:
            wanted: list[ProposalState] | None = [ProposalState(str(s).upper()) for s in states]
        else:
            wanted = None if all_states else [ProposalState.PENDING]
        return [proposal_to_dict(p) for p in self.proposals.list(wanted, limit=max(1, min(int(limit), 10_000)))]

    def show(self, proposal_id: int) -> dict[str, Any]:
        """One proposal in full, with the sizing breakdown as text."""
        self.expire_due()
        p = self.proposals.get(proposal_id)
        out = proposal_to_dict(p)
        out["sizing_breakdown"] = p.sizing.describe() if p.sizing is not None else None
        return out

    def reject(self, proposal_id: int, reason: str) -> dict[str, Any]:
        """PENDING → REJECTED (one compare-and-set: an approved proposal can no longer be rejected)."""
        return proposal_to_dict(self.proposals.transition(proposal_id, ProposalState.REJECTED, reason or "rejected"))

    async def approve(self, proposal_id: int, key: str | None = None, *,
                      deadline: float | None = None) -> dict[str, Any]:
        """PENDING → APPROVED (exactly once), then submit through the executioner → EXECUTED or FAILED.

        Raises ``InvalidProposalTransition`` if the proposal is not PENDING (already approved, executed,
        expired …). The executioner's refusal (risk gate, invalid order, deadline passed) marks it FAILED and
        is re-raised. ``OutcomeUnknown`` (or a cancellation) leaves it APPROVED for reconciliation to settle.
        Above the approver-key threshold, ``key`` must match the configured approver key.
        """
        store = self.proposals
        await asyncio.to_thread(self.expire_due)
        current = await asyncio.to_thread(store.get, proposal_id)
        price = (current.risk_preview or {}).get("price")
        if needs_approver_key(proposal_notional(current, price), self.approver_key_threshold_usd):
            check_approver_key(key, self.approver_key)
        if deadline is not None and time.time() > deadline:  # the caller gave up: leave it PENDING
            raise DeadlineExceeded(f"proposal {proposal_id}: the approval arrived after its deadline; "
                                   "nothing was done (it is still PENDING)")
        self._approving.add(int(proposal_id))
        try:
            p = await asyncio.to_thread(store.transition, proposal_id, ProposalState.APPROVED, "approved")
            req = self.order_request(p)
            try:
                result = await self.submit(req, deadline=deadline)
            except OutcomeUnknown:
                raise  # the order may be live: reconciliation decides EXECUTED or FAILED, never this guess
            except Exception as exc:
                if is_transient(exc):  # nothing was sent and the reason passes: approvable again
                    await asyncio.to_thread(store.transition, p.id, ProposalState.PENDING,
                                            f"approval refused for now, still PENDING: {type(exc).__name__}: {exc}")
                    note = f"{exc} (nothing was sent; proposal {p.id} is still PENDING: approve it again later)"
                    raise type(exc)(note) from exc
                await asyncio.to_thread(store.transition, p.id, ProposalState.FAILED,
                                        f"{type(exc).__name__}: {exc}")
                raise
            ids = [int(i) for i in (result.get("order_ids") or ()) if i is not None]
            fills = {"executed_quantity": _number(result.get("quantity")),
                     "filled_quantity": _number(result.get("filled")),
                     "avg_fill_price": _number(result.get("avg_fill_price"))}
            done = await asyncio.to_thread(store.transition, p.id, ProposalState.EXECUTED, "order placed",
                                           order_ids=ids, changes=fills)
            return {**proposal_to_dict(done), "order": result}
        finally:
            self._approving.discard(int(proposal_id))

    @staticmethod
    def order_request(p: Proposal) -> OrderRequest:
        """The order for an approved proposal, tagged so the audit trail links back to it."""
        return OrderRequest(
            symbol=p.symbol, action=p.action, quantity=p.quantity, amount=p.amount_usd, order_type=p.order_type,
            limit_price=p.limit_price, take_profit=p.take_profit, stop_loss=p.stop_loss,
            trailing_percent=p.trailing_stop_pct, stop_price=p.stop_price, allow_short=p.allow_short, tif=p.tif,
            sec_type=p.sec_type, exchange=p.exchange, currency=p.currency,
            source=OrderSource.PROPOSAL, correlation_id=correlation_id_for(p.id), group=p.group, legs=p.legs,
        )

    # ------------------------------------------------------------------ crash recovery
    def recover_unsent(self) -> list[dict[str, Any]]:
        """At start: settle APPROVED proposals whose order provably never went out (blocking store work).

        No ``order_submitted`` event → FAILED "interrupted before submission"; a broker rejection or passed
        deadline recorded for every submission → FAILED. The others may be live at the broker: :meth:`settle`.
        Counted per submission, because a proposal released after a transient refusal may be approved again:
        an earlier attempt's end says nothing about the latest one."""
        settled = []
        for p in self.proposals.list([ProposalState.APPROVED], limit=10_000):
            if p.id in self._approving:
                continue
            cid = correlation_id_for(p.id)
            submitted = self.events_for("order_submitted", cid)
            ended = self.events_for("order_failed", cid) + self.events_for("order_expired", cid)
            if not submitted:
                reason = "interrupted before submission (nothing was sent)"
            elif len(ended) >= len(submitted):
                reason = f"order not sent: {ended[-1].get('message', '')}"
            else:
                continue
            new = self.proposals.transition(p.id, ProposalState.FAILED, reason)
            log.warning("recovered proposal %s: %s (%s)", p.id, new.state.value, new.state_reason)
            settled.append(proposal_to_dict(new))
        return settled

    def settle(self, broker_order_ids: Callable[[str], list[int]]) -> list[dict[str, Any]]:
        """Once the broker's orders and executions are known: every APPROVED proposal whose order was submitted
        ends EXECUTED with the broker's order ids for ``orderRef proposal-<id>``, or FAILED when the broker has
        no such order (nothing executed). Never re-submits. Blocking store work."""
        settled = self.recover_unsent()
        for p in self.proposals.list([ProposalState.APPROVED], limit=10_000):
            if p.id in self._approving:
                continue
            ids = broker_order_ids(correlation_id_for(p.id))
            if ids:
                new = self.proposals.transition(p.id, ProposalState.EXECUTED,
                                                "order placed (settled by reconciliation)", order_ids=ids)
            else:
                new = self.proposals.transition(p.id, ProposalState.FAILED,
                                                "order submitted but not found at the broker after a restart "
                                                "(nothing executed)")
            log.warning("settled proposal %s: %s (%s)", p.id, new.state.value, new.state_reason)
            settled.append(proposal_to_dict(new))
        return settled


def _combo_legs(legs: Sequence[Any] | None) -> tuple[Any, ...]:
    """A combo proposal's legs (ComboLeg values or their dicts from a client); InvalidProposal if malformed."""
    from trader.trading.combos import coerce_legs

    try:
        return coerce_legs(legs)
    except ValueError as exc:
        raise InvalidProposal(str(exc)) from None


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and abs(f) < 1e300 else None
