"""Reconciliation on every reconnect, not only at start: trader_service keeps running (same pid) while the
gateway drops every socket; when its session is back, it adopts a broker order it had no record of and
records that order's fill, once — a second reconnect adds nothing.

The order is placed by another client of the simulated gateway while trader_service is connected: IB sends
another client's executions to that client only, so trader_service learns of it from reconciliation alone.
"""

from __future__ import annotations

import time

from trader.testing import Platform, cli_ok, eventually, running_platform
from trader.testing_crash import BrokerView, gateway_fault

REF = "ext-reconnect-1"


def trader_pid(p: Platform) -> int:
    with p.client("trader_service", timeout=10) as client:
        return client.call("status").pid


def reconnect(p: Platform) -> None:
    """Drop every gateway socket and wait until trader_service has reconnected (its session counts it) and is
    connected and reconciled again."""
    before = p.wait_broker_ready(60)["reconnects"]
    assert gateway_fault(p, "drop_connections")["ok"]
    assert eventually(lambda: p.wait_broker_ready(60)["reconnects"] > before, timeout=90)


def adopted(p: Platform) -> list[dict]:
    return cli_ok(p, "events", "--kind", "order_adopted", "--correlation-id", REF)


def fills(p: Platform) -> list[dict]:
    return cli_ok(p, "events", "--kind", "fill", "--correlation-id", REF)


def test_a_reconnect_adopts_a_foreign_order_and_records_its_fill_once(tmp_path):
    with running_platform(tmp_path / "home", with_gateway=True, broker_ready=True) as p:
        pid = trader_pid(p)
        view = BrokerView(p.gateway_port)
        try:
            view.place_foreign("AAPL", REF)  # filled at the broker while trader_service is connected
            [execution] = [e for e in view.truth().executions.values() if e["order_ref"] == REF]
        finally:
            view.close()
        time.sleep(1.0)  # what trader_service would have recorded live, it has by now: nothing
        assert adopted(p) == [] and cli_ok(p, "trades") == []

        reconnect(p)
        assert eventually(lambda: adopted(p) and fills(p), timeout=60)
        assert trader_pid(p) == pid  # the same process: a reconnect, not a restart
        [adoption] = adopted(p)
        assert adoption["payload"]["recovered"] is True and adoption["payload"]["perm_id"] == execution["perm_id"]
        [fill] = fills(p)
        assert fill["payload"]["exec_id"] == execution["exec_id"] and fill["payload"]["recovered"] is True
        assert [t["exec_id"] for t in cli_ok(p, "trades")] == [execution["exec_id"]]

        reconnect(p)  # a second reconciliation finds nothing new and logs nothing twice
        time.sleep(2.0)
        assert len(adopted(p)) == 1 and len(fills(p)) == 1
        assert [t["exec_id"] for t in cli_ok(p, "trades")] == [execution["exec_id"]]
        assert trader_pid(p) == pid
