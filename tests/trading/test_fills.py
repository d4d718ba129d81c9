"""Fill ledger: corrections replace, late and early commissions attach, partial fills accumulate to the VWAP,
duplicate deliveries change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.messaging.codec import packb, unpackb
from trader.trading.fills import (
    Commission,
    Fill,
    FillLedger,
    FillOutcome,
    execution_key,
    execution_revision,
)
from trader.trading.models import Action

T0 = datetime(2024, 7, 8, 14, 0, tzinfo=UTC)


def fill(exec_id="0001f4e8.65a1b2c3.01.01", order_id=7, qty=100.0, price=10.0, **kw) -> Fill:
    return Fill(exec_id=exec_id, order_id=order_id, symbol="AAPL", action=Action.BUY, quantity=qty, price=price,
                time=T0, **kw)


def test_execution_key_and_revision():
    assert execution_key("0001f4e8.65a1b2c3.01.01") == "0001f4e8.65a1b2c3.01"
    assert execution_key("0001f4e8.65a1b2c3.01.02") == "0001f4e8.65a1b2c3.01"
    assert execution_key("nodots") == "nodots"
    assert execution_revision("a.b.01") < execution_revision("a.b.02") < execution_revision("a.b.0a")


def test_new_fill_and_duplicate_delivery_is_ignored():
    ledger = FillLedger()
    assert ledger.add_execution(fill()) is FillOutcome.NEW
    assert ledger.add_execution(fill()) is FillOutcome.DUPLICATE
    assert len(ledger) == 1
    s = ledger.order_summary(7)
    assert s.filled_quantity == 100.0 and s.avg_price == 10.0


def test_correction_replaces_the_earlier_fill_instead_of_adding():
    ledger = FillLedger()
    ledger.add_execution(fill("e.1.01.01", qty=100.0, price=10.0))
    assert ledger.add_execution(fill("e.1.01.02", qty=90.0, price=10.5)) is FillOutcome.CORRECTED
    s = ledger.order_summary(7)
    assert s.filled_quantity == 90.0 and s.avg_price == 10.5 and len(s.fills) == 1
    assert ledger.fill("e.1.01.01").exec_id == "e.1.01.02"  # any revision finds the current one
    # The superseded revision arriving again (or late) changes nothing.
    assert ledger.add_execution(fill("e.1.01.01", qty=100.0, price=10.0)) is FillOutcome.STALE
    assert ledger.order_summary(7).filled_quantity == 90.0


def test_late_commission_attaches_when_it_comes():
    ledger = FillLedger()
    ledger.add_execution(fill("e.1.01.01"))
    s = ledger.order_summary(7)
    assert s.commission == 0.0 and s.commissions_pending == 1 and ledger.pending_commissions() == ["e.1.01.01"]
    assert ledger.add_commission(Commission("e.1.01.01", 1.25, "USD", realized_pnl=1.7976931348623157e308)) \
        is FillOutcome.COMMISSION_ATTACHED
    f = ledger.fill("e.1.01.01")
    assert f.commission == 1.25 and f.commission_currency == "USD" and f.realized_pnl is None  # IB's "none"
    s = ledger.order_summary(7)
    assert s.commission == 1.25 and s.commissions_pending == 0 and ledger.pending_commissions() == []
    assert ledger.add_commission(Commission("e.1.01.01", 1.25, "USD", 1.7976931348623157e308)) \
        is FillOutcome.DUPLICATE


def test_early_commission_is_kept_and_attached_when_the_execution_arrives():
    ledger = FillLedger()
    assert ledger.add_commission(Commission("e.2.01.01", 0.5, realized_pnl=12.0)) is FillOutcome.COMMISSION_PENDING
    assert ledger.order_summary(7).filled_quantity == 0.0
    ledger.add_execution(fill("e.2.01.01"))
    f = ledger.fill("e.2.01.01")
    assert f.commission == 0.5 and f.realized_pnl == 12.0
    assert ledger.order_summary(7).realized_pnl == 12.0


def test_commission_for_a_corrected_execution_follows_the_current_revision():
    ledger = FillLedger()
    ledger.add_execution(fill("e.3.01.01"))
    ledger.add_execution(fill("e.3.01.02", qty=50.0))
    assert ledger.add_commission(Commission("e.3.01.01", 9.0)) is FillOutcome.COMMISSION_SUPERSEDED
    assert ledger.order_summary(7).commission == 0.0  # the old revision's commission does not count
    ledger.add_commission(Commission("e.3.01.02", 0.35))
    assert ledger.order_summary(7).commission == 0.35


def test_commission_carried_on_the_fill_is_recorded():
    ledger = FillLedger()
    ledger.add_execution(fill("e.4.01.01", commission=1.0, commission_currency="USD"))
    assert ledger.fill("e.4.01.01").commission == 1.0


def test_partial_fills_accumulate_with_the_volume_weighted_average_price():
    ledger = FillLedger()
    ledger.add_execution(fill("e.5.01.01", qty=100.0, price=10.00))
    ledger.add_execution(fill("e.5.02.01", qty=300.0, price=10.20))
    ledger.add_execution(fill("e.9.01.01", order_id=8, qty=5.0, price=99.0))  # another order
    s = ledger.order_summary(7)
    assert s.filled_quantity == 400.0
    assert s.avg_price == pytest.approx((100 * 10.00 + 300 * 10.20) / 400)  # 10.15
    assert s.symbol == "AAPL" and s.action is Action.BUY and len(s.fills) == 2
    assert ledger.order_summary(8).filled_quantity == 5.0
    empty = ledger.order_summary(999)
    assert empty.filled_quantity == 0.0 and empty.avg_price is None and empty.fills == ()


def test_values_round_trip_the_codec():
    ledger = FillLedger()
    ledger.add_execution(fill())
    assert unpackb(packb(ledger.order_summary(7))) == ledger.order_summary(7)
    assert unpackb(packb(Commission("x.1", 1.0))) == Commission("x.1", 1.0)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.tuples(st.integers(1, 1000), st.floats(0.01, 1000.0)), min_size=1, max_size=8),
    order=st.randoms(use_true_random=False),
    dupes=st.integers(0, 3),
)
def test_property_any_delivery_order_and_duplicates_give_the_same_totals(parts, order, dupes):
    events = []
    for i, (q, p) in enumerate(parts):
        eid = f"base.{i:04x}.01.01"
        events.append(("exec", fill(eid, qty=float(q), price=p)))
        events.append(("comm", Commission(eid, 1.0)))
    events += events[:dupes]
    order.shuffle(events)
    ledger = FillLedger()
    for kind, ev in events:
        (ledger.add_execution if kind == "exec" else ledger.add_commission)(ev)
    s = ledger.order_summary(7)
    qty = sum(q for q, _ in parts)
    assert s.filled_quantity == qty
    assert s.avg_price == pytest.approx(sum(q * p for q, p in parts) / qty)
    assert s.commission == len(parts) and s.commissions_pending == 0
