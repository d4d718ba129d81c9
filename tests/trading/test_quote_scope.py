"""Inside one propose_batch the checks share each broker read (one snapshot per contract, one groups read);
outside a batch every read is fresh."""
from __future__ import annotations

import asyncio

import pytest

from trader.trading.quote_scope import shared, shared_reads


def test_reads_are_shared_inside_a_scope_only() -> None:
    calls: list[str] = []

    async def read(key: str) -> dict[str, str]:
        calls.append(key)
        await asyncio.sleep(0.01)
        return {"key": key}

    async def main() -> tuple[list, list]:
        outside = [await shared("a", lambda: read("a")) for _ in range(2)]
        with shared_reads():
            inside = await asyncio.gather(*(shared(k, lambda k=k: read(k)) for k in "aabab"))
        after = await shared("a", lambda: read("a"))
        return outside + [after], list(inside)

    fresh, batch = asyncio.run(main())
    assert calls == ["a", "a", "a", "b", "a"]  # two reads outside, one per key inside, one again after it
    assert [d["key"] for d in batch] == list("aabab") and batch[0] is batch[1]
    assert fresh[0] is not fresh[1]


def test_an_error_reaches_every_sharer_and_the_scope_ends_with_it() -> None:
    calls = 0

    async def boom() -> None:
        nonlocal calls
        calls += 1
        raise TimeoutError("no quote")

    async def main() -> list:
        with shared_reads():
            return await asyncio.gather(*(shared("x", boom) for _ in range(3)), return_exceptions=True)

    out = asyncio.run(main())
    assert calls == 1 and all(isinstance(e, TimeoutError) for e in out)
    with pytest.raises(TimeoutError):
        asyncio.run(shared("x", boom))
    assert calls == 2
