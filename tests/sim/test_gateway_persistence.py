"""Restart persistence: stop the gateway, start a new one on the same state_dir, reconnect with ib_async."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock

from trader.sim.gateway import SimGateway
from trader.sim.testkit import gateway_kwargs
from trader.testing import run_async, until


def cash(ib: IB) -> float:
    return next(float(v.value) for v in ib.accountValues() if v.tag == "TotalCashValue" and v.currency == "USD")


@run_async
async def test_positions_cash_open_orders_and_executions_survive_a_restart(tmp_path):
    gw = SimGateway(**gateway_kwargs(tmp_path))
    await gw.start()
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=3, timeout=5)
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    buy = ib.placeOrder(aapl, MarketOrder("BUY", 100))
    await until(buy.isDone)
    q = gw.market.quote(aapl.conId)
    resting = ib.placeOrder(aapl, LimitOrder("BUY", 5, round(q.bid - 20, 2)))
    await until(lambda: resting.orderStatus.status == "Submitted")
    await until(lambda: ib.accountValues() and cash(ib) < 1_000_000)
    cash_before = cash(ib)
    ib.disconnect()
    await gw.stop()

    gw2 = SimGateway(**gateway_kwargs(tmp_path))  # same state_dir, fresh clock at START
    await gw2.start()
    ib2 = IB()
    try:
        await ib2.connectAsync("127.0.0.1", gw2.port, clientId=3, timeout=5)
        [pos] = ib2.positions()
        assert pos.contract.conId == 265598 and pos.position == 100
        assert cash(ib2) == pytest.approx(cash_before)
        [open_trade] = ib2.openTrades()
        assert open_trade.order.orderId == resting.order.orderId
        assert open_trade.order.permId == resting.order.permId
        assert open_trade.orderStatus.status == "Submitted"
        assert {f.execution.execId for f in ib2.fills()} == {f.execution.execId for f in buy.fills}
        assert ib2.client.getReqId() > resting.order.orderId  # nextValidId stays above used ids
        # the restored order still works: cancel it
        ib2.cancelOrder(open_trade.order)
        await until(open_trade.isDone)
        assert open_trade.orderStatus.status == "Cancelled"
    finally:
        ib2.disconnect()
        await gw2.stop()


def test_console_script_serves_ib_async_and_saves_state_on_sigterm(tmp_path):
    """`mmr-sim-gateway` as its own process: ib_async connects and trades; SIGTERM stops it cleanly."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", "from trader.sim.gateway import main; main()", "--port",
                             str(port), "--state-dir", str(state), "--log-level", "WARNING"])
    try:

        async def trade() -> float:
            ib = IB()
            for _ in range(200):  # until the process listens
                try:
                    await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=5)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.05)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            t = ib.placeOrder(aapl, MarketOrder("BUY", 7))
            await until(t.isDone)
            ib.disconnect()
            return t.orderStatus.filled

        assert asyncio.run(asyncio.wait_for(trade(), 30)) == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    account = __import__("json").loads((state / "account.json").read_text())
    assert [p["position"] for p in account["positions"]] == [7]
    assert (state / "orders.json").exists()
