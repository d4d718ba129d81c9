"""The trading CLI end to end: ``mmr --json <command>`` in a subprocess, as an agent runs it, against the three
services and the simulated IB Gateway on free ports in a temp MMR_HOME.

The platform is shared by the module, so each test trades its own symbol and asserts on what it changed.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from trader.testing import Platform, mmr, platform_env

ORDER_STATES_ALIVE = {"PendingSubmit", "PreSubmitted", "Submitted", "ApiPending"}


# --------------------------------------------------------------------------- fixtures and helpers
def run(p: Platform, *args: str, timeout: float = 30) -> tuple[int, Any]:
    """Run ``mmr --json ARGS``; return (exit code, the one JSON document on stdout)."""
    res = mmr(p.env, "--json", *args, timeout=timeout)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON document, got {res.stdout!r} (stderr {res.stderr[-2000:]!r})"
    return res.returncode, json.loads(lines[0])


def ok(p: Platform, *args: str) -> Any:
    code, doc = run(p, *args)
    assert code == 0, doc
    assert not (isinstance(doc, dict) and "error" in doc), doc
    return doc


def err(p: Platform, *args: str) -> dict[str, Any]:
    code, doc = run(p, *args)
    assert code == 1, doc
    return doc["error"]


def eventually(fn, timeout: float = 10.0, interval: float = 0.2):
    """Poll ``fn`` until it returns something truthy (fills and cancels are asynchronous at the broker)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def last_price(p: Platform, symbol: str) -> float:
    q = ok(p, "snapshot", symbol)
    for key in ("last", "close", "bid", "ask"):
        if q.get(key):
            return float(q[key])
    raise AssertionError(f"no price in {q}")


def position_of(p: Platform, symbol: str) -> dict[str, Any] | None:
    return next((r for r in ok(p, "positions") if r["symbol"] == symbol), None)


# --------------------------------------------------------------------------- contracts and quotes
def test_resolve_aapl_gives_its_con_id(plat):
    c = ok(plat, "resolve", "AAPL")
    assert c["con_id"] == 265598
    assert c["symbol"] == "AAPL" and c["sec_type"] == "STK" and c["currency"] == "USD"


def test_ambiguous_resolve_is_an_error_listing_the_candidates(plat):
    e = err(plat, "resolve", "ES", "--sectype", "FOP", "--exchange", "CME")  # futures default to the front month
    assert e["type"] == "AmbiguousContract"
    assert 2 <= len(e["candidates"]) <= 5
    assert len({c["con_id"] for c in e["candidates"]}) == len(e["candidates"])
    assert all(c["symbol"] == "ES" for c in e["candidates"])


def test_snapshot_has_a_two_sided_quote(plat):
    q = ok(plat, "snapshot", "MSFT")
    assert q["symbol"] == "MSFT"
    assert q["bid"] > 0 and q["ask"] >= q["bid"]


# --------------------------------------------------------------------------- orders
def test_buy_market_fill_shows_in_positions_and_trades(plat):
    before = position_of(plat, "AAPL")
    held = before["quantity"] if before else 0.0
    r = ok(plat, "buy", "AAPL", "--quantity", "3")
    assert r["symbol"] == "AAPL" and r["action"] == "BUY" and r["quantity"] == 3
    assert len(r["order_ids"]) == 1
    order_id = r["order_ids"][0]
    pos = eventually(lambda: (p := position_of(plat, "AAPL")) and p["quantity"] == held + 3 and p)
    assert pos, f"position did not reach {held + 3}: {position_of(plat, 'AAPL')}"
    assert pos["avg_cost"] > 0
    fills = eventually(lambda: [t for t in ok(plat, "trades") if t["order_id"] == order_id])
    assert fills and fills[0]["side"] == "BOT" and fills[0]["symbol"] == "AAPL"
    assert sum(f["shares"] for f in fills) == 3


def test_limit_order_rests_is_listed_and_cancels(plat):
    limit = round(last_price(plat, "MSFT") * 0.5, 2)  # far below the market: rests
    r = ok(plat, "buy", "MSFT", "--quantity", "1", "--limit", str(limit))
    (order_id,) = r["order_ids"]
    assert r["status"] in ORDER_STATES_ALIVE
    listed = [o for o in ok(plat, "orders") if o["order_id"] == order_id]
    assert listed and listed[0]["order_type"] == "LMT" and listed[0]["limit_price"] == pytest.approx(limit)
    c = ok(plat, "cancel", str(order_id))
    assert c["order_id"] == order_id
    assert eventually(lambda: all(o["order_id"] != order_id for o in ok(plat, "orders"))), "order still open"


def test_bracket_places_three_orders(plat):
    price = last_price(plat, "NVDA")
    entry, tp, sl = round(price * 0.5, 2), round(price * 0.6, 2), round(price * 0.4, 2)
    r = ok(plat, "buy", "NVDA", "--quantity", "2", "--limit", str(entry), "--bracket", str(tp), str(sl))
    assert len(r["order_ids"]) == 3
    parent = r["order_ids"][0]
    legs = eventually(lambda: (rows := [o for o in ok(plat, "orders") if o["order_id"] in r["order_ids"]])
                      and len(rows) == 3 and rows)
    assert legs, ok(plat, "orders")
    children = [o for o in legs if o["order_id"] != parent]
    assert all(o["parent_id"] == parent for o in children)
    assert {o["action"] for o in children} == {"SELL"}
    done = ok(plat, "cancel-all")
    assert set(r["order_ids"]) & set(done["cancelled"])
    assert eventually(lambda: not [o for o in ok(plat, "orders") if o["order_id"] in r["order_ids"]])


def test_sell_more_than_held_without_short_is_a_clear_error(plat):
    e = err(plat, "sell", "AMD", "--quantity", "5")  # AMD is never bought in this module
    assert e["type"] in ("InvalidOrder", "RiskRejected")
    assert "held" in e["message"] and "--short" in e["message"]
    assert position_of(plat, "AMD") is None


def test_amount_buys_whole_shares_never_more_than_asked(plat):
    price = last_price(plat, "GOOGL")
    r = ok(plat, "buy", "GOOGL", "--amount", "1000")
    qty = r["quantity"]
    assert qty == int(qty) and qty >= 1
    assert abs(qty - math.floor(1000 / price)) <= 1  # the price moves between our snapshot and the service's
    assert qty * price <= 1000 * 1.02


def test_amount_below_one_share_is_refused(plat):
    e = err(plat, "buy", "NFLX", "--amount", "5")
    assert e["type"] in ("InvalidOrder", "RiskRejected")
    assert position_of(plat, "NFLX") is None


def test_close_by_row_number(plat):
    ok(plat, "buy", "JPM", "--quantity", "4")
    row = eventually(lambda: position_of(plat, "JPM"))
    assert row and row["quantity"] == 4
    r = ok(plat, "close", str(row["row"]))
    assert r["symbol"] == "JPM" and r["action"] == "SELL" and r["quantity"] == 4
    assert eventually(lambda: position_of(plat, "JPM") is None), position_of(plat, "JPM")


def test_resize_dry_run_plans_without_trading(plat):
    ok(plat, "buy", "XOM", "--quantity", "10")  # a position of its own, whatever else ran before
    assert eventually(lambda: (p := position_of(plat, "XOM")) and p["quantity"] == 10), position_of(plat, "XOM")
    before = {r["symbol"]: r["quantity"] for r in ok(plat, "positions")}
    gross = ok(plat, "portfolio")["totals"]["gross_value"]
    assert gross > 0
    plan = ok(plat, "resize-positions", "--max-bound", str(round(gross / 2, 2)), "--dry-run")
    assert plan["results"] == []
    assert "XOM" in {o["symbol"] for o in plan["plan"]}, plan
    assert {o["action"] for o in plan["plan"]} == {"SELL"}  # every position is long: scaling down sells
    assert all(0 < o["quantity"] <= before[o["symbol"]] for o in plan["plan"])
    assert {r["symbol"]: r["quantity"] for r in ok(plat, "positions")} == before


@pytest.mark.parametrize("args", [("buy", "AAPL"), ("buy", "AAPL", "--quantity", "1", "--amount", "100"),
                                  ("sell", "AAPL", "--quantity", "1", "--limit", "1", "--stop", "2"),
                                  ("buy", "AAPL", "--quantity", "1", "--market", "--trailing-pct", "2"),
                                  ("resize-positions", "--dry-run")], ids=str)
def test_argument_shape_errors_are_usage_errors_before_any_rpc(tmp_path, args):
    res = mmr(platform_env(tmp_path), "--json", *args)  # no service running: the shape is checked first
    assert res.returncode == 2, res.stdout + res.stderr
    assert json.loads(res.stdout)["error"]["type"] == "UsageError"


# --------------------------------------------------------------------------- reads and streams
def test_portfolio_has_account_positions_and_row_numbers(plat):
    doc = ok(plat, "portfolio")
    assert doc["account"]["net_liquidation"] > 0
    rows = doc["positions"]
    assert [r["row"] for r in rows] == list(range(1, len(rows) + 1))
    assert doc["totals"]["count"] == len(rows)


def test_events_show_the_order_trail(plat):
    ok(plat, "buy", "WMT", "--quantity", "1")
    rows = ok(plat, "events", "--kind", "order_submitted")
    assert rows and all(r["kind"] == "order_submitted" for r in rows)
    assert "WMT" in {r["payload"].get("symbol") for r in rows}
    newer = ok(plat, "events", "--since-id", str(rows[0]["id"]), "--limit", "5")
    assert len(newer) <= 5 and all(r["id"] > rows[0]["id"] for r in newer)


def test_listen_json_prints_one_tick_per_line(plat):
    res = mmr(plat.env, "--json", "listen", "AAPL", "--count", "3", timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3
    ticks = [json.loads(line) for line in lines]
    assert all(t["symbol"] == "AAPL" and t["con_id"] == 265598 for t in ticks)


def test_market_data_is_cancelled_when_the_last_listener_leaves(plat):

    with plat.client("trader_service", timeout=10) as c:
        first = c.rpc().subscribe_ticks("MSFT")  # a listener that stays
        assert mmr(plat.env, "--json", "listen", "MSFT", "--count", "1", timeout=30).returncode == 0
        # the CLI listener left; the first one still holds the subscription
        assert c.rpc().subscribe_ticks("MSFT")["listeners"] == first["listeners"] + 1
        c.rpc().unsubscribe_ticks("MSFT")
        last = c.rpc().unsubscribe_ticks("MSFT")
        assert last == {"con_id": first["con_id"], "listeners": 0, "market_data_cancelled": True}


def test_streaming_a_symbol_reads_its_daily_bars_before_any_proposal_needs_them(plat):
    """A strategy streams its conIds long before its first bar close: trader_service reads their daily bars (the
    sizer's ATR/ADV, the what-if) in the background then, so that close's proposals do not fetch them."""
    from datetime import UTC, datetime

    from trader.data.objects import ObjectStore
    from trader.data.store import STATE_SCHEMA, DuckStore
    from trader.testing import eventually

    objects = ObjectStore(DuckStore(plat.home / "data" / "state.duckdb", STATE_SCHEMA))
    with plat.client("trader_service", timeout=10) as c:
        sub = c.rpc().subscribe_ticks("TXN")
        key = f"bars1d:{sub['con_id']}:{datetime.now(UTC).date().isoformat()}"
        try:
            assert eventually(lambda: objects.get(key) is not None, timeout=30), key
            assert len(objects.get(key)) >= 20  # ~60 daily bars
        finally:
            c.rpc().unsubscribe_ticks("TXN")


def test_watch_json_prints_one_portfolio_per_refresh(plat):
    res = mmr(plat.env, "--json", "watch", "--count", "2", "--interval", "0.2", timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    docs = [json.loads(line) for line in res.stdout.strip().splitlines()]
    assert len(docs) == 2 and all("account" in d and "positions" in d for d in docs)
    assert len(mmr(plat.env, "--json", "watch").stdout.strip().splitlines()) == 1  # --count defaults to 1
    # a reading role streams too (the services serve portfolio and subscribe_ticks to its key)
    proposer = {**plat.env, "MMR_ROLE": "proposer"}
    assert "positions" in json.loads(mmr(proposer, "--json", "watch", timeout=30).stdout)
    res = mmr(proposer, "--json", "listen", "AAPL", "--count", "1", timeout=30)
    assert res.returncode == 0 and json.loads(res.stdout)["symbol"] == "AAPL", res.stdout + res.stderr


def test_status_shows_broker_and_account(plat):
    doc = ok(plat, "status")
    assert doc["broker"]["ready"] is True and doc["broker"]["reconciled"] is True
    res = mmr(plat.env, "status")
    assert res.returncode == 0
    assert "ready: yes" in res.stdout and "net_liquidation=" in res.stdout


def test_human_output_renders_tables(plat):
    ok(plat, "buy", "CSCO", "--quantity", "1")
    assert eventually(lambda: position_of(plat, "CSCO")), ok(plat, "positions")
    res = mmr(plat.env, "portfolio")
    assert res.returncode == 0, res.stderr
    assert "Account" in res.stdout and "Positions" in res.stdout and "CSCO" in res.stdout


# --------------------------------------------------------------------------- trader_service down
EVERY_COMMAND = [
    ("portfolio",), ("positions",), ("orders",), ("trades",), ("snapshot", "AAPL"), ("events",),
    ("listen", "AAPL", "--count", "1"), ("watch",), ("buy", "AAPL", "--quantity", "1"),
    ("sell", "AAPL", "--quantity", "1"), ("cancel", "1"), ("cancel-all",), ("close", "1"),
    ("resize-positions", "--max-bound", "1000", "--dry-run"), ("resolve", "AAPL"),
]


@pytest.mark.parametrize("args", EVERY_COMMAND, ids=lambda a: a[0])
def test_every_command_fails_fast_with_a_json_error_when_trader_service_is_down(tmp_path, args):
    env = platform_env(tmp_path)
    env["RPC_TIMEOUT"] = "60"  # were the fast probe missing, the command would hang for a minute
    t0 = time.monotonic()
    res = mmr(env, "--json", *args, timeout=30)
    elapsed = time.monotonic() - t0
    assert res.returncode == 1, res.stdout + res.stderr
    e = json.loads(res.stdout)["error"]
    assert e["type"] == "ServiceUnavailable"
    assert "trader_service is not running" in e["message"] and "start_mmr.sh" in e["message"]
    assert elapsed < 10, f"took {elapsed:.1f} s"  # generous: the probe answers in milliseconds


def test_a_service_that_accepts_but_never_answers_times_out_with_a_hint(tmp_path):
    from trader.config import mmr_paths
    from trader.messaging.auth import ensure_keys

    env = platform_env(tmp_path)
    env["RPC_TIMEOUT"] = "0.5"
    ensure_keys(mmr_paths(env).config_dir)  # an install whose services have run: the CLI has its key
    with socket.socket() as silent:  # listens (the kernel accepts connections) but never speaks ZMTP
        silent.bind(("127.0.0.1", int(env["TRADER_RPC_PORT"])))
        silent.listen(8)
        res = mmr(env, "--json", "positions", timeout=30)
    assert res.returncode == 1
    e = json.loads(res.stdout)["error"]
    assert e["type"] == "RPCTimeout"
    assert "trader_service did not answer positions" in e["message"] and "start_mmr.sh" in e["message"]


def test_buy_path_imports_no_heavy_library(tmp_path):
    code = (
        "import sys, json, io, contextlib\n"
        "from trader.mmr_cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--json', 'buy', 'AAPL', '--quantity', '1'])\n"
        "heavy = [m for m in ('pandas', 'numpy', 'duckdb', 'ib_async', 'pyarrow') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], env=platform_env(tmp_path), capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
