"""Connect/sync, several clients, duplicate clientId, unknown requests — driven by the real ib_async.IB."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import IB

from trader.sim import protocol as P
from trader.sim.testkit import START, connect, gateway
from trader.testing import run_async


@run_async
async def test_connect_and_sync_with_empty_account(tmp_path):
    async with gateway(tmp_path) as gw:
        ib = IB()
        codes: list[int] = []
        ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
        await ib.connectAsync("127.0.0.1", gw.port, clientId=7, timeout=5)
        try:
            assert ib.isConnected()
            assert ib.client.serverVersion() == min(ib.client.MaxClientVersion, P.SERVER_VERSION) == 178
            assert ib.managedAccounts() == ["DU0000001"]
            assert ib.positions() == []
            assert ib.openTrades() == []
            assert {2104, 2106, 2158} <= set(codes)
            values = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD"}
            assert float(values["NetLiquidation"]) == pytest.approx(1_000_000)
            assert float(values["TotalCashValue"]) == pytest.approx(1_000_000)
            summary = {v.tag: v.value for v in await ib.accountSummaryAsync()}
            assert float(summary["AvailableFunds"]) == pytest.approx(1_000_000)
            assert await ib.reqCurrentTimeAsync() == START
            assert ib.client.getReqId() >= 1
        finally:
            ib.disconnect()


@run_async
async def test_several_clients_and_duplicate_client_id_is_refused_with_326(tmp_path):
    async with gateway(tmp_path) as gw:
        a = await connect(gw, 1)
        b = await connect(gw, 2)
        try:
            assert a.isConnected() and b.isConnected()
            assert set(gw.sessions) == {1, 2}
            dup = IB()
            codes: list[int] = []
            dup.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
            with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError)):
                await dup.connectAsync("127.0.0.1", gw.port, clientId=1, timeout=1)
            assert 326 in codes
            assert not dup.isConnected()
            assert a.isConnected()  # the first holder of clientId 1 is unaffected
        finally:
            a.disconnect()
            b.disconnect()
        await asyncio.sleep(0.05)
        c = await connect(gw, 1)  # the id is free again once its holder left
        assert c.isConnected()
        c.disconnect()


@run_async
async def test_unknown_and_unsupported_requests_answer_with_errors_not_a_hangup(tmp_path):
    async with gateway(tmp_path) as gw:
        ib = await connect(gw)
        errors: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
        try:
            ib.client.send(999, 1, "whatever")  # a message id TWS does not know
            ib.client.send(88, 4242, "")  # reqHistogramData: known, not simulated
            for _ in range(100):
                if len(errors) >= 2:
                    break
                await asyncio.sleep(0.01)
            assert (-1, 321) in errors
            assert (4242, 10999) in errors
            assert ib.isConnected()
            assert await ib.reqCurrentTimeAsync() == START  # still serving
        finally:
            ib.disconnect()


def test_frame_codec_round_trip():
    msg = P.encode_msg([1, 2.5, None, True, "x"])
    assert P.FrameBuffer().feed(msg[:3]) == []
    buf = P.FrameBuffer()
    assert buf.feed(msg + msg) == [["1", "2.5", "", "1", "x"]] * 2
    assert P.parse_version_range("v157..178 +PACEAPI") == (157, 178, "+PACEAPI")
    assert P.parse_version_range("v176") == (176, 176, "")
