"""EventStore: append, append_many, filtered reads, counts."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from pathlib import Path

import pytest

from trader.data.events import Event, EventStore
from trader.data.store import state_store

UTC = dt.UTC


class Action(str, enum.Enum):
    BUY = "BUY"


@pytest.fixture
def events(data_dir: Path) -> EventStore:
    return EventStore(state_store(data_dir))


def test_append_returns_increasing_ids_and_reads_back(events: EventStore) -> None:
    before = dt.datetime.now(UTC)
    first = events.append("proposal.created", {"symbol": "AMD", "qty": 10}, correlation_id="p1", source="cli")
    second = events.append("proposal.approved", {"by": "ops"}, correlation_id="p1")
    assert second > first > 0
    got = events.read()
    assert [e.id for e in got] == [first, second]
    assert got[0] == Event(first, got[0].ts, "proposal.created", "p1", "cli", {"symbol": "AMD", "qty": 10})
    assert got[1].source is None and got[1].payload == {"by": "ops"}
    assert got[0].ts.tzinfo is not None and got[0].ts.utcoffset() == dt.timedelta(0)
    assert before <= got[0].ts <= got[1].ts <= dt.datetime.now(UTC)
    assert events.last_id() == second


def test_payload_conversions(events: EventStore) -> None:
    when = dt.datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    events.append("fill", {"at": when, "price": decimal.Decimal("101.25"), "action": Action.BUY, "ids": (1, 2)})
    events.append("empty", None)
    fill, empty = events.read()
    assert fill.payload == {"at": "2024-05-01T13:30:00+00:00", "price": "101.25", "action": "BUY", "ids": [1, 2]}
    assert empty.payload == {}
    with pytest.raises(TypeError):
        events.append("bad", {"x": object()})
    with pytest.raises(TypeError, match="mapping"):
        events.append("bad", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        events.append("", {})
    assert events.count() == 2  # failed appends wrote nothing


def test_append_many_keeps_input_order_in_one_go(events: EventStore) -> None:
    lone = events.append("a", {})
    ids = events.append_many([("b", {"i": i}, "c1" if i % 2 else None, "svc") for i in range(50)])
    assert ids == list(range(lone + 1, lone + 51))
    got = events.read(kind="b")
    assert [e.id for e in got] == ids
    assert [e.payload["i"] for e in got] == list(range(50))
    assert [e.correlation_id for e in got[:3]] == [None, "c1", None]
    assert {e.source for e in got} == {"svc"}
    assert events.append_many([]) == []
    assert events.append("c", {}) == ids[-1] + 1


def test_read_filters_and_limit(events: EventStore) -> None:
    ids = [events.append(kind, {"n": n}, correlation_id=corr)
           for n, (kind, corr) in enumerate([("x", "A"), ("y", "A"), ("x", "B"), ("x", None), ("y", "B")])]
    assert [e.id for e in events.read(kind="x")] == [ids[0], ids[2], ids[3]]
    assert [e.id for e in events.read(correlation_id="B")] == [ids[2], ids[4]]
    assert [e.id for e in events.read(kind="x", correlation_id="A")] == [ids[0]]
    assert [e.id for e in events.read(since_id=ids[1])] == ids[2:]
    assert [e.id for e in events.read(since_id=ids[0], limit=2)] == ids[1:3]
    assert events.read(limit=0) == []
    with pytest.raises(ValueError):
        events.read(limit=-1)


def test_time_filters_need_aware_datetimes(events: EventStore) -> None:
    events.append("old", {})
    cut = dt.datetime.now(UTC)
    events.append("new", {})
    assert [e.kind for e in events.read(since=cut)] == ["new"]
    assert events.count(since=cut) == 1
    # Another zone is converted, not misread.
    assert events.count(since=cut.astimezone(dt.timezone(dt.timedelta(hours=-5)))) == 1
    assert events.count() == 2 and events.count(kind="old") == 1 and events.count(kind="nope") == 0
    with pytest.raises(ValueError, match="naive"):
        events.read(since=dt.datetime(2024, 1, 1))


def test_event_is_a_frozen_value(events: EventStore) -> None:
    events.append("k", {"a": 1})
    (event,) = events.read()
    with pytest.raises(AttributeError):
        event.kind = "other"  # type: ignore[misc]
