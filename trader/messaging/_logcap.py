"""Bounded logging of hostile input: short frame summaries and per-peer rate limits (messaging-private).

A peer can send frames of many megabytes, and as many as it likes: logging them whole (``%r``) once blocked
the bus for ~29 s and wrote a 24 MB record. Log a short prefix plus the length, and at most one warning per
peer per interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

PREFIX_BYTES = 64


def preview(data: bytes | str, limit: int = PREFIX_BYTES) -> str:
    """``repr`` of at most ``limit`` bytes/characters of ``data``, with its full length if cut."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}… ({len(data)} {'bytes' if isinstance(data, bytes) else 'chars'})"


def frames_summary(frames: Sequence[bytes], limit: int = PREFIX_BYTES) -> str:
    """Frame count, total length and a short preview of the first few frames."""
    total = sum(len(f) for f in frames)
    shown = ", ".join(preview(f, limit) for f in frames[:3])
    more = f", … {len(frames) - 3} more" if len(frames) > 3 else ""
    return f"{len(frames)} frames, {total} bytes: [{shown}{more}]"


class RateLimitedLog:
    """At most one record per key (peer) per ``interval`` seconds; the next one says how many were dropped.

    The table of keys is bounded (``max_keys``): when full it is cleared, which at worst lets one extra
    record per key through.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0, max_keys: int = 1024) -> None:
        self.logger = logger
        self.interval = interval
        self.max_keys = max_keys
        self._seen: dict[object, tuple[float, int]] = {}  # key -> (last logged at, suppressed since)

    def warning(self, key: object, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at WARNING unless ``key`` was logged less than ``interval`` s ago.

        Returns True if the record was written. The formatting is skipped for suppressed records.
        """
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is None and len(self._seen) >= self.max_keys:
            self._seen.clear()
        suppressed = last[1] if last is not None else 0
        self._seen[key] = (now, 0)
        if suppressed:
            msg += f" ({suppressed} similar messages suppressed)"
        self.logger.warning(msg, *args)
        return True
