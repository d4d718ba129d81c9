"""A local HTTP server in a thread, for the fakes of outside services (Massive.com, the Anthropic Messages API)
that tests and demos run instead of the real endpoints."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["serve_http"]


@contextlib.contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler], port: int = 0) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port unless given) in a daemon thread; yields the base URL and
    shuts the server down on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
