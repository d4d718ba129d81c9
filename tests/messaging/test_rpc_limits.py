"""RPCServer admission: requests in flight per client (Busy) and readiness (ServiceStarting)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import zmq

from trader.config import load_trader_config, mmr_paths
from trader.errors import Busy, ServiceStarting
from trader.messaging.codec import packb, unpackb
from trader.messaging.rpc import RPCClient, RPCServer, rpcmethod
from trader.service import Service
from trader.testing import free_port, platform_env, run_async

from .conftest import LoopThread


class Slow:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    @rpcmethod
    async def wait(self) -> str:
        self.started += 1
        await self.release.wait()
        return "done"

    @rpcmethod
    def ping(self) -> str:
        return "pong"

    @rpcmethod
    def work(self) -> str:
        return "worked"


def _dealer(address: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    return sock


def _replies(sock: zmq.Socket, n: int, timeout_ms: int = 5000) -> dict[int, dict]:
    out: dict[int, dict] = {}
    while len(out) < n and sock.poll(timeout_ms):
        reply = unpackb(sock.recv())
        out[reply["i"]] = reply
    return out


def test_a_client_over_its_limit_gets_busy_and_others_are_served(loop_thread: LoopThread) -> None:
    handler = Slow()
    server = RPCServer(handler, max_in_flight=4)
    with loop_thread.serving(server):
        flooder = _dealer(server.address)
        try:
            for i in range(10):
                flooder.send(packb({"i": i, "m": "wait", "a": [], "k": {}}))
            busy = _replies(flooder, 6)  # the 6 over the limit are answered at once
            assert sorted(busy) == [4, 5, 6, 7, 8, 9]
            assert all(r["e"]["type"] == "Busy" for r in busy.values())
            # the 4 admitted requests are tasks: they start on the loop's next turns, after the Busy replies
            for _ in range(500):
                if loop_thread.call(lambda: handler.started) == 4:
                    break
                time.sleep(0.01)
            assert loop_thread.call(lambda: handler.started) == 4
            with RPCClient(server.address, timeout=5) as other:  # another client still gets its slots
                assert other.call("ping") == "pong"
            loop_thread.call(handler.release.set)
            done = _replies(flooder, 4)
            assert sorted(done) == [0, 1, 2, 3] and all(r["r"] == "done" for r in done.values())
            # finished requests free their slots
            loop_thread.call(handler.release.clear)
            flooder.send(packb({"i": 99, "m": "wait", "a": [], "k": {}}))
            loop_thread.call(handler.release.set)
            assert _replies(flooder, 1)[99]["r"] == "done"
            assert loop_thread.call(lambda: dict(server._in_flight)) == {}
        finally:
            flooder.close()


def test_busy_comes_back_as_a_retryable_error(loop_thread: LoopThread) -> None:
    handler = Slow()
    server = RPCServer(handler, max_in_flight=0)
    with loop_thread.serving(server), RPCClient(server.address, timeout=5) as client:
        with pytest.raises(Busy):
            client.call("wait")
        assert client.call("work") == "worked"  # sync handlers never hold a slot


def test_until_ready_only_ping_and_status_run(loop_thread: LoopThread) -> None:
    handler = Slow()
    state = {"ready": False}
    server = RPCServer(handler, ready=lambda: state["ready"])
    with loop_thread.serving(server), RPCClient(server.address, timeout=5) as client:
        assert client.call("ping") == "pong"
        with pytest.raises(ServiceStarting):
            client.call("work")
        with pytest.raises(ServiceStarting):
            client.call("wait")
        assert handler.started == 0
        state["ready"] = True
        assert client.call("work") == "worked"


class GatedService(Service):
    """A service whose on_start waits for the test to let it finish."""

    name = "gated_service"

    def __init__(self, *args: object, port: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.port = port
        self.release = asyncio.Event()
        self.pipeline: str | None = None

    def rpc_port(self) -> int:
        return self.port

    async def on_start(self) -> None:
        await self.release.wait()
        self.pipeline = "built"

    def details(self) -> dict[str, object]:
        return {"pipeline": self.pipeline.upper()}  # fails before on_start, like a real service's would

    @rpcmethod
    def use_pipeline(self) -> str:
        assert self.pipeline is not None
        return self.pipeline


@run_async(timeout=30)
async def test_service_answers_service_starting_until_on_start_finishes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in platform_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    paths = mmr_paths().ensure()
    service = GatedService(load_trader_config(paths), paths, port=free_port())
    run = asyncio.create_task(service.run())
    address = f"tcp://127.0.0.1:{service.port}"

    def call(method: str) -> object:
        with RPCClient(address, timeout=5, key=service.client_key()) as client:  # services key: CURVE is on
            return client.call(method)

    try:
        assert await asyncio.to_thread(call, "ping") == "pong"
        status = await asyncio.to_thread(call, "status")
        assert status.ready is False and status.details == {}
        with pytest.raises(ServiceStarting):
            await asyncio.to_thread(call, "use_pipeline")
        service.release.set()
        while not service.ready:
            await asyncio.sleep(0.01)
        assert await asyncio.to_thread(call, "use_pipeline") == "built"
        status = await asyncio.to_thread(call, "status")
        assert status.ready is True and status.details == {"pipeline": "BUILT"}
    finally:
        service.request_stop()
        await run
