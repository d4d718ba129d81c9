"""PUB/SUB: topic prefix filtering, payload types, malformed messages, asyncio subscriber."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator

import pytest
import zmq

from trader.errors import EncodeError
from trader.messaging.codec import packb
from trader.messaging.pubsub import AsyncSubscriber, Publisher, Subscriber


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    with Publisher() as pub:
        yield pub


def wait_joined(pub: Publisher, sub: Subscriber, topic: str) -> None:
    """Publish probes until the subscriber sees one (PUB/SUB subscriptions propagate asynchronously)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pub.publish(topic, "probe")
        got = sub.recv(timeout=0.05)
        if got is not None:
            while sub.recv(timeout=0.05) is not None:  # drain extra probes
                pass
            return
    raise AssertionError("subscriber never joined")


def test_publisher_binds_ephemeral_port(publisher: Publisher) -> None:
    assert publisher.port and publisher.address.endswith(f":{publisher.port}")
    assert publisher.bind() == publisher.address  # idempotent


def test_topic_filtering_with_separator(publisher: Publisher) -> None:
    with Subscriber(publisher.address, topics=["ticks.AAPL.", "ctl."]) as sub:
        wait_joined(publisher, sub, "ctl.probe")
        publisher.publish("ticks.AA.", {"px": 1})
        publisher.publish("ticks.MSFT.", {"px": 2})
        publisher.publish("ticks.AAPL.", {"px": 3, "at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC)})
        publisher.publish("orders.", "nope")
        publisher.publish("ctl.end", None)
        seen = []
        while (msg := sub.recv(timeout=5)) is not None and msg[0] != "ctl.end":
            seen.append(msg)
        assert seen == [("ticks.AAPL.", {"px": 3, "at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC)})]


def test_topics_are_prefixes_and_unsubscribe(publisher: Publisher) -> None:
    with Subscriber(publisher.address, topics=["ctl."]) as sub:
        sub.subscribe("ticks.AA")  # no separator: a prefix of AAPL too
        wait_joined(publisher, sub, "ctl.probe")
        publisher.publish("ticks.AAPL.", 1)
        publisher.publish("ctl.end", None)
        assert sub.recv(timeout=5) == ("ticks.AAPL.", 1)
        assert sub.recv(timeout=5) == ("ctl.end", None)
        sub.unsubscribe("ticks.AA")
        # Subscription changes travel upstream in order: once "ctl2." works, the unsubscribe has landed.
        sub.subscribe("ctl2.")
        wait_joined(publisher, sub, "ctl2.probe")
        publisher.publish("ticks.AAPL.", 2)
        publisher.publish("ctl.end", None)
        assert sub.recv(timeout=5) == ("ctl.end", None)


def test_publish_unencodable_raises_at_sender(publisher: Publisher) -> None:
    with pytest.raises(EncodeError, match="object"):
        publisher.publish("x", object())


def test_recv_timeout_returns_none(publisher: Publisher) -> None:
    with Subscriber(publisher.address, topics=["never."]) as sub:
        assert sub.recv(timeout=0.05) is None


def test_malformed_messages_are_dropped_not_raised() -> None:
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    port = raw.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Subscriber(f"tcp://127.0.0.1:{port}") as sub:
            deadline = time.monotonic() + 10
            got = None
            while got is None and time.monotonic() < deadline:
                raw.send(b"single-frame")
                raw.send_multipart([b"t", b"\xc1"])
                raw.send_multipart([b"\xff\xfe", packb(1)])
                raw.send_multipart([b"t", packb(1), b"extra"])
                raw.send_multipart([b"good", packb({"ok": True})])
                got = sub.recv(timeout=0.1)
            assert got == ("good", {"ok": True})  # everything before it was dropped, nothing raised
    finally:
        raw.close()


def test_async_subscriber(publisher: Publisher) -> None:
    async def main() -> list[tuple[str, object]]:
        sub = AsyncSubscriber(publisher.address, topics=["bars."])
        try:
            got = None
            deadline = time.monotonic() + 10
            while got is None and time.monotonic() < deadline:
                publisher.publish("bars.probe", 0)
                got = await sub.recv(timeout=0.05)
            while await sub.recv(timeout=0.05) is not None:
                pass
            for i in range(3):
                publisher.publish("bars.SPY.", i)
            publisher.publish("other.", "x")
            out = []
            async for topic, obj in sub:
                out.append((topic, obj))
                if len(out) == 3:
                    break
            assert await sub.recv(timeout=0.05) is None  # "other." was filtered out
            return out
        finally:
            sub.close()

    assert asyncio.run(main()) == [("bars.SPY.", 0), ("bars.SPY.", 1), ("bars.SPY.", 2)]


def test_async_iteration_ends_on_close(publisher: Publisher) -> None:
    async def main() -> list[object]:
        sub = AsyncSubscriber(publisher.address)
        seen: list[object] = []

        async def consume() -> None:
            async for item in sub:
                seen.append(item)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        sub.close()
        await asyncio.wait_for(task, 5)
        return seen

    assert asyncio.run(main()) == []
