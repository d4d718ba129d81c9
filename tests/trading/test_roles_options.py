"""Roles for the option and forex commands (issue 17): reads open, option orders operator-only, --propose a
proposal any proposer may make."""

from __future__ import annotations

import pytest

from trader.errors import RoleForbidden
from trader.mmr_cli import check_role
from trader.trading.roles import is_allowed


@pytest.mark.parametrize("cmd", ["options expirations", "options chain", "forex quote", "forex convert",
                                 "forex snapshot-all", "forex movers"])
def test_reads_are_open_to_every_role(cmd):
    assert is_allowed("proposer", cmd) and is_allowed("approver", cmd) and is_allowed("operator", cmd)


def test_option_orders_are_operator_only_and_propose_is_a_proposal(monkeypatch):
    for role in ("proposer", "approver"):
        assert not is_allowed(role, "options buy") and not is_allowed(role, "options sell")
    args = ["--json", "options", "buy", "AAPL", "-e", "20270115", "-s", "230", "-r", "C", "-q", "1"]
    monkeypatch.setenv("MMR_ROLE", "proposer")
    with pytest.raises(RoleForbidden):
        check_role(args)
    check_role([*args, "--propose"])  # allowed: it only proposes
    monkeypatch.setenv("MMR_ROLE", "approver")
    with pytest.raises(RoleForbidden):
        check_role([*args, "--propose"])


def test_spread_orders_are_operator_only_and_propose_is_a_proposal(monkeypatch):
    for cmd in ("options vertical", "options combo"):
        assert not is_allowed("proposer", cmd) and is_allowed("operator", cmd)
    args = ["--json", "options", "vertical", "SPX", "-e", "20270115", "--right", "P", "--strikes", "5300/5200",
            "--action", "SELL", "-q", "1", "--limit", "20"]
    monkeypatch.setenv("MMR_ROLE", "proposer")
    with pytest.raises(RoleForbidden):
        check_role(args)
    check_role([*args, "--propose"])
