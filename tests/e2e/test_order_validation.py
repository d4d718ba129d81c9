"""Validation at the service, end to end against the simulated gateway: absurd quantities are refused (not split,
not left working), and a working SELL counts against the position so a second SELL cannot open a short."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from trader.testing import Platform, mmr, running_platform


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("mmr_validation"), with_gateway=True, broker_ready=True) as p:
        yield p


def run(p: Platform, *args: str) -> tuple[int, Any]:
    res = mmr(p.env, "--json", *args)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON document, got {res.stdout!r} (stderr {res.stderr[-2000:]!r})"
    return res.returncode, json.loads(lines[0])


def ok(p: Platform, *args: str) -> Any:
    code, doc = run(p, *args)
    assert code == 0 and not (isinstance(doc, dict) and "error" in doc), doc
    return doc


def err(p: Platform, *args: str) -> dict[str, Any]:
    code, doc = run(p, *args)
    assert code != 0 and "error" in doc, doc
    return doc["error"]


def eventually(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (value := fn()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def held(p: Platform, symbol: str) -> float:
    return sum(r["quantity"] for r in ok(p, "positions") if r["symbol"] == symbol)


@pytest.mark.parametrize("args", [
    ("buy", "AAPL", "--quantity", "1e-300"),
    ("buy", "AAPL", "--quantity", "0.5"),
    ("buy", "AAPL", "--quantity", "1e308"),
    ("sell", "AAPL", "--quantity", "1e308", "--short"),
])
def test_absurd_quantities_are_refused_and_leave_no_order(plat, args):
    e = err(plat, *args)
    assert e["type"] == "InvalidOrder", e
    assert not [o for o in ok(plat, "orders") if o["symbol"] == "AAPL"]


def test_absurd_proposal_is_not_stored(plat):
    e = err(plat, "propose", "AAPL", "BUY", "--quantity", "1e308")
    assert e["type"] == "InvalidProposal", e
    assert not [p for p in ok(plat, "proposals", "--all") if p["symbol"] == "AAPL"]


def test_a_working_sell_counts_against_the_position(plat):
    ok(plat, "buy", "MSFT", "--quantity", "38")
    assert eventually(lambda: held(plat, "MSFT") == 38), ok(plat, "positions")
    price = ok(plat, "snapshot", "MSFT")
    far = round(float(price.get("last") or price.get("close")) * 2, 2)  # far above the market: rests
    resting = ok(plat, "sell", "MSFT", "--quantity", "38", "--limit", str(far))
    e = err(plat, "sell", "MSFT", "--quantity", "38")
    assert e["type"] == "InvalidOrder" and "working sell" in e["message"], e
    assert held(plat, "MSFT") == 38  # no short was opened
    ok(plat, "cancel", str(resting["order_ids"][0]))
    assert eventually(lambda: not [o for o in ok(plat, "orders") if o["symbol"] == "MSFT"])
    ok(plat, "sell", "MSFT", "--quantity", "38")  # with the resting order gone the full position sells
    assert eventually(lambda: held(plat, "MSFT") == 0)
