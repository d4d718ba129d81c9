"""Orders and the proposal pipeline do exactly what they say (issue 14), against the simulated gateway, every
command run as ``mmr --json …`` the way an agent runs it: documented propose forms execute, what approval would
refuse is refused at propose, the risk preview is the real gate, transient refusals stay approvable, amounts
convert at the order's own price, executed proposals carry their fills, order control (tif, protect, to-market,
close-all-positions, approve/reject --all, proposals --status) and risk settings changed without a restart."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from trader.testing import Platform, eventually, mmr, running_platform
from trader.testing import cli_json as run
from trader.testing import cli_ok as ok


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("mmr_orders"), with_gateway=True, broker_ready=True) as p:
        yield p


def err(p: Platform, *args: str) -> dict[str, Any]:
    code, doc = run(p, *args)
    assert code != 0 and "error" in doc, doc
    return doc["error"]


def rpc(p: Platform, method: str, *args: Any, **kw: Any) -> Any:
    """Set-up and look-ups straight over RPC (operator key): the CLI is spawned only for what is under test."""
    with p.client("trader_service", timeout=30) as c:
        return c.call(method, *args, **kw)


def test_documented_propose_forms_execute_and_bad_ones_are_refused_at_propose(plat):
    # --trailing-stop-pct makes a TRAIL order: the CLAUDE.md form is accepted and approval places it
    trail = ok(plat, "propose", "TSLA", "SELL", "--amount", "3000", "--trailing-stop-pct", "3", "--short")
    assert trail["order_type"] == "TRAIL" and trail["allow_short"] is True
    done = ok(plat, "approve", str(trail["id"]))
    assert done["state"] == "EXECUTED" and done["order_ids"], done
    price = trail["risk_preview"]["price"]
    assert done["executed_quantity"] == math.floor(3000 / price) > 0
    # a SELL with nothing held, without --short, would fail at approval: refused now, with the flag named
    e = err(plat, "propose", "IBM", "SELL", "--quantity", "5")
    assert e["type"] == "InvalidProposal" and "--short" in e["message"] and "held" in e["message"]
    # a trailing stop takes no limit price: refused at propose, not at approve
    with pytest.raises(Exception, match="limit price") as info:
        rpc(plat, "propose", "MSFT", "BUY", quantity=1, limit_price=400, trailing_stop_pct=3)
    assert "InvalidProposal" in repr(info.value)
    # the preview is the real risk gate: a $5M buy shows the position-size failures it will meet at approval
    big = rpc(plat, "propose", "AAPL", "BUY", amount=5_000_000)
    gate = big["risk_preview"]["gate"]
    assert gate["allowed"] is False and {"position_value", "position_pct_nlv"} <= {f["rule"] for f in gate["failures"]}
    assert any("position_value" in w and "blocking" in w for w in big["risk_preview"]["warnings"])
    rpc(plat, "reject_proposal", big["id"], "too big")


def test_session_shows_the_gates_limits_and_amounts_convert_at_the_limit_price(plat):
    s = ok(plat, "session")
    assert s["max_position_usd"] == 50000 and s["sizing"]["max_usd"] == 25000  # the gate's, not the sizer's
    assert s["order_rate"]["limit"] == 30 and s["order_rate"]["remaining"] == 30 - s["order_rate"]["in_window"]
    r = rpc(plat, "risk_limits")
    assert r["limits"]["max_position_value_usd"] == 50000 and r["order_rate"] == s["order_rate"]
    # 2000 at a limit of 100 is 20 shares (not 2000 ÷ the ~140 market price); below the market it rests
    placed = ok(plat, "buy", "NVDA", "--amount", "2000", "--limit", "100", "--tif", "GTC")
    assert placed["quantity"] == 20 and placed["status"] in ("Submitted", "PreSubmitted"), placed
    (row,) = [o for o in rpc(plat, "orders") if o["order_id"] == placed["order_ids"][0]]
    assert row["tif"] == "GTC" and row["order_type"] == "LMT"
    # to-market: an order action through the executioner; the same order id becomes a market order and fills
    moved = ok(plat, "to-market", str(row["order_id"]), "--request-id", "tomkt-1")
    assert moved["modified_order_id"] == row["order_id"] and moved["status"] == "Filled", moved
    intent = rpc(plat, "order_intent", "tomkt-1")  # recorded under its request id, before the broker
    assert intent["kind"] == "to_market" and intent["state"] == "done", intent


def test_executed_amount_proposal_records_fills_and_daily_pnl_is_known(plat):
    p = rpc(plat, "propose", "AAPL", "BUY", amount=1000)
    done = ok(plat, "approve", str(p["id"]))
    assert done["executed_quantity"] == math.floor(1000 / p["risk_preview"]["price"]) > 0
    assert done["filled_quantity"] == done["executed_quantity"] and done["avg_fill_price"] > 0, done
    (shown,) = [x for x in ok(plat, "proposals", "--status", "EXECUTED", "--brief") if x["id"] == p["id"]]
    assert shown["filled_quantity"] == done["executed_quantity"] and shown["avg_fill_price"] > 0
    # reqPnLSingle per position: daily P&L is a number, not null
    aapl = eventually(lambda: next((r for r in rpc(plat, "positions") if r["symbol"] == "AAPL"
                                    and r["daily_pnl"] is not None), None))
    assert aapl is not None and isinstance(aapl["daily_pnl"], (int, float))


def test_transient_refusal_stays_pending_and_risk_set_takes_effect_without_restart(plat):
    p = rpc(plat, "propose", "XOM", "BUY", quantity=2)
    ok(plat, "buy", "XOM", "--quantity", "1")  # at least one order in the window, whichever tests ran before
    used = rpc(plat, "risk_limits")["order_rate"]["in_window"]
    assert used >= 1
    e = err(plat, "risk", "set", "max_position_pct_nlv", "500")  # outside the config's own bounds
    assert "max_position_pct_nlv" in e["message"]
    e = err(plat, "risk", "set", "max_open_orders", "-5")  # a negative value is the value, refused by its bounds
    assert e["type"] == "ConfigError" and ">= 0" in e["message"]
    changed = ok(plat, "risk", "set", "max_orders_per_window", str(used))  # the window is now full
    assert changed["new"] == {"max_orders_per_window": used}
    assert rpc(plat, "events", kind="risk_setting_changed")
    e = err(plat, "approve", str(p["id"]))
    assert e["type"] == "RiskRejected" and "still PENDING" in e["message"]
    shown = rpc(plat, "proposal", p["id"])
    assert shown["state"] == "PENDING" and "orders in the last" in shown["state_reason"]
    rpc(plat, "risk_set", "max_orders_per_window", "30")
    assert rpc(plat, "approve_proposal", p["id"])["state"] == "EXECUTED"
    # the lists: a denylisted symbol is flagged by the preview at once
    ok(plat, "filter", "add", "denylist", "amd")
    assert rpc(plat, "risk_limits")["limits"]["symbol_denylist"] == ["AMD"]
    denied = rpc(plat, "propose", "AMD", "BUY", quantity=1)
    assert any(f["rule"] == "symbol_list" for f in denied["risk_preview"]["gate"]["failures"])
    rpc(plat, "filter_edit", "remove", "symbol_denylist", ["AMD"])
    assert ok(plat, "filter")["denylist"] == []


def test_approve_and_reject_all_with_a_filter(plat):
    a = rpc(plat, "propose", "INTC", "BUY", quantity=1)
    b = rpc(plat, "propose", "INTC", "BUY", quantity=2)
    other = rpc(plat, "propose", "MSFT", "BUY", quantity=1)
    out = ok(plat, "reject", "--all", "--symbol", "INTC", "--reason", "changed my mind")
    assert sorted(out["selected"]) == sorted([a["id"], b["id"]]) and out["failed"] == 0
    assert {r["state"] for r in out["results"]} == {"REJECTED"}
    approved = ok(plat, "approve", "--all", "--symbol", "MSFT")
    assert [r["id"] for r in approved["results"]] == [other["id"]] and approved["results"][0]["state"] == "EXECUTED"
    assert err(plat, "approve")["type"] == "UsageError"


def test_protect_then_close_all_positions(plat):
    held = next(r for r in rpc(plat, "positions") if r["symbol"] == "AAPL")
    px = held["market_price"]
    out = ok(plat, "protect", "AAPL", "--stop", f"{px * 0.8:.2f}", "--take-profit", f"{px * 1.2:.2f}")
    assert out["failed"] == 0 and len(out["order_ids"]) == 2 and out["quantity"] == held["quantity"]
    legs = [o for o in rpc(plat, "orders") if o["order_id"] in out["order_ids"]]
    assert {o["tif"] for o in legs} == {"GTC"} and len({o["oca_group"] for o in legs}) == 1
    assert {o["order_type"] for o in legs} == {"STP", "LMT"} and {o["action"] for o in legs} == {"SELL"}
    plan = ok(plat, "close-all-positions", "--dry-run")["plan"]
    assert {x["symbol"] for x in plan} >= {"AAPL", "NVDA"} and all(x["quantity"] > 0 for x in plan)
    rpc(plat, "cancel_all")
    # resize-positions takes --tif like every order command: its legs go out with it
    total = sum(abs(r["market_value"] or 0) for r in rpc(plat, "positions"))
    resized = ok(plat, "resize-positions", "--max-bound", f"{total / 2:.0f}", "--tif", "GTC",
                 "--request-id", "resize-gtc")
    assert resized["order_ids"] and not [r for r in resized["results"] if "error" in r], resized
    sent = rpc(plat, "events", kind="order_submitted", correlation_id="resize-gtc.0")
    assert sent and sent[0]["payload"]["tif"] == "GTC", sent
    closed = ok(plat, "close-all-positions")
    assert closed["failed"] == 0, closed
    assert eventually(lambda: not [r for r in rpc(plat, "positions") if r["quantity"]])


def test_session_set_and_reset_change_the_sizer_at_once(plat):
    before = ok(plat, "session", "--detail")["sizing"]
    changed = ok(plat, "session", "set", "base_position_usd", "6000")
    assert changed["new"] == {"base_position_usd": 6000.0} and changed["file"].endswith("position_sizing.yaml")
    assert ok(plat, "session", "--detail")["sizing"] != before  # in force without a restart
    code, doc = run(plat, "session", "set", "base_position_usd", "lots")
    assert code == 1 and doc["error"]["type"] == "ConfigError"
    code, doc = run(plat, "session", "set", "base_position_usd", "-100")
    assert code == 1 and doc["error"]["type"] == "ConfigError" and ">= 0" in doc["error"]["message"]
    code, doc = run(plat, "session", "set", "nosuch", "1")
    assert code == 2  # not one of the settable keys: a usage error
    ok(plat, "session", "reset")
    assert ok(plat, "session", "--detail")["sizing"] == before
    assert any(e["kind"] == "sizing_changed" for e in ok(plat, "events", "--kind", "sizing_changed"))
    env = {**plat.env, "MMR_ROLE": "proposer"}
    res = mmr(env, "--json", "session", "set", "base_position_usd", "9000")
    assert res.returncode == 1 and json.loads(res.stdout)["error"]["type"] == "RoleForbidden"
