"""The TWS API socket protocol, server side: framing, field codec and the wire dataclasses.

Wire format (both directions after the handshake): a 4-byte big-endian length, then NUL-terminated text
fields. The client opens with ``b"API\\0"`` + a length-prefixed ``"v157..178"`` version range; the server
answers with two fields, the chosen server version and the connection time.

The text protocol covers server versions ``MIN_CLIENT_VERSION``..``SERVER_VERSION`` (157..200, IB's last
text-only version; ib_async 2.x negotiates 178, ib_insync 0.9.86 176); above it trader/sim/protobuf.py takes over
(the official ibapi 10.50 negotiates 226). Every reply is laid out for the negotiated version: fields that appear or disappear
inside that range are written as ``Since(v, x)`` / ``Before(v, x)`` with the official client's
``MIN_SERVER_VER_*`` number and resolved by ``encode_msg(fields, server_version)`` (contractDetails' version and
mdSizeMultiplier below 164, advancedOrderRejectJson from 166, openOrder's faProfile below 177, execDetails'
pendingPriceRevision from 178, errorMsg's time from 194, historicalDataEnd as its own message from 196, the
order attributes of 183–199 …); requests are read the same way (cancelOrder has no version field from 192).
tests/sim/test_protocol_versions.py decodes every builder at every version with the official ``ibapi`` decoder,
ib_async and ib_insync; tests/sim/test_conformance_ibapi.py runs whole official-client sessions. Server versions
201..226 (binary message ids, protobuf requests and replies) are trader/sim/protobuf.py's: ``SERVER_VERSION`` is
the top of the text protocol.

The catalogue of layouts is split three ways: this module (message ids, framing, the field codec and the
dataclasses both directions share), trader/sim/requests.py (request parsers) and trader/sim/replies.py
(reply builders, one per message). Values are formatted as IB does: None → "", bool → "1"/"0", floats
shortest round-trip.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from trader.errors import DecodeError, MessageTooLarge

SERVER_VERSION = 200
MIN_CLIENT_VERSION = 157
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a sane cap: IB's largest replies (option chains) are far smaller
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1
HANDSHAKE_PREFIX = b"API\0"
NOT_SUPPORTED = 10999  # our code for "request not supported in the simulator" (ends the client's request)


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
    REQ_CURRENT_TIME_IN_MILLIS = 105


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
    TICK_OPTION_COMPUTATION = 21
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
    HISTORICAL_DATA_END = 108
    CURRENT_TIME_IN_MILLIS = 109


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
    MODEL_OPTION = 13  # tickOptionComputation: the model's IV and greeks (ib_async Ticker.modelGreeks)
    OPEN = 14
    LAST_TIMESTAMP = 45


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True, slots=True)
class Since:
    """A field IB writes only from server version ``version`` on (a ``MIN_SERVER_VER_*`` constant)."""

    version: int
    value: object = ""


@dataclass(frozen=True, slots=True)
class Before:
    """A field IB writes only below server version ``version`` (desupported from then on, e.g. faProfile)."""

    version: int
    value: object = ""


def for_version(fields: Sequence[object], server_version: int | None) -> list[object]:
    """The fields a client at ``server_version`` reads: gated fields kept or dropped by IB's rules.

    A message with gated fields and no version raises: a session must never guess its layout.
    """
    out: list[object] = []
    for f in fields:
        keep = True
        while isinstance(f, Since | Before):  # nested gates bound a range: Since(163, Before(164, x))
            if server_version is None:
                raise ValueError(f"message {fields[0]!r} has version-gated fields; pass the server version")
            keep = keep and (server_version >= f.version) == isinstance(f, Since)
            f = f.value
        if keep:
            out.append(f)
    return out


def fmt(value: object) -> str:
    """One field as IB writes it: whole numbers without a decimal point ("10", not "10.0"), other floats
    at 12 significant digits so binary artefacts (233.13000000000002) never reach the wire."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinite"
        if value == UNSET_DOUBLE or math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(float(f"{value:.12g}"))
    return str(value)


def encode_fields(fields: Sequence[object], server_version: int | None = None) -> bytes:
    """Payload bytes (no length prefix): every field NUL-terminated, gated fields resolved for the version."""
    return "".join(fmt(f) + "\0" for f in for_version(fields, server_version)).encode()


def frame(payload: bytes) -> bytes:
    """Prefix a payload with its 4-byte big-endian length."""
    return struct.pack(">I", len(payload)) + payload


def encode_msg(fields: Sequence[object], server_version: int | None = None) -> bytes:
    """One complete frame for a field list, laid out for the session's negotiated server version."""
    return frame(encode_fields(fields, server_version))


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



# --------------------------------------------------------------------------- wire dataclasses (replies)


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
    combo_legs: tuple[tuple[int, int, str, str], ...] = ()  # BAG: (conId, ratio, action, exchange) per leg

