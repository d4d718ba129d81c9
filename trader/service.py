"""The small base every MMR service process shares.

A service is a thin shell: it loads config, opens its RPC server (and any other sockets), exposes ``ping`` and
``status``, and stops cleanly on SIGTERM/SIGINT. Domain logic lives in plain modules the service wires up.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import trader
from trader.config import Paths, TraderConfig, ensure_user_config, load_trader_config, mmr_paths
from trader.errors import ConfigError, PortInUse
from trader.messaging.auth import (
    SERVICES_ROLE,
    ClientKey,
    ServerSecurity,
    ensure_keys,
    keys_dir,
    load_client_key,
)
from trader.messaging.rpc import RPCServer, rpcmethod
from trader.objects import ServiceStatus
from trader.trading.roles import check_rpc

log = logging.getLogger(__name__)


# The cyclic GC's thresholds once a service runs (CPython's default is (700, 10, 10)): full collections 10x
# rarer. One of trader_service's heap pauses it 15-25 ms even after gc.freeze(); at the default thresholds one
# landed on a bar close's proposals every few seconds of streaming. The young generations keep their defaults
# (larger ones made each young collection take 5-18 ms instead).
GC_THRESHOLDS = (700, 10, 100)


def latency_summary(values: Sequence[float]) -> dict[str, Any] | None:
    """``{"median", "p99", "n"}`` of recent durations in ms (rounded to 0.1), for a service's status details;
    None when there are none yet."""
    ms = sorted(values)
    if not ms:
        return None
    return {"median": round(ms[len(ms) // 2], 1), "p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
            "n": len(ms)}


def settle_heap() -> None:
    """After start-up: what it built (modules, broker state, caches) lives as long as the process, so it leaves
    the cyclic GC's scans (``gc.freeze``: a full collection had been ~60 ms), and collections get rarer
    (`GC_THRESHOLDS`). Reference counting still frees everything at once; only cycles wait longer."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class IdleCollector:
    """The cyclic GC's full collection at a quiet moment instead of inside a request.

    Even frozen (`settle_heap`), trader_service's full collection takes ~20-25 ms; CPython starts one after
    ``GC_THRESHOLDS[2]`` young collections, wherever it is, e.g. inside a bar close's ``propose_batch``. Checked
    every ``every`` s: once half of that count has built up and no request has run or arrived for ``quiet`` s, it
    collects then, so the automatic one (at the full count) does not come while a service is busy."""

    def __init__(self, busy: Any, last_activity: Any, *, quiet: float = 0.3, every: float = 0.25,
                 clock: Any = time.monotonic, counts: Any = gc.get_count, collect: Any = gc.collect) -> None:
        self.busy, self.last_activity, self.quiet, self.every = busy, last_activity, quiet, every
        self.clock, self.counts, self.collect = clock, counts, collect
        self.collections = 0

    def due(self) -> bool:
        """Half the young collections that start a full one have happened since the last full one."""
        return self.counts()[2] >= max(1, GC_THRESHOLDS[2] // 2)

    def tick(self) -> bool:
        """Collect now if one is due and the service is quiet; True when it collected."""
        if not self.due() or self.busy() or self.clock() - self.last_activity() < self.quiet:
            return False
        self.collect()
        self.collections += 1
        return True

    async def run(self) -> None:
        """`tick` every ``every`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.every)
            self.tick()


class Service:
    """Base class: RPC server with ``ping``/``status``, lifecycle hooks, pid file, clean shutdown."""

    name: ClassVar[str] = "service"

    def __init__(self, config: TraderConfig, paths: Paths) -> None:
        self.config = config
        self.paths = paths
        self.started_at = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._stop = asyncio.Event()
        self.rpc_server: RPCServer | None = None
        # CURVE for every server socket of this service (None with `curve: false`); see trader/messaging/auth.py
        self.security: ServerSecurity | None = None
        # False until on_start has finished: until then RPC answers ServiceStarting (except ping/status).
        self.ready = False

    # --- hooks for subclasses ------------------------------------------------------------------
    def rpc_port(self) -> int:
        """The port this service's RPC server binds to."""
        raise NotImplementedError

    async def on_start(self) -> None:
        """Open extra sockets, connect to the broker … (called after the RPC server is bound)."""

    async def on_stop(self) -> None:
        """Close what `on_start` opened."""

    def endpoints(self) -> dict[str, str]:
        """Addresses this service listens on, for ``status``."""
        return {"rpc": self.rpc_server.address if self.rpc_server else ""}

    def details(self) -> dict[str, Any]:
        """Service-specific status fields."""
        return {}

    def authorize(self, role: str, method: str, args: list | tuple, kwargs: dict) -> None:
        """Refuse (RoleForbidden) an RPC call the caller's role may not make (table in trader/trading/roles.py)."""
        check_rpc(self.name, role, method, args, kwargs)

    def client_key(self) -> ClientKey | None:
        """The key this service uses to call the other services (full rights), or None with ``curve: false``."""
        if not self.config.curve:
            return None
        ensure_keys(self.paths.config_dir)
        return load_client_key(keys_dir(self.paths.config_dir) / f"{SERVICES_ROLE}.key_secret")

    # --- RPC -----------------------------------------------------------------------------------
    @rpcmethod
    def ping(self) -> str:
        """Liveness check."""
        return "pong"

    @rpcmethod
    def status(self) -> ServiceStatus:
        """Health: uptime, version, pid, readiness and service-specific details."""
        try:
            details = self.details()
        except Exception:
            if self.ready:
                raise
            details = {}  # still starting: details may need what on_start has not built yet
        return ServiceStatus(
            service=self.name,
            version=trader.__version__,
            pid=os.getpid(),
            started_at=self.started_at,
            uptime_seconds=round(time.monotonic() - self._t0, 3),
            endpoints=self.endpoints(),
            details=details,
            ready=self.ready,
        )

    # --- lifecycle -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the service to stop (signal-safe)."""
        self._stop.set()

    @property
    def pid_file(self):
        return self.paths.run_dir / f"{self.name}.pid"

    async def run(self) -> None:
        """Start, serve until asked to stop, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        if self.config.curve:
            self.security = ServerSecurity(self.paths.config_dir)  # creates the keys on first start
        self.rpc_server = RPCServer(
            self,
            self.config.endpoint(self.rpc_port()),
            max_message_bytes=self.config.max_message_bytes,
            ready=lambda: self.ready,
            security=self.security,
            authorize=self.authorize,
        )
        await self.rpc_server.start()
        log.info("%s %s starting (pid %d), RPC on %s", self.name, trader.__version__, os.getpid(),
                 self.rpc_server.address)
        self.pid_file.write_text(str(os.getpid()))
        idle_gc: asyncio.Task[None] | None = None
        try:
            await self.on_start()
            settle_heap()
            server = self.rpc_server
            idle_gc = asyncio.get_running_loop().create_task(
                IdleCollector(lambda: server.busy, lambda: server.last_request).run())
            self.ready = True
            log.info("%s %s up (pid %d) on %s", self.name, trader.__version__, os.getpid(), self.endpoints())
            await self._stop.wait()
            log.info("%s stopping", self.name)
        finally:
            if idle_gc is not None:
                idle_gc.cancel()
            try:
                await self.on_stop()
            finally:
                await self.rpc_server.stop()
                if self.security is not None:
                    self.security.release()
                self.pid_file.unlink(missing_ok=True)
                log.info("%s stopped", self.name)


def run_service(cls: type[Service], argv: list[str] | None = None) -> int:
    """Entry point shared by the service processes: config, logging, event loop. Returns the exit code."""
    parser = argparse.ArgumentParser(prog=f"mmr-{cls.name.replace('_', '-')}", description=cls.__doc__)
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING … (default from logging.yaml)")
    args = parser.parse_args(argv)
    try:
        paths = mmr_paths().ensure()
        ensure_user_config(paths)
        config = load_trader_config(paths)
        from trader.logging_setup import setup_logging

        setup_logging(cls.name, paths, args.log_level)
    except ConfigError as exc:
        print(f"{cls.name}: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(cls(config, paths).run())
    except Exception as exc:
        from trader.ports import PORT_IN_USE_MARK, diagnose_bind_failure, is_addr_in_use

        if not (isinstance(exc, OSError) or is_addr_in_use(exc)):
            raise
        # zmq's "Address already in use" names no port: find which of ours is taken, and by whom.
        busy = exc if isinstance(exc, PortInUse) else diagnose_bind_failure(config, cls.name, exc)
        if busy is not None:
            log.error("%s %s", PORT_IN_USE_MARK, busy)
        else:
            log.error("%s could not start: %s", cls.name, exc)
        return 1
    return 0
