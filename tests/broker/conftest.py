"""Broker-adapter fixtures: a simulated gateway on a free port with a real ``ib_async.IB`` connected to it.

Tests are ``@run_async`` coroutines (no pytest-asyncio), so the fixture hands out an async context manager::

    @run_async
    async def test_x(sim_broker):
        async with sim_broker() as b:
            await b.placer.place(b.aapl, req, 10)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from ib_async import IB, Contract

from trader.broker.contracts import ContractResolver, MemoryContractCache
from trader.broker.placement import OrderPlacer
from trader.sim import testkit
from trader.sim.gateway import SimGateway

AAPL_CON_ID = 265598
ACCOUNT = "DU0000001"


@dataclass
class SimBroker:
    """One gateway + one connected client + the adapter objects under test."""

    gw: SimGateway
    ib: IB
    placer: OrderPlacer
    resolver: ContractResolver
    cache: MemoryContractCache
    aapl: Contract
    aapl_dict: dict[str, Any]

    def move(self, con_id: int, price: float) -> None:
        """Pin the simulated price (a second passes so the tick loop sees it)."""
        self.gw.clock.advance(timedelta(seconds=1))
        self.gw.market.set_price(con_id, price)

    def quote(self, con_id: int = AAPL_CON_ID):
        """The gateway's current quote (bid/ask/last) for ``con_id``."""
        return self.gw.market.quote(con_id)


@pytest.fixture
def sim_broker(tmp_path) -> Callable[..., contextlib.AbstractAsyncContextManager[SimBroker]]:
    """Factory: ``async with sim_broker(**gateway_kwargs) as b`` → :class:`SimBroker` (AAPL resolved)."""

    @contextlib.asynccontextmanager
    async def start(**kw: Any) -> AsyncIterator[SimBroker]:
        async with testkit.connected(tmp_path, **kw) as (gw, ib):
            cache = MemoryContractCache()
            resolver = ContractResolver(ib, cache, timeout=5.0)
            placer = OrderPlacer(ib, ack_timeout=3.0, cancel_timeout=3.0, snapshot_timeout=3.0)
            aapl_dict = await resolver.resolve("AAPL")
            aapl = await resolver.qualified(aapl_dict)
            yield SimBroker(gw, ib, placer, resolver, cache, aapl, aapl_dict)

    return start
