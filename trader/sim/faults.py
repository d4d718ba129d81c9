"""Fault injection for the simulated IB Gateway: the failures IB users hit most, on demand.

Two ways in:

- in-process (tests that run the gateway in their own event loop): ``gateway.faults.<method>(…)``;
- another process: the gateway's admin port (``SimGateway(admin_port=0)`` / ``mmr-sim-gateway --admin-port``),
  bound to 127.0.0.1 only. Send one JSON object per line, get one JSON object back per line::

      {"fault": "reject_next_order", "code": 201, "message": "Order rejected - reason: test"}
      → {"ok": true}

  ``fault`` is any public method name below; the other keys are its keyword arguments.
  ``{"fault": "status"}`` returns the current fault state.

Durations are wall-clock seconds (time.monotonic), not simulated time, so they behave the same with a
manual or accelerated SimClock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any, Protocol

log = logging.getLogger(__name__)

MSG_1100 = "Connectivity between IB and Trader Workstation has been lost."
MSG_1101 = "Connectivity between IB and Trader Workstation has been restored - data lost.*"
MSG_1102 = "Connectivity between IB and Trader Workstation has been restored - data maintained."
MSG_2103 = "Market data farm connection is broken:usfarm"
MSG_2104 = "Market data farm connection is OK:usfarm"
MSG_PACING = "Historical Market Data Service error message:Pacing violation"
MSG_10197 = "No market data during competing live session"

# Every fault the gateway can inject: (admin command with example arguments, the IB failure it reproduces,
# what a client sees). `mmr-sim-gateway --faults` prints it; tests/sim/test_gateway_faults.py exercises each.
FAULT_CATALOGUE: tuple[tuple[str, str, str], ...] = (
    ('{"fault": "nightly_reset", "seconds": 30}', "IB's nightly server reset / farm reconnect",
     "2103 'Market data farm connection is broken', no ticks, then 2104 when data resumes; sockets stay up"),
    ('{"fault": "connectivity_lost_1100"}', "the gateway loses its link to IB",
     "1100 to every client; market data stops; orders rest"),
    ('{"fault": "connectivity_restored_1101"}', "link back, data lost",
     "1101; every market-data subscription is dropped and must be re-requested"),
    ('{"fault": "connectivity_restored_1102"}', "link back, data maintained",
     "1102; streaming resumes on the existing subscriptions"),
    ('{"fault": "stall_market_data", "seconds": 60}', "silent market-data stall",
     "reqMktData is acknowledged (marketDataType, tickReqParams) but no ticks arrive and no error says why"),
    ('{"fault": "competing_session", "seconds": 60}', "the same user logged in to TWS elsewhere",
     "10197 'No market data during competing live session' on each market-data reqId; no ticks meanwhile"),
    ('{"fault": "history_pacing", "limit": 60, "window_seconds": 600}', "historical-data pacing violation",
     "162 'Pacing violation' on historical requests beyond the limit in the window"),
    ('{"fault": "reject_next_order", "code": 201, "skip": 0}', "an order rejected by IB (margin, permissions)",
     "error 201 (or the code given) for the next order, `skip` orders later; nothing placed"),
    ('{"fault": "late_commission", "seconds": 5}', "commission reports arriving late",
     "commissionReport follows its execDetails by that many seconds"),
    ('{"fault": "correct_execution"}', "an execution correction",
     "the latest execution re-sent with execId …02 and its commission report; positions unchanged"),
    ('{"fault": "delay_replies", "ms": 500}', "a slow gateway", "every reply delayed, order preserved"),
    ('{"fault": "drop_connections"}', "the gateway restarting / socket reset",
     "every socket closed at once; clients see a disconnect"),
    ('{"fault": "refuse_connections", "seconds": 10}', "the gateway down", "new connects get ECONNREFUSED"),
    ('{"fault": "reset"}', "-", "every fault off"),
)


def fault_catalogue_text() -> str:
    """The catalogue as the `--faults` listing: one block per fault."""
    lines = ["Faults the simulated gateway injects (send one JSON line to --admin-port, or call",
             "gateway.faults.<name>(...) in-process):", ""]
    for command, failure, seen in FAULT_CATALOGUE:
        lines += [f"  {command}", f"      reproduces: {failure}", f"      client sees: {seen}", ""]
    return "\n".join(lines)


class GatewayHooks(Protocol):
    """What the controller needs from the gateway (kept narrow so faults.py has no gateway import)."""

    def drop_connections(self) -> int: ...
    def refuse_connections_for(self, seconds: float) -> None: ...
    def broadcast_error(self, code: int, message: str) -> None: ...
    def market_data_error(self, code: int, message: str) -> int: ...
    def clear_market_subscriptions(self) -> None: ...
    def correct_execution(self, exec_id: str | None) -> str: ...
    def reject_next_order(self, code: int, message: str, skip: int = 0) -> None: ...


class FaultController:
    """Switches for every injectable fault; the gateway consults it on each request and tick."""

    def __init__(self, gateway: GatewayHooks) -> None:
        self._gw = gateway
        self.reply_delay_ms = 0.0
        self.commission_delay_s = 0.0
        self.data_paused_until = 0.0
        self.connectivity_lost = False
        self.pacing_limit = 0  # 0 = no pacing rule
        self.pacing_window_s = 600.0
        self._history_requests: deque[float] = deque()
        self._reset_announced = False
        self.stalled_until = 0.0  # silent stall / competing session: no ticks, no 2103

    # ------------------------------------------------------------------ connection faults
    def drop_connections(self) -> int:
        """Close every client socket at once (ib_async sees disconnectedEvent). Returns how many."""
        return self._gw.drop_connections()

    def refuse_connections(self, seconds: float) -> None:
        """Stop listening for `seconds` (new connects get ECONNREFUSED, like a gateway that is down)."""
        self._gw.refuse_connections_for(float(seconds))

    def delay_replies(self, ms: float) -> None:
        """Delay every message the gateway sends by `ms` milliseconds (order kept); 0 turns it off."""
        self.reply_delay_ms = max(float(ms), 0.0)

    # ------------------------------------------------------------------ IB system messages
    def connectivity_lost_1100(self) -> None:
        """Emit 1100 to every client and stop market data until 1101/1102."""
        self.connectivity_lost = True
        self._gw.broadcast_error(1100, MSG_1100)

    def connectivity_restored_1101(self) -> None:
        """Emit 1101 (restored, data lost): market data subscriptions are dropped; clients must resubscribe."""
        self.connectivity_lost = False
        self._gw.clear_market_subscriptions()
        self._gw.broadcast_error(1101, MSG_1101)

    def connectivity_restored_1102(self) -> None:
        """Emit 1102 (restored, data maintained): streaming resumes on the existing subscriptions."""
        self.connectivity_lost = False
        self._gw.broadcast_error(1102, MSG_1102)

    def emit(self, code: int) -> None:
        """Emit 1100, 1101 or 1102 by code."""
        {1100: self.connectivity_lost_1100, 1101: self.connectivity_restored_1101,
         1102: self.connectivity_restored_1102}[int(code)]()

    def nightly_reset(self, seconds: float) -> None:
        """IB's nightly reset: sockets stay up, market data stops for `seconds` (2103, then 2104 when back)."""
        self.data_paused_until = time.monotonic() + float(seconds)
        self._reset_announced = True
        self._gw.broadcast_error(2103, MSG_2103)

    def stall_market_data(self, seconds: float) -> None:
        """Silent stall for `seconds`: requests are acknowledged but no ticks arrive and nothing says why
        (the "reqMktData returns but no ticks" failure a data watchdog must catch)."""
        self.stalled_until = time.monotonic() + float(seconds)

    def competing_session(self, seconds: float) -> int:
        """Another login of the same user takes the data: 10197 on every market-data reqId, no ticks for
        `seconds`. Returns how many subscriptions were told."""
        self.stalled_until = time.monotonic() + float(seconds)
        return self._gw.market_data_error(10197, MSG_10197)

    def market_data_paused(self) -> bool:
        """True while market data must not flow (nightly reset, lost connectivity, a stall)."""
        if self.connectivity_lost:
            return True
        if self.stalled_until and time.monotonic() < self.stalled_until:
            return True
        if self.data_paused_until and time.monotonic() < self.data_paused_until:
            return True
        if self._reset_announced:
            self._reset_announced = False
            self.data_paused_until = 0.0
            self._gw.broadcast_error(2104, MSG_2104)
        return False

    # ------------------------------------------------------------------ order / execution faults
    def reject_next_order(self, code: int = 201, message: str = "Order rejected - reason:simulated rejection",
                          skip: int = 0) -> None:
        """The next placeOrder is rejected with this IB error code and text.

        ``skip`` lets that many orders through first, so a test can reject one leg of a bracket (skip=1: the
        take-profit, skip=2: the stop-loss, when the legs are sent entry, take-profit, stop-loss).
        """
        self._gw.reject_next_order(int(code), str(message), int(skip))

    def correct_execution(self, exec_id: str | None = None) -> str:
        """Re-issue an execution (default: the latest) as ….02, like an IB execution correction."""
        return self._gw.correct_execution(exec_id)

    def late_commission(self, seconds: float) -> None:
        """Send each commissionReport `seconds` after its execDetails; 0 turns it off."""
        self.commission_delay_s = max(float(seconds), 0.0)

    # ------------------------------------------------------------------ historical data pacing
    def history_pacing(self, limit: int, window_seconds: float = 600.0) -> None:
        """Error 162 once more than `limit` historical requests arrive within `window_seconds`
        (IB's rule is 60 per 10 minutes); limit 0 turns it off."""
        self.pacing_limit = max(int(limit), 0)
        self.pacing_window_s = float(window_seconds)
        self._history_requests.clear()

    def history_request_allowed(self) -> bool:
        """Count one historical request; False when it breaks the pacing rule."""
        if not self.pacing_limit:
            return True
        now = time.monotonic()
        q = self._history_requests
        while q and now - q[0] > self.pacing_window_s:
            q.popleft()
        q.append(now)
        return len(q) <= self.pacing_limit

    # ------------------------------------------------------------------ housekeeping
    def reset(self) -> None:
        """Turn every fault off."""
        self.reply_delay_ms = 0.0
        self.commission_delay_s = 0.0
        self.data_paused_until = 0.0
        self.connectivity_lost = False
        self._reset_announced = False
        self.stalled_until = 0.0
        self.history_pacing(0)

    def status(self) -> dict[str, Any]:
        """The current switches (for the admin port)."""
        return {
            "reply_delay_ms": self.reply_delay_ms,
            "commission_delay_s": self.commission_delay_s,
            "market_data_paused": bool(self.connectivity_lost or time.monotonic() < self.data_paused_until
                                       or time.monotonic() < self.stalled_until),
            "connectivity_lost": self.connectivity_lost,
            "pacing_limit": self.pacing_limit,
            "pacing_window_s": self.pacing_window_s,
        }

    _COMMANDS = frozenset({
        "drop_connections", "refuse_connections", "delay_replies", "connectivity_lost_1100",
        "connectivity_restored_1101", "connectivity_restored_1102", "emit", "nightly_reset",
        "reject_next_order", "correct_execution", "late_commission", "history_pacing", "reset", "status",
        "stall_market_data", "competing_session",
    })

    def apply(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one admin command ``{"fault": name, **kwargs}``; returns ``{"ok": true, "result": …}``
        or ``{"error": "…"}``."""
        name = str(command.get("fault", ""))
        if name not in self._COMMANDS:
            return {"error": f"unknown fault {name!r}; one of {sorted(self._COMMANDS)}"}
        kwargs = {k: v for k, v in command.items() if k != "fault"}
        try:
            result = getattr(self, name)(**kwargs)
        except Exception as exc:  # a bad admin command must not take the gateway down
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, "result": result}


async def serve_admin(controller: FaultController, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """Start the JSON-lines admin server; returns it (``server.sockets[0].getsockname()[1]`` is the port)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = controller.apply(json.loads(line))
                except json.JSONDecodeError as exc:
                    reply = {"error": f"bad JSON: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


def send_admin_command(port: int, command: dict[str, Any], host: str = "127.0.0.1",
                       timeout: float = 5.0) -> dict[str, Any]:
    """Blocking client for the admin port (for tests and scripts in another process)."""
    import socket

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(json.dumps(command).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)
