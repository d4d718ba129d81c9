"""The TWS API socket protocol, server side: framing, field codec, request parsers, reply builders.

Wire format (both directions after the handshake): a 4-byte big-endian length, then NUL-terminated text
fields. The client opens with ``b"API\\0"`` + a length-prefixed ``"v157..178"`` version range; the server
answers with two fields, the chosen server version and the connection time.

We announce ``SERVER_VERSION = 178``, the top of ib_async 2.1.0's range: it is what ib_async negotiates with a
current IB Gateway, so the bytes our clients parse are exactly the production layouts (contractDetails
without the old version/mdSizeMultiplier fields, errors with advancedOrderRejectJson, openOrder without
faProfile, execDetails with pendingPriceRevision). Every layout below mirrors ib_async's ``decoder.py`` /
``client.py`` at that version, field by field.

The file is long on purpose: it is the one catalogue of TWS layouts (one parser or builder per message), so
a layout question is answered by reading one place next to ib_async's decoder.

Reply builders return field lists (``list[object]``); ``encode_msg`` turns one into a frame. Values are
formatted as IB does: None → "", bool → "1"/"0", floats shortest round-trip.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trader.errors import DecodeError, MessageTooLarge

SERVER_VERSION = 178
MIN_CLIENT_VERSION = 157
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a sane cap: IB's largest replies (option chains) are far smaller
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1
HANDSHAKE_PREFIX = b"API\0"


class In:
    """Incoming (client → server) message ids."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DETAILS = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_REAL_TIME_BARS = 50
    CANCEL_REAL_TIME_BARS = 51
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_SEC_DEF_OPT_PARAMS = 78
    REQ_MATCHING_SYMBOLS = 81
    REQ_MKT_DEPTH_EXCHANGES = 82
    REQ_NEWS_PROVIDERS = 85
    REQ_HEAD_TIMESTAMP = 87
    CANCEL_HEAD_TIMESTAMP = 90
    REQ_MARKET_RULE = 91
    REQ_PNL = 92
    CANCEL_PNL = 93
    REQ_PNL_SINGLE = 94
    CANCEL_PNL_SINGLE = 95
    REQ_TICK_BY_TICK = 97
    CANCEL_TICK_BY_TICK = 98
    REQ_COMPLETED_ORDERS = 99
    REQ_USER_INFO = 104


class Out:
    """Outgoing (server → client) message ids."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MARKET_DEPTH = 12
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    TICK_STRING = 46
    CURRENT_TIME = 49
    REAL_TIME_BARS = 50
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    SECURITY_DEFINITION_OPTION_PARAMETER = 75
    SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
    SYMBOL_SAMPLES = 79
    MKT_DEPTH_EXCHANGES = 80
    TICK_REQ_PARAMS = 81
    NEWS_PROVIDERS = 85
    HEAD_TIMESTAMP = 88
    HISTORICAL_DATA_UPDATE = 90
    MARKET_RULE = 93
    PNL = 94
    PNL_SINGLE = 95
    TICK_BY_TICK = 99
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102
    USER_INFO = 107


class TickType:
    """IB tick type ids used by the simulator."""

    BID_SIZE = 0
    BID = 1
    ASK = 2
    ASK_SIZE = 3
    LAST = 4
    LAST_SIZE = 5
    HIGH = 6
    LOW = 7
    VOLUME = 8
    CLOSE = 9
    OPEN = 14
    LAST_TIMESTAMP = 45


# --------------------------------------------------------------------------- framing


def fmt(value: object) -> str:
    """One field as IB writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinite"
        if value == UNSET_DOUBLE or math.isnan(value):
            return ""
        return repr(value)
    return str(value)


def encode_fields(fields: Sequence[object]) -> bytes:
    """Payload bytes (no length prefix): every field NUL-terminated."""
    return "".join(fmt(f) + "\0" for f in fields).encode()


def frame(payload: bytes) -> bytes:
    """Prefix a payload with its 4-byte big-endian length."""
    return struct.pack(">I", len(payload)) + payload


def encode_msg(fields: Sequence[object]) -> bytes:
    """One complete frame for a field list."""
    return frame(encode_fields(fields))


def decode_payload(payload: bytes) -> list[str]:
    """Split a payload into its fields (the trailing NUL ends the last one)."""
    text = payload.decode(errors="backslashreplace")
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def parse_length(prefix: bytes) -> int:
    """The length announced by a 4-byte prefix, checked against the cap."""
    (n,) = struct.unpack(">I", prefix)
    if n > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"TWS frame of {n} bytes exceeds {MAX_MESSAGE_BYTES}")
    return n


def parse_version_range(text: str) -> tuple[int, int, str]:
    """``"v157..178 +OPT"`` → (157, 178, "+OPT"); a bare ``"v176"`` means min = max."""
    head, _, options = text.strip().partition(" ")
    if not head.startswith("v"):
        raise DecodeError(f"bad TWS handshake version string {text!r}")
    lo, sep, hi = head[1:].partition("..")
    try:
        low = int(lo)
        high = int(hi) if sep else low
    except ValueError as exc:
        raise DecodeError(f"bad TWS handshake version string {text!r}") from exc
    return low, high, options


def handshake_reply(server_version: int, now: datetime) -> bytes:
    """The server's answer to the handshake: version and connection time."""
    return encode_msg([server_version, ib_time(now)])


class FrameBuffer:
    """Incremental frame splitter for a byte stream (used by tests and any non-asyncio reader)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[list[str]]:
        """Add bytes; return every complete message's fields."""
        self._buf += data
        out: list[list[str]] = []
        while len(self._buf) >= 4:
            n = parse_length(self._buf[:4])
            if len(self._buf) < 4 + n:
                break
            out.append(decode_payload(self._buf[4 : 4 + n]))
            self._buf = self._buf[4 + n :]
        return out


# --------------------------------------------------------------------------- time formats


def ib_time(t: datetime) -> str:
    """``YYYYMMDD HH:MM:SS UTC`` — a format ib_async parses with its zone (parseIBDatetime)."""
    return t.astimezone(UTC).strftime("%Y%m%d %H:%M:%S UTC")


def parse_ib_time(text: str, default: datetime) -> datetime:
    """Parse an endDateTime as clients send it ("" = `default`; no zone = UTC)."""
    from zoneinfo import ZoneInfo

    s = text.strip()
    if not s:
        return default
    if s.isdigit() and len(s) > 8:
        return datetime.fromtimestamp(int(s), UTC)
    if len(s) == 8 and s.isdigit():
        return datetime.strptime(s, "%Y%m%d").replace(hour=23, minute=59, second=59, tzinfo=UTC)
    tz = UTC
    parts = s.replace("-", " ", 1).split()
    if len(parts) >= 3:
        tz = UTC if parts[2].upper() in ("UTC", "GMT") else ZoneInfo(parts[2])
    try:
        naive = datetime.strptime(parts[0] + " " + parts[1], "%Y%m%d %H:%M:%S")
    except (ValueError, IndexError) as exc:
        raise DecodeError(f"bad IB date/time {text!r}") from exc
    return naive.replace(tzinfo=tz).astimezone(UTC)


# --------------------------------------------------------------------------- request parsing


class FieldReader:
    """A cursor over one message's fields with IB's conventions (empty = unset)."""

    __slots__ = ("fields", "pos")

    def __init__(self, fields: Sequence[str], pos: int = 0) -> None:
        self.fields = fields
        self.pos = pos

    def str(self) -> str:
        """Next field as text ("" when the message is short)."""
        if self.pos >= len(self.fields):
            self.pos += 1
            return ""
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def int(self, default: int = 0) -> int:
        """Next field as an int (empty → `default`)."""
        s = self.str()
        if not s:
            return default
        try:
            return int(float(s)) if "." in s or "e" in s.lower() else int(s)
        except ValueError as exc:
            raise DecodeError(f"field {self.pos - 1}: {s!r} is not an integer") from exc

    def float(self) -> float | None:
        """Next field as a float; empty or IB's UNSET_DOUBLE → None."""
        s = self.str()
        if not s:
            return None
        if s == "Infinite":
            return math.inf
        try:
            v = float(s)
        except ValueError as exc:
            raise DecodeError(f"field {self.pos - 1}: {s!r} is not a number") from exc
        return None if v >= UNSET_DOUBLE else v

    def bool(self) -> bool:
        """Next field as a bool ("1"/"0"/"")."""
        s = self.str()
        return bool(s) and s not in ("0", "false", "False")

    def skip(self, n: int = 1) -> None:
        """Skip fields we do not use."""
        self.pos += n

    def contract(self) -> ContractSpec:
        """The 12-field contract block ib_async writes (conId … tradingClass)."""
        return ContractSpec(
            con_id=self.int(),
            symbol=self.str(),
            sec_type=self.str(),
            last_trade_date=self.str(),
            strike=self.float() or 0.0,
            right=self.str(),
            multiplier=self.str(),
            exchange=self.str(),
            primary_exchange=self.str(),
            currency=self.str(),
            local_symbol=self.str(),
            trading_class=self.str(),
        )


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """A contract as a client describes it (possibly partial: empty = wildcard)."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """The parts of a placeOrder message the simulator acts on (the rest is parsed and dropped)."""

    order_id: int
    contract: ContractSpec
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    oca_type: int
    trail_stop_price: float | None
    trailing_percent: float | None
    what_if: bool
    lmt_price_offset: float | None
    unsupported: str = ""  # non-empty: why the simulator must reject this order (conditions, combos …)
    extra: dict = field(default_factory=dict)


def parse_place_order(fields: Sequence[str], server_version: int = SERVER_VERSION) -> OrderSpec:
    """Parse a placeOrder (id 3) message laid out as ib_async's ``Client.placeOrder`` writes it."""
    r = FieldReader(fields, 1)
    order_id = r.int()
    contract = r.contract()
    r.skip(2)  # secIdType, secId
    action, qty, order_type = r.str(), r.float() or 0.0, r.str()
    lmt, aux, tif, oca_group, account = r.float(), r.float(), r.str(), r.str(), r.str()
    r.skip(2)  # openClose, origin
    order_ref, transmit, parent_id = r.str(), r.bool(), r.int()
    r.skip(3)  # blockOrder, sweepToFill, displaySize
    r.skip(1)  # triggerMethod
    outside_rth = r.bool()
    r.skip(1)  # hidden
    unsupported = ""
    if contract.sec_type == "BAG":
        unsupported = "combo (BAG) orders are not supported in the simulator"
        n = r.int()
        r.skip(8 * n)
        r.skip(r.int())
        r.skip(2 * r.int())
    r.skip(1)  # deprecated sharesAllocation
    r.skip(6)  # discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod, faPercentage
    if server_version < 177:
        r.skip(1)  # faProfile
    r.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
    oca_type = r.int()
    r.skip(15)  # rule80A … overridePercentageConstraints (see client.py)
    r.skip(2)  # volatility, volatilityType
    dn_order_type = r.str()
    r.skip(1)  # deltaNeutralAuxPrice
    if dn_order_type:
        r.skip(8)
    r.skip(2)  # continuousUpdate, referencePriceType
    trail_stop_price, trailing_percent = r.float(), r.float()
    r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    scale_inc = r.float()
    if scale_inc is not None and 0 < scale_inc < UNSET_DOUBLE:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.str():  # hedgeType
        r.skip(1)
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.bool():  # delta-neutral contract
        r.skip(3)
    algo = r.str()
    if algo:
        r.skip(2 * r.int())
    r.skip(1)  # algoId
    what_if = r.bool()
    r.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type in ("PEG BENCH", "PEGBENCH"):
        r.skip(5)
    n_conditions = r.int()
    lmt_price_offset = None
    if n_conditions:
        # condition layouts vary per type; we reject rather than guess, so stop parsing here
        unsupported = unsupported or "order conditions are not supported in the simulator"
    else:
        r.skip(2)  # adjustedOrderType, triggerPrice
        lmt_price_offset = r.float()
    return OrderSpec(
        order_id=order_id,
        contract=contract,
        action=action.upper(),
        total_quantity=qty,
        order_type=order_type.upper(),
        lmt_price=lmt,
        aux_price=aux,
        tif=tif or "DAY",
        oca_group=oca_group,
        account=account,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        oca_type=oca_type,
        trail_stop_price=trail_stop_price,
        trailing_percent=trailing_percent,
        what_if=what_if,
        lmt_price_offset=lmt_price_offset,
        unsupported=unsupported,
        extra={"algo": algo} if algo else {},
    )


# --------------------------------------------------------------------------- reply builders


@dataclass(frozen=True, slots=True)
class WireContract:
    """The contract fields the replies carry (built by the gateway from a SimContract)."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = "USD"
    local_symbol: str = ""
    trading_class: str = ""


def _strike(c: WireContract) -> object:
    return c.strike if c.strike else 0


def error_msg(req_id: int, code: int, message: str) -> list[object]:
    """errorMsg (4): version 2, with an empty advancedOrderRejectJson (server ≥ 166)."""
    return [Out.ERR_MSG, 2, req_id, code, message, ""]


def next_valid_id(order_id: int) -> list[object]:
    """nextValidId (9)."""
    return [Out.NEXT_VALID_ID, 1, order_id]


def managed_accounts(accounts: Sequence[str]) -> list[object]:
    """managedAccounts (15): comma-separated list."""
    return [Out.MANAGED_ACCTS, 1, ",".join(accounts)]


def current_time(epoch: int) -> list[object]:
    """currentTime (49)."""
    return [Out.CURRENT_TIME, 1, epoch]


def tick_price(req_id: int, tick_type: int, price: float, size: float | None = None) -> list[object]:
    """tickPrice (1): price and (for bid/ask/last) its size in one message; attribute mask 0."""
    return [Out.TICK_PRICE, 6, req_id, tick_type, price, "" if size is None else size, 0]


def tick_size(req_id: int, tick_type: int, size: float) -> list[object]:
    """tickSize (2)."""
    return [Out.TICK_SIZE, 6, req_id, tick_type, size]


def tick_string(req_id: int, tick_type: int, value: str) -> list[object]:
    """tickString (46)."""
    return [Out.TICK_STRING, 6, req_id, tick_type, value]


def tick_snapshot_end(req_id: int) -> list[object]:
    """tickSnapshotEnd (57)."""
    return [Out.TICK_SNAPSHOT_END, 1, req_id]


def market_data_type(req_id: int, data_type: int) -> list[object]:
    """marketDataType (58)."""
    return [Out.MARKET_DATA_TYPE, 1, req_id, data_type]


def tick_req_params(req_id: int, min_tick: float, bbo_exchange: str = "", permissions: int = 3) -> list[object]:
    """tickReqParams (81)."""
    return [Out.TICK_REQ_PARAMS, req_id, min_tick, bbo_exchange, permissions]


def tick_by_tick_bid_ask(req_id: int, epoch: int, bid: float, ask: float, bid_size: float,
                         ask_size: float) -> list[object]:
    """tickByTick (99), type 3 BidAsk."""
    return [Out.TICK_BY_TICK, req_id, 3, epoch, bid, ask, bid_size, ask_size, 0]


def tick_by_tick_last(req_id: int, tick_type: int, epoch: int, price: float, size: float,
                      exchange: str = "") -> list[object]:
    """tickByTick (99), type 1 Last / 2 AllLast."""
    return [Out.TICK_BY_TICK, req_id, tick_type, epoch, price, size, 0, exchange, ""]


def tick_by_tick_mid(req_id: int, epoch: int, mid: float) -> list[object]:
    """tickByTick (99), type 4 MidPoint."""
    return [Out.TICK_BY_TICK, req_id, 4, epoch, mid]


def market_depth(req_id: int, position: int, operation: int, side: int, price: float,
                 size: float) -> list[object]:
    """updateMktDepth (12): operation 0 insert / 1 update / 2 delete; side 0 ask / 1 bid."""
    return [Out.MARKET_DEPTH, 1, req_id, position, operation, side, price, size]


def real_time_bar(req_id: int, epoch: int, o: float, h: float, low: float, c: float, volume: float,
                  wap: float, count: int) -> list[object]:
    """realtimeBar (50)."""
    return [Out.REAL_TIME_BARS, 3, req_id, epoch, o, h, low, c, volume, wap, count]


def historical_data(req_id: int, start: str, end: str, bars: Sequence[tuple]) -> list[object]:
    """historicalData (17): bars are (date, open, high, low, close, volume, wap, count)."""
    out: list[object] = [Out.HISTORICAL_DATA, req_id, start, end, len(bars)]
    for bar in bars:
        out.extend(bar)
    return out


def historical_data_update(req_id: int, bar: tuple) -> list[object]:
    """historicalDataUpdate (90) for keepUpToDate: bar is (date, open, high, low, close, volume, wap, count),
    sent in the message's own order (barCount, date, open, close, high, low, average, volume)."""
    date, o, h, low, c, volume, wap, count = bar
    return [Out.HISTORICAL_DATA_UPDATE, req_id, count, date, o, c, h, low, wap, volume]


def head_timestamp(req_id: int, stamp: str) -> list[object]:
    """headTimestamp (88)."""
    return [Out.HEAD_TIMESTAMP, req_id, stamp]


def contract_details(req_id: int, c: WireContract, *, market_name: str, min_tick: float, order_types: str,
                     valid_exchanges: str, price_magnifier: int, under_con_id: int, long_name: str,
                     contract_month: str, industry: str, category: str, subcategory: str, time_zone: str,
                     trading_hours: str, liquid_hours: str, under_symbol: str, under_sec_type: str,
                     stock_type: str) -> list[object]:
    """contractData (10) at server ≥ 164 (no version, no mdSizeMultiplier)."""
    return [
        Out.CONTRACT_DATA, req_id, c.symbol, c.sec_type, c.last_trade_date, _strike(c), c.right,
        c.exchange, c.currency, c.local_symbol, market_name, c.trading_class, c.con_id, min_tick,
        c.multiplier, order_types, valid_exchanges, price_magnifier, under_con_id,
        long_name.encode("unicode-escape").decode(),  # ib_async unicode-unescapes longName
        c.primary_exchange, contract_month, industry, category, subcategory, time_zone, trading_hours,
        liquid_hours, "", "", 0,  # evRule, evMultiplier, no secIds
        "", under_symbol, under_sec_type, "", c.last_trade_date, stock_type,  # aggGroup … stockType
        "1", "1", "1",  # minSize, sizeIncrement, suggestedSizeIncrement
    ]


def contract_details_end(req_id: int) -> list[object]:
    """contractDataEnd (52)."""
    return [Out.CONTRACT_DATA_END, 1, req_id]


def symbol_samples(req_id: int, rows: Sequence[tuple[WireContract, Sequence[str], str]]) -> list[object]:
    """symbolSamples (79): rows are (contract, derivative sec types, description)."""
    out: list[object] = [Out.SYMBOL_SAMPLES, req_id, len(rows)]
    for c, derivs, description in rows:
        out += [c.con_id, c.symbol, c.sec_type, c.primary_exchange, c.currency, len(derivs), *derivs]
        out += [description, ""]  # description, issuerId (server ≥ 176)
    return out


def sec_def_opt_params(req_id: int, exchange: str, under_con_id: int, trading_class: str, multiplier: str,
                       expirations: Sequence[str], strikes: Sequence[float]) -> list[object]:
    """securityDefinitionOptionParameter (75)."""
    return [Out.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, exchange, under_con_id, trading_class,
            multiplier, len(expirations), *expirations, len(strikes), *strikes]


def sec_def_opt_params_end(req_id: int) -> list[object]:
    """securityDefinitionOptionParameterEnd (76)."""
    return [Out.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id]


def _contract_fields(c: WireContract, exchange: str | None = None) -> list[object]:
    """conId … tradingClass (11 fields, no primaryExchange) as openOrder/execDetails/position carry it."""
    return [c.con_id, c.symbol, c.sec_type, c.last_trade_date, _strike(c), c.right, c.multiplier,
            c.exchange if exchange is None else exchange, c.currency, c.local_symbol, c.trading_class]


@dataclass(frozen=True, slots=True)
class WireOrder:
    """What openOrder/completedOrder echo back about an order."""

    order_id: int
    client_id: int
    perm_id: int
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    outside_rth: bool
    parent_id: int
    oca_type: int
    trail_stop_price: float | None
    trailing_percent: float | None
    lmt_price_offset: float | None
    status: str
    filled: float = 0.0
    commission: float | None = None
    commission_currency: str = ""
    completed_time: str = ""
    completed_status: str = ""
    what_if: bool = False
    margin: tuple[str, ...] = ()  # whatIf: 9 orderState margin strings (before, change, after)
    warning_text: str = ""


def open_order(c: WireContract, o: WireOrder) -> list[object]:
    """openOrder (5) at server 178 (no faProfile; duration/postToAts/autoCancelParent; 170+ peg fields)."""
    margin = list(o.margin) if o.margin else [""] * 9
    return [
        Out.OPEN_ORDER, o.order_id, *_contract_fields(c),
        o.action, o.total_quantity, o.order_type, o.lmt_price, o.aux_price, o.tif, o.oca_group, o.account,
        "", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth,  # openClose, origin … outsideRth
        False, 0.0, "", "",  # hidden, discretionaryAmt, goodAfterTime, deprecated sharesAllocation
        "", "", "",  # faGroup, faMethod, faPercentage
        "", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm
        0, "", "",  # shortSaleSlot, designatedLocation, exemptCode
        0, "", "", "", "", "",  # auctionStrategy, startingPrice, stockRefPrice, delta, stockRangeLower/Upper
        "", False, False, False, "",  # displaySize, blockOrder, sweepToFill, allOrNone, minQty
        o.oca_type, False, False, "",  # ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        o.parent_id, 0, "", "", "", "",  # parentId, triggerMethod, volatility, volatilityType, dnType, dnAux
        False, "", o.trail_stop_price, o.trailing_percent,  # continuousUpdate … trailingPercent
        "", "", "",  # basisPoints, basisPointsType, comboLegsDescrip
        0, 0, 0,  # comboLegs, orderComboLegs, smartComboRoutingParams
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        False, "", "", False, False,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc
        "",  # algoStrategy
        False, o.what_if, o.status, *margin,  # solicited, whatIf, orderState status + 9 margin fields
        o.commission, "", "", o.commission_currency, o.warning_text,  # commission … warningText
        False, False,  # randomizeSize, randomizePrice
        0,  # conditions
        "", "", o.trail_stop_price, o.lmt_price_offset,  # adjustedOrderType, triggerPrice, trailStop, offset
        "", "", "", 0,  # adjustedStopPrice, adjustedStopLimitPrice, adjustedTrailingAmount, adjustableUnit
        "", "", "",  # softDollarTier name, val, displayName
        "", False, False, "", False,  # cashQty … usePriceMgmtAlgo
        "", False, False,  # duration, postToAts, autoCancelParent
        "", "", "", "", "",  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsetAt*
    ]


def open_order_end() -> list[object]:
    """openOrderEnd (53)."""
    return [Out.OPEN_ORDER_END, 1]


def completed_order(c: WireContract, o: WireOrder) -> list[object]:
    """completedOrder (101) at server 178."""
    return [
        Out.COMPLETED_ORDER, *_contract_fields(c),
        o.action, o.total_quantity, o.order_type, o.lmt_price, o.aux_price, o.tif, o.oca_group, o.account,
        "", 0, o.order_ref, o.perm_id, o.outside_rth,  # openClose, origin, orderRef, permId, outsideRth
        False, 0.0, "",  # hidden, discretionaryAmt, goodAfterTime
        "", "", "",  # faGroup, faMethod, faPercentage
        "", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm
        0, "", "",  # shortSaleSlot, designatedLocation, exemptCode
        "", "", "", "", "",  # startingPrice, stockRefPrice, delta, stockRangeLower, stockRangeUpper
        "", False, False, "", o.oca_type,  # displaySize, sweepToFill, allOrNone, minQty, ocaType
        0, "", "", "", "",  # triggerMethod, volatility, volatilityType, dnOrderType, dnAuxPrice
        False, "", o.trail_stop_price, o.trailing_percent, "",  # continuousUpdate … comboLegsDescrip
        0, 0, 0,  # comboLegs, orderComboLegs, smartComboRoutingParams
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        "", "", False, False,  # clearingAccount, clearingIntent, notHeld, dnc
        "",  # algoStrategy
        False, o.status, False, False,  # solicited, status, randomizeSize, randomizePrice
        0,  # conditions
        o.trail_stop_price, o.lmt_price_offset, "", False, False,  # … cashQty, dontUseAuto…, isOmsContainer
        "", o.filled, 0, False, "", False, False,  # autoCancelDate … routeMarketableToBbo
        0, o.completed_time, o.completed_status,  # parentPermId, completedTime, completedStatus
        "", "", "", "", "",  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsetAt*
    ]


def completed_orders_end() -> list[object]:
    """completedOrdersEnd (102)."""
    return [Out.COMPLETED_ORDERS_END]


def order_status(order_id: int, status: str, filled: float, remaining: float, avg_fill_price: float,
                 perm_id: int, parent_id: int, last_fill_price: float, client_id: int,
                 why_held: str = "") -> list[object]:
    """orderStatus (3) at server ≥ MARKET_CAP_PRICE (no version field)."""
    return [Out.ORDER_STATUS, order_id, status, filled, remaining, avg_fill_price, perm_id, parent_id,
            last_fill_price, client_id, why_held, 0.0]


def exec_details(req_id: int, order_id: int, c: WireContract, *, exec_id: str, time: str, account: str,
                 exchange: str, side: str, shares: float, price: float, perm_id: int, client_id: int,
                 cum_qty: float, avg_price: float, order_ref: str) -> list[object]:
    """execDetails (11) at server 178 (with pendingPriceRevision)."""
    return [Out.EXECUTION_DATA, req_id, order_id, *_contract_fields(c, exchange), exec_id, time, account,
            exchange, side, shares, price, perm_id, client_id, 0, cum_qty, avg_price, order_ref, "", "", "",
            1, False]  # evRule, evMultiplier, modelCode, lastLiquidity=1 (added), pendingPriceRevision


def exec_details_end(req_id: int) -> list[object]:
    """execDetailsEnd (55)."""
    return [Out.EXECUTION_DATA_END, 1, req_id]


def commission_report(exec_id: str, commission: float, currency: str, realized_pnl: float | None) -> list[object]:
    """commissionReport (59): realized P&L unset (UNSET_DOUBLE) on opening fills, as IB does."""
    return [Out.COMMISSION_REPORT, 1, exec_id, commission, currency,
            "1.7976931348623157E308" if realized_pnl is None else realized_pnl,
            "1.7976931348623157E308", ""]


def position(account: str, c: WireContract, pos: float, avg_cost: float) -> list[object]:
    """position (61), version 3."""
    return [Out.POSITION_DATA, 3, account, *_contract_fields(c), pos, avg_cost]


def position_end() -> list[object]:
    """positionEnd (62)."""
    return [Out.POSITION_END, 1]


def portfolio_value(c: WireContract, pos: float, market_price: float, market_value: float, avg_cost: float,
                    unrealized: float, realized: float, account: str) -> list[object]:
    """updatePortfolio (7), version 8: the contract carries primaryExchange instead of exchange."""
    return [Out.PORTFOLIO_VALUE, 8, c.con_id, c.symbol, c.sec_type, c.last_trade_date, _strike(c), c.right,
            c.multiplier, c.primary_exchange, c.currency, c.local_symbol, c.trading_class, pos, market_price,
            market_value, avg_cost, unrealized, realized, account]


def account_value(key: str, value: str, currency: str, account: str) -> list[object]:
    """updateAccountValue (6)."""
    return [Out.ACCT_VALUE, 2, key, value, currency, account]


def account_update_time(hhmm: str) -> list[object]:
    """updateAccountTime (8)."""
    return [Out.ACCT_UPDATE_TIME, 1, hhmm]


def account_download_end(account: str) -> list[object]:
    """accountDownloadEnd (54)."""
    return [Out.ACCT_DOWNLOAD_END, 1, account]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[object]:
    """accountSummary (63)."""
    return [Out.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> list[object]:
    """accountSummaryEnd (64)."""
    return [Out.ACCOUNT_SUMMARY_END, 1, req_id]


def account_update_multi(req_id: int, account: str, model_code: str, key: str, value: str,
                         currency: str) -> list[object]:
    """accountUpdateMulti (73)."""
    return [Out.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model_code, key, value, currency]


def account_update_multi_end(req_id: int) -> list[object]:
    """accountUpdateMultiEnd (74)."""
    return [Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id]


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> list[object]:
    """pnl (94)."""
    return [Out.PNL, req_id, daily, unrealized, realized]


def pnl_single(req_id: int, pos: float, daily: float, unrealized: float, realized: float,
               value: float) -> list[object]:
    """pnlSingle (95)."""
    return [Out.PNL_SINGLE, req_id, pos, daily, unrealized, realized, value]


def market_rule(rule_id: int, increments: Sequence[tuple[float, float]]) -> list[object]:
    """marketRule (93): (lowEdge, increment) pairs."""
    out: list[object] = [Out.MARKET_RULE, rule_id, len(increments)]
    for low, inc in increments:
        out += [low, inc]
    return out


def mkt_depth_exchanges(rows: Sequence[tuple[str, str, str, str, int]]) -> list[object]:
    """mktDepthExchanges (80): (exchange, secType, listingExch, serviceDataType, aggGroup)."""
    out: list[object] = [Out.MKT_DEPTH_EXCHANGES, len(rows)]
    for row in rows:
        out.extend(row)
    return out


def news_providers() -> list[object]:
    """newsProviders (85): the simulator has none."""
    return [Out.NEWS_PROVIDERS, 0]


def user_info(req_id: int) -> list[object]:
    """userInfo (107)."""
    return [Out.USER_INFO, req_id, ""]
