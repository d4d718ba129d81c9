"""`mmr up` / `mmr down` (what ./start_mmr.sh runs): supervisor starts everything, restarts a crash, stops all."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from trader.testing import SERVICES, mmr, platform_env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _service_of_this_install(pid: int, name: str, env: dict[str, str]) -> bool:
    """True when ``pid`` is ``name`` started for this test's MMR_HOME — so a SIGKILL can never hit the test
    runner, its process group or another install's service (e.g. if status reported a wrong pid)."""
    if pid <= 1 or pid in (os.getpid(), os.getpgrp()):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"trader.{name}".encode() in argv and f"MMR_HOME={env['MMR_HOME']}".encode() in environ


@pytest.fixture
def supervised(tmp_path):
    env = platform_env(tmp_path / "home")
    yield env
    mmr(env, "--json", "down", timeout=60)


def test_up_status_restart_down(supervised):
    env = supervised
    res = mmr(env, "--json", "up", "--wait", "60", timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"]["all_up"] is True
    assert set(SERVICES) <= set(doc["programs"])

    status = json.loads(mmr(env, "--json", "status").stdout)
    pids = {r["service"]: r["pid"] for r in status["services"]}
    assert all(_pid_alive(p) for p in pids.values())

    # supervisor restarts a crashed service
    assert _service_of_this_install(pids["data_service"], "data_service", env), pids
    os.kill(pids["data_service"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    new_pid = None
    while time.monotonic() < deadline:
        st = json.loads(mmr(env, "--json", "status", "--timeout", "1").stdout)
        row = next(r for r in st["services"] if r["service"] == "data_service")
        if row["up"] and row["pid"] != pids["data_service"]:
            new_pid = row["pid"]
            break
        time.sleep(0.3)
    assert new_pid is not None, "data_service was not restarted"

    # each service writes its own log file under MMR_HOME/logs
    log_dir = os.path.join(env["MMR_HOME"], "logs")
    for name in SERVICES:
        assert os.path.getsize(os.path.join(log_dir, f"{name}.log")) > 0

    down = mmr(env, "--json", "down", timeout=60)
    assert down.returncode == 0, down.stdout
    assert "supervisord" in json.loads(down.stdout)["stopped"]
    time.sleep(0.5)
    assert not any(_pid_alive(p) for p in [*pids.values(), new_pid])
    assert json.loads(mmr(env, "--json", "status").stdout)["all_up"] is False


def test_down_when_nothing_runs_is_not_an_error(supervised):
    res = mmr(supervised, "--json", "down")
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"stopped": [], "was_running": False}


def test_up_in_tmux_then_down(supervised):
    import shutil

    env = supervised
    session = f"mmr-test-{os.getpid()}"
    res = mmr(env, "--json", "up", "--tmux", session, "--wait", "60", timeout=90)
    if shutil.which("tmux") is None:  # a machine without tmux gets a clear error, not a traceback
        assert res.returncode == 1 and "tmux is not installed" in json.loads(res.stdout)["error"]["message"]
        return
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"]["all_up"] is True and doc["tmux_session"] == session
    down = json.loads(mmr(env, "--json", "down", timeout=60).stdout)
    assert f"tmux:{session}" in down["stopped"]
    time.sleep(0.5)
    assert json.loads(mmr(env, "--json", "status").stdout)["all_up"] is False
