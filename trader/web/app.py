"""The dashboard's web app (Starlette + Jinja2): server-rendered sections that refresh by polling their partials.

Every request needs the login token ``mmr web`` prints (``/?token=T`` once sets an HttpOnly, SameSite=Strict
cookie; scripts may send ``Authorization: Bearer T``): without it 401. Writes are POSTs that also carry the
page's CSRF token in ``X-CSRF-Token`` (an HMAC of the login token, never in a cookie): without it 403. Only
``127.0.0.1`` / ``localhost`` Host headers are served (DNS rebinding). A section whose service is down shows the
error in place of its table; the page keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from trader.web.backend import Backend, error_text
from trader.web.charts import price_svg

HERE = Path(__file__).resolve().parent
COOKIE = "mmr_web"
SECTIONS = ("account", "orders", "proposals", "strategies", "events", "charts")
REFRESH_MS = {"charts": 15000}  # others: DEFAULT_REFRESH_MS
DEFAULT_REFRESH_MS = 2000
MAX_REASON, MAX_KEY = 500, 200


def csrf_token(token: str) -> str:
    """The CSRF token of a login token: only a page rendered for a logged-in user knows it."""
    return hmac.new(token.encode(), b"mmr-web-csrf", hashlib.sha256).hexdigest()


def _fmt(value: Any, places: int = 2) -> str:
    """A number with thousands separators (``''`` for None), for the templates."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return f"{value:,.{places}f}"
    return str(value)


def _brief(payload: Any, width: int = 140) -> str:
    """An audit event's payload as one short line."""
    text = json.dumps(payload, default=str, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


class Dashboard:
    """Routes over one :class:`Backend`, guarded by one login token."""

    def __init__(self, backend: Backend, token: str) -> None:
        self.backend = backend
        self.token = token
        self.csrf = csrf_token(token)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["money"] = _fmt
        self.templates.env.filters["brief"] = _brief

    # ------------------------------------------------------------------ auth
    def _logged_in(self, request: Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _refused(self, request: Request, write: bool = False) -> Response | None:
        """The refusal for a request without the login token (401) or a write without the CSRF token (403)."""
        if not self._logged_in(request):
            return PlainTextResponse("401: log in with the URL `mmr web` printed (…/?token=…)", status_code=401)
        if write:
            given = request.headers.get("x-csrf-token", "")
            if not given or not hmac.compare_digest(given.encode(), self.csrf.encode()):
                return JSONResponse({"error": {"type": "CSRFRefused",
                                               "message": "a write needs the page's X-CSRF-Token header"}},
                                    status_code=403)
        return None

    # ------------------------------------------------------------------ pages
    async def _section(self, name: str) -> dict[str, Any]:
        """One section's template context: its data, or the error that kept it from loading."""
        try:
            if name == "charts":
                account = await run_in_threadpool(self.backend.account)
                charts = []
                for p in account.get("positions") or []:
                    series = await run_in_threadpool(self.backend.price_series, p["symbol"])
                    charts.append(price_svg(p["symbol"], series["points"], series["source"]))
                return {"name": name, "data": charts, "error": None}
            return {"name": name, "data": await run_in_threadpool(getattr(self.backend, name)), "error": None}
        except Exception as exc:  # noqa: BLE001 - a section that cannot load says why; the page stays up
            return {"name": name, "data": None, "error": error_text(exc)}

    async def index(self, request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return PlainTextResponse("401: wrong login token", status_code=401)
            response = RedirectResponse("/", status_code=303)  # the token leaves the address bar and history
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return response
        if (refused := self._refused(request)) is not None:
            return refused
        sections = {name: await self._section(name) for name in SECTIONS}
        return self.templates.TemplateResponse(request, "index.html", {
            "csrf": self.csrf, "sections": sections, "refresh": REFRESH_MS, "default_refresh": DEFAULT_REFRESH_MS})

    async def partial(self, request: Request) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        name = request.path_params["section"]
        if name not in SECTIONS:
            return PlainTextResponse(f"no section {name!r}", status_code=404)
        return self.templates.TemplateResponse(request, f"{name}.html", {"section": await self._section(name)})

    # ------------------------------------------------------------------ writes
    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body

    async def _write(self, request: Request, act: str) -> Response:
        if (refused := self._refused(request, write=True)) is not None:
            return refused
        from trader.cli.core import error_document

        try:
            proposal_id = int(request.path_params["proposal_id"])
            body = await self._body(request)
            if act == "approve":
                key = body.get("key") or None
                if key is not None and (not isinstance(key, str) or len(key) > MAX_KEY):
                    raise ValueError("key must be a short string")
                result = await run_in_threadpool(self.backend.approve, proposal_id, str(body.get("request_id", "")),
                                                 key)
            else:
                reason = body.get("reason")
                if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
                    raise ValueError(f"a reason (1-{MAX_REASON} characters) is needed to reject")
                result = await run_in_threadpool(self.backend.reject, proposal_id, reason.strip())
        except Exception as exc:  # noqa: BLE001 - every refusal is an error document, like the CLI's
            return JSONResponse(error_document(exc), status_code=400 if isinstance(exc, ValueError) else 409)
        return JSONResponse(json.loads(json.dumps(result, default=str)))

    async def approve(self, request: Request) -> Response:
        return await self._write(request, "approve")

    async def reject(self, request: Request) -> Response:
        return await self._write(request, "reject")


def create_app(backend: Backend, token: str) -> Starlette:
    """The ASGI app: serve it on 127.0.0.1 only (``mmr web`` does)."""
    d = Dashboard(backend, token)
    return Starlette(routes=[
        Route("/", d.index),
        Route("/partial/{section}", d.partial),
        Route("/proposals/{proposal_id:int}/approve", d.approve, methods=["POST"]),
        Route("/proposals/{proposal_id:int}/reject", d.reject, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ], middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])])
