"""A bar close's signals become proposals in one store transaction, idempotent per request id; the caps count
what filled (and what is in flight), not what was approved."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec

from trader.config import StrategyEntry
from trader.data.proposals import GroupStore, ProposalStore
from trader.data.store import state_store
from trader.strategy.attribution import StrategyFill
from trader.strategy.guards import INFLIGHT_SECONDS, AutoExecGuard, CapBook
from trader.strategy.models import LiveSignal
from trader.trading.models import AccountSnapshot, Action
from trader.trading.pipeline_service import ProposalPipeline
from trader.trading.proposals import Proposal, ProposalState

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def _p(rid: str, symbol: str = "AAPL") -> Proposal:
    return Proposal(id=0, symbol=symbol, action=Action.BUY, created_at=NOW, quantity=1.0, updated_at=NOW,
                    request_id=rid)


def test_insert_many_one_transaction_idempotent(tmp_path) -> None:
    ps = ProposalStore(state_store(tmp_path))
    first = ps.insert(_p("sig-a-open"))
    out = ps.insert_many([_p("sig-b-open"), _p("sig-a-open", "MSFT"), _p("sig-c-open"), _p("sig-b-open", "X")])
    assert [p.id for p in out] == [2, 1, 3, 2]  # known and repeated request ids answer with the first proposal
    assert out[1] == first and out[3].symbol == "AAPL"
    assert [p.id for p in ps.list()] == [3, 2, 1] and ps.insert_many([]) == []
    assert [p.id for p in ps.insert_many([_p("sig-c-open"), _p("")])] == [3, 4]  # no request id: always new
    from trader.trading.models import OrderType

    kw = {"symbol": "AAPL", "action": Action.SELL, "created_at": NOW, "quantity": 2.0, "updated_at": NOW,
          "limit_price": 10.5, "order_type": OrderType.LIMIT, "confidence": 0.5, "expires_at": NOW}
    one, many = ps.insert(Proposal(id=0, request_id="r1", **kw)), ps.insert_many([Proposal(id=0, request_id="r2",
                                                                                           **kw)])[0]
    cols = "SELECT * EXCLUDE (id, detail, request_id) FROM proposal_store WHERE id IN (?, ?) ORDER BY id"
    assert ps.store.execute(cols, [one.id, many.id], write=False) == []  # journaled, not in DuckDB yet
    assert ps.flush() == 2 and ps.flush() == 0
    a, b = ps.store.execute(cols, [one.id, many.id], write=False)  # the same columns whichever way it was stored
    assert a == b and a[7:10] == ("LMT", 10.5, 0.5) and ps.get(many.id) == many


class _Market:
    async def price(self, symbol, sec_type, exchange, currency):
        return 50.0

    def positions(self):
        return []

    def account(self):
        return AccountSnapshot(net_liquidation=100_000.0)


def test_propose_many_checks_each_and_stores_the_rest(tmp_path) -> None:
    store = state_store(tmp_path)

    async def never(*a, **k):  # no approvals here
        raise AssertionError("nothing is submitted by propose")

    pipe = ProposalPipeline(ProposalStore(store), GroupStore(store), never, _Market(), lambda kind, cid: [],
                            max_quantity=100)
    orders = [{"symbol": "AAPL", "action": "BUY", "quantity": 10, "request_id": "sig-s-1-60-open"},
              {"symbol": "MSFT", "action": "BUY", "quantity": 1000, "request_id": "sig-s-2-60-open"},  # over max
              {"symbol": "IBM", "action": "SELL", "quantity": 5, "request_id": "sig-s-3-60-close",
               "allow_short": True}]
    assert pipe.batch_ms == {"checks_ms": [], "store_ms": []}
    out = asyncio.run(pipe.propose_many(orders))
    assert out[0]["state"] == out[2]["state"] == ProposalState.PENDING.value and out[0]["id"] != out[2]["id"]
    # each batch's checks and its store step timed, for trader_service's status
    assert [len(v) for v in pipe.batch_ms.values()] == [1, 1] and all(v[0] > 0 for v in pipe.batch_ms.values())
    assert out[1]["error"]["type"] == "InvalidProposal" and "max_order_quantity" in out[1]["error"]["message"]
    again = asyncio.run(pipe.propose_many(orders[:1]))  # a retried bar close: the same proposal, not a new one
    brief = asyncio.run(pipe.propose_many(orders[:2], brief=True))  # what a strategy acts on, and the refusal
    assert brief == [{"id": out[0]["id"], "state": "PENDING", "symbol": "AAPL", "action": "BUY", "quantity": 10.0,
                      "request_id": "sig-s-1-60-open"}, out[1]]
    assert again[0]["id"] == out[0]["id"] and len(ProposalStore(store).list()) == 2
    # A retry whose checks no longer pass still answers with the first proposal (the refused orders' request ids
    # are looked up together); a refused order without a stored request id gets its error, in input order.
    pipe.max_quantity = 5
    retried = asyncio.run(pipe.propose_many([
        orders[0], {**orders[1], "quantity": 6}, {"symbol": "KO", "action": "BUY", "quantity": 6},
        {"symbol": "KO", "action": "BUY", "quantity": 1, "nope": 1}, {"action": "BUY"}, orders[2]]))
    assert [r.get("id") for r in retried] == [out[0]["id"], None, None, None, None, out[2]["id"]]
    assert [r["error"]["type"] for r in retried[1:5]] == ["InvalidProposal", "InvalidProposal", "TypeError",
                                                          "KeyError"]
    assert "max_order_quantity 5" in retried[1]["error"]["message"]
    assert "unexpected keyword argument 'nope'" in retried[3]["error"]["message"]
    assert "propose()" in retried[3]["error"]["message"]  # the words propose itself would refuse it with
    ps = ProposalStore(store)
    assert {k: p.id for k, p in ps.by_request_ids(["sig-s-3-60-close", "x", "sig-s-1-60-open", "x"]).items()} == {
        "sig-s-3-60-close": out[2]["id"], "sig-s-1-60-open": out[0]["id"]}
    assert ps.by_request_ids([]) == {} and len(ps.list()) == 2


def test_orders_alike_are_checked_once_and_stored_each_with_its_own_words(tmp_path) -> None:
    """Several strategies signalling the same order on one bar close: checked once (every check of a batch reads
    the same shared state), each stored as its own proposal with its own reasoning and request id."""
    store = state_store(tmp_path)
    sized: list[str] = []

    async def sizer(p, price):
        from trader.config import PositionSizingConfig
        from trader.trading.sizing import SizingInputs, size_position

        sized.append(p.request_id)
        return size_position(SizingInputs(price=price, confidence=p.confidence, nlv=100_000.0),
                             PositionSizingConfig())

    async def never(*a, **k):
        raise AssertionError("nothing is submitted by propose")

    pipe = ProposalPipeline(ProposalStore(store), GroupStore(store), never, _Market(), lambda kind, cid: [],
                            sizer=sizer)
    alike = {"symbol": "AAPL", "action": "BUY", "quantity": None, "confidence": 0.5}
    orders = [{**alike, "reasoning": f"strategy s{k}", "request_id": f"sig-s{k}-7-60-open"} for k in range(4)]
    orders.insert(2, {**alike, "confidence": 0.9, "reasoning": "other", "request_id": "sig-o-7-60-open"})
    orders.append({**alike, "reasoning": "bad id", "request_id": "x" * 500})  # its own words are refused
    out = asyncio.run(pipe.propose_many(orders))
    assert sized == ["sig-s0-7-60-open", "sig-o-7-60-open"]  # one check per distinct order
    stored = [o for o in out if "id" in o]
    assert len({o["id"] for o in stored}) == 5 and out[-1]["error"]["type"] == "InvalidOrder"
    assert [o["reasoning"] for o in stored] == ["strategy s0", "strategy s1", "other", "strategy s2", "strategy s3"]
    assert [o["request_id"] for o in stored] == [o["request_id"] for o in orders[:5]]
    same = [o for o in stored if o["reasoning"] != "other"]
    assert len({(o["quantity"], str(o["sizing"]), str(o["risk_preview"])) for o in same}) == 1
    assert stored[2]["quantity"] != same[0]["quantity"]  # another confidence: sized on its own
    # with a quantity, confidence is only the proposal's own words (the sizer alone reads it): alike
    priced: list[str] = []
    real_price = pipe.market.price

    async def price(symbol, *a):
        priced.append(symbol)
        return await real_price(symbol, *a)

    pipe.market.price = price  # each full check prices its order once
    closing = {"symbol": "AAPL", "action": "BUY", "quantity": 10}
    out = asyncio.run(pipe.propose_many([{**closing, "confidence": c, "request_id": f"c-{c}"} for c in (.2, .7)]))
    assert [o["confidence"] for o in out] == [.2, .7] and out[0]["risk_preview"] == out[1]["risk_preview"]
    assert priced == ["AAPL"]
    out = asyncio.run(pipe.propose_many([{**alike, "confidence": c, "request_id": f"d-{c}"} for c in (.2, .7)]))
    assert priced == ["AAPL"] * 3 and out[0]["quantity"] != out[1]["quantity"]  # sized: each checked
    sized.clear()
    # a refused first order: each alike one is checked on its own (the refusal may be about its own words)
    sized.clear()
    out = asyncio.run(pipe.propose_many([{**alike, "request_id": "y" * 500}, {**alike, "request_id": "fine-1"}]))
    assert out[0]["error"]["type"] == "InvalidOrder" and out[1]["request_id"] == "fine-1" and sized == ["fine-1"]


def _fill(pid: int, signed: float, t: datetime, strategy: str = "s", con_id: int = 7) -> StrategyFill:
    return StrategyFill(strategy=strategy, con_id=con_id, symbol="X", proposal_id=pid, exec_id=f"e{pid}",
                        side="BOT" if signed > 0 else "SLD", shares=abs(signed), price=10.0, time=t.isoformat())


def test_caps_from_fills_and_orders_in_flight() -> None:
    book = CapBook()
    book.update([_fill(1, 30, NOW - timedelta(days=1)), _fill(2, 20, NOW), _fill(3, -5, NOW, con_id=8)], NOW)
    assert book.position("s", 7) == 50 and book.position("s", 8) == -5
    assert book.orders_on("s", NOW.date().isoformat()) == 2  # proposals 2 and 3 filled today; 1 yesterday
    book.sent(4, "s", 7, 40, NOW)  # approved, not filled yet: counts as held and as an order
    assert book.position("s", 7) == 90 and book.position("s", 7, with_inflight=False) == 50
    assert book.orders_on("s", NOW.date().isoformat()) == 3
    book.update(book.fills + [_fill(4, 25, NOW)], NOW)  # a partial fill: in flight no more, the fill counts
    assert book.position("s", 7) == 75 and book.inflight == {}
    book.sent(5, "s", 7, 10, NOW)
    book.update(book.fills, NOW + timedelta(seconds=INFLIGHT_SECONDS + 1))  # never filled: stale
    assert book.position("s", 7) == 75

    entry = msgspec.convert({"name": "s", "module": "m.py", "class": "C", "conids": [7], "auto_execute": True,
                             "max_position": 100, "max_orders_per_day": 3}, StrategyEntry)
    sig = LiveSignal(signal_id="sig-s-7-1", strategy="s", con_id=7, bar_time=NOW, action="BUY", target=1,
                     previous=0, price=10.0)
    guard = AutoExecGuard(kill_switch=False, live_account=False)
    day = NOW.date().isoformat()
    def refusal(quantity: float, orders: int) -> str | None:
        return guard.approve_refusal(entry, sig, NOW, opening=True, position=book.position("s", 7),
                                     quantity=quantity, orders_today=orders)

    assert book.orders_on("s", day) == 3  # proposals 2, 3 and 4 filled today
    assert "max_orders_per_day 3" in refusal(20, book.orders_on("s", day))
    assert refusal(25, 2) is None  # 75 held from fills + 25 <= 100
    assert "max_position 100: 75 held" in refusal(26, 2)


def test_request_ids_of_proposals_stored_before_the_column_are_found(tmp_path) -> None:
    """The request_id column is filled in from the JSON of proposals an older MMR stored."""
    import json

    from trader.data.schema import STATE_SCHEMA
    from trader.data.store import DuckStore
    from trader.trading.proposals import proposal_to_dict

    old_schema = tuple(s for s in STATE_SCHEMA if not ("request_id" in s and "proposal_store" in s))
    assert len(old_schema) == len(STATE_SCHEMA) - 3
    old = DuckStore(tmp_path / "state.duckdb", old_schema)
    import dataclasses

    detail = json.dumps(proposal_to_dict(dataclasses.replace(_p("sig-old-open"), id=1)), default=str)
    old.execute("INSERT INTO proposal_store (id, state, symbol, detail) VALUES (1, 'PENDING', 'AAPL', ?)", [detail])
    from trader.data import store as store_module

    store_module._applied_schemas.clear()  # as a new process would: the new statements run on the next open
    ps = ProposalStore(DuckStore(tmp_path / "state.duckdb", STATE_SCHEMA))
    assert ps.by_request_id("sig-old-open").id == 1
    assert [p.id for p in ps.insert_many([_p("sig-old-open"), _p("sig-new-open")])] == [1, 2]


def test_a_stage_coalesces_its_backlog_into_one_batch() -> None:
    """What queued while a batch was handled is handled next as ONE batch (one dispatch, one propose_batch)."""
    from trader.strategy.live import LiveRunner

    async def main() -> list[list[int]]:
        q: asyncio.Queue = asyncio.Queue()
        seen: list[list[int]] = []
        release = asyncio.Event()

        async def handle(batch: list[int]) -> None:
            seen.append(batch)
            if len(seen) == 1:
                await release.wait()  # a slow first batch: the next bars queue up behind it

        task = asyncio.create_task(LiveRunner._drain(q, handle, "test"))
        q.put_nowait([1])
        await asyncio.sleep(0.01)
        for k in (2, 3, 4):
            q.put_nowait([k, k * 10])
        release.set()
        await asyncio.sleep(0.01)
        q.put_nowait([5])
        await asyncio.sleep(0.01)
        task.cancel()
        return seen

    assert asyncio.run(main()) == [[1], [2, 20, 3, 30, 4, 40], [5]]
