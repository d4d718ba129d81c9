"""The LLM pipeline end to end against the simulated IB Gateway: propose → proposals show → portfolio-risk →
approve → fill → psnap → pdiff; 50 concurrent approvals execute once; crash recovery never re-submits;
roles; groups. Every command runs as ``mmr --json …`` in a subprocess, as an agent runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from trader.data.proposals import ProposalStore
from trader.data.store import state_store
from trader.testing import Platform, mmr
from trader.trading.models import Action
from trader.trading.proposals import Proposal, ProposalState


def run(p: Platform, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, Any]:
    res = mmr(env or p.env, "--json", *args, timeout=timeout)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON document, got {res.stdout!r} (stderr {res.stderr[-2000:]!r})"
    return res.returncode, json.loads(lines[0])


def ok(p: Platform, *args: str, **kw: Any) -> Any:
    code, doc = run(p, *args, **kw)
    assert code == 0 and "error" not in doc, doc
    return doc


def err(p: Platform, *args: str, **kw: Any) -> dict[str, Any]:
    code, doc = run(p, *args, **kw)
    assert code != 0 and "error" in doc, doc
    return doc["error"]


def eventually(fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    return fn()


def position_qty(p: Platform, symbol: str) -> float:
    return next((r["quantity"] for r in ok(p, "positions") if r["symbol"] == symbol), 0.0)


def submitted_for(p: Platform, proposal_id: int) -> list[dict[str, Any]]:
    return ok(p, "events", "--kind", "order_submitted", "--correlation-id", f"proposal-{proposal_id}")


def test_story_propose_show_risk_approve_fill_snapshot_diff(plat):
    ok(plat, "pdiff", "--since-key", "story")  # the caller's first snapshot
    p = ok(plat, "propose", "AAPL", "BUY", "--quantity", "7", "--confidence", "0.7",
           "--reasoning", "breakout over resistance")
    assert p["state"] == "PENDING" and p["quantity"] == 7
    assert p["risk_preview"]["price"] > 0 and "what_if" in p["risk_preview"]
    assert [x["id"] for x in ok(plat, "proposals")] == [p["id"]]
    (brief,) = ok(plat, "proposals", "--brief")  # the agent-loop form: no sizing detail, no risk preview
    assert brief["id"] == p["id"] and brief["state"] == "PENDING" and brief["quantity"] == p["quantity"]
    assert "sizing" not in brief and "risk_preview" not in brief
    shown = ok(plat, "proposals", "show", str(p["id"]))
    assert shown["reasoning"] == "breakout over resistance"
    risk = ok(plat, "prisk")
    assert "gross_pct" in risk and "summary" in risk
    done = ok(plat, "approve", str(p["id"]))
    assert done["state"] == "EXECUTED" and done["order_ids"], done
    assert eventually(lambda: position_qty(plat, "AAPL") >= 7)
    snap = ok(plat, "psnap")
    assert "AAPL" in json.dumps(snap)
    diff = eventually(lambda: (d := ok(plat, "pdiff", "--since-key", "story")) and "AAPL" in json.dumps(d) and d)
    assert diff, "the diff does not show the new AAPL position"
    again = eventually(lambda: (d := ok(plat, "pdiff", "--since-key", "story")) and d["changed"] is False and d)
    assert again["msg"] == "nothing changed", again
    assert len(json.dumps(again)) < len(json.dumps(diff))
    assert ok(plat, "proposals") == []
    assert ok(plat, "session")


def test_fifty_concurrent_approvals_execute_once(plat):
    p = ok(plat, "propose", "MSFT", "BUY", "--quantity", "3")
    before = position_qty(plat, "MSFT")
    cmd = [sys.executable, "-m", "trader.mmr_cli", "--json", "approve", str(p["id"])]
    procs = [subprocess.Popen(cmd, env=plat.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(50)]
    docs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            docs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    winners = [d for d in docs if "error" not in d]
    losers = [d["error"] for d in docs if "error" in d]
    # On a loaded worker the winning call itself may run past its deadline: it must then say OutcomeUnknown (with
    # its request id), never a second execution; every other caller is refused by the compare-and-set.
    unknown = [e for e in losers if e["type"] == "OutcomeUnknown"]
    refused = [e for e in losers if e["type"] == "InvalidProposalTransition"
               and ("already" in e["message"] or "final" in e["message"])]
    assert len(refused) + len(unknown) == len(losers), [e for e in losers if e not in refused + unknown][:3]
    assert len(winners) + len(unknown) >= 1 and len(winners) <= 1, (winners, unknown[:3])
    assert not winners or winners[0]["state"] == "EXECUTED", winners
    assert all(e.get("request_id") for e in unknown), unknown[:3]
    assert eventually(lambda: ok(plat, "proposals", "show", str(p["id"]))["state"] == "EXECUTED", timeout=60)
    assert len(submitted_for(plat, p["id"])) == 1
    assert eventually(lambda: position_qty(plat, "MSFT") == before + 3)
    time.sleep(0.5)
    assert position_qty(plat, "MSFT") == before + 3  # and no second order filled later


def test_reject_expiry_errors_and_groups(plat):
    p = ok(plat, "propose", "JPM", "SELL", "--limit", "500", "--quantity", "1", "--short")
    r = ok(plat, "reject", str(p["id"]), "--reason", "no edge")
    assert r["state"] == "REJECTED" and r["state_reason"] == "no edge"
    e = err(plat, "approve", str(p["id"]))
    assert e["type"] == "InvalidProposalTransition" and "REJECTED" in e["message"]
    assert err(plat, "proposals", "show", "9999")["type"] == "ProposalNotFound"

    ok(plat, "group", "create", "banks", "--budget", "0.001")
    assert sorted(ok(plat, "group", "add", "banks", "JPM", "BAC")["symbols"]) == ["BAC", "JPM"]
    risk_groups = lambda: [g["name"] for g in ok(plat, "portfolio-risk", "--detail")["groups"]]  # noqa: E731
    assert risk_groups() == ["banks"]  # trader_service's in-memory groups: dropped by every group change
    warned = ok(plat, "propose", "JPM", "BUY", "--quantity", "5", "--group", "banks")
    assert warned["risk_preview"]["group_budget"]["within"] is False
    assert ok(plat, "group", "set", "banks", "--budget", "50")["budget_pct"] == 50
    assert ok(plat, "group", "remove", "banks", "BAC")["symbols"] == ["JPM"]
    assert [g["name"] for g in ok(plat, "group", "list")] == ["banks"]
    assert ok(plat, "group", "show", "banks")["name"] == "banks"
    ok(plat, "group", "delete", "banks")
    assert risk_groups() == []
    assert err(plat, "group", "show", "banks")["type"] == "GroupNotFound"
    ok(plat, "reject", str(warned["id"]), "--reason", "cleanup")


def test_roles(plat):
    proposer = {**plat.env, "MMR_ROLE": "proposer"}
    approver = {**plat.env, "MMR_ROLE": "approver"}
    assert err(plat, "buy", "AAPL", "--quantity", "1", env=proposer)["type"] == "RoleForbidden"
    p = ok(plat, "propose", "AAPL", "BUY", "--quantity", "1", env=proposer)
    assert err(plat, "approve", str(p["id"]), env=proposer)["type"] == "RoleForbidden"
    assert err(plat, "propose", "AAPL", "BUY", "--quantity", "1", env=approver)["type"] == "RoleForbidden"
    assert err(plat, "proposals", env={**plat.env, "MMR_ROLE": "root"})["type"] == "RoleForbidden"
    assert ok(plat, "reject", str(p["id"]), "--reason", "roles test", env=approver)["state"] == "REJECTED"


def test_crash_recovery_never_executes_twice(plat):
    """APPROVED proposals left by a 'crash' are settled when trader_service restarts: from the audit trail when
    the order never went out, else from the broker's orders matched by orderRef (with their order ids)."""
    store = ProposalStore(state_store(plat.home / "data"))
    placed = ok(plat, "propose", "AAPL", "BUY", "--quantity", "2")
    approved = ok(plat, "approve", str(placed["id"]))
    assert approved["order_ids"]
    now = datetime.now(UTC)
    # One approved with its order already submitted: put it back to APPROVED as a crash would have left it.
    with store.store.transaction() as con:
        con.execute("UPDATE proposal_store SET state = 'APPROVED', detail = json_merge_patch(detail, "
                    "'{\"state\": \"APPROVED\", \"order_ids\": []}') WHERE id = ?", [placed["id"]])
    # One approved whose order never went out.
    orphan = store.insert(Proposal(id=0, symbol="AAPL", action=Action.BUY, created_at=now, quantity=2,
                                   state=ProposalState.APPROVED, updated_at=now, version=1))
    qty = eventually(lambda: position_qty(plat, "AAPL"))
    plat.procs["trader_service"].terminate()
    plat.procs["trader_service"].wait(timeout=15)
    with open(plat.home / "trader_service.restart.stdout", "wb") as out:
        plat.procs["trader_service"] = subprocess.Popen([sys.executable, "-m", "trader.trader_service"],
                                                        env=plat.env, stdout=out, stderr=subprocess.STDOUT)
    _wait_ping(plat)
    plat.wait_broker_ready()
    # Settled against the broker's orders by orderRef once it has reconnected: the ids are the broker's.
    settled = eventually(lambda: (s := ok(plat, "proposals", "show", str(placed["id"])))["state"] != "APPROVED"
                         and s)
    assert settled["state"] == "EXECUTED" and settled["order_ids"] == approved["order_ids"]
    failed = ok(plat, "proposals", "show", str(orphan.id))
    assert failed["state"] == "FAILED" and "before submission" in failed["state_reason"]
    assert len(submitted_for(plat, placed["id"])) == 1 and submitted_for(plat, orphan.id) == []
    time.sleep(0.5)
    assert position_qty(plat, "AAPL") == qty


def _wait_ping(p: Platform, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with p.client("trader_service", timeout=0.5) as client:
        while time.monotonic() < deadline:
            try:
                if client.rpc().ping() == "pong":
                    return
            except TimeoutError:
                pass
    raise RuntimeError("trader_service did not come back")


def test_automatic_sizing_from_daily_bars(plat):
    p = ok(plat, "propose", "MSFT", "BUY", "--confidence", "0.7")
    assert p["quantity"] > 0 and p["sizing"]["method"] in ("atr", "kelly")
    shown = ok(plat, "proposals", "show", str(p["id"]))
    assert "confidence" in shown["sizing_breakdown"] and "$" in shown["sizing_breakdown"]
    ok(plat, "reject", str(p["id"]), "--reason", "sizing test")
