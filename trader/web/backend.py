"""What the dashboard reads and writes, over the services' RPCs (no Starlette here: plain calls, testable alone).

The dashboard is an RPC client like the CLI (``trader.cli.core.AppContext``) that connects with the
**approver** role's CURVE key: the services let it read, approve and reject — nothing else, whatever a request
to the web process asks for. Approve goes through ``approve_proposal`` under a request id, the same exactly-once
path as ``mmr approve``; there is no other write.

Calls run one at a time per connection (a ZeroMQ socket is not shared between threads): reads on one
``AppContext``, writes on another, so a slow approval never stalls the page's refresh.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

TRADER = "trader_service"
DATA = "data_service"
STRATEGY = "strategy_service"
WEB_ROLE = "approver"
APPROVE_TIMEOUT = 20.0
EVENTS_SHOWN = 15
RECENT_PROPOSALS = 10
PENDING_SHOWN = 50
DECIDED_STATES = ["APPROVED", "EXECUTED", "REJECTED", "FAILED", "EXPIRED"]
SAMPLES_KEPT = 500  # price samples per symbol for the chart when no bars are stored
CHART_BAR_SIZES = ("1 day", "1 hour", "5 mins", "1 min")  # the first one stored is charted
CHART_BARS = 200


def approver_context() -> Any:
    """An ``AppContext`` that connects with the approver key (``<config>/keys/approver.key_secret``)."""
    from trader.cli.core import AppContext

    app = AppContext(json=True)
    if app.config.curve:
        from trader.messaging.auth import keys_dir, load_client_key

        app._key = load_client_key(keys_dir(app.paths.config_dir) / f"{WEB_ROLE}.key_secret")
    return app


def error_text(exc: BaseException) -> str:
    """``Type: message`` of an error, for a section that could not be read."""
    return f"{type(exc).__name__}: {exc}"


class Backend:
    """The dashboard's calls into the services. ``make_context`` builds an RPC context (tests may pass theirs)."""

    def __init__(self, secret: str, make_context: Callable[[], Any] = approver_context) -> None:
        self._secret = secret.encode()
        self._read_app, self._write_app = make_context(), make_context()
        self._read_lock, self._write_lock = threading.Lock(), threading.Lock()
        self._samples: dict[str, deque[tuple[float, float]]] = {}

    def close(self) -> None:
        for app in (self._read_app, self._write_app):
            app.close()

    def _read_raw(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._read_lock:
            return self._read_app.call(service, method, *args, **kwargs)

    def _read(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """An RPC's answer as the CLI's ``--json`` prints it (times as ISO strings): what the templates show."""
        import json

        from trader.cli.core import to_json

        return json.loads(to_json(self._read_raw(service, method, *args, **kwargs)))

    # ------------------------------------------------------------------ sections (each a dict for a template)
    def account(self) -> dict[str, Any]:
        """Account, positions with P&L and totals (``mmr portfolio``); records each position's price for charts."""
        doc = self._read(TRADER, "portfolio")
        now = time.time()
        for p in doc.get("positions") or []:
            price = p.get("market_price")
            if isinstance(price, int | float) and price > 0:
                self._samples.setdefault(p["symbol"], deque(maxlen=SAMPLES_KEPT)).append((now, float(price)))
        return doc

    def orders(self) -> list[dict[str, Any]]:
        """Open orders at the broker (``mmr orders``)."""
        return self._read(TRADER, "orders")

    def proposals(self) -> dict[str, Any]:
        """Pending proposals (with sizing and risk preview) and the most recent decided ones, newest first."""
        pending = sorted(self._read(TRADER, "proposals", False, limit=PENDING_SHOWN), key=lambda r: r["id"],
                         reverse=True)
        decided = sorted(self._read(TRADER, "proposals", True, states=DECIDED_STATES, limit=RECENT_PROPOSALS),
                         key=lambda r: r["id"], reverse=True)
        for p in pending:
            p["approve_request_id"] = self.approve_request_id(p["id"], p.get("version", 0))
        return {"pending": pending, "decided": decided}

    def strategies(self) -> list[dict[str, Any]]:
        """Live strategies: state and P&L (``mmr strategies``)."""
        return self._read(STRATEGY, "strategies", timeout=10.0)

    def events(self) -> list[dict[str, Any]]:
        """The newest audit events (``mmr events``)."""
        return self._read(TRADER, "events", limit=EVENTS_SHOWN, newest_first=True)

    def price_series(self, symbol: str) -> dict[str, Any]:
        """Prices to chart for ``symbol``: its stored bars' closes when the bar store has some, else the market
        prices this dashboard has seen since it started (one per refresh)."""
        try:
            stored = {r["bar_size"] for r in self._read(DATA, "history_list", symbol)}
        except Exception:  # noqa: BLE001 - data_service down: the seen prices still chart
            stored = set()
        for bar_size in CHART_BAR_SIZES:
            if bar_size in stored:
                frame = self._read_raw(DATA, "history_read", symbol, bar_size, timeout=30.0)
                closes = frame["close"].tail(CHART_BARS)
                return {"symbol": symbol, "source": f"stored {bar_size} bars",
                        "points": [(ts.timestamp(), float(v)) for ts, v in closes.items()]}
        return {"symbol": symbol, "source": "prices seen by this dashboard",
                "points": list(self._samples.get(symbol, ()))}

    # ------------------------------------------------------------------ writes (approver key, audited)
    def approve_request_id(self, proposal_id: int, version: int) -> str:
        """The request id an approval of this proposal version is sent under: the same for every click on the
        same rendered button, so a retried click answers the first one's outcome (exactly once)."""
        digest = hmac.new(self._secret, f"approve:{proposal_id}:{version}".encode(), hashlib.sha256).hexdigest()
        return f"web-{proposal_id}-{digest[:16]}"

    def approve(self, proposal_id: int, request_id: str, key: str | None = None) -> dict[str, Any]:
        """Approve (and so execute) a pending proposal through ``approve_proposal``, exactly once per request id."""
        from trader.trading.intents import check_request_id

        with self._write_lock:
            return self._write_app.order_call(TRADER, "approve_proposal", proposal_id, key or None,
                                              request_id=check_request_id(request_id), timeout=APPROVE_TIMEOUT)

    def reject(self, proposal_id: int, reason: str) -> dict[str, Any]:
        """Reject a pending proposal; the reason is kept with it and says it came from the dashboard."""
        with self._write_lock:
            return self._write_app.call(TRADER, "reject_proposal", proposal_id, f"{reason} (dashboard)")
