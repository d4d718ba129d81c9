"""Contract selection for futures, options and forex end to end on the simulated gateway (issue 17): local
symbols, selection flags, the front-month default, bounded ambiguity errors, and a futures order whose risk
notional carries its multiplier (one platform for the module)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from trader.testing import cli_json as run
from trader.testing import cli_ok as ok
from trader.trading.contract_select import FUT_ROLL_DAYS


def test_futures_front_month_local_symbol_and_expiry(plat):
    front = ok(plat, "resolve", "ES", "--sectype", "FUT")
    assert front["sec_type"] == "FUT" and front["multiplier"] in ("50", 50, 50.0)
    days = (datetime.strptime(front["last_trade_date"][:8], "%Y%m%d").date() - datetime.now(UTC).date()).days
    assert days > FUT_ROLL_DAYS  # the documented roll rule
    by_local = ok(plat, "resolve", front["local_symbol"], "--sectype", "FUT", "--exchange", "CME")
    assert by_local["con_id"] == front["con_id"]
    by_month = ok(plat, "resolve", "ES", "--sectype", "FUT", "--expiry", front["last_trade_date"][:6])
    assert by_month["con_id"] == front["con_id"]
    by_conid = ok(plat, "resolve", "ANYTHING", "--conid", str(front["con_id"]))
    assert by_conid["local_symbol"] == front["local_symbol"]
    micro = ok(plat, "resolve", "MES", "--sectype", "FUT")
    assert float(micro["multiplier"]) == 5.0


def test_option_selection_and_bounded_ambiguity(plat):
    code, doc = run(plat, "resolve", "AAPL", "--sectype", "OPT")
    assert code == 1 and doc["error"]["type"] == "AmbiguousContract"
    cands = doc["error"]["candidates"]
    assert 1 <= len(cands) <= 5 and len(json.dumps(doc)) < 4000
    assert "--expiry" in doc["error"]["message"] and "--strike" in doc["error"]["message"]
    pick = cands[0]
    assert "--expiry" in pick["flags"] and "--strike" in pick["flags"] and "--right" in pick["flags"]
    exact = ok(plat, "resolve", "AAPL", "--sectype", "OPT", "--expiry", pick["last_trade_date"],
               "--strike", f"{pick['strike']:g}", "--right", pick["right"])
    assert exact["con_id"] == pick["con_id"] and exact["multiplier"] in ("100", 100, 100.0)
    occ = ok(plat, "resolve", exact["local_symbol"])  # the OCC symbol names it without --sectype
    assert occ["con_id"] == exact["con_id"] and occ["sec_type"] == "OPT"
    quote = ok(plat, "snapshot", "AAPL", "--sectype", "OPT", "--conid", str(exact["con_id"]))
    assert quote["con_id"] == exact["con_id"]


def test_forex_pair_resolves_without_an_exchange(plat):
    eur = ok(plat, "resolve", "EUR", "--sectype", "CASH", "--currency", "USD")
    assert eur["sec_type"] == "CASH" and eur["local_symbol"] == "EUR.USD"


def test_futures_order_is_one_contract_with_its_multiplier_in_the_notional(plat):
    front = ok(plat, "resolve", "MES", "--sectype", "FUT")
    placed = ok(plat, "buy", "MES", "--sectype", "FUT", "--quantity", "1", "--request-id", "r-mes-1")
    assert placed["quantity"] == 1 and placed["status"] == "Filled"
    held = [r for r in ok(plat, "positions") if r["con_id"] == front["con_id"]]
    assert held and held[0]["quantity"] == 1 and held[0]["sec_type"] == "FUT"
    pos = held[0]  # P&L with the multiplier: unrealized = (mark − average cost) × 5 × contracts
    assert pos["market_value"] == pytest.approx(pos["market_price"] * 5, abs=0.01)
    assert pos["unrealized_pnl"] == pytest.approx((pos["market_price"] - pos["avg_cost"]) * 5, abs=0.02)
    # an amount buys whole contracts at price × multiplier: $1,000 cannot buy one 5× contract
    code, doc = run(plat, "buy", "MES", "--sectype", "FUT", "--amount", "1000")
    assert code == 1 and doc["error"]["type"] == "InvalidOrder" and "less than one" in doc["error"]["message"], doc
    closed = ok(plat, "close", "MES", "--request-id", "r-mes-close")
    assert closed["status"] == "Filled"
    fills = {t["order_id"]: t for t in ok(plat, "trades") if t["con_id"] == front["con_id"]}
    entry, exit_ = fills[placed["order_ids"][0]], fills[closed["order_ids"][0]]
    expected = (exit_["price"] - entry["price"]) * 5 - entry["commission"] - exit_["commission"]
    assert exit_["realized_pnl"] == pytest.approx(expected, abs=0.01)  # realized P&L × the multiplier


def test_futures_roll_shows_the_front_and_the_next_contract(plat):
    roll = ok(plat, "futures", "roll", "ES")
    front, nxt = roll["front"], roll["next"]
    assert front["con_id"] == ok(plat, "resolve", "ES", "--sectype", "FUT")["con_id"]
    assert nxt is not None and nxt["last_trade_date"] > front["last_trade_date"]
    assert front["days_to_last_trade"] > 5 and "5 days" in roll["roll_rule"]


# --------------------------------------------------------------------------- second half: forex and options
def test_forex_quote_convert_round_trip_and_majors(plat):
    q = ok(plat, "forex", "quote", "EUR", "USD")
    assert q["pair"] == "EURUSD" and 0 < q["bid"] <= q["mid"] <= q["ask"]
    there = ok(plat, "forex", "convert", "EUR", "USD", "1000")
    assert there["legs"][0]["pair"] == "EUR.USD" and not there["legs"][0]["inverted"]
    back = ok(plat, "forex", "convert", "USD", "EUR", str(there["converted"]))
    assert back["legs"][0]["inverted"] and abs(back["converted"] - 1000) < 1.0  # mids a moment apart
    majors = ok(plat, "forex", "snapshot-all")
    assert len(majors["quotes"]) == 7 and not majors["missing"]


def test_option_chain_greeks_and_orders_through_the_gate(plat):
    import pytest

    analytical = pytest.importorskip("vollib.black_scholes.greeks.analytical")
    exps = ok(plat, "options", "expirations", "AAPL")["expirations"]
    assert exps == sorted(exps) and len(exps) >= 4
    expiry = exps[-1]
    spot = ok(plat, "snapshot", "AAPL")["last"]
    lo, hi = f"{spot * 0.9:.0f}", f"{spot * 1.1:.0f}"
    chain = ok(plat, "options", "chain", "AAPL", "-e", expiry, "--type", "call", "--greeks", "--strikes", "4",
               "--strike-min", lo, "--strike-max", hi)
    rows = chain["rows"]
    assert len(rows) == 4 and {r["right"] for r in rows} == {"C"} and chain["strikes_listed"] > 4
    assert all(float(lo) <= r["strike"] <= float(hi) for r in rows)
    years = (datetime.strptime(expiry, "%Y%m%d").replace(hour=21, tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    years /= 365.25 * 86400
    for r in rows:  # the broker's (simulator's) greeks against an independent Black-Scholes
        assert r["bid"] <= r["ask"] and r["impliedVol"] > 0
        s, k, v = r["undPrice"], r["strike"], r["impliedVol"]
        assert abs(s - chain["underlying_price"]) / s < 0.01
        assert r["delta"] == pytest.approx(analytical.delta("c", s, k, years, 0.04, v), abs=5e-3)
        assert r["gamma"] == pytest.approx(analytical.gamma("c", s, k, years, 0.04, v), rel=2e-2)
        assert r["vega"] == pytest.approx(analytical.vega("c", s, k, years, 0.04, v), rel=2e-2)
    pick = min(rows, key=lambda r: abs(r["strike"] - spot))
    strike = f"{pick['strike']:g}"
    placed = ok(plat, "options", "buy", "AAPL", "-e", expiry, "-s", strike, "-r", "C", "-q", "1",
                "--request-id", "r-opt-1")
    assert placed["status"] == "Filled" and placed["quantity"] == 1
    code, doc = run(plat, "options", "sell", "AAPL", "-e", expiry, "-s", strike, "-r", "P", "-q", "1", "--short")
    assert code == 1 and doc["error"]["type"] == "RiskRejected" and "uncovered" in doc["error"]["message"], doc
    prop = ok(plat, "options", "buy", "AAPL", "-e", expiry, "-s", strike, "-r", "C", "-q", "1", "--propose")
    assert prop["state"] == "PENDING" and prop["symbol"].startswith("AAPL ") and prop["quantity"] == 1, prop


def test_option_snapshot_quote_greeks_and_iv(plat):
    expiry = ok(plat, "options", "expirations", "AAPL")["expirations"][-1]
    spot = ok(plat, "snapshot", "AAPL")["last"]
    row = min(ok(plat, "options", "chain", "AAPL", "-e", expiry, "--type", "put", "--strikes", "3")["rows"],
              key=lambda r: abs(r["strike"] - spot))
    snap = ok(plat, "options", "snapshot", row["local_symbol"])
    assert snap["con_id"] == row["con_id"] and snap["right"] == "P" and snap["strike"] == row["strike"]
    assert 0 < snap["bid"] <= snap["mid"] <= snap["ask"] and snap["impliedVol"] > 0
    assert -1 < snap["delta"] < 0 and snap["gamma"] > 0 and snap["vega"] > 0  # a put's greeks
    assert snap["intrinsic"] == max(snap["strike"] - snap["undPrice"], 0.0)
    by_flags = ok(plat, "options", "snapshot", "AAPL", "--expiry", expiry, "--strike", f"{row['strike']:g}",
                  "--right", "P")
    assert by_flags["con_id"] == row["con_id"]
    code, doc = run(plat, "options", "snapshot", "AAPL")  # no selection: a bounded ambiguity error
    assert code == 1 and doc["error"]["type"] == "AmbiguousContract"


def test_implied_distribution_integrates_to_one_around_the_forward(plat, tmp_path):
    import math

    from trader.sim.market_math import RISK_FREE_RATE

    expiry = ok(plat, "options", "expirations", "AAPL")["expirations"][-1]
    png = tmp_path / "implied.png"
    dist = ok(plat, "options", "implied", "AAPL", "-e", expiry, "--level", "250", "--chart", str(png), "--curve")
    years = (datetime.strptime(expiry, "%Y%m%d").replace(hour=21, tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    forward = dist["underlying_price"] * math.exp(RISK_FREE_RATE * years / (365.25 * 86400))
    assert abs(dist["mass"] - 1) < 0.02  # the raw Breeden-Litzenberger density integrates to 1
    assert abs(dist["forward"] / forward - 1) < 0.01 and abs(dist["mean"] / forward - 1) < 0.01, (dist, forward)
    pcts = [p["price"] for p in dist["percentiles"]]
    assert pcts == sorted(pcts) and pcts[0] < forward < pcts[-1]
    level = dist["levels"][0]
    assert level["level"] == 250 and abs(level["prob_below"] + level["prob_above"] - 1) < 1e-9
    assert len(dist["curve"]) == 101 and png.read_bytes()[:4] == b"\x89PNG"


def test_proposal_preview_notional_carries_the_multiplier(plat):
    expiry = ok(plat, "options", "expirations", "AAPL")["expirations"][-1]
    row = ok(plat, "options", "chain", "AAPL", "-e", expiry, "--type", "call", "--strikes", "1")["rows"][0]
    limit = round(row["ask"], 2)
    opt = ok(plat, "options", "buy", "AAPL", "-e", expiry, "-s", f"{row['strike']:g}", "-r", "C", "-q", "2",
             "--limit", f"{limit}", "--propose")
    assert opt["multiplier"] == 100 and opt["risk_preview"]["notional"] == pytest.approx(limit * 100 * 2)
    fut = ok(plat, "propose", "MES", "BUY", "--sectype", "FUT", "--quantity", "1", "--limit", "5000")
    assert fut["multiplier"] == 5 and fut["risk_preview"]["notional"] == pytest.approx(5000 * 5)


def test_portfolio_shows_cash_per_currency_after_a_forex_trade(plat):
    placed = ok(plat, "buy", "EUR", "--sectype", "CASH", "--currency", "USD", "--exchange", "IDEALPRO",
                "--quantity", "20000", "--request-id", "r-fx-1")
    assert placed["status"] == "Filled", placed
    cash = {}
    for _ in range(50):  # account values follow the fill
        cash = {r["currency"]: r for r in ok(plat, "portfolio")["cash"]}
        if "EUR" in cash:
            break
    assert cash["EUR"]["balance"] >= 20_000 and cash["USD"]["exchange_rate"] == 1.0
    eur = cash["EUR"]
    assert eur["base_value"] == pytest.approx(eur["balance"] * eur["exchange_rate"])
    assert 0.5 < eur["exchange_rate"] < 2.0


def test_a_euro_order_is_gated_in_dollars(plat):
    quote = ok(plat, "snapshot", "SAP", "--currency", "EUR", "--exchange", "SMART")
    price = round(quote["last"], 2)
    qty = int(49_000 // price)  # just under €49,000: within the $50,000 limit only if EUR were worth a dollar
    rate = ok(plat, "forex", "quote", "EURUSD")["mid"]
    code, doc = run(plat, "buy", "SAP", "--currency", "EUR", "--quantity", str(qty), "--limit", f"{price}")
    assert code == 1 and doc["error"]["type"] == "RiskRejected", doc
    shown = float(doc["error"]["message"].split("position value $")[1].split(" ")[0].replace(",", ""))
    assert shown == pytest.approx(qty * price * rate, rel=5e-3)


def test_an_amount_in_dollars_buys_euro_shares_at_the_exchange_rate(plat):
    price = round(ok(plat, "snapshot", "SAP", "--currency", "EUR")["last"] * 0.9, 2)  # rests below the market
    rate = ok(plat, "forex", "quote", "EURUSD")["mid"]
    placed = ok(plat, "buy", "SAP", "--currency", "EUR", "--amount", "10000", "--limit", f"{price}")
    assert abs(placed["quantity"] - 10_000 // (price * rate)) <= 1, (placed, price, rate)
    assert placed["quantity"] < 10_000 // price  # the dollars buy fewer euro-priced shares
    ok(plat, "cancel", str(placed["order_ids"][0]))


def test_futures_options_implied_forward_is_the_future_and_a_fop_spread_uses_its_multiplier(plat):
    fut = ["--sectype", "FUT", "--exchange", "CME"]
    expiry = ok(plat, "options", "expirations", "ES", *fut)["expirations"][0]
    dist = ok(plat, "options", "implied", "ES", "-e", expiry, *fut, "--no-chart")
    assert abs(dist["mass"] - 1) < 0.02 and abs(dist["forward"] / dist["underlying_price"] - 1) < 2e-3, dist
    rows = ok(plat, "options", "chain", "ES", "-e", expiry, *fut, "--type", "put", "--strikes", "2")["rows"]
    lo, hi = sorted(r["strike"] for r in rows)
    prop = ok(plat, "options", "vertical", "ES", "-e", expiry, *fut, "--right", "P", "--strikes", f"{hi:g}/{lo:g}",
              "--action", "SELL", "-q", "1", "--limit", "1", "--propose")
    assert prop["risk_preview"]["notional"] == pytest.approx((hi - lo - 1) * 50)  # ES options: × 50
