"""Market discovery through ib_async: snapshots + daily bars for the idea scanner, the IB scanner, news, depth.

Each function takes the connected ``IB`` and the contract resolver and returns plain dicts / MarketRows. A
request IB does not answer in time raises :class:`SourceUnavailable` (never an empty list that would read as
"nothing found"); a symbol that cannot be resolved is reported under ``missing``, not silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any

from trader.broker.convert import ticker_to_quote
from trader.errors import SourceUnavailable

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 15.0
BARS_TIMEOUT = 20.0
BARS_DURATION = "90 D"  # ~60 sessions: enough for SMA50 and RSI14
BAR_CONCURRENCY = 24
SCAN_CODES = {"gainers": "TOP_PERC_GAIN", "losers": "TOP_PERC_LOSE", "active": "MOST_ACTIVE",
              "hot-volume": "HOT_BY_VOLUME", "hot-price": "HOT_BY_PRICE"}


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class DailyBarCache:
    """Completed daily bars per conId, valid for one calendar day (IB paces historical requests hard)."""

    def __init__(self) -> None:
        self._bars: dict[int, tuple[date, list[dict[str, float]]]] = {}

    def get(self, con_id: int, today: date) -> list[dict[str, float]] | None:
        hit = self._bars.get(con_id)
        return hit[1] if hit and hit[0] == today else None

    def put(self, con_id: int, today: date, bars: list[dict[str, float]]) -> None:
        self._bars[con_id] = (today, bars)


async def _resolve_all(resolver: Any, symbols: list[str]) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    async def one(sym: str) -> tuple[str, Any]:
        contract = await resolver.resolve(sym)
        return sym, await resolver.qualified(contract)

    results = await asyncio.gather(*(one(s) for s in symbols), return_exceptions=True)
    found, missing = [], {}
    for sym, res in zip(symbols, results, strict=True):
        if isinstance(res, BaseException):
            missing[sym] = f"{type(res).__name__}: {res}"[:120]
        else:
            found.append(res)
    return found, missing


async def snapshots(ib: Any, contracts: list[Any], timeout: float = SNAPSHOT_TIMEOUT) -> list[dict[str, Any]]:
    """One snapshot quote per contract (with ``vwap`` when IB sent one); SourceUnavailable on a timeout."""
    if not contracts:
        return []
    try:
        tickers = await asyncio.wait_for(ib.reqTickersAsync(*contracts), timeout)
    except TimeoutError:
        raise SourceUnavailable(f"IB sent no snapshot for {len(contracts)} contracts within {timeout:g} s") from None
    out = []
    for t in tickers:
        q = ticker_to_quote(t)
        q["vwap"] = _finite(getattr(t, "vwap", None))
        q["symbol"], q["con_id"] = t.contract.symbol, t.contract.conId
        out.append(q)
    return out


async def daily_bars(ib: Any, contract: Any, cache: DailyBarCache, today: date) -> list[dict[str, float]]:
    """Completed daily bars (before ``today``) of one contract, oldest first; cached for the day."""
    hit = cache.get(contract.conId, today)
    if hit is not None:
        return hit
    bars = await asyncio.wait_for(
        ib.reqHistoricalDataAsync(contract, "", BARS_DURATION, "1 day", "TRADES", True), BARS_TIMEOUT)
    rows = []
    for b in bars or []:
        day = b.date.date() if isinstance(b.date, datetime) else b.date
        if day >= today:
            continue  # today's partial bar: the snapshot carries today
        rows.append({"open": float(b.open), "high": float(b.high), "low": float(b.low), "close": float(b.close),
                     "volume": float(b.volume)})
    cache.put(contract.conId, today, rows)
    return rows


async def market_rows(ib: Any, resolver: Any, symbols: list[str], cache: DailyBarCache,
                      today: date | None = None) -> tuple[list[Any], dict[str, str]]:
    """MarketRows for the idea scanner (snapshot + completed daily bars) and the symbols that failed, with why.

    One pipeline per symbol (resolve, then snapshot and bars at once), so the requests of all symbols overlap:
    the TWS API accepts about 50 messages a second (ib_async sends at most 45), which bounds a cold scan.
    """
    from trader.tools.ideas import rows_from_bars

    today = today or datetime.now(UTC).date()
    gate = asyncio.Semaphore(BAR_CONCURRENCY)

    async def one(sym: str) -> Any:
        try:
            contract = await resolver.qualified(await resolver.resolve(sym))
        except Exception as exc:  # noqa: BLE001 - reported per symbol
            return f"{type(exc).__name__}: {exc}"[:120]

        async def bars() -> Any:
            async with gate:
                try:
                    return await daily_bars(ib, contract, cache, today)
                except Exception as exc:  # noqa: BLE001 - a symbol without bars still has a quote
                    return exc

        quotes, got = await asyncio.gather(snapshots(ib, [contract]), bars())
        quote = quotes[0] if quotes else {}
        if quote.get("last") is None and quote.get("close") is None:
            return "no quote"
        return rows_from_bars(sym, [] if isinstance(got, BaseException) else got, quote)

    results = await asyncio.gather(*(one(s) for s in symbols), return_exceptions=True)
    rows, missing = [], {}
    for sym, res in zip(symbols, results, strict=True):
        if isinstance(res, SourceUnavailable | TimeoutError):
            missing[sym] = "no snapshot in time"
        elif isinstance(res, BaseException | str):
            missing[sym] = res if isinstance(res, str) else f"{type(res).__name__}: {res}"[:120]
        else:
            rows.append(res)
    if symbols and not rows:
        first = next(iter(missing.items()))
        raise SourceUnavailable(f"IB gave no data for any of the {len(symbols)} symbols; e.g. {first[0]}: {first[1]}")
    return rows, missing


async def scanner(ib: Any, scan_code: str, *, instrument: str = "STK", location: str = "STK.US.MAJOR",
                  num: int = 20, above_price: float | None = None, above_volume: float | None = None,
                  timeout: float = 15.0) -> list[dict[str, Any]]:
    """IB scanner rows (rank, symbol, con_id, sec_type, exchange), enriched with a snapshot each
    (last, change_pct, volume)."""
    from ib_async import ScannerSubscription

    code = SCAN_CODES.get(scan_code, scan_code.upper())
    sub = ScannerSubscription(instrument=instrument, locationCode=location, scanCode=code, numberOfRows=num)
    if above_price is not None:
        sub.abovePrice = above_price
    if above_volume is not None:
        sub.aboveVolume = int(above_volume)
    try:
        data = await asyncio.wait_for(ib.reqScannerDataAsync(sub), timeout)
    except TimeoutError:
        raise SourceUnavailable(f"IB scanner {code} did not answer within {timeout:g} s") from None
    contracts = [d.contractDetails.contract for d in data][:num]
    quotes = {q["con_id"]: q for q in await snapshots(ib, contracts)} if contracts else {}
    rows = []
    for d in data[:num]:
        c = d.contractDetails.contract
        q = quotes.get(c.conId, {})
        last, close = q.get("last"), q.get("close")
        change = (last - close) / close * 100 if last and close else None
        rows.append({"rank": d.rank + 1, "symbol": c.symbol, "con_id": c.conId, "sec_type": c.secType,
                     "exchange": c.primaryExchange or c.exchange, "last": last,
                     "change_pct": round(change, 2) if change is not None else None, "volume": q.get("volume")})
    return rows


async def scanner_parameters(ib: Any, timeout: float = 20.0) -> dict[str, list[str]]:
    """The scanner parameters IB offers: instrument types, location codes and scan codes (names only)."""
    try:
        xml = await asyncio.wait_for(ib.reqScannerParametersAsync(), timeout)
    except TimeoutError:
        raise SourceUnavailable(f"IB sent no scanner parameters within {timeout:g} s") from None
    root = ET.fromstring(xml)

    def texts(tag: str) -> list[str]:
        return sorted({e.text for e in root.iter(tag) if e.text})

    return {"instruments": texts("type"), "locations": texts("locationCode"), "scan_codes": texts("scanCode")}


async def news(ib: Any, resolver: Any, symbols: list[str], *, limit: int = 10, since: datetime | None = None,
               detail: bool = False, body_chars: int = 600, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Headlines for ``symbols`` from every IB news provider the account has, newest first; article bodies
    (trimmed to ``body_chars``) only with ``detail``."""
    try:
        providers = await asyncio.wait_for(ib.reqNewsProvidersAsync(), timeout)
    except TimeoutError:
        raise SourceUnavailable(f"IB sent no news providers within {timeout:g} s") from None
    codes = "+".join(p.code for p in providers or [])
    if not codes:
        raise SourceUnavailable("the IB account has no news providers (subscribe to one in Account Management)")
    found, missing = await _resolve_all(resolver, symbols)
    if symbols and not found:
        raise SourceUnavailable(f"IB resolved none of {', '.join(symbols)}: {missing}")
    start = since.strftime("%Y-%m-%d %H:%M:%S.0") if since else ""
    items: list[dict[str, Any]] = []
    for sym, c in found:
        try:  # ib_async waits for ever on its own: a gateway that never answers is a typed error, not a hang
            got = await asyncio.wait_for(ib.reqHistoricalNewsAsync(c.conId, codes, start, "", limit), timeout)
        except TimeoutError:
            got = None
        if got is None:
            raise SourceUnavailable(f"IB historical news for {sym} did not answer within {timeout:g} s")
        for n in got:
            t = n.time if n.time.tzinfo else n.time.replace(tzinfo=UTC)
            items.append({"symbol": sym, "time": t.isoformat(timespec="minutes"), "provider": n.providerCode,
                          "id": n.articleId, "headline": n.headline})
    items.sort(key=lambda i: i["time"], reverse=True)
    items = items[:limit]
    if detail:
        for item in items:
            try:
                art = await asyncio.wait_for(ib.reqNewsArticleAsync(item["provider"], item["id"]), timeout)
            except TimeoutError:
                raise SourceUnavailable(f"IB sent no article {item['id']} within {timeout:g} s") from None
            text = art.articleText if art and art.articleType == 0 else ""
            item["body"] = text if len(text) <= body_chars else text[:body_chars].rsplit(" ", 1)[0] + " …"
    return items


async def depth(ib: Any, contract: Any, *, rows: int = 5, smart: bool = False, wait: float = 5.0) -> dict[str, Any]:
    """The order book (``rows`` levels a side) from reqMktDepth, then cancelled; SourceUnavailable when empty."""
    ticker = ib.reqMktDepth(contract, rows, smart)
    try:
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            if len(ticker.domBids) >= rows and len(ticker.domAsks) >= rows:
                break
            await asyncio.sleep(0.05)
        bids = [{"price": d.price, "size": d.size, "mm": d.marketMaker or None} for d in ticker.domBids[:rows]]
        asks = [{"price": d.price, "size": d.size, "mm": d.marketMaker or None} for d in ticker.domAsks[:rows]]
    finally:
        ib.cancelMktDepth(contract, smart)
    if not bids and not asks:
        raise SourceUnavailable(f"IB sent no market depth for {contract.symbol} within {wait:g} s "
                                "(depth needs a Level II subscription)")
    return {"bids": bids, "asks": asks}


def since_date(text: str | None) -> datetime | None:
    """A ``--since`` value: YYYY-MM-DD (UTC midnight) or an ISO datetime; None when empty."""
    if not text:
        return None
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def days_ago(days: int) -> datetime:
    """UTC now minus ``days``."""
    return datetime.now(UTC) - timedelta(days=days)
