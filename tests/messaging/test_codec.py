"""Round trips of every ext type, registration rules, and encode/decode errors."""

from __future__ import annotations

import datetime as dt
import enum
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgpack
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trader.errors import DecodeError, EncodeError
from trader.messaging.codec import EXT_CODES, packb, registered, unpackb, wire


def rt(obj: object) -> object:
    return unpackb(packb(obj))


# --------------------------------------------------------------------------- registered types
@wire
class Side(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"


@wire(name="test.Venue")
class Venue(enum.IntEnum):
    SMART = 1
    ISLAND = 2


@wire
@dataclass(frozen=True, slots=True)
class Leg:
    symbol: str
    side: Side
    qty: Decimal


@wire(name="test.Order")
@dataclass(frozen=True, slots=True)
class Order:
    order_id: uuid.UUID
    legs: tuple[Leg, ...]
    placed_at: dt.datetime
    venue: Venue = Venue.SMART
    tags: frozenset[str] = frozenset()
    notional: float = field(init=False, default=0.0)


class Unwired(enum.Enum):
    X = 1


@dataclass
class PlainDC:
    a: int


# --------------------------------------------------------------------------- hypothesis strategies
tz_keys = st.sampled_from(["America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Lord_Howe", "UTC"])
zone_tz = tz_keys.map(ZoneInfo)
fixed_tz = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
any_tz = st.one_of(st.none(), zone_tz, fixed_tz, st.just(dt.UTC))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.datetimes(timezones=any_tz),
    st.dates(),
    st.times(timezones=st.one_of(st.none(), fixed_tz)),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=8)
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), hashables), inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=20,
)


def same(a: object, b: object) -> bool:
    """Equality that also checks types (list vs tuple, set vs frozenset, tz objects, datetime fold)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, dt.datetime):
        return a == b and a.fold == b.fold and a.utcoffset() == b.utcoffset()
    if isinstance(a, dt.time):
        return a == b and a.fold == b.fold and a.tzinfo == b.tzinfo
    return a == b


@settings(max_examples=300, deadline=None)
@given(nested)
def test_nested_round_trip_keeps_types(obj: object) -> None:
    assert same(rt(obj), obj)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=any_tz))
def test_datetime_keeps_its_timezone(value: dt.datetime) -> None:
    back = rt(value)
    assert back == value
    assert back.fold == value.fold
    if value.tzinfo is None:
        assert back.tzinfo is None
    elif isinstance(value.tzinfo, ZoneInfo):
        assert back.tzinfo == value.tzinfo  # same zone key, not just the same offset
    else:
        assert back.utcoffset() == value.utcoffset()


def test_datetime_fold_and_zone_key_survive_dst_ambiguity() -> None:
    ny = ZoneInfo("America/New_York")
    second = dt.datetime(2024, 11, 3, 1, 30, tzinfo=ny, fold=1)  # the second 01:30 (EST)
    back = rt(second)
    assert back.fold == 1
    assert back.tzinfo is ny or back.tzinfo == ny
    assert back.utcoffset() == dt.timedelta(hours=-5)


@pytest.mark.parametrize(
    "value",
    [Decimal("NaN"), Decimal("-Infinity"), Decimal("1.500"), Decimal("-0E-7")],
)
def test_decimal_special_values(value: Decimal) -> None:
    assert str(rt(value)) == str(value)


def test_ext_codes_are_fixed() -> None:
    assert EXT_CODES["datetime"] == 1 and EXT_CODES["dataclass"] == 11 and EXT_CODES["pd_dataframe"] == 30
    assert len(set(EXT_CODES.values())) == len(EXT_CODES)


# --------------------------------------------------------------------------- registration
def test_registered_enum_and_nested_dataclass_round_trip() -> None:
    order = Order(
        order_id=uuid.uuid4(),
        legs=(Leg("AAPL", Side.BUY, Decimal("10")), Leg("MSFT", Side.SELL, Decimal("2.5"))),
        placed_at=dt.datetime(2024, 5, 1, 9, 30, tzinfo=ZoneInfo("America/New_York")),
        venue=Venue.ISLAND,
        tags=frozenset({"hedge"}),
    )
    back = rt({"orders": [order], "side": Side.SELL})
    assert back == {"orders": [order], "side": Side.SELL}
    assert type(back["orders"][0].legs) is tuple
    assert back["orders"][0].venue is Venue.ISLAND
    assert registered()["test.Order"] is Order and registered()["Leg"] is Leg


def test_wire_rejects_conflicts_and_non_wire_types() -> None:
    with pytest.raises(ValueError, match="already used"):

        @wire(name="test.Order")
        @dataclass
        class Other:
            x: int

    with pytest.raises(TypeError):
        wire(int)


# --------------------------------------------------------------------------- numpy / pandas
@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        dtype=st.one_of(
            hnp.integer_dtypes(endianness="="),
            hnp.floating_dtypes(endianness="="),
            hnp.complex_number_dtypes(endianness="="),
            hnp.boolean_dtypes(),
            hnp.datetime64_dtypes(endianness="="),
            hnp.unicode_string_dtypes(endianness="="),
            hnp.byte_string_dtypes(),
        ),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_ndarray_round_trip(arr: np.ndarray) -> None:
    back = rt(arr)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable


def test_non_contiguous_array_and_numpy_scalars() -> None:
    arr = np.arange(24, dtype=">i4").reshape(4, 6)[:, ::2].T
    np.testing.assert_array_equal(rt(arr), arr)
    for value in [np.float32(1.5), np.int64(-3), np.bool_(True), np.datetime64("2024-01-02T03:04:05.123456789")]:
        back = rt(value)
        assert type(back) is type(value) and back == value


def test_object_dtype_refused_both_ways() -> None:
    with pytest.raises(EncodeError, match="object"):
        packb(np.array([1, "a"], dtype=object))
    forged = msgpack.packb(msgpack.ExtType(EXT_CODES["np_array"], msgpack.packb(["|O", [1], b"\0" * 8])))
    with pytest.raises(DecodeError):
        unpackb(forged)


def test_dataframe_round_trip_keeps_tz_aware_index() -> None:
    idx = pd.date_range("2024-03-08 09:30", periods=5, freq="1min", tz="America/New_York", name="ts")
    df = pd.DataFrame(
        {"close": np.linspace(100, 101, 5), "volume": np.arange(5, dtype="int64"), "sym": list("ABCDE")},
        index=idx,
    )
    back = rt(df)
    pd.testing.assert_frame_equal(back, df, check_freq=False)  # freq is not carried
    assert str(back.index.tz) == "America/New_York"


def test_dataframe_multiindex_and_empty() -> None:
    mi = pd.DataFrame(
        {"qty": [1, 2]}, index=pd.MultiIndex.from_tuples([("AAPL", 1), ("MSFT", 2)], names=["sym", "n"])
    )
    pd.testing.assert_frame_equal(rt(mi), mi)
    assert rt(pd.DataFrame()).empty


def test_series_round_trip_keeps_name_and_index() -> None:
    s = pd.Series([1.5, None, 3.0], index=pd.Index(["a", "b", "c"], name="k"), name=("px", 1))
    pd.testing.assert_series_equal(rt(s), s)
    unnamed = pd.Series([1, 2, 3])
    pd.testing.assert_series_equal(rt(unnamed), unnamed)


def test_pandas_scalars() -> None:
    ts = pd.Timestamp("2024-01-02 09:30:00.000000001", tz="Europe/London")
    assert rt(ts) == ts and str(rt(ts).tz) == "Europe/London"
    naive = pd.Timestamp("2024-01-02 09:30")
    assert rt(naive) == naive and rt(naive).tz is None
    assert rt(pd.Timedelta("1D 3ns")) == pd.Timedelta("1D 3ns")
    assert rt(pd.NaT) is pd.NaT


def test_codec_import_is_lazy() -> None:
    code = (
        "import sys, trader.messaging, trader.messaging.codec as c; "
        "c.unpackb(c.packb({'a': (1, 2)})); "
        "print(sorted(m for m in ('numpy', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- errors
class Opaque:
    pass


@pytest.mark.parametrize(
    ("obj", "name"),
    [(Opaque(), "Opaque"), ({"x": [Opaque()]}, "Opaque"), (Unwired.X, "Unwired"), (PlainDC(1), "PlainDC"),
     (object(), "object"), (lambda: 1, "function"), (2**64, "int")],
)
def test_unknown_type_raises_encode_error_naming_it(obj: object, name: str) -> None:
    with pytest.raises(EncodeError, match=name):
        packb(obj)


def test_builtin_subclasses_go_as_base_type() -> None:
    from collections import OrderedDict, namedtuple

    class Name(str):
        pass

    point = namedtuple("point", "x y")
    assert rt(OrderedDict(a=1)) == {"a": 1}
    assert type(rt(Name("x"))) is str
    assert rt(point(1, 2)) == (1, 2)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        b"\x92\x01",  # truncated array
        packb(1) + b"extra",
        msgpack.packb(msgpack.ExtType(99, b"")),  # unknown ext code
        msgpack.packb(msgpack.ExtType(EXT_CODES["dataclass"], msgpack.packb(["nope.Unknown", {}]))),
        msgpack.packb(msgpack.ExtType(EXT_CODES["dataclass"], msgpack.packb(["Leg", {"bogus": 1}]))),
        msgpack.packb(msgpack.ExtType(EXT_CODES["enum"], msgpack.packb(["Side", "HOLD"]))),
        msgpack.packb(msgpack.ExtType(EXT_CODES["datetime"], b"\x01")),
        msgpack.packb(msgpack.ExtType(EXT_CODES["np_array"], msgpack.packb(["<i8", [3], b"\0" * 8]))),
        msgpack.packb(msgpack.ExtType(EXT_CODES["pd_dataframe"], b"not arrow")),
        msgpack.packb({(1,): 2}, strict_types=False, use_bin_type=True),  # list key: unhashable
    ],
)
def test_bad_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        unpackb(data)
