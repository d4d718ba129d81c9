"""ContractResolver: against the simulated gateway (AAPL, unknowns, ambiguous futures/options) and a fake IB
for the tie-break rules; plus the broker exceptions crossing the wire as themselves."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import Contract, ContractDetails

from trader.broker.contracts import ContractResolver, MemoryContractCache, cache_key
from trader.errors import (
    AmbiguousContract,
    ContractNotFound,
    OrderNotFound,
    OrderRejected,
    PositionNotFound,
    error_from_wire,
    error_to_wire,
)
from trader.testing import run_async

from .conftest import AAPL_CON_ID

KEYS = {"con_id", "symbol", "sec_type", "exchange", "primary_exchange", "currency", "local_symbol", "trading_class",
        "multiplier", "last_trade_date", "strike", "right", "long_name", "min_tick",
        "min_size", "size_increment"}


# --------------------------------------------------------------------------- against the simulated gateway
@run_async
async def test_resolve_aapl_gives_its_conid_and_details_and_is_cached(sim_broker):
    async with sim_broker() as b:  # the fixture already resolved AAPL once
        c = b.aapl_dict
        assert set(c) == KEYS
        assert (c["con_id"], c["symbol"], c["sec_type"], c["currency"]) == (AAPL_CON_ID, "AAPL", "STK", "USD")
        assert c["primary_exchange"] == "NASDAQ" and c["long_name"] == "APPLE INC" and c["min_tick"] == 0.01
        assert (c["min_size"], c["size_increment"]) == (1.0, 1.0)  # whole shares, as the gateway says
        key = cache_key("AAPL", "STK", "SMART", "USD")
        assert b.cache.get(key) == c
        b.cache.put(key, {**c, "long_name": "FROM CACHE"})  # a second resolve is served from the cache
        assert (await b.resolver.resolve("aapl"))["long_name"] == "FROM CACHE"
        ib_contract = await b.resolver.qualified(c)
        assert (ib_contract.conId, ib_contract.exchange) == (AAPL_CON_ID, "SMART")


@run_async
async def test_unknown_symbol_is_contract_not_found_and_not_cached(sim_broker):
    async with sim_broker() as b:
        with pytest.raises(ContractNotFound, match="ZZZNOPE"):
            await b.resolver.resolve("ZZZNOPE")
        assert b.cache.get(cache_key("ZZZNOPE", "STK", "SMART", "USD")) is None


@run_async
async def test_future_without_expiry_is_the_front_month_never_cached(sim_broker):
    from datetime import datetime

    from trader.trading.contract_select import FUT_ROLL_DAYS

    async with sim_broker() as b:
        front = await b.resolver.resolve("ES", "FUT", "CME")
        assert front["symbol"] == "ES" and front["sec_type"] == "FUT"
        days = (datetime.strptime(front["last_trade_date"], "%Y%m%d").date() - b.resolver.today()).days
        assert days > FUT_ROLL_DAYS
        assert b.cache.get(cache_key("ES", "FUT", "", "USD")) is None  # the front month moves: never cached
        # a later contract month is picked by its expiry; its local symbol names it too
        later = await b.resolver.resolve("ES", "FUT", "CME", expiry=str(int(front["last_trade_date"][:6]) + 3)
                                         if front["last_trade_date"][4:6] != "12"
                                         else f"{int(front['last_trade_date'][:4]) + 1}03")
        assert later["last_trade_date"] > front["last_trade_date"]
        again = await b.resolver.resolve(later["local_symbol"], "FUT")
        assert again["con_id"] == later["con_id"]


@run_async
async def test_option_without_strike_is_ambiguous(sim_broker):
    async with sim_broker() as b:
        with pytest.raises(AmbiguousContract) as exc:
            await b.resolver.resolve("AAPL", "OPT", "SMART")
        assert 1 <= len(exc.value.candidates) <= 5 and "expiries" in str(exc.value)  # bounded
        assert all("--strike" in c["flags"] for c in exc.value.candidates)
        assert {c["sec_type"] for c in exc.value.candidates} == {"OPT"}
        c = exc.value.candidates[0]
        one = await b.resolver.resolve("AAPL", "OPT", "SMART", last_trade_date=c["last_trade_date"],
                                       strike=c["strike"], right=c["right"])
        assert one["con_id"] == c["con_id"] and one["multiplier"] == "100"


# --------------------------------------------------------------------------- tie-break rules (fake IB)
def details(con_id: int, currency: str, primary: str, symbol: str = "SAP") -> ContractDetails:
    c = Contract(conId=con_id, symbol=symbol, secType="STK", exchange="SMART", primaryExchange=primary,
                 currency=currency)
    return ContractDetails(contract=c, longName=f"{symbol} on {primary}", minTick=0.01)


class FakeIB:
    """Answers reqContractDetailsAsync with canned details (or never, to test the timeout)."""

    def __init__(self, answer: list[ContractDetails] | None) -> None:
        self.answer = answer
        self.queries: list[Contract] = []

    async def reqContractDetailsAsync(self, contract: Contract) -> list[ContractDetails]:
        self.queries.append(contract)
        if self.answer is None:
            await asyncio.sleep(30)
        return list(self.answer or [])


@run_async
async def test_several_listings_resolve_to_the_one_in_the_asked_currency():
    ib = FakeIB([details(1, "EUR", "IBIS"), details(2, "USD", "NYSE"), details(2, "USD", "NYSE")])
    got = await ContractResolver(ib).resolve("SAP", currency="EUR")  # type: ignore[arg-type]
    assert (got["con_id"], got["primary_exchange"]) == (1, "IBIS")
    q = ib.queries[0]
    assert (q.symbol, q.secType, q.exchange, q.currency) == ("SAP", "STK", "SMART", "EUR")


@run_async
async def test_several_listings_in_the_same_currency_stay_ambiguous():
    ib = FakeIB([details(1, "USD", "NYSE"), details(2, "USD", "ARCA"), details(3, "EUR", "IBIS")])
    with pytest.raises(AmbiguousContract) as exc:
        await ContractResolver(ib).resolve("SAP")  # type: ignore[arg-type]
    assert sorted(c["con_id"] for c in exc.value.candidates) == [1, 2, 3]


@run_async
async def test_only_smart_stocks_get_the_currency_tie_break():
    ib = FakeIB([details(1, "EUR", "IBIS"), details(2, "USD", "NYSE")])
    with pytest.raises(AmbiguousContract):
        await ContractResolver(ib).resolve("SAP", exchange="IBIS", currency="EUR")  # type: ignore[arg-type]


@run_async
async def test_timeout_and_bad_fields_raise_clear_errors():
    with pytest.raises(TimeoutError, match="did not answer"):
        await ContractResolver(FakeIB(None), timeout=0.05).resolve("AAPL")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown contract field"):
        await ContractResolver(FakeIB([])).resolve("AAPL", colour="red")  # type: ignore[arg-type]


@run_async
async def test_a_repeated_query_is_normalised_once_and_answers_the_same():
    """The resolver memoises each raw query's normal form (a batch resolves the same few many times): a repeat
    is served from the cache with the same answer, a bad field is refused every time, an unhashable value is
    judged by the normalisation as before."""
    ib = FakeIB([details(2, "USD", "NYSE")])
    resolver = ContractResolver(ib, MemoryContractCache())  # type: ignore[arg-type]
    first = await resolver.resolve(" sap ", "stk", "smart", "usd")
    for _ in range(3):
        assert await resolver.resolve(" sap ", "stk", "smart", "usd") == first
    assert await resolver.resolve("SAP") == first  # another spelling of the same query: the same cache key
    assert len(ib.queries) == 1
    for _ in range(2):
        with pytest.raises(ValueError, match="unknown contract field"):
            await resolver.resolve("SAP", colour="red")
        with pytest.raises(ValueError, match="right must be"):
            await resolver.resolve("SAP", "OPT", right="X", strike=100)
    with pytest.raises(TypeError):  # unhashable: not memoised, refused by the normalisation
        await resolver.resolve("SAP", strike=[1])
    assert len(ib.queries) == 1


def test_memory_cache_returns_copies():
    cache = MemoryContractCache()
    cache.put("k", {"con_id": 1})
    got = cache.get("k")
    assert got == {"con_id": 1}
    got["con_id"] = 2  # type: ignore[index]
    assert cache.get("k") == {"con_id": 1} and cache.get("missing") is None
    assert cache_key("es", "fut", "cme", "usd", last_trade_date="202606", strike=None) == \
        "FUT|ES|CME|USD|last_trade_date=202606"


# --------------------------------------------------------------------------- errors cross the wire as themselves
@pytest.mark.parametrize("exc", [
    ContractNotFound("no contract matches STK|X|SMART|USD"),
    AmbiguousContract("2 contracts match", [{"con_id": 1}, {"con_id": 2}]),
    OrderNotFound("no order 7"),
    PositionNotFound("no position in MSFT"),
    OrderRejected(201, "Order rejected - reason:margin", "stop-loss"),
])
def test_broker_errors_round_trip_the_wire(exc):
    back = error_from_wire(error_to_wire(exc))
    assert type(back) is type(exc) and str(back) == str(exc) and back.args == exc.args


def test_order_rejected_names_the_leg_and_code():
    e = OrderRejected(201, "no margin", "take-profit")
    assert (e.code, e.message, e.leg) == (201, "no margin", "take-profit")
    assert str(e) == "take-profit leg rejected (201): no margin"
    assert str(OrderRejected(110, "bad tick")) == "order rejected (110): bad tick"
    assert AmbiguousContract("m", [{"con_id": 1}]).args[1] == [{"con_id": 1}]
