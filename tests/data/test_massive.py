"""Massive.com client against a local HTTP server replaying the documented aggregates format."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from trader.data.bars import BarStore
from trader.data.massive import MassiveClient, MassiveError, api_key
from trader.errors import ConfigError

T0 = int(dt.datetime(2024, 11, 29, 14, 30, tzinfo=dt.UTC).timestamp() * 1000)


def _bar(i: int) -> dict:
    return {"v": 100 + i, "vw": 10.5, "o": 10.0, "c": 11.0, "h": 12.0, "l": 9.0, "t": T0 + i * 60_000, "n": 7}


class FakeMassive(BaseHTTPRequestHandler):
    """Two pages of 3 bars; the first request of each path answers 429 once when `throttle` is set."""

    requests: list[str] = []
    throttle = False
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
        if query.get("apiKey") != ["k"]:
            return self._send(401, {"status": "ERROR", "request_id": "r1", "error": "Unknown API Key"})
        if type(self).throttle and len(type(self).requests) == 1:
            return self._send(429, {"status": "ERROR", "error": "You've exceeded the maximum requests per minute"})
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


@pytest.fixture
def server() -> Iterator[str]:
    FakeMassive.requests = []
    FakeMassive.throttle = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeMassive)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_pagination_and_ingest(server: str, tmp_path) -> None:  # noqa: ANN001
    with MassiveClient("k", base_url=server) as client:
        frame = client.aggregates("aapl", "1 min", dt.date(2024, 11, 29), dt.date(2024, 11, 29))
    assert len(frame) == 6 and frame.index.tz is not None and frame.index.is_monotonic_increasing
    assert frame.index[0] == dt.datetime(2024, 11, 29, 14, 30, tzinfo=dt.UTC)
    assert list(frame["volume"]) == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    assert "/v2/aggs/ticker/AAPL/range/1/minute/2024-11-29/2024-11-29" in FakeMassive.requests[0]
    assert "cursor=page2" in FakeMassive.requests[1] and "apiKey=k" in FakeMassive.requests[1]
    store = BarStore.open(tmp_path)
    assert store.ingest(265598, "1 min", "massive", frame) == 6
    assert store.ingest(265598, "1 min", "massive", frame) == 0


def test_429_is_retried_with_backoff(server: str) -> None:
    FakeMassive.throttle = True
    waits: list[float] = []
    with MassiveClient("k", base_url=server, sleep=waits.append) as client:
        frame = client.aggregates("AAPL", "1 day", dt.date(2024, 11, 1), dt.date(2024, 11, 29))
    assert len(frame) == 6 and len(waits) == 1 and waits[0] >= 1
    assert client.requests == 3


def test_errors_are_clear(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with MassiveClient("wrong", base_url=server) as client, pytest.raises(MassiveError, match="401: Unknown API Key"):
        client.aggregates("AAPL", "1 day", dt.date(2024, 11, 1), dt.date(2024, 11, 29))
    with MassiveClient("k", base_url=server) as client, pytest.raises(MassiveError, match="Ticker not found"):
        client.aggregates("NOPE", "1 day", dt.date(2024, 11, 1), dt.date(2024, 11, 29))
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="MASSIVE_API_KEY"):
        api_key("")
    monkeypatch.setenv("MASSIVE_API_KEY", "from-env")
    assert api_key("") == "from-env"
