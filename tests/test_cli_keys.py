"""``mmr keys``: show, create (idempotent), rotate; operator-only; never prints secret material."""

from __future__ import annotations

import json
from pathlib import Path

from trader.messaging.auth import load_client_key
from trader.testing import mmr, platform_env


def _keys(env: dict[str, str], *args: str) -> dict:
    out = mmr(env, "--json", "keys", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_keys_create_show_rotate(tmp_path: Path) -> None:
    env = platform_env(tmp_path)
    created = _keys(env, "create")
    assert sorted(created["created"]) == ["approver", "operator", "proposer", "server", "services"]
    rows = {k["name"]: k for k in created["keys"]}
    assert all(r["secret_mode"] == "0600" and r["fingerprint"] for r in rows.values())
    assert _keys(env, "create")["created"] == []  # idempotent
    assert {k["name"]: k["fingerprint"] for k in _keys(env)["keys"]} == {n: r["fingerprint"] for n, r in rows.items()}

    secret = load_client_key(rows["proposer"]["secret_file"]).secret.decode()
    rotated = _keys(env, "rotate", "proposer")
    after = {k["name"]: k["fingerprint"] for k in rotated["keys"]}
    assert after["proposer"] != rows["proposer"]["fingerprint"]
    assert after["operator"] == rows["operator"]["fingerprint"]  # only the named role changes
    assert secret not in json.dumps(rotated)  # the old secret …
    new_secret = load_client_key(rows["proposer"]["secret_file"]).secret.decode()
    assert new_secret not in json.dumps(rotated)  # … and the new one never appear


def test_keys_is_operator_only_and_rotate_needs_a_target(tmp_path: Path) -> None:
    env = platform_env(tmp_path)
    out = mmr({**env, "MMR_ROLE": "proposer"}, "--json", "keys", "rotate", "--all")
    assert out.returncode == 1 and json.loads(out.stdout)["error"]["type"] == "RoleForbidden"
    out = mmr(env, "--json", "keys", "rotate")
    assert out.returncode == 2 and "ROLE or --all" in json.loads(out.stdout)["error"]["message"]
