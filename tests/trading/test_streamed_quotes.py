"""A proposal is priced from a ticker trader_service already streams when that ticker is fresh (no snapshot request);
a stale one, a snapshot-only ticker, or a read outside a proposal's pricing (an approval's checks) requests a
snapshot as before."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from ib_async import Stock, Ticker

from trader.broker.adapter import IBBroker
from trader.broker.connection import BrokerSession
from trader.objects import BrokerState
from trader.trading.models import AccountSnapshot
from trader.trading.pipeline_service import ProposalPipeline
from trader.trading.quote_scope import shared_reads, streamed_quotes, streamed_quotes_allowed

CONTRACT = {"symbol": "AAPL", "con_id": 265598, "sec_type": "STK", "exchange": "SMART", "currency": "USD"}
SNAPSHOT = {"bid": 99.0, "ask": 101.0, "last": 100.0, "close": 98.0}


def _broker(*, age: float | None, subscribed: bool = True, max_age: float = 3.0) -> tuple[IBBroker, list[int]]:
    """An IBBroker on an unconnected session made to look connected, with AAPL's ticker updated ``age`` seconds
    ago (None: no ticker) and its snapshot requests counted."""
    session = BrokerSession("127.0.0.1", 1, 1)
    session.state, session.reconciled = BrokerState.CONNECTED, True
    session.ib.isConnected = lambda: True  # type: ignore[method-assign]
    broker = IBBroker(session, quote_max_age=max_age)
    contract = Stock("AAPL", "SMART", "USD", conId=CONTRACT["con_id"])
    if subscribed:
        session._subscriptions[contract.conId] = contract
    if age is not None:  # what ib_async keeps for a streamed (or snapshotted) contract
        t = session.ib.wrapper.tickers[hash(contract)] = Ticker(contract=contract)
        t.bid, t.ask, t.last, t.close, t.bidSize, t.askSize = 150.1, 150.3, 150.2, 149.0, 300, 200
        t.timestamp = time.time() - age  # what ib_async sets when it processes a tick
    requests: list[int] = []

    async def snapshot(c: dict[str, Any]) -> dict[str, Any]:
        requests.append(int(c["con_id"]))
        return {"symbol": c["symbol"], "con_id": c["con_id"], **SNAPSHOT}

    broker._snapshot_contract = snapshot  # type: ignore[method-assign]
    return broker, requests


async def _quote(broker: IBBroker, *, streamed: bool = True) -> dict[str, Any]:
    if not streamed:
        return await broker.snapshot_contract(CONTRACT)
    with streamed_quotes():
        return await broker.snapshot_contract(CONTRACT)


def test_a_fresh_streamed_quote_prices_a_proposal_without_a_snapshot_request() -> None:
    broker, requests = _broker(age=0.5)
    q = asyncio.run(_quote(broker))
    assert requests == []
    assert (q["bid"], q["ask"], q["last"], q["close"], q["bid_size"]) == (150.1, 150.3, 150.2, 149.0, 300)
    assert q["symbol"] == "AAPL" and q["con_id"] == CONTRACT["con_id"]

    async def batch() -> list[dict[str, Any]]:  # a batch's checks all see one quote, still without a request
        with streamed_quotes(), shared_reads():
            return await asyncio.gather(*(broker.snapshot_contract(CONTRACT) for _ in range(5)))

    assert [x["last"] for x in asyncio.run(batch())] == [150.2] * 5 and requests == []

    async def ticking() -> list[float]:  # the ticker moves during the batch: its checks keep the first quote
        ticker = next(iter(broker.session.ib.wrapper.tickers.values()))
        with streamed_quotes(), shared_reads():
            first = await broker.snapshot_contract(CONTRACT)
            ticker.last = 151.0
            later = await asyncio.gather(*(broker.snapshot_contract(CONTRACT) for _ in range(3)))
        return [first["last"], *(x["last"] for x in later), (await _quote(broker))["last"]]

    assert asyncio.run(ticking()) == [150.2, 150.2, 150.2, 150.2, 151.0] and requests == []
    stale, requests = _broker(age=10.0)

    async def without() -> list[float]:  # no fresh streamed quote: the batch shares one snapshot request
        with streamed_quotes(), shared_reads():
            return [x["last"] for x in await asyncio.gather(*(stale.snapshot_contract(CONTRACT) for _ in range(4)))]

    assert asyncio.run(without()) == [100.0] * 4 and requests == [CONTRACT["con_id"]]


@pytest.mark.parametrize("case", ["stale", "not streamed", "no ticker", "streamed off (0 s)", "disconnected",
                                  "approval's checks"])
def test_otherwise_a_snapshot_is_requested(case: str) -> None:
    broker, requests = _broker(age=10.0 if case == "stale" else None if case == "no ticker" else 0.5,
                               subscribed=case != "not streamed", max_age=0.0 if case.startswith("streamed off") else 3.0)
    if case == "disconnected":
        broker.session.state = BrokerState.DISCONNECTED
    q = asyncio.run(_quote(broker, streamed=case != "approval's checks"))
    assert requests == [CONTRACT["con_id"]]
    assert (q["bid"], q["ask"], q["last"]) == (99.0, 101.0, 100.0)


def test_a_streamed_ticker_without_a_price_is_not_used() -> None:
    broker, requests = _broker(age=0.5)
    t = broker.session.ib.ticker(broker.session._subscriptions[CONTRACT["con_id"]])
    t.bid = t.ask = t.last = t.close = float("nan")
    assert asyncio.run(_quote(broker))["last"] == 100.0 and requests == [CONTRACT["con_id"]]


class _Market:
    def __init__(self) -> None:
        self.streamed: list[bool] = []

    async def price(self, symbol: str, sec_type: str, exchange: str, currency: str) -> float:
        self.streamed.append(streamed_quotes_allowed())
        return 50.0

    def positions(self) -> list:
        return []

    def account(self) -> AccountSnapshot:
        return AccountSnapshot(net_liquidation=100_000.0)


def test_propose_prices_inside_the_streamed_scope_and_leaves_it(tmp_path) -> None:
    from trader.data.proposals import GroupStore, ProposalStore
    from trader.data.store import state_store

    store = state_store(tmp_path)
    market = _Market()
    seen: list[bool] = []

    async def preview(req: Any) -> dict[str, Any]:  # the risk gate's what-if prices inside the scope too
        seen.append(streamed_quotes_allowed())
        return {"quantity": req.quantity, "price": 50.0, "decision": {"allowed": True}}

    pipe = ProposalPipeline(ProposalStore(store), GroupStore(store), None, market, lambda k, c: [],  # type: ignore[arg-type]
                            preview=preview)

    async def main() -> bool:
        await pipe.propose("AAPL", "BUY", quantity=10, dry_run=True)
        await pipe.propose_many([{"symbol": "MSFT", "action": "BUY", "quantity": 5}])
        return streamed_quotes_allowed()

    assert asyncio.run(main()) is False  # the scope ends with the proposal's checks
    assert market.streamed == [True, True] and seen == [True, True]
