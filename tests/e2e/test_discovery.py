"""Discovery end to end on the simulated gateway: ``ideas``, ``scan``, ``movers``, ``news``, ``depth`` through
``mmr --json`` in a subprocess, as an agent runs them (one platform for the module)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trader.testing import cli_json as run
from trader.testing import cli_ok as ok
from trader.testing import eventually, mmr
from trader.tools.presets import PRESETS

SCAN_SET = "AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,JPM,XOM,JNJ,SPY,QQQ,AMD,NFLX,INTC,BAC,WMT,KO,PEP,DIS"


def test_ideas_presets_on_the_sim(plat):
    listed = ok(plat, "ideas", "--presets")
    assert [p["name"] for p in listed["presets"]] == list(PRESETS)
    assert listed["presets"][0]["filters"] == {"min_price": 5, "min_volume": 500000, "min_change": 2}
    symbols = SCAN_SET.split(",")
    with plat.client("trader_service", timeout=60) as client:  # the other presets over raw RPC: faster
        # each preset's filters and scores are unit-tested (tests/tools/test_ideas.py); here two more presets
        outs = {name: client.rpc().ideas(preset=name, symbols=symbols, num=5) for name in ("mean-reversion", "gap-down")}
    outs["momentum"] = ok(plat, "ideas", "momentum", "--tickers", SCAN_SET, "--num", "5")
    for name, out in outs.items():
        assert out["preset"] == name and out["source"] == "ib"
        assert out["scanned"] == 20 - out.get("missing", {}).get("count", 0) >= 18
        assert len(out["ideas"]) == min(5, out["passed"])
        scores = [i["score"] for i in out["ideas"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 100 for s in scores)
        for i in out["ideas"]:
            assert i["label"] in ("BUY", "SELL", "WATCH")
            assert abs(sum(i["points"].values()) - i["score"]) < 0.35  # the numbers behind the score
    # loosened filters: every symbol with data passes, ranked; the RSI etc. come from 60 sessions of bars
    loose = ok(plat, "ideas", "volatile", "--tickers", SCAN_SET, "--min-price", "0", "--min-volume", "0",
               "--num", "10", "--detail")
    assert loose["passed"] == loose["scanned"] and len(loose["ideas"]) == 10
    m = loose["ideas"][0]["metrics"]
    assert m["rsi"] is not None and m["sma50"] is not None and m["rvol"] is not None
    assert len(json.dumps(loose["ideas"][:1])) > len(json.dumps({k: v for k, v in loose["ideas"][0].items()
                                                                  if k != "metrics"}))
    # what an agent pays: one `ideas` call with 10 results stays within 1,000 tokens (~4 chars each), with the
    # newest headline per idea too
    for extra in ((), ("--news",)):
        res = mmr(plat.env, "--json", "ideas", "volatile", "--tickers", SCAN_SET, "--min-price", "0",
                  "--min-volume", "0", "--num", "10", *extra, timeout=120)
        assert res.returncode == 0 and len(json.loads(res.stdout)["ideas"]) == 10, res.stdout + res.stderr
        assert len(res.stdout) / 4 <= 1000, (extra, len(res.stdout))


def test_ideas_for_unknown_symbols_is_an_error_not_no_ideas(plat):
    code, doc = run(plat, "ideas", "momentum", "--tickers", "NOSUCH1,NOSUCH2")
    assert code == 1 and doc["error"]["type"] == "SourceUnavailable"
    code, doc = run(plat, "ideas", "moonshot", "--tickers", "AAPL")
    assert code == 2
    code, doc = run(plat, "news", "AAPL", "--source", "massive")  # no Massive key configured
    assert code == 1 and doc["error"]["type"] == "ConfigError"


def test_scan_movers_news_depth(plat, tmp_path):
    gainers = ok(plat, "scan", "gainers", "--num", "5")
    assert gainers["scan"] == "TOP_PERC_GAIN" and len(gainers["rows"]) == 5
    changes = [r["change_pct"] for r in gainers["rows"]]
    assert [r["rank"] for r in gainers["rows"]] == [1, 2, 3, 4, 5]
    # ranked by the gateway at scan time; the prices shown are a snapshot taken just after (the sim's clock runs)
    assert all(a >= b - 0.1 for a, b in zip(changes, changes[1:], strict=False))
    active = ok(plat, "scan", "active", "--num", "3", "--above-price", "100")
    assert all(r["last"] > 100 for r in active["rows"])
    params = ok(plat, "scan", "--params")
    assert "TOP_PERC_GAIN" in params["scan_codes"] and "STK.US.MAJOR" in params["locations"]
    losers = ok(plat, "movers", "--losers", "--num", "3")
    assert losers["source"] == "ib" and len(losers["rows"]) == 3
    worst = [r["change_pct"] for r in losers["rows"]]
    assert all(a <= b + 0.1 for a, b in zip(worst, worst[1:], strict=False)) and worst[0] <= changes[-1]
    fx = ok(plat, "movers", "--market", "forex")
    assert fx["rows"] and all(r["symbol"][:3] != r["symbol"][3:] for r in fx["rows"])
    indices = ok(plat, "movers", "--market", "indices")
    assert indices["rows"] and {r["symbol"] for r in indices["rows"]} <= {"SPX", "NDX", "RUT", "VIX"}

    news = ok(plat, "news", "AAPL", "MSFT", "--limit", "4")
    assert len(news["items"]) == 4 and {i["symbol"] for i in news["items"]} <= {"AAPL", "MSFT"}
    assert all("body" not in i for i in news["items"])  # bodies only with --detail
    detailed = ok(plat, "news", "AAPL", "--limit", "2", "--detail", "--body-chars", "120")
    assert all(0 < len(i["body"]) <= 122 for i in detailed["items"])
    since = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    recent = ok(plat, "news", "AAPL", "--since", since, "--limit", "20")
    assert all(i["time"] >= since for i in recent["items"])
    held = ok(plat, "news", "--held")
    assert held["items"] == [] and "no stock or option positions" in held["note"]  # a fresh account holds nothing
    ok(plat, "buy", "AAPL", "--quantity", "1")
    def held_news():  # the position lands after the fill
        doc = ok(plat, "news", "--held", "--limit", "5")
        return doc if doc["items"] else None

    held = eventually(held_news, timeout=60)
    assert held["symbols"] == ["AAPL"] and held["items"] and {i["symbol"] for i in held["items"]} == {"AAPL"}

    png = tmp_path / "aapl_depth.png"
    book = ok(plat, "depth", "AAPL", "--rows", "5", "--chart", str(png))
    quote = ok(plat, "snapshot", "AAPL")
    assert len(book["bids"]) == 5 and len(book["asks"]) == 5
    assert book["bids"][0]["price"] < book["asks"][0]["price"]
    assert abs(book["asks"][0]["price"] - book["bids"][0]["price"] - (quote["ask"] - quote["bid"])) < 0.5
    assert Path(book["chart"]) == png and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # SMART depth on one exchange's contract, the chart in the reports directory by default
    smart = ok(plat, "depth", "MSFT", "--rows", "3", "--smart", "--exchange", "island")
    assert smart["smart"] is True and smart["exchange"] == "ISLAND" and len(smart["bids"]) == 3
    chart = Path(smart["chart"])
    assert chart.parent == plat.home / "reports" and chart.stat().st_size > 1000
    levels = ok(plat, "depth", "MSFT", "--rows", "2", "--no-chart")
    assert "chart" not in levels and len(levels["asks"]) == 2
    table = mmr(plat.env, "depth", "MSFT", "--rows", "2", timeout=60)  # a person's view: the book as a table
    assert table.returncode == 0 and "bid size" in table.stdout and "MSFT depth" in table.stdout
    assert "chart:" in table.stdout and "depth_MSFT_" in table.stdout.replace("\n", "")  # Rich may wrap it
