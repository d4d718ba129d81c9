"""Which process holds a TCP port, and the clear ``PortInUse`` error a service exits with when it cannot bind.

Services bind fixed ports from ``trader.yaml``. When one is taken, "address already in use" alone leaves the
operator guessing; :func:`port_in_use_error` names the port, the config key with its environment override, and
the holder (pid and command from ``/proc/net/tcp*`` + ``/proc/<pid>/fd``, else ``ss -ltnp``, else "unknown").
Default ports sit below Linux's ephemeral range (32768–60999) so an outgoing connection cannot hold them.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from trader.config import TraderConfig
from trader.errors import PortInUse

__all__ = [
    "EPHEMERAL_RANGE",
    "SERVICE_PORT_KEYS",
    "PORT_IN_USE_MARK",
    "is_addr_in_use",
    "port_holder",
    "port_is_free",
    "port_in_use_error",
    "diagnose_bind_failure",
]

EPHEMERAL_RANGE = (32768, 60999)
# The ports each service binds itself (the sim gateway's is checked by the gateway).
SERVICE_PORT_KEYS: dict[str, tuple[str, ...]] = {
    "trader_service": ("trader_rpc_port", "trader_pub_port"),
    "data_service": ("data_rpc_port",),
    "strategy_service": ("strategy_rpc_port", "strategy_bus_port"),
}
# Prefix of the log line a service writes before exiting; `mmr up` looks for it.
PORT_IN_USE_MARK = "PortInUse:"

_TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "02": "SYN_SENT"}


def is_addr_in_use(exc: BaseException) -> bool:
    """True when ``exc`` (an OSError or a ``zmq.ZMQError``) means "address already in use"."""
    return getattr(exc, "errno", None) == errno.EADDRINUSE or "Address already in use" in str(exc)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``host:port`` can be bound right now (with SO_REUSEADDR, as ZeroMQ binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _socket_inodes(port: int, proc: Path) -> dict[str, str]:
    """inode → TCP state of every socket whose local port is ``port`` (IPv4 and IPv6)."""
    found: dict[str, str] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[9] != "0":
                found[cols[9]] = _TCP_STATES.get(cols[3], cols[3])
    return found


def _command(pid: str, proc: Path) -> str:
    try:
        raw = (proc / pid / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return " ".join(text.split())[:200] or "?"  # one line: the message is matched line by line in logs


def _holder_from_proc(port: int, proc: Path) -> str | None:
    inodes = _socket_inodes(port, proc)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]": state for inode, state in inodes.items()}
    holders: list[str] = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:
            continue  # another user's process: not visible
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link in targets:
                holders.append(f"pid {pid_dir.name} ({_command(pid_dir.name, proc)}, {targets[link]})")
                break
    own = f"pid {os.getpid()} "
    if holders and all(h.startswith(own) for h in holders):
        return "this process"  # our own socket, still closing after the failed start
    if holders:
        return "; ".join(h for h in holders if not h.startswith(own))
    states = ", ".join(sorted(set(inodes.values())))
    return f"unknown (a socket in state {states} owned by a process this user cannot see)"


def _holder_from_ss(port: int) -> str | None:
    if shutil.which("ss") is None:
        return None
    try:
        out = subprocess.run(["ss", "-Htanp", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    users = re.findall(r'\("([^"]+)",pid=(\d+)', out)
    if users:
        return "; ".join(f"pid {pid} ({name})" for name, pid in dict.fromkeys(users))
    return "unknown (ss shows no owning process)" if out.strip() else None


def port_holder(port: int, proc: Path = Path("/proc")) -> str:
    """Who holds ``port``: "pid N (command, STATE)" for each holder, or a sentence starting with "unknown"."""
    if proc.is_dir():
        found = _holder_from_proc(port, proc)
        if found:
            return found
    return _holder_from_ss(port) or "unknown"


def port_in_use_error(port: int, key: str, holder: str | None = None) -> PortInUse:
    """The ``PortInUse`` for config key ``key`` (its env override is the upper-cased key)."""
    holder = port_holder(port) if holder is None else holder
    hint = ""
    if EPHEMERAL_RANGE[0] <= port <= EPHEMERAL_RANGE[1]:
        hint = (f" Port {port} lies in Linux's ephemeral range {EPHEMERAL_RANGE[0]}–{EPHEMERAL_RANGE[1]}, where "
                "outgoing connections can take it: choose one below 32768.")
    return PortInUse(
        f"port {port} ({key} in trader.yaml, environment override {key.upper()}) is already in use, held by "
        f"{holder}. Stop that process or set {key.upper()}=<free port>.{hint}"
    )


def diagnose_bind_failure(config: TraderConfig, service: str, exc: BaseException | None = None) -> PortInUse | None:
    """After a service failed to bind: the ``PortInUse`` for the first of its ports that is taken, or None."""
    if exc is not None and not is_addr_in_use(exc):
        return None
    keys = SERVICE_PORT_KEYS.get(service) or tuple(k for ks in SERVICE_PORT_KEYS.values() for k in ks)
    for key in keys:
        port = int(getattr(config, key))
        host = config.bind_address if config.bind_address not in ("*", "0.0.0.0") else "0.0.0.0"
        if port_is_free(port, host):
            continue
        holder = port_holder(port)
        if holder != "this process":
            return port_in_use_error(port, key, holder)
    return None
