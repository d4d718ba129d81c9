"""Concurrent compare-and-set of `ProposalStore.transition`: several processes approve the same PENDING
proposal at the same instant, and exactly one of them wins — every round.

Each contender is its own interpreter (the store's lock is an inter-process ``flock``; the CLI and the
services are separate processes). All contenders meet at a ``multiprocessing.Barrier`` before every round,
so the rounds are real races, not processes that happen to run one after the other: after the barrier, every
contender's first read (tens of ms under a *shared* lock) starts long before any of them can write, so every
contender reads the proposal as PENDING. Whether they then all "win" depends only on the compare-and-set.

The same harness runs against two deliberately broken stores (see ``_cas_contender.py``) — one whose UPDATE
has no effective state/version guard, one that ignores the updated-row count — interleaved with the real
store's rounds. The test asserts the broken stores are caught (several winners in a round) and the real
store never is, so this test cannot pass by luck: if the harness stopped producing races, the broken-store
assertions would fail too.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import runpy
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from trader.data.proposals import ProposalStore
from trader.data.store import state_store
from trader.trading.models import Action
from trader.trading.proposals import Proposal, ProposalState

CONTENDER = Path(__file__).with_name("_cas_contender.py")
CONTENDERS = 3
ROUNDS = {"real": 4, "unguarded": 2, "ignores_count": 2}  # broken stores double-win every round in practice


def _race(data_dir: Path, schedule: list[tuple[str, int]]) -> dict[tuple[str, int], list[str]]:
    """Run ``schedule`` with CONTENDERS processes; outcomes ("won" / "lost: …") per (variant, proposal id)."""
    ctx = mp.get_context("spawn")  # fresh interpreters, nothing inherited from the test process
    barrier, outcomes = ctx.Barrier(CONTENDERS), ctx.Queue()
    args = {"data_dir": str(data_dir), "schedule": schedule, "barrier": barrier, "outcomes": outcomes}
    procs = [ctx.Process(target=runpy.run_path, args=(str(CONTENDER),),
                         kwargs={"run_name": "__cas_contender__", "init_globals": {"CONTENDER": args}})
             for _ in range(CONTENDERS)]
    results: dict[tuple[str, int], list[str]] = defaultdict(list)
    try:
        for p in procs:
            p.start()
        for _ in range(CONTENDERS * len(schedule)):
            try:
                variant, proposal_id, _pid, outcome = outcomes.get(timeout=60)
            except queue.Empty:
                raise AssertionError(f"contenders stopped answering; exit codes {[p.exitcode for p in procs]}") from None
            results[(variant, proposal_id)].append(outcome)
        for p in procs:
            p.join(30)
            assert p.exitcode == 0, f"contender exited {p.exitcode}"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(10)
    return results


def test_concurrent_approvals_have_one_winner_and_broken_stores_are_caught(tmp_path):
    ps = ProposalStore(state_store(tmp_path))
    # Variants interleaved, so the broken stores race under the same conditions as the real one.
    order = [v for i in range(max(ROUNDS.values())) for v in ROUNDS if i < ROUNDS[v]]
    schedule = []
    with ps.store.transaction():
        for variant in order:
            p = ps.insert(Proposal(id=0, symbol="AAPL", action=Action.BUY, created_at=datetime.now(UTC), quantity=1))
            schedule.append((variant, p.id))

    results = _race(tmp_path, schedule)

    errors = [o for outs in results.values() for o in outs if o.startswith("error")]
    assert errors == []
    wins = {key: outs.count("won") for key, outs in results.items()}
    for variant in ("unguarded", "ignores_count"):  # the harness really races: a broken CAS is caught
        assert max(wins[(v, pid)] for v, pid in schedule if v == variant) >= 2, (variant, dict(wins))
    for variant, pid in schedule:
        if variant != "real":
            continue
        outs = results[(variant, pid)]
        assert wins[(variant, pid)] == 1, (pid, outs)
        assert all("already APPROVED" in o for o in outs if o != "won"), outs
        stored = ps.get(pid)
        assert (stored.state, stored.version) == (ProposalState.APPROVED, 1)
