"""A local stand-in for the Massive.com (Polygon) aggregates API, replaying the documented response format:
``/v2/aggs/ticker/{T}/range/{n}/{unit}/{from}/{to}`` with the key in an ``Authorization: Bearer`` header, two
pages joined by ``next_url``, a 429 when throttled, 401 for a wrong key and 404 for an unknown ticker; and for
discovery the ticker snapshots (``/v2/snapshot/locale/us/markets/stocks/tickers``, ``…/gainers``, ``…/losers``) and
news with sentiment insights (``/v2/reference/news``), deterministic per ticker. A key in the
URL (``apiKey=``) is refused with 400: MMR must never put it there. Tests (and offline demos) point
``massive_base_url`` at it; the key it accepts is ``k`` unless ``serve_fake_massive(key=…)`` says otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from trader.fake_http import serve_http

T0 = int(dt.datetime(2024, 11, 29, 14, 30, tzinfo=dt.UTC).timestamp() * 1000)


def _bar(i: int) -> dict:
    return {"v": 100 + i, "vw": 10.5, "o": 10.0, "c": 11.0, "h": 12.0, "l": 9.0, "t": T0 + i * 60_000, "n": 7}


class FakeMassive(BaseHTTPRequestHandler):
    """Two pages of 3 bars; the first request of each path answers 429 once when `throttle` is set."""

    requests: list[str] = []
    throttle = False
    key = "k"
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        query = parse_qs(url.query)
        type(self).requests.append(self.path)
        if "apiKey" in query:
            return self._send(400, {"status": "ERROR", "error": "API key in the URL: send it in a header"})
        if self.headers.get("Authorization") != f"Bearer {type(self).key}":
            return self._send(401, {"status": "ERROR", "request_id": "r1", "error": "Unknown API Key"})
        if type(self).throttle and len(type(self).requests) == 1:
            return self._send(429, {"status": "ERROR", "error": "You've exceeded the maximum requests per minute"})
        if url.path.startswith(("/v2/snapshot/", "/v2/reference/news")):
            return self._send(200, _discovery(url.path, query))
        if "/ticker/NOPE/" in url.path:
            return self._send(404, {"status": "NOT_FOUND", "request_id": "r2", "message": "Ticker not found"})
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        if "cursor" not in query:
            return self._send(200, {"ticker": "AAPL", "queryCount": 3, "resultsCount": 3, "adjusted": True,
                                    "results": [_bar(i) for i in range(3)], "status": "OK", "request_id": "a",
                                    "count": 3, "next_url": f"{host}{url.path}?cursor=page2"})
        return self._send(200, {"ticker": "AAPL", "queryCount": 3, "resultsCount": 3, "adjusted": True,
                                "results": [_bar(i) for i in range(3, 6)], "status": "OK", "request_id": "b",
                                "count": 3})


MOVER_TICKERS = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "META", "AMD", "NFLX", "INTC", "PLTR")


def snapshot(ticker: str) -> dict:
    """A deterministic ticker snapshot in the documented shape (day, prevDay, lastTrade, todaysChangePerc)."""
    h = zlib.crc32(ticker.encode())
    prev = 20.0 + h % 200
    change = ((h >> 8) % 1500 - 500) / 100  # -5 % … +10 %
    gap = ((h >> 4) % 900 - 300) / 100  # -3 % … +6 %
    last, open_ = round(prev * (1 + change / 100), 2), round(prev * (1 + gap / 100), 2)
    high, low = round(max(last, open_) * 1.01, 2), round(min(last, open_) * 0.99, 2)
    volume = 200_000.0 + (h % 50) * 100_000
    return {"ticker": ticker, "todaysChange": round(last - prev, 2), "todaysChangePerc": round(change, 4),
            "updated": T0 * 1_000_000,
            "day": {"o": open_, "h": high, "l": low, "c": last, "v": volume, "vw": round((high + low + last) / 3, 4)},
            "prevDay": {"o": prev, "h": prev * 1.01, "l": prev * 0.99, "c": prev, "v": 1_000_000.0, "vw": prev},
            "lastTrade": {"p": last, "s": 100, "t": T0 * 1_000_000, "x": 4},
            "lastQuote": {"P": last + 0.01, "S": 2, "p": last - 0.01, "s": 3, "t": T0 * 1_000_000}}


def news_item(i: int, ticker: str) -> dict:
    """A news article in the documented shape, with a sentiment insight for ``ticker``."""
    sentiment = ("positive", "negative", "neutral")[i % 3]
    return {"id": f"fake{i}", "publisher": {"name": "Fake Wire", "homepage_url": "https://example.com"},
            "title": f"{ticker} headline {i}", "author": "Staff",
            "published_utc": f"2024-11-{29 - i:02d}T14:00:00Z", "article_url": f"https://example.com/{ticker}/{i}",
            "tickers": [ticker], "description": f"What happened to {ticker} on day {i}. " * 20,
            "keywords": ["markets"],
            "insights": [{"ticker": ticker, "sentiment": sentiment, "sentiment_reasoning": f"{sentiment} read"}]}


def _discovery(path: str, query: dict) -> dict:
    if path.endswith("/stocks/tickers"):
        tickers = [t for t in (query.get("tickers") or [""])[0].split(",") if t and t != "NOPE"]
        return {"status": "OK", "count": len(tickers), "tickers": [snapshot(t) for t in tickers]}
    if path.endswith(("/gainers", "/losers")):
        rows = sorted((snapshot(t) for t in MOVER_TICKERS), key=lambda r: r["todaysChangePerc"],
                      reverse=path.endswith("/gainers"))
        return {"status": "OK", "tickers": rows}
    ticker = (query.get("ticker") or ["AAPL"])[0]
    limit = int((query.get("limit") or ["10"])[0])
    return {"status": "OK", "count": min(limit, 5), "results": [news_item(i, ticker) for i in range(min(limit, 5))]}


@contextlib.contextmanager
def serve_fake_massive(port: int = 0, key: str = "k") -> Iterator[str]:
    """Run the fake on 127.0.0.1 (a free port unless given) in a thread, accepting ``key``; yields its base URL."""
    FakeMassive.requests = []
    FakeMassive.throttle = False
    FakeMassive.key = key
    with serve_http(FakeMassive, port) as url:
        yield url
