"""Massive.com (formerly Polygon.io) aggregates: bars over the documented REST API via ``httpx``.

``GET {base}/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}?adjusted=true&sort=asc&limit=50000``
returns ``{"status": "OK", "results": [{"t": ms, "o", "h", "l", "c", "v", "vw", "n"}, …], "next_url": …}``;
a page with ``next_url`` is followed. HTTP 429 is retried with exponential backoff (tenacity); other errors raise
`MassiveError` with the vendor's message. The API key comes from ``massive_api_key`` in trader.yaml or the
``MASSIVE_API_KEY`` environment variable and travels only in the ``Authorization: Bearer`` header (never in a URL,
which HTTP libraries, proxies and servers log).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trader.errors import ConfigError, MMRError

if TYPE_CHECKING:
    import pandas

DEFAULT_BASE_URL = "https://api.massive.com"
PAGE_LIMIT = 50_000
MAX_ATTEMPTS = 6

# IB-style bar sizes (MMR's vocabulary) → (multiplier, timespan).
BAR_SIZES: dict[str, tuple[int, str]] = {
    "1 secs": (1, "second"), "5 secs": (5, "second"), "10 secs": (10, "second"), "30 secs": (30, "second"),
    "1 min": (1, "minute"), "2 mins": (2, "minute"), "3 mins": (3, "minute"), "5 mins": (5, "minute"),
    "10 mins": (10, "minute"), "15 mins": (15, "minute"), "30 mins": (30, "minute"), "1 hour": (1, "hour"),
    "2 hours": (2, "hour"), "4 hours": (4, "hour"), "1 day": (1, "day"),
}


class MassiveError(MMRError):
    """Massive.com refused a request (bad key, unknown ticker, plan limits …)."""


class _RateLimited(Exception):
    """HTTP 429: retried with backoff."""


def api_key(configured: str = "") -> str:
    """The Massive API key from config or ``MASSIVE_API_KEY``; ConfigError says how to set it when missing."""
    key = configured or os.environ.get("MASSIVE_API_KEY", "")
    if not key:
        raise ConfigError("no Massive.com API key: set MASSIVE_API_KEY or massive_api_key in trader.yaml "
                          "(get one at https://massive.com/dashboard/api-keys)")
    return key


class MassiveClient:
    """Aggregates (bars) from Massive.com's REST API."""

    def __init__(self, key: str, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 30.0,
                 sleep: Callable[[float], None] | None = None, max_wait: float = 60.0):
        import httpx

        self.key = api_key(key)
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(timeout=timeout,
                                 headers={"User-Agent": "mmr", "Authorization": f"Bearer {self.key}"})
        self._sleep = sleep
        self.max_wait = max_wait
        self.requests = 0

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()

    def __enter__(self) -> MassiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        import tenacity

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_RateLimited),
            wait=tenacity.wait_exponential(multiplier=1, min=1, max=self.max_wait),
            stop=tenacity.stop_after_attempt(MAX_ATTEMPTS),
            reraise=True,
            **({"sleep": self._sleep} if self._sleep else {}),
        )
        try:
            return retrying(self._get_once, url, params)
        except _RateLimited:
            raise MassiveError(f"Massive.com rate limit: still 429 after {MAX_ATTEMPTS} attempts") from None

    def _get_once(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        import httpx

        # Merge explicitly: httpx's `params` replaces a query already in the URL (next_url's cursor). A key that
        # came back in next_url is dropped: the header carries it.
        merged = httpx.URL(url).params.merge(params).remove("apiKey")
        response = self.http.get(url.split("?", 1)[0], params=merged)
        if response.status_code == 429:
            raise _RateLimited()
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or body.get("status") == "ERROR":
            message = str(body.get("error") or body.get("message") or response.reason_phrase)
            if len(self.key) >= 8:  # a vendor that echoes the key must not put it in our logs
                message = message.replace(self.key, "***")
            raise MassiveError(f"Massive.com {response.status_code}: {message}")
        return body

    def aggregates(self, ticker: str, bar_size: str, start: dt.date, end: dt.date, *,
                   adjusted: bool = True) -> pandas.DataFrame:
        """Bars of `ticker` for sessions start..end (inclusive), every page, as a BarStore-ready DataFrame."""
        import pandas as pd

        try:
            multiplier, timespan = BAR_SIZES[bar_size]
        except KeyError:
            raise ValueError(f"bar size {bar_size!r} not offered by Massive; one of {', '.join(BAR_SIZES)}") from None
        url = f"{self.base_url}/v2/aggs/ticker/{ticker.upper()}/range/{multiplier}/{timespan}/{start}/{end}"
        params: dict[str, Any] = {"adjusted": str(adjusted).lower(), "sort": "asc", "limit": PAGE_LIMIT}
        results: list[dict[str, Any]] = []
        while url:
            body = self._get(url, params)
            results.extend(body.get("results") or [])
            url = body.get("next_url") or ""
            params = {}  # next_url carries the query
        frame = pd.DataFrame(
            {
                "open": [r.get("o") for r in results],
                "high": [r.get("h") for r in results],
                "low": [r.get("l") for r in results],
                "close": [r.get("c") for r in results],
                "volume": [float(r.get("v") or 0) for r in results],
                "vwap": [r.get("vw") for r in results],
                "bar_count": [r.get("n") for r in results],
            },
            index=pd.DatetimeIndex(pd.to_datetime([r["t"] for r in results], unit="ms", utc=True), name="ts"),
        )
        return frame[~frame.index.duplicated()]

    # --- discovery (issue 16): snapshots, movers, news -----------------------------------------------------
    def snapshots(self, tickers: list[str]) -> list[dict[str, Any]]:
        """``GET /v2/snapshot/locale/us/markets/stocks/tickers?tickers=A,B``: one dict per ticker with ``day``,
        ``prevDay``, ``lastTrade``, ``todaysChangePerc`` (Massive's field names)."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(tickers), 250):  # keep the query string a sane length
            chunk = ",".join(t.upper() for t in tickers[i:i + 250])
            body = self._get(f"{self.base_url}/v2/snapshot/locale/us/markets/stocks/tickers", {"tickers": chunk})
            out.extend(body.get("tickers") or [])
        return out

    def movers(self, direction: str) -> list[dict[str, Any]]:
        """``GET /v2/snapshot/locale/us/markets/stocks/{gainers|losers}``: the day's top 20 movers."""
        if direction not in ("gainers", "losers"):
            raise ValueError("direction is gainers or losers")
        return self._get(f"{self.base_url}/v2/snapshot/locale/us/markets/stocks/{direction}", {}).get("tickers") or []

    def news(self, ticker: str | None = None, *, limit: int = 10, since: dt.datetime | None = None) -> list[dict]:
        """``GET /v2/reference/news``: articles newest first (``insights`` carry per-ticker sentiment)."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 1000)), "order": "desc", "sort": "published_utc"}
        if ticker:
            params["ticker"] = ticker.upper()
        if since is not None:
            params["published_utc.gte"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._get(f"{self.base_url}/v2/reference/news", params).get("results") or []
