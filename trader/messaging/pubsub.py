"""Fire-and-forget fan-out over zmq PUB/SUB: ``[topic, packb(obj)]`` multipart messages.

Topics are **prefixes** (zmq filters on the leading bytes of the topic frame): subscribing to
``"ticks.AA"`` also receives ``"ticks.AAPL"``. Use a separator at the end of every topic you publish, for
example ``"ticks.AAPL."``, and subscribe with that same trailing separator when you mean one instrument
exactly (``"ticks.AA."`` does not match ``"ticks.AAPL."``); subscribe to ``"ticks."`` for all ticks and to
``""`` for everything.

PUB/SUB drops messages when nobody listens or a subscriber is too slow, and a new subscription takes a
moment to reach the publisher ("slow joiner"). When delivery must be confirmed use the MessageBus
(:mod:`trader.messaging.bus`) or RPC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio

from trader.errors import DecodeError
from trader.messaging._logcap import RateLimitedLog
from trader.messaging._sockets import SocketOwner, async_context, bound_socket, port_of, sync_context
from trader.messaging.codec import packb, unpackb

if TYPE_CHECKING:
    from trader.messaging.auth import ClientKey, ServerSecurity

__all__ = ["Publisher", "Subscriber", "AsyncSubscriber"]

log = logging.getLogger("trader.messaging.pubsub")
_complaints = RateLimitedLog(log)  # a publisher sending junk gets one warning per 10 s per subscriber


def _decode(frames: list[bytes], where: str) -> tuple[str, Any] | None:
    """(topic, obj) for a well-formed message, else None (logged, rate-limited)."""
    if len(frames) != 2:
        _complaints.warning(where, "%s: dropping message with %d frames (expected 2)", where, len(frames))
        return None
    try:
        return frames[0].decode(), unpackb(frames[1])
    except (UnicodeDecodeError, DecodeError) as exc:
        _complaints.warning(where, "%s: dropping malformed message: %s", where, exc)
        return None


class Publisher(SocketOwner):
    """PUB socket, bound on construction (``tcp://127.0.0.1:0`` picks a free port).

    ``publish`` never blocks (zmq drops for slow subscribers), so it is fine to call from an asyncio
    service. Not thread-safe: publish from one thread. With ``security`` it is a CURVE server: only clients
    holding one of the install's keys can subscribe.
    """

    def __init__(self, address: str = "tcp://127.0.0.1:0", context: zmq.Context | None = None, *,
                 security: ServerSecurity | None = None) -> None:
        self.address = address
        self.security = security
        self._ctx = sync_context(context)
        self._sock: zmq.Socket | None = None
        self.bind()

    def bind(self) -> str:
        """Bind the socket (idempotent); return the bound address."""
        if self._sock is None:
            self._sock, self.address = bound_socket(self._ctx, zmq.PUB, self.address, security=self.security)
        return self.address

    @property
    def port(self) -> int | None:
        """The bound TCP port, or None for other transports."""
        return port_of(self.address)

    def publish(self, topic: str, obj: Any) -> None:
        """Send ``obj`` under ``topic``; EncodeError if ``obj`` cannot be encoded."""
        if self._sock is None:
            raise RuntimeError("publisher is closed")
        payload = packb(obj)
        try:
            self._sock.send_multipart([topic.encode(), payload], zmq.NOBLOCK, copy=len(payload) < 65536)
        except zmq.Again:  # PUB does not block; kept for safety if the socket is ever swapped
            log.debug("publish to %s dropped (queue full)", topic)


class _SubSocket(SocketOwner):
    """A SUB socket with its topics, connected to ``address`` (what both subscribers share)."""

    def __init__(self, address: str, topics: Iterable[str], sock: zmq.Socket, key: ClientKey | None) -> None:
        self.address = address
        self._sock = sock
        sock.setsockopt(zmq.LINGER, 0)
        if key is not None:
            key.apply(sock)
        for topic in topics:
            self.subscribe(topic)
        sock.connect(address)

    def subscribe(self, topic: str) -> None:
        """Receive messages whose topic starts with ``topic``."""
        assert self._sock is not None
        self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def unsubscribe(self, topic: str) -> None:
        """Undo one ``subscribe(topic)``."""
        assert self._sock is not None
        self._sock.setsockopt(zmq.UNSUBSCRIBE, topic.encode())


class Subscriber(_SubSocket):
    """Blocking SUB socket connected to a :class:`Publisher`. Not thread-safe."""

    def __init__(
        self, address: str, topics: Iterable[str] = ("",), context: zmq.Context | None = None, *,
        key: ClientKey | None = None,
    ) -> None:
        super().__init__(address, topics, sync_context(context).socket(zmq.SUB), key)

    def recv(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Next ``(topic, obj)``; None if nothing arrives within ``timeout`` seconds (None = wait forever).

        Malformed messages are logged and skipped.
        """
        sock = self._sock
        if sock is None:
            raise RuntimeError("subscriber is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                wait_ms = -1
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    return None
                wait_ms = max(0, int(remaining * 1000))
            if not sock.poll(wait_ms, zmq.POLLIN):
                if deadline is None:
                    continue
                return None
            message = _decode(sock.recv_multipart(zmq.NOBLOCK), f"subscriber {self.address}")
            if message is not None:
                return message


class AsyncSubscriber(_SubSocket):
    """asyncio SUB socket: ``async for topic, obj in sub:`` or ``await sub.recv(timeout)``.

    Iteration ends when the subscriber is closed (``close()``, or leaving a ``with`` block).
    """

    _sock: zmq.asyncio.Socket | None

    def __init__(
        self, address: str, topics: Iterable[str] = ("",), context: zmq.Context | None = None, *,
        key: ClientKey | None = None,
    ) -> None:
        super().__init__(address, topics, async_context(context).socket(zmq.SUB), key)

    async def recv(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Next ``(topic, obj)``; None on timeout. Malformed messages are logged and skipped."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._sock is None:
                        raise RuntimeError("subscriber is closed")
                    message = _decode(await self._sock.recv_multipart(), f"subscriber {self.address}")
                    if message is not None:
                        return message
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, Any]]:
        while self._sock is not None:
            try:
                message = await self.recv()
            except (RuntimeError, zmq.ZMQError, asyncio.CancelledError):
                if self._sock is None or self._sock.closed:
                    return
                raise
            if message is not None:
                yield message
