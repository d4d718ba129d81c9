"""Conformance: the official ``ibapi`` client (as packaged, ibapi-stable) runs a whole session against the gateway
at several negotiated server versions — the text protocol (178: what ib_async speaks; 200: the last text-only
version) and the protobuf one (201+, when the gateway speaks it): connect, contract details, history, a market
order filled with its execution and commission, a resting limit cancelled, executions, completed orders,
positions, and an error for an unknown contract."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from trader.sim import protobuf as PB
from trader.sim import protocol as P
from trader.sim import testkit
from trader.testing import run_async

VERSIONS = sorted({178, P.SERVER_VERSION, 201, 203, 204, 207, PB.MAX_PROTOBUF_VERSION})
# protobuf replies the client must see, by the version from which IB sends them (ibapi's *ProtoBuf callbacks)
PROTO_REPLIES = {201: {"errorProtoBuf", "executionDetailsProtoBuf", "executionDetailsEndProtoBuf",
                       "commissionAndFeesReportProtoBuf"},
                 203: {"openOrderProtoBuf", "orderStatusProtoBuf"},
                 204: {"completedOrderProtoBuf", "completedOrdersEndProtoBuf"},
                 205: {"contractDataProtoBuf", "contractDataEndProtoBuf"},
                 207: {"positionProtoBuf", "positionEndProtoBuf", "managedAccountsProtoBuf"},
                 208: {"historicalDataProtoBuf", "historicalDataEndProtoBuf"},
                 213: {"nextValidIdProtoBuf"}}


def _session(port: int, max_version: int) -> dict:
    """Run one scripted ibapi session in this thread (the client's own reader thread does the I/O)."""
    import ibapi.client
    from ibapi.client import EClient
    from ibapi.contract import Contract
    from ibapi.execution import ExecutionFilter
    from ibapi.order import Order
    from ibapi.wrapper import EWrapper

    got: dict = {"details": [], "bars": [], "status": [], "execs": [], "fees": [], "open": [], "errors": [],
                 "completed": [], "positions": [], "exec_query": [], "proto": set()}
    done = threading.Event()

    def stock(symbol: str) -> Contract:
        c = Contract()
        c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
        return c

    def order(action: str, qty: int, kind: str, lmt: float | None = None) -> Order:
        o = Order()
        o.action, o.totalQuantity, o.orderType = action, Decimal(qty), kind
        if lmt is not None:
            o.lmtPrice = lmt
        o.eTradeOnly = o.firmQuoteOnly = False
        return o

    class App(EWrapper, EClient):  # noqa: D101 - a scripted client; ibapi's camelCase callbacks below
        def __init__(self) -> None:
            EClient.__init__(self, self)
            self.next_id = 0

        def nextValidId(self, orderId: int) -> None:  # noqa: N802
            if self.next_id:
                return
            self.next_id = orderId
            got["version"] = self.serverVersion()
            self.reqContractDetails(1, stock("AAPL"))

        def contractDetails(self, reqId, contractDetails) -> None:  # noqa: N802
            got["details"].append(contractDetails)

        def contractDetailsEnd(self, reqId) -> None:  # noqa: N802
            if reqId == 1:
                self.reqContractDetails(2, stock("NOSUCHSYM"))
                self.reqHistoricalData(3, got["details"][0].contract, "", "1 D", "1 hour", "TRADES", 0, 1, False, [])

        def historicalData(self, reqId, bar) -> None:  # noqa: N802
            got["bars"].append(bar)

        def historicalDataEnd(self, reqId, start, end) -> None:  # noqa: N802
            got["hist_end"] = (start, end)
            self.placeOrder(self.next_id, got["details"][0].contract, order("BUY", 10, "MKT"))

        def openOrder(self, orderId, contract, order, orderState) -> None:  # noqa: N802
            got["open"].append((orderId, contract.conId, order.orderType, str(order.totalQuantity),
                                orderState.status))

        def orderStatus(self, orderId, status, filled, remaining, avgFillPrice, *rest) -> None:  # noqa: N802
            got["status"].append((orderId, status, str(filled), avgFillPrice))
            if orderId == self.next_id and status == "Filled" and not got.get("limit_sent"):
                got["limit_sent"] = True
                self.placeOrder(self.next_id + 1, got["details"][0].contract, order("BUY", 5, "LMT", 1.0))
            if orderId == self.next_id + 1 and status == "Submitted" and not got.get("cancel_sent"):
                got["cancel_sent"] = True
                self.cancelOrder(self.next_id + 1, ibapi.order_cancel.OrderCancel())
            if orderId == self.next_id + 1 and status == "Cancelled":
                self.reqExecutions(4, ExecutionFilter())

        def execDetails(self, reqId, contract, execution) -> None:  # noqa: N802
            (got["exec_query"] if reqId == 4 else got["execs"]).append(
                (contract.conId, execution.execId, str(execution.shares), execution.price))

        def execDetailsEnd(self, reqId) -> None:  # noqa: N802
            self.reqCompletedOrders(False)

        def commissionAndFeesReport(self, report) -> None:  # noqa: N802
            got["fees"].append((report.execId, report.commissionAndFees, report.currency))

        def completedOrder(self, contract, order, orderState) -> None:  # noqa: N802
            got["completed"].append((contract.conId, order.orderType, orderState.status))

        def completedOrdersEnd(self) -> None:  # noqa: N802
            self.reqPositions()

        def position(self, account, contract, position, avgCost) -> None:
            got["positions"].append((account, contract.conId, str(position)))

        def positionEnd(self) -> None:  # noqa: N802
            done.set()

        def error(self, reqId, *args) -> None:
            got["errors"].append((reqId, args))

        def __getattribute__(self, name: str):  # note every protobuf message the client decoded
            if name.endswith("ProtoBuf") and not name.startswith(("send", "process")) and name != "useProtoBuf":
                got["proto"].add(name)
            return super().__getattribute__(name)

    import ibapi.order_cancel  # noqa: F401 - cancelOrder's argument

    saved = ibapi.client.MAX_CLIENT_VER
    ibapi.client.MAX_CLIENT_VER = max_version  # the client offers v100..max_version
    try:
        app = App()
        app.connect("127.0.0.1", port, 21)
    finally:
        ibapi.client.MAX_CLIENT_VER = saved
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    got["finished"] = done.wait(15)
    app.disconnect()
    thread.join(5)
    return got


@pytest.mark.parametrize("version", VERSIONS)
@run_async(timeout=60)
async def test_official_ibapi_session(tmp_path, version):
    async with testkit.gateway(tmp_path) as gw:
        got = await asyncio.to_thread(_session, gw.port, version)
    assert got["finished"], {k: v for k, v in got.items() if k not in ("details", "bars", "open")}
    assert got["version"] == version
    [details] = got["details"]
    assert details.contract.conId == 265598 and details.secIdList[0].value == "US0378331005"
    assert any(reqId == 2 and 200 in args for reqId, args in got["errors"])  # unknown contract: IB's 200
    assert got["bars"] and got["bars"][-1].close > 0 and got["hist_end"][0] < got["hist_end"][1]
    oid = got["status"][0][0]
    assert (oid, 265598, "MKT", "10") in [o[:4] for o in got["open"]]
    fills = [s for s in got["status"] if s[0] == oid and s[1] == "Filled"]
    assert fills and fills[-1][2] == "10"
    [(con_id, exec_id, shares, price)] = got["execs"]
    assert (con_id, shares) == (265598, "10") and price == fills[-1][3]
    assert got["fees"] and got["fees"][0][0] == exec_id and got["fees"][0][1] > 0
    assert any(s[0] == oid + 1 and s[1] == "Cancelled" for s in got["status"])
    assert exec_id in [e[1] for e in got["exec_query"]]
    assert {("MKT", "Filled"), ("LMT", "Cancelled")} <= {(c[1], c[2]) for c in got["completed"]}
    assert ("DU0000001", 265598, "10") in got["positions"]
    wanted = set().union(*(names for since, names in PROTO_REPLIES.items() if version >= since))
    assert wanted <= got["proto"], wanted - got["proto"]
    assert version >= PB.PROTOBUF or not got["proto"]  # the text protocol below 201


def test_malformed_protobuf_request_gets_an_error_not_a_crash(tmp_path):
    """A garbage protobuf placeOrder at 204: IB's 321 validation error, and the session keeps serving."""
    import struct

    from ibapi.protobuf.ErrorMessage_pb2 import ErrorMessage

    async def scenario() -> list[bytes]:
        async with testkit.gateway(tmp_path) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
            hello = b"v100..204"
            writer.write(b"API\0" + struct.pack(">I", len(hello)) + hello)
            frames = []

            async def frame() -> bytes:
                n = struct.unpack(">I", await reader.readexactly(4))[0]
                return await reader.readexactly(n)

            frames.append(await frame())  # handshake: version, time
            start = struct.pack(">I", 71) + b"2\0" + b"5\0\0"  # startApi (text at 204), clientId 5
            writer.write(struct.pack(">I", len(start)) + start)
            bad = struct.pack(">I", 3 + 200) + b"\xff\xff\xff"  # placeOrder as protobuf: not a message
            writer.write(struct.pack(">I", len(bad)) + bad)
            ids = struct.pack(">I", 8) + b"1\0" + b"1\0"  # reqIds (text)
            writer.write(struct.pack(">I", len(ids)) + ids)
            rejected = False
            while not rejected or int.from_bytes(frames[-1][:4], "big") != 9:  # until the reqIds answer after it
                frames.append(await asyncio.wait_for(frame(), 5))
                rejected = rejected or (int.from_bytes(frames[-1][:4], "big") == 204
                                        and ErrorMessage.FromString(frames[-1][4:]).errorCode == 321)
            writer.close()
            return frames

    frames = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert frames[0].split(b"\0")[0] == b"204"
    errors = [ErrorMessage.FromString(f[4:]) for f in frames[1:] if int.from_bytes(f[:4], "big") == 204]
    assert any(e.errorCode == 321 for e in errors), [(e.errorCode, e.errorMsg) for e in errors]
    assert int.from_bytes(frames[-1][:4], "big") == 9  # nextValidId after the bad frame: still serving
