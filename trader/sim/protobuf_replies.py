"""Replies of server versions 201+: the session's text replies (200 layout) as IB's protobuf messages.

Which reply goes out as protobuf from which version is ``_REPLY_FROM`` (the version its request category moved to
protobuf, see trader/sim/protobuf.py). Flat messages (ticks, P&L, ids) are built straight from the field list
(``_POSITIONAL``: no decoding on streams); the others are decoded by the official ``ibapi`` decoder into the
client's objects, which become the protobuf through ``ibapi.client_utils`` (contract, order) and the builders
below. tests/sim/test_protocol_versions.py checks that the client's protobuf and text paths reach the same
callbacks with the same values.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

from trader.sim.protocol import UNSET_DOUBLE, UNSET_INTEGER, fmt, for_version

MSG_ID_OFFSET = 200  # PROTOBUF_MSG_ID
TEXT_LAYOUT = 200  # replies are built in the text layout of this version, then translated
_UNSET_DECIMAL = Decimal(2**127 - 1)  # ibapi.const.UNSET_DECIMAL

# outgoing id -> server version from which it goes out as protobuf (the version its request category moved)
_REPLY_FROM = {4: 201, 11: 201, 55: 201, 59: 201, 5: 203, 3: 203, 53: 203, 101: 204, 102: 204,
               10: 205, 52: 205,  # contractData, contractDataEnd
               61: 207, 62: 207, 15: 207, 6: 207, 7: 207, 8: 207, 54: 207, 63: 207, 64: 207,  # positions, accounts
               17: 208, 108: 208, 90: 208}  # historicalData, historicalDataEnd, historicalDataUpdate

def _seq(first: int, *names: str) -> tuple[tuple[str, int], ...]:
    """(proto field, index of our text field) pairs for consecutive fields starting at `first`."""
    return tuple((name, first + i) for i, name in enumerate(names))


# replies built straight from our field list: id -> (protobuf message, from version, (proto field, index) pairs)
_POSITIONAL: dict[int, tuple[str, int, tuple[tuple[str, int], ...]]] = {
    1: ("TickPrice", 206, (("reqId", 2), ("tickType", 3), ("price", 4), ("size", 5), ("attrMask", 6))),
    2: ("TickSize", 206, (("reqId", 2), ("tickType", 3), ("size", 4))),
    46: ("TickString", 206, (("reqId", 2), ("tickType", 3), ("value", 4))),
    21: ("TickOptionComputation", 206, _seq(1, "reqId", "tickType", "tickAttrib", "impliedVol", "delta", "optPrice",
                                            "pvDividend", "gamma", "vega", "theta", "undPrice")),
    57: ("TickSnapshotEnd", 206, (("reqId", 2),)),
    58: ("MarketDataType", 206, (("reqId", 2), ("marketDataType", 3))),
    81: ("TickReqParams", 206, (("reqId", 1), ("minTick", 2), ("bboExchange", 3), ("snapshotPermissions", 4))),
    50: ("RealTimeBarTick", 208, _seq(2, "reqId", "time", "open", "high", "low", "close", "volume", "WAP", "count")),
    88: ("HeadTimestamp", 208, (("reqId", 1), ("headTimestamp", 2))),
    86: ("HistoricalNews", 209, (("reqId", 1), ("time", 2), ("providerCode", 3), ("articleId", 4), ("headline", 5))),
    87: ("HistoricalNewsEnd", 209, (("reqId", 1), ("hasMore", 2))),
    83: ("NewsArticle", 209, (("reqId", 1), ("articleType", 2), ("articleText", 3))),
    94: ("PnL", 210, (("reqId", 1), ("dailyPnL", 2), ("unrealizedPnL", 3), ("realizedPnL", 4))),
    95: ("PnLSingle", 210, _seq(1, "reqId", "position", "dailyPnL", "unrealizedPnL", "realizedPnL", "value")),
    73: ("AccountUpdateMulti", 207, _seq(2, "reqId", "account", "modelCode", "key", "value", "currency")),
    74: ("AccountUpdateMultiEnd", 207, (("reqId", 2),)),
    109: ("CurrentTimeInMillis", 213, (("currentTimeInMillis", 1),)),
    9: ("NextValidId", 213, (("orderId", 2),)),
    49: ("CurrentTime", 213, (("currentTime", 2),)),
}
_REPLY_FROM.update({msg_id: since for msg_id, (_name, since, _f) in _POSITIONAL.items()})
# nested replies decoded through the official client (one callback, or one per row for the scanner)
_REPLY_FROM.update({12: 206, 13: 206,  # market depth L1/L2
                    99: 208,  # tick by tick
                    85: 209,  # news providers
                    19: 210, 20: 210,  # scanner parameters, scanner data
                    75: 212, 76: 212, 79: 212, 93: 212, 107: 212,  # option chains, symbols, rules, user info
                    80: 213})  # market depth exchanges


def wants(msg_id: int, server_version: int) -> bool:
    """True when reply `msg_id` goes out as protobuf at this version."""
    return server_version >= _REPLY_FROM.get(msg_id, 10**9)


class _Capture:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, args))


_DECODER: list[Any] = []


def _decode_text(fields: list[object], allow_none: bool = False) -> list[tuple[str, tuple]]:
    """Run the official decoder over our text reply (200 layout): its callbacks (name, arguments)."""
    from ibapi.decoder import Decoder

    if not _DECODER:
        _DECODER.append(Decoder(None, TEXT_LAYOUT))  # built once: its constructor inspects every EWrapper method
    dec = _DECODER[0]
    cap = _Capture()
    dec.wrapper = cap
    text = [fmt(f).encode() for f in for_version(fields, TEXT_LAYOUT)]
    dec.interpret(tuple(text[1:]), int(text[0]))
    if not cap.calls and not allow_none:
        raise ValueError(f"reply {fields[0]} decoded to nothing")
    return cap.calls


def _set(proto, name: str, value: Any) -> None:
    """Set a proto field unless the value is IB's 'unset' (None, "", UNSET_*)."""
    if value is None or value == "" or value == UNSET_DOUBLE or value == UNSET_INTEGER or value == _UNSET_DECIMAL:
        return
    if isinstance(value, Decimal):
        value = fmt(float(value))
    setattr(proto, name, value)


def _order_state(state, proto) -> None:
    _set(proto, "status", state.status)
    for name in ("initMarginBefore", "maintMarginBefore", "equityWithLoanBefore", "initMarginChange",
                 "maintMarginChange", "equityWithLoanChange", "initMarginAfter", "maintMarginAfter",
                 "equityWithLoanAfter"):
        value = getattr(state, name)
        if value not in ("", None):
            _set(proto, name, float(value))
    for name in ("commissionAndFees", "minCommissionAndFees", "maxCommissionAndFees", "commissionAndFeesCurrency",
                 "warningText", "completedTime", "completedStatus"):
        _set(proto, name, getattr(state, name, None))


def _contract_order(contract, order) -> tuple[Any, Any]:
    from ibapi.client_utils import createContractProto, createOrderProto

    return createContractProto(contract, order), createOrderProto(order)


def _build(msg_id: int, method: str, args: tuple):
    from ibapi.order import Order
    from ibapi.protobuf import (
        CommissionAndFeesReport_pb2,
        CompletedOrder_pb2,
        CompletedOrdersEnd_pb2,
        ErrorMessage_pb2,
        ExecutionDetails_pb2,
        ExecutionDetailsEnd_pb2,
        OpenOrder_pb2,
        OpenOrdersEnd_pb2,
        OrderStatus_pb2,
    )

    if method == "error":
        req_id, when, code, text, advanced = args
        p = ErrorMessage_pb2.ErrorMessage(id=req_id, errorTime=when, errorCode=code, errorMsg=text)
        _set(p, "advancedOrderRejectJson", advanced)
        return p
    if method == "execDetails":
        req_id, contract, ex = args
        p = ExecutionDetails_pb2.ExecutionDetails(reqId=req_id)
        p.contract.CopyFrom(_contract_order(contract, Order())[0])
        for name in ("orderId", "execId", "time", "acctNumber", "exchange", "side", "shares", "price", "permId",
                     "clientId", "cumQty", "avgPrice", "orderRef", "evRule", "evMultiplier", "modelCode",
                     "lastLiquidity", "submitter"):
            _set(p.execution, name, getattr(ex, name))
        p.execution.isLiquidation = bool(ex.liquidation)
        p.execution.isPriceRevisionPending = bool(ex.pendingPriceRevision)
        return p
    if method == "execDetailsEnd":
        return ExecutionDetailsEnd_pb2.ExecutionDetailsEnd(reqId=args[0])
    if method == "commissionAndFeesReport":
        r = args[0]
        p = CommissionAndFeesReport_pb2.CommissionAndFeesReport(execId=r.execId, commissionAndFees=r.commissionAndFees,
                                                                currency=r.currency)
        _set(p, "realizedPNL", r.realizedPNL)
        return p
    if method == "openOrder":
        order_id, contract, order, state = args
        p = OpenOrder_pb2.OpenOrder(orderId=order_id)
        c, o = _contract_order(contract, order)
        p.contract.CopyFrom(c)
        p.order.CopyFrom(o)
        _order_state(state, p.orderState)
        return p
    if method == "completedOrder":
        contract, order, state = args
        p = CompletedOrder_pb2.CompletedOrder()
        c, o = _contract_order(contract, order)
        p.contract.CopyFrom(c)
        p.order.CopyFrom(o)
        _set(p.order, "filledQuantity", order.filledQuantity)  # a completed order's own field (not in requests)
        _order_state(state, p.orderState)
        return p
    if method == "orderStatus":
        p = OrderStatus_pb2.OrderStatus()
        for name, value in zip(("orderId", "status", "filled", "remaining", "avgFillPrice", "permId", "parentId",
                                "lastFillPrice", "clientId", "whyHeld", "mktCapPrice"), args, strict=True):
            _set(p, name, value)
        return p
    if method == "openOrderEnd":
        return OpenOrdersEnd_pb2.OpenOrdersEnd()
    if method == "completedOrdersEnd":
        return CompletedOrdersEnd_pb2.CompletedOrdersEnd()
    raise ValueError(f"no protobuf builder for reply {msg_id} ({method})")


def encode_reply(fields: list[object]) -> bytes:
    """One protobuf frame (length, id + 200, message) for a reply the session built as text."""
    msg_id = int(fields[0])  # type: ignore[call-overload]
    if msg_id in _POSITIONAL:  # ticks and other flat messages: no decoding round trip (they stream)
        body = _positional(msg_id, for_version(fields, TEXT_LAYOUT)).SerializeToString()
    elif msg_id == 20:  # scannerData: one callback per row, then scannerDataEnd
        body = _scanner_data(int(fields[2]), _decode_text(fields, allow_none=True)).SerializeToString()  # type: ignore[call-overload]
    elif msg_id == 17:  # historicalData: one callback per bar (none for an empty range), one protobuf message
        body = _history(int(fields[1]), _decode_text(fields, allow_none=True)).SerializeToString()  # type: ignore[call-overload]
    else:
        calls = _decode_text(fields)
        method, args = calls[-1]
        body = (_build_more(method, args) or _nested(method, args) or _build(msg_id, method, args)).SerializeToString()
    payload = struct.pack(">I", msg_id + MSG_ID_OFFSET) + body
    return struct.pack(">I", len(payload)) + payload


_CLASSES: dict[str, Any] = {}


def _positional(msg_id: int, values: list[object]):
    import importlib

    name, _since, spec = _POSITIONAL[msg_id]
    cls = _CLASSES.get(name)
    if cls is None:
        cls = _CLASSES[name] = getattr(importlib.import_module(f"ibapi.protobuf.{name}_pb2"), name)
    p = cls()
    fields = p.DESCRIPTOR.fields_by_name
    for field, index in spec:
        value = values[index] if index < len(values) else None
        if value is None or value == "" or value == UNSET_DOUBLE:
            continue
        kind = fields[field].type
        if kind == fields[field].TYPE_STRING:
            setattr(p, field, fmt(value))
        elif kind == fields[field].TYPE_DOUBLE:
            setattr(p, field, float(value))  # type: ignore[arg-type]
        elif kind == fields[field].TYPE_BOOL:
            setattr(p, field, bool(value))
        else:
            setattr(p, field, int(value))  # type: ignore[call-overload]
    return p


def _scanner_data(req_id: int, calls: list[tuple[str, tuple]]):
    from ibapi.order import Order
    from ibapi.protobuf.ScannerData_pb2 import ScannerData

    p = ScannerData(reqId=req_id)
    for method, args in calls:
        if method == "scannerData":
            _req, rank, details, distance, benchmark, projection, legs = args
            row = p.scannerDataElement.add(rank=rank)
            row.contract.CopyFrom(_contract_order(details.contract, Order())[0])
            for name, value in (("marketName", details.marketName), ("distance", distance),
                                ("benchmark", benchmark), ("projection", projection), ("comboKey", legs)):
                _set(row, name, value)
    return p


def _nested(method: str, args: tuple):
    """Builders of the nested 206-213 replies; None for the others."""
    from ibapi.order import Order
    from ibapi.protobuf import (
        MarketDepth_pb2,
        MarketDepthExchanges_pb2,
        MarketDepthL2_pb2,
        MarketRule_pb2,
        NewsProviders_pb2,
        ScannerParameters_pb2,
        SecDefOptParameter_pb2,
        SecDefOptParameterEnd_pb2,
        SymbolSamples_pb2,
        TickByTickData_pb2,
        UserInfo_pb2,
    )

    if method in ("updateMktDepth", "updateMktDepthL2"):
        if method == "updateMktDepth":
            req_id, position, operation, side, price, size = args
            p, maker, smart = MarketDepth_pb2.MarketDepth(reqId=req_id), "", False
        else:
            req_id, position, maker, operation, side, price, size, smart = args
            p = MarketDepthL2_pb2.MarketDepthL2(reqId=req_id)
        d = p.marketDepthData
        d.position, d.operation, d.side, d.price, d.isSmartDepth = position, operation, side, price, smart
        _set(d, "size", size)
        _set(d, "marketMaker", maker)
        return p
    if method == "tickByTickBidAsk":
        req_id, when, bid, ask, bid_size, ask_size, attrib = args
        p = TickByTickData_pb2.TickByTickData(reqId=req_id, tickType=3)
        t = p.historicalTickBidAsk
        t.time, t.priceBid, t.priceAsk = when, bid, ask
        _set(t, "sizeBid", bid_size)
        _set(t, "sizeAsk", ask_size)
        t.tickAttribBidAsk.bidPastLow, t.tickAttribBidAsk.askPastHigh = attrib.bidPastLow, attrib.askPastHigh
        return p
    if method == "tickByTickAllLast":
        req_id, tick_type, when, price, size, attrib, exchange, special = args
        p = TickByTickData_pb2.TickByTickData(reqId=req_id, tickType=tick_type)
        t = p.historicalTickLast
        t.time, t.price = when, price
        _set(t, "size", size)
        _set(t, "exchange", exchange)
        _set(t, "specialConditions", special)
        t.tickAttribLast.pastLimit, t.tickAttribLast.unreported = attrib.pastLimit, attrib.unreported
        return p
    if method == "tickByTickMidPoint":
        req_id, when, mid = args
        p = TickByTickData_pb2.TickByTickData(reqId=req_id, tickType=4)
        p.historicalTickMidPoint.time, p.historicalTickMidPoint.price = when, mid
        return p
    if method == "newsProviders":
        p = NewsProviders_pb2.NewsProviders()
        for np_ in args[0]:
            p.newsProviders.add(providerCode=np_.code, providerName=np_.name)
        return p
    if method == "scannerParameters":
        return ScannerParameters_pb2.ScannerParameters(xml=args[0])
    if method == "securityDefinitionOptionParameter":
        req_id, exchange, und, trading_class, multiplier, expirations, strikes = args
        p = SecDefOptParameter_pb2.SecDefOptParameter(reqId=req_id, exchange=exchange, underlyingConId=und,
                                                      tradingClass=trading_class, multiplier=multiplier)
        p.expirations.extend(sorted(expirations))
        p.strikes.extend(sorted(strikes))
        return p
    if method == "securityDefinitionOptionParameterEnd":
        return SecDefOptParameterEnd_pb2.SecDefOptParameterEnd(reqId=args[0])
    if method == "symbolSamples":
        req_id, descriptions = args
        p = SymbolSamples_pb2.SymbolSamples(reqId=req_id)
        for cd in descriptions:
            row = p.contractDescriptions.add()
            row.contract.CopyFrom(_contract_order(cd.contract, Order())[0])
            row.derivativeSecTypes.extend(cd.derivativeSecTypes)
        return p
    if method == "marketRule":
        rule_id, increments = args
        p = MarketRule_pb2.MarketRule(marketRuleId=rule_id)
        for inc in increments:
            p.priceIncrements.add(lowEdge=inc.lowEdge, increment=inc.increment)
        return p
    if method == "mktDepthExchanges":
        p = MarketDepthExchanges_pb2.MarketDepthExchanges()
        for d in args[0]:
            row = p.depthMarketDataDescriptions.add(exchange=d.exchange, secType=d.secType,
                                                    listingExch=d.listingExch, serviceDataType=d.serviceDataType)
            _set(row, "aggGroup", d.aggGroup)
        return p
    if method == "userInfo":
        return UserInfo_pb2.UserInfo(reqId=args[0], whiteBrandingId=args[1])
    return None


def _bar(bar, proto) -> None:
    for name, attr in (("date", "date"), ("open", "open"), ("high", "high"), ("low", "low"), ("close", "close"),
                       ("volume", "volume"), ("WAP", "wap"), ("barCount", "barCount")):
        _set(proto, name, getattr(bar, attr))


def _history(req_id: int, calls: list[tuple[str, tuple]]):
    from ibapi.protobuf.HistoricalData_pb2 import HistoricalData

    p = HistoricalData(reqId=req_id)
    for method, (_req, bar) in calls:
        if method == "historicalData":
            _bar(bar, p.historicalDataBars.add())
    return p


_SIMPLE = {  # callback -> (protobuf message, its fields in the callback's argument order)
    "contractDetailsEnd": ("ContractDataEnd", ("reqId",)),
    "updateAccountValue": ("AccountValue", ("key", "value", "currency", "accountName")),
    "updateAccountTime": ("AccountUpdateTime", ("timeStamp",)),
    "accountDownloadEnd": ("AccountDataEnd", ("accountName",)),
    "positionEnd": ("PositionEnd", ()),
    "accountSummary": ("AccountSummary", ("reqId", "account", "tag", "value", "currency")),
    "accountSummaryEnd": ("AccountSummaryEnd", ("reqId",)),
    "managedAccounts": ("ManagedAccounts", ("accountsList",)),
    "historicalDataEnd": ("HistoricalDataEnd", ("reqId", "startDateStr", "endDateStr")),
}


def _build_more(method: str, args: tuple):
    """Builders of the 205+ replies (contract data, accounts and positions, history); None for the others."""
    import importlib

    from ibapi.order import Order

    if method in _SIMPLE:
        name, names = _SIMPLE[method]
        p = getattr(importlib.import_module(f"ibapi.protobuf.{name}_pb2"), name)()
        for field, value in zip(names, args, strict=True):
            _set(p, field, value)
        return p
    if method == "contractDetails":
        from ibapi.protobuf.ContractData_pb2 import ContractData

        req_id, cd = args
        p = ContractData(reqId=req_id)
        p.contract.CopyFrom(_contract_order(cd.contract, Order())[0])
        d = p.contractDetails
        for field in d.DESCRIPTOR.fields:  # the proto's names are ContractDetails' attribute names
            value = getattr(cd, field.name, None)
            if field.name == "secIdList":
                for tv in cd.secIdList or []:
                    d.secIdList[tv.tag] = tv.value
            elif field.name.startswith("fund") or isinstance(value, bool) and field.type != field.TYPE_BOOL:
                continue  # fund data is for secType FUND only
            elif field.type == field.TYPE_STRING and isinstance(value, str | Decimal):
                _set(d, field.name, value)  # Decimal: unset stays unset, else its shortest text
            elif field.type == field.TYPE_STRING and isinstance(value, int | float):
                _set(d, field.name, fmt(float(value)))
            elif field.type != field.TYPE_STRING and isinstance(value, int | float) and \
                    field.type != field.TYPE_MESSAGE:
                _set(d, field.name, value)
        return p
    if method == "position":
        from ibapi.protobuf.Position_pb2 import Position

        account, contract, pos, avg_cost = args
        p = Position(account=account, avgCost=avg_cost)
        p.contract.CopyFrom(_contract_order(contract, Order())[0])
        _set(p, "position", pos)
        return p
    if method == "updatePortfolio":
        from ibapi.protobuf.PortfolioValue_pb2 import PortfolioValue

        contract, pos, price, value, cost, unrealized, realized, account = args
        p = PortfolioValue(marketPrice=price, marketValue=value, averageCost=cost, unrealizedPNL=unrealized,
                           realizedPNL=realized, accountName=account)
        p.contract.CopyFrom(_contract_order(contract, Order())[0])
        _set(p, "position", pos)
        return p
    if method == "historicalDataUpdate":
        from ibapi.protobuf.HistoricalDataUpdate_pb2 import HistoricalDataUpdate

        p = HistoricalDataUpdate(reqId=args[0])
        _bar(args[1], p.historicalDataBar)
        return p
    return None
