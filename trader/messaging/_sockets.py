"""Small zmq helpers shared by rpc.py, pubsub.py and bus.py (private to the messaging package)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

import zmq
import zmq.asyncio

from trader.errors import ServiceUnavailable

if TYPE_CHECKING:
    from trader.messaging.auth import ServerSecurity

log = logging.getLogger("trader.messaging")

_PORT_ZERO = re.compile(r"^(tcp://.+):0$")
_PORT = re.compile(r":(\d+)$")

# How many messages one readiness callback handles before yielding to the event loop (fairness).
DRAIN_BATCH = 256


def sync_context(context: zmq.Context | None) -> zmq.Context:
    """A blocking-socket context: the process-wide one, or a sync shadow of an asyncio context."""
    if context is None:
        return zmq.Context.instance()
    if isinstance(context, zmq.asyncio.Context):
        return zmq.Context(shadow=context.underlying)
    return context


def async_context(context: zmq.Context | None) -> zmq.asyncio.Context:
    """An asyncio context: the process-wide one, or an asyncio shadow of a plain context (inproc works)."""
    if context is None:
        return zmq.asyncio.Context.instance()
    if isinstance(context, zmq.asyncio.Context):
        return context
    return zmq.asyncio.Context(shadow=context.underlying)


def bind(sock: zmq.Socket, address: str) -> str:
    """Bind ``sock``; ``tcp://host:0`` picks a free ephemeral port. Return the address actually bound."""
    sock.bind(_PORT_ZERO.sub(r"\1:*", address))
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


def bound_socket(ctx: zmq.Context, kind: int, address: str, options: dict[int, int] | None = None,
                 security: ServerSecurity | None = None) -> tuple[zmq.Socket, str]:
    """A new ``kind`` socket (LINGER 0, then ``options``, a CURVE server if ``security`` is given) bound to
    ``address`` (see :func:`bind`), and the address actually bound. The socket is closed again if binding fails."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in (options or {}).items():
        sock.setsockopt(option, value)
    try:
        if security is not None:
            security.secure(sock)
        return sock, bind(sock, address)
    except Exception:
        sock.close()
        raise


def port_of(address: str) -> int | None:
    """The TCP port of ``tcp://host:port``, or None for other transports."""
    m = _PORT.search(address) if address.startswith("tcp://") else None
    return int(m.group(1)) if m else None


class LoopReader:
    """Call ``handle(frames)`` for every message arriving on a *blocking* zmq socket, from an asyncio loop.

    zmq's FD is edge-triggered: it only fires when the socket's state changes, so after a readiness event we
    drain with NOBLOCK until EVENTS says no more input, and after *sending* on the socket elsewhere callers
    must call :meth:`poke` (a send can swallow the edge for input that arrived meanwhile). This avoids a
    Future and a task per message, which is where zmq.asyncio spends its time.
    """

    def __init__(self, sock: zmq.Socket, handle: Callable[..., Any], what: str, *, user_id: bool = False) -> None:
        self._sock = sock
        self._handle = handle
        self._what = what
        # user_id: call handle(frames, user_id) with the ZAP User-Id of the sender (CURVE servers)
        self._user_id = user_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = sock.getsockopt(zmq.FD)
        self._scheduled = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching the socket on ``loop`` (call from the loop's thread)."""
        self._loop = loop
        loop.add_reader(self._fd, self.drain)
        loop.call_soon(self.drain)  # input may already be queued: there will be no edge for it

    def detach(self) -> None:
        """Stop watching the socket."""
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def poke(self) -> None:
        """Re-check for input after a send done outside :meth:`drain` (see class docstring)."""
        if self._loop is not None and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.drain)

    def drain(self) -> None:
        """Handle queued messages, at most DRAIN_BATCH per call; never raises."""
        self._scheduled = False
        if self._loop is None:
            return
        sock = self._sock
        recv = sock.recv_multipart
        handle = self._handle
        with_user = self._user_id
        try:
            for _ in range(DRAIN_BATCH):
                if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    return
                try:
                    frames = recv(zmq.NOBLOCK, copy=not with_user)
                except zmq.Again:
                    return
                try:
                    if with_user:
                        handle(*_with_user_id(frames))
                    else:
                        handle(frames)
                except Exception:  # a bad message must never stop the loop
                    log.exception("%s: error while handling a message", self._what)
                if self._loop is None:  # handler closed us
                    return
            self.poke()  # more may be waiting: continue on the next loop iteration
        except zmq.ZMQError as exc:
            if exc.errno not in (zmq.ENOTSOCK, zmq.ETERM):
                log.warning("%s: socket error: %s", self._what, exc)


def _with_user_id(frames: list[zmq.Frame]) -> tuple[list[bytes], str | None]:
    """(frames as bytes, the ZAP User-Id of the connection they came from, or None)."""
    try:
        user = frames[-1].get("User-Id")
    except zmq.ZMQError:  # no ZAP metadata on this connection
        user = None
    return [f.bytes for f in frames], user


HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def wait_handshake(monitor: zmq.Socket, timeout: float) -> int | None:
    """Wait for a CURVE handshake outcome on a socket monitor: the event (success or a failure), or None when
    nothing happened within ``timeout`` seconds (the service is down or slow)."""
    from zmq.utils.monitor import recv_monitor_message

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not monitor.poll(max(1, int(remaining * 1000)), zmq.POLLIN):
            return None
        event = recv_monitor_message(monitor)["event"]
        if event & HANDSHAKE_EVENTS:
            return event


class SocketOwner:
    """Base for a class that owns one zmq socket in ``self._sock``: ``close()`` closes it (LINGER 0) once, and
    ``with obj:`` closes it on exit."""

    _sock: zmq.Socket | None

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Served:
    """Base for a server with ``async start()``/``stop()``: ``async with server:`` runs it for the block."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ReaderClient:
    """Base for an asyncio client whose background task ``self._reader_task`` hands replies to waiting calls.

    Subclasses define ``close()`` (calling :meth:`_stop_reader` first); ``aclose()`` also lets the cancelled
    reader finish, and ``async with client:`` acloses on exit.
    """

    _reader_task: asyncio.Task[None] | None
    close: Callable[[], None]

    def _stop_reader(self, waiting: Iterable[asyncio.Future[Any]], why: str) -> None:
        """Cancel the reader task and fail every call still ``waiting`` with ServiceUnavailable(why)."""
        if self._reader_task is not None:
            self._reader_task.cancel()
            self._reader_task = None
        for fut in waiting:
            if not fut.done():
                fut.set_exception(ServiceUnavailable(why))

    async def aclose(self) -> None:
        """Close and let the cancelled reader task finish."""
        task = self._reader_task
        self.close()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
