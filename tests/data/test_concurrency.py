"""Several processes writing and reading one state.duckdb at once: nothing lost, nothing fails."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from trader.data.events import EventStore
from trader.data.objects import ObjectStore
from trader.data.store import state_store

N_WRITERS = 4
N_SINGLE = 40  # single appends per writer
BATCH_EVERY, BATCH_SIZE = 10, 15  # + 4 append_many batches of 15 = 100 events per writer
CAS_EVERY = 5  # 8 counter increments per writer
PUT_EVERY = 10  # 4 object puts per writer


def test_concurrent_writers_lose_nothing_and_readers_never_fail(data_dir: Path, tmp_path: Path, workers) -> None:
    store = state_store(data_dir)
    store.schema_version()  # create the file up front so readers have something to open
    go, stop = tmp_path / "go", tmp_path / "stop"
    writers = [
        workers.start(mode="writer", data_dir=str(data_dir), go_file=str(go), proc=i, n_single=N_SINGLE,
                      batch_every=BATCH_EVERY, batch_size=BATCH_SIZE, cas_every=CAS_EVERY, put_every=PUT_EVERY)
        for i in range(N_WRITERS)
    ]
    readers = [workers.start(mode="reader", data_dir=str(data_dir), stop_file=str(stop)) for _ in range(2)]
    for proc in writers + readers:
        workers.expect_line(proc, "ready")
    go.touch()  # every writer starts at the same moment
    results = [workers.result(p) for p in writers]
    stop.touch()
    reads = [workers.result(p) for p in readers]

    # No process saw an error (lock or otherwise).
    assert [r["errors"] for r in results] == [[]] * N_WRITERS
    assert [r["errors"] for r in reads] == [[], []]

    # Every event is present exactly once, with the id its writer was given, in each writer's own order.
    events = EventStore(store).read()
    per_writer = 100
    assert [r["seq"] for r in results] == [per_writer] * N_WRITERS
    assert len(events) == N_WRITERS * per_writer
    assert len({e.id for e in events}) == len(events)
    by_proc: dict[int, list] = defaultdict(list)
    for e in events:
        by_proc[e.payload["proc"]].append(e)
    for r in results:
        mine = by_proc[r["proc"]]
        assert [e.id for e in mine] == r["ids"]  # ids handed out in append order
        assert [e.payload["seq"] for e in mine] == list(range(per_writer))
        assert {e.correlation_id for e in mine} == {f"p{r['proc']}"}
    # Writers really interleaved (the test would prove little if they had run one after another).
    procs_in_id_order = [e.payload["proc"] for e in events]
    switches = sum(a != b for a, b in zip(procs_in_id_order, procs_in_id_order[1:], strict=False))
    assert switches > N_WRITERS

    # The CAS counter counts every successful increment exactly once.
    objects = ObjectStore(store)
    assert objects.get("counter") == sum(r["cas_ok"] for r in results) == N_WRITERS * (N_SINGLE // CAS_EVERY)
    puts_per_writer = len(range(0, N_SINGLE, PUT_EVERY))
    assert len(objects.keys("proc/")) == N_WRITERS * puts_per_writer
    assert objects.get("proc/2/10") == {"proc": 2, "step": 10}

    # Readers kept reading while the writers ran, and never saw the log shrink.
    assert all(r["reads"] > 0 for r in reads)
    assert not any(r["went_down"] for r in reads)
