"""IB history downloader: chunking, pacing with a fake clock, 162 retries, resume, and the simulated gateway."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ib_async import Contract, Stock

from trader.data.bars import BarStore
from trader.data.history import MAX_CHUNK_SECONDS, HistoryDownloader, Pacer, plan_chunks
from trader.errors import HistoryDownloadError
from trader.sim.testkit import START, connected
from trader.testing import run_async

UTC = dt.UTC


class FakeClock:
    """Monotonic time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


class ShortSleepClock(FakeClock):
    """Fake time for the pacer, but each wait also lets a little real time pass (the gateway's window is real)."""

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0.35)


class Event:
    def __init__(self) -> None:
        self.handlers: list[Any] = []

    def __iadd__(self, fn: Any) -> Event:
        self.handlers.append(fn)
        return self

    def __isub__(self, fn: Any) -> Event:
        self.handlers.remove(fn)
        return self

    def emit(self, *args: Any) -> None:
        for fn in list(self.handlers):
            fn(*args)


class FakeIB:
    """reqHistoricalDataAsync that returns one bar per minute; checks IB's pacing rules against `clock`."""

    def __init__(self, clock: FakeClock, *, violate_every: int = 0, fail_after: int | None = None) -> None:
        self.clock = clock
        self.errorEvent = Event()
        self.sent: list[tuple[float, tuple]] = []
        self.violate_every = violate_every
        self.fail_after = fail_after

    async def reqHistoricalDataAsync(self, contract: Contract, endDateTime: dt.datetime, durationStr: str,  # noqa: N802, N803
                                     barSizeSetting: str, **_: Any) -> list[Any]:  # noqa: N803
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("interrupted")  # the connection drops mid-download
        now = self.clock.monotonic()
        key = (contract.conId, endDateTime, durationStr)
        recent = [t for t, _ in self.sent if now - t < 600]
        assert len(recent) < 60, "more than 60 requests in 10 minutes"
        assert all(now - t >= 15 for t, k in self.sent if k == key), "identical request within 15 s"
        self.sent.append((now, key))
        if self.violate_every and len(self.sent) % self.violate_every == 0:
            self.errorEvent.emit(1, 162, "Historical Market Data Service error message:Pacing violation", contract)
            return []
        seconds = int(durationStr.split()[0]) * (86400 if durationStr.endswith("D") else 1)
        step = 60 if barSizeSetting == "1 min" else 86400
        first = endDateTime - dt.timedelta(seconds=seconds)
        return [SimpleNamespace(date=first + dt.timedelta(seconds=step * i), open=1.0, high=2.0, low=0.5,
                                close=1.5, volume=10, average=1.2, barCount=3)
                for i in range(1, seconds // step + 1)]


def _stock(con_id: int = 265598, symbol: str = "AAPL") -> Contract:
    return Contract(conId=con_id, symbol=symbol, secType="STK", exchange="SMART", currency="USD")


END = dt.datetime(2026, 3, 1, tzinfo=UTC)


def test_plan_chunks_covers_range_on_a_fixed_grid() -> None:
    chunks = plan_chunks(END - dt.timedelta(days=3, hours=5), END, "1 min")
    assert all(c.seconds == MAX_CHUNK_SECONDS["1 min"] for c in chunks)
    assert chunks[0].end - dt.timedelta(seconds=chunks[0].seconds) <= END - dt.timedelta(days=3, hours=5)
    assert chunks[-1].end >= END and len(chunks) == 4
    assert chunks[0].duration == "86400 S"
    with pytest.raises(ValueError, match="unknown bar size"):
        plan_chunks(END - dt.timedelta(days=1), END, "7 min")


@run_async
async def test_download_over_60_requests_is_paced_and_completes(tmp_path: Path) -> None:
    clock = FakeClock()
    ib = FakeIB(clock)
    store = BarStore.open(tmp_path)
    dl = HistoryDownloader(ib, store, clock=clock, now=lambda: END)  # type: ignore[arg-type]
    result = await dl.download(_stock(), "1 min", END - dt.timedelta(days=75))
    assert result.chunks_total == 75 and result.requests == 75 and result.pacing_retries == 0
    assert result.bars_new == 75 * 1440 == len(store.read(265598, "1 min"))
    assert clock.t >= 600  # the 61st request had to wait for the 10-minute window
    assert dl.pacer.waited > 0


@run_async
async def test_pacing_violation_162_is_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    ib = FakeIB(clock, violate_every=3)
    dl = HistoryDownloader(ib, BarStore.open(tmp_path), clock=clock, now=lambda: END)  # type: ignore[arg-type]
    result = await dl.download(_stock(), "1 min", END - dt.timedelta(days=6))
    assert result.pacing_retries >= 2
    assert len(BarStore.open(tmp_path).read(265598, "1 min")) == 6 * 1440


@run_async
async def test_interrupted_download_resumes_without_refetching(tmp_path: Path) -> None:
    clock = FakeClock()
    store = BarStore.open(tmp_path)
    with pytest.raises(ConnectionError):
        await HistoryDownloader(FakeIB(clock, fail_after=4), store, clock=clock,  # type: ignore[arg-type]
                                now=lambda: END).download(_stock(), "1 min", END - dt.timedelta(days=10))
    assert len(store.read(265598, "1 min")) == 4 * 1440
    ib = FakeIB(clock)
    result = await HistoryDownloader(ib, store, clock=clock, now=lambda: END).download(  # type: ignore[arg-type]
        _stock(), "1 min", END - dt.timedelta(days=10))
    assert result.chunks_skipped == 4 and len(ib.sent) == 6
    assert len(store.read(265598, "1 min")) == 10 * 1440


@run_async
async def test_pacer_spaces_identical_requests() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    await pacer.acquire(("a",))
    await pacer.acquire(("a",))
    assert clock.t == 15.0
    await pacer.acquire(("b",))
    assert clock.t == 15.0


@run_async
async def test_download_from_simulated_gateway_and_pacing_fault(tmp_path: Path) -> None:
    async with connected(tmp_path) as (gw, ib):
        [contract] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        # 162 beyond two requests per 10 minutes (IB's rule, scaled down): the third chunk request is refused
        # however slow the machine is. The window is real time, so once it has refused one request the fault is
        # lifted (as the window sliding on would) and the downloader's retry must go through.
        gw.faults.history_pacing(2, 600.0)
        allowed = gw.history_allowed

        def lift_after_first_refusal() -> bool:
            ok = allowed()
            if not ok:
                gw.faults.history_pacing(0)
            return ok

        gw.history_allowed = lift_after_first_refusal
        store = BarStore.open(tmp_path / "data")
        dl = HistoryDownloader(ib, store, clock=ShortSleepClock(), now=lambda: START)
        result = await dl.download(contract, "1 hour", START - dt.timedelta(days=70))
        frame = store.read(contract.conId, "1 hour")
        assert result.chunks_total == 3 and result.pacing_retries >= 1
        assert result.bars_new == len(frame) > 100
        assert frame.index.tz is not None and frame.index.max() < START and frame.index.is_unique


@run_async
async def test_unknown_contract_error_is_raised(tmp_path: Path) -> None:
    async with connected(tmp_path) as (_gw, ib):
        dl = HistoryDownloader(ib, BarStore.open(tmp_path / "data"), clock=FakeClock(), now=lambda: START,
                               request_timeout=5)
        with pytest.raises(HistoryDownloadError):
            await dl.download(_stock(999_999_999, "NOPE"), "1 day", START - dt.timedelta(days=5))
