"""ProposalStore (compare-and-set, groups) and ProposalPipeline (propose/approve/reject/expiry/recovery)
driven with a fake executioner and a fake market; the store is a real DuckDB file in a temp dir."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from trader.config import TradingFiltersConfig
from trader.data.proposals import GroupStore, ProposalStore
from trader.data.store import state_store
from trader.errors import (
    GroupBudgetExceeded,
    GroupNotFound,
    InvalidGroup,
    InvalidOrder,
    InvalidProposal,
    InvalidProposalTransition,
    OrderRejected,
    OutcomeUnknown,
    ProposalNotFound,
)
from trader.testing import RecordingBroker
from trader.trading.executioner import Executioner
from trader.trading.models import AccountSnapshot, Action, OrderSource, Position
from trader.trading.pipeline_service import ProposalPipeline, correlation_id_for
from trader.trading.proposals import Proposal, ProposalState
from trader.trading.risk_gate import GateContext, RiskGate
from trader.trading.sizing import SizingResult

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


class FakeMarket:
    def __init__(self, price=100.0, nlv=100_000.0, positions=()):
        self.price_value = price
        self.nlv = nlv
        self.pos = list(positions)

    async def price(self, symbol, sec_type, exchange, currency):
        return self.price_value

    def positions(self):
        return self.pos

    def account(self):
        return AccountSnapshot(net_liquidation=self.nlv)


class Exec:
    """The real Executioner over a fake broker port, with a permissive gate context."""

    def __init__(self, fail=None):
        self.broker = RecordingBroker(fail=fail)
        self.audit: list = []

        async def record(kind, payload, *, correlation_id=None, source=None):
            self.audit.append((kind, correlation_id, payload))

        async def context(req, contract, price):
            return GateContext(account=AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0), positions=(),
                               now=datetime.now(UTC), open_orders=0, orders_in_window=0, regular_open=True,
                               extended_open=True, market_price=price)

        self.executioner = Executioner(RiskGate(TradingFiltersConfig()), self.broker, context, record)

    @property
    def requests(self):
        return self.broker.placed

    def submit(self, req, *, deadline=None):
        return self.executioner.submit(req, deadline=deadline)


def make(tmp_path, *, events=None, fail=None, market=None, **kw):
    store = state_store(tmp_path)
    events = {} if events is None else events
    ex = Exec(fail)
    pipe = ProposalPipeline(ProposalStore(store), GroupStore(store), ex.submit, market or FakeMarket(),
                            lambda kind, cid: events.get((kind, cid), []), **kw)
    return pipe, ex


def run(coro):
    return asyncio.run(coro)


def test_store_insert_get_list_and_cas(tmp_path):
    ps = ProposalStore(state_store(tmp_path))
    a = ps.insert(Proposal(id=0, symbol="aapl", action=Action.BUY, created_at=T0, quantity=5))
    b = ps.insert(Proposal(id=0, symbol="MSFT", action=Action.SELL, created_at=T0, amount_usd=1000))
    assert (a.id, b.id) == (1, 2)
    assert ps.get(1).symbol == "AAPL"
    assert [p.id for p in ps.list()] == [2, 1]
    approved = ps.transition(1, ProposalState.APPROVED, "ok", now=T0)
    assert approved.version == 1 and ps.get(1).state is ProposalState.APPROVED
    assert ps.save_transition(a, approved) is False  # stale version: the compare-and-set matches nothing
    with pytest.raises(InvalidProposalTransition, match="already APPROVED"):
        ps.transition(1, ProposalState.APPROVED, "again")
    done = ps.transition(1, ProposalState.EXECUTED, "placed", order_ids=[7, 8])
    assert ps.get(1).order_ids == (7, 8) == done.order_ids
    with pytest.raises(InvalidProposalTransition, match="final"):
        ps.transition(1, ProposalState.REJECTED, "too late")
    assert [p.id for p in ps.list([ProposalState.PENDING])] == [2]
    with pytest.raises(ProposalNotFound):
        ps.get(99)


def test_group_store_crud(tmp_path):
    gs = GroupStore(state_store(tmp_path))
    gs.create("tech", 30, ["aapl"])
    with pytest.raises(InvalidGroup):
        gs.create("tech", 10)
    assert gs.add("tech", ["MSFT", "AAPL"]).symbols == ("AAPL", "MSFT")
    assert gs.remove("tech", ["AAPL"]).symbols == ("MSFT",)
    assert gs.set_budget("tech", 12.5).budget_pct == 12.5
    assert [g.name for g in gs.list()] == ["tech"] and gs.get("tech").symbols == ("MSFT",)
    assert gs.delete("tech") is True
    with pytest.raises(GroupNotFound):
        gs.get("tech")
    with pytest.raises(GroupNotFound):
        gs.delete("tech")


def test_propose_approve_executes_once_through_the_executioner(tmp_path):
    pipe, ex = make(tmp_path)
    p = run(pipe.propose("AAPL", "buy", quantity=10, reasoning="breakout", confidence=0.7))
    assert p["state"] == "PENDING" and p["risk_preview"]["notional"] == 1000.0
    assert [x["id"] for x in pipe.list()] == [p["id"]]
    out = run(pipe.approve(p["id"]))
    assert out["state"] == "EXECUTED" and out["order_ids"] == [101] and list(out["order"]["perm_ids"]) == [9001]
    (req,) = ex.requests
    assert req.source is OrderSource.PROPOSAL and req.correlation_id == correlation_id_for(p["id"])
    with pytest.raises(InvalidProposalTransition, match="EXECUTED"):
        run(pipe.approve(p["id"]))
    assert len(ex.requests) == 1 and pipe.list() == [] and len(pipe.list(all_states=True)) == 1


def test_refused_order_marks_failed(tmp_path):
    pipe, ex = make(tmp_path, fail=OrderRejected(201, "Order rejected - too big"))
    p = run(pipe.propose("AAPL", "BUY", quantity=10))
    with pytest.raises(OrderRejected):
        run(pipe.approve(p["id"]))
    shown = pipe.show(p["id"])
    assert shown["state"] == "FAILED" and "too big" in shown["state_reason"]


def test_unknown_outcome_stays_approved_until_the_broker_settles_it(tmp_path):
    events: dict = {}
    pipe, ex = make(tmp_path, events=events, fail=ConnectionError("socket closed mid-send"))
    a = run(pipe.propose("AAPL", "BUY", quantity=10))
    b = run(pipe.propose("MSFT", "BUY", quantity=10))
    for p in (a, b):
        with pytest.raises(OutcomeUnknown) as info:
            run(pipe.approve(p["id"]))
        assert info.value.request_id == correlation_id_for(p["id"])
        assert pipe.show(p["id"])["state"] == "APPROVED"  # not FAILED: the order may be live
        with pytest.raises(InvalidProposalTransition):  # and nothing else can move it now
            pipe.reject(p["id"], "too late")
        events[("order_submitted", correlation_id_for(p["id"]))] = [{"symbol": p["symbol"]}]
    # the executioner recorded the unknown outcome, never a failure
    assert [k for k, _, _ in ex.audit].count("order_unknown") == 2
    at_broker = {correlation_id_for(a["id"]): [77, 78]}
    settled = {p["id"]: p for p in pipe.settle(lambda ref: at_broker.get(ref, []))}
    assert settled[a["id"]]["state"] == "EXECUTED" and settled[a["id"]]["order_ids"] == [77, 78]
    assert settled[b["id"]]["state"] == "FAILED" and "not found at the broker" in settled[b["id"]]["state_reason"]
    assert pipe.settle(lambda ref: [1]) == []  # terminal states never change


def test_deadline_passed_is_not_sent_and_fails(tmp_path):
    pipe, ex = make(tmp_path)
    p = run(pipe.propose("AAPL", "BUY", quantity=10))
    from trader.errors import DeadlineExceeded

    with pytest.raises(DeadlineExceeded):  # past its deadline on arrival: not even claimed
        run(pipe.approve(p["id"], deadline=time.time() - 1))
    assert ex.requests == [] and pipe.show(p["id"])["state"] == "PENDING" and ex.audit == []

    async def slow_then_submit(req, *, deadline=None):  # the deadline passes while the approval is under way
        await asyncio.sleep(max(0.0, deadline - time.time()) + 0.05)
        return await ex.submit(req, deadline=deadline)

    pipe.submit = slow_then_submit
    with pytest.raises(DeadlineExceeded):
        run(pipe.approve(p["id"], deadline=time.time() + 2))
    shown = pipe.show(p["id"])  # claimed, nothing sent, a transient reason: released, approvable again
    assert ex.requests == [] and shown["state"] == "PENDING" and "DeadlineExceeded" in shown["state_reason"]
    assert [k for k, _, _ in ex.audit][-1] == "order_expired"


def test_reject_and_expiry(tmp_path):
    expired = []
    pipe, ex = make(tmp_path, ttl_minutes=5, on_expired=expired.append)
    p = run(pipe.propose("AAPL", "BUY", quantity=1))
    assert pipe.reject(p["id"], "no edge")["state"] == "REJECTED"
    old = run(pipe.propose("MSFT", "BUY", quantity=1, now=datetime.now(UTC) - timedelta(minutes=10)))
    assert pipe.list() == []
    assert [x.id for x in expired] == [old["id"]]  # every expiry is reported once, whichever path did it
    assert pipe.show(old["id"])["state"] == "EXPIRED"
    with pytest.raises(InvalidProposalTransition, match="EXPIRED"):
        run(pipe.approve(old["id"]))
    assert ex.requests == []


def test_sizer_fills_quantity_and_breakdown(tmp_path):
    sizing = SizingResult(method="atr", shares=29, usd=2900.0, target_usd=2975.0, formula_usd=2975.0,
                          price=100.0, breakdown="base $5,000 × 1.0 risk × 0.70 confidence × 0.85 ATR adj = $2,975")

    async def sizer(p, price):
        return sizing

    pipe, _ = make(tmp_path, sizer=sizer)
    p = run(pipe.propose("AAPL", "BUY", confidence=0.7))
    assert p["quantity"] == 29.0
    assert "ATR adj" in pipe.show(p["id"])["sizing_breakdown"]
    pipe2, _ = make(tmp_path / "x")
    with pytest.raises(InvalidProposal):
        run(pipe2.propose("AAPL", "BUY"))


def test_group_budget_warn_and_reject(tmp_path):
    held = [Position(symbol="AAPL", quantity=100, avg_cost=100.0, market_price=100.0)]
    market = FakeMarket(nlv=100_000.0, positions=held)
    pipe, _ = make(tmp_path, market=market)
    pipe.groups.create("tech", 12, ["AAPL"])
    warned = run(pipe.propose("AAPL", "BUY", quantity=50, group="tech"))
    assert warned["risk_preview"]["group_budget"]["within"] is False
    assert "over budget" in warned["risk_preview"]["warnings"][0]
    strict, _ = make(tmp_path, market=market, group_mode="reject")
    with pytest.raises(GroupBudgetExceeded):
        run(strict.propose("AAPL", "BUY", quantity=50, group="tech"))
    assert run(strict.propose("AAPL", "BUY", quantity=10, group="tech"))["risk_preview"]["group_budget"]["within"]
    with pytest.raises(GroupNotFound):
        run(strict.propose("AAPL", "BUY", quantity=1, group="nope"))


def test_recovery_never_resubmits(tmp_path):
    pipe, ex = make(tmp_path)
    # The event log is the real audit trail the executioner wrote (correlation id → kinds), not a hand-made fake.
    ids = [run(pipe.propose("AAPL", "BUY", quantity=1))["id"] for _ in range(4)]
    for i in ids:  # a crash right after the compare-and-set
        pipe.proposals.transition(i, ProposalState.APPROVED, "approved")
    # ids[1], ids[3]: submitted (and ids[1] placed at the broker); ids[2]: submitted, then the broker refused it
    for i, fail in ((ids[1], None), (ids[2], OrderRejected(201, "socket closed")), (ids[3], None)):
        ex.broker.fail = fail
        try:
            run(ex.submit(ProposalPipeline.order_request(pipe.proposals.get(i))))
        except OrderRejected:
            pass
    ex.broker.fail = None
    events: dict = {}
    for kind, cid, payload in ex.audit:
        events.setdefault((kind, cid), []).append(payload)
    pipe.events_for = lambda kind, cid: events.get((kind, cid), [])
    placed = [e for e in events[("order_placed", correlation_id_for(ids[1]))]]
    assert placed and list(placed[0]["order_ids"]) == [101]  # the executioner's real shape: a list of order ids
    early = {p["id"]: p for p in pipe.recover_unsent()}
    assert early[ids[0]]["state"] == "FAILED" and "before submission" in early[ids[0]]["state_reason"]
    assert early[ids[2]]["state"] == "FAILED" and "socket closed" in early[ids[2]]["state_reason"]
    assert ids[1] not in early and ids[3] not in early  # may be live: wait for the broker's book
    at_broker = {correlation_id_for(ids[1]): [101]}  # ids[3]'s order never reached the broker
    settled = {p["id"]: p for p in pipe.settle(lambda ref: at_broker.get(ref, []))}
    assert settled[ids[1]]["state"] == "EXECUTED" and settled[ids[1]]["order_ids"] == [101]
    assert settled[ids[3]]["state"] == "FAILED"
    assert len(ex.requests) == 2 and pipe.recover_unsent() == [] and pipe.settle(lambda ref: [5]) == []
    with pytest.raises(InvalidProposalTransition):
        run(pipe.approve(ids[1]))
    assert len(ex.requests) == 2


def test_propose_refuses_more_than_the_configured_max_order_quantity(tmp_path):
    pipe, ex = make(tmp_path, max_quantity=500)
    with pytest.raises(InvalidProposal, match="max_order_quantity"):
        run(pipe.propose("AAPL", "BUY", quantity=501))
    assert pipe.list(all_states=True) == []
    assert run(pipe.propose("AAPL", "BUY", quantity=500))["state"] == "PENDING"


def test_propose_with_a_request_id_is_idempotent(tmp_path):
    pipe, ex = make(tmp_path)
    first = run(pipe.propose("AAPL", "BUY", quantity=3, request_id="sig-x-1-open"))
    again = run(pipe.propose("AAPL", "BUY", quantity=3, request_id="sig-x-1-open"))
    assert again["id"] == first["id"] and again["request_id"] == "sig-x-1-open"
    other = run(pipe.propose("AAPL", "BUY", quantity=3))
    assert other["id"] != first["id"] and len(pipe.list(all_states=True)) == 2
    with pytest.raises(InvalidOrder):
        run(pipe.propose("AAPL", "BUY", quantity=3, request_id="bad id"))
