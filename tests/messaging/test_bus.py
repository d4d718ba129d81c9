"""MessageBus: acknowledged subscriptions, routing only to subscribers, dead clients, garbage resistance."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
import zmq

from trader.errors import RPCTimeout
from trader.messaging.bus import AsyncMessageBusClient, MessageBusClient, MessageBusServer
from trader.messaging.codec import packb

from .conftest import LoopThread, free_port


@pytest.fixture
def bus(loop_thread: LoopThread) -> Iterator[MessageBusServer]:
    # sweeps are triggered explicitly in tests
    with loop_thread.serving(MessageBusServer(sweep_interval=0)) as srv:
        yield srv


@pytest.fixture
def clients(bus: MessageBusServer) -> Iterator[Callable[[str], MessageBusClient]]:
    made: list[MessageBusClient] = []

    def make(name: str) -> MessageBusClient:
        c = MessageBusClient(bus.address, name=name, timeout=5)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def subs(loop_thread: LoopThread, bus: MessageBusServer) -> dict[str, set[str]]:
    return loop_thread.call(bus.subscriptions)


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def test_routes_only_to_subscribers(
    bus: MessageBusServer, clients: Callable[[str], MessageBusClient], loop_thread: LoopThread
) -> None:
    a, b, pub = clients("a"), clients("b"), clients("pub")
    a.subscribe("orders")
    a.subscribe("end")
    b.subscribe("ticks")
    b.subscribe("end")
    table = subs(loop_thread, bus)
    assert table["orders"] == {a.ident} and table["ticks"] == {b.ident} and table["end"] == {a.ident, b.ident}

    pub.publish("orders", {"id": 1, "sym": ("AAPL", "SMART")})
    pub.publish("ticks", 101.5)
    pub.publish("nobody", "x")
    pub.publish("end", None)
    assert a.recv(timeout=5) == ("orders", {"id": 1, "sym": ("AAPL", "SMART")})
    assert a.recv(timeout=5) == ("end", None)
    assert b.recv(timeout=5) == ("ticks", 101.5)
    assert b.recv(timeout=5) == ("end", None)
    assert pub.recv(timeout=0.05) is None  # not subscribed to anything


def test_unsubscribe_stops_delivery(
    bus: MessageBusServer, clients: Callable[[str], MessageBusClient], loop_thread: LoopThread
) -> None:
    a, pub = clients("a"), clients("pub")
    a.subscribe("orders")
    a.subscribe("end")
    a.unsubscribe("orders")
    assert "orders" not in subs(loop_thread, bus)
    pub.publish("orders", 1)
    pub.publish("end", 2)
    assert a.recv(timeout=5) == ("end", 2)


def test_exact_match_and_wildcard(
    bus: MessageBusServer, clients: Callable[[str], MessageBusClient], loop_thread: LoopThread
) -> None:
    exact, wild, pub = clients("exact"), clients("wild"), clients("pub")
    exact.subscribe("ticks.AA")
    exact.subscribe("end")
    wild.subscribe("ticks.*")
    wild.subscribe("end")
    assert subs(loop_thread, bus)["ticks.*"] == {wild.ident}
    pub.publish("ticks.AAPL", 1)
    pub.publish("ticks.AA", 2)
    pub.publish("end", 3)
    assert exact.recv(timeout=5) == ("ticks.AA", 2)  # "ticks.AA" does not match "ticks.AAPL"
    assert exact.recv(timeout=5) == ("end", 3)
    assert [wild.recv(timeout=5) for _ in range(3)] == [("ticks.AAPL", 1), ("ticks.AA", 2), ("end", 3)]


def test_publisher_gets_its_own_message_and_deliveries_overtaking_acks_are_kept(
    clients: Callable[[str], MessageBusClient],
) -> None:
    a = clients("a")
    a.subscribe("loop")
    a.publish("loop", 1)
    a.subscribe("other")  # the delivery of 1 may arrive before this ack: it must not be lost
    assert a.recv(timeout=5) == ("loop", 1)


def test_bye_and_dead_clients_are_dropped(
    bus: MessageBusServer, clients: Callable[[str], MessageBusClient], loop_thread: LoopThread
) -> None:
    polite = MessageBusClient(bus.address, name="polite", timeout=5)
    polite.subscribe("t")
    ident = polite.ident
    polite.close()
    eventually(lambda: ident not in subs(loop_thread, bus).get("t", set()), "bye removes subscriptions")

    # a client that dies without a word: raw DEALER, subscribe, close with no bye
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.ROUTING_ID, b"crashy")
    raw.setsockopt(zmq.RCVTIMEO, 5000)
    raw.connect(bus.address)
    raw.send_multipart([b"sub", b"t", b"1"])
    assert raw.recv_multipart() == [b"ack", b"1"]
    assert subs(loop_thread, bus)["t"] == {"crashy"}
    raw.close()

    def swept() -> bool:
        loop_thread.call(bus.sweep)
        return "t" not in subs(loop_thread, bus)

    eventually(swept, "sweep drops the dead client")
    # and the bus still routes for live clients
    live, pub = clients("live"), clients("pub")
    live.subscribe("t")
    pub.publish("t", "still here")
    assert live.recv(timeout=5) == ("t", "still here")


def test_garbage_does_not_kill_the_bus(
    bus: MessageBusServer, clients: Callable[[str], MessageBusClient], loop_thread: LoopThread
) -> None:
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(bus.address)
    try:
        for frames in [[b""], [b"junk"], [b"pub"], [b"pub", b"t"], [b"sub", b"\xff\xfe", b"1"], [b"sub", b"x"],
                       [b"pub", b"\xff", b"payload"], [b"ping"], [b"a", b"b", b"c", b"d", b"e"]]:
            raw.send_multipart(frames)
        raw.send_multipart([b"pub", b"t", b"\xc1 not msgpack"])  # forwarded; the receiver drops it
        good, pub = clients("good"), clients("pub")
        good.subscribe("t")
        raw.send_multipart([b"pub", b"t", b"\xc1 not msgpack"])
        pub.publish("t", "valid")
        assert good.recv(timeout=5) == ("t", "valid")  # the malformed payload was dropped by the client
        good.ping()
        assert "\ufffd" not in "".join(subs(loop_thread, bus))
    finally:
        raw.close()


def test_subscribe_to_dead_bus_times_out() -> None:
    with MessageBusClient(f"tcp://127.0.0.1:{free_port()}", timeout=0.2) as c:
        with pytest.raises(RPCTimeout, match="sub"):
            c.subscribe("x")
        assert c.recv(timeout=0.01) is None


def test_async_client(bus: MessageBusServer, clients: Callable[[str], MessageBusClient]) -> None:
    sync_pub = clients("pub")

    async def main() -> list[tuple[str, object]]:
        async with AsyncMessageBusClient(bus.address, name="async", timeout=5) as c:
            await asyncio.gather(c.subscribe("a"), c.subscribe("b"), c.ping())
            await c.publish("a", 1)
            sync_pub.publish("b", {"x": 2})
            got = [await c.recv(timeout=5), await c.recv(timeout=5)]
            await c.unsubscribe("a")
            sync_pub.publish("a", 3)
            sync_pub.publish("b", 4)
            got.append(await c.recv(timeout=5))
            return got

    got = asyncio.run(main())
    # two different publishers: the bus keeps each sender's order, not an order across senders
    assert sorted(got[:2], key=lambda m: m[0]) == [("a", 1), ("b", {"x": 2})]
    assert got[2] == ("b", 4)  # "a" was unsubscribed, so its later message is not delivered


def test_payload_is_forwarded_verbatim(bus: MessageBusServer, clients: Callable[[str], MessageBusClient]) -> None:
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.RCVTIMEO, 5000)
    raw.connect(bus.address)
    try:
        raw.send_multipart([b"sub", b"t", b"7"])
        assert raw.recv_multipart() == [b"ack", b"7"]
        clients("pub").publish("t", (1, 2))
        assert raw.recv_multipart() == [b"msg", b"t", packb((1, 2))]
    finally:
        raw.close()
