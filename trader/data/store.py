"""DuckDB access for every MMR process: open–execute–close under an inter-process file lock.

The problem
-----------
trader_service, data_service, strategy_service, the ``mmr`` CLI and cron sweeps all use the same data at
the same time. DuckDB allows ONE read-write process per database file, and a read-only open conflicts with
a writer, so any process that kept a connection open would lock every other one out ("Could not set lock
on file").

The decision
------------
Every access opens the file, does its work and closes it, while holding ``fcntl.flock`` on a sidecar
``<db>.lock`` file:

- **Writers** take ``LOCK_EX`` and open read-write. Closing the connection checkpoints the WAL into the file.
- **Readers** take ``LOCK_SH`` and open ``read_only=True``, so reads run in parallel with each other. This is
  backed by tests (tests/data): several processes hold read-only opens of one file at the same moment, and
  a read-only open after a writer was SIGKILLed mid-session (leaving ``<db>.wal``) works and sees every
  committed row (DuckDB replays the WAL in memory; the next writer checkpoints it).
- **No starvation**: a second sidecar, ``<db>.lock.gate``, is held (``LOCK_EX``) only while a caller waits for
  the main lock. A waiting writer therefore stops new readers from joining a stream of overlapping shared
  locks, and gets the file as soon as the current readers finish.
- **Timeout**: locks are polled with ``LOCK_NB`` and short jittered sleeps for up to ``lock_timeout``
  seconds (default 30), then `trader.errors.StoreLockTimeout` is raised naming the file.
- **Crash safety**: the kernel drops a process's flocks when it dies, so a killed process never wedges the
  others, and committed data survives in the WAL.
- **Belt and braces**: DuckDB's own IO/lock errors while *opening* (e.g. a tool outside MMR has the file
  open) are retried with a short backoff (tenacity). The work inside a block is never retried: it may not
  be idempotent.

Cost (measured with bench/bench_store.py; figures in bench/README.md "## Store"): about 16 ms per read and
22 ms per single append, nearly all of it DuckDB's own connect/close. Batch work into one `connect`/`transaction` block where it matters (e.g.
`EventStore.append_many`).

Two files keep bulk bar traffic away from the audit trail: ``state.duckdb`` (`state_store`) and
``bars.duckdb`` (`bars_store`); the DDL lives in `trader.data.schema`. Each schema is a list of idempotent
statements, applied once per process per file and recorded in the file's ``schema_version`` table.

Conventions
-----------
- Nesting: inside one thread, nested `connect`/`execute`/`transaction` calls on the same file reuse the
  open connection (a nested read sees the block's uncommitted writes; a nested transaction joins the outer
  one). Asking for a write inside a read-only block raises RuntimeError. Different threads each take the
  lock for themselves. Do not fork while inside a block.
- Timestamps: every connection runs with ``TimeZone='UTC'``, so TIMESTAMPTZ values come back as UTC-aware
  datetimes; pass tz-aware datetimes in (`to_utc` rejects naive ones).
- JSON: `json_dumps` turns datetime/date/time into ISO-8601 strings, Decimal, UUID and Path into strings,
  Enum members into ``str(member.value)`` (``(str, Enum)`` members are already strings), sets and tuples
  into lists and dataclass instances into dicts; anything else raises TypeError. NaN/inf floats are kept
  (DuckDB's JSON and Python's json both read them back).

``duckdb``, ``pandas`` and ``tenacity`` are imported lazily, so light callers (the CLI) can import this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from trader.data.schema import (
    BARS_SCHEMA,
    RESEARCH_SCHEMA,
    RESEARCH_TABLES,
    SCHEMA_VERSION_DDL,
    STATE_SCHEMA,
)
from trader.errors import StoreLockTimeout

if TYPE_CHECKING:
    import duckdb
    import pandas
    import pyarrow

log = logging.getLogger(__name__)

UTC = dt.UTC

STATE_DB_NAME = "state.duckdb"
BARS_DB_NAME = "bars.duckdb"
RESEARCH_DB_NAME = "research.duckdb"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Longest single sleep while polling a lock: short enough that a freed lock is picked up quickly
# compared with a ~17 ms access, long enough not to burn a CPU.
_MAX_POLL_SLEEP = 0.005


# --------------------------------------------------------------------------- JSON and time helpers


def json_default(value: Any) -> Any:
    """What `json_dumps` writes for a value JSON has no type for (datetimes ISO-8601, enums as their value, …)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (Decimal, uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON: {value!r}")


def json_dumps(value: Any) -> str:
    """Serialise `value` for a JSON column (see the module docstring for the conversions applied)."""
    return json.dumps(value, default=json_default, separators=(",", ":"))


def json_loads(text: str | None) -> Any:
    """Parse a JSON column value; SQL NULL comes back as None."""
    return None if text is None else json.loads(text)


def utc_now() -> dt.datetime:
    """The current time as a UTC-aware datetime."""
    return dt.datetime.now(UTC)


def to_utc(value: dt.datetime) -> dt.datetime:
    """Convert a tz-aware datetime to UTC; naive datetimes are rejected (their zone is a guess)."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value.isoformat()}: pass a tz-aware (UTC) datetime")
    return value.astimezone(UTC)


def from_db_ts(value: dt.datetime | None) -> dt.datetime | None:
    """Normalise a TIMESTAMPTZ read from DuckDB (UTC, pytz tzinfo) to a datetime with `datetime.UTC`."""
    if value is None:
        return None
    if value.tzinfo is None:  # a plain TIMESTAMP column: values are stored as UTC by convention
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- per-thread / per-process state


@dataclasses.dataclass(slots=True)
class _Held:
    """A connection this thread holds open inside a `connect` block."""

    con: duckdb.DuckDBPyConnection
    write: bool
    in_transaction: bool = False


_local = threading.local()

# (db path, schema digest) pairs whose schema this process has already applied.
_applied_schemas: set[tuple[str, str]] = set()


def _held_map() -> dict[str, _Held]:
    held = getattr(_local, "held", None)
    if held is None:
        held = _local.held = {}
    return held


def _digest(statement: str) -> str:
    # Whitespace-insensitive so re-indenting DDL does not count as a new migration.
    return hashlib.sha256(" ".join(statement.split()).encode()).hexdigest()


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)


# --------------------------------------------------------------------------- the store


class DuckStore:
    """One DuckDB file, opened per access under an inter-process lock (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], schema: Sequence[str] = (), *, lock_timeout: float = 30.0):
        self.path: Path = Path(path).expanduser().resolve()
        self.schema: tuple[str, ...] = tuple(schema)
        self.lock_timeout = float(lock_timeout)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.gate_path = self.path.with_name(self.path.name + ".lock.gate")
        self._key = str(self.path)
        self._schema_digest = hashlib.sha256("\0".join(map(_digest, self.schema)).encode()).hexdigest()

    def __repr__(self) -> str:
        return f"DuckStore({str(self.path)!r}, {len(self.schema)} schema statements)"

    # ----------------------------------------------------------------- locking

    def _acquire(self, fd: int, operation: int, deadline: float, what: str) -> None:
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    exc = StoreLockTimeout(
                        f"could not take the {what} lock on {self.path} within {self.lock_timeout:g} s "
                        f"(lock file {self.lock_path}); another process is holding it"
                    )
                    exc.path = str(self.path)  # type: ignore[attr-defined]
                    raise exc from None
                # Jitter keeps several waiters from polling in lockstep.
                time.sleep(min(delay * (0.5 + random.random()), remaining))
                delay = min(delay * 2, _MAX_POLL_SLEEP)

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the file's lock (exclusive for writers, shared for readers) for the block."""
        deadline = time.monotonic() + self.lock_timeout
        what = "write" if exclusive else "read"
        fd = _open_lock_file(self.lock_path)
        try:
            gate = _open_lock_file(self.gate_path)
            try:
                self._acquire(gate, fcntl.LOCK_EX, deadline, what)
                self._acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline, what)
            finally:
                os.close(gate)  # releases the gate: the next waiter may queue for the main lock
            yield
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    # ----------------------------------------------------------------- opening

    def _open(self, *, write: bool) -> duckdb.DuckDBPyConnection:
        import duckdb

        try:
            con: duckdb.DuckDBPyConnection | None = duckdb.connect(self._key, read_only=not write)
        except duckdb.IOException:
            con = self._open_retrying(write=write)
        assert con is not None
        try:
            con.execute("SET TimeZone = 'UTC'")
        except BaseException:
            con.close()
            raise
        return con

    def _open_retrying(self, *, write: bool) -> duckdb.DuckDBPyConnection:
        # tenacity is imported only when a first open failed (its import costs a CLI start ~0.05–0.4 s).
        import duckdb
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            stop_after_delay,
            wait_exponential_jitter,
        )

        con: duckdb.DuckDBPyConnection | None = None
        for attempt in Retrying(
            retry=retry_if_exception_type(duckdb.IOException),
            stop=stop_after_attempt(6) | stop_after_delay(3.0),
            wait=wait_exponential_jitter(multiplier=0.01, max=0.25, jitter=0.01),
            before_sleep=lambda rs: log.warning("retrying open of %s: %s", self.path, rs.outcome.exception()),
            reraise=True,
        ):
            with attempt:
                con = duckdb.connect(self._key, read_only=not write)
        assert con is not None
        return con

    def _schema_known(self) -> bool:
        return (self._key, self._schema_digest) in _applied_schemas

    def _ensure_schema(self) -> None:
        """Apply this store's schema under the write lock (creates the file and its folder)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(exclusive=True):
            con = self._open(write=True)
            try:
                self._apply_schema(con)
            finally:
                con.close()
        _applied_schemas.add((self._key, self._schema_digest))

    def _schema_ready(self, con: duckdb.DuckDBPyConnection, *, write: bool) -> bool:
        """True once this process knows the file has every schema statement (checked once per process).

        A writer applies what is missing on the spot. A reader only looks, so a process whose first access
        is a read does not queue for the write lock behind (or in front of) other readers.
        """
        if self._schema_known():
            return True
        if write:
            self._apply_schema(con)
        else:
            import duckdb

            try:
                done = {row[0] for row in con.execute("SELECT digest FROM schema_version").fetchall()}
            except duckdb.CatalogException:
                return False
            if not {_digest(statement) for statement in self.schema} <= done:
                return False
        _applied_schemas.add((self._key, self._schema_digest))
        return True

    def _apply_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(SCHEMA_VERSION_DDL)
        done = {row[0] for row in con.execute("SELECT digest FROM schema_version").fetchall()}
        todo: dict[str, str] = {}
        for statement in self.schema:
            digest = _digest(statement)
            if digest not in done:
                todo.setdefault(digest, statement)
        if not todo:
            return
        con.begin()
        try:
            version = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            for digest, statement in todo.items():
                con.execute(statement)
                version += 1
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?, ?)",
                    [version, digest, utc_now(), " ".join(statement.split())],
                )
            con.commit()
        except BaseException:
            con.rollback()
            raise
        log.info("applied %d schema statement(s) to %s (now version %d)", len(todo), self.path, version)

    # ----------------------------------------------------------------- public API

    @contextmanager
    def connect(self, *, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """Lock the file (exclusive if `write`, else shared), open it, yield the connection, close, unlock.

        Each statement autocommits unless you use `transaction`. Nested calls in the same thread reuse
        the open connection; a write inside a read-only block raises RuntimeError.
        """
        held = _held_map()
        outer = held.get(self._key)
        if outer is not None:
            if write and not outer.write:
                raise RuntimeError(f"cannot write to {self.path} inside a read-only connect() block")
            yield outer.con
            return
        if not self._schema_known():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not write and not self.path.exists():
                self._ensure_schema()  # a read-only open needs the file to exist
        for _attempt in range(2):
            with self._locked(exclusive=write):
                con = self._open(write=write)
                try:
                    if self._schema_ready(con, write=write):
                        held[self._key] = _Held(con, write)
                        try:
                            yield con
                        finally:
                            del held[self._key]
                        return
                finally:
                    con.close()
            # A reader found migrations missing: apply them under the write lock, then read again.
            self._ensure_schema()
        raise RuntimeError(f"schema of {self.path} is still incomplete after applying it")  # pragma: no cover

    def lend(self) -> Callable[[], AbstractContextManager[None]]:
        """Lend the connection this thread holds open on this file (inside `connect`) to ONE other thread: returns
        a factory of context managers inside which that thread's store calls use it (its `connect` and
        `transaction` join it, as nested calls do here). The lending thread must not use the store until the
        borrower's block has ended, nor close it before; RuntimeError when this thread holds no connection."""
        held = _held_map().get(self._key)
        if held is None:
            raise RuntimeError(f"no connection to {self.path} held in this thread to lend")

        @contextmanager
        def borrow() -> Iterator[None]:
            mine = _held_map()
            if self._key in mine:
                raise RuntimeError(f"this thread already holds a connection to {self.path}")
            mine[self._key] = held
            try:
                yield
            finally:
                del mine[self._key]

        return borrow

    @contextmanager
    def transaction(self, *, checkpoint: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside BEGIN … COMMIT (ROLLBACK if the block raises), under the write lock.

        A transaction nested in another one on the same file joins it.

        `checkpoint`: the COMMIT is a checkpoint — DuckDB writes the changes straight into the database file
        (compressed) and skips the WAL — instead of appending them to the WAL, which the close then copies into
        the file again. For a large write that a close checkpoints anyway (a sweep's batch of runs: ~12 MB of
        WAL for 1,000 daily runs, written and synced once more than needed). As durable: the commit returns
        once the checkpoint is on disk, and a crash before that leaves the file as it was (nothing committed).
        DuckDB commits through the WAL as usual when it cannot checkpoint at that moment.
        """
        outer = _held_map().get(self._key)
        if outer is not None and outer.in_transaction:
            if not outer.write:  # pragma: no cover - read blocks never start transactions
                raise RuntimeError(f"cannot write to {self.path} inside a read-only connect() block")
            yield outer.con
            return
        with self.connect(write=True) as con:
            entry = _held_map()[self._key]
            con.begin()
            entry.in_transaction = True
            try:
                yield con
            except BaseException:
                try:
                    con.rollback()
                except Exception:  # the original error matters more; the connection is closed next anyway
                    log.exception("rollback failed on %s", self.path)
                raise
            else:
                if checkpoint:
                    # A WAL larger than the threshold is checkpointed at commit, and then not written at all.
                    con.execute("SET checkpoint_threshold = '0b'")
                    try:
                        con.commit()
                    finally:
                        with contextlib.suppress(Exception):  # the connection's later commits: as usual
                            con.execute("RESET checkpoint_threshold")
                else:
                    con.commit()
            finally:
                entry.in_transaction = False

    def execute(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        write: bool = True,
    ) -> list[tuple]:
        """Run one statement (``?`` or ``$name`` parameters) and return its rows (``[]`` if it has none)."""
        with self.connect(write=write) as con:
            cursor = con.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each parameter row, all in a single transaction (one lock, one open)."""
        if not rows:
            return
        with self.transaction() as con:
            con.executemany(sql, rows)

    def fetch_df(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pandas.DataFrame:
        """Run a query under the read lock and return a pandas DataFrame (TIMESTAMPTZ → datetime64[UTC])."""
        with self.connect(write=False) as con:
            relation = con.sql(sql, params=params)
            if relation is None:  # duckdb 1.x: the statement returns no rows
                raise ValueError(f"fetch_df needs a query that returns rows, got: {sql!r}")
            # Through Arrow: DuckDB's own .df() trips pandas deprecation warnings on pandas 3.
            return relation.to_arrow_table().to_pandas()

    def insert_df(self, table: str, frame: pandas.DataFrame | pyarrow.Table, *, on_conflict: str = "error") -> int:
        """Insert a DataFrame's (or an Arrow table's) rows into `table`, matching columns by name; returns the
        number of rows given.

        `on_conflict`: ``"error"`` (a duplicate key raises), ``"ignore"`` (idempotent ingest: duplicates are
        skipped) or ``"replace"`` (duplicates overwrite the stored row).
        """
        if not _IDENTIFIER.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        verb = {"error": "INSERT", "ignore": "INSERT OR IGNORE", "replace": "INSERT OR REPLACE"}.get(on_conflict)
        if verb is None:
            raise ValueError(f"on_conflict must be 'error', 'ignore' or 'replace', not {on_conflict!r}")
        if len(frame) == 0:
            return 0
        with self.connect(write=True) as con:
            con.register("_mmr_insert_frame", frame)
            try:
                with self.transaction():
                    con.execute(f"{verb} INTO {table} BY NAME SELECT * FROM _mmr_insert_frame")
            finally:
                # Harmless if it fails (e.g. inside a caller's aborted transaction): the view dies with the
                # connection.
                with contextlib.suppress(Exception):
                    con.unregister("_mmr_insert_frame")
        return len(frame)

    def schema_version(self) -> int:
        """The number of schema statements recorded in this file."""
        return int(self.execute("SELECT coalesce(max(version), 0) FROM schema_version", write=False)[0][0])


def state_store(data_dir: str | os.PathLike[str], *, lock_timeout: float = 30.0) -> DuckStore:
    """The audit-trail / state database: ``data_dir/state.duckdb`` with `STATE_SCHEMA`."""
    return DuckStore(Path(data_dir) / STATE_DB_NAME, STATE_SCHEMA, lock_timeout=lock_timeout)


def bars_store(data_dir: str | os.PathLike[str], *, lock_timeout: float = 30.0) -> DuckStore:
    """The market-data database: ``data_dir/bars.duckdb`` with `BARS_SCHEMA`."""
    return DuckStore(Path(data_dir) / BARS_DB_NAME, BARS_SCHEMA, lock_timeout=lock_timeout)


def research_store(data_dir: str | os.PathLike[str], *, lock_timeout: float = 30.0) -> DuckStore:
    """Research results (backtests, walk-forwards, validations, sweeps): ``data_dir/research.duckdb`` with
    `RESEARCH_SCHEMA`. Created on first use — with the runs an older MMR kept in state.duckdb."""
    path = Path(data_dir) / RESEARCH_DB_NAME
    if not path.exists():
        _create_research(path, Path(data_dir), lock_timeout)
    return DuckStore(path, RESEARCH_SCHEMA, lock_timeout=lock_timeout)


def _create_research(path: Path, data_dir: Path, lock_timeout: float) -> None:
    # Built under another name and renamed into place, so a crash mid-copy leaves no half-adopted file; the
    # flock makes concurrent first users build it once (a second build would clobber runs saved meanwhile).
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_lock_file(path.with_name(path.name + ".create.lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if path.exists():
            return
        tmp = path.with_name(path.name + ".new")
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        new = DuckStore(tmp, RESEARCH_SCHEMA, lock_timeout=lock_timeout)
        new.schema_version()  # creates the file and its tables
        if (data_dir / STATE_DB_NAME).exists():
            state = state_store(data_dir, lock_timeout=lock_timeout)
            for table in RESEARCH_TABLES:
                try:
                    rows = state.fetch_df(f"SELECT * FROM {table}")
                except duckdb.CatalogException:  # an older state.duckdb without this table
                    continue
                if len(rows):
                    new.insert_df(table, rows)
                    log.info("research.duckdb: adopted %d %s rows from state.duckdb", len(rows), table)
        os.replace(tmp, path)
        for sidecar in (".lock", ".lock.gate"):
            tmp.with_name(tmp.name + sidecar).unlink(missing_ok=True)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def skip_legacy_string_compression(store: DuckStore) -> None:
    """Inside a write: DuckDB skips analysing its older "fsst" and "dictionary" string compressions for it. It
    analyses every method for each string column at each checkpoint and stores with the best; for a sweep's runs
    that is "dict_fsst" for the short texts and "zstd" for 1,000 runs' long trades texts (bench_sweep's store), so
    the other two cost their analysis only: insert + checkpointing commit of 500 daily runs 45 -> 38 ms (medians
    of 7), the same compressions chosen (tests/simulation/test_sweep_writer.py) and the same file size. A DuckDB
    without the setting is left as is."""
    try:
        store.execute("SET disabled_compression_methods = 'fsst,dictionary'")
    except Exception:  # noqa: BLE001 - duckdb.CatalogError/InvalidInputException on a DuckDB without it
        log.debug("DuckDB cannot disable its fsst/dictionary compression; left on", exc_info=True)


def no_checkpoint_vacuum(store: DuckStore) -> None:
    """Inside a write (`DuckStore.transaction`) that only appends: turn off DuckDB's checkpoint vacuum for it.
    The vacuum merges the small row groups each batch appends by reading and rewriting them: with one-minute sweep
    runs (~100 KB each, compressed) a batch's close took 5-10 s and ~2-3.5 GiB in the writer (the 10,500-run
    bench_scale sweep on Dask peaked at 5.3 GiB, 4.2 of it the writer; without the vacuum 3.0 GiB and 1-2 s a
    batch). With nothing deleted there is no space to reclaim; the rows stay in more, smaller row groups. A DuckDB
    without the setting is left as is."""
    try:
        store.execute("SET max_vacuum_tasks = 0")
    except Exception:  # noqa: BLE001 - duckdb.CatalogError on a DuckDB without the setting
        log.debug("DuckDB has no max_vacuum_tasks setting; the checkpoint vacuum stays on", exc_info=True)
