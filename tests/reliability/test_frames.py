"""Hostile frames never take a server down: the codec, each server in-process, and the real service processes.

The codec may only ever return a value or raise DecodeError; a server answers what it can with an error
document and then serves a normal request as before; a real service keeps its pid and answers ``ping``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
import zmq.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.errors import DecodeError
from trader.messaging import codec
from trader.messaging.bus import AsyncMessageBusClient, MessageBusClient, MessageBusServer
from trader.messaging.fuzz import NESTING_CODES, bus_frames, corpus, mutate, nested_ext, rpc_frames
from trader.messaging.pubsub import Subscriber
from trader.messaging.rpc import AsyncRPCClient, RPCClient, RPCServer, rpcmethod
from trader.testing import SERVICES, Platform, run_async, running_platform

CORPUS = corpus()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_error(data: bytes) -> Any:
    """unpackb's only allowed outcomes: a value, or DecodeError (returned, to be asserted on)."""
    try:
        return codec.unpackb(data)
    except DecodeError as exc:
        return exc


# --------------------------------------------------------------------------- codec
@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    decode_or_error(data)  # anything but a value or DecodeError propagates and fails the test


@FUZZ
@given(st.sampled_from(CORPUS), st.integers(0, 2**32))
def test_mutated_valid_messages_decode_or_raise_decode_error(message: bytes, seed: int) -> None:
    decode_or_error(mutate(message, random.Random(seed)))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(CORPUS), st.data())
def test_truncated_messages_raise_decode_error(message: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(message) - 1))
    assert isinstance(decode_or_error(message[:cut]), DecodeError)


@settings(max_examples=60, deadline=None)
@given(st.integers(codec.MAX_EXT_DEPTH, 400), st.integers(0, 2**32))
def test_ext_nesting_beyond_the_limit_is_a_decode_error(depth: int, seed: int) -> None:
    result = decode_or_error(nested_ext(depth, NESTING_CODES, random.Random(seed)))
    assert isinstance(result, DecodeError)


def test_the_reported_crash_frame_and_the_deepest_allowed_nesting() -> None:
    crash = nested_ext(200)  # ~200 nested ext-7 payloads: used to SIGSEGV every service
    assert isinstance(decode_or_error(crash), DecodeError)
    # the limit is exact: MAX_EXT_DEPTH tuples decode (nested_ext adds one wrapper), one more does not
    value = codec.unpackb(nested_ext(codec.MAX_EXT_DEPTH - 1))
    for _ in range(codec.MAX_EXT_DEPTH - 1):
        assert type(value) is tuple and len(value) == 1
        value = value[0]
    assert value == (1,)
    assert isinstance(decode_or_error(nested_ext(codec.MAX_EXT_DEPTH)), DecodeError)
    # the depth counter is reset after a refusal: the allowed depth still decodes
    assert codec.unpackb(nested_ext(codec.MAX_EXT_DEPTH - 1)) is not None


def test_nesting_is_refused_in_a_thread_with_a_small_stack() -> None:
    # 1 MB: what a thread might get on another platform; an unbounded decoder overflows it in ~20 levels.
    outcomes: list[Any] = []
    old = threading.stack_size(1024 * 1024)
    try:
        thread = threading.Thread(target=lambda: outcomes.extend(
            [decode_or_error(nested_ext(300)), decode_or_error(nested_ext(codec.MAX_EXT_DEPTH - 1))]))
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    assert isinstance(outcomes[0], DecodeError) and type(outcomes[1]) is tuple


def _ipc(table: Any, compression: str | None = None) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression) if compression else None
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return msgpack.packb(msgpack.ExtType(codec.EXT_PD_DATAFRAME, sink.getvalue().to_pybytes()))


def test_arrow_streams_compressed_or_inflating_are_refused() -> None:
    import pyarrow as pa

    table = pa.table({"close": [1.0, 2.0] * 500})
    assert codec.unpackb(_ipc(table))["close"].sum() == 1500.0
    for compression in ("zstd", "lz4"):  # compressed buffers declare their own inflated size
        with pytest.raises(DecodeError, match="compressed"):
            codec.unpackb(_ipc(table, compression))
    bomb = _ipc(pa.table({"n": pa.nulls(100_000_000)}))  # ~300 bytes that pandas would make 800 MB of
    assert len(bomb) < 1000
    with pytest.raises(DecodeError, match="limit"):
        codec.unpackb(bomb)


def test_decode_errors_quote_wire_data_briefly() -> None:
    forged = msgpack.packb(msgpack.ExtType(codec.EXT_ENUM, msgpack.packb(["x" * 100_000, "A"])))
    err = decode_or_error(forged)
    assert isinstance(err, DecodeError) and len(str(err)) <= codec.MAX_ERROR_CHARS + 1


# --------------------------------------------------------------------------- servers in-process
class Echo:
    @rpcmethod
    def echo(self, value: Any) -> Any:
        return value

    @rpcmethod
    async def later(self, value: Any) -> Any:
        await asyncio.sleep(0)
        return value


def _long_records(caplog: pytest.LogCaptureFixture, limit: int = 2000) -> list[str]:
    return [r.getMessage()[:200] for r in caplog.records if len(r.getMessage()) > limit]


@run_async(timeout=60)
async def test_rpc_server_answers_every_hostile_frame_and_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "trader.messaging")
    rng = random.Random(1301)
    limit = 64 * 1024
    async with RPCServer(Echo(), max_message_bytes=limit) as server:
        ctx = zmq.asyncio.Context.instance()
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(server.address)
        try:
            frames = list(rpc_frames(rng, 400, oversized=limit + 100))
            for message in frames:
                await raw.send_multipart(message)
            replies = []
            while len(replies) < len(frames):
                async with asyncio.timeout(10):
                    replies.append(codec.unpackb((await raw.recv_multipart())[-1]))
            # one answer per frame, each an error document (or a result, when a mutation stayed a valid call)
            assert all(type(r) is dict and ("e" in r or "r" in r) for r in replies)
            kinds = {r["e"]["type"] for r in replies if "e" in r}
            assert {"DecodeError", "MessageTooLarge"} <= kinds
            async with AsyncRPCClient(server.address, timeout=5) as client:
                assert await client.call("echo", {"ok": (1, 2)}) == {"ok": (1, 2)}
                assert await client.call("later", "still here") == "still here"
        finally:
            raw.close()
    assert not _long_records(caplog)


@run_async(timeout=60)
async def test_rpc_server_drops_a_sender_far_over_the_limit_and_serves_others() -> None:
    async with RPCServer(Echo(), max_message_bytes=4096) as server:
        raw = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(server.address)
        try:
            await raw.send(b"\x00" * 100_000)  # over 4x the limit: zmq disconnects the sender unread
            async with AsyncRPCClient(server.address, timeout=5) as client:
                assert await client.call("echo", 7) == 7
        finally:
            raw.close()


def test_subscriber_skips_hostile_publications_and_logs_them_briefly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "trader.messaging")
    rng = random.Random(1302)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Subscriber(f"tcp://127.0.0.1:{port}", ["t."]) as sub:
            while sub.recv(timeout=0.05) is None:  # slow joiner: until the subscription has arrived
                pub.send_multipart([b"t.hello", codec.packb("hello")])
            hostile = [[b"t.x", m[-1]] for m in rpc_frames(rng, 200, oversized=2_000_000)]
            hostile += [[b"t.x"], [b"t.\xff", codec.packb(1)], [b"t.x", b"a", b"b"]]
            for message in hostile:
                pub.send_multipart(message)
            pub.send_multipart([b"t.end", codec.packb({"end": True})])
            got = []
            while (message := sub.recv(timeout=10)) is not None:
                got.append(message)
                if message[0] == "t.end":
                    break
            assert got[-1] == ("t.end", {"end": True})
    finally:
        pub.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 5  # one per 10 s per subscriber, not one per junk message
    assert not _long_records(caplog)


@run_async(timeout=60)
async def test_message_bus_survives_hostile_frames_and_logs_them_briefly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "trader.messaging")
    rng = random.Random(1303)
    async with MessageBusServer(sweep_interval=0) as bus:
        ctx = zmq.asyncio.Context.instance()
        async with AsyncMessageBusClient(bus.address, name="listener") as listener:
            await listener.subscribe("fuzz.*")
            raw = ctx.socket(zmq.DEALER)
            raw.setsockopt(zmq.LINGER, 0)
            raw.connect(bus.address)
            try:
                for message in bus_frames(rng, 300, big=8 * 1024 * 1024):  # includes the 8 MB junk frame
                    await raw.send_multipart(message)
                await raw.send_multipart([b"ping", b"after"])
                async with asyncio.timeout(20):
                    while (await raw.recv_multipart()) != [b"pong", b"after"]:
                        pass
            finally:
                raw.close()
            # junk payloads were relayed to the subscriber, which dropped them; real ones still arrive
            await listener.publish("fuzz.real", {"n": 1})
            assert await listener.recv(timeout=10) == ("fuzz.real", {"n": 1})
            await listener.ping()
    assert not _long_records(caplog)
    bus_warnings = [r for r in caplog.records if r.name == "trader.messaging.bus" and r.levelno >= logging.WARNING]
    assert 1 <= len(bus_warnings) <= 6  # rate-limited per peer


# --------------------------------------------------------------------------- real service processes
@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    # 1 MB message limit so an oversized (and a >4x) frame is cheap to send
    with running_platform(tmp_path_factory.mktemp("frames"), MAX_MESSAGE_BYTES=str(1024 * 1024)) as p:
        yield p


def _raw_dealer(p: Platform, address: str, role: str = "operator") -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    key = p.client_key(role)
    if key is not None:  # the services run CURVE: junk must come from an authenticated peer to reach them
        key.apply(sock)
    sock.connect(address)
    return sock


def _send_all(sock: zmq.Socket, frames: list[list[bytes]]) -> None:
    for message in frames:
        sock.send_multipart(message)


def test_services_survive_hostile_frames_on_every_port(platform: Platform) -> None:
    pids = {name: platform.procs[name].pid for name in SERVICES}
    rng = random.Random(1304)
    hostile = [[nested_ext(200)], [nested_ext(200)] * 2]  # the reported crash frame, alone and with a spare frame
    hostile += list(rpc_frames(rng, 80, oversized=3 * 1024 * 1024))  # over the 1 MB limit: MessageTooLarge
    for name in SERVICES:
        with _raw_dealer(platform, platform.endpoint(name)) as raw:
            _send_all(raw, hostile)
            answered = 0
            while answered < len(hostile) and raw.poll(10_000):
                reply = codec.unpackb(raw.recv_multipart()[-1])
                assert type(reply) is dict and ("e" in reply or "r" in reply)
                answered += 1
            assert answered == len(hostile)  # every frame got its error document
        with _raw_dealer(platform, platform.endpoint(name)) as raw:
            raw.send(b"\x00" * (5 * 1024 * 1024))  # over 4x the limit: zmq drops the connection unread
    bus_address = f"tcp://127.0.0.1:{platform.env['STRATEGY_BUS_PORT']}"
    with _raw_dealer(platform, bus_address, "services") as raw:
        _send_all(raw, list(bus_frames(rng, 120, big=512 * 1024)))
        raw.send_multipart([b"ping", b"after"])
        assert raw.poll(10_000)
        while raw.recv_multipart() != [b"pong", b"after"]:
            assert raw.poll(10_000)
    for name in SERVICES:
        assert platform.procs[name].poll() is None, f"{name} died"
        assert platform.procs[name].pid == pids[name]
        with platform.client(name, timeout=5) as client:
            assert client.call("ping") == "pong"
    with MessageBusClient(bus_address, key=platform.client_key("services"), timeout=5) as bus:
        bus.ping()


def test_a_flood_from_one_client_does_not_lock_out_another(platform: Platform) -> None:
    with _raw_dealer(platform, platform.endpoint("trader_service")) as flooder, \
            platform.client("trader_service", timeout=10) as other:
        _send_all(flooder, [[codec.packb({"i": i, "m": "status", "a": [], "k": {}})] for i in range(3000)])
        assert other.call("ping") == "pong"
        answered = 0
        while answered < 3000 and flooder.poll(10_000):
            flooder.recv_multipart()
            answered += 1
        assert answered == 3000


def test_raw_rpc_client_is_unaffected_by_stale_hostile_replies(platform: Platform) -> None:
    # a normal client after all the above: a fresh request/reply works end to end
    with RPCClient(platform.endpoint("data_service"), key=platform.client_key(), timeout=5) as client:
        assert client.call("ping") == "pong"


# --------------------------------------------------------------------------- Hypothesis over the real servers
def _hostile_frame() -> st.SearchStrategy[bytes]:
    """One frame a broken or malicious peer might send: random bytes, a mutated or truncated valid message,
    ext payloads nested past the limit, or a well-formed map with wrong fields."""
    return st.one_of(
        st.binary(max_size=512),
        st.builds(lambda m, seed: mutate(m, random.Random(seed)), st.sampled_from(CORPUS), st.integers(0, 2**32)),
        st.builds(lambda m, cut: m[:cut % len(m)], st.sampled_from(CORPUS), st.integers(0, 2**16)),
        st.builds(lambda depth, seed: nested_ext(depth, NESTING_CODES, random.Random(seed)),
                  st.integers(codec.MAX_EXT_DEPTH, 300), st.integers(0, 2**32)),
        st.builds(codec.packb, st.dictionaries(
            st.sampled_from(["i", "m", "a", "k"]),
            st.one_of(st.none(), st.integers(-2**63, 2**64 - 1), st.text(max_size=16), st.binary(max_size=16),
                      st.lists(st.integers(-2**63, 2**64 - 1), max_size=3)))),  # msgpack's integer range
    )


BUS_COMMANDS = [b"sub", b"unsub", b"pub", b"ping", b"bye", b"pong", b"msg", b"ack", b""]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(SERVICES), messages=st.lists(st.lists(_hostile_frame(), min_size=1, max_size=3),
                                                           min_size=1, max_size=4))
def test_hypothesis_frames_to_each_service_are_answered_and_leave_its_pid(platform: Platform, target: str,
                                                                         messages: list[list[bytes]]) -> None:
    pid = platform.procs[target].pid
    with _raw_dealer(platform, platform.endpoint(target)) as raw:
        _send_all(raw, messages)
        answered = 0
        while answered < len(messages) and raw.poll(20_000):
            reply = codec.unpackb(raw.recv_multipart()[-1])
            assert type(reply) is dict and ("e" in reply or "r" in reply)
            answered += 1
        assert answered == len(messages)  # one error document (or result) per message
    assert platform.procs[target].poll() is None and platform.procs[target].pid == pid, f"{target} died"
    with platform.client(target, timeout=20) as client:
        assert client.call("ping") == "pong"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.one_of(
    st.tuples(st.sampled_from(BUS_COMMANDS), st.lists(st.binary(max_size=64), max_size=4)).map(
        lambda t: [t[0], *t[1]]),
    st.tuples(st.sampled_from([b"fuzz.junk", b"t" * 2000, b"\xff\xfe"]), _hostile_frame()).map(
        lambda t: [b"pub", t[0], t[1]])), min_size=1, max_size=6))
def test_hypothesis_frames_to_the_bus_leave_it_serving(platform: Platform, messages: list[list[bytes]]) -> None:
    host = platform.procs["strategy_service"]  # the MessageBus lives in strategy_service
    pid = host.pid
    with _raw_dealer(platform, f"tcp://127.0.0.1:{platform.env['STRATEGY_BUS_PORT']}", "services") as raw:
        _send_all(raw, messages)
        raw.send_multipart([b"ping", b"after"])
        while True:  # the bus answers in order: junk first (acks, pongs, or nothing), then our ping
            assert raw.poll(20_000), "the bus stopped answering"
            if raw.recv_multipart() == [b"pong", b"after"]:
                break
    assert host.poll() is None and host.pid == pid
