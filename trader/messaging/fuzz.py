"""Hostile frames for tests and benchmarks: what a broken or malicious peer can put on an MMR socket.

Every generator is seeded (``random.Random``) so a failure can be replayed. Nothing here is used by the
services themselves; it lives next to the codec because it builds frames in the codec's own formats.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import msgpack

from trader.messaging.codec import (
    EXT_DATACLASS,
    EXT_FROZENSET,
    EXT_PD_SERIES,
    EXT_SET,
    EXT_TUPLE,
    packb,
)

__all__ = ["nested_ext", "corpus", "mutate", "rpc_frames", "bus_frames"]

NESTING_CODES = (EXT_TUPLE, EXT_SET, EXT_FROZENSET, EXT_DATACLASS, EXT_PD_SERIES)


def nested_ext(depth: int, codes: tuple[int, ...] = (EXT_TUPLE,), rng: random.Random | None = None) -> bytes:
    """``depth`` ext payloads inside one another, each of a code from ``codes`` (the reported crash: ~200
    nested ext-7 payloads in ~1.4 KB). The innermost value is ``[1]``."""
    rng = rng or random.Random(0)
    inner = msgpack.packb([1])
    for _ in range(depth):
        code = rng.choice(codes)
        item = msgpack.ExtType(code, inner)
        if code == EXT_DATACLASS:
            inner = msgpack.packb(["ServiceStatus", {"service": item}])
        elif code == EXT_PD_SERIES:
            inner = msgpack.packb([item, b""])
        else:
            inner = msgpack.packb([item])
    return msgpack.packb(msgpack.ExtType(rng.choice(codes), inner))


def corpus() -> list[bytes]:
    """Valid messages of every shape the codec carries (requests, wire types, numpy, pandas)."""
    import datetime as dt
    import decimal
    import uuid
    from zoneinfo import ZoneInfo

    import numpy as np
    import pandas as pd

    from trader.objects import ServiceStatus

    when = dt.datetime(2024, 3, 10, 2, 30, tzinfo=ZoneInfo("America/New_York"))
    status = ServiceStatus("trader_service", "1.0", 4242, when, 1.5, {"rpc": "tcp://x"}, {"k": [1, 2.5]})
    frame = pd.DataFrame({"close": [1.0, 2.0, 3.5], "sym": ["A", "B", "C"]},
                         index=pd.date_range("2024-01-02", periods=3, tz="America/New_York"))
    values = [
        {"i": 1, "m": "ping", "a": [], "k": {}},
        {"i": 2, "m": "echo", "a": [(1, "x"), {3, 4}, frozenset({5})], "k": {"when": when}},
        status,
        [decimal.Decimal("1.50"), uuid.UUID(int=7), dt.date(2024, 1, 2), dt.timedelta(seconds=5)],
        np.arange(12, dtype="<f8").reshape(3, 4),
        np.int32(7),
        frame,
        frame["close"],
        pd.Timestamp("2024-01-02 09:30", tz="Asia/Kolkata"),
        {(1, 2): [pd.Timedelta(5, "s"), pd.NaT]},
    ]
    return [packb(v) for v in values]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` with a few random byte flips, insertions, deletions or a truncation."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del buf[pos:pos + rng.randint(1, 8)]
        else:
            del buf[pos:]
    return bytes(buf)


def rpc_frames(rng: random.Random, n: int, *, oversized: int = 0) -> Iterator[list[bytes]]:
    """``n`` hostile multipart messages for an RPC ROUTER (what a DEALER sends, without the routing id):
    random bytes, mutated and truncated valid messages, nested ext payloads, extra frames, empty frames and,
    if ``oversized`` is given, frames of that many bytes."""
    valid = corpus()
    for i in range(n):
        kind = i % 8
        if kind == 0:
            yield [rng.randbytes(rng.randint(0, 512))]
        elif kind == 1:
            yield [mutate(rng.choice(valid), rng)]
        elif kind == 2:
            msg = rng.choice(valid)
            yield [msg[:rng.randrange(len(msg))]]
        elif kind == 3:
            yield [nested_ext(rng.randint(15, 300), NESTING_CODES, rng)]
        elif kind == 4:
            yield [rng.randbytes(rng.randint(0, 16)) for _ in range(rng.randint(2, 5))]
        elif kind == 5:
            yield [b""]
        elif kind == 6 and oversized:
            yield [b"\x81\xa1i\x07" + rng.randbytes(16) * (oversized // 16)]
        else:  # a well-formed map that is not a request
            yield [packb({"i": [rng.random()], "m": rng.randbytes(4), "a": {}, "k": []})]


def bus_frames(rng: random.Random, n: int, *, big: int = 0) -> Iterator[list[bytes]]:
    """``n`` hostile multipart messages for the MessageBus ROUTER: unknown commands, wrong frame counts,
    non-UTF-8 and over-long topics, undecodable payloads (the bus forwards those: subscribers must cope) and,
    if ``big`` is given, junk frames of that many bytes."""
    commands = [b"sub", b"unsub", b"pub", b"ping", b"bye", b"pong", b"msg", b"ack", b""]
    for i in range(n):
        kind = i % 6
        if kind == 0:
            yield [rng.choice(commands)] + [rng.randbytes(rng.randint(0, 64)) for _ in range(rng.randint(0, 5))]
        elif kind == 1:
            yield [rng.choice([b"sub", b"pub", b"unsub"]), b"\xff\xfe" + rng.randbytes(8), b"x", b"t"]
        elif kind == 2:
            yield [b"sub", b"t" * 5000, b"token", b""]
        elif kind == 3:
            yield [rng.randbytes(rng.randint(1, 256))]
        elif kind == 4 and big:
            yield [b"junk", rng.randbytes(16) * (big // 16)]
        else:
            yield [b"pub", b"fuzz.junk", nested_ext(rng.randint(15, 300), NESTING_CODES, rng)]
