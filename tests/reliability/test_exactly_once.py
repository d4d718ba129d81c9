"""ExactlyOnce over the real IntentStore (DuckDB in a temp dir): a request id runs its action at most once."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from trader.data.order_records import Intent, IntentStore
from trader.data.store import state_store
from trader.errors import DeadlineExceeded, InvalidOrder, OrderRejected, OutcomeUnknown
from trader.trading.intents import ExactlyOnce, check_request_id


@pytest.fixture
def once(tmp_path):
    store = IntentStore(state_store(tmp_path))
    writer = ThreadPoolExecutor(max_workers=1)
    yield ExactlyOnce(store, Intent, writer), store
    writer.shutdown(wait=True)


def test_retry_with_the_same_id_runs_once_and_gets_the_first_answer(once):
    eo, store = once
    calls = []

    async def place():
        calls.append(1)
        await asyncio.sleep(0.05)
        return {"order_ids": [len(calls)], "status": "Filled"}

    async def main():
        first, second = await asyncio.gather(eo.run("place", "r-1", place), eo.run("place", "r-1", place))
        await asyncio.sleep(0.2)  # the record is written in the writer thread
        third = await eo.run("place", "r-1", place)  # answered from the durable record
        return first, second, third

    first, second, third = asyncio.run(main())
    assert calls == [1]
    assert first == second == third == {"order_ids": [1], "status": "Filled"}
    row = store.get("r-1")
    assert row.state == "done" and row.order_ids == (1,)


def test_an_error_is_recorded_and_repeated_not_retried(once):
    eo, store = once
    calls = []

    async def rejected():
        calls.append(1)
        raise OrderRejected(201, "margin")

    async def main():
        for _ in range(3):
            with pytest.raises(OrderRejected):
                await eo.run("place", "r-err", rejected)
            await asyncio.sleep(0.1)

    asyncio.run(main())
    assert calls == [1] and store.get("r-err").state == "refused"


def test_a_passed_deadline_starts_nothing(once):
    eo, store = once
    calls = []

    async def place():
        calls.append(1)
        return {}

    with pytest.raises(DeadlineExceeded):
        asyncio.run(eo.run("place", "r-late", place, deadline=time.time() - 0.01))
    assert calls == [] and store.get("r-late") is None  # nothing recorded: a retry with a fresh deadline may run


def test_unknown_outcome_leaves_the_record_open_and_a_retry_is_told_so(once):
    eo, store = once

    async def ambiguous():
        raise OutcomeUnknown("socket closed mid-send", "r-open", "mmr --json orders --request r-open")

    async def never():
        raise AssertionError("must not run again")

    async def main():
        with pytest.raises(OutcomeUnknown):
            await eo.run("place", "r-open", ambiguous)
        with pytest.raises(OutcomeUnknown) as info:
            await eo.run("place", "r-open", never)
        return info.value

    err = asyncio.run(main())
    assert err.request_id == "r-open" and "orders --request r-open" in err.lookup
    assert store.get("r-open").state == "received"  # reconciliation settles it from the broker's orders
    assert [i.request_id for i in store.open_intents()] == ["r-open"]


def test_a_record_from_a_previous_run_is_not_executed_again(tmp_path):
    store = IntentStore(state_store(tmp_path))
    store.claim(Intent(request_id="r-old", kind="place"))  # a crash after the record, before the answer
    writer = ThreadPoolExecutor(max_workers=1)
    eo = ExactlyOnce(store, Intent, writer)

    async def place():
        raise AssertionError("must not run")

    with pytest.raises(OutcomeUnknown):
        asyncio.run(eo.run("place", "r-old", place))
    writer.shutdown()


@pytest.mark.parametrize("bad", ["", " x", "a" * 65, "a b", "x;rm", 7, None.__class__])
def test_request_ids_are_checked(bad):
    with pytest.raises(InvalidOrder):
        check_request_id(bad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e308, -1.0, "soon", True])
def test_deadlines_are_checked(once, bad):
    eo, store = once

    async def place():
        raise AssertionError("must not run")

    with pytest.raises(InvalidOrder):
        asyncio.run(eo.run("place", "r-deadline", place, deadline=bad))
    assert store.get("r-deadline") is None
