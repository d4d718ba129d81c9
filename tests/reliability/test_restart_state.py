"""Risk state that must survive a trader_service restart: the order-rate window (rebuilt from the audit
trail's ``order_submitted`` records) and the daily-loss halt (re-latched from its ``trading_halted`` record).
Each test runs its own platform with the simulated gateway in a temp MMR_HOME."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from trader.config import TradingFiltersConfig
from trader.testing import Platform, mmr, platform_env
from trader.testing_crash import kill9, restart_service
from trader.trading.risk_gate import RiskGate

FILTERS = """\
max_position_value_usd: 10000000.0
max_position_pct_nlv: 100.0
max_daily_loss_usd: {loss}
max_open_orders: 100
max_orders_per_window: {rate}
order_window_seconds: 300
allow_extended_hours: true
"""


def write_filters(home: Path, *, loss: float = 1e7, rate: int = 1000) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "trading_filters.yaml").write_text(FILTERS.format(loss=loss, rate=rate))


@pytest.fixture
def platform(tmp_path):
    home = tmp_path / "home"
    write_filters(home, rate=2)
    p = Platform(home, platform_env(home), with_gateway=True)
    try:
        p.start()
        p.wait_broker_ready()
        yield p
    finally:
        p.stop()


def cli(p: Platform, *args: str) -> Any:
    res = mmr(p.env, "--json", *args, timeout=60)
    return json.loads(res.stdout.strip().splitlines()[-1])


def trader_details(p: Platform) -> dict[str, Any]:
    return next(s for s in cli(p, "status")["services"] if s["service"] == "trader_service")["details"]


def refused_by(doc: Any) -> str:
    """The refusal message of an error document ('' when the command succeeded)."""
    return doc["error"]["message"] if isinstance(doc, dict) and "error" in doc else ""


def test_the_order_rate_window_survives_a_crash(platform):
    p = platform  # max_orders_per_window: 2
    for _ in range(2):
        assert refused_by(cli(p, "buy", "AAPL", "--quantity", "1")) == ""
    assert "orders in the last 300 s: 2" in refused_by(cli(p, "buy", "AAPL", "--quantity", "1"))
    kill9(p)
    restart_service(p)
    after = refused_by(cli(p, "buy", "AAPL", "--quantity", "1"))
    assert "orders in the last 300 s: 2" in after, after  # not 0: the window was rebuilt from the audit trail
    # A request the rate rule refused placed nothing: two orders at the broker.
    assert len([t for t in cli(p, "trades")]) == 2


def test_the_daily_loss_halt_survives_a_restart_even_with_the_limit_raised(platform):
    p = platform
    today = RiskGate(TradingFiltersConfig()).trading_day(datetime.now(UTC)).isoformat()
    assert refused_by(cli(p, "buy", "AAPL", "--quantity", "2")) == ""  # a holding to reduce later
    assert trader_details(p)["trading_halted_for"] is None
    # Hit the limit through the real path: a limit of $0 is reached by a flat day's P&L.
    write_filters(p.home, loss=0, rate=1000)
    p.procs["trader_service"].send_signal(signal.SIGTERM)
    p.procs["trader_service"].wait(timeout=15)
    restart_service(p)
    assert "daily loss" in refused_by(cli(p, "buy", "AAPL", "--quantity", "1"))
    halts = cli(p, "events", "--kind", "trading_halted")
    assert [e["payload"]["day"] for e in halts] == [today]
    assert trader_details(p)["trading_halted_for"] == today
    # Raise the limit again and crash: the halt is re-latched from the audit trail for the rest of the day.
    write_filters(p.home, loss=1e7, rate=1000)
    kill9(p)
    restart_service(p)
    assert trader_details(p)["trading_halted_for"] == today
    refusal = refused_by(cli(p, "buy", "AAPL", "--quantity", "1"))
    assert "hit earlier today" in refusal, refusal
    # The halt stops opening orders only: reducing the holding is still allowed.
    sold = cli(p, "sell", "AAPL", "--quantity", "1")
    assert refused_by(sold) == "" and sold["order_ids"], sold


def test_a_halt_hit_the_day_after_an_earlier_halt_is_recorded_too():
    """trader_service records ``trading_halted`` (what a restart re-latches from) when the loss limit is hit —
    it must also do so when the in-memory latch still holds an *earlier* day (a service running across
    midnight), or a restart later that day forgets today's halt."""
    import asyncio
    from collections import deque
    from datetime import timedelta
    from types import SimpleNamespace

    from trader.trader_service import TraderService
    from trader.trading.market_hours import session_for
    from trader.trading.models import AccountSnapshot, Action
    from trader.trading.orders import OrderRequest

    svc = TraderService.__new__(TraderService)  # only what _gate_context reads
    svc.filters = TradingFiltersConfig(max_daily_loss_usd=100.0)
    svc.gate = RiskGate(svc.filters)
    now = datetime.now(UTC)
    svc.gate.halt_for_day(svc.gate.trading_day(now - timedelta(days=1)))  # yesterday's halt, still latched
    svc.broker = SimpleNamespace(positions=lambda: [],
                                 account=lambda: AccountSnapshot(net_liquidation=1e6, daily_pnl=-500.0))
    svc.session = SimpleNamespace(reconciled=True, ib=SimpleNamespace(openTrades=lambda: []))
    svc._submitted = deque()
    svc.market_session = session_for("sim", "24x7")
    svc._groups_cache = []
    svc.config = SimpleNamespace(group_budget_mode="warn")
    recorded: list[tuple[str, dict]] = []

    async def durable(kind, payload, correlation_id=None, source=None):  # the halt is recorded durably
        recorded.append((kind, payload))

    svc.name = "trader_service"
    svc.audit = SimpleNamespace(durable=durable)
    svc._record = lambda kind, payload, correlation_id=None: recorded.append((kind, payload))
    asyncio.run(svc._gate_context(OrderRequest(symbol="AAPL", action=Action.BUY, quantity=1), {}, 100.0))
    assert [p["day"] for k, p in recorded if k == "trading_halted"] == [svc.gate.trading_day(now).isoformat()]
