"""The proposals' write-ahead journal: a proposal is *stored* once it is in this fsync'd SQLite file.

Why
---
`DuckStore` opens, works in and closes (checkpoints) ``state.duckdb`` per access, by design (one read-write
DuckDB process at a time; the CLI reads the same file). That costs ~20 ms plus a checkpoint per access — too
slow for a bar close's proposals (issue 15: bar close → proposals stored, p99 ≤ 50 ms). So new proposals go to
``<db>.proposals.sqlite`` (SQLite in WAL mode, ``synchronous=FULL``: one fsync per commit) and are copied into
``proposal_store`` later by `flush`, in one DuckDB transaction.

Invariants
----------
- **Durable**: `append` returns after the SQLite commit (fsync'd WAL). kill -9 at any point loses nothing.
- **Ids and request ids are allocated here**, under SQLite's write lock (``BEGIN IMMEDIATE``, across processes):
  ``meta.next_id`` and the ``request_ids`` table (every request id ever stored → its proposal id). When the
  journal is created they are seeded from ``proposal_store`` (its max id and request ids), in the same
  transaction, so a request id stored before the journal existed is still answered with its first proposal.
- **Exactly once**: `flush` inserts only the journaled ids ``proposal_store`` does not hold yet, commits, and
  only then deletes them from ``pending``. A crash between the two leaves rows that the next flush skips.
  A flushed row is never touched again by the journal, so a compare-and-set on it cannot be undone.
- **Readers see unflushed proposals**: `ProposalStore` flushes before every read and compare-and-set (a
  cheap SQLite look when nothing is pending). Lock order: a flush holds DuckDB's write lock and only *reads*
  SQLite (WAL readers never wait for a writer); it deletes from SQLite after releasing DuckDB.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from trader.data.store import json_default, json_loads

if TYPE_CHECKING:
    from trader.data.store import DuckStore
    from trader.trading.proposals import Proposal

JOURNAL_SUFFIX = ".proposals.sqlite"


def _enc_hook(value: Any) -> Any:
    """What msgspec does not write itself: a float subclass (numpy's float64, which json.dumps took as a float)
    or another numpy scalar as its Python value; the rest as `store.json_dumps` converts it."""
    if isinstance(value, float):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    return json_default(value)


# A journaled proposal's text (`proposal_to_dict`, JSON-safe already): msgspec writes it ~7x faster than json.dumps
# (a bar close journals dozens while its caller waits). Read back with json.loads; a non-finite number would be
# written as null (valid JSON), where json.dumps wrote NaN.
_encode = msgspec.json.Encoder(enc_hook=_enc_hook).encode

_DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS request_ids (request_id TEXT PRIMARY KEY, id INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY, detail TEXT NOT NULL)",
)


def journal_path(store: DuckStore) -> Path:
    """Where the journal of ``store``'s proposals lives: next to the DuckDB file."""
    return store.path.with_name(store.path.name + JOURNAL_SUFFIX)


class ProposalJournal:
    """New proposals, durable before they reach ``proposal_store`` (see the module docstring)."""

    def __init__(self, store: DuckStore) -> None:
        self.store = store
        self.path = journal_path(store)
        # The writer's connection stays open: closing the last connection to a WAL database checkpoints it
        # (~2-3 ms per bar close's batch). One writer at a time in this process; other processes have their own.
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._inode = 0

    # ------------------------------------------------------------------ connections
    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        if not create and not self.path.exists():
            return None
        uri = f"file:{self.path}?mode={'rwc' if create else 'rw'}"
        con = sqlite3.connect(uri, uri=True, timeout=self.store.lock_timeout, isolation_level=None,
                              check_same_thread=False)
        try:
            con.execute("PRAGMA synchronous=FULL")  # WAL + FULL: the WAL is fsync'd at every commit
            if create:
                con.execute("PRAGMA journal_mode=WAL")  # persistent; a no-op once set
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The journal under SQLite's write lock (BEGIN IMMEDIATE), created and seeded on first use."""
        with self._lock:
            con = self._writer()
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    self._seed(con)
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            except sqlite3.Error:  # e.g. an I/O error: the next write starts from a fresh connection
                self.close()
                raise

    def _writer(self) -> sqlite3.Connection:
        """The open writer connection; a new one when there is none or the file was replaced (another inode)."""
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            inode = 0
        if self._con is not None and inode != self._inode:
            self.close()
        if self._con is None:
            con = self._connect(create=True)
            assert con is not None
            self._con, self._inode = con, self.path.stat().st_ino
        return self._con

    def _current(self) -> bool:
        """True when the writer's connection is on the file at `path` now (not one replaced since it opened)."""
        try:
            return self.path.stat().st_ino == self._inode
        except FileNotFoundError:
            return False

    def close(self) -> None:
        """Close the writer connection (the next write opens one again)."""
        con, self._con = self._con, None
        if con is not None:
            con.close()

    def _seed(self, con: sqlite3.Connection) -> None:
        for ddl in _DDL:
            con.execute(ddl)
        if con.execute("SELECT 1 FROM meta WHERE key = 'seeded'").fetchone():
            return
        # The first journal for this file: take over DuckDB's ids and request ids (in this transaction).
        with self.store.connect(write=False) as duck:
            (top,) = duck.execute("SELECT COALESCE(MAX(id), 0) FROM proposal_store").fetchall()[0]
            rids = duck.execute("SELECT request_id, id FROM proposal_store WHERE request_id IS NOT NULL "
                                "AND request_id <> ''").fetchall()
        con.executemany("INSERT OR IGNORE INTO request_ids VALUES (?, ?)", rids)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", [int(top) + 1])
        con.execute("INSERT INTO meta VALUES ('seeded', 1)")

    # ------------------------------------------------------------------ writing
    def prepare(self) -> None:
        """Create the journal (seeded from ``proposal_store``) and open the writer's connection now, so the first
        `append` pays for neither."""
        with self._writing():
            pass

    def append(self, proposals: Sequence[Proposal]) -> list[Proposal | int]:
        """Journal new proposals in one fsync'd commit. Per input, in order: the stored proposal (its id allocated
        here when ``id <= 0``), or the id of the proposal already stored under its request id (a retry; also a
        request id repeated within ``proposals``)."""

        from trader.trading.proposals import proposal_to_dict, with_unchecked

        out: list[Proposal | int] = []
        with self._writing() as con:
            (next_id,) = con.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
            rids = sorted({p.request_id for p in proposals if p.request_id})
            known: dict[str, int] = {}
            for k in range(0, len(rids), 500):  # SQLite's variable limit
                chunk = rids[k:k + 500]
                known.update(con.execute(f"SELECT request_id, id FROM request_ids WHERE request_id IN "
                                         f"({', '.join('?' * len(chunk))})", chunk).fetchall())
            rows, new_rids = [], []
            for p in proposals:
                if p.request_id and p.request_id in known:
                    out.append(known[p.request_id])
                    continue
                if p.id <= 0:
                    p = with_unchecked(p, id=int(next_id))
                elif p.id < int(next_id):  # as proposal_store's primary key would: never two proposals per id
                    raise ValueError(f"proposal id {p.id} is allocated already (next free id {next_id})")
                next_id = max(int(next_id), p.id + 1)
                if p.request_id:
                    known[p.request_id] = p.id
                    new_rids.append((p.request_id, p.id))
                rows.append((p.id, _encode(proposal_to_dict(p)).decode()))
                out.append(p)
            if rows:
                con.executemany("INSERT INTO pending (id, detail) VALUES (?, ?)", rows)
                con.executemany("INSERT INTO request_ids VALUES (?, ?)", new_rids)
                con.execute("UPDATE meta SET value = ? WHERE key = 'next_id'", [int(next_id)])
        return out

    # ------------------------------------------------------------------ reading
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple] | None:
        """Rows of a query on the journal; None when there is no (complete) journal yet."""
        con = self._connect(create=False)
        if con is None:
            return None
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created but not seeded yet (its creator's transaction is open)
                return None
            raise
        finally:
            con.close()

    def has_pending(self) -> bool:
        """True when some journaled proposal is not in ``proposal_store`` yet (no DuckDB access)."""
        return bool(self._read("SELECT 1 FROM pending LIMIT 1"))

    def pending(self) -> list[Proposal]:
        """The journaled proposals not flushed yet, by id."""
        from trader.trading.proposals import proposal_from_dict

        return [proposal_from_dict(json_loads(d)) for _, d in self._read("SELECT id, detail FROM pending "
                                                                         "ORDER BY id") or []]

    def request_id(self, request_id: str) -> int | None | bool:
        """The id stored under ``request_id``; None when none is; False when the journal cannot say (no journal
        yet: ask ``proposal_store``)."""
        known = self.request_ids([request_id])
        return known if known is False else known.get(request_id)

    def request_ids(self, request_ids: Sequence[str]) -> dict[str, int] | bool:
        """`request_id` for several over one connection: request id → stored id, for those stored; False when
        the journal cannot say (no journal yet: ask ``proposal_store``)."""
        if self._con is not None:  # this process writes the journal: its open connection answers (no open)
            with self._lock:
                if self._con is not None and self._current():
                    return self._known(self._con, request_ids)
        con = self._connect(create=False)
        if con is None:
            return False
        try:
            return self._known(con, request_ids)
        finally:
            con.close()

    @staticmethod
    def _known(con: sqlite3.Connection, request_ids: Sequence[str]) -> dict[str, int] | bool:
        try:
            con.execute("SELECT 1 FROM meta WHERE key = 'seeded'").fetchall()  # its tables exist (created together)
            out: dict[str, int] = {}
            for rid in request_ids:
                rows = con.execute("SELECT id FROM request_ids WHERE request_id = ?", [rid]).fetchall()
                if rows:
                    out[rid] = int(rows[0][0])
            return out
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created but not seeded yet (its creator's transaction is open)
                return False
            raise

    # ------------------------------------------------------------------ flushing
    def flush(self) -> int:
        """Copy the pending proposals into ``proposal_store`` (one DuckDB transaction; ids it holds already are
        skipped), then drop them from the journal. Returns how many rows were new to ``proposal_store``."""
        if not self.has_pending():
            return 0
        with self._flush_lock():  # a herd of readers: one flushes, the others then find nothing pending
            return self._flush() if self.has_pending() else 0

    @contextmanager
    def _flush_lock(self) -> Iterator[None]:
        """One flusher at a time (across processes). Only spares DuckDB opens: a flush is idempotent, so after
        ``lock_timeout`` it goes ahead without the lock."""
        import fcntl
        import os
        import time

        fd = os.open(self.path.with_name(self.path.name + ".flush.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.store.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.002)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _flush(self) -> int:
        from trader.data.proposals import _COLUMNS, _arrow_rows, _row

        with self.store.transaction() as duck:
            pending = self.pending()  # read under DuckDB's write lock: no other flush runs meanwhile
            if not pending:
                return 0
            ids = [p.id for p in pending]
            held = {r[0] for r in duck.execute(f"SELECT id FROM proposal_store WHERE id IN "
                                               f"({', '.join('?' * len(ids))})", ids).fetchall()}
            fresh = [_row(p) for p in pending if p.id not in held]
            if fresh:
                duck.register("journaled_proposals", _arrow_rows(fresh))
                try:
                    duck.execute(f"INSERT INTO proposal_store ({_COLUMNS}) SELECT {_COLUMNS} FROM journaled_proposals")
                finally:
                    duck.unregister("journaled_proposals")
        # Committed in DuckDB; a crash here leaves them pending, and the next flush skips them (held).
        con = self._connect(create=False)
        assert con is not None
        try:
            con.execute("PRAGMA synchronous=NORMAL")  # no fsync: a lost delete only makes the next flush skip them
            con.execute("BEGIN IMMEDIATE")
            for k in range(0, len(ids), 500):
                chunk = ids[k:k + 500]
                con.execute(f"DELETE FROM pending WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            con.execute("COMMIT")
        finally:
            con.close()
        return len(fresh)
