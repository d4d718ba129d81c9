"""Test support for the simulated gateway: start one on a free port in a temp dir and connect ``ib_async`` to it.

    from trader.sim.testkit import START, connected, gateway
    from trader.testing import run_async, until

    @run_async
    async def test_something(tmp_path):
        async with connected(tmp_path) as (gw, ib):
            ...

The clock is manual and starts at :data:`START`, so prices only move when a test advances ``gw.clock``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ib_async import IB

from trader.sim.clock import SimClock
from trader.sim.gateway import SimGateway

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def gateway_kwargs(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    """``SimGateway`` arguments for a test: free port, state in ``tmp_path/"sim"``, manual clock at START, fast ticks.

    ``kw`` adds to or overrides any of them.
    """
    return {"port": 0, "state_dir": tmp_path / "sim", "clock": SimClock(start=START, manual=True),
            "tick_interval": 0.02, **kw}


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, **kw: Any) -> AsyncIterator[SimGateway]:
    """A started ``SimGateway`` (see :func:`gateway_kwargs`), stopped on exit."""
    async with SimGateway(**gateway_kwargs(tmp_path, **kw)) as gw:
        yield gw


async def connect(gw: SimGateway, client_id: int = 1, timeout: float = 5,
                  errors: list[tuple[int, int]] | None = None) -> IB:
    """A new ``ib_async.IB`` connected to ``gw``; ``errors`` (if given) collects every ``(reqId, code)`` it gets,
    from the connect handshake on."""
    ib = IB()
    if errors is not None:
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=timeout)
    return ib


@contextlib.asynccontextmanager
async def connected(tmp_path: Path, client_id: int = 1, *, errors: list[tuple[int, int]] | None = None,
                    **kw: Any) -> AsyncIterator[tuple[SimGateway, IB]]:
    """``(gateway, ib)``: a started gateway (``kw`` as for :func:`gateway`) and one client connected to it."""
    async with gateway(tmp_path, **kw) as gw:
        ib = await connect(gw, client_id, errors=errors)
        try:
            yield gw, ib
        finally:
            ib.disconnect()
