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
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Protocol

from ib_async import IB, Contract, ContractDetails

from trader.broker.convert import contract_to_dict
from trader.errors import AmbiguousContract, ContractNotFound
from trader.trading.contract_select import ambiguity_report, front_month, parse_local_symbol

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
# Sec types IB does not SMART-route: "SMART" (the CLI's default) means "any exchange" for them.
_NO_SMART = frozenset({"FUT", "FOP", "CASH", "IND", "CONTFUT"})
_RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}


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


class ContractResolver:
    """Resolves symbols to contracts through ``ib`` (see module doc)."""

    def __init__(self, ib: IB, cache: ContractCache | None = None, *, timeout: float = 10.0,
                 today: Callable[[], date] | None = None) -> None:
        self.ib = ib
        self.cache = cache
        self.timeout = timeout
        self.today = today or (lambda: datetime.now(UTC).date())
        self._queries: dict[Any, tuple[Any, ...]] = {}  # raw query → its normal form and cache key (_query)

    async def resolve(self, symbol: str, sec_type: str = "STK", exchange: str = "SMART", currency: str = "USD",
                      **kw: Any) -> dict[str, Any]:
        """The one contract matching the query, as a contract dict (trader_api.md).

        ``kw`` narrows the query: last_trade_date (or expiry), strike, right, multiplier, local_symbol,
        trading_class, primary_exchange, con_id. Raises ``ContractNotFound``, ``AmbiguousContract`` (with the
        candidates), ``TimeoutError`` when IB does not answer within the timeout, ``ValueError`` on an unknown
        keyword.
        """
        try:  # a batch's checks resolve the same few queries many times: their normal form is memoised
            raw: Any = (symbol, sec_type, exchange, currency, *sorted(kw.items()))
            norm = self._queries.get(raw)
        except TypeError:  # an unhashable value: normalised below, which reports it
            raw = norm = None
        if norm is None:
            norm = _query(symbol, sec_type, exchange, currency, kw)
            if raw is not None:
                if len(self._queries) >= 4096:  # bounded: a long-running service sees many symbols
                    self._queries.clear()
                self._queries[raw] = norm
        symbol, sec_type, exchange, currency, fields, key, pick_front = norm
        if self.cache is not None and not pick_front:  # the front month moves: never cached
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        query = Contract(symbol=symbol, secType=sec_type, exchange=exchange, currency=currency)
        for name, value in fields:
            if value not in (None, ""):
                setattr(query, _FIELDS[name], value)
        try:
            details = await asyncio.wait_for(self.ib.reqContractDetailsAsync(query), self.timeout)
        except TimeoutError:
            raise TimeoutError(f"IB did not answer the contract query {key} within {self.timeout:g} s") from None
        result = self._choose(details or [], key, sec_type, exchange, currency,
                              today=self.today() if pick_front else None)
        if self.cache is not None and not pick_front:
            self.cache.put(key, result)
        return result

    @staticmethod
    def _choose(details: list[ContractDetails], key: str, sec_type: str, exchange: str,
                currency: str, today: date | None = None) -> dict[str, Any]:
        unique: dict[int, ContractDetails] = {}
        for d in details:  # IB may list one contract once per exchange
            if d.contract is not None:
                unique.setdefault(d.contract.conId, d)
        found = list(unique.values())
        if not found:
            raise ContractNotFound(f"no contract matches {key}")
        if len(found) == 1:
            return contract_to_dict(found[0])
        if sec_type == "STK" and exchange == "SMART" and currency:
            # Several listings of one stock: the home listing is the only one quoted in the currency asked.
            same_ccy = [d for d in found if d.contract is not None and d.contract.currency == currency]
            if len(same_ccy) == 1:
                return contract_to_dict(same_ccy[0])
        candidates = [contract_to_dict(d) for d in found]
        if today is not None:  # a futures query without an expiry means the front month
            front = front_month(candidates, today)
            if front is not None:
                return front
        message, listed = ambiguity_report(candidates, key)
        raise AmbiguousContract(message, listed)

    async def qualified(self, contract: dict[str, Any]) -> Contract:
        """An ib_async ``Contract`` for a contract dict: conId + exchange (resolved first if conId is missing)."""
        if not contract.get("con_id"):
            contract = await self.resolve(contract["symbol"], contract.get("sec_type") or "STK",
                                          contract.get("exchange") or "SMART", contract.get("currency") or "USD",
                                          local_symbol=contract.get("local_symbol") or "")
        return Contract(
            conId=int(contract["con_id"]),
            exchange=contract.get("exchange") or "SMART",
            symbol=contract.get("symbol") or "",
            secType=contract.get("sec_type") or "",
            currency=contract.get("currency") or "",
        )


def _query(symbol: str, sec_type: str, exchange: str, currency: str,
           kw: dict[str, Any]) -> tuple[str, str, str, str, tuple[tuple[str, Any], ...], str, bool]:
    """A query's normal form: symbol, sec type, exchange, currency, selection fields, cache key and whether it
    picks the front month (a future without an expiry). Raises ``ValueError`` on an unknown or bad field."""
    unknown = sorted(set(kw) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown contract field(s) {unknown}; use {sorted(_FIELDS)}")
    symbol, sec_type = (symbol or "").strip().upper(), (sec_type or "STK").strip().upper()
    exchange, currency = (exchange or "").strip().upper(), (currency or "").strip().upper()
    kw = _normalise(kw)
    parsed = parse_local_symbol(kw.get("local_symbol") or symbol, sec_type)
    if parsed is not None:  # ESZ6, "AAPL  261218C00250000": the local symbol names the contract
        symbol, sec_type, kw["local_symbol"] = parsed["symbol"], parsed["sec_type"], parsed["local_symbol"]
    if sec_type in _NO_SMART and exchange == "SMART":
        exchange = ""
    if kw.get("con_id"):  # a conId names one contract: the other fields could only contradict it
        symbol, sec_type, exchange, currency, kw = "", "", "", "", {"con_id": kw["con_id"]}
    key = cache_key(symbol, sec_type, exchange, currency, **kw)
    pick_front = sec_type == "FUT" and not any(kw.get(k) for k in ("last_trade_date", "expiry", "local_symbol"))
    return symbol, sec_type, exchange, currency, tuple(kw.items()), key, pick_front


def _normalise(kw: dict[str, Any]) -> dict[str, Any]:
    """Selection fields as IB spells them: expiry → last_trade_date, right C|P, strike a float, conId an int;
    empty values dropped. Raises ``ValueError`` on a right that is not C/P/CALL/PUT."""
    out: dict[str, Any] = {}
    for name, value in kw.items():
        if value in (None, "", 0, 0.0, "0"):
            continue
        if name == "expiry":
            name = "last_trade_date"
        if name == "right":
            right = _RIGHTS.get(str(value).strip().upper())
            if right is None:
                raise ValueError(f"right must be C or P (CALL/PUT), got {value!r}")
            value = right
        elif name == "strike":
            value = float(value)
        elif name == "con_id":
            value = int(value)
        elif name in ("multiplier", "last_trade_date"):
            value = f"{float(value):g}" if name == "multiplier" else str(value).replace("-", "").strip()
        else:
            value = str(value).strip().upper() if name != "local_symbol" else " ".join(str(value).split())
        out[name] = value
    return out
