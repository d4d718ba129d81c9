"""`mmr nl` end to end on the simulated gateway (issue 18): the exact contracts and the risk gate's what-if preview
without --propose (nothing stored), and --propose turning stock, future, option and futures-option outrights into
PENDING proposals — never an order, with no approve — once per request id. One platform for the module."""

from __future__ import annotations

from datetime import UTC, datetime

from trader.testing import cli_json as run
from trader.testing import cli_ok as ok


def _month_day(yyyymmdd: str) -> str:
    """'20261218' → 'dec 18' (the parser reads it as the next such date from --ref-date)."""
    return datetime.strptime(yyyymmdd, "%Y%m%d").strftime("%b %d").lower()


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _near_money(p, symbol: str, *extra: str) -> tuple[str, float]:
    """An expiry of SYMBOL's options (not today's) and a listed strike near the money."""
    exps = ok(p, "options", "expirations", symbol, *extra)["expirations"]
    expiry = next(e for e in exps if e > _today().replace("-", ""))
    rows = ok(p, "options", "chain", symbol, *extra, "-e", expiry, "--strikes", "1")["rows"]
    return expiry, rows[0]["strike"]


def _no_orders(p) -> None:
    assert ok(p, "orders") == [] and ok(p, "trades") == []
    assert ok(p, "events", "--kind", "order_submitted") == []


def _pending_ids(p) -> set[int]:
    return {row["id"] for row in ok(p, "proposals", "--brief", "--limit", "50")}


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
    # what approval would certainly refuse is a refused preview, not an error: a stock SELL beyond the holding
    sell = ok(plat, "nl", "sell 10 AAPL", "--ref-date", _today())["preview"]
    assert "InvalidProposal" in sell["refused"] and "exceeds the 0 held" in sell["refused"]
    assert _pending_ids(plat) == before
    _no_orders(plat)


def test_an_unknown_contract_is_reported_with_exit_1(plat):
    code, doc = run(plat, "nl", "buy 1 ES 9000c dec 18", "--ref-date", _today())
    assert code == 1 and doc["intent"]["sec_type"] == "FOP" and "ContractNotFound" in doc["resolution_error"]


def test_propose_outrights_end_pending_never_an_order(plat):
    before = _pending_ids(plat)
    opt_exp, opt_strike = _near_money(plat, "AAPL")
    fop_exp, fop_strike = _near_money(plat, "ES", "--sectype", "FUT", "--exchange", "CME")
    texts = {"STK": "buy 5 AAPL at 200",
             "FUT": "buy 1 MES limit 5000",
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
    # the same text on the same day is the same request: a retry returns the first proposal
    again = ok(plat, "nl", texts["OPT"], "--ref-date", _today(), "--propose")["proposal"]
    assert again["id"] == made["OPT"]["id"]
    # so is an explicit request id, whatever the text
    first = ok(plat, "nl", "buy 3 AAPL at 190", "--propose", "--request-id", "nl-e2e-1")["proposal"]
    second = ok(plat, "nl", "buy 3 AAPL at 190", "--propose", "--request-id", "nl-e2e-1")["proposal"]
    assert first["id"] == second["id"] and first["request_id"] == "nl-e2e-1"
    assert _pending_ids(plat) - before == {p["id"] for p in made.values()} | {first["id"]}
    for prop in made.values():  # nobody approved: still PENDING, and nothing reached the broker
        assert ok(plat, "proposals", "show", str(prop["id"]))["state"] == "PENDING"
    _no_orders(plat)


def test_a_refused_text_or_a_vertical_is_never_proposed(plat):
    before = _pending_ids(plat)
    code, doc = run(plat, "nl", "buy ES", "--propose")
    assert code == 1 and doc["intent"]["refuse"] is True
    code, doc = run(plat, "nl", "buy 1 ZZZZ", "--propose")
    assert code == 1 and doc["intent"]["reason"] == "unknown symbol ZZZZ"
    assert _pending_ids(plat) == before
