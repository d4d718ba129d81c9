"""The matching engine: each order type fills or rests as an exchange would, brackets, OCA, partial fills,
cancels, fault hooks and restart persistence. Prices are pinned with SimMarket.set_price, so a pinned
AAPL at P quotes bid P / ask P + 0.01 / last P."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trader.sim.account import SimAccount
from trader.sim.clock import SimClock
from trader.sim.contracts import ContractUniverse
from trader.sim.market import SimMarket
from trader.sim.matching import MatchingEngine
from trader.sim.models import (
    CommissionEvent,
    ExecutionEvent,
    OpenOrderEvent,
    OrderErrorEvent,
    OrderStatusEvent,
    SimOrder,
)

T0 = datetime(2026, 11, 24, 15, 30, 17, tzinfo=UTC)
AAPL, SPX = 265598, 416904


class Sim:
    """One clock, market, account and engine; helpers to pin prices and step time."""

    def __init__(self, universe, tmp_path=None, calendar="24x7", **engine_kwargs) -> None:
        self.universe = universe
        self.clock = SimClock(T0, manual=True)
        self.market = SimMarket(universe, self.clock, seed=42, calendar=calendar)
        acct_path = tmp_path / "account.json" if tmp_path else None
        self.account = SimAccount(starting_cash=1_000_000.0, state_path=acct_path)
        self.engine = MatchingEngine(universe, self.market, self.account,
                                     state_path=tmp_path / "orders.json" if tmp_path else None, **engine_kwargs)
        self._next_id = 1

    def order(self, action, qty, order_type="MKT", con_id=AAPL, **kw) -> SimOrder:
        oid = kw.pop("order_id", None) or self._next_id
        self._next_id = max(self._next_id, oid) + 1
        return SimOrder(order_id=oid, client_id=kw.pop("client_id", 1), perm_id=0, con_id=con_id, action=action,
                        total_quantity=qty, order_type=order_type, **kw)

    def pin(self, price: float, con_id: int = AAPL) -> None:
        self.market.set_price(con_id, price)

    def tick(self, seconds: float = 1.0):
        self.clock.advance(seconds)
        return self.engine.on_time()


def _fills(events) -> list[ExecutionEvent]:
    return [e for e in events if isinstance(e, ExecutionEvent)]


def _statuses(events, order_id=None) -> list[str]:
    return [e.order.status for e in events
            if isinstance(e, OrderStatusEvent) and (order_id is None or e.order.order_id == order_id)]


def _errors(events) -> list[tuple[int, int]]:
    return [(e.order_id, e.code) for e in events if isinstance(e, OrderErrorEvent)]


@pytest.fixture
def sim(universe) -> Sim:
    return Sim(universe)


def test_market_orders_fill_at_the_touch(sim):
    sim.pin(200.0)
    events = sim.engine.place(sim.order("BUY", 100))
    kinds = [type(e) for e in events]
    assert kinds == [OpenOrderEvent, OrderStatusEvent, ExecutionEvent, OrderStatusEvent, CommissionEvent]
    fill = _fills(events)[0]
    assert (fill.side, fill.shares, fill.price, fill.cum_qty, fill.avg_price) == ("BOT", 100, 200.01, 100, 200.01)
    assert fill.exec_id.endswith(".01.01") and fill.exchange == "NASDAQ" and fill.account == "DU0000001"
    assert _statuses(events) == ["Submitted", "Filled"]
    comm = events[-1]
    assert (comm.exec_id, comm.commission, comm.currency, comm.realized_pnl) == (fill.exec_id, 1.0, "USD", None)
    sell = sim.engine.place(sim.order("SELL", 100))
    sfill = _fills(sell)[0]
    assert (sfill.side, sfill.price) == ("SLD", 200.0)
    realized = [e for e in sell if isinstance(e, CommissionEvent)][0].realized_pnl
    assert realized == pytest.approx((200.0 - 200.02) * 100 - 1.0)  # (bid − avg cost incl. commission) − commission
    assert sim.account.position(AAPL) == (0.0, 0.0)
    assert [o.status for o in sim.engine.completed_orders()] == ["Filled", "Filled"]
    assert sim.engine.open_orders() == []


def test_limit_orders_rest_then_fill_at_the_better_price(sim):
    sim.pin(200.0)
    events = sim.engine.place(sim.order("BUY", 100, "LMT", lmt_price=199.50))
    assert _statuses(events) == ["Submitted"] and not _fills(events)
    assert _fills(sim.tick()) == []
    sim.pin(199.00)  # ask 199.01 is through the limit: fill at the ask, not at the limit
    fill = _fills(sim.tick())[0]
    assert fill.price == 199.01 and fill.shares == 100
    # a marketable sell limit fills at the bid, which is better than its limit
    events = sim.engine.place(sim.order("SELL", 100, "LMT", lmt_price=198.00))
    assert _fills(events)[0].price == 199.00


def test_stop_orders_trigger_on_the_last_price(sim):
    sim.pin(200.0)
    sim.engine.place(sim.order("BUY", 100))
    stop = sim.order("SELL", 100, "STP", aux_price=195.0)
    assert _fills(sim.engine.place(stop)) == []
    sim.pin(195.01)
    assert _fills(sim.tick()) == []
    sim.pin(194.90)
    fill = _fills(sim.tick())[0]
    assert (fill.side, fill.price) == ("SLD", 194.90)  # then a market order: at the bid
    assert sim.engine.order(stop.order_id, 1).status == "Filled"


def test_stop_limit_becomes_a_limit_order(sim):
    sim.pin(200.0)
    order = sim.order("BUY", 100, "STP LMT", aux_price=205.0, lmt_price=205.50)
    sim.engine.place(order)
    sim.pin(206.00)  # triggered, but ask 206.01 is above the limit: rests
    assert _fills(sim.tick()) == []
    assert sim.engine.order(order.order_id, 1).triggered
    sim.pin(205.20)
    assert _fills(sim.tick())[0].price == 205.21


def test_trailing_stop_by_amount(sim):
    sim.pin(200.0)
    order = sim.order("SELL", 100, "TRAIL", aux_price=2.0)
    sim.engine.place(order)
    assert sim.engine.order(order.order_id, 1).trail_stop_price == 198.0
    sim.pin(205.0)
    sim.tick()
    assert sim.engine.order(order.order_id, 1).trail_stop_price == 203.0  # ratchets up
    sim.pin(204.0)
    sim.tick()
    assert sim.engine.order(order.order_id, 1).trail_stop_price == 203.0  # never down
    sim.pin(203.50)
    assert _fills(sim.tick()) == []
    sim.pin(202.90)
    fill = _fills(sim.tick())[0]
    assert (fill.side, fill.price, fill.shares) == ("SLD", 202.90, 100)


def test_trailing_stop_by_percent_and_buy_side(sim):
    sim.pin(200.0)
    sell = sim.order("SELL", 10, "TRAIL", trailing_percent=1.0)
    buy = sim.order("BUY", 10, "TRAIL", trailing_percent=1.0)
    sim.engine.place(sell)
    sim.engine.place(buy)
    assert sim.engine.order(sell.order_id, 1).trail_stop_price == 198.0
    assert sim.engine.order(buy.order_id, 1).trail_stop_price == 202.0
    sim.pin(210.0)  # the buy trail triggers (210 ≥ 202); the sell trail ratchets to 207.90
    fills = _fills(sim.tick())
    assert [(f.order_id, f.price) for f in fills] == [(buy.order_id, 210.01)]
    assert sim.engine.order(sell.order_id, 1).trail_stop_price == 207.90
    sim.pin(207.50)
    assert [(f.order_id, f.price) for f in _fills(sim.tick())] == [(sell.order_id, 207.50)]


def test_trail_limit(sim):
    sim.pin(200.0)
    order = sim.order("SELL", 10, "TRAIL LIMIT", aux_price=1.0, lmt_price_offset=0.5)
    sim.engine.place(order)
    sim.pin(198.0)  # stop 199 triggered; limit 198.50 is above the 198.00 bid: rests
    assert _fills(sim.tick()) == []
    assert sim.engine.order(order.order_id, 1).lmt_price == 198.50
    sim.pin(198.60)
    assert _fills(sim.tick())[0].price == 198.60


def _bracket(sim, entry=200.0, take=210.0, stop=190.0):
    parent = sim.order("BUY", 100, "LMT", lmt_price=entry, transmit=False)
    tp = sim.order("SELL", 100, "LMT", lmt_price=take, parent_id=parent.order_id, transmit=False)
    sl = sim.order("SELL", 100, "STP", aux_price=stop, parent_id=parent.order_id, transmit=True)
    return parent, tp, sl


def test_bracket_take_profit_fills_and_stop_loss_is_cancelled(sim):
    sim.pin(199.99)  # ask 200.00: the parent is marketable
    parent, tp, sl = _bracket(sim)
    assert sim.engine.place(parent) == [] and sim.engine.place(tp) == []  # staged until transmit=True
    assert sim.engine.order(parent.order_id, 1).status == "PendingSubmit"
    events = sim.engine.place(sl)
    opened = [e.order.order_id for e in events if isinstance(e, OpenOrderEvent)]
    assert opened == [parent.order_id, tp.order_id, sl.order_id]
    fill = _fills(events)
    assert [(f.order_id, f.price) for f in fill] == [(parent.order_id, 200.0)]
    assert sim.engine.order(tp.order_id, 1).status == "Submitted"
    assert sim.engine.order(sl.order_id, 1).status == "Submitted"
    sim.pin(205.0)
    assert _fills(sim.tick()) == []
    sim.pin(210.50)
    events = sim.tick()
    assert [(f.order_id, f.price) for f in _fills(events)] == [(tp.order_id, 210.50)]
    assert _statuses(events, sl.order_id) == ["Cancelled"]
    assert (sl.order_id, 202) in _errors(events)
    assert sim.account.position(AAPL)[0] == 0.0
    sim.pin(150.0)  # the cancelled stop never fires
    assert _fills(sim.tick()) == []


def test_bracket_children_are_inactive_until_the_parent_fills(sim):
    sim.pin(205.0)
    parent, tp, sl = _bracket(sim)
    for o in (parent, tp, sl):
        sim.engine.place(o)
    assert sim.engine.order(tp.order_id, 1).status == "PreSubmitted"
    sim.pin(185.0)  # below the stop-loss and the parent's limit... the parent fills first at 185.01
    events = sim.tick()
    fills = _fills(events)
    assert fills[0].order_id == parent.order_id and fills[0].price == 185.01
    # only then the stop-loss becomes active and (185 ≤ 190) triggers at the bid
    assert [(f.order_id, f.price) for f in fills[1:]] == [(sl.order_id, 185.0)]
    assert sim.engine.order(tp.order_id, 1).status == "Cancelled"


def test_bracket_children_never_work_without_a_filled_parent(sim):
    sim.pin(205.0)
    parent, tp, sl = _bracket(sim, entry=150.0, take=210.0, stop=190.0)
    for o in (parent, tp, sl):
        sim.engine.place(o)
    sim.pin(215.0)  # the take-profit would be marketable, but its parent has not filled
    assert _fills(sim.tick()) == []
    events = sim.engine.cancel(parent.order_id, 1)  # cancelling the parent cancels the children
    assert sorted(_errors(events)) == sorted([(parent.order_id, 202), (tp.order_id, 202), (sl.order_id, 202)])
    assert sim.engine.open_orders() == []


def test_oca_group_cancels_the_others(sim):
    sim.pin(200.0)
    a = sim.order("BUY", 10, "LMT", lmt_price=195.0, oca_group="g1", oca_type=1)
    b = sim.order("BUY", 10, "LMT", lmt_price=190.0, oca_group="g1", oca_type=1)
    sim.engine.place(a)
    sim.engine.place(b)
    sim.pin(194.0)
    events = sim.tick()
    assert [f.order_id for f in _fills(events)] == [a.order_id]
    assert _statuses(events, b.order_id) == ["Cancelled"]
    sim.pin(180.0)
    assert _fills(sim.tick()) == []


def test_oca_reduce_type(sim):
    sim.pin(200.0)
    a = sim.order("SELL", 10, "LMT", lmt_price=300.0, oca_group="g2", oca_type=2)
    b = sim.order("SELL", 10, "LMT", lmt_price=210.0, oca_group="g2", oca_type=2)
    sim.engine.place(a)
    sim.engine.place(b)
    sim.pin(205.0)
    c = sim.order("SELL", 4, "LMT", lmt_price=205.0, oca_group="g3", oca_type=2)
    d = sim.order("SELL", 10, "LMT", lmt_price=300.0, oca_group="g3", oca_type=2)
    sim.engine.place(d)
    events = sim.engine.place(c)  # fills 4: the other member is reduced to 6
    assert _fills(events)[0].shares == 4
    assert sim.engine.order(d.order_id, 1).total_quantity == 6 and sim.engine.order(d.order_id, 1).status == "Submitted"
    sim.pin(210.0)
    events = sim.tick()  # b fills 10: a is reduced to nothing and cancelled
    assert [f.order_id for f in _fills(events)] == [b.order_id]
    assert sim.engine.order(a.order_id, 1).status == "Cancelled"


def test_partial_fills_over_several_ticks(universe):
    sim = Sim(universe, max_fill_fraction_of_size=0.5)
    sim.pin(200.0)
    order = sim.order("BUY", 10_000)
    first = sim.engine.place(order)
    fills = _fills(first)
    assert len(fills) == 1 and fills[0].shares == sim.market.quote(AAPL).ask_size * 0.5
    while sim.engine.order(order.order_id, 1).status != "Filled":
        expected = sim.market.quote(AAPL, sim.clock.now() + timedelta(seconds=1)).ask_size * 0.5
        step = _fills(sim.tick())
        assert len(step) == 1 and step[0].shares == min(expected, 10_000 - step[0].cum_qty + step[0].shares)
        fills += step
    assert len(fills) >= 3
    assert sum(f.shares for f in fills) == 10_000 and fills[-1].cum_qty == 10_000
    assert len({f.exec_id for f in fills}) == len(fills)
    assert sim.account.position(AAPL)[0] == 10_000
    statuses = [o.status for o in sim.engine.completed_orders()]
    assert statuses == ["Filled"]


def test_cancel_and_its_errors(sim):
    sim.pin(200.0)
    order = sim.order("BUY", 100, "LMT", lmt_price=150.0)
    sim.engine.place(order)
    events = sim.engine.cancel(order.order_id, 1)
    assert _statuses(events) == ["Cancelled"] and _errors(events) == [(order.order_id, 202)]
    assert _errors(sim.engine.cancel(order.order_id, 1)) == [(order.order_id, 10148)]
    assert _errors(sim.engine.cancel(999, 1)) == [(999, 10147)]
    assert _errors(sim.engine.cancel(order.order_id, 2)) == [(order.order_id, 10147)]  # other client
    sim.pin(100.0)
    assert _fills(sim.tick()) == []


def test_modify_a_resting_order(sim):
    sim.pin(200.0)
    order = sim.order("BUY", 100, "LMT", lmt_price=150.0)
    placed = sim.engine.place(order)
    perm_id = placed[0].order.perm_id
    order.lmt_price = 201.0
    order.total_quantity = 50
    events = sim.engine.place(order)
    assert isinstance(events[0], OpenOrderEvent) and events[0].order.perm_id == perm_id
    assert [(f.shares, f.price) for f in _fills(events)] == [(50, 200.01)]
    assert _errors(sim.engine.place(order)) == [(order.order_id, 104)]  # can't modify a filled order


def test_global_cancel(sim):
    sim.pin(200.0)
    ids = [sim.engine.place(sim.order("BUY", 1, "LMT", lmt_price=100.0 + i, client_id=c))[0].order.order_id
           for i, c in enumerate((1, 2, 3))]
    events = sim.engine.global_cancel()
    assert sorted(oid for oid, code in _errors(events) if code == 202) == sorted(ids)
    assert sim.engine.open_orders() == []


def test_validation_errors(sim, universe):
    assert _errors(sim.engine.place(sim.order("BUY", 1, con_id=123))) == [(sim._next_id - 1, 200)]
    assert _errors(sim.engine.place(sim.order("BUY", 1, con_id=SPX)))[0][1] == 201  # index: not tradable
    assert _errors(sim.engine.place(sim.order("BUY", 1, "LMT", lmt_price=200.005)))[0][1] == 110
    assert _errors(sim.engine.place(sim.order("BUY", 0)))[0][1] == 201
    assert _errors(sim.engine.place(sim.order("BUY", 1, "LMT")))[0][1] == 201
    assert _errors(sim.engine.place(sim.order("BUY", 1, "TRAIL")))[0][1] == 201
    assert _errors(sim.engine.place(sim.order("HOLD", 1)))[0][1] == 201
    assert _errors(sim.engine.place(sim.order("BUY", 1, "MOC")))[0][1] == 387
    assert _errors(sim.engine.place(sim.order("SELL", 1, parent_id=4242)))[0][1] == 201
    huge = sim.engine.place(sim.order("BUY", 100_000))  # ~$20M of stock on a $1M account
    assert _errors(huge)[0][1] == 201 and "INITIAL MARGIN" in huge[0].message
    assert sim.engine.open_orders() == [] and sim.account.positions() == []


def test_reject_next_fault_hook(sim):
    sim.engine.reject_next(201, "Order rejected - reason:simulated")
    order = sim.order("BUY", 1)
    events = sim.engine.place(order)
    assert events == [OrderErrorEvent(order.order_id, 1, 201, "Order rejected - reason:simulated")]
    assert _fills(sim.engine.place(sim.order("BUY", 1)))  # only the next one


def test_execution_correction(sim):
    sim.pin(200.0)
    fill = _fills(sim.engine.place(sim.order("BUY", 100)))[0]
    position = sim.account.position(AAPL)
    events = sim.engine.correct_execution(fill.exec_id)
    fixed = events[0]
    assert fixed.exec_id == fill.exec_id[:-2] + "02"
    assert (fixed.order_id, fixed.shares, fixed.price) == (fill.order_id, fill.shares, fill.price)
    assert isinstance(events[1], CommissionEvent) and events[1].exec_id == fixed.exec_id
    assert [e.exec_id for e in sim.engine.executions()] == [fixed.exec_id]
    assert sim.engine.commission_of(fixed.exec_id).commission == 1.0
    assert sim.account.position(AAPL) == position  # a correction is not a new fill
    with pytest.raises(KeyError):
        sim.engine.correct_execution("nope.01")


def test_perm_ids_are_unique_and_kept(sim):
    sim.pin(200.0)
    perms = {sim.engine.place(sim.order("BUY", 1, "LMT", lmt_price=150.0))[0].order.perm_id for _ in range(5)}
    assert len(perms) == 5


def test_restart_keeps_orders_positions_and_cash(universe, tmp_path):
    first = Sim(universe, tmp_path)
    first.pin(200.0)
    first.engine.place(first.order("BUY", 100))
    resting = first.order("SELL", 50, "LMT", lmt_price=220.0)
    first.engine.place(resting)
    fill_ids = [e.exec_id for e in first.engine.executions()]
    first.engine.save()
    second = Sim(universe, tmp_path)
    second.pin(200.0)
    assert second.account.positions() == first.account.positions()
    assert second.account.cash_balances() == first.account.cash_balances()
    assert [(o.order_id, o.perm_id, o.status, o.lmt_price) for o in second.engine.open_orders()] == [
        (o.order_id, o.perm_id, o.status, o.lmt_price) for o in first.engine.open_orders()]
    assert [e.exec_id for e in second.engine.executions()] == fill_ids
    assert second.engine.commission_of(fill_ids[0]).commission == 1.0
    # the restored order keeps working
    second.pin(221.0)
    fill = _fills(second.tick())[0]
    assert (fill.order_id, fill.price) == (resting.order_id, 221.0)
    assert fill.exec_id not in fill_ids
    assert second.account.position(AAPL)[0] == 50


def test_orders_wait_for_the_market_to_open(universe):
    sim = Sim(universe, calendar="exchange")
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    sim.clock.set(saturday)
    order = sim.order("BUY", 10)
    events = sim.engine.place(order)
    assert _statuses(events) == ["PreSubmitted"] and not _fills(events)
    sim.clock.set(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))  # Monday 07:00 New York: pre-market
    assert _fills(sim.engine.on_time()) == []
    ext = sim.order("BUY", 10, outside_rth=True)
    assert _fills(sim.engine.place(ext))  # outside_rth orders trade in extended hours
    sim.clock.set(datetime(2026, 11, 30, 14, 30, 5, tzinfo=UTC))
    events = sim.engine.on_time()
    assert _statuses(events, order.order_id) == ["Submitted", "Filled"]


def test_day_orders_expire_at_the_close(universe):
    sim = Sim(universe, calendar="exchange")
    sim.pin(200.0)
    order = sim.order("BUY", 10, "LMT", lmt_price=150.0, tif="DAY")
    gtc = sim.order("BUY", 10, "LMT", lmt_price=150.0, tif="GTC")
    sim.engine.place(order)
    sim.engine.place(gtc)
    sim.clock.set(datetime(2026, 11, 24, 21, 0, 1, tzinfo=UTC))
    events = sim.engine.on_time()
    assert _statuses(events, order.order_id) == ["Cancelled"]
    assert [o.order_id for o in sim.engine.open_orders()] == [gtc.order_id]


def test_restart_after_a_contract_left_the_universe(universe, tmp_path):
    first = Sim(universe, tmp_path)
    strikes = universe.option_chain(756733)[0][4]  # the ladder centres on the model's SPY price of the day
    call = universe.find(symbol="SPY", sec_type="OPT", last_trade_date="20261127", strike=strikes[len(strikes) // 2],
                         right="C")[0]
    first.engine.place(first.order("BUY", 1, con_id=call.con_id))
    resting = first.order("BUY", 1, "LMT", con_id=call.con_id, lmt_price=0.05)
    first.engine.place(resting)
    first.engine.save()
    # after expiry the regenerated universe no longer has the option
    smaller = ContractUniverse([c for c in universe if c.con_id != call.con_id])
    second = Sim(smaller, tmp_path)
    events = second.engine.on_time()
    assert _statuses(events, resting.order_id) == ["Cancelled"]
    assert second.account.position(call.con_id)[0] == 1.0
    values = second.account.values(second.market)  # carried at cost, no crash
    assert float(values["NetLiquidation"][0]) == pytest.approx(
        float(first.account.values(first.market)["TotalCashValue"][0]) + second.account.position(call.con_id)[1])
