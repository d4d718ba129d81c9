"""Child process for the multi-process store tests: ``python _store_worker.py '<json config>'``.

Run as a plain script (not multiprocessing) so nothing is pickled and each child is a fresh interpreter,
like the real services. The last stdout line is a JSON result; "ready"/"locked" lines come before it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from trader.data.events import EventStore
from trader.data.objects import ObjectStore
from trader.data.store import state_store


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.002)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def writer(cfg: dict) -> dict:
    """Append events (single and batched), put objects and CAS-increment a shared counter."""
    store = state_store(cfg["data_dir"])
    events, objects = EventStore(store), ObjectStore(store)
    proc = cfg["proc"]
    errors: list[str] = []
    ids: list[int] = []
    cas_ok = cas_failed = 0
    seq = 0
    store.schema_version()  # open once before the start line so every child starts at the same moment
    _say("ready")
    _wait_for(Path(cfg["go_file"]))
    for step in range(cfg["n_single"]):
        try:
            ids.append(events.append("work", {"proc": proc, "seq": seq}, correlation_id=f"p{proc}",
                                     source="writer"))
            seq += 1
            if step % cfg["batch_every"] == 0 and cfg["batch_size"]:
                batch = [("work", {"proc": proc, "seq": seq + i}, f"p{proc}", "writer")
                         for i in range(cfg["batch_size"])]
                ids.extend(events.append_many(batch))
                seq += cfg["batch_size"]
            if step % cfg["cas_every"] == 0:
                while True:  # increment the shared counter by exactly one
                    current = objects.get("counter", 0)
                    if objects.compare_and_set("counter", None if current == 0 else current, current + 1):
                        cas_ok += 1
                        break
                    cas_failed += 1
            if step % cfg["put_every"] == 0:
                objects.put(f"proc/{proc}/{step}", {"proc": proc, "step": step}, kind="test")
        except Exception as exc:  # recorded, not raised: the parent asserts there were none
            errors.append(f"{type(exc).__name__}: {exc}")
    return {"proc": proc, "ids": ids, "seq": seq, "cas_ok": cas_ok, "cas_failed": cas_failed, "errors": errors}


def reader(cfg: dict) -> dict:
    """Read in a loop until the stop file appears; the event count must never go down."""
    store = state_store(cfg["data_dir"])
    events, objects = EventStore(store), ObjectStore(store)
    errors: list[str] = []
    reads = 0
    last_count = 0
    went_down = False
    store.schema_version()
    _say("ready")
    stop = Path(cfg["stop_file"])
    while not stop.exists():
        try:
            count = events.count()
            went_down |= count < last_count
            last_count = count
            events.read(since_id=max(0, count - 20))
            objects.get("counter", 0)
            store.fetch_df("SELECT kind, count(*) AS n FROM event_store GROUP BY kind")
            reads += 4
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return {"reads": reads, "errors": errors, "went_down": went_down, "last_count": last_count}


def hold(cfg: dict) -> dict:
    """Append an event and keep the write lock (connection open, WAL not checkpointed) until killed."""
    store = state_store(cfg["data_dir"])
    with store.connect(write=True):
        EventStore(store).append("before_crash", {"pid": os.getpid()})
        _say("locked")
        time.sleep(600)
    return {}


def read_barrier(cfg: dict) -> dict:
    """Hold a read-only open while waiting until every other reader has one open too."""
    store = state_store(cfg["data_dir"])
    markers = Path(cfg["marker_dir"])
    with store.connect(write=False) as con:
        (markers / str(cfg["proc"])).touch()
        deadline = time.monotonic() + 20
        while len(list(markers.iterdir())) < cfg["n"]:
            if time.monotonic() > deadline:
                raise TimeoutError("the other readers never opened the file at the same time")
            time.sleep(0.002)
        count = con.execute("SELECT count(*) FROM event_store").fetchone()[0]
    return {"count": count}


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    result = {"writer": writer, "reader": reader, "hold": hold, "read_barrier": read_barrier}[config["mode"]](config)
    _say(json.dumps(result))
