"""trader_service's option and forex RPCs (issue 17): expirations, a bounded option chain with the broker's
model greeks, FX quotes and conversion. All are reads.

Mounted into `trader.trader_service.TraderService` (a mixin; needs ``session`` and ``broker``). The math is in
``trader/tools/options.py`` and ``trader/tools/forex.py``; the IB calls are ``reqSecDefOptParams``,
``reqContractDetails`` (one call lists an expiry's contracts) and snapshot ``reqMktData`` (``reqTickers``), the
greeks coming from IB's option computation ticks (``Ticker.modelGreeks``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import Any

from trader.errors import ContractNotFound
from trader.messaging.rpc import rpcmethod

log = logging.getLogger(__name__)

CHAIN_TIMEOUT = 15.0  # seconds for one chain's contract list or its quotes
MAX_EXPIRATIONS = 40  # expirations listed at most (nearest first)
MAX_IMPLIED_STRIKES = 60  # strikes (call and put each) an implied distribution reads at most
_OPTION_SEC_TYPE = {"STK": "OPT", "IND": "OPT", "FUT": "FOP"}
_GREEKS = ("impliedVol", "delta", "gamma", "vega", "theta", "undPrice")


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v not in (-1.0, -2.0) else None  # IB's "unknown" markers


def _quote_fields(t: Any) -> dict[str, Any]:
    from trader.broker.convert import ticker_to_quote

    q = ticker_to_quote(t)
    bid, ask = q.get("bid"), q.get("ask")
    mid = (bid + ask) / 2 if bid is not None and ask is not None and bid > 0 and ask > 0 else None
    return {"bid": bid, "ask": ask, "mid": mid, "last": q.get("last"), "close": q.get("close"),
            "volume": q.get("volume"), "time": q.get("time")}


class DerivativesHandlers:
    """Options and forex RPCs (mixin for TraderService)."""

    async def _tickers(self, contracts: list[Any]) -> list[Any]:
        from trader.discovery_handlers import SNAPSHOT_BATCH

        self.session.require_ready(opening=False)
        out: list[Any] = []
        for i in range(0, len(contracts), SNAPSHOT_BATCH):
            batch = contracts[i:i + SNAPSHOT_BATCH]
            out += await asyncio.wait_for(self.session.ib.reqTickersAsync(*batch), CHAIN_TIMEOUT)
        return out

    async def _underlying(self, symbol: str, sec_type: str, exchange: str, currency: str) -> dict[str, Any]:
        if sec_type.upper() not in _OPTION_SEC_TYPE:
            raise ValueError(f"options are listed on STK, IND or FUT underlyings, not {sec_type!r}")
        return await self.broker.resolve(symbol, sec_type, exchange, currency)

    # ------------------------------------------------------------------ options
    @rpcmethod
    async def option_expirations(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART",
                                 currency: str = "USD") -> dict[str, Any]:
        """The option expirations of an underlying (``reqSecDefOptParams``), nearest first, with the trading
        classes, multipliers and strike ranges the broker lists."""
        und = await self._underlying(symbol, sec_type, exchange, currency)
        self.session.require_ready(opening=False)
        params = await asyncio.wait_for(self.session.ib.reqSecDefOptParamsAsync(
            und["symbol"], "", und["sec_type"], int(und["con_id"])), CHAIN_TIMEOUT)
        today = datetime.now(UTC).strftime("%Y%m%d")
        expirations = sorted({e for p in params for e in p.expirations if e >= today})
        classes = [{"exchange": p.exchange, "trading_class": p.tradingClass, "multiplier": p.multiplier,
                    "expirations": len(p.expirations), "strikes": len(p.strikes),
                    "strike_min": min(p.strikes) if p.strikes else None,
                    "strike_max": max(p.strikes) if p.strikes else None} for p in params]
        if not expirations:
            raise ContractNotFound(f"no option expirations listed for {und['symbol']} ({und['sec_type']})")
        return {"symbol": und["symbol"], "underlying_con_id": und["con_id"],
                "expirations": expirations[:MAX_EXPIRATIONS], "total": len(expirations),
                "truncated": len(expirations) > MAX_EXPIRATIONS, "classes": classes[:10]}

    async def _expiry_contracts(self, symbol: str, sec_type: str, exchange: str, currency: str, exp: str,
                                right: str = "") -> tuple[dict[str, Any], float | None, str, list[Any]]:
        """The underlying, its spot (mid, else last, else close), the option sec type and every option contract
        the broker lists for expiry ``exp`` (one right, or both); ContractNotFound when it lists none."""
        from ib_async import Contract

        und = await self._underlying(symbol, sec_type, exchange, currency)
        [und_ticker] = await self._tickers([await self.broker.resolver.qualified(und)])
        q = _quote_fields(und_ticker)
        spot = q["mid"] or q["last"] or q["close"]
        opt_type = _OPTION_SEC_TYPE[und["sec_type"]]
        query = Contract(symbol=und["symbol"], secType=opt_type, lastTradeDateOrContractMonth=exp,
                         exchange="SMART" if opt_type == "OPT" else und.get("exchange") or "",
                         currency=und.get("currency") or currency, right=right)
        details = await asyncio.wait_for(self.session.ib.reqContractDetailsAsync(query), CHAIN_TIMEOUT)
        contracts = list({d.contract.conId: d.contract for d in details or [] if d.contract is not None}.values())
        if not contracts:
            raise ContractNotFound(f"no {opt_type} contracts for {und['symbol']} expiring {exp}"
                                   " (see `mmr options expirations`)")
        return und, spot, opt_type, contracts

    @rpcmethod
    async def option_chain(self, symbol: str, expiry: str, right: str | None = None,
                           strike_min: float | None = None, strike_max: float | None = None,
                           greeks: bool = False, limit: int | None = None, sec_type: str = "STK",
                           exchange: str = "SMART", currency: str = "USD") -> dict[str, Any]:
        """One expiry of an underlying's chain: at most ``limit`` strikes (default and cap
        ``MAX_CHAIN_STRIKES``, nearest the money inside [strike_min, strike_max]), each call/put with bid, ask,
        last, volume and — with ``greeks`` — implied volatility, delta, gamma, vega and theta from the broker's
        option computations. Open interest is None where the broker sends none."""
        from trader.broker.convert import contract_to_dict
        from trader.tools.options import MAX_CHAIN_STRIKES, parse_expiry, strikes_near

        exp = parse_expiry(expiry)
        if exp < datetime.now(UTC).strftime("%Y%m%d"):
            raise ValueError(f"expiry {exp} has passed")
        want = (right or "").strip().upper()[:1]
        if want not in ("", "C", "P"):
            raise ValueError(f"right must be C or P, got {right!r}")
        cap = max(1, min(int(limit or MAX_CHAIN_STRIKES), MAX_CHAIN_STRIKES))
        und, spot, opt_type, contracts = await self._expiry_contracts(symbol, sec_type, exchange, currency, exp,
                                                                      right=want)
        strikes = strikes_near([c.strike for c in contracts], spot, strike_min=strike_min,
                               strike_max=strike_max, limit=cap)
        chosen = sorted((c for c in contracts if c.strike in set(strikes)), key=lambda c: (c.strike, c.right))
        for c in chosen:
            c.exchange = c.exchange or "SMART"
        tickers = await self._tickers(chosen) if chosen else []
        rows = []
        for c, t in zip(chosen, tickers, strict=True):
            d = contract_to_dict(c)
            row = {"strike": d["strike"], "right": d["right"], "con_id": d["con_id"],
                   "local_symbol": d["local_symbol"], "multiplier": d["multiplier"], **_quote_fields(t),
                   "open_interest": _num(getattr(t, "callOpenInterest" if c.right == "C" else "putOpenInterest",
                                                 None))}
            row.pop("time", None)
            if greeks:
                g = t.modelGreeks
                row.update({k: _num(getattr(g, k, None)) if g is not None else None for k in _GREEKS})
            rows.append(row)
        return {"symbol": und["symbol"], "sec_type": opt_type, "expiry": exp, "underlying_price": spot,
                "strikes_listed": len({c.strike for c in contracts}), "strikes_shown": len(strikes),
                "rows": rows}

    @rpcmethod
    async def option_snapshot(self, con_id: int) -> dict[str, Any]:
        """One option (or futures option) by conId: its contract, quote (bid/ask/mid/last/volume), the broker's
        implied volatility and greeks (``Ticker.modelGreeks``), the underlying price, intrinsic and time value."""
        from trader.broker.convert import contract_to_dict

        if isinstance(con_id, bool) or not isinstance(con_id, int) or con_id <= 0:
            raise ValueError(f"con_id must be a positive integer, got {con_id!r}")
        c = await self.broker.resolve("", con_id=con_id)
        if c.get("sec_type") not in ("OPT", "FOP"):
            raise ValueError(f"conId {con_id} is a {c.get('sec_type')}, not an option (OPT/FOP)")
        [t] = await self._tickers([await self.broker.resolver.qualified(c)])
        d = contract_to_dict(t.contract) if t.contract is not None else c
        quote = _quote_fields(t)
        g = t.modelGreeks
        greeks = {k: _num(getattr(g, k, None)) if g is not None else None for k in _GREEKS}
        und, strike, right = greeks["undPrice"], float(c.get("strike") or 0.0), str(c.get("right") or "")
        intrinsic = (max(und - strike, 0.0) if right == "C" else max(strike - und, 0.0)) if und is not None else None
        price = quote["mid"] or quote["last"]
        return {"symbol": c.get("symbol"), "local_symbol": d.get("local_symbol") or c.get("local_symbol"),
                "con_id": con_id, "sec_type": c.get("sec_type"), "expiry": str(c.get("last_trade_date") or "")[:8],
                "strike": strike, "right": right, "multiplier": c.get("multiplier"), **quote,
                "open_interest": _num(getattr(t, "callOpenInterest" if right == "C" else "putOpenInterest", None)),
                **greeks, "intrinsic": intrinsic,
                "time_value": price - intrinsic if price is not None and intrinsic is not None else None}

    @rpcmethod
    async def option_implied(self, symbol: str, expiry: str, levels: list[float] | None = None,
                             sec_type: str = "STK", exchange: str = "SMART", currency: str = "USD") -> dict[str, Any]:
        """The market-implied (risk-neutral) distribution of ``symbol`` at ``expiry`` from the mids of the
        ``MAX_IMPLIED_STRIKES`` strikes nearest the money (Breeden–Litzenberger on a smoothed IV curve,
        ``trader/tools/implied.py``): forward, mean, std, percentiles, P(below/above) each of ``levels`` (default
        spot ±5 % and ±10 %) and the density curve (101 points). Expiry taken as 21:00 UTC of its date."""
        from trader.tools.implied import implied_distribution
        from trader.tools.options import parse_expiry, strikes_near

        exp = parse_expiry(expiry)
        wanted = [float(x) for x in (levels or [])][:10]
        if not all(math.isfinite(x) and x > 0 for x in wanted):
            raise ValueError(f"levels must be positive prices, got {levels!r}")
        years = (datetime.strptime(exp, "%Y%m%d").replace(hour=21, tzinfo=UTC) - datetime.now(UTC)).total_seconds()
        years /= 365.25 * 86400
        if years <= 0:
            raise ValueError(f"expiry {exp} has passed")
        und, spot, opt_type, contracts = await self._expiry_contracts(symbol, sec_type, exchange, currency, exp)
        strikes = set(strikes_near([c.strike for c in contracts], spot, limit=MAX_IMPLIED_STRIKES))
        chosen = sorted((c for c in contracts if c.strike in strikes), key=lambda c: (c.strike, c.right))
        for c in chosen:
            c.exchange = c.exchange or "SMART"
        mids: dict[tuple[float, str], float | None] = {}
        for c, t in zip(chosen, await self._tickers(chosen), strict=True):
            mids[(c.strike, c.right)] = _quote_fields(t)["mid"]
        ks = sorted(strikes)
        if not wanted and spot:
            wanted = [round(spot * f, 2) for f in (0.9, 0.95, 1.05, 1.1)]
        dist = await asyncio.to_thread(implied_distribution, ks, [mids.get((k, "C")) for k in ks],
                                       [mids.get((k, "P")) for k in ks], years, wanted)
        return {"symbol": und["symbol"], "sec_type": opt_type, "expiry": exp, "underlying_price": spot,
                "strikes_listed": len({c.strike for c in contracts}), **dist.to_dict()}

    # ------------------------------------------------------------------ forex
    async def _fx_contract(self, base: str, quote: str) -> dict[str, Any] | None:
        try:
            return await self.broker.resolve(base, "CASH", "IDEALPRO", quote)
        except ContractNotFound:
            return None

    @rpcmethod
    async def fx_quotes(self, pairs: list[str]) -> dict[str, Any]:
        """Quotes of currency pairs (``EURUSD``, ``EUR.USD``): bid, ask, mid, spread in pips, change vs the
        previous close. Pairs the broker does not list are named in ``missing``."""
        from trader.tools.forex import parse_pair

        found, missing = [], {}
        for text in list(dict.fromkeys(pairs))[:20]:
            try:
                base, quote = parse_pair(text)
            except ValueError as exc:
                missing[text] = str(exc)
                continue
            c = await self._fx_contract(base, quote)
            if c is None:
                missing[text] = f"{base}.{quote} is not listed (try {quote}{base})"
                continue
            found.append((base, quote, c))
        tickers = await self._tickers([await self.broker.resolver.qualified(c) for _b, _q, c in found])
        rows = []
        for (base, quote, c), t in zip(found, tickers, strict=True):
            q = _quote_fields(t)
            pip = 0.01 if quote == "JPY" else 0.0001
            spread = (q["ask"] - q["bid"]) / pip if q["bid"] and q["ask"] else None
            ref = q["mid"] or q["last"]
            change = ref / q["close"] * 100 - 100 if ref and q["close"] else None
            rows.append({"pair": f"{base}{quote}", "base": base, "quote": quote, "con_id": c["con_id"],
                         "bid": q["bid"], "ask": q["ask"], "mid": q["mid"], "close": q["close"],
                         "spread_pips": round(spread, 2) if spread is not None else None,
                         "change_pct": round(change, 4) if change is not None else None, "time": q["time"]})
        return {"quotes": rows, "missing": missing}

    async def fx_to_base(self, currency: str, base: str) -> float | None:
        """Base-currency units per unit of ``currency``: 1 for the base itself, IB's ``ExchangeRate`` account
        value when the account holds the currency, else the listed pair's mid (``fx_convert``); None when unknown
        (the risk gate then refuses to value the order)."""
        ccy, base = (currency or "").strip().upper(), (base or "USD").strip().upper()
        if not ccy or ccy == base:
            return 1.0
        for row in self.broker.cash_balances():
            if row["currency"] == ccy and row.get("exchange_rate"):
                return float(row["exchange_rate"])
        try:
            rate = (await self.fx_convert(ccy, base, 1.0))["rate"]
        except Exception:  # noqa: BLE001 - no listed pair or no quote: unknown, and the gate fails closed
            log.warning("no exchange rate %s -> %s", ccy, base, exc_info=True)
            return None
        return float(rate) if rate and math.isfinite(rate) and rate > 0 else None

    @rpcmethod
    async def fx_convert(self, src: str, dst: str, amount: float) -> dict[str, Any]:
        """``amount`` of ``src`` in ``dst`` at the mid of the listed pair (its inverse, or two legs via USD)."""
        from trader.tools.forex import conversion_legs, convert

        src, dst = src.strip().upper(), dst.strip().upper()
        if not (isinstance(amount, (int, float)) and math.isfinite(amount) and amount > 0):
            raise ValueError(f"amount must be a positive number, got {amount!r}")
        listed: dict[tuple[str, str], dict[str, Any] | None] = {}
        for a, b in {(src, dst), (dst, src), (src, "USD"), ("USD", src), ("USD", dst), (dst, "USD")}:
            if a != b and len(a) == 3 and len(b) == 3:
                listed[(a, b)] = await self._fx_contract(a, b)
        legs = conversion_legs(src, dst, lambda a, b: listed.get((a, b)) is not None)
        quotes = (await self.fx_quotes([f"{a}{b}" for a, b, _inv in legs]))["quotes"] if legs else []
        rates = [q["mid"] or q["close"] for q in quotes]
        result = convert(amount, legs, rates)
        return {"from": src, "to": dst, "amount": amount, "converted": result,
                "rate": result / amount, "legs": [{"pair": f"{a}.{b}", "inverted": inv, "mid": r}
                                                  for (a, b, inv), r in zip(legs, rates, strict=True)]}
