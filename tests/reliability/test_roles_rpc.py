"""Roles are enforced by the services, not only the CLI: raw RPC with a proposer or approver key cannot trade.

One platform (sim gateway, broker ready) for the module; every check reads the book back with the operator key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from trader.errors import RoleForbidden, Unauthenticated
from trader.messaging.auth import ensure_keys, keys_dir, load_client_key
from trader.messaging.rpc import RPCClient
from trader.testing import Platform, mmr, running_platform
from trader.trading.models import Action
from trader.trading.orders import OrderRequest

TRADER = "trader_service"


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("mmr_roles"), with_gateway=True, broker_ready=True) as p:
        yield p


def book(p: Platform) -> tuple[list, list]:
    with p.client(TRADER, timeout=10) as op:
        return op.rpc().orders(), op.rpc().trades()


def buy_one() -> OrderRequest:
    return OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1)


def test_proposer_key_cannot_approve_or_buy_over_raw_rpc(plat: Platform) -> None:
    before = book(plat)
    with plat.client(TRADER, role="proposer", timeout=10) as agent:
        proposal = agent.rpc().propose("AAPL", "BUY", quantity=1, reasoning="roles test")  # allowed
        with pytest.raises(RoleForbidden, match=r"role 'proposer' may not call trader_service\.approve_proposal"):
            agent.rpc().approve_proposal(proposal["id"])
        with pytest.raises(RoleForbidden, match="place_order"):
            agent.rpc().place_order(buy_one())
        with pytest.raises(RoleForbidden, match="resize_positions"):
            agent.rpc().resize_positions(max_bound=1.0)
        assert agent.rpc().proposal(proposal["id"])["state"] == "PENDING"  # reads are allowed
    assert book(plat) == before  # nothing reached the broker


def test_approver_key_cannot_place_or_propose(plat: Platform) -> None:
    before = book(plat)
    with plat.client(TRADER, role="approver", timeout=10) as approver:
        with pytest.raises(RoleForbidden, match="role 'approver' may not call trader_service.place_order"):
            approver.rpc().place_order(buy_one())
        with pytest.raises(RoleForbidden, match="propose"):
            approver.rpc().propose("AAPL", "BUY", quantity=1)
        assert isinstance(approver.rpc().proposals(), list)
    assert book(plat) == before


def test_unknown_key_is_refused_and_the_service_is_unharmed(plat: Platform, tmp_path: Path) -> None:
    with plat.client(TRADER) as op:
        pid = op.rpc().status().pid
    ensure_keys(tmp_path)  # another install's keys
    stranger = load_client_key(keys_dir(tmp_path) / "operator.key_secret")
    forged = type(stranger)("operator", stranger.public, stranger.secret, plat.client_key().server_public,
                            stranger.path)
    with RPCClient(plat.endpoint(TRADER), timeout=5, key=forged) as client:
        with pytest.raises(Unauthenticated):
            client.rpc().place_order(buy_one())
    with plat.client(TRADER) as op:
        assert op.rpc().ping() == "pong" and op.rpc().status().pid == pid


def test_cli_with_only_the_proposer_key_file(plat: Platform) -> None:
    agent_env = {**plat.env, "MMR_CLIENT_KEY": plat.client_key("proposer").path, "MMR_ROLE": "operator"}
    # MMR_ROLE says operator, so the CLI's own check lets `buy` through: the service refuses it
    out = mmr(agent_env, "--json", "buy", "AAPL", "--market", "--quantity", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    err = json.loads(out.stdout)["error"]
    assert err["type"] == "RoleForbidden" and "may not call trader_service.place_order" in err["message"]
    out = mmr({**agent_env, "MMR_ROLE": "proposer"}, "--json", "proposals")
    assert out.returncode == 0 and isinstance(json.loads(out.stdout), list)


def test_cli_without_a_usable_key_says_so(plat: Platform, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "proposer.key_secret"
    out = mmr({**plat.env, "MMR_CLIENT_KEY": str(missing)}, "--json", "orders")
    assert out.returncode == 1
    err = json.loads(out.stdout)["error"]
    assert err["type"] == "Unauthenticated"
    assert str(missing) in err["message"] and "mmr keys" in err["message"]
