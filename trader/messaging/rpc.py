"""Request/reply RPC over zmq DEALER (client) / ROUTER (server), encoded with :mod:`trader.messaging.codec`.

Wire format (one frame after the routing envelope)::

    request  {"i": id, "m": method, "a": [args], "k": {kwargs}}
    reply    {"i": id, "r": result}   or   {"i": id, "e": error_to_wire(exc)}

Server side: mark handler methods with ``@rpcmethod`` (sync or ``async def``) and run an
:class:`RPCServer` on the service's event loop. Sync handlers run inline on the event loop (no task, no
thread), so they must be quick; ``async def`` handlers run as tasks, so a slow one does not hold up other
requests. Every handler runs on the loop thread: no locking is needed against the rest of the service.

Client side: :class:`RPCClient` (blocking; for the CLI, tests and cron tools) and :class:`AsyncRPCClient`
(for services)::

    with RPCClient("tcp://127.0.0.1:28001") as client:
        client.rpc().place_order("AAPL", qty=1)          # or client.call("place_order", "AAPL", qty=1)

Remote exceptions are re-raised locally through :func:`trader.errors.error_from_wire`; a call that gets no
answer in time raises :class:`trader.errors.RPCTimeout`.

Linux/macOS only: the server watches the socket with ``loop.add_reader`` (not available on the Windows
proactor loop).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import msgpack
import zmq

from trader.errors import (
    Busy,
    DecodeError,
    EncodeError,
    MessageTooLarge,
    RPCError,
    RPCTimeout,
    ServiceStarting,
    ServiceUnavailable,
    Unauthenticated,
    error_from_wire,
    error_to_wire,
)
from trader.messaging._logcap import preview
from trader.messaging._sockets import (
    LoopReader,
    ReaderClient,
    Served,
    SocketOwner,
    async_context,
    bound_socket,
    port_of,
    sync_context,
    wait_handshake,
)
from trader.messaging.codec import packb, unpackb

if TYPE_CHECKING:
    from trader.messaging.auth import ClientKey, ServerSecurity

# authorize(role, method, args, kwargs): raise (e.g. RoleForbidden) to refuse the request
Authorize = Callable[[str, str, "list | tuple", dict], None]

__all__ = ["rpcmethod", "RPCServer", "RPCClient", "AsyncRPCClient"]

log = logging.getLogger("trader.messaging.rpc")

F = TypeVar("F", bound=Callable[..., Any])

_RPC_ATTR = "__mmr_rpc_name__"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 64
# Methods a server answers while it is still starting (see RPCServer's ``ready``).
ALWAYS_READY = frozenset({"ping", "status"})


# --------------------------------------------------------------------------- decorator
@overload
def rpcmethod(fn: F, *, name: str | None = None) -> F: ...
@overload
def rpcmethod(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
def rpcmethod(fn: Any = None, *, name: str | None = None) -> Any:
    """Mark a handler method as remotely callable (``@rpcmethod`` or ``@rpcmethod(name="x")``)."""

    def mark(f: F) -> F:
        setattr(f, _RPC_ATTR, name or f.__name__)
        return f

    return mark if fn is None else mark(fn)


def _collect_methods(handler: object) -> dict[str, tuple[Callable[..., Any], bool]]:
    """Map wire name -> (bound method, is_coroutine_function) for every @rpcmethod of ``handler``."""
    methods: dict[str, tuple[Callable[..., Any], bool]] = {}
    for attr in dir(type(handler)):
        raw = inspect.getattr_static(type(handler), attr, None)
        func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        wire_name = getattr(func, _RPC_ATTR, None)
        if wire_name is None:
            continue
        bound = getattr(handler, attr)
        if wire_name in methods:
            raise ValueError(f"two RPC methods are named {wire_name!r} on {type(handler).__name__}")
        methods[wire_name] = (bound, inspect.iscoroutinefunction(func))
    return methods


def _peek_id(body: bytes) -> Any:
    """Best effort: the request id of a frame we will not decode (too large or malformed), else None.

    Clients put ``"i"`` first, so the id sits in the first few bytes; only those are parsed.
    """
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64)
        unpacker.feed(body[:64])
        if unpacker.read_map_header() < 1 or unpacker.unpack() != "i":
            return None
        rid = unpacker.unpack()
        return rid if isinstance(rid, (int, str)) else None
    except Exception:
        return None


# --------------------------------------------------------------------------- server
class RPCServer(Served):
    """Serve the ``@rpcmethod`` methods of ``handler`` on a ROUTER socket from the running event loop.

    ``await start()`` binds (``address``/``port`` are then the real ones; port 0 picks a free port) and
    starts serving; ``await stop()`` stops and cancels running async handlers. A malformed, oversized or
    unknown-method request gets an error reply and never stops the server. Requests larger than
    ``max_message_bytes`` get a MessageTooLarge reply; frames over 4x that are dropped by zmq itself
    (the sender is disconnected) so a rogue peer cannot make the server allocate without bound.

    Each client (zmq routing identity) may have at most ``max_in_flight`` async requests running; beyond
    that it gets :class:`~trader.errors.Busy` at once, so one client's flood cannot queue unbounded work
    ahead of the others. While ``ready()`` is false (the service is still starting) every method except
    ``ping`` and ``status`` is answered with :class:`~trader.errors.ServiceStarting` and not run.

    With ``security`` (:class:`trader.messaging.auth.ServerSecurity`) the socket is a CURVE server: only clients
    with one of the install's keys connect, and each request is checked with ``authorize(role, method, args,
    kwargs)`` before anything runs (a refusal is the error reply).
    """

    def __init__(
        self,
        handler: object,
        address: str = "tcp://127.0.0.1:0",
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        context: zmq.Context | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        ready: Callable[[], bool] | None = None,
        security: ServerSecurity | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self.handler = handler
        self.security = security
        self._authorize = authorize
        self.max_in_flight = max_in_flight
        self.ready = ready
        self._in_flight: dict[bytes, int] = {}  # routing id -> async requests running
        self.address = address
        self.max_message_bytes = max_message_bytes
        self._ctx = sync_context(context)
        self._methods = _collect_methods(handler)
        self._sock: zmq.Socket | None = None
        self._reader: LoopReader | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.last_request = 0.0  # time.monotonic() of the last request received (idle-time work waits for quiet)

    @property
    def busy(self) -> bool:
        """True while an async request is running."""
        return bool(self._tasks)

    @property
    def port(self) -> int | None:
        """The bound TCP port (after start), else None."""
        return port_of(self.address)

    @property
    def methods(self) -> list[str]:
        """Names callable over the wire."""
        return sorted(self._methods)

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._sock is not None

    async def start(self) -> None:
        """Bind and start serving on the running event loop."""
        if self._sock is not None:
            return
        self._loop = asyncio.get_running_loop()
        sock, self.address = bound_socket(self._ctx, zmq.ROUTER, self.address,
                                          {zmq.MAXMSGSIZE: self.max_message_bytes * 4 + 1024}, self.security)
        self._sock = sock
        self._reader = LoopReader(sock, self._handle, f"RPC server {self.address}",
                                  user_id=self.security is not None)
        self._reader.attach(self._loop)
        log.debug("RPC server on %s serving %s", self.address, self.methods)

    async def stop(self) -> None:
        """Stop serving: cancel running async handlers and close the socket."""
        if self._sock is None:
            return
        assert self._reader is not None
        self._reader.detach()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._sock.close(linger=0)
        self._sock = None

    # -- request path (hot): runs inside LoopReader.drain on the loop thread
    def _handle(self, frames: list[bytes], user_id: str | None = None) -> None:
        self.last_request = time.monotonic()
        body = frames.pop()
        envelope = frames  # routing id (+ empty delimiter for REQ peers); reused for the reply
        if not envelope:
            return
        if len(body) > self.max_message_bytes:
            exc: Exception = MessageTooLarge(
                f"request of {len(body)} bytes exceeds the server limit of {self.max_message_bytes} bytes"
            )
            self._send(envelope, _peek_id(body), None, exc)
            return
        try:
            req = unpackb(body)
        except DecodeError as err:
            self._send(envelope, _peek_id(body), None, err)
            return
        if type(req) is not dict:
            self._send(envelope, None, None, DecodeError(f"request must be a map, got {type(req).__name__}"))
            return
        rid = req.get("i")
        name = req.get("m")
        args = req.get("a", ())
        kwargs = req.get("k", {})
        if type(args) not in (list, tuple) or type(kwargs) is not dict or not isinstance(name, str):
            self._send(envelope, rid, None, DecodeError("malformed request: needs m: str, a: list, k: map"))
            return
        entry = self._methods.get(name)
        if entry is None:
            self._send(envelope, rid, None, AttributeError(f"no RPC method {preview(name)} on this service"))
            return
        if self.security is not None:
            refused = self._refusal(user_id, name, args, kwargs)
            if refused is not None:
                self._send(envelope, rid, None, refused)
                return
        if self.ready is not None and name not in ALWAYS_READY and not self.ready():
            self._send(envelope, rid, None, ServiceStarting(f"{name}: the service is still starting; retry"))
            return
        fn, is_async = entry
        peer = envelope[0]
        if is_async and self._in_flight.get(peer, 0) >= self.max_in_flight:
            self._send(envelope, rid, None, Busy(
                f"{name}: this client already has {self.max_in_flight} requests in flight; retry later"))
            return
        try:
            result = fn(*args, **kwargs)  # for async def this only builds the coroutine
        except Exception as err:
            log.debug("RPC %s raised %r", name, err, exc_info=True)
            self._send(envelope, rid, None, err)
            return
        if is_async or inspect.isawaitable(result):
            self._spawn(envelope, rid, name, result)
            return
        self._send(envelope, rid, result, None)

    def _refusal(self, user_id: str | None, name: str, args: Any, kwargs: dict) -> Exception | None:
        """Why this client's role may not call ``name`` (Unauthenticated, RoleForbidden …), or None."""
        try:
            assert self.security is not None
            role = self.security.role_of(user_id)
            if self._authorize is not None:
                self._authorize(role, name, args, kwargs)
        except Exception as exc:  # fail closed: a bug in the check refuses rather than runs
            log.info("RPC %s refused for %s: %s", name, (user_id or "?").split(":", 1)[0], exc)
            return exc
        return None

    def _spawn(self, envelope: list[bytes], rid: Any, name: str, awaitable: Any) -> None:
        assert self._loop is not None
        peer = envelope[0]
        in_flight = self._in_flight
        in_flight[peer] = in_flight.get(peer, 0) + 1
        task = self._loop.create_task(self._run_async(envelope, rid, name, awaitable))
        self._tasks.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            left = in_flight.get(peer, 1) - 1
            if left > 0:
                in_flight[peer] = left
            else:
                in_flight.pop(peer, None)  # forget idle peers: the table stays as small as the active set

        task.add_done_callback(done)

    async def _run_async(self, envelope: list[bytes], rid: Any, name: str, awaitable: Any) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.debug("RPC %s raised %r", name, err, exc_info=True)
            self._send(envelope, rid, None, err)
        else:
            self._send(envelope, rid, result, None)
        if self._reader is not None:
            self._reader.poke()  # our send may have eaten the socket's readiness edge

    def _send(self, envelope: list[bytes], rid: Any, result: Any, err: BaseException | None) -> None:
        if err is None:
            try:
                payload = packb({"i": rid, "r": result})
            except EncodeError as exc:
                err = exc
            else:
                if len(payload) > self.max_message_bytes:
                    err = MessageTooLarge(
                        f"reply of {len(payload)} bytes exceeds the limit of {self.max_message_bytes} bytes"
                    )
        if err is not None:
            try:
                payload = packb({"i": rid, "e": error_to_wire(err)})
            except EncodeError:  # e.g. an id of an odd type; still answer something
                payload = packb({"i": None, "e": error_to_wire(err)})
        sock = self._sock
        if sock is None:
            return
        envelope.append(payload)
        try:
            sock.send_multipart(envelope, zmq.NOBLOCK, copy=len(payload) < 65536)
        except zmq.ZMQError as exc:  # peer gone or its queue full: ROUTER drops the reply
            log.debug("RPC reply to %r dropped: %s", envelope[0], exc)


# --------------------------------------------------------------------------- clients
def _timeout_error(address: str, method: str, timeout: float) -> RPCTimeout:
    return RPCTimeout(f"no reply from {address} to {method}() within {timeout:g}s")


def _reply_value(reply: Any, address: str, method: str) -> Any:
    if "e" in reply:
        err = reply["e"]
        if not isinstance(err, dict):
            raise RPCError("DecodeError", f"malformed error reply from {address} to {method}()")
        raise error_from_wire(err)
    return reply.get("r")


class _Proxy:
    """``client.rpc().method(*args, **kwargs)`` -> ``client`` call of ``method``."""

    __slots__ = ("_invoke", "_timeout")

    def __init__(self, invoke: Callable[[str, tuple, dict, float | None], Any], timeout: float | None) -> None:
        self._invoke = invoke
        self._timeout = timeout

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("__"):  # keep copy/pickle/introspection probes local
            raise AttributeError(method)
        invoke = self._invoke
        timeout = self._timeout

        def remote(*args: Any, **kwargs: Any) -> Any:
            return invoke(method, args, kwargs, timeout)

        remote.__name__ = method
        return remote


def _dealer(ctx: zmq.Context, address: str, key: ClientKey | None = None, monitor: bool = False
            ) -> tuple[zmq.Socket, zmq.Socket | None]:
    """The client socket: DEALER, LINGER 0, a CURVE client with ``key`` if given, connected to ``address``;
    and with ``monitor`` a socket reporting the CURVE handshake's outcome (see :func:`wait_handshake`)."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    # IMMEDIATE: never queue a request for a peer that is not connected (no late execution on restart).
    sock.setsockopt(zmq.IMMEDIATE, 1)
    mon = None
    if key is not None:
        key.apply(sock)
        if monitor:
            mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                          | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                          | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    sock.connect(address)
    return sock, mon


def _refused(address: str, key: ClientKey, event: int) -> Unauthenticated:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        why = f"refused the '{key.role}' key from {key.path} (unknown or rotated key)"
    else:
        why = "did not complete a CURVE handshake (is the service running with curve: false, or another install?)"
    return Unauthenticated(f"{address} {why}; 'mmr keys' shows the keys in use")


class RPCClient(SocketOwner):
    """Blocking RPC client. Not thread-safe: use one client per thread.

    On a timeout the socket is replaced (LINGER 0), so a request still queued for a dead or hung service is
    discarded rather than delivered late, and a late reply can never be taken for the next call's.
    ``close()`` drops pending requests.
    """

    def __init__(self, address: str, *, timeout: float = 2.0, context: zmq.Context | None = None,
                 key: ClientKey | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.key = key
        self._ctx = sync_context(context)
        self._ids = itertools.count(1)
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._sndtimeo = -2
        self._connect()

    def _connect(self) -> None:
        self._sock, self._monitor = _dealer(self._ctx, self.address, self.key, monitor=True)
        self._sndtimeo = -2

    def _close_monitor(self) -> None:
        if self._monitor is not None:
            if self._sock is not None:
                self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None

    def _reset(self) -> None:
        if self._sock is not None:
            self._close_monitor()
            self._sock.close(linger=0)
            self._connect()

    def close(self) -> None:
        """Close the socket (and its handshake monitor)."""
        self._close_monitor()
        super().close()

    def _handshake(self, method: str, timeout: float) -> None:
        """Wait for the CURVE handshake, so a refused key is reported as such (Unauthenticated), not a timeout."""
        assert self._monitor is not None and self.key is not None
        event = wait_handshake(self._monitor, timeout)
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._close_monitor()
            return
        self._reset()
        if event is None:
            raise _timeout_error(self.address, method, timeout)
        raise _refused(self.address, self.key, event)

    def rpc(self, timeout: float | None = None) -> Any:
        """A proxy whose attributes are remote methods: ``client.rpc().place_order("AAPL", qty=1)``."""
        return _Proxy(self._invoke, timeout)

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` remotely and return its result (or raise its exception, or RPCTimeout)."""
        return self._invoke(method, args, kwargs, timeout)

    def _invoke(self, method: str, args: tuple, kwargs: dict, timeout: float | None) -> Any:
        sock = self._sock
        if sock is None:
            raise ServiceUnavailable(f"RPC client for {self.address} is closed")
        if timeout is None:
            timeout = self.timeout
        deadline = time.monotonic() + timeout
        if self._monitor is not None:
            self._handshake(method, timeout)
            sock = self._sock
            assert sock is not None
        rid = next(self._ids)
        payload = packb({"i": rid, "m": method, "a": list(args), "k": kwargs})
        ms = max(0, math.ceil(timeout * 1000))
        if ms != self._sndtimeo:
            sock.setsockopt(zmq.SNDTIMEO, ms)
            self._sndtimeo = ms
        try:
            sock.send(payload, copy=len(payload) < 65536)
        except zmq.Again:  # not connected (IMMEDIATE) within the timeout
            self._reset()
            raise _timeout_error(self.address, method, timeout) from None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._reset()
                raise _timeout_error(self.address, method, timeout)
            sock.setsockopt(zmq.RCVTIMEO, max(1, math.ceil(remaining * 1000)))
            try:
                frames = sock.recv_multipart()
            except zmq.Again:
                self._reset()
                raise _timeout_error(self.address, method, timeout) from None
            reply = unpackb(frames[-1])
            if type(reply) is not dict:
                continue
            got = reply.get("i")
            # None: the server could not read our id (oversized/malformed request). Only one request of
            # ours is ever outstanding on this socket, so that answer is ours.
            if got == rid or (got is None and "e" in reply):
                return _reply_value(reply, self.address, method)
            log.debug("discarding stale reply %r (waiting for %r)", got, rid)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class AsyncRPCClient(ReaderClient, SocketOwner):
    """asyncio RPC client; many tasks may await calls on one client at once (replies routed by id).

    Use it from one event loop. ``await client.rpc().method(...)`` or ``await client.call("method", ...)``.
    """

    def __init__(self, address: str, *, timeout: float = 2.0, context: zmq.Context | None = None,
                 key: ClientKey | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.key = key
        self._ctx = async_context(context)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._sock: zmq.asyncio.Socket | None = _dealer(self._ctx, address, key)[0]

    def rpc(self, timeout: float | None = None) -> Any:
        """A proxy whose attributes are awaitable remote methods: ``await client.rpc().quote("AAPL")``."""
        return _Proxy(self._invoke, timeout)

    async def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` remotely and return its result (or raise its exception, or RPCTimeout)."""
        return await self._invoke(method, args, kwargs, timeout)

    async def _invoke(self, method: str, args: tuple, kwargs: dict, timeout: float | None) -> Any:
        sock = self._sock
        if sock is None:
            raise ServiceUnavailable(f"RPC client for {self.address} is closed")
        if timeout is None:
            timeout = self.timeout
        rid = next(self._ids)
        payload = packb({"i": rid, "m": method, "a": list(args), "k": kwargs})
        loop = asyncio.get_running_loop()
        if self._reader_task is None or self._reader_task.done():
            self._reader_task = loop.create_task(self._read_replies())
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = fut
        try:
            async with asyncio.timeout(timeout):
                await sock.send(payload, copy=len(payload) < 65536)
                reply = await fut
        except TimeoutError:
            raise _timeout_error(self.address, method, timeout) from None
        finally:
            self._pending.pop(rid, None)
        return _reply_value(reply, self.address, method)

    async def _read_replies(self) -> None:
        sock = self._sock
        while sock is not None and not sock.closed:
            try:
                frames = await sock.recv_multipart()
                reply = unpackb(frames[-1])
            except asyncio.CancelledError:
                raise
            except DecodeError as exc:
                log.warning("undecodable reply from %s dropped: %s", self.address, exc)
                continue
            except zmq.ZMQError:
                return
            if type(reply) is not dict:
                continue
            fut = self._pending.get(reply.get("i"))  # type: ignore[arg-type]
            if fut is None:
                log.debug("discarding stale or unattributable reply from %s: id %r", self.address, reply.get("i"))
            elif not fut.done():
                fut.set_result(reply)

    def close(self) -> None:
        """Close the socket; calls still waiting fail with ServiceUnavailable."""
        self._stop_reader(self._pending.values(), f"RPC client for {self.address} closed")
        self._pending.clear()
        super().close()
