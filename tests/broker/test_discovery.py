"""IB discovery calls fail loudly: a source that does not answer is SourceUnavailable, never an empty list."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from trader.broker import discovery as ibd
from trader.errors import ContractNotFound, SourceUnavailable


class SilentIB:
    """An IB that accepts requests and never answers."""

    async def reqTickersAsync(self, *contracts):  # noqa: N802 - ib_async's name
        await asyncio.sleep(3600)

    async def reqScannerDataAsync(self, sub):  # noqa: N802
        await asyncio.sleep(3600)

    async def reqNewsProvidersAsync(self):  # noqa: N802
        return []


class NoResolver:
    async def resolve(self, symbol, *a, **kw):
        raise ContractNotFound(f"no contract matches {symbol}")


def test_silent_snapshot_and_scanner_are_source_unavailable():
    contract = SimpleNamespace(conId=1, symbol="AAPL")
    with pytest.raises(SourceUnavailable, match="no snapshot"):
        asyncio.run(ibd.snapshots(SilentIB(), [contract], timeout=0.05))
    with pytest.raises(SourceUnavailable, match="did not answer"):
        asyncio.run(ibd.scanner(SilentIB(), "gainers", timeout=0.05))


def test_a_book_that_never_fills_is_source_unavailable_and_the_subscription_is_cancelled():
    class NoDepthIB:
        cancelled = []

        def reqMktDepth(self, contract, rows, smart):  # noqa: N802
            return SimpleNamespace(domBids=[], domAsks=[])

        def cancelMktDepth(self, contract, smart):  # noqa: N802
            self.cancelled.append(contract.symbol)

    ib = NoDepthIB()
    with pytest.raises(SourceUnavailable, match="no market depth for AAPL.*Level II"):
        asyncio.run(ibd.depth(ib, SimpleNamespace(conId=265598, symbol="AAPL"), rows=5, wait=0.1))
    assert ib.cancelled == ["AAPL"]


def test_nothing_resolvable_is_an_error_and_no_providers_is_too():
    with pytest.raises(SourceUnavailable, match="no data for any of the 2 symbols"):
        asyncio.run(ibd.market_rows(SilentIB(), NoResolver(), ["XX", "YY"], ibd.DailyBarCache(), date(2026, 3, 2)))
    with pytest.raises(SourceUnavailable, match="no news providers"):
        asyncio.run(ibd.news(SilentIB(), NoResolver(), ["AAPL"]))


class SilentNewsIB:
    """An IB with a news provider whose historical news (or article) request is never answered."""

    def __init__(self, headlines: bool) -> None:
        self.headlines = headlines

    async def reqNewsProvidersAsync(self):  # noqa: N802
        return [SimpleNamespace(code="BRFG")]

    async def reqHistoricalNewsAsync(self, *args):  # noqa: N802
        if not self.headlines:
            await asyncio.sleep(3600)
        return [SimpleNamespace(time=datetime(2026, 3, 2, 14, 30, tzinfo=UTC), providerCode="BRFG",
                                articleId="BRFG$1", headline="AAPL headline")]

    async def reqNewsArticleAsync(self, *args):  # noqa: N802
        await asyncio.sleep(3600)


class OneResolver:
    async def resolve(self, symbol, *a, **kw):
        return {"symbol": symbol}

    async def qualified(self, contract):
        return SimpleNamespace(conId=265598, symbol=contract["symbol"])


def test_silent_news_and_article_are_source_unavailable_not_a_hang():
    with pytest.raises(SourceUnavailable, match="historical news for AAPL did not answer"):
        asyncio.run(ibd.news(SilentNewsIB(headlines=False), OneResolver(), ["AAPL"], timeout=0.05))
    got = asyncio.run(ibd.news(SilentNewsIB(headlines=True), OneResolver(), ["AAPL"], timeout=0.05))
    assert [i["headline"] for i in got] == ["AAPL headline"]
    with pytest.raises(SourceUnavailable, match="no article BRFG"):
        asyncio.run(ibd.news(SilentNewsIB(headlines=True), OneResolver(), ["AAPL"], detail=True, timeout=0.05))


def test_daily_bar_cache_is_per_day():
    cache = ibd.DailyBarCache()
    cache.put(7, date(2026, 3, 2), [{"close": 1.0}])
    assert cache.get(7, date(2026, 3, 2)) == [{"close": 1.0}]
    assert cache.get(7, date(2026, 3, 3)) is None and cache.get(8, date(2026, 3, 2)) is None


def test_every_discovery_read_refuses_with_broker_not_ready_when_ib_is_down():
    """A BrokerSession that never connected (nothing listens on its port): each discovery RPC on IB raises the
    typed BrokerNotReady before it asks anything — never an empty list that reads as 'nothing found'."""
    import socket

    from trader.broker.connection import BrokerNotReady, BrokerSession
    from trader.discovery_handlers import DiscoveryHandlers

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Down(DiscoveryHandlers):
        def __init__(self) -> None:
            self.session = BrokerSession("127.0.0.1", port, 1)
            self.config = SimpleNamespace(massive_api_key="", massive_base_url="")
            self.broker = SimpleNamespace(resolver=NoResolver(), positions=lambda: [])

    svc = Down()
    calls = {
        "ideas": lambda: svc.ideas("momentum", ["AAPL"], source="ib"), "scan": lambda: svc.scan("gainers"),
        "scan --params": svc.scan_params, "movers": lambda: svc.movers(source="ib"),
        "movers indices": lambda: svc.movers(market="indices"), "news": lambda: svc.news(["AAPL"], source="ib"),
        "news --held": lambda: svc.news(held=True, source="ib"), "depth": lambda: svc.depth("AAPL"),
    }
    for name, call in calls.items():
        with pytest.raises(BrokerNotReady, match="broker not connected.*nothing was sent") as refused:
            asyncio.run(call())
            pytest.fail(f"{name} answered without a broker")
        assert "order" not in str(refused.value), (name, refused.value)  # a read is not an order


def test_news_held_reads_stocks_and_option_underlyings_and_names_the_rest():
    from trader.discovery_handlers import DiscoveryHandlers

    class Held(DiscoveryHandlers):
        def __init__(self, positions) -> None:
            ib = SilentNewsIB(headlines=True)
            self.session = SimpleNamespace(require_ready=lambda opening: None, ib=ib)
            self.config = SimpleNamespace(massive_api_key="", massive_base_url="")
            self.broker = SimpleNamespace(resolver=OneResolver(), positions=lambda: positions)

    book = [SimpleNamespace(symbol="MSFT", sec_type="STK"), SimpleNamespace(symbol="AAPL", sec_type="OPT"),
            SimpleNamespace(symbol="ES", sec_type="FUT"), SimpleNamespace(symbol="EUR", sec_type="CASH")]
    out = asyncio.run(Held(book).news(held=True, source="ib"))
    assert out["symbols"] == ["AAPL", "MSFT"] and {i["symbol"] for i in out["items"]} == {"AAPL", "MSFT"}
    assert out["skipped"] == ["ES FUT", "EUR CASH"]
    only_futures = asyncio.run(Held(book[2:3]).news(held=True, source="ib"))
    assert only_futures["items"] == [] and only_futures["skipped"] == ["ES FUT"]
    assert "no stock or option positions" in only_futures["note"]
