"""Scanner, news and depth from the simulated gateway, read by ib_async and by the official ibapi client."""

from __future__ import annotations

import asyncio
import threading
import xml.etree.ElementTree as ET

from ib_async import ScannerSubscription, Stock

from trader.sim import discovery as D
from trader.sim import testkit
from trader.testing import run_async, until


def _change(q) -> float:
    return (q.last - q.close) / q.close * 100


@run_async
async def test_scanner_news_and_depth_through_ib_async(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        sub = ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode="TOP_PERC_GAIN",
                                  numberOfRows=10, abovePrice=5)
        rows = await asyncio.wait_for(ib.reqScannerDataAsync(sub), 5)
        assert [r.rank for r in rows] == list(range(10))
        changes = [_change(gw.market.quote(r.contractDetails.contract.conId)) for r in rows]
        assert changes == sorted(changes, reverse=True)  # ranked from the gateway's own market
        every = [_change(gw.market.quote(c.con_id)) for c in gw.universe
                 if c.sec_type == "STK" and c.currency == "USD" and gw.market.quote(c.con_id).last > 5]
        assert changes[0] == max(every)
        assert all(r.contractDetails.contract.secType == "STK" for r in rows)
        losers = await ib.reqScannerDataAsync(ScannerSubscription(instrument="ETF.US", locationCode="STK.US",
                                                                  scanCode="TOP_PERC_LOSE", numberOfRows=3))
        assert len(losers) == 3
        assert all(gw.universe.by_con_id(r.contractDetails.contract.conId).industry == "Funds" for r in losers)
        await until(lambda: not gw.sessions[1].scanner_subs)  # reqScannerDataAsync cancels; the gateway forgets

        xml = await asyncio.wait_for(ib.reqScannerParametersAsync(), 5)
        codes = [e.text for e in ET.fromstring(xml).iter("scanCode")]
        assert codes == list(D.SCAN_CODES)

        providers = await asyncio.wait_for(ib.reqNewsProvidersAsync(), 5)
        assert [p.code for p in providers] == [code for code, _ in D.PROVIDERS]
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        news = await ib.reqHistoricalNewsAsync(aapl.conId, "BRFG+DJNL", "", "", 10)
        assert news and {n.providerCode for n in news} <= {"BRFG", "DJNL"}
        assert all(n.headline for n in news) and [n.time for n in news] == sorted((n.time for n in news),
                                                                                 reverse=True)
        again = await ib.reqHistoricalNewsAsync(aapl.conId, "BRFG+DJNL", "", "", 10)
        assert [(n.articleId, n.headline) for n in again] == [(n.articleId, n.headline) for n in news]
        body = await asyncio.wait_for(ib.reqNewsArticleAsync(news[0].providerCode, news[0].articleId), 5)
        assert body.articleType == 0 and "AAPL" in body.articleText and news[0].headline in body.articleText

        ticker = ib.reqMktDepth(aapl, 5)
        await until(lambda: len(ticker.domBids) == 5 and len(ticker.domAsks) == 5)
        q = gw.market.quote(aapl.conId)
        assert (ticker.domBids[0].price, ticker.domAsks[0].price) == (q.bid, q.ask)  # the book agrees
        assert all(a.price < b.price for a, b in zip(ticker.domAsks, ticker.domAsks[1:], strict=False))
        ib.cancelMktDepth(aapl)


def _ibapi_session(port: int, con_id: int) -> dict:
    """One official-ibapi client run in a thread: scanner, news providers, historical news, an article, depth."""
    from ibapi.client import EClient
    from ibapi.contract import Contract
    from ibapi.scanner import ScannerSubscription as IbScannerSubscription
    from ibapi.wrapper import EWrapper

    got: dict = {"scan": [], "news": [], "errors": [], "book": {0: {}, 1: {}}}
    done = threading.Event()

    class App(EWrapper, EClient):
        def __init__(self) -> None:
            EClient.__init__(self, self)

        def nextValidId(self, orderId: int) -> None:  # noqa: N802 - ibapi's callback names
            sub = IbScannerSubscription()
            sub.instrument, sub.locationCode, sub.scanCode, sub.numberOfRows = "STK", "STK.US.MAJOR", \
                "MOST_ACTIVE", 5
            self.reqScannerSubscription(7, sub, [], [])

        def scannerData(self, reqId, rank, contractDetails, distance, benchmark, projection, legsStr):  # noqa: N802
            got["scan"].append((rank, contractDetails.contract.symbol, contractDetails.contract.conId))

        def scannerDataEnd(self, reqId):  # noqa: N802
            self.cancelScannerSubscription(7)
            self.reqNewsProviders()

        def newsProviders(self, newsProviders):  # noqa: N802
            got["providers"] = [p.code for p in newsProviders]
            self.reqHistoricalNews(8, con_id, "BRFG", "", "", 5, [])

        def historicalNews(self, requestId, time, providerCode, articleId, headline):  # noqa: N802
            got["news"].append((time, providerCode, articleId, headline))

        def historicalNewsEnd(self, requestId, hasMore):  # noqa: N802
            self.reqNewsArticle(9, "BRFG", got["news"][0][2], [])

        def newsArticle(self, requestId, articleType, articleText):  # noqa: N802
            got["article"] = articleText
            contract = Contract()
            contract.conId, contract.exchange = con_id, "SMART"
            self.reqMktDepth(10, contract, 5, False, [])

        def updateMktDepth(self, reqId, position, operation, side, price, size):  # noqa: N802
            book = got["book"][side]  # side 0 = ask, 1 = bid; operation 0 insert, 1 update, 2 delete
            if operation == 2:
                book.pop(position, None)
            else:
                book[position] = (float(price), float(size))
            if len(got["book"][0]) == 5 and len(got["book"][1]) == 5:
                self.cancelMktDepth(10, False)
                done.set()

        def error(self, reqId, *args):  # the signature changed across ibapi versions
            got["errors"].append((reqId, args))

    app = App()
    app.connect("127.0.0.1", port, 11)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    done.wait(30)  # generous: a loaded CI worker
    app.disconnect()
    thread.join(5)
    return got


@run_async
async def test_official_ibapi_client_reads_scanner_and_news(tmp_path):
    async with testkit.connected(tmp_path) as (gw, ib):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        got = await asyncio.to_thread(_ibapi_session, gw.port, aapl.conId)
        volumes = [gw.market.quote(con_id).volume for _rank, _sym, con_id in got["scan"]]
        assert [r for r, _s, _c in got["scan"]] == list(range(5))
        assert volumes == sorted(volumes, reverse=True)
        assert got["providers"] == [code for code, _ in D.PROVIDERS]
        assert got["news"] and all(p == "BRFG" for _t, p, _a, _h in got["news"])
        assert got["news"][0][3] in got["article"]
        # the depth book: five levels a side, best first, around the gateway's own quote
        asks = [got["book"][0][i] for i in range(5)]
        bids = [got["book"][1][i] for i in range(5)]
        assert [p for p, _ in asks] == sorted(p for p, _ in asks) and [p for p, _ in bids] == sorted(
            (p for p, _ in bids), reverse=True)
        assert bids[0][0] < asks[0][0] and all(size > 0 for _, size in asks + bids)
        q = gw.market.quote(aapl.conId)
        assert abs((asks[0][0] + bids[0][0]) / 2 - (q.ask + q.bid) / 2) < 1.0  # the book moves with the quote
        assert not [e for e in got["errors"] if e[0] in (7, 8, 9, 10)]
