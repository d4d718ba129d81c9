"""Shared fixtures: an asyncio loop in a background thread (servers live there, sync clients call in)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from trader.testing import free_port as free_port  # re-exported: the tests import it from here

S = TypeVar("S")


class LoopThread:
    """An event loop running in a daemon thread; ``run(coro)`` executes a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)

        return self.run(wrapper())

    @contextlib.contextmanager
    def serving(self, server: S) -> Iterator[S]:
        """Run ``server`` (anything with ``async start()``/``stop()``) on this loop for the block."""
        self.run(server.start())  # type: ignore[attr-defined]
        try:
            yield server
        finally:
            self.run(server.stop())  # type: ignore[attr-defined]

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()
