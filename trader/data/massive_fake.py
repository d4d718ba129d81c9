"""A local stand-in for the Massive.com (Polygon) aggregates API, replaying the documented response format:
``/v2/aggs/ticker/{T}/range/{n}/{unit}/{from}/{to}`` with the key in an ``Authorization: Bearer`` header, two
pages joined by ``next_url``, a 429 when throttled, 401 for a wrong key and 404 for an unknown ticker. A key in the
URL (``apiKey=``) is refused with 400: MMR must never put it there. Tests (and offline demos) point
``massive_base_url`` at it; the key it accepts is ``k`` unless ``serve_fake_massive(key=…)`` says otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

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


@contextlib.contextmanager
def serve_fake_massive(port: int = 0, key: str = "k") -> Iterator[str]:
    """Run the fake on 127.0.0.1 (a free port unless given) in a thread, accepting ``key``; yields its base URL."""
    FakeMassive.requests = []
    FakeMassive.throttle = False
    FakeMassive.key = key
    httpd = ThreadingHTTPServer(("127.0.0.1", port), FakeMassive)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
