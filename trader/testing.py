"""Start an isolated MMR platform on free ports in a temp ``MMR_HOME`` — for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICES = ("trader_service", "data_service", "strategy_service")
PORT_KEYS = (
    "TRADER_RPC_PORT",
    "TRADER_PUB_PORT",
    "DATA_RPC_PORT",
    "STRATEGY_RPC_PORT",
    "STRATEGY_BUS_PORT",
    "SIM_GATEWAY_PORT",
)
_RPC_PORT_KEY = {"trader_service": "TRADER_RPC_PORT", "data_service": "DATA_RPC_PORT",
                 "strategy_service": "STRATEGY_RPC_PORT"}


# Below Linux's ephemeral range (32768-60999): a port picked there can be taken by any outgoing connection (the
# services' own, the simulated gateway's) before its server binds it.
_PORTS = (20000, 32768)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now, below the ephemeral range. All are held at once while
    they are picked (one port at a time, released at once, the kernel could hand out the same one twice)."""
    rng = random.SystemRandom()
    held: list[socket.socket] = []
    try:
        while len(held) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", rng.randrange(*_PORTS)))
            except OSError:  # in use: another one
                s.close()
                continue
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (below the ephemeral range)."""
    return free_ports(1)[0]


def run_async(fn: Callable[..., Coroutine[Any, Any, Any]] | None = None, /, *, timeout: float = 40.0) -> Any:
    """Run an async test body in a fresh event loop, failing after ``timeout`` s (no pytest-asyncio needed).

    ``@run_async`` or ``@run_async(timeout=60)``.
    """

    def decorate(body: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(body)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run(asyncio.wait_for(body(*args, **kwargs), timeout))

        return wrapper

    return decorate if fn is None else decorate(fn)


async def until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` every ``interval`` s until it is truthy; AssertionError after ``timeout`` s."""
    for _ in range(int(timeout / interval)):
        if predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not reached")


# What a child process may inherit from the caller: what the OS and Python need, never MMR settings.
_INHERITED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TMPDIR", "TMP", "TEMP", "VIRTUAL_ENV",
                  "PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "LD_LIBRARY_PATH", "SYSTEMROOT")
_INHERITED_PREFIXES = ("LC_", "COV_CORE_", "COVERAGE_")


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of ``base`` (``os.environ``): PATH, HOME, locale, temp dir, Python's own variables.

    Nothing else leaks in, so ``BROKER=ib``, ``MMR_ROLE`` or ``RPC_TIMEOUT`` in the caller's shell cannot
    change what a test's child process does."""
    base = dict(os.environ) if base is None else base
    return {k: v for k, v in base.items() if k in _INHERITED_ENV or k.startswith(_INHERITED_PREFIXES)}


def platform_env(home: Path) -> dict[str, str]:
    """Environment for an isolated install: :func:`clean_env`, ``MMR_HOME`` in ``home``, every port free."""
    env = clean_env()
    env["MMR_HOME"] = str(home)
    ports = free_ports(len(PORT_KEYS) + 1)  # distinct: picked one by one, two services once got the same one
    for key, port in zip(PORT_KEYS, ports, strict=False):
        env[key] = str(port)
    env["IB_SERVER_PORT"] = env["SIM_GATEWAY_PORT"]
    env["SIM_ADMIN_PORT"] = str(ports[-1])
    # The 2-s default suits an idle machine; a loaded CI worker can take longer to answer a read, and a test
    # that wants a short wait sets RPC_TIMEOUT itself.
    env["RPC_TIMEOUT"] = "10"
    return env


def mmr(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess, as an agent would."""
    return subprocess.run(
        [sys.executable, "-m", "trader.mmr_cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Platform:
    """The three service processes of one isolated install."""

    home: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    with_gateway: bool = False

    def endpoint(self, service: str) -> str:
        return f"tcp://127.0.0.1:{self.env[_RPC_PORT_KEY[service]]}"

    def client_key(self, role: str = "operator") -> Any:
        """The CURVE key of ``role`` (operator, proposer, approver, services) in this install's ``MMR_HOME``,
        or None when the install runs with ``curve: false``. Unauthenticated until the services made the keys."""
        from trader.config import load_trader_config, mmr_paths
        from trader.messaging.auth import keys_dir, load_client_key

        paths = mmr_paths(self.env)
        if not load_trader_config(paths, self.env).curve:
            return None
        return load_client_key(keys_dir(paths.config_dir) / f"{role}.key_secret")

    def client(self, service: str, role: str = "operator", timeout: float = 2.0) -> Any:
        """A blocking RPCClient to ``service`` holding ``role``'s key (close it, or use ``with``)."""
        from trader.messaging.rpc import RPCClient

        return RPCClient(self.endpoint(service), timeout=timeout, key=self.client_key(role))

    def start(self, timeout: float = 30.0) -> None:
        """Start every service and wait until each is ready (``status().ready``: ``on_start`` has finished)."""
        from trader.errors import Unauthenticated

        self.home.mkdir(parents=True, exist_ok=True)
        if self.with_gateway:
            self.start_gateway(timeout)
        for name in SERVICES:
            with open(self.home / f"{name}.stdout", "wb") as out:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", f"trader.{name}"], env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
        deadline = time.monotonic() + timeout
        for name in SERVICES:
            client = None
            try:
                while True:
                    if self.procs[name].poll() is not None:
                        raise RuntimeError(f"{name} exited early: {(self.home / f'{name}.stdout').read_text()}")
                    try:
                        client = client or self.client(name, timeout=0.5)  # keys appear at the first start
                        if client.rpc().status().ready:  # on_start finished: no ServiceStarting answers
                            break
                    except (TimeoutError, Unauthenticated):
                        time.sleep(0.02)
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} was not ready within {timeout} s")
            finally:
                if client is not None:
                    client.close()

    def wait_broker_ready(self, timeout: float = 30.0) -> dict:
        """Wait until trader_service's broker session is connected and reconciled; return its status."""
        deadline = time.monotonic() + timeout
        broker: dict = {}
        with self.client("trader_service", timeout=2.0) as client:
            while time.monotonic() < deadline:
                broker = client.rpc().status().details.get("broker", {})
                if broker.get("ready") and broker.get("reconciled"):
                    return broker
                time.sleep(0.1)
        raise RuntimeError(f"broker not ready within {timeout} s: {broker}")

    @property
    def gateway_port(self) -> int:
        return int(self.env["SIM_GATEWAY_PORT"])

    def start_gateway(self, timeout: float = 30.0) -> None:
        """Start the simulated IB Gateway (state under MMR_HOME/data/sim) and wait for its port; ``SIM_SPEED`` in
        the env runs its clock that many times faster (1-minute bars close every 60/SIM_SPEED s); ``SIM_REPLAY_START``
        (ISO) replays the bars stored under MMR_HOME from that moment (sim_source: replay)."""
        state = self.home / "data" / "sim"
        state.mkdir(parents=True, exist_ok=True)
        with open(self.home / "sim_gateway.stdout", "wb") as out:
            self.procs["sim_gateway"] = subprocess.Popen(
                [sys.executable, "-m", "trader.sim.gateway", "--port", str(self.gateway_port),
                 "--state-dir", str(state), "--admin-port", self.env["SIM_ADMIN_PORT"],
                 *(["--speed", self.env["SIM_SPEED"]] if self.env.get("SIM_SPEED") else []),  # accelerated clock
                 # SIM_REPLAY_START: replay the bars stored in MMR_HOME's bar store from that moment
                 *(["--replay", "--replay-start", self.env["SIM_REPLAY_START"]]
                   if self.env.get("SIM_REPLAY_START") else [])],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.gateway_port), timeout=0.2):
                    return
            except OSError:
                if self.procs["sim_gateway"].poll() is not None or time.monotonic() > deadline:
                    out = (self.home / "sim_gateway.stdout").read_text()
                    raise RuntimeError(f"sim gateway did not start: {out}") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> dict[str, int]:
        """SIGTERM every process; return their exit codes (killing any that hang)."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        self.procs.clear()
        return codes


@contextlib.contextmanager
def running_platform(home: Path, *, with_gateway: bool = False, broker_ready: bool = False,
                     **env_overrides: str) -> Iterator[Platform]:
    """A Platform on free ports in ``home`` (env overrides such as ``GROUP_BUDGET_MODE="reject"``), started,
    and stopped on exit; ``broker_ready`` also waits until trader_service has reconciled with the gateway."""
    p = Platform(home, {**platform_env(home), **env_overrides}, with_gateway=with_gateway)
    try:
        p.start()
        if broker_ready:
            p.wait_broker_ready()
        yield p
    finally:
        p.stop()


class RecordingBroker:
    """An executioner ``BrokerPort`` for tests: a fixed price, always ready, and every order it is sent recorded
    (``placed``; ``orders``: correlation id → order ids, the "broker's truth"). Placements answer with the
    production ``PlacementResult``; set ``fail`` to make the next placements raise it."""

    def __init__(self, price: float = 100.0, fail: BaseException | None = None) -> None:
        import threading

        self.price_value = price
        self.fail = fail
        self.placed: list[Any] = []
        self.orders: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def require_ready(self, *, opening: bool) -> None:
        pass

    async def resolve_for(self, req: Any) -> dict[str, Any]:
        return {"con_id": 42, "symbol": req.symbol}

    async def price(self, contract: dict[str, Any], req: Any) -> float:
        return self.price_value

    async def place(self, contract: dict[str, Any], req: Any, quantity: float) -> dict[str, Any]:
        import dataclasses

        from trader.broker.placement import PlacementResult

        if self.fail is not None:
            raise self.fail
        with self._lock:
            self.placed.append(req)
            oid = 100 + len(self.placed)
            self.orders.setdefault(req.correlation_id, []).append(oid)
        return dataclasses.asdict(PlacementResult(order_ids=(oid,), perm_ids=(8900 + oid,), status="Filled",
                                                  filled=quantity, avg_fill_price=self.price_value,
                                                  leg_statuses=("Filled",)))

    def working_quantity(self, con_id: int, symbol: str, sec_type: str, action: str) -> float:
        return 0.0


def cli_json(p: Platform, *args: str, timeout: float = 60) -> tuple[int, Any]:
    """``mmr --json ARGS`` against platform ``p`` in a subprocess, as an agent runs it: (exit code, the one
    JSON document it printed). Fails when stdout is not exactly one line."""
    import json

    res = mmr(p.env, "--json", *args, timeout=timeout)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON document, got {res.stdout!r} (stderr {res.stderr[-2000:]!r})"
    return res.returncode, json.loads(lines[0])


def cli_ok(p: Platform, *args: str, timeout: float = 60) -> Any:
    """:func:`cli_json` that must succeed: exit 0 and no error document."""
    code, doc = cli_json(p, *args, timeout=timeout)
    assert code == 0 and not (isinstance(doc, dict) and "error" in doc), doc
    return doc


def eventually(fn: Callable[[], Any], timeout: float = 10.0, interval: float = 0.2) -> Any:
    """Call ``fn`` until it returns something truthy (or ``timeout`` s pass); return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    return fn()
