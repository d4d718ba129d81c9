"""BrokerSession against the simulated gateway through real ib_async: connect, loss, reconnect, reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import functools

import pytest
from ib_async import LimitOrder, MarketOrder, Stock

from trader import testing
from trader.broker.connection import BrokerNotReady, BrokerSession
from trader.objects import BrokerState
from trader.sim.gateway import SimGateway
from trader.sim.testkit import gateway
from trader.testing import run_async

AAPL = 265598
# reconnects wait through backoff and timeouts: poll less often and longer than the sim tests do
until = functools.partial(testing.until, timeout=10.0, interval=0.02)


def new_session(gw: SimGateway, events: list | None = None, **kw) -> BrokerSession:
    sink = (lambda kind, payload: events.append((kind, payload))) if events is not None else None
    opts = dict(connect_timeout=2.0, sync_timeout=1.0, backoff_initial=0.05, backoff_cap=0.2, alarm_after=0.3)
    opts.update(kw)
    return BrokerSession("127.0.0.1", gw.port, 7, events=sink, **opts)

@contextlib.asynccontextmanager
async def running_session(tmp_path, **kw):
    """A gateway and a started BrokerSession that is ready; yields (gateway, session, recorded events)."""
    async with gateway(tmp_path) as gw:
        events: list = []
        s = new_session(gw, events, **kw)
        await s.start()
        try:
            await until(lambda: s.ready)
            yield gw, s, events
        finally:
            await s.stop()



@run_async(timeout=60)
async def test_connects_reconciles_and_reports_status(tmp_path):
    async with gateway(tmp_path) as gw:
        events: list = []
        s = new_session(gw, events)
        assert s.status()["state"] == "not connected"
        with pytest.raises(BrokerNotReady, match="not connected"):
            s.require_ready()
        await s.start()
        try:
            await until(lambda: s.ready)
            st = s.status()
            assert st["state"] == "connected" and st["reconciled"] and st["alarm"] is False
            s.require_ready(opening=True)
            kinds = [k for k, _ in events]
            assert "broker_state" in kinds and "reconciled" in kinds
        finally:
            await s.stop()
        assert s.state is BrokerState.NOT_CONNECTED


@run_async(timeout=60)
async def test_disconnect_refuses_orders_raises_alarm_then_reconnects(tmp_path):
    async with running_session(tmp_path) as (gw, s, events):
        gw.faults.refuse_connections(1.0)
        gw.faults.drop_connections()
        await until(lambda: s.state is BrokerState.DISCONNECTED)
        with pytest.raises(BrokerNotReady, match="not connected"):
            s.require_ready(opening=False)  # not even a reducing order goes to a dead socket
        await until(lambda: s.status()["alarm"])  # alarm_after=0.3 s
        assert any(k == "broker_alarm" for k, _ in events)
        with pytest.raises(BrokerNotReady, match="ALARM"):
            s.require_ready()
        await until(lambda: s.ready)  # reconnected once the gateway accepts again
        assert s.reconnects == 1 and s.status()["alarm"] is False


@run_async(timeout=60)
async def test_upstream_loss_1100_and_1101_resubscribes(tmp_path):
    async with running_session(tmp_path) as (gw, s, events):
        [aapl] = await s.ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        s.subscribe_market_data(aapl)
        session = gw.sessions[7]
        await until(lambda: bool(session.mkt))
        gw.faults.emit(1100)
        await until(lambda: not s.ready)
        assert s.state is BrokerState.DISCONNECTED and s.status()["upstream_lost"]
        with pytest.raises(BrokerNotReady):
            s.require_ready()
        gw.faults.emit(1101)  # restored, market data lost: the session must re-request it
        await until(lambda: s.ready and bool(session.mkt))
        assert any(k == "market_data_resubscribed" for k, _ in events)


@run_async(timeout=60)
async def test_reconcile_finds_order_filled_while_disconnected(tmp_path):
    async with running_session(tmp_path) as (gw, s, events):
        [aapl] = await s.ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        px = gw.market.quote(AAPL).bid
        trade = s.ib.placeOrder(aapl, LimitOrder("BUY", 10, round(px * 0.9, 2)))
        await until(lambda: trade.orderStatus.status == "Submitted")
        await until(lambda: any(k == "reconciled" for k, _ in events))
        await asyncio.sleep(0.1)
        perm_id = trade.order.permId

        gw.faults.refuse_connections(0.5)
        gw.faults.drop_connections()
        await until(lambda: s.state is BrokerState.DISCONNECTED)
        gw.market.set_price(AAPL, px * 0.8)  # the resting limit becomes marketable while we are away
        gw.step()
        await until(lambda: s.ready)
        recon = [p for k, p in events if k == "reconciled"][-1]
        assert perm_id in recon["orders_gone"]
        assert recon["position_changes"][str(AAPL)] == {"was": 0.0, "now": 10.0}
        assert recon["new_executions"]
        assert s.book.positions[AAPL][0] == 10.0


@run_async(timeout=60)
async def test_positions_query_timeout_never_reads_as_flat(tmp_path):
    async with running_session(tmp_path, sync_timeout=0.5, connect_timeout=0.5) as (gw, s, events):
        [aapl] = await s.ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        trade = s.ib.placeOrder(aapl, MarketOrder("BUY", 5))
        await until(lambda: trade.orderStatus.status == "Filled")
        await s.reconcile()
        assert s.book.positions[AAPL][0] == 5.0

        gw.faults.delay_replies(3000)  # every reply (positions included) now takes longer than the timeout
        gw.faults.drop_connections()
        await until(lambda: s.state is not BrokerState.CONNECTED or not s.reconciled)
        await asyncio.sleep(1.5)  # several reconnect/sync attempts time out
        assert not s.ready
        with pytest.raises(BrokerNotReady):
            s.require_ready(opening=True)
        assert s.book.positions[AAPL][0] == 5.0  # the last known book is kept, never "flat"

        gw.faults.delay_replies(0)
        await until(lambda: s.ready, timeout=15)
        assert s.book.positions[AAPL][0] == 5.0


@run_async(timeout=60)
async def test_ib_messages_are_classified_in_status(tmp_path):
    async with running_session(tmp_path) as (gw, s, events):
        await until(lambda: any(e["code"] == 2104 for e in s.status()["recent_errors"]))
        farm = next(e for e in s.status()["recent_errors"] if e["code"] == 2104)
        assert farm["advisory"] is True and farm["severity"] == "advisory"
        gw.faults.emit(1100)
        await until(lambda: any(e["code"] == 1100 for e in s.status()["recent_errors"]))
        lost = s.status()["last_error"]
        assert lost["code"] == 1100 and lost["advisory"] is False
