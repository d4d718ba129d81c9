"""Request ids end to end against the simulated gateway: a retried request places one order, a request whose
deadline passed is never sent, and `orders --request` tells what became of each."""

from __future__ import annotations

import json
import time

import pytest

from trader.errors import DeadlineExceeded
from trader.testing import mmr, running_platform
from trader.trading.models import Action
from trader.trading.orders import OrderRequest


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("mmr_requests"), with_gateway=True, broker_ready=True) as p:
        yield p


def run(p, *args):
    out = mmr(p.env, "--json", *args, timeout=60)
    return out.returncode, json.loads(out.stdout)


def broker_order_ids(p, ref: str) -> list[int]:
    """Order ids at the broker carrying orderRef ``ref``, from the audit trail's order status records."""
    code, events = run(p, "events", "--correlation-id", ref, "--kind", "order_status")
    assert code == 0
    return sorted({e["payload"]["order_id"] for e in events})


def test_a_retried_buy_places_one_order(plat):
    code, first = run(plat, "buy", "IBM", "--quantity", "2", "--request-id", "t-retry-buy-1")
    assert code == 0 and first["order_ids"], first
    code, again = run(plat, "buy", "IBM", "--quantity", "2", "--request-id", "t-retry-buy-1")
    assert code == 0 and again["order_ids"] == first["order_ids"]
    code, looked = run(plat, "orders", "--request", "t-retry-buy-1")
    assert code == 0 and looked["state"] == "done" and looked["order_ids"] == first["order_ids"]
    assert looked["kind"] == "place" and looked["running"] is False
    time.sleep(0.5)
    assert broker_order_ids(plat, "t-retry-buy-1") == first["order_ids"]  # one order at the broker
    code, fills = run(plat, "trades")
    assert code == 0 and sum(f["shares"] for f in fills if f["order_id"] in first["order_ids"]) == 2


def test_a_retried_refusal_gets_the_same_error(plat):
    code, first = run(plat, "sell", "IBM", "--quantity", "999999", "--request-id", "t-retry-refused")
    assert code == 1 and first["error"]["type"] in ("InvalidOrder", "RiskRejected")
    code, again = run(plat, "sell", "IBM", "--quantity", "999999", "--request-id", "t-retry-refused")
    assert code == 1 and again["error"]["type"] == first["error"]["type"]
    code, looked = run(plat, "orders", "--request", "t-retry-refused")
    assert looked["state"] == "refused" and looked["order_ids"] == []


def test_a_retried_approve_executes_once(plat):
    code, prop = run(plat, "propose", "KO", "BUY", "--quantity", "3", "--reasoning", "request id test")
    assert code == 0
    code, first = run(plat, "approve", str(prop["id"]), "--request-id", "t-approve-1")
    assert code == 0 and first["state"] == "EXECUTED" and first["order_ids"]
    code, again = run(plat, "approve", str(prop["id"]), "--request-id", "t-approve-1")
    assert code == 0 and again["state"] == "EXECUTED" and again["order_ids"] == first["order_ids"]
    code, other = run(plat, "approve", str(prop["id"]), "--request-id", "t-approve-2")
    assert code == 1 and other["error"]["type"] == "InvalidProposalTransition"
    assert broker_order_ids(plat, f"proposal-{prop['id']}") == first["order_ids"]


def test_an_order_past_its_deadline_is_not_sent(plat):
    client = plat.client("trader_service", timeout=10)
    req = OrderRequest(symbol="IBM", action=Action.BUY, quantity=1)
    with pytest.raises(DeadlineExceeded):
        client.call("place_order", req, request_id="t-late-1", deadline=time.time() - 1)
    code, looked = run(plat, "orders", "--request", "t-late-1")
    assert code == 1 and looked["error"]["type"] == "OrderNotFound"  # nothing was even recorded
    assert broker_order_ids(plat, "t-late-1") == []


def test_a_malformed_request_id_is_refused_by_the_service(plat):
    client = plat.client("trader_service", timeout=10)
    req = OrderRequest(symbol="IBM", action=Action.BUY, quantity=1)
    from trader.errors import InvalidOrder

    with pytest.raises(InvalidOrder):
        client.call("place_order", req, request_id="x" * 500)
    code, out = run(plat, "buy", "IBM", "--quantity", "1", "--request-id", "has space")
    assert code == 1 and out["error"]["type"] == "InvalidOrder"
