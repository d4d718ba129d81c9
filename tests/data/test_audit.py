"""AuditWriter: ordered group commits, durable futures, flush on close, errors reach the waiters."""

from __future__ import annotations

import asyncio

import pytest

from trader.data.audit import AuditWriter
from trader.data.events import EventStore
from trader.data.store import state_store


@pytest.fixture
def events(tmp_path):
    return EventStore(state_store(tmp_path))


def test_record_order_is_commit_order_and_close_flushes(events):
    writer = AuditWriter(events)
    futures = [writer.record("tick", {"n": i}, correlation_id="c1", source="test") for i in range(250)]
    writer.close()
    ids = [f.result(timeout=1) for f in futures]
    assert ids == sorted(ids) and len(set(ids)) == 250
    rows = events.read(kind="tick")
    assert [e.payload["n"] for e in rows] == list(range(250))
    assert {e.correlation_id for e in rows} == {"c1"} and {e.source for e in rows} == {"test"}


def test_durable_waits_until_committed(events):
    writer = AuditWriter(events)

    async def go():
        event_id = await writer.durable("order_submitted", {"symbol": "AAPL"})
        # committed: another reader sees it right away
        assert [e.id for e in events.read(kind="order_submitted")] == [event_id]

    asyncio.run(go())
    writer.close()


def test_a_bad_event_fails_alone_and_the_batch_is_kept(events):
    writer = AuditWriter(events)
    before = writer.record("before", {})
    bad = writer.record("", {"x": 1})  # empty kind is refused by the store
    after = writer.record("after", {})
    writer.close()
    with pytest.raises(ValueError):
        bad.result(timeout=5)
    assert before.result(timeout=5) < after.result(timeout=5)
    assert [e.kind for e in events.read()] == ["before", "after"]
