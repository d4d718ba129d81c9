"""`mmr nl` end to end on the simulated gateway (issue 18): the exact contracts and the risk gate's what-if preview
without --propose (nothing stored), and --propose turning stock, future (also a stop), option and futures-option
outrights — and verticals, as ONE combo (BAG) proposal — into PENDING proposals: never an order, with no approve,
once per request id. One platform for the module."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trader.testing import cli_json as run
from trader.testing import cli_ok as ok


def _month_day(yyyymmdd: str) -> str:
    """'20261218' → 'dec 18' (the parser reads it as the next such date from --ref-date)."""
    return datetime.strptime(yyyymmdd, "%Y%m%d").strftime("%b %d").lower()


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _rpc(p, method: str, *args, **kwargs):
    """trader_service directly (the side checks; the `nl` command under test runs as an agent runs it)."""
    with p.client("trader_service", timeout=15) as c:
        return getattr(c.rpc(), method)(*args, **kwargs)


def _near_money(p, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                strikes: int = 1) -> tuple[str, list[float]]:
    """An expiry of SYMBOL's options (not today's) and listed strikes near the money, ascending."""
    exps = _rpc(p, "option_expirations", symbol, sec_type=sec_type, exchange=exchange)["expirations"]
    expiry = next(e for e in exps if e > _today().replace("-", ""))
    rows = _rpc(p, "option_chain", symbol, expiry, limit=strikes, sec_type=sec_type, exchange=exchange)["rows"]
    return expiry, sorted({r["strike"] for r in rows})


def _no_orders(p) -> None:
    assert _rpc(p, "orders") == [] and _rpc(p, "trades") == []
    assert _rpc(p, "events", kind="order_submitted") == []


def _pending_ids(p) -> set[int]:
    return {row["id"] for row in _rpc(p, "proposals")}


def test_preview_shows_contracts_and_the_gate_and_stores_nothing(plat):
    before = _pending_ids(plat)
    doc = ok(plat, "nl", "buy 10 AAPL at 200", "--ref-date", _today())
    assert doc["intent"]["order_type"] == "LMT" and doc["contracts"][0]["con_id"] == 265598
    pv = doc["preview"]
    assert pv["state"] == "PREVIEW" and pv["symbol"] == "AAPL" and pv["quantity"] == 10
    assert pv["gate"]["allowed"] is True and pv["gate"]["failures"] == [] and pv["what_if"]["symbol"] == "AAPL"
    assert doc["elapsed_ms"] > 0 and "proposal" not in doc
    # the gate's refusals are shown, as propose would list them (a future's notional carries its multiplier)
    big = ok(plat, "nl", "buy 50 MES", "--ref-date", _today())["preview"]
    assert big["gate"]["allowed"] is False and {f["rule"] for f in big["gate"]["failures"]} >= {"position_value"}
    assert big["notional"] == pytest.approx(50 * big["price"] * 5)  # MES: × its multiplier
    # what approval would certainly refuse is a refused preview, not an error: a stock SELL beyond the holding
    sell = ok(plat, "nl", "sell 10 AAPL", "--ref-date", _today())["preview"]
    assert "InvalidProposal" in sell["refused"] and "exceeds the 0 held" in sell["refused"]
    assert _pending_ids(plat) == before
    _no_orders(plat)


def test_an_unknown_contract_is_reported_with_exit_1(plat):
    code, doc = run(plat, "nl", "buy 1 ES 5c dec 18", "--ref-date", _today())
    assert code == 1 and doc["intent"]["sec_type"] == "FOP" and "ContractNotFound" in doc["resolution_error"]


def test_propose_outrights_end_pending_never_an_order(plat):
    before = _pending_ids(plat)
    opt_exp, (opt_strike, *_) = _near_money(plat, "AAPL")
    fop_exp, (fop_strike, *_) = _near_money(plat, "ES", "FUT", "CME")
    texts = {"STK": "buy 5 AAPL at 200",
             "FUT": "buy 1 MES",
             "OPT": f"buy 1 AAPL {opt_strike:g}c {_month_day(opt_exp)} for 1.5",
             "FOP": f"sell 2 ES {fop_strike:g}p {_month_day(fop_exp)} for 20 gtc"}
    made = {}
    for sec_type, text in texts.items():
        doc = ok(plat, "nl", text, "--ref-date", _today(), "--propose")
        prop = doc["proposal"]
        assert doc["intent"]["sec_type"] == sec_type and prop["sec_type"] == sec_type, doc
        assert prop["state"] == "PENDING" and prop["order_ids"] == [] and prop["request_id"].startswith("nl-")
        assert prop["symbol"] == (doc["contracts"][0]["local_symbol"] if sec_type != "STK" else "AAPL")
        made[sec_type] = prop
    assert made["FOP"]["action"] == "SELL" and made["FOP"]["quantity"] == 2 and made["FOP"]["tif"] == "GTC"
    assert made["FOP"]["limit_price"] == 20 and made["OPT"]["limit_price"] == 1.5
    # a stop on a future: a STP proposal at the trigger, below the market for a SELL
    price = ok(plat, "nl", "buy 1 MES", "--ref-date", _today())["preview"]["price"]
    stop = ok(plat, "nl", f"sell 1 MES stop {int(price * 0.9)}", "--ref-date", _today(), "--propose")["proposal"]
    assert (stop["order_type"], stop["stop_price"], stop["limit_price"], stop["state"]) == (
        "STP", int(price * 0.9), None, "PENDING")
    made["STP"] = stop
    # the same text on the same day is the same request: a retry returns the first proposal
    again = ok(plat, "nl", texts["OPT"], "--ref-date", _today(), "--propose")["proposal"]
    assert again["id"] == made["OPT"]["id"]
    # so is an explicit request id, whatever the text
    first = ok(plat, "nl", "buy 3 AAPL at 190", "--propose", "--request-id", "nl-e2e-1")["proposal"]
    second = ok(plat, "nl", "buy 3 AAPL at 190", "--propose", "--request-id", "nl-e2e-1")["proposal"]
    assert first["id"] == second["id"] and first["request_id"] == "nl-e2e-1"
    assert _pending_ids(plat) - before == {p["id"] for p in made.values()} | {first["id"]}
    for prop in made.values():  # nobody approved: still PENDING, and nothing reached the broker
        assert _rpc(plat, "proposal", prop["id"])["state"] == "PENDING"
    _no_orders(plat)


def test_a_vertical_is_one_combo_proposal(plat):
    before = _pending_ids(plat)
    exp, strikes = _near_money(plat, "ES", "FUT", "CME", strikes=3)
    lo, hi = strikes[0], strikes[2]
    text = f"sell 3 ES put spreads at {hi:g}/{lo:g} for 20 points {_month_day(exp)}"
    preview = ok(plat, "nl", text, "--ref-date", _today())
    legs = {(c["strike"], c["right"]): c["con_id"] for c in preview["contracts"]}
    assert set(legs) == {(lo, "P"), (hi, "P")} and preview["intent"]["legs"][1] == {
        "right": "P", "strike": hi, "action": "SELL"}
    pv = preview["preview"]
    assert pv["sec_type"] == "BAG" and pv["state"] == "PREVIEW" and pv["gate"]["allowed"] is True
    assert pv["notional"] == (hi - lo - 20) * 50 * 3  # a credit vertical counts for its defined max loss
    doc = ok(plat, "nl", text, "--ref-date", _today(), "--propose")
    prop = doc["proposal"]
    assert prop["state"] == "PENDING" and prop["sec_type"] == "BAG" and prop["action"] == "SELL"
    assert (prop["quantity"], prop["limit_price"], prop["order_ids"]) == (3, 20, [])
    # written for buying the combo (the debit put spread: long the higher put), sold as one order
    assert {(leg["con_id"], leg["action"]) for leg in prop["legs"]} == {(legs[(hi, "P")], "BUY"),
                                                                        (legs[(lo, "P")], "SELL")}
    assert ok(plat, "nl", text, "--ref-date", _today(), "--propose")["proposal"]["id"] == prop["id"]
    # a stock-option call spread bought for a debit
    aexp, astrikes = _near_money(plat, "AAPL", strikes=2)
    debit = ok(plat, "nl", f"buy 2 AAPL {astrikes[0]:g}/{astrikes[-1]:g} call spread {_month_day(aexp)} for 1",
               "--ref-date", _today(), "--propose")["proposal"]
    assert debit["sec_type"] == "BAG" and debit["action"] == "BUY" and len(debit["legs"]) == 2
    assert _pending_ids(plat) - before == {prop["id"], debit["id"]}
    _no_orders(plat)


def test_a_refused_text_or_a_market_spread_is_never_proposed(plat):
    before = _pending_ids(plat)
    code, doc = run(plat, "nl", "buy ES", "--propose")
    assert code == 1 and doc["intent"]["refuse"] is True
    code, doc = run(plat, "nl", "buy 1 ZZZZ", "--propose")
    assert code == 1 and doc["intent"]["reason"] == "unknown symbol ZZZZ"
    exp, strikes = _near_money(plat, "AAPL", strikes=2)
    code, doc = run(plat, "nl", f"buy 1 AAPL {strikes[0]:g}/{strikes[-1]:g} cs {_month_day(exp)}", "--propose")
    assert code == 1 and "net limit price" in doc["error"]["message"]
    assert _pending_ids(plat) == before
