"""Fault injection, each seen by ib_async the way IB would report it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import sys
from datetime import timedelta

from ib_async import IB, MarketOrder, Stock

from trader.sim import testkit
from trader.sim.testkit import START
from trader.testing import run_async, until


@contextlib.asynccontextmanager
async def connected(tmp_path, **kw):
    """gateway, client, clock, qualified AAPL, and every (reqId, code) the client got from connecting on."""
    errors: list[tuple[int, int]] = []
    async with testkit.connected(tmp_path, errors=errors, **kw) as (gw, ib):
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        yield gw, ib, gw.clock, aapl, errors


@run_async
async def test_drop_connections_and_refuse_new_ones(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, _aapl, _errors):
        dropped = []
        ib.disconnectedEvent += lambda: dropped.append(True)
        assert gw.faults.drop_connections() == 1
        await until(lambda: dropped and not ib.isConnected())

        gw.faults.refuse_connections(0.5)
        probe = IB()
        try:
            await probe.connectAsync("127.0.0.1", gw.port, clientId=2, timeout=2)
            raise AssertionError("connect should have been refused")
        except ConnectionRefusedError:
            pass
        await until(lambda: not gw._refusing and gw._server.is_serving())
        again = IB()
        await again.connectAsync("127.0.0.1", gw.port, clientId=1, timeout=5)
        assert again.isConnected()
        again.disconnect()


@run_async
async def test_delayed_replies_keep_their_order(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, _aapl, _errors):
        gw.faults.delay_replies(300)
        task = asyncio.ensure_future(ib.reqCurrentTimeAsync())
        session = gw.sessions[1]
        await until(lambda: bool(session._delayed))
        assert not task.done()  # the reply is held in the gateway
        assert await task == START
        gw.faults.delay_replies(0)


@run_async
async def test_reject_next_order_with_ib_code(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, aapl, errors):
        gw.faults.reject_next_order(201, "Order rejected - reason:simulated margin check")
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 10))
        await until(trade.isDone)
        assert trade.orderStatus.status == "Cancelled" and not trade.fills
        assert (trade.order.orderId, 201) in errors
        ok = ib.placeOrder(aapl, MarketOrder("BUY", 10))  # only the next one
        await until(ok.isDone)
        assert ok.orderStatus.status == "Filled"


@run_async
async def test_connectivity_1100_1101_1102(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl, errors):
        ticker = ib.reqMktData(aapl)
        await until(lambda: not math.isnan(ticker.last))
        gw.faults.emit(1100)
        await until(lambda: (-1, 1100) in errors)
        frozen = ticker.last
        clock.advance(timedelta(minutes=5))
        await asyncio.sleep(0.1)
        assert ticker.last == frozen  # no data while connectivity is lost
        gw.faults.emit(1102)
        await until(lambda: (-1, 1102) in errors and ticker.last == gw.market.quote(aapl.conId).last)
        gw.faults.emit(1100)
        gw.faults.emit(1101)
        await until(lambda: (-1, 1101) in errors)
        assert gw.sessions[1].mkt == {}  # "data lost": the client must resubscribe
        assert ib.isConnected()


@run_async
async def test_nightly_reset_pauses_market_data_but_keeps_the_socket(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl, errors):
        ticker = ib.reqMktData(aapl)
        await until(lambda: not math.isnan(ticker.last))
        gw.faults.nightly_reset(0.4)
        await until(lambda: (-1, 2103) in errors)
        before = ticker.volume
        clock.advance(timedelta(minutes=5))
        await asyncio.sleep(0.1)
        assert ticker.volume == before and ib.isConnected()
        await until(lambda: (-1, 2104) in errors[3:] and ticker.volume != before)


@run_async
async def test_execution_correction_and_late_commission(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, aapl, _errors):
        gw.faults.late_commission(0.3)
        seen_at_fill: list[str] = []
        reports: list[str] = []
        ib.execDetailsEvent += lambda trade, fill: seen_at_fill.append(fill.commissionReport.execId)
        ib.commissionReportEvent += lambda trade, fill, report: reports.append(report.execId)
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 10))
        await until(lambda: trade.isDone() and seen_at_fill)
        assert seen_at_fill == [""] and reports == []  # execDetails arrived without its commission
        await until(lambda: len(reports) == 1)
        first = trade.fills[0].execution.execId
        assert reports == [first] and first.endswith(".01")
        gw.faults.late_commission(0)

        new_id = gw.faults.correct_execution()
        assert new_id == first[:-2] + "02"
        await until(lambda: len(trade.fills) == 2 and len(reports) == 2)
        corrected = trade.fills[1].execution
        assert corrected.execId == new_id and corrected.orderId == trade.order.orderId
        assert corrected.shares == 10


@run_async
async def test_historical_pacing_violation_162(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, aapl, errors):
        gw.faults.history_pacing(2, window_seconds=60)
        for _ in range(2):
            assert await ib.reqHistoricalDataAsync(aapl, "", "600 S", "1 min", "TRADES", False)
        bars = await ib.reqHistoricalDataAsync(aapl, "", "600 S", "1 min", "TRADES", False)
        assert not bars
        assert any(code == 162 for _req, code in errors)
        gw.faults.reset()
        assert await ib.reqHistoricalDataAsync(aapl, "", "600 S", "1 min", "TRADES", False)


@run_async
async def test_admin_port_drives_faults_from_another_process(tmp_path):
    async with connected(tmp_path, admin_port=0) as (gw, ib, _clock, aapl, errors):
        script = (
            "import sys, json; from trader.sim.faults import send_admin_command as s; "
            "print(json.dumps([s(int(sys.argv[1]), {'fault': 'reject_next_order', 'code': 203, "
            "'message': 'The security is not available or allowed for this account'}), "
            "s(int(sys.argv[1]), {'fault': 'nope'})]))"
        )
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(gw.admin_port),
                                                    stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        ok, bad = __import__("json").loads(out)
        assert ok == {"ok": True, "result": None} and "error" in bad
        trade = ib.placeOrder(aapl, MarketOrder("BUY", 1))
        await until(trade.isDone)
        assert (trade.order.orderId, 203) in errors


@run_async
async def test_silent_stall_acknowledges_requests_but_sends_no_ticks_and_no_error(tmp_path):
    async with connected(tmp_path) as (gw, ib, clock, aapl, errors):
        gw.faults.stall_market_data(60)
        before = list(errors)
        ticker = ib.reqMktData(aapl)
        session = gw.sessions[1]
        await until(lambda: session.mkt)  # the subscription exists: reqMktData "returned"
        for _ in range(5):
            clock.advance(timedelta(seconds=5))
            await asyncio.sleep(0.05)
        assert math.isnan(ticker.last) and math.isnan(ticker.bid) and errors == before
        gw.faults.reset()
        await until(lambda: not math.isnan(ticker.last))
        assert errors == before  # it recovers as silently as it stalled


@run_async
async def test_competing_session_reports_10197_per_subscription(tmp_path):
    async with connected(tmp_path) as (gw, ib, _clock, aapl, errors):
        ticker = ib.reqMktData(aapl)
        await until(lambda: not math.isnan(ticker.last))
        assert gw.faults.competing_session(60) == 1
        req_id = next(iter(gw.sessions[1].mkt))
        await until(lambda: (req_id, 10197) in errors)
        assert gw.faults.status()["market_data_paused"]


def test_fault_catalogue_lists_every_admin_command():
    out = subprocess.run([sys.executable, "-m", "trader.sim.gateway", "--faults"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    from trader.sim.faults import FaultController

    commands = FaultController._COMMANDS - {"status", "emit"}
    assert all(f'"fault": "{name}"' in out for name in commands), out
    for symptom in ("2103", "1100", "1101", "1102", "162", "10197", "201", "…02", "no ticks arrive"):
        assert symptom in out
