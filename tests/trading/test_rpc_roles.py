"""The RPC method table the services enforce per role (trader/trading/roles.py)."""

from __future__ import annotations

import inspect

import pytest

from trader.data_service import DataService
from trader.errors import RoleForbidden
from trader.service import Service
from trader.strategy_service import StrategyService
from trader.trader_service import TraderService
from trader.trading.roles import RPC_CLASS_ROLES, RPC_METHOD_CLASSES, Role, check_rpc, rpc_allowed

SERVICES: dict[str, type[Service]] = {
    "trader_service": TraderService,
    "data_service": DataService,
    "strategy_service": StrategyService,
}


def rpc_methods(cls: type) -> set[str]:
    """Wire names of every @rpcmethod a service class serves (including mounted handler classes' methods)."""
    names = set()
    for attr in dir(cls):
        raw = inspect.getattr_static(cls, attr, None)
        func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        name = getattr(func, "__mmr_rpc_name__", None)
        if name is not None:
            names.add(name)
    return names


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_rpc_method_is_classified(service: str) -> None:
    served = rpc_methods(SERVICES[service])
    assert served, f"{service} serves no methods?"
    missing = served - set(RPC_METHOD_CLASSES[service])
    assert not missing, (
        f"{service} serves {sorted(missing)} but trader/trading/roles.py RPC_METHOD_CLASSES[{service!r}] does not "
        f"classify them: until it does only the operator may call them. Add each with its class "
        f"({', '.join(sorted(RPC_CLASS_ROLES))}): 'read' if it only looks, 'operator' if it opens risk or changes "
        f"shared state."
    )
    for method, klass in RPC_METHOD_CLASSES[service].items():
        assert klass in RPC_CLASS_ROLES, f"{service}.{method}: unknown class {klass!r}"


def test_proposer_reduces_risk_but_never_adds_it() -> None:
    for method in ("place_order", "approve_proposal", "resize_positions", "cancel_all"):
        assert not rpc_allowed("trader_service", "proposer", method)
    for method in ("propose", "reject_proposal", "cancel_order", "close_position", "portfolio_diff", "orders",
                   "trades", "status", "ping"):
        assert rpc_allowed("trader_service", "proposer", method), method
    assert rpc_allowed("data_service", "proposer", "history_download")  # research
    assert not rpc_allowed("data_service", "proposer", "universe_delete")


def test_risk_settings_and_order_control_are_the_operators() -> None:
    # issue 14: risk set / filter add|remove / session set|reset change the gate and the sizer; to-market opens
    # risk at the market; reconcile settles the book: operator only, by the services as well as the CLI
    for method in ("risk_set", "filter_edit", "session_set", "session_reset", "order_to_market", "reconcile_now"):
        for role in (Role.PROPOSER, Role.APPROVER):
            assert not rpc_allowed("trader_service", role, method), (role, method)
        assert rpc_allowed("trader_service", Role.OPERATOR, method)
    for method in ("risk_limits", "snapshot_batch"):  # `risk`, `filter`, `session` and many quotes only read
        assert rpc_allowed("trader_service", Role.PROPOSER, method) and rpc_allowed("trader_service", "approver", method)
    for method in ("protect_position", "close_all_positions"):  # exits for what is held: reduce risk
        assert rpc_allowed("trader_service", Role.PROPOSER, method)
        assert not rpc_allowed("trader_service", Role.APPROVER, method)


def test_approver_reads_approves_and_rejects_only() -> None:
    for method in ("approve_proposal", "reject_proposal", "proposals", "positions"):
        assert rpc_allowed("trader_service", Role.APPROVER, method), method
    for method in ("place_order", "propose", "close_position", "cancel_order", "resize_positions"):
        assert not rpc_allowed("trader_service", Role.APPROVER, method), method
    assert not rpc_allowed("data_service", "approver", "history_download")


def test_groups_read_actions_only_for_restricted_roles() -> None:
    assert rpc_allowed("trader_service", "proposer", "groups", ["list"])
    assert rpc_allowed("trader_service", "approver", "groups", [], {"action": "show", "name": "tech"})
    assert rpc_allowed("trader_service", "proposer", "groups")  # default action: list
    for action in ("create", "add", "remove", "set", "delete", "bogus"):
        assert not rpc_allowed("trader_service", "proposer", "groups", [action, "tech"]), action
    assert rpc_allowed("trader_service", "operator", "groups", ["delete", "tech"])


def test_fail_closed() -> None:
    assert not rpc_allowed("trader_service", "proposer", "a_method_nobody_listed")
    assert rpc_allowed("trader_service", "operator", "a_method_nobody_listed")
    assert not rpc_allowed("no_such_service", "approver", "ping")
    for role in ("", "admin", None):
        assert not rpc_allowed("trader_service", role, "ping")
    assert rpc_allowed("trader_service", "services", "place_order")  # the services' own key: full rights


def test_refusal_names_role_service_and_method() -> None:
    with pytest.raises(RoleForbidden, match=r"role 'proposer' may not call trader_service\.approve_proposal"):
        check_rpc("trader_service", "proposer", "approve_proposal", [1])
    check_rpc("trader_service", "approver", "approve_proposal", [1])  # allowed: returns None
