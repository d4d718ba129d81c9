"""Group budgets in ``reject`` mode are enforced by the risk gate at approval time (not only when the proposal
is made), and overdue proposals expire on the service's timer without any reader asking."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from trader.testing import Platform, mmr, running_platform


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """Gateway + services with group_budget_mode=reject and an 18-second proposal lifetime (short enough for the
    timer test, long enough that a loaded machine's few CLI calls between propose and approve fit in it: 9 s
    did not at a load average of 20)."""
    with running_platform(tmp_path_factory.mktemp("mmr_strict"), with_gateway=True, broker_ready=True,
                          GROUP_BUDGET_MODE="reject", PROPOSAL_TTL_MINUTES="0.3") as p:
        yield p


def run(p: Platform, *args: str) -> tuple[int, Any]:
    res = mmr(p.env, "--json", *args, timeout=60)
    return res.returncode, json.loads(res.stdout.strip().splitlines()[-1])


def test_group_budget_reject_is_enforced_again_at_approval(strict):
    assert run(strict, "group", "create", "tech", "--budget", "50")[0] == 0
    assert run(strict, "group", "add", "tech", "AAPL")[0] == 0
    code, prop = run(strict, "propose", "AAPL", "BUY", "--quantity", "5", "--group", "tech")
    assert code == 0, prop
    assert prop["risk_preview"]["group_budget"]["within"] is True
    # The budget shrinks after the proposal was made: approval must now be refused by the gate.
    assert run(strict, "group", "set", "tech", "--budget", "0.001")[0] == 0
    code, doc = run(strict, "approve", str(prop["id"]))
    assert code != 0 and "error" in doc, doc
    assert "tech" in doc["error"]["message"] and "budget" in doc["error"]["message"], doc
    code, shown = run(strict, "proposals", "show", str(prop["id"]))
    assert shown["state"] == "FAILED" and "tech" in shown["state_reason"], shown
    _, refused = run(strict, "events", "--kind", "order_refused", "--correlation-id", f"proposal-{prop['id']}")
    assert refused and refused[-1]["payload"]["group"] == "tech", refused


def test_pending_proposals_expire_on_the_timer(strict):
    code, prop = run(strict, "propose", "MSFT", "BUY", "--quantity", "1")
    assert code == 0, prop
    deadline = time.monotonic() + 60
    expired: list[Any] = []
    while time.monotonic() < deadline and not expired:
        time.sleep(0.5)
        # Only the audit trail is read: no proposal reader runs, so only the timer can expire it.
        _, expired = run(strict, "events", "--kind", "proposal_expired", "--correlation-id", f"proposal-{prop['id']}")
    assert expired, "the proposal was not expired by the service timer"
    code, shown = run(strict, "proposals", "show", str(prop["id"]))
    assert shown["state"] == "EXPIRED"


def test_cli_buy_of_a_group_member_is_gated_and_group_edits_take_effect_at_once(strict):
    code, doc = run(strict, "buy", "NVDA", "--market", "--quantity", "1")  # in no group yet
    assert code == 0, doc
    assert run(strict, "group", "create", "chips", "--budget", "0.001")[0] == 0
    assert run(strict, "group", "add", "chips", "NVDA")[0] == 0
    code, doc = run(strict, "buy", "NVDA", "--market", "--quantity", "1")
    assert code != 0 and doc["error"]["type"] == "RiskRejected" and "chips" in doc["error"]["message"], doc
    code, doc = run(strict, "sell", "NVDA", "--market", "--quantity", "1")  # reducing: never blocked
    assert code == 0, doc
