"""Calendars and diagonals end to end on the simulated gateway (issue 17): `options combo` legs naming their own
expiry, placed as ONE BAG order through the exactly-once path and filled as one; gated and previewed at the
documented first-expiry bound (a long calendar's max loss = its debit, a diagonal's = debit + strike width);
a calendar short beyond its cover refused; every preview shows the legs' bid/ask/mid, the natural and mid net
price, and the broker's own whatIf margin for the BAG."""

from __future__ import annotations

import json

import pytest

from trader.testing import cli_json as run
from trader.testing import cli_ok as ok
from trader.testing import mmr


@pytest.fixture(scope="module")
def calls(plat):
    """(near expiry, far expiry, {strike: row} of each): AAPL calls near the money in the last two expiries."""
    near, far = ok(plat, "options", "expirations", "AAPL")["expirations"][-2:]
    rows = {e: {r["strike"]: r for r in ok(plat, "options", "chain", "AAPL", "-e", e, "--type", "call",
                                          "--strikes", "6")["rows"]} for e in (near, far)}
    return near, far, rows[near], rows[far]


def _common(near_rows, far_rows) -> list[float]:
    return sorted(set(near_rows) & set(far_rows))


def test_a_long_call_calendar_is_one_order_filled_as_one_at_most_its_debit(plat, calls):
    near, far, near_rows, far_rows = calls
    k = _common(near_rows, far_rows)[len(_common(near_rows, far_rows)) // 2]
    legs = ["--leg", f"BUY {k:g}C {far}", "--leg", f"SELL {k:g}C {near}"]
    debit = far_rows[k]["ask"] - near_rows[k]["bid"]
    limit = round(debit + 0.5, 2)  # marketable with room for the quotes to move
    pv = ok(plat, "options", "combo", "AAPL", *legs, "--action", "BUY", "-q", "2", "--limit", f"{limit}",
            "--preview")
    assert pv["state"] == "PREVIEW" and pv["sec_type"] == "BAG", pv
    risk = pv["risk_preview"]
    assert risk["notional"] == pytest.approx(2 * limit * 100)  # max loss = the debit paid
    assert risk["gate"]["allowed"] is True, risk
    assert risk["margin_what_if"]["init_margin_change"] == pytest.approx(2 * limit * 100), risk
    assert risk["margin_what_if"]["commission"] > 0
    quote = risk["combo_quote"]
    assert [(q["action"], q["expiry"]) for q in quote["legs"]] == [("BUY", far), ("SELL", near)]
    for q in quote["legs"]:
        assert 0 < q["bid"] < q["ask"] and q["mid"] == pytest.approx((q["bid"] + q["ask"]) / 2)
    far_q, near_q = quote["legs"]
    assert quote["natural"] == pytest.approx(far_q["ask"] - near_q["bid"], abs=1e-6)
    assert quote["mid"] == pytest.approx(far_q["mid"] - near_q["mid"], abs=1e-6)
    before = {r["con_id"]: r["quantity"] for r in ok(plat, "positions")}
    placed = ok(plat, "options", "combo", "AAPL", *legs, "--action", "BUY", "-q", "2", "--limit", f"{limit}",
                "--request-id", "r-cal-1")
    assert placed["status"] == "Filled" and placed["filled"] == 2 and len(placed["order_ids"]) == 1, placed
    assert placed["avg_fill_price"] <= limit + 1e-9
    assert len(placed["combo_quote"]["legs"]) == 2 and placed["combo_quote"]["natural"] is not None
    after = {r["con_id"]: r["quantity"] for r in ok(plat, "positions")}
    far_id, near_id = far_rows[k]["con_id"], near_rows[k]["con_id"]
    assert after[far_id] == before.get(far_id, 0) + 2 and after[near_id] == before.get(near_id, 0) - 2


def test_a_diagonal_is_valued_at_its_debit_plus_the_strike_width(plat, calls):
    near, far, near_rows, far_rows = calls
    common = _common(near_rows, far_rows)
    lo, hi = common[0], common[-1]
    # long the far higher call, short the near lower one: the short may end (hi − lo) deeper in the money
    pv = ok(plat, "options", "combo", "AAPL", "--leg", f"BUY {hi:g}C {far}", "--leg", f"SELL {lo:g}C",
            "-e", near, "--action", "BUY", "-q", "1", "--limit", "1", "--preview")
    assert pv["risk_preview"]["notional"] == pytest.approx((1 + hi - lo) * 100), pv
    assert [q["expiry"] for q in pv["risk_preview"]["combo_quote"]["legs"]] == [far, near]
    # a stored proposal keeps the same preview: the legs' quotes and the broker's whatIf margin for the BAG
    prop = ok(plat, "options", "combo", "AAPL", "--leg", f"BUY {hi:g}C {far}", "--leg", f"SELL {lo:g}C {near}",
              "--action", "BUY", "-q", "1", "--limit", "1", "--propose")
    risk = prop["risk_preview"]
    assert prop["state"] == "PENDING" and risk["notional"] == pytest.approx((1 + hi - lo) * 100), prop
    assert len(risk["combo_quote"]["legs"]) == 2 and risk["combo_quote"]["mid"] is not None
    assert risk["margin_what_if"]["init_margin_change"] == pytest.approx((1 + hi - lo) * 100), risk
    patient = {**plat.env, "RPC_TIMEOUT": "30"}  # a loaded CI worker may take over 2 s to answer
    shown = json.loads(mmr(patient, "--json", "proposals", "show", str(prop["id"]), timeout=90).stdout)
    assert shown["risk_preview"]["combo_quote"] == risk["combo_quote"], shown
    text = mmr(patient, "proposals", "show", str(prop["id"]), timeout=90)  # as a person reads it
    assert text.returncode == 0 and "natural" in text.stdout and "broker what-if: initial margin" in text.stdout, \
        text.stdout + text.stderr


def test_a_calendar_short_beyond_its_cover_is_refused(plat, calls):
    near, far, near_rows, far_rows = calls
    k = _common(near_rows, far_rows)[0]
    code, doc = run(plat, "options", "combo", "AAPL", "--leg", f"BUY {k:g}C {far}", "--leg", f"SELL 2 {k:g}C {near}",
                    "--action", "BUY", "-q", "1", "--limit", "0.05")
    assert code == 1 and doc["error"]["type"] == "RiskRejected" and "defined risk" in doc["error"]["message"], doc
    # sold, the calendar is short the far call once the near one expires: refused too
    code, doc = run(plat, "options", "combo", "AAPL", "--leg", f"BUY {k:g}C {far}", "--leg", f"SELL {k:g}C {near}",
                    "--action", "SELL", "-q", "1", "--limit", "0.05")
    assert code == 1 and "defined risk" in doc["error"]["message"], doc
    code, doc = run(plat, "options", "combo", "AAPL", "--leg", f"BUY {k:g}C {far}", "--leg", f"SELL {k:g}C",
                    "--action", "BUY", "-q", "1", "--limit", "1")  # the second leg names no expiry, no -e
    assert code == 2 and "-e" in doc["error"]["message"], doc
