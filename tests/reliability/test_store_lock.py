"""A state-store lock held ~10 s by another process: ``status`` stays up, an order command and an approval end
with OutcomeUnknown (request id and the lookup command) instead of "is it running?", and neither is executed
once the lock is released — their deadlines passed, so they are recorded ``expired`` and never sent (the
proposal stays PENDING)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from trader.testing import mmr, running_platform
from trader.testing_crash import BrokerView

HOLD_SECONDS = 12.0  # status, then buy and approve side by side, all answered while it is held

# Holds the exclusive lock the way every writer does (`DuckStore.connect(write=True)`), then lets go.
HOLDER = """
import sys, time
from trader.data.store import state_store
with state_store(sys.argv[1]).connect(write=True):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def cli(env: dict[str, str], *args: str) -> Any:
    res = mmr(env, "--json", *args, timeout=60)
    return json.loads(res.stdout.strip().splitlines()[-1])


def launch(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trader.mmr_cli", "--json", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answer(proc: subprocess.Popen) -> Any:
    out, _ = proc.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def test_a_held_store_lock_neither_stalls_status_nor_executes_a_late_order(tmp_path):
    with running_platform(tmp_path / "home", with_gateway=True, broker_ready=True) as p:
        env = {**p.env, "MMR_ORDER_TIMEOUT": "3"}
        pid = str(cli(env, "propose", "AAPL", "BUY", "--quantity", "1", "--reasoning", "store lock")["id"])
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(p.home / "data"), str(HOLD_SECONDS)],
                                  env=p.env, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            status = cli(env, "status")
            trader = next(s for s in status["services"] if s["service"] == "trader_service")
            assert trader["up"] and status["broker"]["ready"], status
            buying = launch(env, "buy", "AAPL", "--quantity", "1", "--request-id", "lock-1")
            approving = launch(env, "approve", pid, "--request-id", "lock-2")
            buy, approve = answer(buying), answer(approving)
            assert holder.poll() is None  # every answer came while the lock was still held
        finally:
            holder.wait(timeout=HOLD_SECONDS + 30)
        for rid, doc in (("lock-1", buy), ("lock-2", approve)):
            err = doc["error"]
            assert err["type"] == "OutcomeUnknown", doc
            assert err["request_id"] == rid and err["lookup"] == f"mmr --json orders --request {rid}"
            assert "is it running" not in err["message"]
        # Once the lock is free, each request is recorded and settled: expired, nothing sent.
        for rid in ("lock-1", "lock-2"):
            deadline = time.monotonic() + 30
            while (found := cli(env, "orders", "--request", rid)).get("state") != "expired":
                assert time.monotonic() < deadline, found
                time.sleep(0.3)
            assert found["order_ids"] == []
        assert cli(env, "proposals", "show", pid)["state"] == "PENDING"
        time.sleep(1.0)  # an order sent anyway would have filled by now (market order, simulated gateway)
        assert cli(env, "trades") == []
        assert cli(env, "orders") == []
        view = BrokerView(p.gateway_port)
        try:
            truth = view.truth()
        finally:
            view.close()
        assert truth.orders_for("lock-1") == truth.orders_for(f"proposal-{pid}") == [] and truth.executions == {}
        # A retry with the same id gets the recorded outcome, not a second chance to execute.
        retry = cli(env, "buy", "AAPL", "--quantity", "1", "--request-id", "lock-1")
        assert retry["error"]["type"] == "DeadlineExceeded", retry
        assert cli(env, "trades") == []
