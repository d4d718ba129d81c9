"""DuckStore: schema, execute/fetch_df/transaction, nesting, locking, timeouts and crash recovery."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import fcntl
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from trader.data.events import EventStore
from trader.data.schema import BARS_SCHEMA, STATE_SCHEMA
from trader.data.store import (
    DuckStore,
    bars_store,
    json_dumps,
    json_loads,
    research_store,
    state_store,
    to_utc,
)
from trader.errors import StoreLockTimeout, error_from_wire, error_to_wire

UTC = dt.UTC


def _tables(store: DuckStore) -> set[str]:
    rows = store.execute("SELECT table_name FROM information_schema.tables", write=False)
    return {r[0] for r in rows}


# --------------------------------------------------------------------------- schema


def test_state_and_bars_files_get_their_tables(data_dir: Path) -> None:
    state, bars = state_store(data_dir), bars_store(data_dir)
    assert state.path == (data_dir / "state.duckdb").resolve()
    assert bars.path == (data_dir / "bars.duckdb").resolve()
    assert {"event_store", "proposal_store", "position_groups", "object_store", "schema_version"} <= _tables(state)
    assert {"tick_data", "schema_version", "history_chunks", "bar_symbols"} == _tables(bars)
    assert state.schema_version() == len(STATE_SCHEMA)
    assert bars.schema_version() == len(BARS_SCHEMA)


def test_schema_is_applied_idempotently_and_extended_by_appending(data_dir: Path) -> None:
    path = data_dir / "state.duckdb"
    state_store(data_dir).schema_version()
    # Running the migrations again (as another process would) records nothing new.
    again = DuckStore(path, STATE_SCHEMA)
    with again.connect() as con:
        again._apply_schema(con)
    assert again.schema_version() == len(STATE_SCHEMA)
    # A later issue appends a migration: only that one runs, and existing rows survive.
    EventStore(again).append("kept", {})
    extended = DuckStore(path, (*STATE_SCHEMA, "ALTER TABLE object_store ADD COLUMN IF NOT EXISTS owner VARCHAR"))
    assert extended.schema_version() == len(STATE_SCHEMA) + 1
    cols = {r[0] for r in extended.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'object_store'", write=False)}
    assert "owner" in cols
    assert [e.kind for e in EventStore(extended).read()] == ["kept"]
    versions = extended.execute("SELECT version FROM schema_version ORDER BY version", write=False)
    assert [v for (v,) in versions] == list(range(1, len(STATE_SCHEMA) + 2))


def test_store_creates_missing_data_dir_and_lock_files(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "a" / "b" / "x.duckdb")
    assert store.execute("SELECT 42", write=False) == [(42,)]
    assert store.path.exists() and store.lock_path.exists()
    assert store.lock_path.name == "x.duckdb.lock"


# --------------------------------------------------------------------------- execute / fetch_df / transaction


def test_execute_returns_rows_and_timestamps_are_utc(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "t.duckdb", ["CREATE TABLE IF NOT EXISTS t (i INTEGER, ts TIMESTAMPTZ)"])
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert store.execute("INSERT INTO t VALUES (?, ?)", [1, dt.datetime(2024, 1, 1, 12, tzinfo=plus2)]) == [(1,)]
    assert store.execute("INSERT INTO t VALUES ($i, $ts)", {"i": 2, "ts": dt.datetime(2024, 1, 2, tzinfo=UTC)})
    rows = store.execute("SELECT i, ts FROM t ORDER BY i", write=False)
    assert [r[0] for r in rows] == [1, 2]
    assert rows[0][1] == dt.datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert rows[0][1].utcoffset() == dt.timedelta(0)
    assert store.execute("CREATE TABLE IF NOT EXISTS u (i INTEGER)") == []


def test_fetch_df_returns_a_frame_with_utc_timestamps(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "t.duckdb", ["CREATE TABLE IF NOT EXISTS t (i INTEGER, ts TIMESTAMPTZ)"])
    store.execute("INSERT INTO t VALUES (1, '2024-01-01 00:00:00+00'), (2, '2024-01-02 00:00:00+00')")
    df = store.fetch_df("SELECT * FROM t WHERE i >= ? ORDER BY i", [1])
    assert isinstance(df, pd.DataFrame)
    assert list(df["i"]) == [1, 2]
    assert str(df["ts"].dt.tz) == "UTC"
    assert store.fetch_df("SELECT * FROM t WHERE i > 5").empty


def test_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "t.duckdb", ["CREATE TABLE IF NOT EXISTS t (i INTEGER PRIMARY KEY)"])
    with store.transaction() as con:
        con.execute("INSERT INTO t VALUES (1)")
        con.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction() as con:
            con.execute("INSERT INTO t VALUES (3)")
            raise RuntimeError("boom")
    with pytest.raises(duckdb.ConstraintException):
        with store.transaction() as con:
            con.execute("INSERT INTO t VALUES (4)")
            con.execute("INSERT INTO t VALUES (1)")  # duplicate key: the whole block is undone
    assert store.execute("SELECT i FROM t ORDER BY i", write=False) == [(1,), (2,)]


def test_a_checkpointing_commit_writes_the_file_not_the_wal(tmp_path: Path) -> None:
    """transaction(checkpoint=True): the rows go straight into the database file (no WAL to copy again at the
    close), a block that raises still rolls back, and the connection's next commits use the WAL as before."""
    store = DuckStore(tmp_path / "t.duckdb", ["CREATE TABLE IF NOT EXISTS t (i INTEGER PRIMARY KEY, s VARCHAR)"])
    wal = store.path.with_name(store.path.name + ".wal")
    text = "x" * 10_000
    with store.connect(write=True) as con:  # held open, as a sweep's short last write holds it
        with store.transaction(checkpoint=True) as tx:
            tx.execute("INSERT INTO t SELECT range, ? FROM range(1000)", [text])
        assert not wal.exists() or wal.stat().st_size < 1000, "the 10 MB of rows went through the WAL"
        with pytest.raises(RuntimeError, match="boom"), store.transaction(checkpoint=True) as tx:
            tx.execute("INSERT INTO t VALUES (1000, 'y')")
            raise RuntimeError("boom")
        assert con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0] != "0 bytes"
        with store.transaction() as tx:  # a later write of the same connection: into the WAL, as usual
            tx.execute("INSERT INTO t VALUES (1001, 'z')")
        assert wal.exists() and wal.stat().st_size > 0
    reader = DuckStore(store.path, store.schema)
    assert reader.execute("SELECT count(*), count(DISTINCT s), max(i) FROM t", write=False) == [(1001, 2, 1001)]


def test_nested_calls_reuse_the_connection(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "t.duckdb", ["CREATE TABLE IF NOT EXISTS t (i INTEGER)"])
    with pytest.raises(RuntimeError, match="abort"):
        with store.transaction():
            store.execute("INSERT INTO t VALUES (1)")
            # A nested read sees the uncommitted row; a nested transaction joins the outer one.
            assert store.execute("SELECT count(*) FROM t", write=False) == [(1,)]
            with store.transaction() as inner:
                inner.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("abort")
    assert store.execute("SELECT count(*) FROM t", write=False) == [(0,)]
    with store.connect(write=False):
        with pytest.raises(RuntimeError, match="read-only"):
            store.execute("INSERT INTO t VALUES (3)")


def test_executemany_and_insert_df(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "kv.duckdb", ("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v DOUBLE)",))
    store.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", [(i, 100.0 + i) for i in range(3)])
    frame = pd.DataFrame({"k": [0, 1, 2, 3], "v": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(duckdb.ConstraintException):
        store.insert_df("kv", frame)
    assert store.insert_df("kv", frame, on_conflict="ignore") == 4
    values = [v for (v,) in store.execute("SELECT v FROM kv ORDER BY k", write=False)]
    assert values == [100.0, 101.0, 102.0, 4.0]
    store.insert_df("kv", frame, on_conflict="replace")
    values = [v for (v,) in store.execute("SELECT v FROM kv ORDER BY k", write=False)]
    assert values == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="table name"):
        store.insert_df("kv; DROP TABLE kv", frame)


def test_insert_df_takes_an_arrow_table(tmp_path: Path) -> None:
    """A sweep writes its runs as an Arrow table: columns by name, timestamps with their zone, bytes, NULLs."""
    import datetime as dt

    import pyarrow as pa

    store = DuckStore(tmp_path / "t.duckdb", ("CREATE TABLE IF NOT EXISTS t (id VARCHAR PRIMARY KEY, "
                                              "stamp TIMESTAMPTZ, blob BLOB, note VARCHAR, x DOUBLE)",))
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    table = pa.table({"x": [1.5, 2.0], "id": ["a", "b"], "stamp": [at, at], "blob": [b"\x00\x01", None],
                      "note": [None, None]})
    assert store.insert_df("t", table) == 2
    assert store.insert_df("t", pa.table({"id": pa.array([], pa.string())})) == 0
    rows = store.execute("SELECT id, stamp, blob, note, x FROM t ORDER BY id", write=False)
    assert rows == [("a", at, b"\x00\x01", None, 1.5), ("b", at, None, None, 2.0)]
    with pytest.raises(duckdb.ConstraintException):
        store.insert_df("t", table)


def test_bars_migration_drops_the_tick_data_primary_key_and_keeps_every_bar(tmp_path: Path) -> None:
    from trader.data.bars import BarStore
    from trader.data.schema import TICK_DATA_DDL

    path = tmp_path / "bars.duckdb"
    old = DuckStore(path, TICK_DATA_DDL)  # a bars.duckdb made before the migration
    row = [265598, "1 day", dt.datetime(2024, 1, 2, tzinfo=UTC), "ib", 1, 2, 0.5, 1.5, 1000, 1.2, 10]
    old.execute("INSERT INTO tick_data VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    with pytest.raises(duckdb.ConstraintException):
        old.execute("INSERT INTO tick_data VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    store = BarStore(bars_store(tmp_path))
    bars = store.read(265598, "1 day")
    assert len(bars) == 1 and bars["close"].iloc[0] == 1.5  # the old bar survived the copy
    # BarStore keeps the key now: ingesting the same bar again stores nothing new.
    again = pd.DataFrame({"open": [9.0], "high": [9.0], "low": [9.0], "close": [9.0], "volume": [1.0]},
                         index=pd.DatetimeIndex([row[2]], name="ts"))
    assert store.ingest(265598, "1 day", "ib", again) == 0
    assert store.ingest(265598, "1 day", "polygon", again) == 1  # another source is another bar
    assert store.store.execute("SELECT count(*) FROM tick_data", write=False) == [(2,)]


# --------------------------------------------------------------------------- JSON / time helpers


class Side(enum.Enum):
    BUY = "BUY"


class Level(enum.Enum):
    HIGH = 3


@dataclass(frozen=True, slots=True)
class Point:
    x: int


def test_json_dumps_converts_documented_types() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    uid = uuid.UUID(int=1)
    value = {"when": when, "day": when.date(), "px": decimal.Decimal("1.10"), "side": Side.BUY,
             "level": Level.HIGH, "id": uid, "path": Path("/x"), "tags": {"a"}, "pair": (1, 2),
             "pt": Point(3), "nan": float("nan")}
    back = json_loads(json_dumps(value))
    assert back["when"] == "2024-01-02T03:04:05+00:00" and back["day"] == "2024-01-02"
    assert back["px"] == "1.10" and back["side"] == "BUY" and back["level"] == "3"
    assert back["id"] == str(uid) and back["path"] == "/x" and back["tags"] == ["a"]
    assert back["pair"] == [1, 2] and back["pt"] == {"x": 3} and back["nan"] != back["nan"]
    assert json_loads(None) is None
    with pytest.raises(TypeError, match="object"):
        json_dumps({"x": object()})


def test_to_utc_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_utc(dt.datetime(2024, 1, 1))
    assert to_utc(dt.datetime(2024, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == dt.datetime(
        2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- locking


def test_lock_timeout_names_the_file_and_crosses_the_wire(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "busy.duckdb", lock_timeout=0.2)
    store.execute("SELECT 1")
    # flock conflicts between separate opens even inside one process, so this stands in for another process.
    fd = os.open(store.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(StoreLockTimeout, match="busy.duckdb") as info:
            store.execute("SELECT 1", write=False)
        assert info.value.path == str(store.path)
        assert "read lock" in str(info.value)
        rebuilt = error_from_wire(error_to_wire(info.value))
        assert isinstance(rebuilt, StoreLockTimeout) and str(store.path) in str(rebuilt)
        fcntl.flock(fd, fcntl.LOCK_SH)  # a reader: other reads pass, writes time out
        assert store.execute("SELECT 1", write=False) == [(1,)]
        with pytest.raises(StoreLockTimeout, match="write lock"):
            store.execute("SELECT 1")
    finally:
        os.close(fd)
    assert store.execute("SELECT 1") == [(1,)]


def test_threads_in_one_process_take_turns(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "t.duckdb", ["CREATE TABLE IF NOT EXISTS t (thread INTEGER, i INTEGER)"])
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                store.execute("INSERT INTO t VALUES (?, ?)", [n, i])
                store.execute("SELECT count(*) FROM t", write=False)
        except BaseException as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert store.execute("SELECT thread, count(*) FROM t GROUP BY thread ORDER BY thread", write=False) == [
        (0, 10), (1, 10), (2, 10)]


def test_sigkilled_lock_holder_does_not_wedge_others_and_its_wal_is_readable(data_dir: Path, workers) -> None:
    store = state_store(data_dir, lock_timeout=0.3)
    store.schema_version()
    holder = workers.start(mode="hold", data_dir=str(data_dir))
    workers.expect_line(holder, "locked")
    with pytest.raises(StoreLockTimeout):  # it really holds the lock
        store.execute("SELECT 1", write=False)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert holder.returncode == -signal.SIGKILL
    wal = store.path.with_name(store.path.name + ".wal")
    assert wal.exists(), "the killed writer should have left its WAL behind"
    # A read-only open replays the WAL: the committed event is there...
    events = EventStore(store)
    assert [e.kind for e in events.read()] == ["before_crash"]
    # ...and the next writer checkpoints it.
    events.append("after_crash", {})
    assert [e.kind for e in events.read()] == ["before_crash", "after_crash"]
    assert not wal.exists()


def test_several_processes_hold_read_only_opens_at_once(data_dir: Path, workers, tmp_path: Path) -> None:
    EventStore(state_store(data_dir)).append("x", {})
    markers = tmp_path / "markers"
    markers.mkdir()
    n = 3
    readers = [workers.start(mode="read_barrier", data_dir=str(data_dir), marker_dir=str(markers), n=n, proc=i)
               for i in range(n)]
    # Each reader waits inside its read-only block until all have opened: serialised readers would time out.
    assert [workers.result(p)["count"] for p in readers] == [1] * n


def test_a_waiting_writer_is_not_starved_by_new_readers(tmp_path: Path) -> None:
    store = DuckStore(tmp_path / "t.duckdb", ["CREATE TABLE IF NOT EXISTS t (i INTEGER)"], lock_timeout=10)
    store.execute("SELECT 1")
    reader_fd = os.open(store.lock_path, os.O_RDWR)  # stands in for a reader that is mid-read
    fcntl.flock(reader_fd, fcntl.LOCK_SH)
    writer = threading.Thread(target=store.execute, args=("INSERT INTO t VALUES (1)",))
    writer.start()
    try:
        probe = os.open(store.gate_path, os.O_RDWR)
        try:  # wait until the writer is queued (it holds the gate while it waits for the readers)
            deadline = time.monotonic() + 10
            while True:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(probe, fcntl.LOCK_UN)
                except BlockingIOError:
                    break
                assert time.monotonic() < deadline and writer.is_alive(), "the writer never queued"
                time.sleep(0.001)
        finally:
            os.close(probe)
        latecomer = DuckStore(store.path, store.schema, lock_timeout=0.2)
        with pytest.raises(StoreLockTimeout):  # a new reader queues behind the writer...
            latecomer.execute("SELECT count(*) FROM t", write=False)
    finally:
        os.close(reader_fd)  # ...and the writer goes as soon as the current reader is done
        writer.join(30)
    assert store.execute("SELECT count(*) FROM t", write=False) == [(1,)]


def test_research_store_adopts_backtest_runs_an_older_mmr_kept_in_state_duckdb(tmp_path: Path) -> None:
    from trader.simulation.backtester import Costs, run_backtest
    from trader.simulation.data import sim_bars
    from trader.simulation.store import list_runs, save_run
    from trader.strategy.api import Strategy

    class Flat(Strategy):
        def signals(self, df):
            return pd.Series(1.0, index=df.index)

    result = run_backtest(Flat(), sim_bars(265598, 60))
    scratch = research_store(tmp_path / "scratch")
    run_id = save_run(scratch, result, strategy="x.py", class_name="Flat", source_hash="h", params={},
                      conids=[265598], bar_size="1 day", costs=Costs())
    # The row as an older MMR stored it: in state.duckdb, without the sweep and provenance/coverage columns.
    row = scratch.fetch_df("SELECT * EXCLUDE (sweep_id, sweep_job, combo_key, provenance, coverage, execution, moments, "
                           "equity_v, equity_seg, trades_z) "
                           "FROM backtest_runs")
    state_store(tmp_path).insert_df("backtest_runs", row)
    research = research_store(tmp_path)
    assert [r["id"] for r in list_runs(research)] == [run_id]
    assert (tmp_path / "research.duckdb").exists() and not (tmp_path / "research.duckdb.new").exists()
    # Adopted once: opening it again (or saving new runs) never copies the old rows a second time.
    again = research_store(tmp_path)
    assert again.execute("SELECT count(*) FROM backtest_runs", write=False) == [(1,)]
    fresh = research_store(tmp_path / "new_install")
    assert fresh.execute("SELECT count(*) FROM sweeps", write=False) == [(0,)]
