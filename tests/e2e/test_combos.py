"""Spreads as ONE order end to end on the simulated gateway (issue 17): a vertical placed as one BAG order through
trader_service's exactly-once path, filled as one (positions per leg), sized and gated by its defined max loss
(never its legs as unrelated trades); an undefined-risk combo refused; a proposed vertical approved into one order.
"""

from __future__ import annotations

import math

import pytest

from trader.testing import cli_json as run
from trader.testing import cli_ok as ok


@pytest.fixture(scope="module")
def puts(plat):
    """Two adjacent AAPL put strikes near the money of the last listed expiry, with their quotes."""
    expiry = ok(plat, "options", "expirations", "AAPL")["expirations"][-1]
    rows = ok(plat, "options", "chain", "AAPL", "-e", expiry, "--type", "put", "--strikes", "2")["rows"]
    lo, hi = sorted(rows, key=lambda r: r["strike"])
    return expiry, hi, lo


def _credit_limit(hi, lo) -> float:
    """A net credit comfortably below the marketable one (sell hi at its bid, buy lo at its ask)."""
    return max(round(hi["bid"] - lo["ask"] - 0.3, 2), 0.05)


def test_credit_vertical_is_one_combo_order_filled_as_one_and_sized_by_max_loss(plat, puts):
    expiry, hi, lo = puts
    limit = _credit_limit(hi, lo)
    strikes = f"{hi['strike']:g}/{lo['strike']:g}"
    placed = ok(plat, "options", "vertical", "AAPL", "-e", expiry, "--right", "P", "--strikes", strikes,
                "--action", "SELL", "-q", "2", "--limit", f"{limit}", "--request-id", "r-vert-1")
    assert placed["status"] == "Filled" and placed["filled"] == 2 and len(placed["order_ids"]) == 1, placed
    assert placed["avg_fill_price"] >= limit - 1e-9  # one net price, at least the credit asked
    held = {r["con_id"]: r["quantity"] for r in ok(plat, "positions")}
    assert held.get(hi["con_id"]) == -2 and held.get(lo["con_id"]) == 2  # positions per leg
    # the same request id never places a second order
    again = ok(plat, "options", "vertical", "AAPL", "-e", expiry, "--right", "P", "--strikes", strikes,
               "--action", "SELL", "-q", "2", "--limit", f"{limit}", "--request-id", "r-vert-1")
    assert again["order_ids"] == placed["order_ids"]
    # sized by max loss = (width − credit) × 100 × quantity: just over the $50,000 position limit is refused
    per_spread = (hi["strike"] - lo["strike"] - limit) * 100
    qty = math.floor(50_000 / per_spread) + 1
    code, doc = run(plat, "options", "vertical", "AAPL", "-e", expiry, "--right", "P", "--strikes", strikes,
                    "--action", "SELL", "-q", str(qty), "--limit", f"{limit}")
    assert code == 1 and doc["error"]["type"] == "RiskRejected", doc
    assert f"position value ${qty * per_spread:,.0f} > limit $50,000" in doc["error"]["message"], doc


def test_an_undefined_risk_combo_is_refused_and_a_proposed_vertical_executes_as_one(plat, puts):
    expiry, hi, lo = puts
    code, doc = run(plat, "options", "combo", "AAPL", "-e", expiry, "--leg", f"BUY {hi['strike']:g}P",
                    "--leg", f"SELL 2 {lo['strike']:g}P", "--action", "BUY", "-q", "1", "--limit", "0.05")
    assert code == 1 and doc["error"]["type"] == "RiskRejected" and "defined risk" in doc["error"]["message"], doc
    limit = _credit_limit(hi, lo)
    prop = ok(plat, "options", "vertical", "AAPL", "-e", expiry, "--right", "P", "--strikes",
              f"{lo['strike']:g}/{hi['strike']:g}", "--action", "SELL", "-q", "1", "--limit", f"{limit}", "--propose")
    assert prop["state"] == "PENDING" and prop["sec_type"] == "BAG" and len(prop["legs"]) == 2, prop
    assert [leg["action"] for leg in prop["legs"]] == ["BUY", "SELL"] and prop["legs"][0]["strike"] == hi["strike"]
    width = hi["strike"] - lo["strike"]
    assert prop["risk_preview"]["notional"] == pytest.approx((width - limit) * 100)
    assert prop["risk_preview"]["what_if"] is None  # not one position in the underlying
    before = {r["con_id"]: r["quantity"] for r in ok(plat, "positions")}
    done = ok(plat, "approve", str(prop["id"]))
    assert done["state"] == "EXECUTED" and len(done["order_ids"]) == 1, done
    after = {r["con_id"]: r["quantity"] for r in ok(plat, "positions")}
    assert after[hi["con_id"]] == before.get(hi["con_id"], 0) - 1 and after[lo["con_id"]] == before.get(lo["con_id"], 0) + 1


def test_a_spread_proposal_without_a_quantity_is_sized_by_its_max_loss(plat, puts):
    expiry, hi, lo = puts
    limit = _credit_limit(hi, lo)
    args = ["options", "vertical", "AAPL", "-e", expiry, "--right", "P", "--strikes",
            f"{hi['strike']:g}/{lo['strike']:g}", "--action", "SELL", "--limit", f"{limit}"]
    code, doc = run(plat, *args)  # an order needs -q; only a proposal is sized
    assert code == 2 and "-q" in doc["error"]["message"], doc
    pv = ok(plat, *args, "--preview")  # sized like a proposal, nothing stored: the legs as the order trades them
    sold, bought = pv["risk_preview"]["combo_quote"]["legs"]
    assert pv["state"] == "PREVIEW" and (sold["action"], bought["action"]) == ("SELL", "BUY"), pv
    assert pv["risk_preview"]["combo_quote"]["natural"] == pytest.approx(sold["bid"] - bought["ask"], abs=1e-6)
    assert not [p for p in ok(plat, "proposals") if p["id"] == pv["id"]]
    prop = ok(plat, *args, "--propose")
    per_spread = (hi["strike"] - lo["strike"] - limit) * 100
    assert prop["quantity"] >= 1 and prop["sizing"]["price"] == pytest.approx(per_spread)
    assert prop["sizing"]["usd"] == pytest.approx(prop["quantity"] * per_spread)
    assert prop["risk_preview"]["notional"] == pytest.approx(prop["quantity"] * per_spread)


def test_a_resting_spread_is_one_working_order_and_cancels_as_one(plat, puts):
    expiry, hi, lo = puts
    placed = ok(plat, "options", "vertical", "AAPL", "-e", expiry, "--right", "P", "--strikes",
                f"{hi['strike']:g}/{lo['strike']:g}", "--action", "BUY", "-q", "1", "--limit", "0.05")
    assert placed["status"] in ("Submitted", "PreSubmitted") and placed["filled"] == 0, placed
    [oid] = placed["order_ids"]
    working = [r for r in ok(plat, "orders") if r["order_id"] == oid]
    assert len(working) == 1 and working[0]["symbol"] == "AAPL", working
    assert ok(plat, "cancel", str(oid))["status"] == "Cancelled"
    assert not [r for r in ok(plat, "orders") if r["order_id"] == oid]
