"""Server versions 201+: binary message ids and IB's protobuf messages, translated with the official client's code.

From server version 201 (``MIN_SERVER_VER_PROTOBUF``) every frame carries its message id as a 4-byte big-endian
integer instead of a text field, and a message whose id is above 200 is a protobuf (id − 200 is the classic id;
the ``.proto`` definitions ship in the ``ibapi`` package as ``ibapi.protobuf.*_pb2``). Which requests the client
sends as protobuf grows with the version (``ibapi.common.getServerVersionForMessage``): 201 reqExecutions; 203
orders; 204 open/completed order requests; 205 contract data; 206 market data; 207 accounts and positions; 208
history, real-time bars, tick by tick; 209 news; 210 scanner and P&L; 211 option calculations; 212 reference data;
213 startApi, reqIds, current time. The gateway translates every one of them that it serves and negotiates up to
``MAX_PROTOBUF_VERSION`` (226, the official client 10.50's top); the request types added after 213 (cancelContractData,
reqConfig, updateConfig) and FA/exercise/WSH requests get IB's 321 validation error.

Replies go out as IB's protobuf messages from the version their request category moved: errors, executions and
commission reports from 201, orders and order statuses from 203, completed orders from 204, contract data from
205, ticks and market depth from 206, account values, portfolio, positions, summaries and managed accounts from
207, historical and real-time bars, head timestamps and tick-by-tick from 208, news from 209, scanner and P&L from
210, option chains, symbol samples, market rules and user info from 212, nextValidId, current time and depth
exchanges from 213 — every reply the gateway sends. Below those versions a reply is text with a binary id, which
the official client reads at any version (its text layouts did not change after 200).

Translation uses the official ``ibapi`` package rather than a second implementation of IB's field rules:

- a protobuf request is decoded with ``ibapi.decoder_utils`` (contract, order) and re-encoded by an offline
  ``EClient`` at server version 200 into the text fields the session's request handlers already read;
- a reply the session built as text (200 layout) is decoded by ``ibapi.decoder.Decoder`` into the client's
  objects, which become the protobuf with ``ibapi.client_utils`` (contract, order) and the builders of
  trader/sim/protobuf_replies.py.

``ibapi`` is therefore needed for 201+: without it (or its protobuf folder) the gateway negotiates at most 200.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from trader.sim.protobuf_replies import encode_reply, wants
from trader.sim.protocol import fmt, for_version

__all__ = ["MAX_PROTOBUF_VERSION", "MSG_ID_OFFSET", "PROTOBUF", "TEXT_LAYOUT", "available", "encode_reply",
           "encode_text", "request_fields", "wants"]

PROTOBUF = 201  # MIN_SERVER_VER_PROTOBUF
MSG_ID_OFFSET = 200  # PROTOBUF_MSG_ID
TEXT_LAYOUT = 200  # requests and replies are translated through the text layout of this version
MAX_PROTOBUF_VERSION = 226  # the official client 10.50's MAX_CLIENT_VER: every request category it sends as protobuf

def available() -> bool:
    """True when the installed ibapi has the protobuf definitions (else the gateway stays at text 200)."""
    try:
        import ibapi.client_utils  # noqa: F401
        import ibapi.protobuf.OpenOrder_pb2  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- requests (protobuf -> text)


class _Conn:
    """The offline client's socket: keeps the last frame instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def isConnected(self) -> bool:  # noqa: N802 - EClient's API
        return True

    def sendMsg(self, msg: bytes) -> None:  # noqa: N802
        self.sent.append(msg)


def _offline_client():
    from ibapi.client import EClient
    from ibapi.wrapper import EWrapper

    errors: list[tuple] = []

    class _Wrapper(EWrapper):
        def error(self, reqId, *args) -> None:  # noqa: N802,N803
            errors.append((reqId, *args))

    client = EClient(_Wrapper())
    client.conn = _Conn()
    client.connState = EClient.CONNECTED
    client.serverVersion_ = TEXT_LAYOUT
    client.translation_errors = errors
    return client


def _order_cancel(proto) -> Any:
    from ibapi.order_cancel import OrderCancel

    oc = OrderCancel()
    if proto is not None:
        if proto.HasField("manualOrderCancelTime"):
            oc.manualOrderCancelTime = proto.manualOrderCancelTime
        if proto.HasField("extOperator"):
            oc.extOperator = proto.extOperator
        if proto.HasField("manualOrderIndicator"):
            oc.manualOrderIndicator = proto.manualOrderIndicator
    return oc


def _executions(client, p) -> None:
    from ibapi.execution import ExecutionFilter

    f, src = ExecutionFilter(), p.executionFilter
    for name in ("clientId", "acctCode", "time", "symbol", "secType", "exchange", "side", "lastNDays"):
        if src.HasField(name):
            setattr(f, name, getattr(src, name))
    f.specificDates = list(src.specificDates) or None
    client.reqExecutions(p.reqId, f)


def _place(client, p) -> None:
    from ibapi.decoder_utils import decodeContract, decodeOrder

    client.placeOrder(p.orderId, decodeContract(p.contract), decodeOrder(p.orderId, p.contract, p.order))


def _contract(p) -> Any:
    from ibapi.decoder_utils import decodeContract

    return decodeContract(p.contract)


def _scanner(client, p) -> None:
    from ibapi.scanner import ScannerSubscription

    sub, src = ScannerSubscription(), p.scannerSubscription
    for field, _value in src.ListFields():
        if hasattr(sub, field.name) and not field.name.startswith("scannerSubscription"):
            setattr(sub, field.name, getattr(src, field.name))
    client.reqScannerSubscription(p.reqId, sub, [], [])


def _start_api(client, p) -> None:
    client.clientId = p.clientId
    client.optCapab = p.optionalCapabilities
    client.startApi()


# classic request id -> (protobuf message name, the EClient call that re-encodes it as text)
_REQUESTS: dict[int, tuple[str, Callable[[Any, Any], None]]] = {
    # 201-204: executions and orders
    7: ("ExecutionRequest", _executions),
    3: ("PlaceOrderRequest", _place),
    4: ("CancelOrderRequest", lambda c, p: c.cancelOrder(p.orderId, _order_cancel(p.orderCancel))),
    58: ("GlobalCancelRequest", lambda c, p: c.reqGlobalCancel(_order_cancel(p.orderCancel))),
    5: ("OpenOrdersRequest", lambda c, p: c.reqOpenOrders()),
    16: ("AllOpenOrdersRequest", lambda c, p: c.reqAllOpenOrders()),
    15: ("AutoOpenOrdersRequest", lambda c, p: c.reqAutoOpenOrders(p.autoBind)),
    99: ("CompletedOrdersRequest", lambda c, p: c.reqCompletedOrders(p.apiOnly)),
    # 205 contract data, 206 market data
    9: ("ContractDataRequest", lambda c, p: c.reqContractDetails(p.reqId, _contract(p))),
    1: ("MarketDataRequest", lambda c, p: c.reqMktData(p.reqId, _contract(p), p.genericTickList, p.snapshot,
                                                        p.regulatorySnapshot, [])),
    2: ("CancelMarketData", lambda c, p: c.cancelMktData(p.reqId)),
    10: ("MarketDepthRequest", lambda c, p: c.reqMktDepth(p.reqId, _contract(p), p.numRows, p.isSmartDepth, [])),
    11: ("CancelMarketDepth", lambda c, p: c.cancelMktDepth(p.reqId, p.isSmartDepth)),
    59: ("MarketDataTypeRequest", lambda c, p: c.reqMarketDataType(p.marketDataType)),
    # 207 accounts and positions
    6: ("AccountDataRequest", lambda c, p: c.reqAccountUpdates(p.subscribe, p.acctCode)),
    17: ("ManagedAccountsRequest", lambda c, p: c.reqManagedAccts()),
    61: ("PositionsRequest", lambda c, p: c.reqPositions()),
    64: ("CancelPositions", lambda c, p: c.cancelPositions()),
    62: ("AccountSummaryRequest", lambda c, p: c.reqAccountSummary(p.reqId, p.group, p.tags)),
    63: ("CancelAccountSummary", lambda c, p: c.cancelAccountSummary(p.reqId)),
    74: ("PositionsMultiRequest", lambda c, p: c.reqPositionsMulti(p.reqId, p.account, p.modelCode)),
    75: ("CancelPositionsMulti", lambda c, p: c.cancelPositionsMulti(p.reqId)),
    76: ("AccountUpdatesMultiRequest", lambda c, p: c.reqAccountUpdatesMulti(p.reqId, p.account, p.modelCode,
                                                                          p.ledgerAndNLV)),
    77: ("CancelAccountUpdatesMulti", lambda c, p: c.cancelAccountUpdatesMulti(p.reqId)),
    # 208 history, real-time bars, tick by tick
    20: ("HistoricalDataRequest", lambda c, p: c.reqHistoricalData(
        p.reqId, _contract(p), p.endDateTime, p.duration, p.barSizeSetting, p.whatToShow, p.useRTH, p.formatDate,
        p.keepUpToDate, [])),
    25: ("CancelHistoricalData", lambda c, p: c.cancelHistoricalData(p.reqId)),
    50: ("RealTimeBarsRequest", lambda c, p: c.reqRealTimeBars(p.reqId, _contract(p), p.barSize, p.whatToShow,
                                                                p.useRTH, [])),
    51: ("CancelRealTimeBars", lambda c, p: c.cancelRealTimeBars(p.reqId)),
    87: ("HeadTimestampRequest", lambda c, p: c.reqHeadTimeStamp(p.reqId, _contract(p), p.whatToShow, p.useRTH,
                                                                  p.formatDate)),
    90: ("CancelHeadTimestamp", lambda c, p: c.cancelHeadTimeStamp(p.reqId)),
    88: ("HistogramDataRequest", lambda c, p: c.reqHistogramData(p.reqId, _contract(p), p.useRTH, p.timePeriod)),
    89: ("CancelHistogramData", lambda c, p: c.cancelHistogramData(p.reqId)),
    96: ("HistoricalTicksRequest", lambda c, p: c.reqHistoricalTicks(
        p.reqId, _contract(p), p.startDateTime, p.endDateTime, p.numberOfTicks, p.whatToShow, p.useRTH,
        p.ignoreSize, [])),
    97: ("TickByTickRequest", lambda c, p: c.reqTickByTickData(p.reqId, _contract(p), p.tickType,
                                                                p.numberOfTicks, p.ignoreSize)),
    98: ("CancelTickByTick", lambda c, p: c.cancelTickByTickData(p.reqId)),
    # 209 news, 210 scanner and P&L
    12: ("NewsBulletinsRequest", lambda c, p: c.reqNewsBulletins(p.allMessages)),
    13: ("CancelNewsBulletins", lambda c, p: c.cancelNewsBulletins()),
    84: ("NewsArticleRequest", lambda c, p: c.reqNewsArticle(p.reqId, p.providerCode, p.articleId, [])),
    85: ("NewsProvidersRequest", lambda c, p: c.reqNewsProviders()),
    86: ("HistoricalNewsRequest", lambda c, p: c.reqHistoricalNews(p.reqId, p.conId, p.providerCodes,
                                                                    p.startDateTime, p.endDateTime,
                                                                    p.totalResults, [])),
    24: ("ScannerParametersRequest", lambda c, p: c.reqScannerParameters()),
    22: ("ScannerSubscriptionRequest", _scanner),
    23: ("CancelScannerSubscription", lambda c, p: c.cancelScannerSubscription(p.reqId)),
    92: ("PnLRequest", lambda c, p: c.reqPnL(p.reqId, p.account, p.modelCode)),
    93: ("CancelPnL", lambda c, p: c.cancelPnL(p.reqId)),
    94: ("PnLSingleRequest", lambda c, p: c.reqPnLSingle(p.reqId, p.account, p.modelCode, p.conId)),
    95: ("CancelPnLSingle", lambda c, p: c.cancelPnLSingle(p.reqId)),
    # 211 option calculations (the session answers "not supported" with the request id)
    54: ("CalculateImpliedVolatilityRequest", lambda c, p: c.calculateImpliedVolatility(
        p.reqId, _contract(p), p.optionPrice, p.underPrice, [])),
    56: ("CancelCalculateImpliedVolatility", lambda c, p: c.cancelCalculateImpliedVolatility(p.reqId)),
    55: ("CalculateOptionPriceRequest", lambda c, p: c.calculateOptionPrice(
        p.reqId, _contract(p), p.volatility, p.underPrice, [])),
    57: ("CancelCalculateOptionPrice", lambda c, p: c.cancelCalculateOptionPrice(p.reqId)),
    # 212 reference data, 213 session
    78: ("SecDefOptParamsRequest", lambda c, p: c.reqSecDefOptParams(p.reqId, p.underlyingSymbol, p.futFopExchange,
                                                                      p.underlyingSecType, p.underlyingConId)),
    81: ("MatchingSymbolsRequest", lambda c, p: c.reqMatchingSymbols(p.reqId, p.pattern)),
    91: ("MarketRuleRequest", lambda c, p: c.reqMarketRule(p.marketRuleId)),
    104: ("UserInfoRequest", lambda c, p: c.reqUserInfo(p.reqId)),
    83: ("SmartComponentsRequest", lambda c, p: c.reqSmartComponents(p.reqId, p.bboExchange)),
    79: ("SoftDollarTiersRequest", lambda c, p: c.reqSoftDollarTiers(p.reqId)),
    80: ("FamilyCodesRequest", lambda c, p: c.reqFamilyCodes()),
    8: ("IdsRequest", lambda c, p: c.reqIds(p.numIds)),
    49: ("CurrentTimeRequest", lambda c, p: c.reqCurrentTime()),
    105: ("CurrentTimeInMillisRequest", lambda c, p: c.reqCurrentTimeInMillis()),
    71: ("StartApiRequest", _start_api),
    14: ("SetServerLogLevelRequest", lambda c, p: c.setServerLogLevel(p.logLevel)),
    82: ("MarketDepthExchangesRequest", lambda c, p: c.reqMktDepthExchanges()),
}


def request_fields(msg_id: int, body: bytes) -> list[str]:
    """The text fields (classic id first) of a protobuf request; ValueError for one we cannot read."""
    import importlib

    from google.protobuf.message import DecodeError

    spec = _REQUESTS.get(msg_id)
    if spec is None:
        raise ValueError(f"protobuf request {msg_id} is not supported in the simulator")
    name, translate = spec
    cls = getattr(importlib.import_module(f"ibapi.protobuf.{name}_pb2"), name)
    proto = cls()
    try:
        proto.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"malformed {name}: {exc}") from exc
    client = _offline_client()
    translate(client, proto)
    if not client.conn.sent:
        raise ValueError(f"{name} refused: {client.translation_errors[-1:] or 'no message'}")
    payload = client.conn.sent[-1][4:]  # drop the length; at TEXT_LAYOUT the id is the first text field
    parts = payload.decode(errors="backslashreplace").split("\0")
    return parts[:-1] if parts and parts[-1] == "" else parts


# --------------------------------------------------------------------------- replies (trader/sim/protobuf_replies.py)


def encode_text(fields: list[object], server_version: int) -> bytes:
    """A text reply at 201+: the id as a 4-byte integer, then the other fields NUL-terminated."""
    out = for_version(fields, server_version)
    body = struct.pack(">I", int(out[0])) + "".join(fmt(f) + "\0" for f in out[1:]).encode()  # type: ignore[call-overload]
    return struct.pack(">I", len(body)) + body
