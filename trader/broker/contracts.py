"""Contract resolution: a symbol query → exactly one IB contract, or a clear error listing the candidates.

``ContractResolver.resolve`` asks IB (``reqContractDetailsAsync``) and never guesses: no match raises
``ContractNotFound``, several raise ``AmbiguousContract`` with every candidate. The one tie it breaks: a stock
routed SMART that IB lists on several primary exchanges resolves to its home listing when exactly one candidate
trades in the currency asked for. Results are cached through the small ``ContractCache`` protocol (the service
backs it with DuckDB; :class:`MemoryContractCache` serves tests).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ib_async import IB, Contract, ContractDetails

from trader.broker.convert import contract_to_dict
from trader.errors import AmbiguousContract, ContractNotFound

log = logging.getLogger(__name__)

__all__ = ["ContractCache", "MemoryContractCache", "ContractResolver", "cache_key"]

# resolve(**kw) names → ib_async Contract fields
_FIELDS = {
    "last_trade_date": "lastTradeDateOrContractMonth",
    "expiry": "lastTradeDateOrContractMonth",
    "strike": "strike",
    "right": "right",
    "multiplier": "multiplier",
    "local_symbol": "localSymbol",
    "trading_class": "tradingClass",
    "primary_exchange": "primaryExchange",
    "con_id": "conId",
}
_MAX_LISTED = 10  # candidates named in the message (all of them are in .candidates)


class ContractCache(Protocol):
    """Where resolved contracts are kept between calls (and restarts, when backed by a store)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, contract: dict[str, Any]) -> None: ...


class MemoryContractCache:
    """A ``ContractCache`` in a dict (tests, or a process without a store)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached contract dict for ``key``, or None."""
        hit = self.items.get(key)
        return dict(hit) if hit is not None else None

    def put(self, key: str, contract: dict[str, Any]) -> None:
        """Remember ``contract`` under ``key``."""
        self.items[key] = dict(contract)


def cache_key(symbol: str, sec_type: str, exchange: str, currency: str, **kw: Any) -> str:
    """A stable key for one query: ``STK|AAPL|SMART|USD`` plus any extra fields, sorted."""
    extra = "".join(f"|{k}={kw[k]}" for k in sorted(kw) if kw[k] not in (None, ""))
    return f"{sec_type.upper()}|{symbol.upper()}|{exchange.upper()}|{currency.upper()}{extra}"


def _describe(c: dict[str, Any]) -> str:
    parts = [c["symbol"], c["sec_type"]]
    for key in ("last_trade_date", "strike", "right", "primary_exchange" if c["sec_type"] == "STK" else "exchange"):
        if c.get(key):
            parts.append(str(c[key]))
    parts.append(c["currency"])
    return f"{' '.join(parts)} (conId {c['con_id']})"


class ContractResolver:
    """Resolves symbols to contracts through ``ib`` (see module doc)."""

    def __init__(self, ib: IB, cache: ContractCache | None = None, *, timeout: float = 10.0) -> None:
        self.ib = ib
        self.cache = cache
        self.timeout = timeout

    async def resolve(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART", currency: str = "USD",
                      **kw: Any) -> dict[str, Any]:
        """The one contract matching the query, as a contract dict (trader_api.md).

        ``kw`` narrows the query: last_trade_date (or expiry), strike, right, multiplier, local_symbol,
        trading_class, primary_exchange, con_id. Raises ``ContractNotFound``, ``AmbiguousContract`` (with the
        candidates), ``TimeoutError`` when IB does not answer within the timeout, ``ValueError`` on an unknown
        keyword.
        """
        unknown = sorted(set(kw) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown contract field(s) {unknown}; use {sorted(_FIELDS)}")
        symbol, sec_type = symbol.strip().upper(), sec_type.strip().upper()
        exchange, currency = exchange.strip().upper(), currency.strip().upper()
        key = cache_key(symbol, sec_type, exchange, currency, **kw)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        query = Contract(symbol=symbol, secType=sec_type, exchange=exchange, currency=currency)
        for name, value in kw.items():
            if value not in (None, ""):
                setattr(query, _FIELDS[name], value)
        try:
            details = await asyncio.wait_for(self.ib.reqContractDetailsAsync(query), self.timeout)
        except TimeoutError:
            raise TimeoutError(f"IB did not answer the contract query {key} within {self.timeout:g} s") from None
        chosen = self._choose(details or [], key, sec_type, exchange, currency)
        result = contract_to_dict(chosen)
        if self.cache is not None:
            self.cache.put(key, result)
        return result

    @staticmethod
    def _choose(details: list[ContractDetails], key: str, sec_type: str, exchange: str,
                currency: str) -> ContractDetails:
        unique: dict[int, ContractDetails] = {}
        for d in details:  # IB may list one contract once per exchange
            if d.contract is not None:
                unique.setdefault(d.contract.conId, d)
        found = list(unique.values())
        if not found:
            raise ContractNotFound(f"no contract matches {key}")
        if len(found) == 1:
            return found[0]
        if sec_type == "STK" and exchange == "SMART" and currency:
            # Several listings of one stock: the home listing is the only one quoted in the currency asked.
            same_ccy = [d for d in found if d.contract is not None and d.contract.currency == currency]
            if len(same_ccy) == 1:
                return same_ccy[0]
        candidates = sorted((contract_to_dict(d) for d in found),
                            key=lambda c: (c["last_trade_date"], c["strike"] or 0.0, c["right"], c["con_id"]))
        listed = "; ".join(_describe(c) for c in candidates[:_MAX_LISTED])
        more = f"; … {len(candidates) - _MAX_LISTED} more" if len(candidates) > _MAX_LISTED else ""
        raise AmbiguousContract(
            f"{len(candidates)} contracts match {key}; narrow the query (e.g. expiry, strike, right, "
            f"primary exchange): {listed}{more}",
            candidates,
        )

    async def qualified(self, contract: dict[str, Any]) -> Contract:
        """An ib_async ``Contract`` for a contract dict: conId + exchange (resolved first if conId is missing)."""
        if not contract.get("con_id"):
            contract = await self.resolve(contract["symbol"], contract.get("sec_type") or "STK",
                                          contract.get("exchange") or "SMART", contract.get("currency") or "USD")
        return Contract(
            conId=int(contract["con_id"]),
            exchange=contract.get("exchange") or "SMART",
            symbol=contract.get("symbol") or "",
            secType=contract.get("sec_type") or "",
            currency=contract.get("currency") or "",
        )
