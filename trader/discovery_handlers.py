"""trader_service's discovery RPCs: ideas, IB scanner, movers, news, depth (issue 16). All are reads.

Mounted into `trader.trader_service.TraderService` (a mixin). The scoring is pure (trader/tools/ideas.py,
presets.py); the IB calls are in trader/broker/discovery.py and the Massive.com ones in
trader/tools/massive_discovery.py (run in a thread: httpx is synchronous). ``source="auto"`` uses Massive.com
when a key is configured (``massive_api_key`` / ``MASSIVE_API_KEY``), else IB. A source that cannot answer
raises ``SourceUnavailable`` (or ``BrokerNotReady``): never an empty list that would read as "nothing found".
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from trader.errors import SourceUnavailable
from trader.messaging.rpc import rpcmethod

INDICES = (("SPX", "CBOE"), ("NDX", "NASDAQ"), ("RUT", "RUSSELL"), ("VIX", "CBOE"))
FOREX = ("EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD", "EURGBP", "EURJPY")
MISSING_LISTED = 5
NEWS_SEC_TYPES = ("STK", "OPT")  # positions `news --held` looks up (an option by its underlying)
SNAPSHOT_BATCH = 40  # snapshot requests in flight at once: well under IB's 100 market-data lines


class DiscoveryHandlers:
    """Discovery RPCs (mixin for TraderService; needs ``session``, ``broker`` and ``config``)."""

    _bar_cache: Any = None
    _massive_bars: dict | None = None

    # ------------------------------------------------------------------ sources
    def _source(self, source: str) -> str:
        if source not in ("auto", "ib", "massive"):
            raise ValueError("source is auto, ib or massive")
        if source != "auto":
            return source
        return "massive" if (self.config.massive_api_key or os.environ.get("MASSIVE_API_KEY")) else "ib"

    def _massive(self) -> Any:
        from trader.data.massive import MassiveClient, api_key

        return MassiveClient(api_key(self.config.massive_api_key), base_url=self.config.massive_base_url,
                             timeout=15.0, max_wait=5.0)

    async def _massive_call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from trader.data.massive import MassiveError

        def run() -> Any:
            with self._massive() as client:
                return fn(client, *args, **kwargs)

        try:
            return await asyncio.to_thread(run)
        except MassiveError as exc:
            raise SourceUnavailable(str(exc)) from None
        except OSError as exc:  # httpx transport errors are OSErrors underneath
            raise SourceUnavailable(f"Massive.com unreachable: {exc}") from None
        except Exception as exc:
            if type(exc).__module__.startswith("httpx"):
                raise SourceUnavailable(f"Massive.com unreachable: {type(exc).__name__}: {exc}") from None
            raise

    def _ib(self) -> Any:
        self.session.require_ready(opening=False)
        return self.session.ib

    # ------------------------------------------------------------------ ideas
    @rpcmethod
    async def ideas(self, preset: str = "momentum", symbols: list[str] | None = None, num: int = 10,
                    filters: dict[str, float] | None = None, detail: bool = False,
                    source: str = "auto") -> dict[str, Any]:
        """Scan ``symbols`` with a preset: filters, 0–100 scores, BUY/SELL/WATCH labels, best ``num`` first."""
        from trader.tools.ideas import scan_rows
        from trader.tools.presets import preset as find_preset

        p = find_preset(preset)
        symbols = [s.strip().upper() for s in symbols or [] if s.strip()]
        if not symbols:
            raise ValueError("no symbols to scan: pass --tickers or --universe")
        used = self._source(source)
        today = datetime.now(UTC).date()
        if used == "massive":
            from trader.tools import massive_discovery as md

            if self._massive_bars is None:
                self._massive_bars = {}
            rows, missing = await self._massive_call(md.market_rows, symbols, today, self._massive_bars)
        else:
            from trader.broker import discovery as ibd

            if self._bar_cache is None:
                self._bar_cache = ibd.DailyBarCache()
            rows, missing = await ibd.market_rows(self._ib(), self.broker.resolver, symbols, self._bar_cache, today)
        if symbols and not rows:
            raise SourceUnavailable(f"{used}: no data for any of the {len(symbols)} symbols; e.g. "
                                    f"{dict(list(missing.items())[:MISSING_LISTED])}")
        # the scoring is CPU work (pandas via ta): off the event loop
        out = await asyncio.to_thread(scan_rows, p, rows, overrides=filters or {}, num=num, detail=detail)
        out["source"] = used
        if missing:
            out["missing"] = {"count": len(missing), "first": dict(list(missing.items())[:MISSING_LISTED])}
        return out

    # ------------------------------------------------------------------ IB scanner, movers
    @rpcmethod
    async def scan(self, code: str = "gainers", instrument: str = "STK", location: str = "STK.US.MAJOR",
                   num: int = 20, above_price: float | None = None,
                   above_volume: float | None = None) -> dict[str, Any]:
        """IB market scanner (reqScannerSubscription), each row with a snapshot's last and change."""
        from trader.broker import discovery as ibd

        rows = await ibd.scanner(self._ib(), code, instrument=instrument, location=location, num=num,
                                 above_price=above_price, above_volume=above_volume)
        return {"scan": ibd.SCAN_CODES.get(code, code.upper()), "instrument": instrument, "location": location,
                "rows": rows}

    @rpcmethod
    async def scan_params(self) -> dict[str, Any]:
        """The IB scanner's instrument types, location codes and scan codes."""
        from trader.broker import discovery as ibd

        return await ibd.scanner_parameters(self._ib())

    @rpcmethod
    async def movers(self, market: str = "stocks", losers: bool = False, num: int = 10,
                     source: str = "auto") -> dict[str, Any]:
        """Top gainers (losers): stocks from Massive.com or the IB scanner; indices and forex from snapshots."""
        from trader.broker import discovery as ibd

        if market not in ("stocks", "indices", "forex"):
            raise ValueError("market is stocks, indices or forex")
        if market == "stocks":
            used = self._source(source)
            if used == "massive":
                from trader.tools import massive_discovery as md

                rows = await self._massive_call(md.movers, losers=losers, num=num)
            else:
                rows = await ibd.scanner(self._ib(), "losers" if losers else "gainers", num=num)
            return {"market": market, "losers": losers, "source": used, "rows": rows}
        ib = self._ib()
        specs = ([(s, "IND", venue, "USD") for s, venue in INDICES] if market == "indices"
                 else [(s[:3], "CASH", "IDEALPRO", s[3:]) for s in FOREX])
        contracts = []
        for sym, sec_type, venue, ccy in specs:
            try:
                c = await self.broker.resolver.resolve(sym, sec_type, venue, ccy)
            except Exception:  # noqa: BLE001 - an index the venue does not list is skipped, not fatal
                continue
            contracts.append(await self.broker.resolver.qualified(c))
        if not contracts:
            raise SourceUnavailable(f"IB resolved none of the {market} instruments")
        rows = []
        for q, c in zip(await ibd.snapshots(ib, contracts), contracts, strict=True):
            last = q.get("last") or ((q["bid"] + q["ask"]) / 2 if q.get("bid") and q.get("ask") else None)
            close = q.get("close")
            change = (last - close) / close * 100 if last and close else None
            name = c.symbol + (c.currency if c.secType == "CASH" else "")
            rows.append({"symbol": name, "last": last, "change_pct": round(change, 2) if change is not None else None})
        rows.sort(key=lambda r: (r["change_pct"] is None, (r["change_pct"] or 0) * (1 if losers else -1)))
        for i, r in enumerate(rows[:num], start=1):
            r["rank"] = i
        return {"market": market, "losers": losers, "source": "ib", "rows": rows[:num]}

    # ------------------------------------------------------------------ news, depth
    @rpcmethod
    async def news(self, symbols: list[str] | None = None, limit: int = 10, since: str | None = None,
                   detail: bool = False, held: bool = False, source: str = "auto",
                   body_chars: int = 600) -> dict[str, Any]:
        """Headlines (bodies only with ``detail``, trimmed to ``body_chars``) for symbols or every held position."""
        from trader.broker import discovery as ibd

        symbols = [s.upper() for s in symbols or []]
        skipped: list[str] = []
        if held:
            self.session.require_ready(opening=False)
            positions = self.broker.positions()
            # an option's news is its underlying's (IB names an option by its underlying's symbol); futures,
            # forex and the rest have no company news: named under `skipped`, not silently left out
            symbols += sorted({p.symbol for p in positions if p.sec_type in NEWS_SEC_TYPES} - set(symbols))
            skipped = sorted({f"{p.symbol} {p.sec_type}" for p in positions if p.sec_type not in NEWS_SEC_TYPES})
            if not symbols:
                return {"source": None, "symbols": [], "items": [], "note": "no stock or option positions are held",
                        **({"skipped": skipped} if skipped else {})}
        used = self._source(source)
        start = ibd.since_date(since)
        if used == "massive":
            from trader.tools import massive_discovery as md

            items = await self._massive_call(md.news_items, symbols, limit=limit, since=start, detail=detail,
                                             body_chars=body_chars)
        else:
            if not symbols:
                raise ValueError("IB news needs symbols (or --held)")
            items = await ibd.news(self._ib(), self.broker.resolver, symbols, limit=limit, since=start,
                                   detail=detail, body_chars=body_chars)
        return {"source": used, "symbols": symbols, "items": items, **({"skipped": skipped} if skipped else {})}

    @rpcmethod
    async def depth(self, symbol: str, rows: int = 5, smart: bool = False, exchange: str | None = None,
                    sec_type: str = "STK", currency: str = "USD") -> dict[str, Any]:
        """The order book of one symbol (reqMktDepth), ``rows`` levels a side, with the current quote."""
        from trader.broker import discovery as ibd

        ib = self._ib()
        contract = await self.broker.resolve(symbol, sec_type, "SMART", currency)
        qualified = await self.broker.resolver.qualified(contract)
        if exchange:
            qualified.exchange = exchange.upper()
        book = await ibd.depth(ib, qualified, rows=max(1, min(rows, 20)), smart=smart)
        return {"symbol": contract["symbol"], "con_id": contract["con_id"], "exchange": qualified.exchange,
                "smart": smart, **book}

    # ------------------------------------------------------------------ many quotes at once (issue 14)
    @rpcmethod
    async def snapshot_batch(self, symbols: list[str], batch: int = SNAPSHOT_BATCH) -> dict[str, Any]:
        """Quotes for many symbols (``mmr snapshot A B C …``): last, change, day change %, volume and ATR% (14-day
        Wilder, completed daily bars). Requested ``batch`` symbols at a time, each a snapshot request that ends
        by itself, so the market-data lines in use stay well under IB's limit (100 by default)."""
        from trader.broker import discovery as ibd

        symbols = list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
        if not symbols:
            raise ValueError("no symbols given")
        if self._bar_cache is None:
            self._bar_cache = ibd.DailyBarCache()
        today = datetime.now(UTC).date()
        rows, missing = [], {}
        size = max(1, min(int(batch), SNAPSHOT_BATCH))
        for i in range(0, len(symbols), size):
            found, lost = await ibd.market_rows(self._ib(), self.broker.resolver, symbols[i:i + size],
                                                self._bar_cache, today)
            rows.extend(quote_row(r) for r in found)
            missing.update(lost)
        return {"quotes": rows, "missing": missing}


def quote_row(row: Any) -> dict[str, Any]:
    """One compact quote from a MarketRow: last, change vs the previous close, change %, volume, ATR %."""
    from trader.trading.sizing import wilder_atr

    last = row.last if row.last is not None else row.prev_close
    prev = row.prev_close
    change = None if last is None or prev is None else round(last - prev, 4)
    atr = wilder_atr(row.highs, row.lows, row.closes) if len(row.closes) > 14 else None
    return {"symbol": row.symbol, "last": last, "change": change,
            "change_pct": None if change is None or not prev else round(change / prev * 100, 2),
            "volume": row.volume, "atr_pct": None if atr is None or not last else round(atr / last * 100, 2)}
