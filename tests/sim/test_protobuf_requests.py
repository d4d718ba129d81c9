"""Every protobuf request the official client sends (server version 226) becomes exactly the text request the same
client sends at 200: the gateway's translation (trader/sim/protobuf.py) loses nothing its handlers read."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from trader.sim import protobuf as PB


def _contract():
    from ibapi.contract import Contract

    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency, c.primaryExchange = 265598, "AAPL", "STK", "SMART", \
        "USD", "NASDAQ"
    return c


def _order():
    from ibapi.order import Order

    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.tif, o.orderRef = "BUY", Decimal(10), "LMT", 231.5, \
        "GTC", "ref-1"
    o.eTradeOnly = o.firmQuoteOnly = False
    return o


def _calls():
    from ibapi.execution import ExecutionFilter
    from ibapi.order_cancel import OrderCancel
    from ibapi.scanner import ScannerSubscription

    sub = ScannerSubscription()
    sub.instrument, sub.locationCode, sub.scanCode, sub.numberOfRows, sub.abovePrice = "STK", "STK.US.MAJOR", \
        "MOST_ACTIVE", 5, 10.0
    ef = ExecutionFilter()
    ef.clientId, ef.symbol = 3, "AAPL"
    return [
        ("reqExecutions", (4, ef)), ("placeOrder", (7, _contract(), _order())),
        ("cancelOrder", (7, OrderCancel())), ("reqGlobalCancel", (OrderCancel(),)), ("reqOpenOrders", ()),
        ("reqAllOpenOrders", ()), ("reqAutoOpenOrders", (True,)), ("reqCompletedOrders", (False,)),
        ("reqContractDetails", (1, _contract())), ("reqMktData", (2, _contract(), "233", False, False, [])),
        ("cancelMktData", (2,)), ("reqMktDepth", (3, _contract(), 5, False, [])), ("cancelMktDepth", (3, False)),
        ("reqMarketDataType", (3,)), ("reqAccountUpdates", (True, "DU0000001")), ("reqManagedAccts", ()),
        ("reqPositions", ()), ("cancelPositions", ()), ("reqAccountSummary", (5, "All", "NetLiquidation")),
        ("cancelAccountSummary", (5,)), ("reqAccountUpdatesMulti", (6, "DU0000001", "", False)),
        ("cancelAccountUpdatesMulti", (6,)),
        ("reqHistoricalData", (8, _contract(), "", "1 D", "1 hour", "TRADES", 1, 1, False, [])),
        ("cancelHistoricalData", (8,)), ("reqRealTimeBars", (9, _contract(), 5, "MIDPOINT", False, [])),
        ("cancelRealTimeBars", (9,)), ("reqHeadTimeStamp", (10, _contract(), "TRADES", 1, 1)),
        ("reqTickByTickData", (11, _contract(), "BidAsk", 0, False)), ("cancelTickByTickData", (11,)),
        ("reqNewsArticle", (12, "BRFG", "BRFG$1.2", [])), ("reqNewsProviders", ()),
        ("reqHistoricalNews", (13, 265598, "BRFG", "", "", 5, [])), ("reqScannerParameters", ()),
        ("reqScannerSubscription", (14, sub, [], [])), ("cancelScannerSubscription", (14,)),
        ("reqPnL", (15, "DU0000001", "")), ("cancelPnL", (15,)), ("reqPnLSingle", (16, "DU0000001", "", 265598)),
        ("cancelPnLSingle", (16,)), ("reqSecDefOptParams", (17, "AAPL", "", "STK", 265598)),
        ("reqMatchingSymbols", (18, "AAP")), ("reqMarketRule", (26,)), ("reqUserInfo", (19,)),
        ("reqIds", (1,)), ("reqCurrentTime", ()), ("reqCurrentTimeInMillis", ()), ("reqMktDepthExchanges", ()),
    ]


def _sent(version: int, method: str, args: tuple) -> bytes:
    client = PB._offline_client()
    client.serverVersion_ = version
    client.clientId = 21
    getattr(client, method)(*args)
    assert client.conn.sent, f"{method} at v{version}: nothing sent ({client.translation_errors})"
    return client.conn.sent[-1]


@pytest.mark.parametrize(("method", "args"), _calls(), ids=[m for m, _ in _calls()])
def test_protobuf_request_equals_the_text_request(method, args):
    proto = _sent(PB.MAX_PROTOBUF_VERSION, method, args)[4:]
    msg_id = struct.unpack(">I", proto[:4])[0]
    assert msg_id > PB.MSG_ID_OFFSET, f"{method} went out as text at {PB.MAX_PROTOBUF_VERSION}"
    text = _sent(PB.TEXT_LAYOUT, method, args)[4:].decode().split("\0")[:-1]
    # equal field by field; a number may come back as "0.0" where the text client wrote an int default "0"
    assert [_value(f) for f in PB.request_fields(msg_id - PB.MSG_ID_OFFSET, proto[4:])] == [_value(f) for f in text]


def _value(field: str) -> object:
    try:
        return float(field)
    except ValueError:
        return field


def test_start_api_translates():
    client = PB._offline_client()
    client.serverVersion_, client.clientId, client.optCapab = PB.MAX_PROTOBUF_VERSION, 21, ""
    client.startApi()
    frame = client.conn.sent[-1][4:]
    assert PB.request_fields(struct.unpack(">I", frame[:4])[0] - PB.MSG_ID_OFFSET, frame[4:])[:3] == ["71", "2", "21"]


def test_unknown_or_garbage_protobuf_requests_raise_value_error():
    with pytest.raises(ValueError, match="not supported"):
        PB.request_fields(108, b"")  # reqConfig: no simulator counterpart
    with pytest.raises(ValueError):
        PB.request_fields(3, b"\xff\xff\xff")
