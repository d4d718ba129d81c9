"""A started service settles its heap: start-up objects leave the cyclic GC's scans, full collections get rarer."""
from __future__ import annotations

import asyncio
import gc

from trader.service import GC_THRESHOLDS, IdleCollector, settle_heap


def test_settle_heap_freezes_what_exists_and_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    keep = [[i] for i in range(1000)]  # start-up objects
    try:
        settle_heap()
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[2] > 10  # full collections rarer
        assert gc.get_freeze_count() >= len(keep)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class _Fake:
    def __init__(self) -> None:
        self.now, self.last, self.busy, self.young = 10.0, 0.0, False, 0
        self.collected = 0

    def collect(self) -> None:
        self.collected += 1
        self.young = 0  # a full collection resets the count of young ones


def _collector(f: _Fake) -> IdleCollector:
    return IdleCollector(lambda: f.busy, lambda: f.last, quiet=0.3, clock=lambda: f.now,
                         counts=lambda: (0, 0, f.young), collect=f.collect)


def test_the_full_collection_runs_when_due_and_quiet_only() -> None:
    f = _Fake()
    c = _collector(f)
    assert not c.tick() and f.collected == 0  # nothing due
    f.young = GC_THRESHOLDS[2] // 2
    f.busy = True
    assert not c.tick()  # a request is running
    f.busy, f.last = False, f.now - 0.1
    assert not c.tick()  # one just arrived: not quiet yet
    f.now += 0.5
    assert c.tick() and f.collected == 1 and c.collections == 1
    assert not c.tick()  # done: not due again until the young collections build up


def test_the_collector_loop_collects_once_due_and_stops_when_cancelled() -> None:
    """The loop every service runs (`Service.run`)."""
    f = _Fake()
    f.young = GC_THRESHOLDS[2]
    c = IdleCollector(lambda: f.busy, lambda: f.last, quiet=0.0, every=0.01, clock=lambda: f.now,
                      counts=lambda: (0, 0, f.young), collect=f.collect)

    async def main() -> bool:
        task = asyncio.get_running_loop().create_task(c.run())
        for _ in range(200):
            await asyncio.sleep(0.01)
            if f.collected:
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task.cancelled()

    assert asyncio.run(main())
    assert f.collected == 1


def test_latency_summary_of_a_status() -> None:
    """The median, p99 and count a service's status reports of recent durations (None before the first)."""
    from trader.service import latency_summary

    assert latency_summary([]) is None
    assert latency_summary([5.0]) == {"median": 5.0, "p99": 5.0, "n": 1}
    values = [float(x) for x in range(200, 0, -1)]  # 1 … 200, unsorted
    assert latency_summary(values) == {"median": 101.0, "p99": 199.0, "n": 200}
    assert latency_summary([1.04, 2.06, 3.0]) == {"median": 2.1, "p99": 3.0, "n": 3}
