"""ObjectStore: put/get/delete/keys and compare-and-set."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from trader.data.objects import ObjectStore
from trader.data.store import state_store


@pytest.fixture
def objects(data_dir: Path) -> ObjectStore:
    return ObjectStore(state_store(data_dir))


def test_put_get_replace_delete(objects: ObjectStore) -> None:
    assert objects.get("missing") is None
    assert objects.get("missing", 7) == 7
    objects.put("cfg/risk", {"max_pct": 0.1, "symbols": ("AMD", "NVDA")}, kind="settings")
    assert objects.get("cfg/risk") == {"max_pct": 0.1, "symbols": ["AMD", "NVDA"]}
    objects.put("cfg/risk", 3)
    assert objects.get("cfg/risk") == 3
    objects.put("when", dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    assert objects.get("when") == "2024-01-01T00:00:00+00:00"
    assert objects.delete("cfg/risk") is True
    assert objects.delete("cfg/risk") is False
    assert objects.get("cfg/risk", "gone") == "gone"
    with pytest.raises(ValueError):
        objects.put("", 1)


def test_kind_is_stored(objects: ObjectStore) -> None:
    objects.put("a", 1, kind="counter")
    rows = objects.store.execute("SELECT kind FROM object_store WHERE key = 'a'", write=False)
    assert rows == [("counter",)]
    assert objects.compare_and_set("a", 1, 2) is True  # kind kept when not given
    assert objects.store.execute("SELECT kind FROM object_store WHERE key = 'a'", write=False) == [("counter",)]
    assert objects.compare_and_set("a", 2, 3, kind="other") is True
    assert objects.store.execute("SELECT kind FROM object_store WHERE key = 'a'", write=False) == [("other",)]


def test_keys_by_prefix(objects: ObjectStore) -> None:
    for key in ["b/2", "a/1", "b/1", "b_x", "c"]:
        objects.put(key, key)
    assert objects.keys() == ["a/1", "b/1", "b/2", "b_x", "c"]
    assert objects.keys("b/") == ["b/1", "b/2"]
    assert objects.keys("b_") == ["b_x"]  # "_" is not a wildcard
    assert objects.keys("zzz") == []


def test_compare_and_set(objects: ObjectStore) -> None:
    assert objects.compare_and_set("n", None, 1) is True  # None matches a missing key
    assert objects.compare_and_set("n", None, 5) is False
    assert objects.compare_and_set("n", 2, 5) is False
    assert objects.get("n") == 1
    assert objects.compare_and_set("n", 1, {"v": [1, 2]}) is True
    assert objects.compare_and_set("n", {"v": (1, 2)}, "x") is True  # compared after a JSON round trip
    assert objects.get("n") == "x"
    objects.put("flag", True)
    assert objects.compare_and_set("flag", 1, False) is False  # True is not 1
    assert objects.compare_and_set("flag", True, False) is True
    assert objects.get("flag") is False


def test_put_many_is_one_transaction(objects: ObjectStore) -> None:
    objects.put_many({"contract:a": {"con_id": 1}, "contract:b": {"con_id": 2}}, kind="contract")
    objects.put_many({"contract:b": {"con_id": 3}})  # replaces, like put
    assert objects.get("contract:a") == {"con_id": 1} and objects.get("contract:b") == {"con_id": 3}
    objects.put_many({})  # nothing to write is fine


def test_trader_service_contract_cache_coalesces_its_writes(objects: ObjectStore) -> None:
    """100 contracts resolved at once (a cold idea scan) are written in a few transactions, not 100 (each
    takes the file lock and opens state.duckdb), and all of them are there to load after a restart."""
    import asyncio

    from trader.trader_service import _ObjectStoreContractCache

    class Counting(ObjectStore):
        batches: list[int] = []

        def put_many(self, values, *, kind=""):
            self.batches.append(len(values))
            super().put_many(values, kind=kind)

    counting = Counting(objects.store)

    async def resolve_100() -> None:
        cache = _ObjectStoreContractCache(counting)
        for i in range(100):
            cache.put(f"STK|S{i}|SMART|USD", {"con_id": i})
        while cache._writing:  # the writer drains in a worker thread
            await asyncio.sleep(0.01)

    asyncio.run(resolve_100())
    assert sum(Counting.batches) == 100 and len(Counting.batches) <= 10, Counting.batches
    restarted = _ObjectStoreContractCache(objects)
    restarted.load()
    assert restarted.get("STK|S42|SMART|USD") == {"con_id": 42}
