"""Massive.com as a discovery source, against the local fake speaking Massive's documented shapes; and the
typed error when Massive cannot be reached (never an empty result)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from types import SimpleNamespace

import pytest

from trader.data.massive import MassiveClient
from trader.data.massive_fake import FakeMassive, serve_fake_massive, snapshot
from trader.discovery_handlers import DiscoveryHandlers
from trader.errors import SourceUnavailable
from trader.tools import massive_discovery as md
from trader.tools.ideas import compute_metrics, scan_rows
from trader.tools.presets import preset

TODAY = dt.date(2024, 12, 2)


def test_snapshots_become_scored_ideas():
    with serve_fake_massive() as url, MassiveClient("k", base_url=url) as client:
        rows, missing = md.market_rows(client, ["AAPL", "MSFT", "NOPE"], TODAY)
        assert missing == {"NOPE": "no Massive snapshot"}
        snap = snapshot("AAPL")
        m = compute_metrics(rows[0])
        assert rows[0].symbol == "AAPL" and m.price == snap["lastTrade"]["p"]
        assert m.change_pct == pytest.approx(snap["todaysChangePerc"], abs=0.05)  # last is rounded to cents
        assert m.vwap == snap["day"]["vw"] and len(rows[0].closes) == 6  # the fake's two pages of bars
        assert all("Bearer" not in r and "apiKey" not in r for r in FakeMassive.requests)
        out = scan_rows(preset("volatile"), rows, overrides={"min_volume": 0, "min_price": 0})
        assert out["scanned"] == 2 and out["passed"] == 2


def test_movers_and_news_with_sentiment():
    with serve_fake_massive() as url, MassiveClient("k", base_url=url) as client:
        gainers = md.movers(client, num=3)
        losers = md.movers(client, losers=True, num=3)
        assert [r["rank"] for r in gainers] == [1, 2, 3]
        assert gainers[0]["change_pct"] >= gainers[-1]["change_pct"] >= losers[-1]["change_pct"]
        assert losers[0]["change_pct"] <= losers[1]["change_pct"]
        items = md.news_items(client, ["TSLA"], limit=3)
        assert [i["sentiment"] for i in items] == ["positive", "negative", "neutral"]
        assert all("body" not in i for i in items)
        detailed = md.news_items(client, ["TSLA"], limit=1, detail=True, body_chars=80)
        assert len(detailed[0]["body"]) <= 82 and detailed[0]["sentiment_reasoning"] == "positive read"
        assert any("/v2/reference/news" in r and "ticker=TSLA" in r for r in FakeMassive.requests)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handlers(DiscoveryHandlers):
    def __init__(self, base_url: str, key: str = "k") -> None:
        self.config = SimpleNamespace(massive_api_key=key, massive_base_url=base_url)


def test_unreachable_or_refusing_massive_is_a_typed_error():
    down = _Handlers(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(SourceUnavailable, match="unreachable"):
        asyncio.run(down.ideas("momentum", ["AAPL"], source="massive"))
    with serve_fake_massive() as url:
        wrong_key = _Handlers(url, key="wrong")
        with pytest.raises(SourceUnavailable, match="401"):
            asyncio.run(wrong_key.news(["AAPL"], source="massive"))
        fine = _Handlers(url)
        out = asyncio.run(fine.ideas("volatile", ["AAPL", "NVDA"], filters={"min_volume": 0}, source="massive"))
        assert out["source"] == "massive" and out["scanned"] == 2
        assert asyncio.run(fine.movers(source="massive"))["rows"]
