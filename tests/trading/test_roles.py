"""Roles: the command table per role, aliases and subcommands, fail-closed unknown roles, approver key."""

from __future__ import annotations

import pytest

from trader.errors import ApproverKeyRequired, RoleForbidden, error_from_wire, error_to_wire
from trader.trading.roles import (
    READ_COMMANDS,
    Role,
    allowed_commands,
    check_allowed,
    check_approver_key,
    is_allowed,
    needs_approver_key,
    normalize_command,
    parse_role,
    role_from_env,
)

READS = ["status", "portfolio", "positions", "orders", "trades", "proposals", "proposals show", "snapshot",
         "psnap", "pdiff", "prisk", "session", "resolve", "history", "group list", "group show", "commands"]
TABLE = {
    # command:          operator, proposer, approver
    "buy": (True, False, False),
    "sell": (True, False, False),
    "resize": (True, False, False),
    "approve": (True, False, True),
    "propose": (True, True, False),
    "reject": (True, True, True),
    "cancel": (True, True, False),
    "close": (True, True, False),
    "scan": (True, True, False),
    "group create": (True, False, False),
    "group add": (True, False, False),
    "group delete": (True, False, False),
    "up": (True, False, False),
    "down": (True, False, False),
    "some-future-command": (True, False, False),
    **{r: (True, True, True) for r in READS},
}


@pytest.mark.parametrize("command", sorted(TABLE))
def test_role_table(command):
    expected = dict(zip((Role.OPERATOR, Role.PROPOSER, Role.APPROVER), TABLE[command], strict=True))
    for role, allowed in expected.items():
        assert is_allowed(role.value, command) is allowed, (role, command)
        if allowed:
            assert check_allowed(role.value, command) is None
        else:
            with pytest.raises(RoleForbidden, match=f"role '{role.value}' may not run"):
                check_allowed(role.value, command)


@pytest.mark.parametrize("role", ["admin", "", "  ", "root", "operator2", None])
def test_unknown_role_refuses_everything(role):
    assert allowed_commands(role) == frozenset()
    for command in ["status", "buy", "approve", "propose", "commands"]:
        assert not is_allowed(role, command)
        with pytest.raises(RoleForbidden, match="unknown role"):
            check_allowed(role, command)


def test_role_names_are_case_insensitive():
    assert parse_role(" Proposer ") is Role.PROPOSER
    assert is_allowed("APPROVER", "approve")


def test_aliases_and_normalisation():
    assert normalize_command("  PRISK ") == "portfolio-risk"
    assert normalize_command("group  create tech") == "group create"
    assert normalize_command("") == ""
    assert not is_allowed("operator", "")


def test_helpful_hints():
    with pytest.raises(RoleForbidden, match="use 'propose'"):
        check_allowed("proposer", "buy")
    with pytest.raises(RoleForbidden, match="only approves or rejects"):
        check_allowed("approver", "propose")


def test_restricted_roles_never_get_opening_commands():
    for role in (Role.PROPOSER, Role.APPROVER):
        cmds = allowed_commands(role)
        assert cmds is not None and not {"buy", "sell", "resize"} & cmds
        assert READ_COMMANDS <= cmds
    assert allowed_commands("operator") is None  # everything


def test_role_from_env():
    assert role_from_env({}) == "operator"
    assert role_from_env({"MMR_ROLE": "proposer"}) == "proposer"
    assert role_from_env({"MMR_ROLE": ""}) == ""  # set but empty: refused later, not silently operator
    assert not is_allowed(role_from_env({"MMR_ROLE": ""}), "status")


def test_error_crosses_the_wire():
    with pytest.raises(RoleForbidden) as info:
        check_allowed("proposer", "approve")
    back = error_from_wire(error_to_wire(info.value))
    assert type(back) is RoleForbidden and isinstance(back, PermissionError)


def test_needs_approver_key():
    assert not needs_approver_key(50_000, None)
    assert not needs_approver_key(50_000, 0)
    assert not needs_approver_key(10_000, 10_000)
    assert needs_approver_key(10_000.01, 10_000)
    assert needs_approver_key(-20_000, 10_000)  # a short's notional counts by size
    assert needs_approver_key(None, 10_000)  # unknown notional: fail closed


def test_check_approver_key():
    assert check_approver_key("s3cret", "s3cret") is None
    with pytest.raises(ApproverKeyRequired, match="valid approver key"):
        check_approver_key("wrong", "s3cret")
    with pytest.raises(ApproverKeyRequired):
        check_approver_key(None, "s3cret")
    with pytest.raises(ApproverKeyRequired, match="none is configured"):
        check_approver_key("anything", None)
    assert issubclass(ApproverKeyRequired, RoleForbidden)


def test_research_is_open_to_the_proposer_but_deploying_is_operator_only():
    assert is_allowed("proposer", "bt-sweep") and is_allowed("proposer", "sweep run")
    assert is_allowed("proposer", "backtests validate") and is_allowed("approver", "sweep show")
    assert not is_allowed("approver", "sweep run")
    for role in ("proposer", "approver"):
        assert not is_allowed(role, "strategies deploy")
    assert is_allowed("operator", "strategies deploy")
