"""A local fake of the Anthropic Messages API (``POST /v1/messages``) for tests and demos: the real SDK is pointed at
it by base URL, so nothing needs a real key. It checks the key (``x-api-key`` or a bearer token), records every request body, and
answers each call with the next queued reply — a dict sent as the message's ``tool_use`` input, a raw string sent
as a text block (a malformed answer), or an int sent as that HTTP status with an error body.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from trader.fake_http import serve_http


class FakeMessages(BaseHTTPRequestHandler):
    """Request handler; the class attributes hold the fake's state (one fake per process at a time)."""

    key: ClassVar[str] = "k"
    replies: ClassVar[list[Any]] = []
    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/messages":
            self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
            return
        # SDK versions send the key as x-api-key or as a bearer token: accept either, nothing else.
        if self.key not in (self.headers.get("x-api-key"), (self.headers.get("authorization") or "")[7:]):
            self._send(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
            return
        FakeMessages.requests.append(body)
        reply = FakeMessages.replies.pop(0) if FakeMessages.replies else "no reply queued"
        if isinstance(reply, int):
            self._send(reply, {"type": "error", "error": {"type": "api_error", "message": f"fake status {reply}"}})
            return
        tool = next((t["name"] for t in body.get("tools") or []), "tool")
        content = ([{"type": "tool_use", "id": "toolu_fake1", "name": tool, "input": reply}]
                   if isinstance(reply, dict) else [{"type": "text", "text": str(reply)}])
        self._send(200, {"id": f"msg_fake{len(FakeMessages.requests)}", "type": "message", "role": "assistant",
                         "model": body.get("model", "fake"), "content": content,
                         "stop_reason": "tool_use" if isinstance(reply, dict) else "end_turn",
                         "stop_sequence": None, "usage": {"input_tokens": 100, "output_tokens": 200}})


@contextlib.contextmanager
def serve_fake_messages(replies: list[Any], key: str = "k", port: int = 0) -> Iterator[str]:
    """Serve the fake on 127.0.0.1 (a free port unless given) in a thread with these replies queued; yields
    its base URL. `FakeMessages.requests` holds the request bodies received."""
    FakeMessages.key, FakeMessages.replies, FakeMessages.requests = key, list(replies), []
    with serve_http(FakeMessages, port) as url:
        yield url

