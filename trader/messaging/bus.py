"""MessageBus: a small broker (ROUTER) that routes each publish only to the clients subscribed to its topic.

Unlike PUB/SUB, subscriptions live in the server, are acknowledged (subscribe, then publish: no sleep
needed) and can be listed (``server.subscriptions()``). Topics match **exactly**; a subscription ending in
``*`` is a prefix wildcard (``"ticks.*"`` gets ``"ticks.AAPL"``, ``"*"`` gets everything). A client that
publishes to a topic it is subscribed to receives its own message too.

Frames after the client's routing id (all topics UTF-8)::

    client -> bus   [b"sub", topic, token]  [b"unsub", topic, token]  [b"pub", topic, payload]
                    [b"ping", token]  [b"bye"]
    bus -> client   [b"ack", token]  [b"pong", token]  [b"msg", topic, payload]  [b"ping", b""]

``payload`` is ``codec.packb(obj)``; the bus forwards it without decoding. Dead clients are dropped: the
ROUTER runs with ROUTER_MANDATORY (a send to a gone peer fails, and that peer's subscriptions are removed),
zmq heartbeats close silent TCP peers, and a periodic sweep pings every known client so subscriptions of
crashed clients disappear even if nothing is published to them.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio

from trader.errors import DecodeError, RPCTimeout, ServiceUnavailable
from trader.messaging._logcap import RateLimitedLog, frames_summary, preview
from trader.messaging._sockets import (
    LoopReader,
    ReaderClient,
    Served,
    SocketOwner,
    async_context,
    bound_socket,
    port_of,
    sync_context,
)
from trader.messaging.codec import packb, unpackb

if TYPE_CHECKING:
    from trader.messaging.auth import ClientKey, ServerSecurity

__all__ = ["MessageBusServer", "MessageBusClient", "AsyncMessageBusClient"]

log = logging.getLogger("trader.messaging.bus")

SUB, UNSUB, PUB, PING, BYE = b"sub", b"unsub", b"pub", b"ping", b"bye"
ACK, PONG, MSG = b"ack", b"pong", b"msg"
MAX_TOPIC_BYTES = 1024  # topics are short names ("ticks.AAPL"); a longer one is a malformed message


def _ident_str(ident: bytes) -> str:
    try:
        return ident.decode()
    except UnicodeDecodeError:
        return ident.hex()


class MessageBusServer(Served):
    """The bus broker. ``await start()`` binds (``address``/``port`` then real) and serves on the running loop."""

    def __init__(
        self,
        address: str = "tcp://127.0.0.1:0",
        context: zmq.Context | None = None,
        *,
        sweep_interval: float = 5.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        security: ServerSecurity | None = None,
    ) -> None:
        self.address = address
        self.security = security  # CURVE: only clients with one of the install's keys connect
        self.sweep_interval = sweep_interval
        self.max_message_bytes = max_message_bytes
        self._ctx = sync_context(context)
        self._sock: zmq.Socket | None = None
        self._reader: LoopReader | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._topics: dict[str, set[bytes]] = {}  # exact topic -> client ids
        self._wildcards: dict[str, set[bytes]] = {}  # prefix (pattern without "*") -> client ids
        self._clients: dict[bytes, set[str]] = {}  # client id -> patterns as subscribed
        self._complaints = RateLimitedLog(log)  # malformed input: one warning per peer per 10 s

    @property
    def port(self) -> int | None:
        """The bound TCP port (after start), else None."""
        return port_of(self.address)

    async def start(self) -> None:
        """Bind and start routing on the running event loop."""
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        sock, self.address = bound_socket(self._ctx, zmq.ROUTER, self.address, {
            zmq.ROUTER_MANDATORY: 1,
            zmq.MAXMSGSIZE: self.max_message_bytes,
            zmq.HEARTBEAT_IVL: 2000,
            zmq.HEARTBEAT_TIMEOUT: 6000,
        }, self.security)
        self._sock = sock
        self._reader = LoopReader(sock, self._handle, f"message bus {self.address}")
        self._reader.attach(loop)
        if self.sweep_interval > 0:
            self._sweeper = loop.create_task(self._sweep_forever())
        log.debug("message bus on %s", self.address)

    async def stop(self) -> None:
        """Stop routing and close the socket."""
        if self._sock is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        assert self._reader is not None
        self._reader.detach()
        self._sock.close(linger=0)
        self._sock = None

    def subscriptions(self) -> dict[str, set[str]]:
        """Topic (or wildcard pattern) -> ids of the clients subscribed to it."""
        out = {topic: {_ident_str(i) for i in ids} for topic, ids in self._topics.items()}
        out.update({prefix + "*": {_ident_str(i) for i in ids} for prefix, ids in self._wildcards.items()})
        return out

    def clients(self) -> list[str]:
        """Ids of the clients with at least one subscription."""
        return sorted(_ident_str(i) for i in self._clients)

    def sweep(self) -> None:
        """Ping every client with subscriptions; ones that are gone are dropped (see module docstring)."""
        for ident in list(self._clients):
            self._send(ident, [PING, b""])
        if self._reader is not None:
            self._reader.poke()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.sweep()

    # -- routing (runs in LoopReader.drain on the loop thread)
    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return
        ident, cmd = frames[0], frames[1]
        if cmd in (PUB, SUB, UNSUB) and len(frames) == 4 and len(frames[2]) > MAX_TOPIC_BYTES:
            self._complaints.warning(ident, "message bus: ignoring a topic of %d bytes from %s",
                                     len(frames[2]), preview(_ident_str(ident)))
            return
        try:
            if cmd == PUB and len(frames) == 4:
                self._publish(frames[2].decode(), frames[2], frames[3])
            elif cmd in (SUB, UNSUB) and len(frames) == 4:
                topic = frames[2].decode()
                if cmd == SUB:
                    self._subscribe(ident, topic)
                else:
                    self._unsubscribe(ident, topic)
                self._send(ident, [ACK, frames[3]])
            elif cmd == PING and len(frames) == 3:
                self._send(ident, [PONG, frames[2]])
            elif cmd == BYE:
                self._drop(ident)
            elif cmd == PONG:
                pass  # answer to our sweep ping
            else:
                self._complaints.warning(ident, "message bus: ignoring malformed message from %s: %s",
                                         preview(_ident_str(ident)), frames_summary(frames[1:]))
        except UnicodeDecodeError:
            self._complaints.warning(ident, "message bus: ignoring message with a non-UTF-8 topic from %s",
                                     preview(_ident_str(ident)))

    def publish(self, topic: str, obj: Any) -> None:
        """Publish from inside the hosting process (strategy_service's signals) to the topic's subscribers."""
        self._publish(topic, topic.encode(), packb(obj))

    def _subscribe(self, ident: bytes, topic: str) -> None:
        table, key = (self._wildcards, topic[:-1]) if topic.endswith("*") else (self._topics, topic)
        table.setdefault(key, set()).add(ident)
        self._clients.setdefault(ident, set()).add(topic)

    def _unsubscribe(self, ident: bytes, topic: str) -> None:
        table, key = (self._wildcards, topic[:-1]) if topic.endswith("*") else (self._topics, topic)
        ids = table.get(key)
        if ids is not None:
            ids.discard(ident)
            if not ids:
                del table[key]
        patterns = self._clients.get(ident)
        if patterns is not None:
            patterns.discard(topic)
            if not patterns:
                del self._clients[ident]

    def _drop(self, ident: bytes) -> None:
        for topic in list(self._clients.get(ident, ())):
            self._unsubscribe(ident, topic)

    def _publish(self, topic: str, topic_bytes: bytes, payload: bytes) -> None:
        targets = self._topics.get(topic)
        if self._wildcards:
            extra = [ids for prefix, ids in self._wildcards.items() if topic.startswith(prefix)]
            if extra:
                targets = set(targets or ()).union(*extra)
        if not targets:
            return
        for ident in list(targets):
            self._send(ident, [MSG, topic_bytes, payload])

    def _send(self, ident: bytes, frames: list[bytes]) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.send_multipart([ident, *frames], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                log.info("message bus: client %s is gone; dropping its subscriptions", _ident_str(ident))
                self._drop(ident)
            else:  # EAGAIN: that client's queue is full (too slow); it misses this message
                log.debug("message bus: message to %s dropped: %s", _ident_str(ident), exc)


def _client_socket(ctx: zmq.Context, address: str, name: str | None, key: ClientKey | None = None
                   ) -> tuple[zmq.Socket, str]:
    ident = f"{name or 'client'}-{uuid.uuid4().hex[:8]}"
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, ident.encode())
    sock.setsockopt(zmq.LINGER, 100)  # long enough for "bye" to leave on close, short enough not to hang
    if key is not None:
        key.apply(sock)
    sock.connect(address)
    return sock, ident


_client_complaints = RateLimitedLog(log)  # junk relayed by the bus: one warning per bus per 10 s


def _delivery(frames: list[bytes], address: str) -> tuple[str, Any] | None:
    try:
        return frames[1].decode(), unpackb(frames[2])
    except (UnicodeDecodeError, DecodeError) as exc:
        _client_complaints.warning(address, "bus client %s: dropping malformed message: %s", address, exc)
        return None


class MessageBusClient(SocketOwner):
    """Blocking bus client. Not thread-safe: use one per thread.

    ``subscribe``/``unsubscribe`` wait for the bus's acknowledgement (RPCTimeout after ``timeout``
    seconds); ``publish`` is fire-and-forget (dropped with a warning if the bus is unreachable and the
    outgoing queue is full). ``name`` makes the client's id readable in ``server.subscriptions()``.
    """

    def __init__(
        self,
        address: str,
        context: zmq.Context | None = None,
        *,
        name: str | None = None,
        timeout: float = 2.0,
        key: ClientKey | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._sock: zmq.Socket | None
        self._sock, self.ident = _client_socket(sync_context(context), address, name, key)
        self._tokens = itertools.count(1)
        self._inbox: collections.deque[tuple[str, Any]] = collections.deque()

    def subscribe(self, topic: str, timeout: float | None = None) -> None:
        """Subscribe to ``topic`` (exact, or prefix if it ends with ``*``); returns once the bus has it."""
        self._request(SUB, topic, timeout)

    def unsubscribe(self, topic: str, timeout: float | None = None) -> None:
        """Remove a subscription made with the same string; returns once the bus has done it."""
        self._request(UNSUB, topic, timeout)

    def ping(self, timeout: float | None = None) -> None:
        """Round trip to the bus (RPCTimeout if it does not answer)."""
        self._request(PING, None, timeout)

    def publish(self, topic: str, obj: Any) -> None:
        """Send ``obj`` to every client subscribed to ``topic``."""
        sock = self._open()
        payload = packb(obj)
        try:
            sock.send_multipart([PUB, topic.encode(), payload], zmq.NOBLOCK)
        except zmq.Again:
            log.warning("bus client %s: publish to %s dropped (bus unreachable, queue full)", self.address, topic)

    def recv(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Next delivered ``(topic, obj)``; None if none arrives within ``timeout`` seconds (None = forever)."""
        if self._inbox:
            return self._inbox.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frames = self._next_frames(deadline)
            if frames is None:
                return None
            if frames[0] == MSG and len(frames) == 3:
                message = _delivery(frames, self.address)
                if message is not None:
                    return message
            elif frames[0] == PING:
                self._open().send_multipart([PONG, frames[1] if len(frames) > 1 else b""], zmq.NOBLOCK)

    def _open(self) -> zmq.Socket:
        if self._sock is None:
            raise ServiceUnavailable(f"bus client for {self.address} is closed")
        return self._sock

    def _next_frames(self, deadline: float | None) -> list[bytes] | None:
        sock = self._open()
        if deadline is None:
            wait_ms = -1
        else:
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if not sock.poll(wait_ms, zmq.POLLIN):
            return None
        return sock.recv_multipart(zmq.NOBLOCK)

    def _request(self, cmd: bytes, topic: str | None, timeout: float | None) -> None:
        sock = self._open()
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        token = str(next(self._tokens)).encode()
        frames = [cmd, token] if topic is None else [cmd, topic.encode(), token]
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            raise RPCTimeout(f"message bus {self.address} unreachable ({cmd.decode()} {topic})") from None
        want = PONG if cmd == PING else ACK
        while True:
            got = self._next_frames(deadline)
            if got is None:
                raise RPCTimeout(f"message bus {self.address} did not acknowledge {cmd.decode()} {topic!r} "
                                 f"within {timeout:g}s")
            if got[0] == want and len(got) == 2 and got[1] == token:
                return
            if got[0] == MSG and len(got) == 3:
                message = _delivery(got, self.address)
                if message is not None:
                    self._inbox.append(message)  # keep deliveries that overtook the ack for recv()
            elif got[0] == PING:
                sock.send_multipart([PONG, got[1] if len(got) > 1 else b""], zmq.NOBLOCK)

    def close(self) -> None:
        """Say bye (the bus drops our subscriptions) and close."""
        if self._sock is not None:
            try:
                self._sock.send_multipart([BYE], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            self._sock.close()
            self._sock = None


class AsyncMessageBusClient(ReaderClient):
    """asyncio bus client: the same methods as :class:`MessageBusClient`, awaitable.

    Many tasks may use one client; a background reader routes acks to the waiting call and deliveries to
    ``recv()``. Use it from one event loop.
    """

    def __init__(
        self,
        address: str,
        context: zmq.Context | None = None,
        *,
        name: str | None = None,
        timeout: float = 2.0,
        key: ClientKey | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._sock: zmq.asyncio.Socket | None
        self._sock, self.ident = _client_socket(async_context(context), address, name, key)
        self._tokens = itertools.count(1)
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        self._inbox: asyncio.Queue[tuple[str, Any]] | None = None
        self._reader_task: asyncio.Task[None] | None = None

    def _start(self) -> tuple[zmq.asyncio.Socket, asyncio.Queue[tuple[str, Any]]]:
        if self._sock is None:
            raise ServiceUnavailable(f"bus client for {self.address} is closed")
        if self._inbox is None:
            self._inbox = asyncio.Queue()
        if self._reader_task is None or self._reader_task.done():
            self._reader_task = asyncio.get_running_loop().create_task(self._read())
        return self._sock, self._inbox

    async def _read(self) -> None:
        sock = self._sock
        while sock is not None and not sock.closed:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError:
                return
            kind = frames[0]
            if kind == MSG and len(frames) == 3:
                message = _delivery(frames, self.address)
                if message is not None and self._inbox is not None:
                    self._inbox.put_nowait(message)
            elif kind in (ACK, PONG) and len(frames) == 2:
                fut = self._waiting.get(frames[1])
                if fut is not None and not fut.done():
                    fut.set_result(None)
            elif kind == PING:
                await sock.send_multipart([PONG, frames[1] if len(frames) > 1 else b""])

    async def _request(self, cmd: bytes, topic: str | None, timeout: float | None) -> None:
        sock, _ = self._start()
        timeout = self.timeout if timeout is None else timeout
        token = str(next(self._tokens)).encode()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[token] = fut
        frames = [cmd, token] if topic is None else [cmd, topic.encode(), token]
        try:
            async with asyncio.timeout(timeout):
                await sock.send_multipart(frames)
                await fut
        except TimeoutError:
            raise RPCTimeout(f"message bus {self.address} did not acknowledge {cmd.decode()} {topic!r} "
                             f"within {timeout:g}s") from None
        finally:
            self._waiting.pop(token, None)

    async def subscribe(self, topic: str, timeout: float | None = None) -> None:
        """Subscribe to ``topic`` (exact, or prefix if it ends with ``*``); returns once the bus has it."""
        await self._request(SUB, topic, timeout)

    async def unsubscribe(self, topic: str, timeout: float | None = None) -> None:
        """Remove a subscription made with the same string; returns once the bus has done it."""
        await self._request(UNSUB, topic, timeout)

    async def ping(self, timeout: float | None = None) -> None:
        """Round trip to the bus (RPCTimeout if it does not answer)."""
        await self._request(PING, None, timeout)

    async def publish(self, topic: str, obj: Any) -> None:
        """Send ``obj`` to every client subscribed to ``topic``."""
        sock, _ = self._start()
        payload = packb(obj)
        try:
            await sock.send_multipart([PUB, topic.encode(), payload], zmq.NOBLOCK)
        except zmq.Again:
            log.warning("bus client %s: publish to %s dropped (bus unreachable, queue full)", self.address, topic)

    async def recv(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """Next delivered ``(topic, obj)``; None on timeout."""
        _, inbox = self._start()
        try:
            async with asyncio.timeout(timeout):
                return await inbox.get()
        except TimeoutError:
            return None

    def close(self) -> None:
        """Say bye and close; waiting calls fail with ServiceUnavailable."""
        self._stop_reader(self._waiting.values(), f"bus client for {self.address} closed")
        if self._sock is not None:
            try:  # through a blocking shadow: no Future to await when called outside the loop
                zmq.Socket.shadow(self._sock.underlying).send_multipart([BYE], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            self._sock.close()
            self._sock = None
