"""msgpack codec for everything MMR puts on the wire.

``packb(obj) -> bytes`` and ``unpackb(data) -> obj``. Plain msgpack types (None, bool, int, float, str,
bytes, list, dict) pass through; everything else travels as a msgpack *ext type* with a fixed code:

====  =====================  ===========================================================================
code  Python type            payload
====  =====================  ===========================================================================
1     datetime.datetime      msgpack ``[y, mo, d, h, mi, s, us, fold, tz]``; ``tz`` is None (naive), an
                             int (fixed UTC offset in microseconds) or a str (zoneinfo / pytz key)
2     datetime.date          int32 big-endian proleptic ordinal
3     datetime.time          msgpack ``[h, mi, s, us, fold, tz]`` (``tz`` as for datetime)
4     datetime.timedelta     msgpack ``[days, seconds, microseconds]``
5     decimal.Decimal        ``str(value)`` as UTF-8 (keeps NaN, Infinity, exponent and trailing zeros)
6     uuid.UUID              16 raw bytes
7     tuple                  msgpack list of the items (so tuples stay tuples, also as dict keys)
8     set                    msgpack list of the items
9     frozenset              msgpack list of the items
10    registered Enum        msgpack ``[wire name, member name]``
11    registered dataclass   msgpack ``[wire name, {field: value}]`` (init fields only; nested values use
                             this same codec, so nested registered types work)
20    numpy scalar           msgpack ``[dtype.str, raw bytes]``
21    numpy ndarray          msgpack ``[dtype.str, shape, raw C-order bytes]`` (object/structured refused)
30    pandas DataFrame       Arrow IPC stream (pyarrow); the index is preserved, incl. tz-aware
                             DatetimeIndex
31    pandas Series          msgpack ``[name, Arrow IPC stream of a one-column frame]``
32    pandas Timestamp       msgpack ``[nanoseconds since epoch (UTC), tz]``
33    pandas Timedelta       int64 nanoseconds (msgpack int)
34    pandas NaT             empty
====  =====================  ===========================================================================

Limits: ints must fit in 64 bits (msgpack); DataFrame column names must be strings (Arrow); a
DatetimeIndex's ``freq`` is not carried; tz-aware datetimes keep a zoneinfo/pytz key, any other tzinfo
arrives as a fixed-offset ``datetime.timezone`` (its offset at that instant).

Enums and dataclasses must be registered with :func:`wire` (``@wire`` or ``@wire(name="...")``); decoding
looks the wire name up in that table and only ever instantiates registered classes -- it never imports a
module named in a message. Subclasses of builtins that are not registered (``OrderedDict``, a ``str``
subclass …) are sent as their base type.

numpy, pandas and pyarrow are imported lazily, only when such an object is encoded or decoded, so that
``import trader.messaging.codec`` stays cheap for the CLI.

Errors: an object the codec cannot carry raises :class:`trader.errors.EncodeError` at the sender (the
message names the type); bytes that are not a valid message raise :class:`trader.errors.DecodeError`.

Decoding limits (bytes from the wire are hostile until proven otherwise; anything over a limit, and anything
malformed, is a DecodeError -- never RecursionError, MemoryError or a crash):

- **ext nesting**: at most ``MAX_EXT_DEPTH`` (16) ext payloads inside one another (a tuple in a dataclass
  in a set …; MMR's own types nest 5 deep at most). Each level runs a fresh msgpack unpacker, ~55 KB of C stack:
  ~150 levels overflow an 8 MB main-thread stack and kill the process (SIGSEGV, no exception), 16 fit in
  a 1 MB thread stack. The depth is counted per thread and checked *before* recursing.
- **plain nesting**: lists/maps nest at most 1024 deep within one payload (msgpack's own limit); container
  and string lengths can never exceed the frame's length (msgpack's limits default to ``len(data)``).
- **decoded size**: Arrow streams must be uncompressed (compressed buffers declare their own inflated
  size: a small frame could demand gigabytes) and are fully validated before pandas sees them; rows x
  columns x 8 bytes of every decoded frame/series count against a budget of ``DECODED_BYTES_BASE`` (64 MiB)
  + ``DECODED_BYTES_RATIO`` (16) x the frame's length per ``unpackb`` call. numpy arrays must carry exactly
  their byte count.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import struct
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar, overload

import msgpack

from trader.errors import DecodeError, EncodeError

__all__ = ["packb", "unpackb", "wire", "registered", "EXT_CODES", "MAX_EXT_DEPTH"]

# Decoding limits (see the module docstring).
MAX_EXT_DEPTH = 16
DECODED_BYTES_BASE = 64 * 1024 * 1024
DECODED_BYTES_RATIO = 16
MAX_ERROR_CHARS = 300  # DecodeError texts quote wire data (names, keys): keep them short for logs and replies

T = TypeVar("T", bound=type)

EXT_DATETIME = 1
EXT_DATE = 2
EXT_TIME = 3
EXT_TIMEDELTA = 4
EXT_DECIMAL = 5
EXT_UUID = 6
EXT_TUPLE = 7
EXT_SET = 8
EXT_FROZENSET = 9
EXT_ENUM = 10
EXT_DATACLASS = 11
EXT_NP_SCALAR = 20
EXT_NP_ARRAY = 21
EXT_PD_DATAFRAME = 30
EXT_PD_SERIES = 31
EXT_PD_TIMESTAMP = 32
EXT_PD_TIMEDELTA = 33
EXT_PD_NAT = 34

EXT_CODES: dict[str, int] = {
    name[4:].lower(): code for name, code in globals().items() if name.startswith("EXT_") and isinstance(code, int)
}

_ExtType = msgpack.ExtType
_DATE = struct.Struct(">i")

# wire name -> class and class -> wire name; dataclass field names cached per class.
_BY_NAME: dict[str, type] = {}
_NAME_OF: dict[type, str] = {}
_FIELDS: dict[type, tuple[str, ...]] = {}


# --------------------------------------------------------------------------- registration
@overload
def wire(cls: T, *, name: str | None = None) -> T: ...
@overload
def wire(cls: None = None, *, name: str | None = None) -> Callable[[T], T]: ...
def wire(cls: Any = None, *, name: str | None = None) -> Any:
    """Register a dataclass or an Enum with the codec under a stable wire name.

    Use as ``@wire`` or ``@wire(name="order.Side")``; the default name is ``cls.__qualname__``. Registering
    the same class twice is harmless; registering two different classes under one name is a ``ValueError``.
    """

    def register(klass: T) -> T:
        if not isinstance(klass, type) or not (
            issubclass(klass, enum.Enum) or dataclasses.is_dataclass(klass)
        ):
            raise TypeError(f"@wire needs a dataclass or an Enum, not {klass!r}")
        wire_name = name or klass.__qualname__
        other = _BY_NAME.get(wire_name)
        if other is not None and other is not klass:
            raise ValueError(f"wire name {wire_name!r} is already used by {other.__module__}.{other.__qualname__}")
        _BY_NAME[wire_name] = klass
        _NAME_OF[klass] = wire_name
        if dataclasses.is_dataclass(klass):
            _FIELDS[klass] = tuple(f.name for f in dataclasses.fields(klass) if f.init)
        return klass

    if cls is None:
        return register
    return register(cls)


def registered() -> dict[str, type]:
    """Return a copy of the wire-name -> class table (for status output and tests)."""
    return dict(_BY_NAME)


# --------------------------------------------------------------------------- public API
def packb(obj: Any) -> bytes:
    """Encode ``obj`` to msgpack bytes; raise EncodeError if something in it cannot be carried."""
    try:
        return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=True)
    except EncodeError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(f"cannot encode {type(obj).__name__}: {exc}") from None


class _Limits(threading.local):
    """Per-thread decoding state: ext nesting depth and the decoded-bytes budget left."""

    depth = 0
    budget = 0


_limits = _Limits()


def unpackb(data: bytes | bytearray | memoryview) -> Any:
    """Decode msgpack bytes made by :func:`packb`; raise DecodeError on anything malformed or over a limit."""
    limits = _limits
    outer = limits.depth == 0  # unpackb called from inside a decoder keeps the outer call's budget
    if outer:
        limits.budget = DECODED_BYTES_BASE + DECODED_BYTES_RATIO * len(data)
    try:
        # Maps may have int/tuple keys (conIds, (symbol, exchange) pairs); limits default to len(data).
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except DecodeError as exc:
        text = str(exc)
        if len(text) > MAX_ERROR_CHARS:
            raise DecodeError(text[:MAX_ERROR_CHARS] + "…") from None
        raise
    except Exception as exc:  # msgpack raises a zoo of types (ExtraData, FormatError, StackError, …)
        text = f"invalid message ({len(data)} bytes): {type(exc).__name__}: {exc}"
        raise DecodeError(text[:MAX_ERROR_CHARS]) from None
    finally:
        if outer:
            limits.depth = 0


# --------------------------------------------------------------------------- encoding
def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=True)


def _tz_to_wire(tz: _dt.tzinfo | None, when: _dt.datetime | None) -> int | str | None:
    if tz is None:
        return None
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)  # zoneinfo / pytz
    if isinstance(key, str):
        return key
    offset = tz.utcoffset(when)
    if offset is None:
        return None
    # Any other tzinfo (datetime.timezone, dateutil tzoffset …) travels as its offset at this instant.
    return (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds


def _tz_from_wire(tz: int | str | None) -> _dt.tzinfo | None:
    if tz is None:
        return None
    if isinstance(tz, str):
        from zoneinfo import ZoneInfo

        return ZoneInfo(tz)
    if tz == 0:
        return _dt.UTC
    return _dt.timezone(_dt.timedelta(microseconds=tz))


def _enc_datetime(o: _dt.datetime) -> _ExtType:
    tz = _tz_to_wire(o.tzinfo, o)
    return _ExtType(
        EXT_DATETIME,
        msgpack.packb([o.year, o.month, o.day, o.hour, o.minute, o.second, o.microsecond, o.fold, tz]),
    )


def _enc_date(o: _dt.date) -> _ExtType:
    return _ExtType(EXT_DATE, _DATE.pack(o.toordinal()))


def _enc_time(o: _dt.time) -> _ExtType:
    tz = _tz_to_wire(o.tzinfo, None)
    return _ExtType(EXT_TIME, msgpack.packb([o.hour, o.minute, o.second, o.microsecond, o.fold, tz]))


def _enc_timedelta(o: _dt.timedelta) -> _ExtType:
    return _ExtType(EXT_TIMEDELTA, msgpack.packb([o.days, o.seconds, o.microseconds]))


def _enc_tuple(o: tuple) -> _ExtType:
    return _ExtType(EXT_TUPLE, _pack(list(o)))


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    _dt.datetime: _enc_datetime,
    _dt.date: _enc_date,
    _dt.time: _enc_time,
    _dt.timedelta: _enc_timedelta,
    Decimal: lambda o: _ExtType(EXT_DECIMAL, str(o).encode()),
    uuid.UUID: lambda o: _ExtType(EXT_UUID, o.bytes),
    tuple: _enc_tuple,
    set: lambda o: _ExtType(EXT_SET, _pack(list(o))),
    frozenset: lambda o: _ExtType(EXT_FROZENSET, _pack(list(o))),
}


def _default(obj: Any) -> Any:
    """msgpack ``default=``: turn a non-native object into an ExtType (or a native value)."""
    cls = type(obj)
    enc = _ENCODERS.get(cls)
    if enc is not None:
        return enc(obj)
    name = _NAME_OF.get(cls)
    if name is not None:
        if isinstance(obj, enum.Enum):
            return _ExtType(EXT_ENUM, msgpack.packb([name, obj.name]))
        values = {f: getattr(obj, f) for f in _FIELDS[cls]}
        return _ExtType(EXT_DATACLASS, _pack([name, values]))
    module = cls.__module__
    if module.startswith("numpy"):
        return _enc_numpy(obj)
    if module.startswith("pandas"):
        return _enc_pandas(obj)
    if isinstance(obj, enum.Enum):
        raise EncodeError(f"cannot encode enum {module}.{cls.__qualname__}: register it with @wire")
    if dataclasses.is_dataclass(obj):
        raise EncodeError(f"cannot encode dataclass {module}.{cls.__qualname__}: register it with @wire")
    # Unregistered subclasses of builtins (OrderedDict, defaultdict, str/int subclasses …) go as their base.
    for base in (bool, int, float, str, bytes, dict, list):
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, tuple):  # namedtuple
        return _enc_tuple(obj)
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    for base, enc in _ENCODERS.items():  # subclasses of datetime etc. (checked most-derived first)
        if isinstance(obj, base):
            return enc(obj)
    raise EncodeError(f"cannot encode object of type {module}.{cls.__qualname__}")


def _check_dtype(dtype: Any) -> None:
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise EncodeError(f"cannot encode numpy dtype {dtype!r} (object and structured dtypes are refused)")


def _enc_numpy(obj: Any) -> _ExtType:
    import numpy as np

    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype)
        arr = obj if obj.flags.c_contiguous else obj.copy(order="C")  # ascontiguousarray makes 0-d 1-d
        return _ExtType(EXT_NP_ARRAY, msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes()]))
    if isinstance(obj, np.generic):
        _check_dtype(obj.dtype)
        return _ExtType(EXT_NP_SCALAR, msgpack.packb([obj.dtype.str, obj.tobytes()]))
    raise EncodeError(f"cannot encode object of type {type(obj).__module__}.{type(obj).__qualname__}")


def _arrow_ipc(frame: Any) -> bytes:
    import pyarrow as pa

    try:
        table = pa.Table.from_pandas(frame, preserve_index=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise EncodeError(f"cannot encode pandas object via Arrow: {exc}") from None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _enc_pandas(obj: Any) -> _ExtType:
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        if not all(isinstance(c, str) for c in obj.columns):
            # Arrow needs string column names; the pandas metadata would not bring ints back as ints.
            raise EncodeError("cannot encode DataFrame with non-string column names; rename the columns")
        return _ExtType(EXT_PD_DATAFRAME, _arrow_ipc(obj))
    if isinstance(obj, pd.Series):
        return _ExtType(EXT_PD_SERIES, _pack([obj.name, _arrow_ipc(obj.to_frame(name="values"))]))
    if obj is pd.NaT:
        return _ExtType(EXT_PD_NAT, b"")
    if isinstance(obj, pd.Timestamp):
        return _ExtType(EXT_PD_TIMESTAMP, msgpack.packb([obj.value, _tz_to_wire(obj.tzinfo, obj)]))
    if isinstance(obj, pd.Timedelta):
        return _ExtType(EXT_PD_TIMEDELTA, msgpack.packb(obj.value))
    raise EncodeError(f"cannot encode object of type {type(obj).__module__}.{type(obj).__qualname__}")


# --------------------------------------------------------------------------- decoding
def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def _plain(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def _dec_datetime(data: bytes) -> _dt.datetime:
    y, mo, d, h, mi, s, us, fold, tz = _plain(data)
    return _dt.datetime(y, mo, d, h, mi, s, us, tzinfo=_tz_from_wire(tz), fold=fold)


def _dec_time(data: bytes) -> _dt.time:
    h, mi, s, us, fold, tz = _plain(data)
    return _dt.time(h, mi, s, us, tzinfo=_tz_from_wire(tz), fold=fold)


def _dec_timedelta(data: bytes) -> _dt.timedelta:
    days, seconds, micros = _plain(data)
    return _dt.timedelta(days=days, seconds=seconds, microseconds=micros)


# The project's modules that define wire types. On an unknown name the decoder imports these (a fixed list,
# never a module named by the message) so a receiver need not remember to import the type's module first.
WIRE_MODULES = (
    "trader.objects",
    "trader.trading.models",
    "trader.trading.combos",
    "trader.trading.orders",
    "trader.trading.risk_gate",
    "trader.trading.fills",
    "trader.trading.groups",
    "trader.trading.proposals",
    "trader.trading.portfolio_risk",
    "trader.trading.sizing",
    "trader.trading.snapshot",
    "trader.trading.roles",
    "trader.broker.ib_errors",
    "trader.strategy.models",
)
_wire_modules_loaded = False


def _load_wire_modules() -> None:
    global _wire_modules_loaded
    import importlib

    _wire_modules_loaded = True
    for module in WIRE_MODULES:
        importlib.import_module(module)


def _registered(name: Any) -> type:
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None and isinstance(name, str) and not _wire_modules_loaded:
        _load_wire_modules()
        cls = _BY_NAME.get(name)
    if cls is None:
        raise DecodeError(f"unknown wire type {name!r} (not registered with @wire on this side)")
    return cls


def _dec_enum(data: bytes) -> enum.Enum:
    name, member = _plain(data)
    cls = _registered(name)
    try:
        return cls[member]  # type: ignore[index]
    except KeyError:
        raise DecodeError(f"{name} has no member {member!r}") from None


def _dec_dataclass(data: bytes) -> Any:
    name, values = _unpack(data)
    cls = _registered(name)
    if not isinstance(values, dict) or cls not in _FIELDS:
        raise DecodeError(f"malformed {name} payload")
    try:
        return cls(**values)
    except TypeError as exc:
        raise DecodeError(f"cannot build {name}: {exc}") from None


def _np_dtype(text: Any) -> Any:
    import numpy as np

    if not isinstance(text, str):
        raise DecodeError("numpy dtype must be a string")
    dtype = np.dtype(text)
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise DecodeError(f"refusing numpy dtype {text!r}")
    return dtype


def _dec_np_scalar(data: bytes) -> Any:
    import numpy as np

    text, raw = _plain(data)
    return np.frombuffer(raw, dtype=_np_dtype(text), count=1)[0]


def _dec_np_array(data: bytes) -> Any:
    import numpy as np

    text, shape, raw = _plain(data)
    dtype = _np_dtype(text)
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise DecodeError(f"bad ndarray shape {shape!r}")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        raise DecodeError(f"ndarray of {shape} x {dtype} does not match {len(raw)} bytes")
    # frombuffer gives a read-only view of the message; copy so receivers get an ordinary array.
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(tuple(shape)).copy()


def _fb_field(buf: bytes, table: int, index: int) -> int:
    """Absolute position of field ``index`` of the flatbuffer table at ``table``, or 0 if absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    if 4 + 2 * index >= vt_size:
        return 0
    offset = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
    return table + offset if offset else 0


def _fb_ref(buf: bytes, pos: int) -> int:
    """Follow the uoffset stored at ``pos`` (a reference to a table)."""
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _ipc_compressed(meta: bytes) -> bool:
    """True if an Arrow IPC message (flatbuffer ``Message``) is a record or dictionary batch whose body
    is compressed. Message: 1 header_type, 2 header; RecordBatch: 3 compression; DictionaryBatch: 1 data."""
    message = _fb_ref(meta, 0)
    kind_at = _fb_field(meta, message, 1)
    header_at = _fb_field(meta, message, 2)
    if not kind_at or not header_at:
        return False
    kind = meta[kind_at]
    header = _fb_ref(meta, header_at)
    if kind == 2:  # DictionaryBatch: its batch is field 1
        data_at = _fb_field(meta, header, 1)
        if not data_at:
            return False
        header, kind = _fb_ref(meta, data_at), 3
    return kind == 3 and _fb_field(meta, header, 3) != 0


def _charge(nbytes: int, what: str) -> None:
    """Count ``nbytes`` of decoded output against this unpackb call's budget."""
    _limits.budget -= nbytes
    if _limits.budget < 0:
        raise DecodeError(f"{what} would decode to more than the limit for this message")


def _from_ipc(data: bytes) -> Any:
    import pyarrow as pa

    buf = pa.py_buffer(data)
    messages = pa.ipc.MessageReader.open_stream(buf)
    while True:
        try:
            message = messages.read_next_message()
        except StopIteration:
            break
        if message.type in ("record batch", "dictionary") and _ipc_compressed(message.metadata.to_pybytes()):
            raise DecodeError("compressed Arrow IPC streams are refused")
    with pa.ipc.open_stream(buf) as reader:
        table = reader.read_all()
    table.validate(full=True)  # offsets/lengths inside the buffers, before pandas touches them
    _charge(table.num_rows * (table.num_columns + 1) * 8, f"Arrow table of {table.num_rows} rows")
    return table.to_pandas()


def _dec_series(data: bytes) -> Any:
    name, raw = _unpack(data)
    series = _from_ipc(raw).iloc[:, 0]
    series.name = name
    return series


def _dec_pd_timestamp(data: bytes) -> Any:
    import pandas as pd

    value, tz = _plain(data)
    if tz is None:
        return pd.Timestamp(value)
    return pd.Timestamp(value, tz="UTC").tz_convert(_tz_from_wire(tz))


def _dec_pd_timedelta(data: bytes) -> Any:
    import pandas as pd

    return pd.Timedelta(_plain(data), unit="ns")


def _dec_pd_nat(data: bytes) -> Any:
    import pandas as pd

    return pd.NaT


_DECODERS: dict[int, Callable[[bytes], Any]] = {
    EXT_DATETIME: _dec_datetime,
    EXT_DATE: lambda d: _dt.date.fromordinal(_DATE.unpack(d)[0]),
    EXT_TIME: _dec_time,
    EXT_TIMEDELTA: _dec_timedelta,
    EXT_DECIMAL: lambda d: Decimal(d.decode()),
    EXT_UUID: lambda d: uuid.UUID(bytes=bytes(d)),
    EXT_TUPLE: lambda d: tuple(_unpack(d)),
    EXT_SET: lambda d: set(_unpack(d)),
    EXT_FROZENSET: lambda d: frozenset(_unpack(d)),
    EXT_ENUM: _dec_enum,
    EXT_DATACLASS: _dec_dataclass,
    EXT_NP_SCALAR: _dec_np_scalar,
    EXT_NP_ARRAY: _dec_np_array,
    EXT_PD_DATAFRAME: _from_ipc,
    EXT_PD_SERIES: _dec_series,
    EXT_PD_TIMESTAMP: _dec_pd_timestamp,
    EXT_PD_TIMEDELTA: _dec_pd_timedelta,
    EXT_PD_NAT: _dec_pd_nat,
}


def _ext_hook(code: int, data: bytes) -> Any:
    dec = _DECODERS.get(code)
    if dec is None:
        raise DecodeError(f"unknown ext type code {code}")
    limits = _limits
    if limits.depth >= MAX_EXT_DEPTH:  # checked before recursing: deeper would risk the C stack
        raise DecodeError(f"ext types nested more than {MAX_EXT_DEPTH} deep")
    limits.depth += 1
    try:
        return dec(data)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"bad ext type {code} payload: {type(exc).__name__}: {exc}") from None
    finally:
        limits.depth -= 1
