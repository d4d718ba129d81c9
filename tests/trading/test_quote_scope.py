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


def test_synchronous_reads_are_shared_inside_a_scope_only(monkeypatch) -> None:
    """The account and the positions: one read per batch, its error not kept; a fresh read outside and after."""
    from trader.broker import convert
    from trader.broker.adapter import IBBroker
    from trader.broker.connection import BrokerSession
    from trader.trading.models import AccountSnapshot, Position
    from trader.trading.quote_scope import shared_now

    reads: list[str] = []
    nlv = iter([1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(convert, "account_snapshot",
                        lambda ib, account: reads.append(account) or AccountSnapshot(net_liquidation=next(nlv)))
    monkeypatch.setattr(convert, "position_rows",
                        lambda ib: reads.append("positions") or [Position(symbol="AAPL", quantity=len(reads), avg_cost=1.0)])
    session = BrokerSession("127.0.0.1", 1, 1)
    session.account = "DU1"
    broker = IBBroker(session)

    async def check() -> tuple[float, float]:
        await asyncio.sleep(0)
        positions = broker.positions()
        positions.append(None)  # a caller's own list: the batch's is not changed by it
        return broker.account().net_liquidation, broker.positions()[0].quantity

    async def main() -> list:
        before = broker.account().net_liquidation
        with shared_reads():
            batch = await asyncio.gather(*(check() for _ in range(3)))
        return [before, *batch, broker.account().net_liquidation]

    out = asyncio.run(main())
    assert out == [1.0, (2.0, 2), (2.0, 2), (2.0, 2), 3.0]
    assert reads == ["DU1", "positions", "DU1", "DU1"]

    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("not connected")
        return calls

    with shared_reads():
        with pytest.raises(ConnectionError):
            shared_now("x", flaky)
        assert shared_now("x", flaky) == shared_now("x", flaky) == 2  # the error was not kept; the value is
    assert shared_now("x", flaky) == 3


def test_working_orders_are_read_once_per_batch_and_each_check_leaves_out_its_own() -> None:
    """The holding check's working SELLs: one read of ib_async's open trades per batch (each check still leaves
    out the order it modifies and its own OCA group); outside a batch a fresh read each time (a submission)."""
    from types import SimpleNamespace as NS

    from trader.broker.adapter import IBBroker
    from trader.broker.connection import BrokerSession

    def trade(order_id: int, qty: float, oca: str = "") -> NS:
        return NS(contract=NS(conId=1, symbol="AAPL", secType="STK"), isDone=lambda: False,
                  order=NS(orderId=order_id, action="SELL", ocaGroup=oca), remaining=lambda: qty)

    trades = [trade(1, 5.0), trade(2, 3.0, "bracket")]
    session = BrokerSession("127.0.0.1", 1, 1)
    reads: list[int] = []
    session.ib.openTrades = lambda: reads.append(1) or list(trades)  # type: ignore[method-assign]
    broker = IBBroker(session)

    def working(**exclude) -> float:
        return broker.working_quantity(1, "AAPL", "STK", "SELL", **exclude)

    with shared_reads():
        inside = [working(), working(exclude_order_id=1), working(exclude_oca="bracket")]
        trades.append(trade(3, 100.0))  # placed meanwhile: not seen until the next batch
        inside.append(working())
    assert inside == [8.0, 3.0, 5.0, 8.0] and len(reads) == 1
    assert working() == 108.0 and working(exclude_order_id=3) == 8.0 and len(reads) == 3


def test_a_batch_reads_the_position_groups_once_and_a_change_drops_them() -> None:
    """trader_service's in-memory groups (the gate's and the what-if's): a batch's concurrent checks on a cold
    cache share ONE store read (each ran its own before: 70 DuckDB reads ~100 ms each on the first bar close)."""
    from types import SimpleNamespace

    from trader.trader_service import TraderService

    reads: list[int] = []

    def read() -> list[str]:
        reads.append(1)
        import time

        time.sleep(0.02)
        return [f"group-{len(reads)}"]

    svc = SimpleNamespace(_groups_cache=None, _groups_reading=None,
                          pipeline=SimpleNamespace(groups=SimpleNamespace(list=read)))

    async def main() -> tuple[list, list, list]:
        first = await asyncio.gather(*(TraderService._all_groups(svc) for _ in range(20)))
        again = await TraderService._all_groups(svc)
        svc._groups_cache = svc._groups_reading = None  # what a `group` change does
        return list(first), again, await TraderService._all_groups(svc)

    first, again, after = asyncio.run(main())
    assert len(reads) == 2 and all(g == ["group-1"] for g in first) and again == ["group-1"]
    assert after == ["group-2"]
