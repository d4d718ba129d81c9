"""RPC over real zmq sockets on loopback: results, errors, concurrency, timeouts, garbage resistance."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import zmq

from trader.errors import DecodeError, EncodeError, MessageTooLarge, MMRError, RPCError, RPCTimeout
from trader.messaging.codec import packb, unpackb, wire
from trader.messaging.rpc import AsyncRPCClient, RPCClient, RPCServer, rpcmethod

from .conftest import LoopThread, free_port


class QuoteStale(MMRError):
    """A project error type: registered by subclassing MMRError."""


class LocalOnlyError(Exception):
    """Not a builtin, not an MMRError: unknown to the error table."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)


@wire(name="test.rpc.Fill")
@dataclass(frozen=True, slots=True)
class Fill:
    symbol: str
    qty: Decimal
    at: dt.datetime


class Handler:
    def __init__(self) -> None:
        self.gate = asyncio.Event()

    @rpcmethod
    def echo(self, *args: object, **kwargs: object) -> object:
        return [args, kwargs]

    @rpcmethod(name="add")
    def _add(self, a: int, b: int) -> int:
        return a + b

    @rpcmethod
    def fill(self, symbol: str, qty: Decimal) -> Fill:
        return Fill(symbol, qty, dt.datetime(2024, 1, 2, 15, 0, tzinfo=dt.UTC))

    @rpcmethod
    def fail(self, kind: str) -> None:
        if kind == "value":
            raise ValueError("bad quantity", 3)
        if kind == "key":
            raise KeyError("AAPL")
        if kind == "timeout":
            raise TimeoutError("gateway slow")
        if kind == "mmr":
            raise QuoteStale("quote older than 5s")
        raise LocalOnlyError(42, "local trouble")

    @rpcmethod
    def unencodable(self) -> object:
        return object()

    @rpcmethod
    async def slow(self, delay: float, value: object) -> object:
        await asyncio.sleep(delay)
        return value

    @rpcmethod
    async def wait_for_gate(self) -> str:
        await self.gate.wait()
        return "released"

    @rpcmethod
    def open_gate(self) -> None:
        self.gate.set()

    @rpcmethod
    async def async_fail(self) -> None:
        await asyncio.sleep(0)
        raise QuoteStale("async stale")

    def not_exposed(self) -> str:
        return "secret"


@pytest.fixture
def server(loop_thread: LoopThread) -> Iterator[RPCServer]:
    with loop_thread.serving(RPCServer(Handler(), max_message_bytes=64 * 1024)) as srv:
        yield srv


@pytest.fixture
def client(server: RPCServer) -> Iterator[RPCClient]:
    with RPCClient(server.address, timeout=5.0) as c:
        yield c


def test_server_binds_ephemeral_port_and_lists_methods(server: RPCServer) -> None:
    assert server.port and server.port > 0
    assert server.address == f"tcp://127.0.0.1:{server.port}"
    assert "add" in server.methods and "_add" not in server.methods and "not_exposed" not in server.methods


def test_results_round_trip_with_ext_types(client: RPCClient) -> None:
    assert client.rpc().add(2, b=3) == 5
    assert client.call("echo", (1, 2), {3}, k=dt.date(2024, 1, 2)) == [((1, 2), {3}), {"k": dt.date(2024, 1, 2)}]
    f = client.rpc(timeout=3).fill("AAPL", qty=Decimal("1.5"))
    assert f == Fill("AAPL", Decimal("1.5"), dt.datetime(2024, 1, 2, 15, 0, tzinfo=dt.UTC))


def test_only_marked_methods_are_callable(client: RPCClient) -> None:
    for name in ["not_exposed", "_add", "__init__", "nope"]:
        with pytest.raises(AttributeError, match=name):
            client.call(name)
    assert client.rpc().add(1, 1) == 2  # still serving


@pytest.mark.parametrize(
    ("kind", "exc_type", "args"),
    [
        ("value", ValueError, ("bad quantity", 3)),
        ("key", KeyError, ("AAPL",)),
        ("timeout", TimeoutError, ("gateway slow",)),
        ("mmr", QuoteStale, ("quote older than 5s",)),
    ],
)
def test_known_exceptions_come_back_as_themselves(
    client: RPCClient, kind: str, exc_type: type, args: tuple
) -> None:
    with pytest.raises(exc_type) as info:
        client.rpc().fail(kind)
    assert type(info.value) is exc_type
    assert info.value.args == args


def test_unknown_exception_comes_back_as_rpc_error(client: RPCClient) -> None:
    with pytest.raises(RPCError) as info:
        client.rpc().fail("local")
    err = info.value
    assert err.remote_type == "LocalOnlyError"
    assert err.remote_message == str(LocalOnlyError(42, "local trouble"))
    assert err.remote_args == (42, "local trouble")


def test_async_handler_exception_and_unencodable_result(client: RPCClient) -> None:
    with pytest.raises(QuoteStale, match="async stale"):
        client.rpc().async_fail()
    with pytest.raises(EncodeError, match="object"):
        client.rpc().unencodable()
    assert client.rpc().add(1, 2) == 3


def test_unencodable_argument_fails_at_sender(client: RPCClient) -> None:
    with pytest.raises(EncodeError, match="Handler"):
        client.rpc().echo(Handler())
    assert client.rpc().add(1, 2) == 3


def test_bad_arguments_are_an_error_reply(client: RPCClient) -> None:
    with pytest.raises(TypeError):
        client.rpc().add(1)
    with pytest.raises(TypeError):
        client.rpc().slow()  # async handler called with wrong arguments
    assert client.rpc().add(1, 2) == 3


def test_concurrent_clients_in_threads(server: RPCServer) -> None:
    errors: list[BaseException] = []
    results: dict[int, list[int]] = {}

    def worker(n: int) -> None:
        try:
            with RPCClient(server.address, timeout=10) as c:
                results[n] = [c.rpc().add(n, i) for i in range(200)]
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {n: [n + i for i in range(200)] for n in range(8)}


def test_concurrent_clients_in_processes(server: RPCServer) -> None:
    code = (
        "import sys\n"
        "from trader.messaging.rpc import RPCClient\n"
        "n = int(sys.argv[1])\n"
        "with RPCClient(sys.argv[2], timeout=10) as c:\n"
        "    assert [c.rpc().add(n, i) for i in range(300)] == [n + i for i in range(300)]\n"
        "print('ok', n)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(n), server.address], stdout=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outs == ["ok 0", "ok 1", "ok 2"]


def test_async_handlers_run_concurrently(server: RPCServer) -> None:
    # wait_for_gate only returns once open_gate is served: if async handlers blocked the loop, it never would.
    waiter_result: list[object] = []

    def waiter() -> None:
        with RPCClient(server.address, timeout=10) as c:
            waiter_result.append(c.rpc().wait_for_gate())

    t = threading.Thread(target=waiter)
    t.start()
    with RPCClient(server.address, timeout=5) as c:
        assert c.rpc().add(1, 2) == 3  # served while wait_for_gate is pending
        c.rpc().open_gate()
    t.join(10)
    assert waiter_result == ["released"]


def test_async_client_many_concurrent_callers(server: RPCServer) -> None:
    async def main() -> list[object]:
        async with AsyncRPCClient(server.address, timeout=10) as c:
            calls = [c.rpc().slow(0.01 * (i % 5), i) for i in range(50)]
            calls += [c.call("add", i, 1000) for i in range(50)]
            return await asyncio.gather(*calls)

    assert asyncio.run(main()) == list(range(50)) + [i + 1000 for i in range(50)]


def test_async_client_errors_and_timeout(server: RPCServer) -> None:
    async def main() -> None:
        async with AsyncRPCClient(server.address, timeout=5) as c:
            with pytest.raises(QuoteStale):
                await c.rpc().fail("mmr")
            with pytest.raises(RPCTimeout, match="slow"):
                await c.rpc(timeout=0.1).slow(0.5, "late")
            assert await c.rpc().add(2, 2) == 4
            await asyncio.sleep(0.6)  # the late reply arrives now and must be discarded
            assert await c.rpc().add(3, 3) == 6

    asyncio.run(main())


def test_timeout_against_nonexistent_endpoint() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with RPCClient(address, timeout=0.3) as c:
        t0 = time.monotonic()
        with pytest.raises(RPCTimeout) as info:
            c.rpc().place_order("AAPL", qty=1)
        assert time.monotonic() - t0 < 2.0  # returns (does not hang); generous bound for loaded CI
        assert address in str(info.value) and "place_order" in str(info.value)
        with pytest.raises(RPCTimeout):  # still usable: same answer, not a hang or a crash
            c.call("again", timeout=0.1)


def test_timeout_against_silent_endpoint_then_late_reply_is_discarded(
    server: RPCServer, loop_thread: LoopThread
) -> None:
    ctx = zmq.Context.instance()
    silent = ctx.socket(zmq.ROUTER)
    silent.setsockopt(zmq.LINGER, 0)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        with RPCClient(f"tcp://127.0.0.1:{port}", timeout=0.2) as c, pytest.raises(RPCTimeout, match="quote"):
            c.rpc().quote("AAPL")
    finally:
        silent.close()

    with RPCClient(server.address, timeout=5) as c:
        with pytest.raises(RPCTimeout):
            c.rpc(timeout=0.1).slow(0.4, "late")
        time.sleep(0.5)  # the late reply for the timed-out call has been sent by now
        assert c.rpc().echo("fresh") == [("fresh",), {}]


def test_garbage_does_not_kill_the_server(server: RPCServer) -> None:
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.RCVTIMEO, 5000)
    raw.connect(server.address)
    try:
        garbage: list[list[bytes]] = [
            [b"\xc1"],
            [b""],
            [b"a", b"b", b"c"],
            [packb([1, 2, 3])],
            [packb({"i": 7})],
            [packb({"i": 8, "m": 5})],
            [packb({"i": 9, "m": "add", "a": "notalist"})],
            [packb({"i": 10, "m": "add", "a": [1, 2], "k": [1]})],
            [b"\x92\x01"],
        ]
        for frames in garbage:
            raw.send_multipart(frames)
            reply = unpackb(raw.recv_multipart()[-1])  # every one gets an error reply
            assert "e" in reply and "r" not in reply
        # ids are echoed where the server could read them
        raw.send_multipart([packb({"i": 7})])
        reply = unpackb(raw.recv_multipart()[-1])
        assert reply["i"] == 7 and reply["e"]["type"] == "DecodeError"
    finally:
        raw.close()
    with RPCClient(server.address, timeout=5) as c:
        assert c.rpc().add(40, 2) == 42


def test_oversized_request_gets_message_too_large(client: RPCClient, server: RPCServer) -> None:
    with pytest.raises(MessageTooLarge):
        client.rpc().echo("x" * (server.max_message_bytes + 1))
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.RCVTIMEO, 5000)
    raw.connect(server.address)
    try:
        raw.send(b"\xff" * (server.max_message_bytes + 10))  # oversized and not even msgpack
        reply = unpackb(raw.recv())
        assert reply["i"] is None and reply["e"]["type"] == "MessageTooLarge"
    finally:
        raw.close()
    with pytest.raises(MessageTooLarge):  # a reply over the limit is refused too
        client.rpc().echo("y" * (server.max_message_bytes // 2), "z" * (server.max_message_bytes // 2))
    assert client.rpc().add(1, 1) == 2


def test_req_socket_peer_is_answered(server: RPCServer) -> None:
    raw = zmq.Context.instance().socket(zmq.REQ)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.RCVTIMEO, 5000)
    raw.connect(server.address)
    try:
        raw.send(packb({"i": 1, "m": "add", "a": [2, 2], "k": {}}))
        assert unpackb(raw.recv()) == {"i": 1, "r": 4}
    finally:
        raw.close()


def test_closed_client_and_decode_error_type() -> None:
    c = RPCClient(f"tcp://127.0.0.1:{free_port()}")
    c.close()
    with pytest.raises(MMRError, match="closed"):
        c.call("x")
    assert issubclass(DecodeError, ValueError)
