"""OrderReconciler over the real intent store and audit trail (DuckDB in a temp dir): open intents settle by
orderRef, lost placements and unknown broker orders are recorded exactly once, nothing is re-sent."""

from __future__ import annotations

from trader.data.events import EventStore
from trader.data.order_records import Intent, IntentStore
from trader.data.store import state_store
from trader.trading.reconcile import BrokerOrder, OrderReconciler, refs_to_order_ids


def make(tmp_path):
    store = state_store(tmp_path)
    intents, events = IntentStore(store), EventStore(store)
    settled_with = []

    def settle(ids_for):
        settled_with.append(ids_for("proposal-3"))
        return []

    rec = OrderReconciler(intents, settle, events,
                          lambda kind, payload, correlation_id=None: events.append(kind, payload,
                                                                                    correlation_id=correlation_id))
    return rec, intents, events, settled_with


def kinds(events, kind):
    return [e for e in events.read(kind=kind)]


def test_open_intents_settle_by_order_ref_once(tmp_path):
    rec, intents, events, settled_with = make(tmp_path)
    for rid in ("r-placed", "r-lost", "r-never", "r-busy"):
        intents.claim(Intent(request_id=rid, kind="place", order_ref=rid))
    for rid in ("r-placed", "r-lost"):  # both reached the executioner's durable submission record
        events.append("order_submitted", {"symbol": "AAPL"}, correlation_id=rid)
    book = [BrokerOrder(order_id=11, perm_id=9011, order_ref="r-placed", symbol="AAPL", status="Filled", filled=1),
            BrokerOrder(order_id=11, perm_id=9011, order_ref="r-placed", symbol="AAPL", status="Filled", filled=1),
            BrokerOrder(order_id=21, perm_id=9021, order_ref="proposal-3.0"),
            BrokerOrder(order_id=30, perm_id=9030, order_ref="", symbol="MSFT", status="Submitted")]
    summary = rec.run(book, busy={"r-busy"})
    got = {i["request_id"]: i for i in summary["intents_settled"]}
    assert got["r-placed"]["state"] == "done" and got["r-placed"]["order_ids"] == [11]
    assert intents.get("r-lost").state == "refused" and "not found at the broker" in intents.get("r-lost").error["message"]
    assert intents.get("r-never").state == "refused" and "before submission" in intents.get("r-never").error["message"]
    assert intents.get("r-busy").state == "received"  # still running in this process: left alone
    assert settled_with == [[21]]  # proposal refs match their legs too
    placed = kinds(events, "order_placed")
    assert [(e.correlation_id, e.payload["order_ids"], e.payload["recovered"]) for e in placed] == \
        [("r-placed", [11], True)]
    adopted = kinds(events, "order_adopted")
    assert sorted(e.payload["order_id"] for e in adopted) == [21, 30]  # no submission record for either
    again = rec.run(book)  # a second reconciliation (another reconnect) adds nothing
    assert again["placed_recovered"] == [] and again["adopted"] == []
    assert [i["request_id"] for i in again["intents_settled"]] == ["r-busy"]
    assert len(kinds(events, "order_placed")) == 1 and len(kinds(events, "order_adopted")) == 2


def test_refs_to_order_ids_is_unique_and_sorted():
    book = [BrokerOrder(order_id=i, perm_id=0, order_ref="a") for i in (3, 1, 3)] + [
        BrokerOrder(order_id=9, perm_id=0, order_ref="")]
    assert refs_to_order_ids(book) == {"a": [1, 3]}
