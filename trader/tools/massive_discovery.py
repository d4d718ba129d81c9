"""Massive.com (Polygon) as a discovery source: snapshots + daily aggregates → MarketRows, movers, news.

Synchronous (httpx): callers in a service run these in a thread. Field names are Massive's documented ones:
a ticker snapshot has ``day`` / ``prevDay`` (o, h, l, c, v, vw), ``lastTrade.p`` and ``todaysChangePerc``; a
news result has ``title``, ``published_utc``, ``publisher.name``, ``description`` and ``insights`` (per-ticker
``sentiment`` and ``sentiment_reasoning``). Errors are :class:`trader.data.massive.MassiveError`; callers turn
them into ``SourceUnavailable``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from trader.tools.ideas import MarketRow


def _f(x: Any) -> float | None:
    try:
        return float(x) if x is not None else None
    except (TypeError, ValueError):
        return None


def row_from_snapshot(snap: dict[str, Any], bars: Any = None) -> MarketRow:
    """A MarketRow from one ticker snapshot and (optionally) a DataFrame of completed daily bars."""
    day, prev = snap.get("day") or {}, snap.get("prevDay") or {}
    last = _f((snap.get("lastTrade") or {}).get("p")) or _f(day.get("c"))
    closes = highs = lows = volumes = ()
    if bars is not None and len(bars):
        closes, highs, lows = tuple(bars["close"]), tuple(bars["high"]), tuple(bars["low"])
        volumes = tuple(bars["volume"])
    return MarketRow(symbol=snap.get("ticker", ""), last=last, prev_close=_f(prev.get("c")), open=_f(day.get("o")),
                     high=_f(day.get("h")), low=_f(day.get("l")), volume=_f(day.get("v")), vwap=_f(day.get("vw")),
                     closes=closes, highs=highs, lows=lows, volumes=volumes)


def market_rows(client: Any, symbols: list[str], today: dt.date, cache: dict | None = None
                ) -> tuple[list[MarketRow], dict[str, str]]:
    """Snapshots for ``symbols`` and ~90 days of daily aggregates each (cached per day in ``cache``)."""
    snaps = {s.get("ticker"): s for s in client.snapshots(symbols)}
    rows, missing = [], {}
    cache = {} if cache is None else cache
    for sym in symbols:
        snap = snaps.get(sym.upper())
        if snap is None:
            missing[sym] = "no Massive snapshot"
            continue
        key = (sym.upper(), today)
        if key not in cache:
            frame = client.aggregates(sym, "1 day", today - dt.timedelta(days=90), today - dt.timedelta(days=1))
            cache[key] = frame[frame.index.date < today] if len(frame) else frame
        rows.append(row_from_snapshot(snap, cache[key]))
    return rows, missing


def movers(client: Any, *, losers: bool = False, num: int = 10) -> list[dict[str, Any]]:
    """The day's top gainers (losers) as compact rows."""
    out = []
    for i, snap in enumerate(client.movers("losers" if losers else "gainers")[:num], start=1):
        day = snap.get("day") or {}
        out.append({"rank": i, "symbol": snap.get("ticker"), "last": _f((snap.get("lastTrade") or {}).get("p"))
                    or _f(day.get("c")), "change_pct": round(_f(snap.get("todaysChangePerc")) or 0.0, 2),
                    "volume": _f(day.get("v"))})
    return out


def _trim(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars].rsplit(" ", 1)[0] + " …"


def news_items(client: Any, symbols: list[str], *, limit: int = 10, since: dt.datetime | None = None,
               detail: bool = False, body_chars: int = 600) -> list[dict[str, Any]]:
    """Articles for ``symbols`` (or the market when empty), newest first, with the sentiment for the symbol."""
    items: list[dict[str, Any]] = []
    for sym in symbols or [None]:
        for r in client.news(sym, limit=limit, since=since):
            insight = next((i for i in r.get("insights") or [] if sym is None or i.get("ticker") == sym.upper()),
                           None)
            item = {"symbol": sym or ",".join((r.get("tickers") or [])[:3]), "time": r.get("published_utc"),
                    "provider": (r.get("publisher") or {}).get("name"), "id": r.get("id"),
                    "headline": r.get("title"), "sentiment": insight.get("sentiment") if insight else None}
            if detail:
                item["body"] = _trim(r.get("description") or "", body_chars)
                item["sentiment_reasoning"] = insight.get("sentiment_reasoning") if insight else None
                item["url"] = r.get("article_url")
            items.append(item)
    items.sort(key=lambda i: i["time"] or "", reverse=True)
    return items[:limit]
