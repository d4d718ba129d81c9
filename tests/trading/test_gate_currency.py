"""The risk gate values orders in the base currency (issue 17): a EUR order's notional × EURUSD against the USD
limits; an unknown exchange rate fails the position rules (fail closed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trader.config import TradingFiltersConfig
from trader.trading.models import AccountSnapshot, Action, OrderType
from trader.trading.orders import OrderRequest
from trader.trading.risk_gate import GateContext, RiskGate

GATE = RiskGate(TradingFiltersConfig(max_position_value_usd=50_000.0, max_position_pct_nlv=100.0))
ORDER = OrderRequest("SAP", Action.BUY, quantity=240, order_type=OrderType.LIMIT, limit_price=200.0,
                     currency="EUR")  # €48,000


def _ctx(fx: float | None) -> GateContext:
    return GateContext(account=AccountSnapshot(net_liquidation=1_000_000.0, daily_pnl=0.0), positions=(),
                       now=datetime(2026, 3, 2, 15, tzinfo=UTC), open_orders=0, orders_in_window=0,
                       regular_open=True, extended_open=True, market_price=200.0, fx_rate=fx)


def test_a_foreign_currency_order_is_valued_in_the_base_currency():
    assert GATE.check(ORDER, _ctx(1.0)).allowed  # €48,000 read as if it were dollars: within $50,000
    refused = GATE.check(ORDER, _ctx(1.10))  # $52,800 in the base currency
    failure = next(f for f in refused.failures if f.rule == "position_value")
    assert failure.value == pytest.approx(48_000 * 1.10)


def test_an_unknown_exchange_rate_fails_closed():
    refused = GATE.check(ORDER, _ctx(None))
    assert {"position_value", "position_pct_nlv"} <= {f.rule for f in refused.failures}
    assert "exchange rate" in refused.summary()
