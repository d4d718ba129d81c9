"""CURVE keys and roles at the socket: key files, the ZAP handler, refusal of unknown keys, rotation, config."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from trader.config import load_trader_config, mmr_paths
from trader.errors import ConfigError, RoleForbidden, RPCTimeout, Unauthenticated
from trader.messaging.auth import (
    CLIENT_KEY_ENV,
    CLIENT_ROLES,
    ServerSecurity,
    client_key_from_env,
    describe_keys,
    ensure_keys,
    keys_dir,
    load_client_key,
    rotate_key,
)
from trader.messaging.bus import MessageBusClient, MessageBusServer
from trader.messaging.pubsub import Publisher, Subscriber
from trader.messaging.rpc import RPCClient, RPCServer, rpcmethod
from trader.trading.roles import check_rpc


class Desk:
    """A stand-in service: one read, one operator-only method."""

    def __init__(self) -> None:
        self.placed = 0

    @rpcmethod
    def ping(self) -> str:
        return "pong"

    @rpcmethod
    def place_order(self) -> str:
        self.placed += 1
        return "placed"


@pytest.fixture
def security(tmp_path: Path) -> Iterator[ServerSecurity]:
    sec = ServerSecurity(tmp_path)
    yield sec
    sec.release()


@pytest.fixture
def desk(loop_thread: Any, security: ServerSecurity) -> Iterator[tuple[RPCServer, Desk]]:
    handler = Desk()
    server = RPCServer(handler, security=security,
                       authorize=lambda role, m, a, k: check_rpc("trader_service", role, m, a, k))
    with loop_thread.serving(server):
        yield server, handler


def key(tmp_path: Path, role: str):
    return load_client_key(keys_dir(tmp_path) / f"{role}.key_secret")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_created_private_and_idempotent(tmp_path: Path) -> None:
    created = ensure_keys(tmp_path)
    assert set(created) == {"server", *CLIENT_ROLES}
    d = keys_dir(tmp_path)
    assert _mode(d) == 0o700
    for name in ("server", *CLIENT_ROLES):
        assert _mode(d / f"{name}.key_secret") == 0o600
    before = {r["name"]: r["fingerprint"] for r in describe_keys(tmp_path)}
    assert ensure_keys(tmp_path) == []  # second start: nothing new, the same keys
    assert {r["name"]: r["fingerprint"] for r in describe_keys(tmp_path)} == before
    shown = repr(describe_keys(tmp_path)) + repr(key(tmp_path, "operator"))
    secret = load_client_key(d / "operator.key_secret").secret.decode()
    assert secret not in shown  # key listings never carry secret material


_CREATE = "import json, sys; from pathlib import Path; from trader.messaging.auth import ensure_keys; " \
          "print(json.dumps(ensure_keys(Path(sys.argv[1]))))"


def test_concurrent_first_starts_create_one_set_of_keys(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _CREATE, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]  # four services starting at once
    results = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    created = [name for r in results for name in r]
    assert sorted(created) == sorted(["server", *CLIENT_ROLES])  # each key made exactly once
    server = load_client_key(keys_dir(tmp_path) / "operator.key_secret").server_public
    assert all(key(tmp_path, r).server_public == server for r in CLIENT_ROLES)


def test_each_role_connects_and_the_table_decides(tmp_path: Path, desk) -> None:
    server, handler = desk
    for role in CLIENT_ROLES:
        with RPCClient(server.address, key=key(tmp_path, role)) as client:
            assert client.call("ping") == "pong"
            if role in ("operator", "services"):
                assert client.call("place_order") == "placed"
            else:
                with pytest.raises(RoleForbidden, match=f"role '{role}' may not call trader_service.place_order"):
                    client.call("place_order")
    assert handler.placed == 2  # operator and services; the refused calls ran nothing


def test_unknown_key_is_refused_and_the_server_is_unharmed(tmp_path: Path, desk) -> None:
    server, handler = desk
    stranger_home = tmp_path / "other-install"
    ensure_keys(stranger_home)
    stranger = key(stranger_home, "operator")
    # a key of another install, aimed at this server: the handshake is refused, the client says so
    forged = type(stranger)("operator", stranger.public, stranger.secret, key(tmp_path, "operator").server_public,
                            stranger.path)
    with RPCClient(server.address, timeout=5, key=forged) as client:
        with pytest.raises(Unauthenticated, match="refused the 'operator' key"):
            client.call("place_order")
    with RPCClient(server.address, timeout=0.5) as plain:  # no CURVE at all: never gets an answer
        with pytest.raises(RPCTimeout):
            plain.call("place_order")
    assert handler.placed == 0
    with RPCClient(server.address, key=key(tmp_path, "operator")) as client:
        assert client.call("ping") == "pong"


def test_rotation_takes_effect_without_a_restart(tmp_path: Path, desk) -> None:
    server, _ = desk
    old = key(tmp_path, "proposer")
    connected = RPCClient(server.address, key=old)
    try:
        assert connected.call("ping") == "pong"
        rotate_key(tmp_path, "proposer")
        new = key(tmp_path, "proposer")
        assert new.public != old.public
        with RPCClient(server.address, key=new) as client:  # the new key is accepted at once
            assert client.call("ping") == "pong"
        with RPCClient(server.address, timeout=5, key=old) as client:  # a new connection with the old key: refused
            with pytest.raises(Unauthenticated):
                client.call("ping")
        # the connection opened before the rotation loses its rights at the server's next key check (≈1 s)
        deadline = time.monotonic() + 10
        while True:
            try:
                connected.call("ping")
            except Unauthenticated:
                break
            assert time.monotonic() < deadline, "old key still accepted on an open connection"
            time.sleep(0.1)
    finally:
        connected.close()


def test_client_key_resolution(tmp_path: Path) -> None:
    ensure_keys(tmp_path)
    assert client_key_from_env(tmp_path, {}).role == "operator"
    assert client_key_from_env(tmp_path, {"MMR_ROLE": "proposer"}).role == "proposer"
    path = keys_dir(tmp_path) / "approver.key_secret"
    only = client_key_from_env(tmp_path / "elsewhere", {CLIENT_KEY_ENV: str(path), "MMR_ROLE": "operator"})
    assert only.role == "approver"  # the file decides, not MMR_ROLE
    with pytest.raises(Unauthenticated, match=r"looked in .*operator\.key_secret.*mmr keys"):
        client_key_from_env(tmp_path / "no-keys-here", {})
    with pytest.raises(Unauthenticated, match="mmr keys"):
        client_key_from_env(tmp_path, {CLIENT_KEY_ENV: str(tmp_path / "missing.key_secret")})
    with pytest.raises(Unauthenticated, match="no secret key"):
        load_client_key(keys_dir(tmp_path) / "proposer.key")


def test_publisher_and_bus_serve_only_keyed_clients(tmp_path: Path, loop_thread: Any,
                                                     security: ServerSecurity) -> None:
    with Publisher(security=security) as pub, \
            Subscriber(pub.address, ["t."], key=key(tmp_path, "proposer")) as sub:
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            pub.publish("t.x", 1)
            got = sub.recv(timeout=0.05)
        assert got == ("t.x", 1)
    bus = MessageBusServer(security=security, sweep_interval=0)
    with loop_thread.serving(bus):
        with MessageBusClient(bus.address, key=key(tmp_path, "services")) as client:
            client.ping(timeout=5)
        with MessageBusClient(bus.address, timeout=0.5) as plain:
            with pytest.raises(RPCTimeout):
                plain.ping()
        assert bus.clients() == []


def test_curve_off_only_on_loopback(tmp_path: Path) -> None:
    env = {"MMR_HOME": str(tmp_path)}
    paths = mmr_paths(env)
    assert load_trader_config(paths, {**env, "CURVE": "false"}).curve is False  # loopback: allowed
    with pytest.raises(ConfigError, match=r"'bind_address' '0\.0\.0\.0'.*'curve' is false.*CURVE='false'"):
        load_trader_config(paths, {**env, "CURVE": "false", "BIND_ADDRESS": "0.0.0.0"})
    assert load_trader_config(paths, {**env, "BIND_ADDRESS": "0.0.0.0"}).curve is True  # CURVE on: allowed


def test_zmq_has_curve() -> None:
    assert zmq.has("curve")  # libzmq built without libsodium/tweetnacl would make every key useless
