"""What every CLI command shares: the app context, output (JSON or Rich) and error reporting.

A command is a click callback decorated with ``@output(render)``: it *returns* plain data (dicts, lists,
dataclasses) and never prints. ``--json`` prints that data as exactly one JSON document on stdout; otherwise
``render(data, console)`` draws it with Rich. Exceptions are turned into ``{"error": {...}}`` and a non-zero
exit code in one place (`report_error`).
"""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import click
import msgspec

from trader.config import Paths, TraderConfig, ensure_user_config, load_trader_config, mmr_paths

Renderer = Callable[[Any, Any], None]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


@dataclass
class AppContext:
    """Per-invocation state shared by commands (config is loaded on first use)."""

    json: bool = False
    _config: TraderConfig | None = None
    _paths: Paths | None = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _key: Any = None  # the CURVE ClientKey, loaded on first use
    _probed: set[str] = field(default_factory=set)
    # False: when the command is done the process may end without the interpreter's teardown of every module and
    # object (`mmr_cli.main`); for commands that close every file, store and pool they open (bt-sweep, sweep run).
    teardown: bool = True

    @property
    def paths(self) -> Paths:
        if self._paths is None:
            self._paths = mmr_paths()
            ensure_user_config(self._paths)
        return self._paths

    @property
    def config(self) -> TraderConfig:
        if self._config is None:
            self._config = load_trader_config(self.paths)
        return self._config

    def client(self, service: str, timeout: float | None = None):
        """A (cached) RPC client for one service by name."""
        key = f"{service}:{timeout}"
        if key not in self._clients:
            from trader.messaging.rpc import RPCClient

            address = self.config.rpc_endpoints()[service]
            self._clients[key] = RPCClient(address, timeout=timeout or self.config.rpc_timeout,
                                           key=self.client_key())
        return self._clients[key]

    def client_key(self):
        """The CURVE key this CLI connects with (``MMR_CLIENT_KEY``, else the ``MMR_ROLE`` key in the config dir;
        None with ``curve: false``); Unauthenticated, naming where it looked, when there is none."""
        if not self.config.curve:
            return None
        if self._key is None:
            from trader.messaging.auth import client_key_from_env

            self._key = client_key_from_env(self.paths.config_dir)
        return self._key

    def call(self, service: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call one RPC method of a service, failing fast and clearly when the service is not running.

        A connection-refused probe answers in milliseconds where an RPC to a stopped service would wait for the
        whole timeout; a service that accepts the connection but does not answer gives an RPCTimeout that
        says what to do.
        """
        from trader.errors import RPCTimeout, ServiceUnavailable

        address = self.config.rpc_endpoints()[service]
        if service not in self._probed:
            if not port_open(address, 0.5):
                raise ServiceUnavailable(f"{service} is not running at {address} — start it with ./start_mmr.sh")
            self._probed.add(service)
        wait = timeout or self.config.rpc_timeout
        try:
            return self._call_ready(service, method, args, kwargs, wait)
        except RPCTimeout as exc:
            raise RPCTimeout(
                f"{service} did not answer {method} within {wait:g} s at {address}: is it running? "
                f"start it with ./start_mmr.sh ({exc})"
            ) from None

    def _call_ready(self, service: str, method: str, args: tuple, kwargs: dict, wait: float) -> Any:
        """Call, retrying while the service answers ServiceStarting or Busy (nothing was done), within ``wait`` s."""
        import time

        from trader.errors import Busy, ServiceStarting

        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            try:
                return self.client(service).call(method, *args, timeout=max(left, 0.05), **kwargs)
            except (ServiceStarting, Busy):
                if end - time.monotonic() < 0.3:
                    raise
                time.sleep(0.2)

    def order_call(self, service: str, method: str, *args: Any, request_id: str | None = None,
                   timeout: float | None = None, **kwargs: Any) -> Any:
        """Call an order RPC (place/cancel/close/resize/approve) exactly once under a request id.

        The request id (``request_id`` or a fresh one) and a deadline travel with the call; the service records
        the request before it touches the broker and answers a retry with the same id from that record. When
        no answer comes in time the outcome is unknown: ``OutcomeUnknown`` names the request id and the
        command that looks it up — retrying with ``--request-id`` is safe. ``MMR_ORDER_TIMEOUT`` overrides
        ``timeout`` (`order_timeout_override`).
        """
        import time

        from trader.errors import OutcomeUnknown, RPCTimeout
        from trader.trading.intents import check_request_id, lookup_command, new_request_id

        rid = check_request_id(request_id) if request_id is not None else new_request_id()
        wait = order_timeout_override() or timeout or self.config.rpc_timeout
        # The service gives up sending a bit before we stop listening, so a late order never surprises us.
        deadline = time.time() + max(wait - 1.0, wait * 0.8)
        try:
            return self.call(service, method, *args, request_id=rid, deadline=deadline, timeout=wait, **kwargs)
        except RPCTimeout:
            raise OutcomeUnknown(
                f"no answer from {service} to {method} within {wait:g} s: the order action may or may not have "
                f"happened (it is never sent after its deadline). Look it up with `{lookup_command(rid)}`; "
                f"retrying with --request-id {rid} is safe (it never executes twice)", rid, lookup_command(rid)
            ) from None

    def emit_line(self, data: Any) -> None:
        """Print one JSON Lines record and flush it (streaming commands: ``listen``, ``watch``)."""
        sys.stdout.write(to_json(data) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def console(self, stderr: bool = False):
        from rich.console import Console

        return Console(stderr=stderr)

    def emit(self, data: Any, render: Renderer | None = None) -> None:
        """Print a command's result: one JSON document, or Rich output."""
        if self.json:
            sys.stdout.write(to_json(data) + "\n")
            sys.stdout.flush()
        elif render is not None:
            render(data, self.console())
        else:
            self.console().print_json(to_json(data))


def order_timeout_override() -> float | None:
    """``MMR_ORDER_TIMEOUT`` (seconds, > 0): how long order commands (buy, sell, approve, cancel …) wait for an
    answer instead of their default (15 s); the order's deadline shrinks with it. For agents and tests that
    prefer an early ``OutcomeUnknown`` to a long wait. Unset, empty or not a positive number: no override."""
    import math
    import os

    try:
        value = float(os.environ.get("MMR_ORDER_TIMEOUT", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def port_open(address: str, timeout: float = 0.5) -> bool:
    """Cheap TCP probe of a ``tcp://host:port`` address: False at once when the connection is refused."""
    u = urlparse(address)
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout):
            return True
    except OSError:
        return False


def service_up(app: AppContext, service: str) -> bool:
    """True when `service` (e.g. "data_service") accepts connections: commands that can also read the store
    directly use this to work with the service down."""
    return port_open(app.config.rpc_endpoints()[service], 0.5)


def _enc_hook(obj: Any) -> Any:
    # msgspec encodes dataclasses, datetimes, enums and UUIDs itself; this covers the rest.
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def to_json(data: Any) -> str:
    """Encode command output as compact JSON."""
    return msgspec.json.encode(data, enc_hook=_enc_hook).decode()


# --------------------------------------------------------------------------- list commands: newest first, bounded
class SinceType(click.ParamType):
    """``--since``: an ISO date/time (naive = UTC) or a look-back like ``30m``, ``4h``, ``2d``, ``1w``."""

    name = "since"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import datetime as dt
        import re

        if isinstance(value, dt.datetime):
            return value
        text = str(value).strip()
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text)
        try:
            if m:
                return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=float(m[1]) * self._UNITS[m[2]])
            when = dt.datetime.fromisoformat(text)
        except (ValueError, OverflowError):
            self.fail(f"{text!r} is neither an ISO time (2025-03-03, 2025-03-03T14:30) nor a look-back "
                      "(30m, 4h, 2d, 1w)", param, ctx)
        return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


SINCE = SinceType()


def list_options(default_limit: int, what: str) -> Callable:
    """``--limit N`` (default ``default_limit``) and ``--since WHEN`` for a command that lists ``what``,
    newest first."""

    def deco(fn: Callable) -> Callable:
        fn = click.option("--since", type=SINCE, default=None,
                          help=f"Only {what} at or after this time: ISO (2025-03-03T14:30, UTC) or a look-back "
                               "(30m, 4h, 2d, 1w).")(fn)
        return click.option("--limit", type=click.IntRange(1, 10_000), default=default_limit, show_default=True,
                            help=f"Return at most this many {what} (newest first).")(fn)

    return deco


def as_utc(value: Any) -> Any:
    """A row's time (datetime, ISO string or epoch seconds) as an aware UTC datetime; None when unknown."""
    import datetime as dt

    if value is None:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return None


def bound_rows(rows: list[Any], limit: int, since: Any, time_key: str, newest_first: bool = True) -> list[Any]:
    """Sort ``rows`` newest first by ``time_key`` (rows without a time last), keep those at or after ``since``,
    and at most ``limit`` of them."""
    import datetime as dt

    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    if newest_first:
        rows = sorted(rows, key=lambda r: as_utc(r.get(time_key)) or oldest, reverse=True)
    if since is not None:
        rows = [r for r in rows if (as_utc(r.get(time_key)) or oldest) >= since]
    return rows[:limit]


class ExitAfterOutput(Exception):  # noqa: N818 - a control-flow signal, not an error report
    """Raised by a command that has printed its document and must still exit non-zero (e.g. a verdict of
    "not validated"): ``mmr`` returns ``exit_code`` without printing an error document."""

    def __init__(self, exit_code: int = 1) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def output(render: Renderer | None = None) -> Callable:
    """Decorate a click callback that returns data: print it as JSON or Rich."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            app = click.get_current_context().find_object(AppContext) or AppContext()
            app.emit(result, render)
            return result

        return wrapper

    return deco


def error_document(exc: BaseException) -> dict[str, Any]:
    """The JSON error shape every command uses."""
    from trader.errors import OutcomeUnknown, RPCError

    err: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, RPCError):
        err["type"] = exc.remote_type
        err["message"] = exc.remote_message
    if isinstance(exc, OutcomeUnknown):
        err["request_id"] = exc.request_id
        err["lookup"] = exc.lookup
    if isinstance(exc, click.ClickException):
        err["message"] = exc.format_message()
    candidates = _candidates(exc)
    if candidates is not None:
        err["candidates"] = candidates
        args = exc.remote_args if isinstance(exc, RPCError) else exc.args
        if isinstance(args[0], str):  # the message alone, not the repr of (message, candidates)
            err["message"] = args[0]
    return {"error": err}


def _candidates(exc: BaseException) -> list[dict[str, Any]] | None:
    """The candidate contracts an AmbiguousContract carries as ``args[1]`` (also when it crossed the wire)."""
    from trader.errors import RPCError

    args = exc.remote_args if isinstance(exc, RPCError) else exc.args
    name = exc.remote_type if isinstance(exc, RPCError) else type(exc).__name__
    if name != "AmbiguousContract" or len(args) < 2 or not isinstance(args[1], (list, tuple)):
        return None
    return [c for c in args[1] if isinstance(c, dict)]


def report_error(exc: BaseException, json_mode: bool) -> int:
    """Print an error (JSON on stdout, or red text on stderr) and return the exit code."""
    code = EXIT_USAGE if isinstance(exc, click.UsageError) else EXIT_ERROR
    doc = error_document(exc)
    if json_mode:
        sys.stdout.write(to_json(doc) + "\n")
        sys.stdout.flush()
    else:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]error[/] ({escape(doc['error']['type'])}): {escape(doc['error']['message'])}")
    return code
