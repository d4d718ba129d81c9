"""Start and stop the MMR processes under `supervisor` (restart on crash, one log per program).

``mmr up`` (what ``./start_mmr.sh`` runs) writes ``<run_dir>/supervisord.conf``, starts ``supervisord`` (or
updates a running one), and waits until every service answers its health check. ``mmr down`` shuts
supervisord and its programs down. The programs inherit the caller's environment, so ``MMR_HOME``,
``TRADER_CONFIG`` and port overrides apply to them too.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trader.config import Paths, TraderConfig


@dataclass(frozen=True, slots=True)
class Program:
    """One supervised process."""

    name: str
    argv: list[str]


def programs(config: TraderConfig, paths: Paths) -> list[Program]:
    """The processes that make up the platform for this config (the simulated gateway only for broker=sim)."""
    py = sys.executable
    progs: list[Program] = []
    if config.broker == "sim" and importlib.util.find_spec("trader.sim.gateway") is not None:
        progs.append(
            Program(
                "sim_gateway",
                [py, "-m", "trader.sim.gateway", "--host", config.bind_address, "--port", str(config.sim_gateway_port),
                 "--state-dir", str(paths.data_dir / "sim"), "--seed", str(config.sim_seed),
                 "--calendar", config.sim_calendar, *_replay_args(config, paths)],
            )
        )
    for name in ("trader_service", "data_service", "strategy_service"):
        progs.append(Program(name, [py, "-m", f"trader.{name}"]))
    return progs


def _replay_args(config: TraderConfig, paths: Paths) -> list[str]:
    """The sim gateway's replay flags for ``sim_source: replay`` (bars from the install's bars.duckdb)."""
    if config.sim_source != "replay":
        return []
    args = ["--replay", "--bars-dir", str(paths.data_dir), "--replay-speed", str(config.sim_replay_speed)]
    return args + (["--replay-start", config.sim_replay_start] if config.sim_replay_start else [])


def _quote(arg: str) -> str:
    # supervisor splits `command` shell-style; quote paths that may hold spaces
    return '"' + arg.replace('"', '\\"') + '"' if any(c in arg for c in ' \t"') else arg


def supervisor_conf(config: TraderConfig, paths: Paths) -> str:
    """The supervisord configuration for this install."""
    run, logs = paths.run_dir, paths.log_dir
    lines = [
        "[unix_http_server]",
        f"file={run / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={logs / 'supervisord.log'}",
        f"pidfile={run / 'supervisord.pid'}",
        f"directory={Path.cwd()}",
        "logfile_maxbytes=10MB",
        "logfile_backups=3",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run / 'supervisor.sock'}",
        "",
    ]
    for p in programs(config, paths):
        lines += [
            f"[program:{p.name}]",
            "command=" + " ".join(_quote(a) for a in p.argv),
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=10",
            "stopsignal=TERM",
            "stopwaitsecs=15",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={logs / (p.name + '.out.log')}",
            "stdout_logfile_maxbytes=10MB",
            "stdout_logfile_backups=3",
            "redirect_stderr=true",
            "",
        ]
    return "\n".join(lines)


def _conf_path(paths: Paths) -> Path:
    return paths.run_dir / "supervisord.conf"


def _pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def supervisord_pid(paths: Paths) -> int | None:
    """PID of this install's running supervisord, if any."""
    return _pid_alive(paths.run_dir / "supervisord.pid")


def _ctl(paths: Paths, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(_conf_path(paths)), *args],
        capture_output=True, text=True, timeout=timeout,
    )


def start(config: TraderConfig, paths: Paths, *, foreground: bool = False) -> dict[str, Any]:
    """Write the supervisor config and start (or update) supervisord. Does not wait for health.

    ``foreground=True`` replaces this process with supervisord in no-daemon mode (containers)."""
    paths.ensure()
    conf = _conf_path(paths)
    conf.write_text(supervisor_conf(config, paths))
    if foreground:
        os.execv(sys.executable, [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)])
    if supervisord_pid(paths):
        res = _ctl(paths, "update")
        action = "updated"
        if res.returncode not in (0,):
            raise RuntimeError(f"supervisorctl update failed: {res.stdout.strip()} {res.stderr.strip()}")
        _ctl(paths, "start", "all")
    else:
        res = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            capture_output=True, text=True, timeout=30,
        )
        if res.returncode != 0:
            raise RuntimeError(f"supervisord failed to start: {res.stderr.strip() or res.stdout.strip()}")
        action = "started"
    return {"supervisor": action, "config": str(conf), "programs": [p.name for p in programs(config, paths)]}


def wait_healthy(check, timeout: float, interval: float = 0.2) -> tuple[bool, Any]:
    """Poll ``check() -> (ok, detail)`` until ok or timeout; return the last result."""
    deadline = time.monotonic() + timeout
    ok, detail = check()
    while not ok and time.monotonic() < deadline:
        time.sleep(interval)
        ok, detail = check()
    return ok, detail


def failure_reason(paths: Paths, name: str, since: float | None = None) -> str | None:
    """Why service ``name`` did not come up, from its logs: the last ``PortInUse:`` line not followed by a
    successful start, or None. Log files last written before ``since`` (a ``time.time()``) are ignored."""
    from trader.ports import PORT_IN_USE_MARK

    # The service's own log first: its lines are whole (the console copy in .out.log is wrapped by Rich).
    for log_file in (paths.log_dir / f"{name}.log", paths.log_dir / f"{name}.out.log"):
        reason = None
        try:
            if since is not None and log_file.stat().st_mtime < since:
                continue
            with log_file.open("rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 65536))
                lines = fh.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if PORT_IN_USE_MARK in line:
                reason = line[line.index(PORT_IN_USE_MARK):].strip()
            elif f"{name} " in line and " up (pid " in line:
                reason = None  # a later start succeeded
        if reason:
            return reason
    return None


def stop(paths: Paths, timeout: float = 30.0) -> dict[str, Any]:
    """Stop supervisord and every program; also stop stray services found through their pid files."""
    stopped: list[str] = []
    pid = supervisord_pid(paths)
    if pid:
        _ctl(paths, "shutdown", timeout=timeout)
        deadline = time.monotonic() + timeout
        while _pid_alive(paths.run_dir / "supervisord.pid") and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(paths.run_dir / "supervisord.pid"):
            os.kill(pid, signal.SIGTERM)
        stopped.append("supervisord")
    tmux_file = paths.run_dir / "tmux_session"
    if tmux_file.exists():  # started with `mmr up --tmux`
        session = tmux_file.read_text().strip()
        if subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True).returncode == 0:
            stopped.append(f"tmux:{session}")
        tmux_file.unlink()
    # Services started by hand (not under supervisor) leave pid files: stop those too.
    for pid_file in sorted(paths.run_dir.glob("*_service.pid")):
        spid = _pid_alive(pid_file)
        if spid:
            os.kill(spid, signal.SIGTERM)
            stopped.append(pid_file.stem)
    return {"stopped": stopped, "was_running": bool(stopped)}


def start_tmux(config: TraderConfig, paths: Paths, session: str = "mmr") -> dict[str, Any]:
    """Start every program in its own tmux window (for a person who wants to watch them; not supervised)."""
    import shlex
    import shutil

    if shutil.which("tmux") is None:
        raise RuntimeError("tmux is not installed (apt-get install tmux), or use plain `mmr up` (supervisor)")
    if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0:
        raise RuntimeError(f"tmux session '{session}' already exists: attach with `tmux attach -t {session}`")
    paths.ensure()
    progs = programs(config, paths)
    for i, p in enumerate(progs):
        cmd = " ".join(shlex.quote(a) for a in p.argv)
        args = ["new-session", "-d", "-s", session, "-n", p.name] if i == 0 else \
            ["new-window", "-t", session, "-n", p.name]
        subprocess.run(["tmux", *args, cmd], check=True, env=os.environ.copy())
    (paths.run_dir / "tmux_session").write_text(session)
    return {"tmux_session": session, "programs": [p.name for p in progs],
            "attach": f"tmux attach -t {session}", "stop": f"tmux kill-session -t {session}"}
