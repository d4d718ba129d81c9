"""The sweep's writer: finished runs buffered and inserted into the research store in batches, one transaction per
batch with the sweep's counters; a held in-process grid pass writes a chunk's runs behind, from a worker thread,
while the next chunk computes (`SweepWriter.flush_behind`)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from trader.data.store import DuckStore, no_checkpoint_vacuum, skip_legacy_string_compression
from trader.simulation.store import RUN_COLUMNS, new_run_id, quality_score
from trader.simulation.sweep_runner import PARAMS_JSON, combo_key

if TYPE_CHECKING:
    from trader.simulation.sweep import _Job

log = logging.getLogger(__name__)

# Each flush's commit and close checkpoint the store, rewriting the table's partly filled row group (a cost that
# grows with the runs already in it), so runs are written in few, large batches: up to BATCH_ROWS runs, or
# BATCH_BYTES of their JSON text (long intraday curves), or whatever finished within BATCH_SECONDS.
BATCH_ROWS = 1024
BATCH_BYTES = 256 << 20
BATCH_SECONDS = 5.0


class SweepWriter:
    """Buffers finished runs and inserts them in batches (one transaction per batch, with the counters)."""

    def __init__(self, store: DuckStore, sweep_id: str, jobs: list[_Job], done: int, failed: int,
                 elapsed_before: float, t0: float) -> None:
        self.store, self.sweep_id, self.jobs = store, sweep_id, jobs
        self.done, self.failed, self.ran = done, failed, 0
        self.elapsed_before = elapsed_before
        self.t0 = t0  # start of this run_sweep call (bar loading included)
        self.t_end: float | None = None
        self.rows: list[dict[str, Any]] = []
        self._fixed: dict[int, dict[str, Any]] = {}  # job index -> the columns its runs share
        self.bytes = 0  # JSON text buffered in rows
        self.errors: list[str] = []
        self.last_flush = time.monotonic()
        # Set by run_sweep when it holds the store for an in-process grid pass: every `behind_rows` runs before
        # the `behind_until`-th are written from a worker thread on the held connection while the next chunk
        # computes (`flush_behind`).
        self.behind_rows = self.behind_until = 0
        self._behind: threading.Thread | None = None
        self._behind_error: BaseException | None = None

    def add(self, job_index: int, res: dict[str, Any]) -> None:
        pj = self.jobs[job_index]
        self.ran += 1
        if not res["ok"]:
            self.failed += 1
            self.errors.append(f"{pj.job.name} {combo_key(res['params'])}: {res['error']}")
            return
        self.done += 1
        fixed = self._fixed.get(job_index)
        if fixed is None:  # what every run of the job stores alike, built once (asdict per run cost ~0.3 ms)
            fixed = self._fixed[job_index] = {
                "strategy": pj.job.strategy_file, "class_name": pj.class_name, "source_hash": pj.source_hash,
                "conids": json.dumps(list(pj.job.conids)), "start_ts": pj.start_ts, "end_ts": pj.end_ts,
                "bar_size": pj.job.bar_size, "costs": json.dumps(asdict(pj.job.costs)), "capital": pj.job.capital,
                "equity": f'{{"t": {pj.t_json}}}' if pj.inline_t else "{}", "archived": False, "equity_seg": None,
                "sweep_id": self.sweep_id, "sweep_job": pj.job.name, "provenance": pj.report.get("provenance"),
                "coverage": pj.coverage_json, "execution": "backtest"}
        key = combo_key(res["params"])
        self.rows.append({
            **fixed, "id": new_run_id(), "created_at": datetime.now(UTC),
            "params": PARAMS_JSON(res["params"]), "mode": res["mode"], "metrics": res["metrics_json"],
            "trades": res["trades_json"], "trades_z": res.get("trades_z"), "score": quality_score(res["metrics"]), "combo_key": key,
            "moments": res.get("moments_json"), **self._equity(pj, res)})
        self.bytes += (len(res.get("equity_f64") or res.get("equity_seg") or b"") + len(res["trades_json"])
                       + len(res.get("trades_z") or b""))
        if self.behind_rows and len(self.rows) >= self.behind_rows and self.ran < self.behind_until:
            self.flush_behind()  # not the last run's: the last write, which carries the status, takes those
        elif len(self.rows) >= BATCH_ROWS or self.bytes >= BATCH_BYTES or \
                time.monotonic() - self.last_flush >= BATCH_SECONDS:
            self.flush()

    @staticmethod
    def _equity(pj: _Job, res: dict[str, Any]) -> dict[str, Any]:
        """The stored equity columns of one run: its segments when the run sent them and the job's closes are
        those stored for the sweep, else every bar's value."""
        seg = res.get("equity_seg")
        if seg is None:
            return {"equity_v": res["equity_f64"]}
        if not pj.inline_t:
            return {"equity_seg": seg, "equity_v": None}
        from trader.simulation.fill_grid import equity_from_segments

        (arrays,) = pj.payload["bars"].values()  # the grid pass runs one-conId jobs only
        curve = equity_from_segments(np.frombuffer(seg, dtype="<f8"), arrays["close"]).round(6)
        return {"equity_v": curve.astype("<f8").tobytes()}

    @property
    def this_call(self) -> float:
        """Seconds spent in this call so far (frozen once the final status is written)."""
        return (self.t_end or time.monotonic()) - self.t0

    @property
    def elapsed(self) -> float:
        """Seconds spent on the sweep over all calls (a resumed sweep adds up)."""
        return self.elapsed_before + self.this_call

    def flush(self, status: str | None = None) -> None:
        """Insert the buffered runs and update the sweep's counters (and status) in one transaction, after any
        write still running behind (`flush_behind`). If that write failed, its error is raised here — after this
        write, which records the sweep as failed when it carries a final status."""
        behind_failed: BaseException | None = None
        try:
            self.wait()
        except BaseException as exc:
            if status is None:
                raise
            behind_failed, status = exc, "failed"
        rows, self.rows, self.bytes = self.rows, [], 0
        if status is not None and status != "running":
            self.t_end = time.monotonic()
        self._write(rows, *self._counters(status))
        if behind_failed is not None:
            raise behind_failed
        self.last_flush = time.monotonic()
        if status is not None and status != "running":
            # The summary's time includes this last write (its commit and checkpoint cost as much as a batch of
            # runs); the stored elapsed_s, written inside it, stops where the write began.
            self.t_end = self.last_flush

    def flush_behind(self) -> None:
        """`flush` the buffered runs from a worker thread, on the connection this thread holds (`DuckStore.lend`),
        and return at once: DuckDB inserts and checkpoints them (its own threads, without the GIL) while this
        thread computes the next chunk. One such write at a time; `flush` and `wait` wait for it and raise what
        it raised. The caller does not use the store meanwhile (run_sweep's grid pass only computes)."""
        self.wait()
        rows, self.rows, self.bytes = self.rows, [], 0
        counters = self._counters(None)  # as they stand now: the thread runs while more runs arrive
        borrow = self.store.lend()

        def write() -> None:
            try:
                with borrow():
                    self._write(rows, *counters)
            except BaseException as exc:  # noqa: BLE001 - handed to the sweep's thread by wait()
                self._behind_error = exc

        self._behind = threading.Thread(target=write, name="sweep-writer", daemon=True)
        self._behind.start()
        self.last_flush = time.monotonic()

    def wait(self, *, quietly: bool = False) -> None:
        """Wait for the write `flush_behind` started, if any; raise its error here (`quietly`: log it, when
        another error is on its way already)."""
        if self._behind is not None:
            self._behind.join()
            self._behind = None
        if self._behind_error is not None:
            exc, self._behind_error = self._behind_error, None
            if not quietly:
                raise exc
            log.error("sweep %s: a batch of runs written behind failed: %r", self.sweep_id, exc)

    def _counters(self, status: str | None) -> tuple[str, list[Any]]:
        sets = "done = ?, failed = ?, elapsed_s = ?, errors = ?"
        args: list[Any] = [self.done, self.failed, self.elapsed, json.dumps(self.errors[-100:])]
        if status is not None:
            sets += ", status = ?, finished_at = ?"
            args += [status, datetime.now(UTC) if status != "running" else None]
        return sets, args

    def _write(self, rows: list[dict[str, Any]], sets: str, args: list[Any]) -> None:
        # With runs, the commit checkpoints them straight into the file (see DuckStore.transaction): not into the
        # WAL first, which the close (or the next write's) then copies into the file again.
        with self.store.transaction(checkpoint=bool(rows)):
            no_checkpoint_vacuum(self.store)  # see there: the batches appended without rewrites (this close's too)
            skip_legacy_string_compression(self.store)  # see there: the same compression, analysed faster
            if rows:
                # An Arrow table, column by column: DuckDB reads it as is (a DataFrame of these rows cost ~2x more
                # to build and to scan: ~10 MB of trades text in object columns).
                import pyarrow as pa

                # In malloc's memory, not pyarrow's default pool (mimalloc): growing the ~10 MB trades column there
                # took 30-130 ms in a fresh sweep process against ~8 ms here (and the commit that reads it ~15 ms
                # more), measured in the CLI; the same arrays either way.
                pool = pa.system_memory_pool()
                table = pa.table({c: pa.array([r[c] for r in rows], memory_pool=pool) for c in RUN_COLUMNS})
                self.store.insert_df("backtest_runs", table)
            self.store.execute(f"UPDATE sweeps SET {sets} WHERE id = ?", [*args, self.sweep_id])
