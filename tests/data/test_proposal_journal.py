"""The proposals' journal (issue 15): stored = durable in the journal; every reader and compare-and-set sees
journaled-but-unflushed proposals; a flush, a crash mid-flush or kill -9 at any point neither loses nor
duplicates a proposal, and a request id keeps answering with its first proposal."""
from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trader.data.proposal_journal import journal_path
from trader.data.proposals import ProposalStore
from trader.data.store import state_store
from trader.errors import InvalidProposalTransition
from trader.testing import clean_env
from trader.trading.models import Action
from trader.trading.proposals import Proposal, ProposalState

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
WORKER = Path(__file__).with_name("_journal_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _p(rid: str, symbol: str = "AAPL") -> Proposal:
    return Proposal(id=0, symbol=symbol, action=Action.BUY, created_at=NOW, quantity=1.0, updated_at=NOW,
                    request_id=rid)


def _duck_ids(ps: ProposalStore) -> list[int]:
    return [r[0] for r in ps.store.execute("SELECT id FROM proposal_store ORDER BY id", write=False)]


def _worker(data_dir: Path, first: int, last: int, *flags: str) -> subprocess.Popen:
    env = clean_env()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, str(WORKER), str(data_dir), str(first), str(last), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def test_readers_see_journaled_proposals_of_another_process(tmp_path) -> None:
    """Proposals a killed process journaled (never flushed) are seen by get/list/by_request_id and moved by the
    compare-and-set exactly once; a retried request id answers with its first proposal."""
    proc = _worker(tmp_path, 1, 2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    ps = ProposalStore(state_store(tmp_path))
    assert ps.journal.has_pending() and _duck_ids(ps) == []  # stored in the journal only
    assert ps.by_request_id("b2-3").id == 9 and ps.by_request_id("nope") is None
    assert [p.id for p in ps.list()] == list(range(10, 0, -1))
    assert not ps.journal.has_pending() and _duck_ids(ps) == list(range(1, 11))  # the read flushed them
    assert [p.id for p in ps.insert_many([_p("b1-0"), _p("new")])] == [1, 11]
    assert ps.get(11).request_id == "new"  # journaled again, read again

    wins: list[str] = []

    def decide(state: ProposalState) -> None:
        try:
            ps.transition(11, state, "race")
            wins.append(state.value)
        except InvalidProposalTransition:
            pass

    threads = [threading.Thread(target=decide, args=(s,)) for s in (ProposalState.REJECTED, ProposalState.APPROVED)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(wins) == 1 and ps.get(11).state.value == wins[0]


def test_a_crash_between_the_duckdb_commit_and_the_journal_delete_duplicates_nothing(tmp_path) -> None:
    """The state such a crash leaves (rows in proposal_store AND still pending) flushes to one row each, and a
    decided proposal is not put back to PENDING by the replay."""
    ps = ProposalStore(state_store(tmp_path))
    stored = ps.insert_many([_p("a"), _p("b"), _p("c")])
    with sqlite3.connect(journal_path(ps.store)) as con:
        left = con.execute("SELECT id, detail FROM pending ORDER BY id").fetchall()
    assert [r[0] for r in left] == [1, 2, 3]
    assert ps.flush() == 3
    ps.transition(2, ProposalState.REJECTED, "no")
    with sqlite3.connect(journal_path(ps.store)) as con:  # as if the delete never happened
        con.executemany("INSERT INTO pending (id, detail) VALUES (?, ?)", left)
    again = ProposalStore(state_store(tmp_path))  # a restarted trader_service: its start replays the journal
    assert again.journal.has_pending() and again.flush() == 0 and not again.journal.has_pending()
    assert _duck_ids(again) == [1, 2, 3] and again.get(2).state is ProposalState.REJECTED
    assert [p.id for p in again.insert_many([_p("c"), _p("d")])] == [stored[2].id, 4]


def test_the_journal_takes_over_the_ids_and_request_ids_stored_before_it(tmp_path) -> None:
    """A state.duckdb from before the journal: new ids continue after its highest, its request ids still dedupe."""
    import dataclasses

    from trader.data.proposals import _COLUMNS, _row

    ps = ProposalStore(state_store(tmp_path))
    old = [dataclasses.replace(_p(f"old-{i}"), id=40 + i) for i in range(3)]
    ps.store.executemany(f"INSERT INTO proposal_store ({_COLUMNS}) VALUES ({', '.join('?' * 18)})",
                         [_row(p) for p in old])
    assert not journal_path(ps.store).exists()
    assert ps.by_request_id("old-1").id == 41  # no journal yet: DuckDB answers
    # several at once (a batch's refused orders): one query; unknown ones are left out
    assert {r: p.id for r, p in ps.by_request_ids(["old-2", "nope", "old-0", "old-2"]).items()} == \
        {"old-2": 42, "old-0": 40}
    assert not journal_path(ps.store).exists()
    assert [p.id for p in ps.insert_many([_p("old-2"), _p("n")])] == [42, 43]
    assert ps.by_request_id("old-0").id == 40 and ps.by_request_id("n").id == 43


def test_prepare_creates_the_seeded_journal_before_the_first_append(tmp_path) -> None:
    import dataclasses

    from trader.data.proposals import _COLUMNS, _row

    ps = ProposalStore(state_store(tmp_path))
    ps.store.executemany(f"INSERT INTO proposal_store ({_COLUMNS}) VALUES ({', '.join('?' * 18)})",
                         [_row(dataclasses.replace(_p("old"), id=7))])
    ps.journal.prepare()
    ps.journal.prepare()  # idempotent
    assert journal_path(ps.store).exists() and ps.journal.request_ids(["old", "x"]) == {"old": 7}
    assert [p.id for p in ps.insert_many([_p("old"), _p("new")])] == [7, 8]


@pytest.mark.parametrize("flush", [False, True])
def test_kill_9_at_any_point_loses_and_duplicates_nothing(tmp_path, flush: bool) -> None:
    """Writers killed (SIGKILL) at random moments, each restart retrying the batch it may have been storing:
    every batch whose call returned is stored, and every request id is stored exactly once."""
    rng = random.Random(15 + flush)
    acked: dict[int, list[int]] = {}
    nxt = 1
    for _round in range(5):
        proc = _worker(tmp_path, nxt, nxt + 400, *(["--flush"] if flush else []))
        time.sleep(1.5 + rng.random() * 2.0)  # imports take ~1 s; then it is somewhere in its writes
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        for line in out.splitlines():
            _, b, *ids = line.split()
            acked[int(b)] = [int(x) for x in ids]
        nxt = max(acked, default=0) + 1  # the next batch: the killed one is retried (same request ids)
    proc = _worker(tmp_path, nxt, nxt + 2)  # and a clean run after the last kill
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    for line in out.splitlines():
        _, b, *ids = line.split()
        acked[int(b)] = [int(x) for x in ids]
    assert len(acked) >= 3  # the kills did not all land before the first batch
    ps = ProposalStore(state_store(tmp_path))
    rows = ps.list(limit=100_000)  # flushes what the kills left journaled
    by_rid = {}
    for p in rows:
        assert p.request_id not in by_rid, f"{p.request_id} stored twice"
        by_rid[p.request_id] = p.id
    for b, ids in acked.items():
        assert [by_rid[f"b{b}-{i}"] for i in range(5)] == ids  # acknowledged = stored, with the ids it was told
    assert len(rows) == len(set(p.id for p in rows)) and not ps.journal.has_pending()


def test_an_explicit_id_already_allocated_is_refused(tmp_path) -> None:
    """As proposal_store's primary key refused it: an id the journal gave out cannot be stored again."""
    import dataclasses

    ps = ProposalStore(state_store(tmp_path))
    first = ps.insert(_p("x"))
    with pytest.raises(ValueError, match="allocated already"):
        ps.insert(dataclasses.replace(_p("y"), id=first.id))
    assert ps.insert(dataclasses.replace(_p("z"), id=first.id + 5)).id == first.id + 5
    assert ps.insert(_p("w")).id == first.id + 6 and [p.id for p in ps.list()] == [first.id + 6, first.id + 5, 1]


def test_the_expiry_sweep_expires_exactly_the_overdue_pending_ones(tmp_path: Path) -> None:
    """`expire_due` reads only the PENDING rows past their deadline (journaled ones too), expires each once,
    and leaves the others: not yet due, due at this very instant (expired), never expiring, or not PENDING."""
    from datetime import timedelta

    ps = ProposalStore(state_store(tmp_path))

    import dataclasses

    made = ps.insert_many([dataclasses.replace(_p(rid), expires_at=None if m is None else NOW + timedelta(minutes=m))
                           for rid, m in (("due", 1), ("later", 10), ("never", None), ("exact", 5), ("gone", 2))])
    ids = {p.request_id: p.id for p in made}
    ps.transition(ids["gone"], ProposalState.REJECTED, "no")
    ps.flush()
    late = ps.insert_many([dataclasses.replace(_p("journaled"), expires_at=NOW + timedelta(minutes=3))])[0]
    assert ps.journal.has_pending()  # not in proposal_store yet: the sweep flushes first
    expired = ps.expire_due(NOW + timedelta(minutes=5))
    assert sorted(p.request_id for p in expired) == ["due", "exact", "journaled"]
    assert all(p.state is ProposalState.EXPIRED for p in expired)
    assert ps.get(late.id).state is ProposalState.EXPIRED
    assert {r: ps.get(i).state for r, i in ids.items()} == {
        "due": ProposalState.EXPIRED, "later": ProposalState.PENDING, "never": ProposalState.PENDING,
        "exact": ProposalState.EXPIRED, "gone": ProposalState.REJECTED}
    assert ps.expire_due(NOW + timedelta(minutes=5)) == []  # once only
    assert [p.request_id for p in ps.expire_due(NOW + timedelta(days=9))] == ["later"]


def test_a_journaled_proposal_reads_back_as_stored(tmp_path) -> None:
    """The journal's text (msgspec) reads back to the same proposal, also through the flush into DuckDB: sizing,
    free text beyond ASCII, the risk preview with numpy scalars (as float and int), nested lists; a non-finite
    number in the preview reads back as None (valid JSON)."""
    import math

    import numpy as np

    from trader.trading.proposals import proposal_to_dict
    from trader.trading.sizing import SizingResult

    ps = ProposalStore(state_store(tmp_path))
    preview = {"price": np.float64(101.25), "shares": np.int64(7), "ok": np.bool_(True), "warnings": ["é — ü"],
               "what_if": {"gross_pct": 12.5, "rows": [[1, 2.5], ["x", None]]}, "bad": math.nan}
    p = Proposal(id=0, symbol="AAPL", action=Action.BUY, created_at=NOW, quantity=7.0, updated_at=NOW,
                 request_id="rid-é", reasoning="Zürich → ☂ close", confidence=0.5,
                 sizing=SizingResult("atr", 7, 708.75, 710.0, 900.0, 101.25, clamps=("max position",),
                                     steps=("a", "b")), risk_preview=preview)
    stored = ps.insert_many([p])[0]
    want = {**proposal_to_dict(stored), "risk_preview": {
        **preview, "price": 101.25, "shares": 7, "ok": True, "bad": None}}
    journaled = ps.journal.pending()[0]
    assert proposal_to_dict(journaled) == want
    assert proposal_to_dict(ps.get(stored.id)) == want  # flushed into proposal_store first
    assert ps.by_request_id("rid-é").id == stored.id
