"""Approve vs reject vs expire: seeded rounds where the three meet at a barrier on the real proposal store.

The broker is a fake port behind the real Executioner; it is the truth the proposal's final state is checked
against: an order at the broker ⇔ EXECUTED with exactly that order's id; no order ⇔ REJECTED/EXPIRED/FAILED.
No proposal is left APPROVED. `run_rounds` is also used by bench/reliability.py.
"""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from trader.config import TradingFiltersConfig
from trader.data.proposals import GroupStore, ProposalStore
from trader.data.store import state_store, utc_now
from trader.errors import MMRError
from trader.testing import RecordingBroker
from trader.trading.executioner import Executioner
from trader.trading.models import AccountSnapshot, Action, Position
from trader.trading.pipeline_service import ProposalPipeline, correlation_id_for
from trader.trading.proposals import Proposal, ProposalState
from trader.trading.risk_gate import GateContext, RiskGate

ROUNDS = 200


class Market:
    async def price(self, *a):
        return 100.0

    def positions(self) -> list[Position]:
        return []

    def account(self) -> AccountSnapshot:
        return AccountSnapshot(net_liquidation=1_000_000.0)


def run_rounds(home: Path, rounds: int = ROUNDS, seed: int = 13) -> dict[str, Any]:
    """Run ``rounds`` seeded races; return counts and every invariant violation found."""
    rng = random.Random(seed)
    store = state_store(home)
    broker = RecordingBroker()
    audit: dict[tuple[str, str], list[dict]] = {}

    async def record(kind, payload, *, correlation_id=None, source=None):
        audit.setdefault((kind, correlation_id), []).append(payload)

    async def context(req, contract, price):
        return GateContext(account=AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0), positions=(),
                           now=utc_now(), open_orders=0, orders_in_window=0, regular_open=True,
                           extended_open=True, market_price=price)

    ex = Executioner(RiskGate(TradingFiltersConfig()), broker, context, record)
    pipe = ProposalPipeline(ProposalStore(store), GroupStore(store), ex.submit, Market(),
                            lambda kind, cid: audit.get((kind, cid), []), ttl_minutes=60)
    outcomes: dict[str, int] = {}
    violations: list[str] = []

    async def one_round(i: int) -> None:
        # Expiry races too: some proposals fall due within the round.
        created = utc_now()
        due = created + timedelta(milliseconds=rng.choice([0, 5, 20, 60_000]))
        p = pipe.proposals.insert(Proposal(id=0, symbol="AAPL", action=Action.BUY, created_at=created,
                                           quantity=1.0, expires_at=due))
        contenders = rng.sample(["approve", "reject", "expire"], k=rng.choice([2, 3]))
        barrier = threading.Barrier(len(contenders))
        jitter = {c: rng.random() * 0.01 for c in contenders}

        def at_barrier(name: str) -> None:
            barrier.wait(timeout=10)
            threading.Event().wait(jitter[name])

        async def approve() -> None:
            await asyncio.to_thread(at_barrier, "approve")
            try:
                await pipe.approve(p.id)
            except MMRError:
                pass

        def reject() -> None:
            at_barrier("reject")
            try:
                pipe.reject(p.id, "race")
            except MMRError:
                pass

        def expire() -> None:
            at_barrier("expire")
            pipe.expire_due()

        jobs = {"approve": approve, "reject": lambda: asyncio.to_thread(reject),
                "expire": lambda: asyncio.to_thread(expire)}
        await asyncio.gather(*(jobs[c]() for c in contenders))
        final = pipe.proposals.get(p.id)
        at_broker = broker.orders.get(correlation_id_for(p.id), [])
        outcomes[final.state.value] = outcomes.get(final.state.value, 0) + 1
        if len(at_broker) > 1:
            violations.append(f"round {i}: proposal {p.id} executed {len(at_broker)} times")
        if final.state is ProposalState.EXECUTED:
            if list(final.order_ids) != at_broker:
                violations.append(f"round {i}: EXECUTED with {final.order_ids}, broker has {at_broker}")
        elif at_broker:
            violations.append(f"round {i}: {final.state.value} but the broker has orders {at_broker}")
        if not final.state.terminal:
            violations.append(f"round {i}: left {final.state.value}")

    async def main() -> None:
        for i in range(rounds):
            await one_round(i)

    asyncio.run(main())
    return {"rounds": rounds, "outcomes": outcomes, "violations": violations,
            "double_executions": sum(1 for ids in broker.orders.values() if len(ids) > 1)}


# ~50 s for 200 rounds on idle cores; over the suite's 120 s default under a load average of 18 (failed so).
@pytest.mark.timeout(900)
def test_approve_reject_expire_never_contradict_the_broker(tmp_path):
    result = run_rounds(tmp_path, ROUNDS, seed=13)
    assert result["violations"] == [] and result["double_executions"] == 0
    # the races really happened: each kind of winner showed up
    assert {"EXECUTED", "REJECTED", "EXPIRED"} <= set(result["outcomes"]), result["outcomes"]
