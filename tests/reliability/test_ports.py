"""Ports: defaults below the ephemeral range; a taken port is named with its key and holder, and `mmr up`
finds that line in the service's log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from trader.config import TraderConfig, mmr_paths
from trader.errors import PortInUse
from trader.ports import (
    EPHEMERAL_RANGE,
    SERVICE_PORT_KEYS,
    diagnose_bind_failure,
    port_holder,
    port_in_use_error,
)
from trader.supervise import failure_reason
from trader.testing import platform_env


def _listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_default_ports_lie_below_the_ephemeral_range():
    cfg = TraderConfig()
    for key in [k for keys in SERVICE_PORT_KEYS.values() for k in keys] + ["sim_gateway_port"]:
        assert getattr(cfg, key) < EPHEMERAL_RANGE[0], key


def test_port_holder_names_this_process():
    with _listener() as s:
        port = s.getsockname()[1]
        holder = port_holder(port)
    assert f"pid {os.getpid()}" in holder or holder == "this process"


def test_port_in_use_error_names_port_key_override_and_holder():
    err = port_in_use_error(40123, "trader_pub_port", holder="pid 77 (nc -l 40123, LISTEN)")
    text = str(err)
    assert isinstance(err, PortInUse)
    for part in ("40123", "trader_pub_port", "TRADER_PUB_PORT", "pid 77 (nc -l 40123", "ephemeral"):
        assert part in text


def test_diagnose_ignores_errors_that_are_not_bind_failures():
    assert diagnose_bind_failure(TraderConfig(), "data_service", ValueError("boom")) is None


def test_service_exits_naming_the_taken_port_and_up_finds_the_reason(tmp_path):
    env = platform_env(tmp_path / "home")
    holder = subprocess.Popen([sys.executable, "-c", "import socket,sys,time\n"
                               "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n"
                               "print(s.getsockname()[1], flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = holder.stdout.readline().strip()
        env["DATA_RPC_PORT"] = port
        proc = subprocess.run([sys.executable, "-m", "trader.data_service"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1
        paths = mmr_paths(env)
        log = (paths.log_dir / "data_service.log").read_text()
        assert "PortInUse:" in log
        reason = failure_reason(paths, "data_service")
        assert reason is not None
        assert f"port {port}" in reason and "data_rpc_port" in reason and "DATA_RPC_PORT" in reason
        assert f"pid {holder.pid}" in reason
    finally:
        holder.kill()
        holder.wait()


def test_failure_reason_is_cleared_by_a_later_successful_start(tmp_path):
    env = platform_env(tmp_path / "home")
    paths = mmr_paths(env).ensure()
    (paths.log_dir / "trader_service.log").write_text(
        "t ERROR trader.service [1] PortInUse: port 28002 (trader_pub_port ...) held by pid 5\n"
        "t INFO trader.service [2] trader_service 0.1 up (pid 2) on {}\n")
    assert failure_reason(paths, "trader_service") is None
    (paths.log_dir / "data_service.log").write_text("t ERROR x [1] PortInUse: port 9 (data_rpc_port) held\n")
    assert failure_reason(paths, "data_service") == "PortInUse: port 9 (data_rpc_port) held"


def test_sim_gateway_exits_naming_the_taken_port_and_up_finds_the_reason(tmp_path):
    env = platform_env(tmp_path / "home")
    taken = _listener()
    try:
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "trader.sim.gateway", "--port", str(port), "--state-dir",
                               str(tmp_path / "sim")], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        reason = failure_reason(mmr_paths(env), "sim_gateway")
        assert reason is not None and f"port {port}" in reason and "sim_gateway_port" in reason
        assert f"pid {os.getpid()}" in reason or "this process" in reason
    finally:
        taken.close()


def test_a_test_platform_gets_distinct_ports_outside_the_ephemeral_range(tmp_path) -> None:
    """`platform_env` picks every service port and the simulated gateway's admin port at once: distinct (picked one
    by one, data_service once got the gateway's admin port) and below 32768, where no outgoing connection takes them."""
    from trader.testing import PORT_KEYS, free_ports, platform_env

    for _ in range(20):
        env = platform_env(tmp_path)
        ports = [int(env[k]) for k in (*PORT_KEYS, "SIM_ADMIN_PORT")]
        assert len(set(ports)) == len(ports) and all(1024 < p < 32768 for p in ports), ports
    many = free_ports(200)
    assert len(set(many)) == 200
