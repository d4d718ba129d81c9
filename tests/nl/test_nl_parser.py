"""The NL order parser (issue 18): each convention in isolation, schema validation of every output, the dev set
at the CI bar (0.995) through `mmr nl eval`, and the CLI's refusals. No services needed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from trader.mmr_cli import cli
from trader.nl.evaluate import evaluate, load_cases
from trader.nl.intent import schema_errors
from trader.nl.parser import parse

DEV_SET = Path(__file__).parent / "dev_set.jsonl"
REF = date(2026, 12, 7)  # a Monday


def p(text: str, ref: date = REF) -> dict:
    out = parse(text, ref)
    assert schema_errors(out) == [], (text, out)
    return out


def legs(text: str) -> list[tuple[str, float, str]]:
    return [(leg["action"], leg["strike"], leg["right"]) for leg in p(text)["legs"]]


@pytest.mark.parametrize(("word", "action"), [("buy", "BUY"), ("long", "BUY"), ("go long", "BUY"),
                                              ("purchase", "BUY"), ("bto", "BUY"), ("sell", "SELL"),
                                              ("short", "SELL"), ("write", "SELL"), ("sto", "SELL")])
def test_action_words(word, action):
    assert p(f"{word} 2 ES")["action"] == action


def test_quantities():
    assert p("buy three ES")["quantity"] == 3 and p("buy a MES")["quantity"] == 1 and p("buy an NQ")["quantity"] == 1
    for bad in ("buy ES", "buy 0 ES", "buy -2 ES", "buy 1.5 ES"):
        assert p(bad).get("refuse"), bad


def test_symbols_and_sec_types():
    assert p("buy 1 ES")["sec_type"] == "FUT" and p("buy 1 ES 5300c fri")["sec_type"] == "FOP"
    assert p("buy 1 SPY")["sec_type"] == "STK" and p("buy 1 SPY 600c fri")["sec_type"] == "OPT"
    assert p("buy 1 ZZZZ")["reason"] == "unknown symbol ZZZZ"


def test_strike_and_price_forms():
    assert p("buy 1 SPY 600 calls fri")["legs"][0]["strike"] == 600
    assert p("buy 1 SPY 600 strike puts fri")["legs"][0]["right"] == "P"
    at_strike = p("buy 1 SPY calls fri at 600")  # "at N" is the strike only when no other strike is given
    assert at_strike["legs"][0]["strike"] == 600 and at_strike["order_type"] == "MKT"
    at_price = p("buy 1 SPY 600c fri at 3.5")
    assert at_price["limit_price"] == 3.5 and at_price["order_type"] == "LMT"
    for text in ("buy 1 SPY 600c fri for 2", "buy 1 SPY 600c fri limit 2", "buy 1 SPY 600c fri 2 points",
                 "buy 1 SPY 600c fri 2 debit", "buy 1 SPY 600c fri @ 2"):
        assert p(text)["limit_price"] == 2, text
    assert p("buy 1 SPY 600c fri mkt")["order_type"] == "MKT"
    assert (p("sell 1 ES stop 5200")["order_type"], p("sell 1 ES stop 5200")["limit_price"]) == ("STP", 5200)


def test_vertical_legs_follow_direction_not_typed_order():
    assert legs("buy 1 ES call spread 5300/5200 fri") == [("BUY", 5200, "C"), ("SELL", 5300, "C")]
    assert legs("sell 1 ES cs 5200/5300 fri") == [("SELL", 5200, "C"), ("BUY", 5300, "C")]
    assert legs("buy 1 ES put spread 5200/5300 fri") == [("SELL", 5200, "P"), ("BUY", 5300, "P")]
    assert legs("sell 1 ES 5300/5200 ps fri") == [("BUY", 5200, "P"), ("SELL", 5300, "P")]
    assert p("buy 1 ES put spread 5300 fri").get("refuse") and p("buy 1 ES ps 1/2/3 fri").get("refuse")


def test_expiries_relative_to_ref_date():
    assert p("buy 1 SPY 600c today")["expiry"] == "2026-12-07" == p("buy 1 SPY 600c 0dte")["expiry"]
    assert p("buy 1 SPY 600c friday")["expiry"] == "2026-12-11" == p("buy 1 SPY 600c this fri")["expiry"]
    assert p("buy 1 SPY 600c next friday")["expiry"] == "2026-12-18"
    assert p("buy 1 SPY 600c fri", date(2026, 12, 11))["expiry"] == "2026-12-11"  # on or after
    assert p("buy 1 SPY 600c dec 1")["expiry"] == "2027-12-01"  # the next such date
    assert p("buy 1 SPY 600c 12/18")["expiry"] == p("buy 1 SPY 600c dec18")["expiry"] == "2026-12-18"
    assert p("buy 1 ES march")["expiry"] == "2027-03" and p("buy 1 ES Z6")["expiry"] == "2026-12"
    for bad in ("buy 1 SPY 600c", "buy 1 SPY 600c fri dec 18", "buy 1 SPY 600c feb 30"):
        assert p(bad).get("refuse"), bad


def test_corrections_replace_the_field():
    assert p("buy 3 ES no wait 5")["quantity"] == 5
    assert p("buy 2 SPY 600c friday, I mean next friday")["expiry"] == "2026-12-18"
    assert p("buy 2 ES at 5300 actually at market")["order_type"] == "MKT"
    assert p("sell 2 NQ make that MNQ")["symbol"] == "MNQ"


def test_tif_and_not_one_order():
    assert p("buy 1 ES gtc")["tif"] == "GTC" and p("buy 1 ES good till cancelled")["tif"] == "GTC"
    assert p("buy 1 ES")["tif"] == "DAY"
    for bad in ("buy 1 ES and sell 1 NQ", "buy 1 ES and 1 NQ", "buy 1 SPY iron condor fri", "what is ES at?"):
        assert p(bad).get("refuse"), bad


def test_dev_set_meets_the_ci_bar_through_the_cli():
    cases = load_cases(DEV_SET)
    assert len(cases) >= 200
    report = evaluate(cases)
    assert report["schema_failures"] == []
    result = CliRunner().invoke(cli, ["--json", "nl", "eval", str(DEV_SET), "--min-accuracy", "0.995"])
    doc = json.loads(result.output)
    assert result.exit_code == 0 and doc["accuracy"] >= 0.995 and doc["latency_ms"]["p99"] < 100, doc["mismatches"]


def test_eval_fails_under_min_accuracy_and_shows_the_diff(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "buy 2 ES", "ref_date": "2026-12-07", "expect": {"refuse": True}}) + "\n"
                   + json.dumps({"text": "buy 2 ES x", "ref_date": "2026-12-07", "expect": {"refuse": True}}) + "\n")
    result = CliRunner().invoke(cli, ["--json", "nl", "eval", str(bad), "--min-accuracy", "0.9"])
    doc = json.loads(result.output)
    assert result.exit_code == 1 and doc["accuracy"] == 0.5 and doc["mismatches"][0]["line"] == 1


def test_cli_parse_offline_and_refusal_exit():
    ok = CliRunner().invoke(cli, ["--json", "nl", "sell 3 ES put spreads at 5300/5200 for 20 points friday",
                                  "--ref-date", "2026-12-07", "--offline"])
    assert ok.exit_code == 0 and json.loads(ok.output)["intent"]["legs"][1] == {"right": "P", "strike": 5300,
                                                                                "action": "SELL"}
    refused = CliRunner().invoke(cli, ["--json", "nl", "buy 3 FOO", "--propose"])
    assert refused.exit_code == 1 and json.loads(refused.output)["intent"]["refuse"] is True
