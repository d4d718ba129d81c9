"""Scanner and news request handlers of a simulated-gateway client session (mixed into ClientSession).

Layouts as ib_async 2.1 (and the official ibapi client) read and write them at server versions 178-200 (from 201
the protobuf forms are translated to and from these, trader/sim/protobuf.py):

- in  22 reqScannerSubscription: reqId, numberOfRows, instrument, locationCode, scanCode, abovePrice,
  belowPrice, aboveVolume, … (the rest, and the filter/option tag lists, are read and ignored);
  23 cancelScannerSubscription: version, reqId; 24 reqScannerParameters: version.
- out 19 scannerParameters: version, xml; 20 scannerData: version 3, reqId, n, then per row rank, conId, symbol,
  secType, lastTradeDate, strike, right, exchange, currency, localSymbol, marketName, tradingClass, distance,
  benchmark, projection, legsStr.
- in  85 reqNewsProviders; 86 reqHistoricalNews: reqId, conId, providerCodes, start, end, totalResults, options;
  84 reqNewsArticle: reqId, providerCode, articleId, options.
- out 85 newsProviders: n, (code, name)…; 86 historicalNews: reqId, time, provider, articleId, headline;
  87 historicalNewsEnd: reqId, hasMore; 83 newsArticle: reqId, articleType (0 text), text.

A scanner subscription answers once with the ranking at request time (IB refreshes about every 30 s; the
simulator does not) and is remembered until cancelled.
"""

from __future__ import annotations

from datetime import UTC, datetime

from trader.sim import discovery as D
from trader.sim import protocol as P
from trader.sim import replies as R

SCANNER_PARAMETERS, SCANNER_DATA, NEWS_ARTICLE, NEWS_PROVIDERS = 19, 20, 83, 85
HISTORICAL_NEWS, HISTORICAL_NEWS_END = 86, 87
NEWS_ID_NOT_FOUND = 10172  # "Failed to request news article: Article ID not found" (IB's code for an unknown id)


def scanner_data(req_id: int, rows: list[tuple[int, P.WireContract, str, str]]) -> list[object]:
    """scannerData (20): (rank, contract, marketName, distance) rows."""
    out: list[object] = [SCANNER_DATA, 3, req_id, len(rows)]
    for rank, c, market_name, distance in rows:
        out += [rank, c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike or 0, c.right, c.exchange,
                c.currency, c.local_symbol, market_name, c.trading_class, distance, "", "", ""]
    return out


def _ib_news_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.0")


def _parse_news_time(text: str) -> datetime | None:
    """IB's historical-news bounds: 'yyyy-MM-dd HH:mm:ss(.0)' or 'yyyyMMdd HH:mm:ss' (UTC), '' = open."""
    text = text.strip()
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y%m%d %H:%M:%S", "%Y%m%d-%H:%M:%S", "%Y%m%d"):
        try:
            return datetime.strptime(text.split(" UTC")[0], fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return P.parse_ib_time(text, datetime.now(UTC))


class DiscoveryHandlers:
    """Scanner and news handlers; needs ClientSession's ``gw``, ``send`` and state."""

    scanner_subs: set[int]

    def _h_scanner_parameters(self, r: P.FieldReader) -> None:
        self.send([SCANNER_PARAMETERS, 1, D.scanner_parameters_xml()])

    def _h_scanner_subscription(self, r: P.FieldReader) -> None:
        req_id, rows, instrument, location, code = r.int(), r.int(-1), r.str(), r.str(), r.str()
        above_price, below_price, above_volume = r.float(), r.float(), r.int(P.UNSET_INTEGER)
        try:
            hits = D.scan(self.gw.universe, self.gw.market, code, instrument=instrument or "STK",
                          location=location or "STK.US.MAJOR", rows=rows, above_price=above_price,
                          below_price=below_price,
                          above_volume=None if above_volume in (P.UNSET_INTEGER, -1) else float(above_volume))
        except ValueError as exc:
            self.send(R.error_msg(req_id, 165, f"Historical Market Data Service query message:{exc}"))
            return
        self.scanner_subs.add(req_id)
        self.send(scanner_data(req_id, [(h.rank, self.gw.wire(h.contract), h.contract.trading_class,
                                         f"{h.value:.4g}") for h in hits]))

    def _h_cancel_scanner_subscription(self, r: P.FieldReader) -> None:
        r.skip(1)
        self.scanner_subs.discard(r.int())

    def _h_news_providers(self, r: P.FieldReader) -> None:
        out: list[object] = [NEWS_PROVIDERS, len(D.PROVIDERS)]
        for code, name in D.PROVIDERS:
            out += [code, name]
        self.send(out)

    def _h_historical_news(self, r: P.FieldReader) -> None:
        req_id, con_id, providers, start, end, total = r.int(), r.int(), r.str(), r.str(), r.str(), r.int(10)
        items = D.historical_news(self.gw.universe, self.gw.market, con_id, providers, _parse_news_time(start),
                                  _parse_news_time(end), total)
        for i in items:
            self.send([HISTORICAL_NEWS, req_id, _ib_news_time(i.time), i.provider, i.article_id, i.headline])
        self.send([HISTORICAL_NEWS_END, req_id, False])

    def _h_news_article(self, r: P.FieldReader) -> None:
        req_id, provider, article_id = r.int(), r.str(), r.str()
        text = D.article(self.gw.universe, self.gw.market, provider, article_id)
        if text is None:
            self.send(R.error_msg(req_id, NEWS_ID_NOT_FOUND, f"News article {article_id!r} not found"))
            return
        self.send([NEWS_ARTICLE, req_id, 0, text])
