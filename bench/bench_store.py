"""Store benchmark: ms per access of the open–execute–close DuckDB layer (trader/data/store.py).

Single process: EventStore.append, append_many(100), reads (read last 100, count, ObjectStore.get) and the
bare lock+open+close floor. Contended: 4 writer processes appending at once, and one writer appending
while 3 reader processes read in a tight loop (shows the gate keeps writers from starving).

With ``--bars N`` instead: the bar store against its floors, side by side in one run (median of 5, alternating):
ingest of N new one-minute bars (`BarStore.ingest`: lock, open, overlap check, insert, commit, close) against
raw DuckDB doing the same write (open, ``INSERT … SELECT`` of the same DataFrame, close); re-ingest of the same
N (all duplicates, the idempotent path); read of the N bars of one symbol (`BarStore.read` → DataFrame with a
UTC index) against raw DuckDB (open, ``SELECT … ORDER BY ts`` fetched as an Arrow table, close), 10 other
symbols stored beside it.

    .venv/bin/python bench/bench_store.py [--n 100] [--bars 1000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trader.data.events import EventStore
from trader.data.objects import ObjectStore
from trader.data.store import state_store


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Milliseconds per call for `n` calls."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(label: str, ms: list[float], per: int = 1) -> None:
    med = statistics.median(ms)
    extra = f"   ({med / per * 1000:,.0f} µs per event)" if per > 1 else ""
    print(f"{label:<44} median {med:7.2f} ms   p90 {sorted(ms)[int(len(ms) * 0.9)]:7.2f} ms{extra}")


def child(cfg: dict) -> None:
    """Worker process: append (recording each latency) or read until the stop file appears."""
    store = state_store(cfg["data_dir"])
    events = EventStore(store)
    store.schema_version()
    print("ready", flush=True)
    go = Path(cfg["go"])
    while not go.exists():
        time.sleep(0.001)
    if cfg["mode"] == "append":
        lat = timed(lambda: events.append("bench", {"x": 1}), cfg["n"])
        print(json.dumps(lat), flush=True)
    else:
        stop, reads = Path(cfg["stop"]), 0
        while not stop.exists():
            events.read(limit=10)
            reads += 1
        print(json.dumps(reads), flush=True)


def spawn(cfg: dict) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(cfg)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def contended(data_dir: Path, tmp: Path, n_writers: int, n_readers: int, n: int) -> tuple[list[float], float, int]:
    """Run writers (n appends each) and readers together; return writer latencies, wall s, total reads."""
    go, stop = tmp / f"go{n_writers}{n_readers}", tmp / f"stop{n_writers}{n_readers}"
    base = {"data_dir": str(data_dir), "go": str(go), "stop": str(stop), "n": n}
    writers = [spawn({**base, "mode": "append"}) for _ in range(n_writers)]
    readers = [spawn({**base, "mode": "read"}) for _ in range(n_readers)]
    t = time.perf_counter()
    go.touch()
    lat = [x for p in writers for x in json.loads(p.communicate(timeout=300)[0].splitlines()[-1])]
    wall = time.perf_counter() - t
    stop.touch()
    reads = sum(json.loads(p.communicate(timeout=60)[0].splitlines()[-1]) for p in readers)
    return lat, wall, reads


def _bar_frame(n: int, start: str = "2020-01-01"):
    import numpy as np
    import pandas as pd

    index = pd.date_range(start, periods=n, freq="min", tz="UTC", name="ts")
    price = 100 + np.cumsum(np.random.default_rng(1).normal(0, 0.05, n))
    return pd.DataFrame({"open": price, "high": price + 0.1, "low": price - 0.1, "close": price,
                         "volume": 1000.0, "vwap": price, "bar_count": 10}, index=index)


def bars_vs_floor(n: int, repeats: int = 5) -> None:
    """`BarStore` ingest/re-ingest/read against raw DuckDB on the same data (see the module docstring)."""
    import os

    import duckdb
    import pandas as pd

    from trader.data.bars import BAR_COLUMNS, BarStore

    frame = _bar_frame(n)
    raw = pd.DataFrame({c: v.to_numpy() for c, v in frame.reset_index().items()})
    cols = ", ".join(BAR_COLUMNS)
    ingest, floor, dups, reads, arrow = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for r in range(repeats):
            store = BarStore.open(tmp / f"mmr{r}")
            t = time.perf_counter()
            store.ingest(1, "1 min", "ib", frame)
            ingest.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert store.ingest(1, "1 min", "ib", frame) == 0
            dups.append(time.perf_counter() - t)
            BarStore.open(tmp / f"raw{r}").store.schema_version()  # the same table, created by MMR's schema
            t = time.perf_counter()  # a whole raw write: open, INSERT … SELECT, close (durable on disk)
            con = duckdb.connect(str(tmp / f"raw{r}" / "bars.duckdb"))
            con.register("df", raw)  # its best input: one contiguous array per column
            con.execute(f"INSERT INTO tick_data SELECT 1, '1 min', ts, 'ib', {cols} FROM df")
            con.close()
            floor.append(time.perf_counter() - t)
        store = BarStore.open(tmp / "mmr0")
        for conid in range(2, 12):
            store.ingest(conid, "1 min", "ib", _bar_frame(100_000))
        sql = (f"SELECT ts, {cols}, source FROM tick_data WHERE conid = ? AND bar_size = ? ORDER BY ts")
        for _ in range(repeats):
            t = time.perf_counter()
            got = store.read(1, "1 min")
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()  # a whole raw read: open, query, fetch as Arrow, close
            con = duckdb.connect(str(tmp / "mmr0" / "bars.duckdb"), read_only=True)
            table = con.sql(sql, params=[1, "1 min"]).to_arrow_table()
            con.close()
            arrow.append(time.perf_counter() - t)
        assert len(got) == table.num_rows == n
    med = statistics.median
    print(f"bar store, {n:,} one-minute bars, median of {repeats}, load average {os.getloadavg()[0]:.1f}:")
    print(f"  ingest new       {med(ingest):.3f} s ({n / med(ingest) / 1e6:.2f}M bars/s)   raw open + INSERT … SELECT + close "
          f"{med(floor):.3f} s   ratio {med(ingest) / med(floor):.2f}x (target <= 1.3x)")
    print(f"  re-ingest dups   {med(dups):.3f} s ({n / med(dups) / 1e6:.2f}M bars/s, target >= 5M)")
    print(f"  read one symbol  {med(reads):.3f} s   raw open + query → Arrow + close {med(arrow):.3f} s   ratio "
          f"{med(reads) / med(arrow):.2f}x (target <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100, help="calls per single-process measurement")
    parser.add_argument("--bars", type=int, default=0, help="bar store against raw DuckDB with this many bars")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.bars:
        bars_vs_floor(args.bars)
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = state_store(tmp / "data")
        events, objects = EventStore(store), ObjectStore(store)
        store.schema_version()
        objects.put("k", {"a": 1})
        batch = [("bench", {"i": i, "symbol": "AMD"}, None, "bench") for i in range(100)]
        print("single process")
        row("lock + open/close, read (SELECT 1)", timed(lambda: store.execute("SELECT 1", write=False), args.n))
        row("lock + open/close, write (SELECT 1)", timed(lambda: store.execute("SELECT 1"), args.n))
        row("EventStore.append", timed(lambda: events.append("bench", {"i": 1}, correlation_id="c"), args.n))
        row("EventStore.append_many(100)", timed(lambda: events.append_many(batch), max(10, args.n // 5)), 100)
        print(f"  (log now holds {events.count():,} events)")
        last = events.last_id()
        row("EventStore.read(since_id=last-100): 100 rows", timed(lambda: events.read(since_id=last - 100), args.n))
        row("EventStore.count()", timed(events.count, args.n))
        row("ObjectStore.get", timed(lambda: objects.get("k"), args.n))
        row("ObjectStore.compare_and_set", timed(lambda: objects.compare_and_set("k", {"a": 1}, {"a": 1}), args.n))

        print("contended (separate processes)")
        lat, wall, _ = contended(tmp / "data", tmp, 4, 0, 50)
        row("4 writers x 50 appends: append latency", lat)
        print(f"{'':<44} {wall:.2f} s wall, {wall * 1000 / len(lat):.1f} ms per append overall")
        lat, wall, reads = contended(tmp / "data", tmp, 1, 3, 50)
        row("1 writer + 3 busy readers: append latency", lat)
        print(f"{'':<44} max {max(lat):.1f} ms; readers did {reads:,} reads in {wall:.2f} s "
              f"({wall * 1000 * 3 / max(reads, 1):.1f} ms per read per reader)")


if __name__ == "__main__":
    main()
