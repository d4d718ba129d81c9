"""IB historical bars into the BarStore: chunking, pacing, retries on IB error 162, resumable jobs.

IB's rules (https://interactivebrokers.github.io/tws-api/historical_limitations.html):
- each request covers at most a maximum duration that depends on the bar size (`MAX_CHUNK_SECONDS`);
- no identical request within 15 seconds;
- at most 60 requests in any 10-minute window.
A long range is split into chunks aligned on a fixed grid (so a re-run asks for the same chunks), each chunk
is paced by `Pacer`, and a pacing violation (error 162 "Pacing violation") is retried after a wait. Every
finished chunk is recorded in ``history_chunks`` (bars.duckdb), so an interrupted download skips the chunks
it already has when it runs again. A chunk that reaches past "now" is never recorded, so `history update`
fetches it again next time.

The clock is injectable (`Clock`) so the pacing tests run in milliseconds.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from trader.data.bars import BarStore
from trader.data.store import from_db_ts, to_utc, utc_now
from trader.errors import HistoryDownloadError

if TYPE_CHECKING:
    import pandas
    from ib_async import IB, Contract

log = logging.getLogger(__name__)

SOURCE_IB = "ib"
SOURCE_IB_SIM = "ib_sim"  # `history ib` against MMR's simulated gateway (broker: sim): never market data

# Longest request IB serves per bar size, in seconds (kept under IB's documented maxima).
MAX_CHUNK_SECONDS: dict[str, int] = {
    "1 secs": 1800,
    "5 secs": 3600,
    "10 secs": 14400,
    "15 secs": 14400,
    "30 secs": 28800,
    "1 min": 86400,
    "2 mins": 2 * 86400,
    "3 mins": 7 * 86400,
    "5 mins": 7 * 86400,
    "10 mins": 7 * 86400,
    "15 mins": 14 * 86400,
    "20 mins": 14 * 86400,
    "30 mins": 28 * 86400,
    "1 hour": 28 * 86400,
    "2 hours": 28 * 86400,
    "4 hours": 28 * 86400,
    "1 day": 364 * 86400,
}

PACING_WINDOW_SECONDS = 600.0
PACING_MAX_REQUESTS = 60
IDENTICAL_REQUEST_SECONDS = 15.0
PACING_ERROR = 162
PACING_RETRIES = 5


class Clock(Protocol):
    """Time source for pacing: real in production, a fake one in tests."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """`time.monotonic` and `asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Pacer:
    """Waits as long as needed before each request so IB's pacing limits are never hit."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_requests: int = PACING_MAX_REQUESTS,
        window: float = PACING_WINDOW_SECONDS,
        identical_gap: float = IDENTICAL_REQUEST_SECONDS,
    ):
        self.clock = clock
        self.max_requests = max_requests
        self.window = window
        self.identical_gap = identical_gap
        self._sent: collections.deque[float] = collections.deque()
        self._last_by_key: dict[tuple, float] = {}
        self.waited = 0.0

    async def acquire(self, key: tuple) -> None:
        """Block until a request identified by `key` may go out, then count it as sent."""
        while True:
            now = self.clock.monotonic()
            while self._sent and now - self._sent[0] >= self.window:
                self._sent.popleft()
            wait = 0.0
            if len(self._sent) >= self.max_requests:
                wait = self._sent[0] + self.window - now
            last = self._last_by_key.get(key)
            if last is not None:
                wait = max(wait, last + self.identical_gap - now)
            if wait <= 0:
                break
            self.waited += wait
            await self.clock.sleep(wait)
        self._sent.append(now)
        self._last_by_key[key] = now

    async def backoff(self, seconds: float) -> None:
        """Wait after IB reported a pacing violation anyway."""
        self.waited += seconds
        await self.clock.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One request: bars in (end - seconds, end]."""

    end: dt.datetime
    seconds: int

    @property
    def duration(self) -> str:
        """IB duration string for this chunk."""
        if self.seconds <= 86400:
            return f"{self.seconds} S"
        return f"{self.seconds // 86400} D"


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """Summary of one symbol's download."""

    conid: int
    symbol: str
    bar_size: str
    chunks_total: int
    chunks_skipped: int
    requests: int
    bars_received: int
    bars_new: int
    pacing_retries: int


def plan_chunks(start: dt.datetime, end: dt.datetime, bar_size: str) -> list[Chunk]:
    """Split [start, end) into request chunks on a fixed grid (epoch-aligned), oldest first."""
    try:
        size = MAX_CHUNK_SECONDS[bar_size]
    except KeyError:
        raise ValueError(f"unknown bar size {bar_size!r}; one of {', '.join(MAX_CHUNK_SECONDS)}") from None
    start_s = int(to_utc(start).timestamp())
    end_s = int(to_utc(end).timestamp())
    first_end = (start_s // size + 1) * size
    chunks = []
    chunk_end = first_end
    while chunk_end - size < end_s:
        chunks.append(Chunk(dt.datetime.fromtimestamp(chunk_end, dt.UTC), size))
        chunk_end += size
    return chunks


def _round_duration(span: dt.timedelta) -> int:
    """Seconds for a partial chunk: at least one minute, whole days above one day (IB's duration units)."""
    seconds = max(int(span.total_seconds() + 0.999), 60)
    return seconds if seconds <= 86400 else -(-seconds // 86400) * 86400


def bars_to_frame(bars: list[Any]) -> pandas.DataFrame:
    """ib_async BarData list → DataFrame indexed by UTC timestamps with BarStore's columns."""
    import pandas as pd

    def stamp(value: Any) -> pd.Timestamp:
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [float(b.volume) for b in bars],
            "vwap": [float(b.average) for b in bars],
            "bar_count": [int(b.barCount) for b in bars],
        },
        index=pd.DatetimeIndex([stamp(b.date) for b in bars], name="ts"),
    )
    return frame


class HistoryDownloader:
    """Downloads IB bars for contracts into a BarStore, paced and resumable."""

    def __init__(
        self,
        ib: IB,
        bars: BarStore,
        *,
        clock: Clock | None = None,
        pacer: Pacer | None = None,
        what_to_show: str = "TRADES",
        use_rth: bool = False,
        now: Callable[[], dt.datetime] = utc_now,
        progress: Callable[[int, int], None] | None = None,
        request_timeout: float = 60.0,
        source: str = SOURCE_IB,
    ):
        self.ib = ib
        self.source = source
        self.bars = bars
        self.clock = clock or RealClock()
        self.pacer = pacer or Pacer(self.clock)
        self.what_to_show = what_to_show
        self.use_rth = use_rth
        self.now = now
        self.progress = progress
        self.request_timeout = request_timeout
        self.requests = 0

    def done_chunks(self, conid: int, bar_size: str) -> set[dt.datetime]:
        """Chunk end times already recorded as finished for a series."""
        rows = self.bars.store.execute(
            "SELECT chunk_end FROM history_chunks WHERE conid = ? AND bar_size = ? AND source = ?",
            [conid, bar_size, self.source],
            write=False,
        )
        return {from_db_ts(r[0]) for r in rows}  # type: ignore[misc]

    async def download(
        self, contract: Contract, bar_size: str, start: dt.datetime, end: dt.datetime | None = None
    ) -> DownloadResult:
        """Fetch bars of `contract` in [start, end) (end defaults to now), skipping chunks already done."""
        end = end or self.now()
        chunks = plan_chunks(start, end, bar_size)
        done = self.done_chunks(contract.conId, bar_size)
        todo = [c for c in chunks if c.end not in done]
        received = new = retries = 0
        for index, grid_chunk in enumerate(todo):
            # Ask only for the part of the grid chunk inside [start, end) (an update needs hours, not a week);
            # only a chunk fetched whole is recorded as done.
            chunk_start = grid_chunk.end - dt.timedelta(seconds=grid_chunk.seconds)
            req_start, req_end = max(chunk_start, to_utc(start)), min(grid_chunk.end, end)
            whole = req_start == chunk_start and req_end == grid_chunk.end
            chunk = grid_chunk if whole else Chunk(req_end, _round_duration(req_end - req_start))
            bars, chunk_retries = await self._request(contract, bar_size, chunk)
            retries += chunk_retries
            received += len(bars)
            frame = bars_to_frame(bars) if bars else None
            with self.bars.store.transaction():
                if frame is not None:
                    new += self.bars.ingest(contract.conId, bar_size, self.source, frame)
                if whole and chunk.end <= self.now():  # a chunk still forming is fetched again next time
                    self.bars.store.execute(
                        "INSERT OR REPLACE INTO history_chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [contract.conId, bar_size, self.source, chunk.end, chunk.seconds, len(bars), self.now()],
                    )
            if self.progress is not None:
                self.progress(index + 1, len(todo))
        return DownloadResult(
            contract.conId, contract.symbol, bar_size, len(chunks), len(chunks) - len(todo),
            len(todo) + retries, received, new, retries,
        )

    async def _request(self, contract: Contract, bar_size: str, chunk: Chunk) -> tuple[list[Any], int]:
        """One chunk, retried after pacing violations; 'no data' is an empty chunk, other errors raise."""
        key = (contract.conId, bar_size, self.what_to_show, chunk.end, chunk.seconds)
        for attempt in range(PACING_RETRIES + 1):
            await self.pacer.acquire(key)
            errors: list[tuple[int, str]] = []

            def on_error(req_id: int, code: int, message: str, _contract: Any, errors: list = errors) -> None:
                errors.append((code, message))

            self.ib.errorEvent += on_error
            try:
                self.requests += 1
                bars = await asyncio.wait_for(
                    self.ib.reqHistoricalDataAsync(
                        contract,
                        endDateTime=chunk.end,
                        durationStr=chunk.duration,
                        barSizeSetting=bar_size,
                        whatToShow=self.what_to_show,
                        useRTH=self.use_rth,
                        formatDate=2,
                    ),
                    self.request_timeout,
                )
            finally:
                self.ib.errorEvent -= on_error
            if bars:
                return list(bars), attempt
            pacing = [m for c, m in errors if c == PACING_ERROR and "pacing" in m.lower()]
            if pacing:
                log.warning("pacing violation on %s %s; retry %d", contract.symbol, chunk.end, attempt + 1)
                await self.pacer.backoff(IDENTICAL_REQUEST_SECONDS * (attempt + 1))
                continue
            fatal = [(c, m) for c, m in errors if c != PACING_ERROR and c not in (2104, 2106, 2158)]
            if fatal:
                raise HistoryDownloadError(f"{contract.symbol} {bar_size} until {chunk.end}: {fatal[0][1]}")
            return [], attempt  # HMDS "no data": nothing traded in this chunk
        raise HistoryDownloadError(f"{contract.symbol}: still paced after {PACING_RETRIES} retries")
