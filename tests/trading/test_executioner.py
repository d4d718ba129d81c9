"""The executioner: the one chokepoint every order passes (validate → resolve → size → hold check → gate →
broker), with every step audited. Driven with a fake broker port; no sockets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from trader.config import TradingFiltersConfig
from trader.errors import InvalidOrder, MMRError, RiskRejected
from trader.trading.executioner import Executioner
from trader.trading.models import AccountSnapshot, Action, OrderType, Position
from trader.trading.orders import OrderRequest
from trader.trading.risk_gate import GateContext, RiskGate


class NotReady(MMRError):
    pass


class FakeBroker:
    def __init__(self, price=100.0, ready=True, reconciled=True):
        self.price_value = price
        self.ready = ready
        self.reconciled = reconciled
        self.placed: list[tuple[OrderRequest, float]] = []
        self.working: dict[tuple[str, str], float] = {}  # (symbol, action) → unfilled working quantity

    def require_ready(self, *, opening: bool) -> None:
        if not self.ready or (opening and not self.reconciled):
            raise NotReady("broker not ready")

    async def resolve_for(self, req):
        return {"con_id": 42, "symbol": req.symbol, "primary_exchange": "NASDAQ"}

    async def price(self, contract, req):
        return self.price_value

    async def place(self, contract, req, quantity):
        self.placed.append((req, quantity))
        return {"order_ids": [len(self.placed)], "status": "Filled"}

    def working_quantity(self, con_id, symbol, sec_type, action):
        return self.working.get((symbol, action), 0.0)


def make(positions=(), nlv=100_000.0, broker=None, **filters):
    broker = broker or FakeBroker()
    audit: list[tuple[str, dict]] = []

    async def record(kind, payload, *, correlation_id=None, source=None):
        audit.append((kind, payload))

    async def context(req, contract, price):
        return GateContext(account=AccountSnapshot(net_liquidation=nlv, daily_pnl=0.0),
                           positions=tuple(positions), now=datetime.now(UTC), open_orders=0,
                           orders_in_window=0, regular_open=True, extended_open=True, market_price=price)

    gate = RiskGate(TradingFiltersConfig(**filters))
    return Executioner(gate, broker, context, record), broker, audit


def run(coro):
    return asyncio.run(coro)


def test_amount_becomes_whole_shares_and_is_audited_in_order():
    ex, broker, audit = make()
    res = run(ex.submit(OrderRequest(symbol="AAPL", action=Action.BUY, amount=1050.0)))
    assert broker.placed[0][1] == 10  # $1,050 at $100 → 10 whole shares
    assert res["quantity"] == 10 and res["decision"]["allowed"]
    assert [k for k, _ in audit] == ["order_requested", "order_submitted", "order_placed"]


def test_gate_rejection_never_reaches_broker():
    ex, broker, audit = make(symbol_denylist=["AAPL"])
    with pytest.raises(RiskRejected, match="AAPL"):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1)))
    assert broker.placed == []
    assert [k for k, _ in audit] == ["order_requested", "order_refused"]


def test_invalid_order_is_refused_before_the_broker_is_asked():
    ex, broker, audit = make()
    with pytest.raises(InvalidOrder):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1, order_type=OrderType.LIMIT)))
    assert broker.placed == [] and audit[-1][0] == "order_refused"


def test_sell_more_than_held_is_refused_without_short():
    ex, broker, _ = make(positions=[Position("AAPL", 5, 90.0, 100.0, con_id=42)])
    with pytest.raises(InvalidOrder, match="exceeds"):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=6)))
    assert broker.placed == []


def test_reducing_part_goes_out_when_the_opening_part_is_refused():
    ex, broker, _ = make(positions=[Position("AAPL", 5, 90.0, 100.0, con_id=42)], symbol_denylist=["AAPL"])
    res = run(ex.submit(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=8, allow_short=True)))
    assert broker.placed[0][1] == 5  # only the part that closes the long
    assert res["opening_quantity"] == 3 and "risk_refused" in res


def test_opening_orders_refused_until_reconciled_but_reducing_ones_pass():
    broker = FakeBroker(reconciled=False)
    ex, _, _ = make(positions=[Position("AAPL", 5, 90.0, 100.0, con_id=42)], broker=broker)
    with pytest.raises(NotReady):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1)))
    run(ex.submit(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=5)))
    assert [q for _, q in broker.placed] == [5]


def test_disconnected_broker_refuses_everything():
    ex, broker, audit = make(broker=FakeBroker(ready=False))
    with pytest.raises(NotReady):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1)))
    assert broker.placed == [] and audit[-1][0] == "order_refused"


@pytest.mark.parametrize("qty", [1e-300, 0.5, 1.5])
def test_quantity_below_the_minimum_size_or_off_increment_never_reaches_the_broker(qty):
    ex, broker, audit = make()
    with pytest.raises(InvalidOrder, match="minimum size|size increment"):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.BUY, quantity=qty)))
    assert broker.placed == [] and audit[-1][0] == "order_refused"


@pytest.mark.parametrize("action", [Action.BUY, Action.SELL])
def test_huge_quantity_is_refused_outright_not_split_into_a_reducing_part(action):
    ex, broker, _ = make(positions=[Position("AAPL", 38, 90.0, 100.0, con_id=42)])
    with pytest.raises(InvalidOrder, match="above"):
        run(ex.submit(OrderRequest(symbol="AAPL", action=action, quantity=1e308, allow_short=True)))
    with pytest.raises(InvalidOrder, match="max_order_quantity"):
        run(ex.submit(OrderRequest(symbol="AAPL", action=action, quantity=100_001, allow_short=True)))
    assert broker.placed == []


def test_amount_converted_to_more_than_the_maximum_is_refused():
    ex, broker, _ = make(max_order_quantity=50)
    with pytest.raises(InvalidOrder, match="max_order_quantity"):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.BUY, amount=10_000.0)))  # 100 shares at $100
    assert broker.placed == []


def test_working_sell_orders_count_against_the_holding():
    ex, broker, _ = make(positions=[Position("AAPL", 38, 90.0, 100.0, con_id=42)])
    broker.working[("AAPL", "SELL")] = 38.0
    with pytest.raises(InvalidOrder, match="38 already in working sell orders"):
        run(ex.submit(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=38)))
    broker.working[("AAPL", "SELL")] = 30.0
    run(ex.submit(OrderRequest(symbol="AAPL", action=Action.SELL, quantity=8)))
    assert [q for _, q in broker.placed] == [8]
