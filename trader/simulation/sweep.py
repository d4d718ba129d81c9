"""Parameter sweeps: the cartesian product of a grid per strategy, run in parallel, persisted under one sweep id.

Flow of `run_sweep`:
1. the parent validates every job (strategy loads, grid names are parameters), loads each job's bars once and
   builds a plain-data payload per job (`sweep_runner.job_payload`);
2. it stores the `sweeps` row (status "running", jobs as JSON, total) and works out which combos are still to
   run (all of them, or on `resume` those without a stored run);
3. chunks of (job index, params) go to a local process pool (bars handed over once per worker by the pool
   initializer), to a Dask cluster (bars scattered once per worker) or, with ``workers=1``, run in-process;
4. the parent is the only writer: finished runs are inserted in batches, one transaction per batch, together
   with the sweep's progress counters; at the end the status becomes "done" (every combo has a run) or "failed"
   (some combos raised; their errors are kept on the sweep row) and the Markdown digest is written.

An interrupted sweep (Ctrl-C, SIGTERM, an exception from the progress callback) keeps every finished run and is
marked "interrupted" (KeyboardInterrupt/SIGTERM) or "failed"; a killed process leaves "running". Either way
``resume=<id>`` runs only the combos without a stored run.

`run_sweep` does NOT take the `SweepLock`; the CLI holds it around the call (cron overlap is a CLI concern, and
tests and notebooks may run sweeps side by side in separate data dirs).
"""
from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trader.data.store import DuckStore, research_store
from trader.errors import BacktestError, SweepLocked
from trader.simulation.backtester import Costs, _prepare, check_backtest_params
from trader.simulation.sweep_read import (  # noqa: F401 - re-exported: callers import them from here
    _LEADERBOARD_CACHE,
    _data_summary,
    get_sweep,
    job_deflated_sharpes,
    leaderboard,
    list_sweeps,
)
from trader.simulation.sweep_runner import (
    chunk_tasks,
    combo_key,
    grid_fits,
    job_payload,
    run_chunk,
    run_in_process,
    run_local_pool,
    seed_stamp_texts,
)
from trader.simulation.sweep_writer import SweepWriter
from trader.simulation.trade_text import timestamp_texts

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class SweepJob:
    """One strategy's grid inside a sweep."""

    name: str  # label inside the sweep, e.g. "ma_crossover"
    strategy_file: str  # file relative to strategies_directory
    class_name: str | None  # None = the only Strategy class in the file
    conids: tuple[int, ...]
    grid: dict[str, list[Any]]  # param -> values (cartesian product)
    days: int = 365  # bars of the last `days` days ...
    start: str | None = None  # ... or an explicit ISO date range (start/end win over days)
    end: str | None = None
    bar_size: str = "1 day"
    costs: Costs = field(default_factory=Costs)
    capital: float = 100_000.0
    quantity: float | None = None
    mode: str = "auto"  # auto | vectorized | bar-by-bar

    def __post_init__(self) -> None:
        check_backtest_params(capital=self.capital, quantity=self.quantity)  # refused before any run is stored

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (as stored in the sweeps table)."""
        d = asdict(self)
        d["conids"] = list(self.conids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepJob:
        """Inverse of `to_dict`."""
        # "data", "provenance", "coverage", "warnings": what the bars were worth (informational)
        d = {k: v for k, v in d.items() if k not in ("data", "provenance", "per_conid", "coverage", "warnings")}
        d["conids"] = tuple(int(c) for c in d["conids"])
        d["costs"] = Costs(**(d.get("costs") or {}))
        return cls(**d)


@dataclass(frozen=True, slots=True)
class SweepSummary:
    """Outcome of one `run_sweep` call (counters cover the whole sweep, speed only this call)."""

    sweep_id: str
    name: str
    status: str  # "running" | "done" | "failed" | "interrupted"
    total: int
    done: int
    failed: int
    elapsed_s: float
    runs_per_s: float
    digest_path: str | None


def expand_grid(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of a grid: keys in the given order, the LAST key varies fastest
    ({"A": [1, 2], "B": [3, 4]} -> A1B3, A1B4, A2B3, A2B4). Raises BacktestError on an empty grid, an empty
    value list or values that are not a list."""
    if not isinstance(grid, dict) or not grid:
        raise BacktestError("the grid is empty: give at least one parameter with a list of values")
    for k, values in grid.items():
        if not isinstance(values, (list, tuple)):
            raise BacktestError(f"grid values of {k!r} must be a list, got {type(values).__name__}")
        if not values:
            raise BacktestError(f"grid parameter {k!r} has no values")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


# --------------------------------------------------------------------------- the lock


class SweepLock:
    """Non-blocking exclusive lock on ``run_dir/sweep.lock`` (fcntl): a second holder fails at once with
    `SweepLocked` naming the holder's pid. Use as a context manager; released on exit or process death."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / "sweep.lock"
        self._fd: int | None = None

    def acquire(self) -> SweepLock:
        """Take the lock or raise SweepLocked."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SweepLocked(f"another sweep is running (pid {holder}; lock file {self.path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- preparing jobs


@dataclass(slots=True)
class _Job:
    """A job ready to run: its payload, the combos still to run and what each stored row needs."""

    job: SweepJob
    class_name: str
    source_hash: str
    payload: dict[str, Any]
    combos: list[dict[str, Any]]
    t_json: str  # the equity curve's timestamps, the same for every run of the job (stored once)
    start_ts: datetime
    end_ts: datetime
    grid_pass: bool = False  # a vectorized job: its chunks share one fill pass when it fits (`grid_fits`)
    inline_t: bool = False  # the bars differ from those the sweep started with: store timestamps per run
    data: dict[int, str] = field(default_factory=dict)  # conId -> "stored" | "simulated"
    report: dict[str, Any] = field(default_factory=dict)  # trader.simulation.coverage.data_report of the bars

    @property
    def coverage_json(self) -> str:
        """The coverage stored with each of the job's runs."""
        return json.dumps(self.report.get("coverage") or [])


def _prepare_job(job: SweepJob, index: int, token: str, strategies_root: Path, data_dir: Path) -> _Job:
    from trader.simulation.coverage import data_report
    from trader.simulation.data import data_source, load_bars_between
    from trader.strategy.loader import load_strategy_class, resolve_strategy_path, source_hash

    combos = expand_grid(job.grid)
    cls = load_strategy_class(strategies_root, job.strategy_file, job.class_name)
    grid_pass = job.mode in ("auto", "vectorized") and bool(cls().vectorized)  # signals_grid or stacked signals
    unknown = sorted(set(job.grid) - set(cls.params()))
    if unknown:
        raise BacktestError(f"job {job.name!r}: {cls.__name__} has no parameter(s) {unknown}; "
                            f"known: {sorted(cls.params())}")
    if job.mode not in ("auto", "vectorized", "bar-by-bar"):
        raise BacktestError(f"job {job.name!r}: mode must be auto, vectorized or bar-by-bar, not {job.mode!r}")
    if not job.conids:
        raise BacktestError(f"job {job.name!r}: no conIds")
    path = resolve_strategy_path(strategies_root, job.strategy_file)
    raw = {c: load_bars_between(c, job.start, job.end, job.days, job.bar_size, str(data_dir)) for c in job.conids}
    bars = {c: _prepare(df) for c, df in raw.items()}
    # The same index run_backtest gives the summed equity curve.
    frames = [pd.Series(0.0, index=df.index) for df in bars.values()]
    index_ = pd.concat(frames, axis=1).index if len(frames) > 1 else frames[0].index
    source = path.read_text()
    payload = job_payload(f"{token}:{index}", strategies_root=strategies_root, strategy_file=job.strategy_file,
                          class_name=cls.__name__, source=source, bars=bars, capital=job.capital,
                          quantity=job.quantity, costs=job.costs, mode=job.mode)
    stamps = timestamp_texts(index_)
    if len(bars) == 1:  # the same texts the runs' trades use for their times: computed once (~10 ms a 10-year job)
        seed_stamp_texts(payload, next(iter(bars)), stamps)
    return _Job(job, cls.__name__, source_hash(path), payload, combos, json.dumps(stamps),
                index_[0].to_pydatetime(), index_[-1].to_pydatetime(), grid_pass=grid_pass,
                data={int(c): data_source(df) for c, df in raw.items()}, report=data_report(raw, job.bar_size))


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (cron timeout, `kill`) into KeyboardInterrupt so the sweep is marked interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --------------------------------------------------------------------------- running




# A job whose combos share one fill pass (`sweep_runner.run_grid`) runs its chunks this large; below
# GRID_POOL_MIN_RUNS such runs take less time in one process than starting a pool and shipping results back.
# A fresh `mmr bt-sweep` of bench_sweep's 1,000 daily runs (grid pass ~0.3 s in one process), 8 alternating
# pairs at load ~5: one process 1.26 s wall (0.84 s CPU) against the pool of 2's 1.61 s (1.07 s CPU); at load ~3
# 0.99 against 1.02 s. The pool's start, its workers' preparation and the results shipped back cost ~0.2 s of
# CPU, more than half of a 1,000-run pass saves; 2,048 is where the pass's half starts to outweigh it (an
# estimate from these figures; the warm pool measured 1,419 against 1,292 runs/s at 1,000 runs on idle cores).
GRID_CHUNK = 512
GRID_POOL_MIN_RUNS = 2048
# A chunk's grid pass holds ~10 float matrices of combos × bars: at most this many cells (~0.7 GiB), so a year of
# one-minute bars (98k) runs ~80 combos a chunk and two workers stay well under a few GiB.
GRID_CELLS = 8_000_000
# A sweep whose grid pass runs in the parent and covers at most this many cells (combos × bars: ~0.5 s of pass)
# keeps its store open from its first write to its last (`run_sweep`).
HOLD_CELLS = 4_000_000


def _job_close(pj: _Job) -> bytes | None:
    """The closes a one-conId job's runs are marked at (float64 bytes), stored once per job so grid-pass runs can
    store their equity as segments; None for several conIds (their curve is a sum over conIds)."""
    if len(pj.payload["bars"]) != 1:
        return None
    (arrays,) = pj.payload["bars"].values()
    return np.ascontiguousarray(arrays["close"], dtype="<f8").tobytes()


def _grid_pass(pj: _Job) -> bool:
    """True when the job's chunks go through one fill pass (vectorized, one conId, no impact cost)."""
    return pj.grid_pass and grid_fits(pj.payload)


def _default_workers(workers: int | None) -> int:
    return max(1, workers if workers is not None else (os.cpu_count() or 1))


def _first_write(store: DuckStore, sweep_id: str, name: str, prepared: list[_Job], total: int,
                 stored: dict[str, Any] | None, t0: float, *, skip_checkpoint: bool
                 ) -> tuple[SweepWriter, list[tuple[int, dict[str, Any]]]]:
    """One transaction before any run: the sweep row (or, resuming the `stored` sweep, what it has finished), the
    equity index and the first counters. Returns the writer and the (job index, params) still to run.
    `skip_checkpoint`: this write's store open ends here; its close skips the checkpoint."""
    resume = stored is not None
    with store.transaction():  # one store open for the sweep row, the equity index and the first counters
        if not resume:
            store.execute("INSERT INTO sweeps (id, name, status, created_at, jobs, total) VALUES (?, ?, ?, ?, ?, ?)",
                          [sweep_id, name, "running", datetime.now(UTC),
                           json.dumps([{**pj.job.to_dict(), "data": pj.data, **pj.report} for pj in prepared]), total])
            finished: set[tuple[str, str]] = set()
            elapsed_before = 0.0
        else:
            finished = {(r[0], r[1]) for r in store.execute(
                "SELECT sweep_job, combo_key FROM backtest_runs WHERE sweep_id = ?", [sweep_id], write=False)}
            elapsed_before = float(stored.get("elapsed_s") or 0.0)  # type: ignore[union-attr]
        store.executemany("INSERT OR IGNORE INTO sweep_equity_index (sweep_id, sweep_job, t, close) VALUES (?, ?, ?, ?)",
                          [(sweep_id, pj.job.name, pj.t_json, _job_close(pj)) for pj in prepared])
        if resume:
            stored_t = dict(store.execute("SELECT sweep_job, t FROM sweep_equity_index WHERE sweep_id = ?", [sweep_id],
                                          write=False))
            for pj in prepared:
                if stored_t.get(pj.job.name) != pj.t_json:  # e.g. new bars stored since the sweep started
                    log.warning("sweep %s job %s: bars changed since the sweep started; the remaining runs use the "
                                "new bars and store their own timestamps", sweep_id, pj.job.name)
                    pj.inline_t = True
        todo = [(i, p) for i, pj in enumerate(prepared) for p in pj.combos
                if (pj.job.name, combo_key(p)) not in finished]
        # Failed combos of an earlier attempt are retried, so only stored runs count as done.
        writer = SweepWriter(store, sweep_id, prepared, total - len(todo), 0, elapsed_before, t0)
        writer.flush(status="running")
        if skip_checkpoint:
            # The commit is durable in the WAL; skip this close's checkpoint (~40-60 ms): the next write's close (a
            # batch or the last write) checkpoints these few rows with its own. Scoped to this block's instance.
            store.execute("PRAGMA disable_checkpoint_on_shutdown")
    return writer, todo


def run_sweep(jobs: list[SweepJob], *, name: str, strategies_root: Path, data_dir: Path, report_dir: Path,
              workers: int | None = None, cluster: str | None = None, resume: str | None = None,
              progress: Callable[[int, int], None] | None = None,
              after: Callable[[DuckStore, str], None] | None = None) -> SweepSummary:
    """Run every combination of every job and persist each run into backtest_runs under a new sweep id (or,
    with `resume`, the combos of that stored sweep that have no run yet; `jobs` and `name` are then taken from
    the stored sweep). `workers`: None = all cores in a local process pool, 1 = in-process; `cluster`: a Dask
    scheduler address. `progress(finished, total)` is called after each finished run (failed ones count).
    Writes the Markdown digest into `report_dir` at the end. `after(store, sweep_id)`, when given, runs inside
    the same store connection as the last write and the digest, after them (e.g. the CLI reads its leaderboard
    there instead of opening the store once more). Does not take the SweepLock (the CLI does)."""
    t0 = time.monotonic()
    store = research_store(data_dir)
    strategies_root = Path(strategies_root)
    if resume is not None:
        stored = get_sweep(store, resume)
        jobs = [SweepJob.from_dict(j) for j in stored["jobs"]]
        name, sweep_id = stored["name"], resume
    else:
        sweep_id = f"sw{uuid.uuid4().hex[:6]}"
    if not jobs:
        raise BacktestError("a sweep needs at least one job")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise BacktestError(f"job names must be unique within a sweep: {names}")
    prepared = [_prepare_job(j, i, sweep_id, strategies_root, data_dir) for i, j in enumerate(jobs)]
    total = sum(len(p.combos) for p in prepared)
    n_workers = _default_workers(workers)
    payloads = [pj.payload for pj in prepared]
    grid = all(_grid_pass(pj) for pj in prepared)
    longest = max((len(a["close"]) for pj in prepared for a in pj.payload["bars"].values()), default=1)
    grid_chunk = max(1, min(GRID_CHUNK, GRID_CELLS // max(longest, 1)))
    # A short grid pass in this process holds the store from the first write to the last: one open and one close
    # (~25 ms) instead of two. Other processes' reads wait meanwhile, so only up to HOLD_CELLS (a pass of ~0.5 s).
    hold = (cluster is None and grid and (n_workers == 1 or total < GRID_POOL_MIN_RUNS)
            and total * longest <= HOLD_CELLS)
    last = contextlib.ExitStack()
    if hold:
        last.enter_context(store.connect(write=True))
    try:
        writer, todo = _first_write(store, sweep_id, name, prepared, total, stored if resume is not None else None,
                                    t0, skip_checkpoint=not hold)
    except BaseException:
        last.close()
        raise
    log.info("sweep %s (%s): %d of %d runs to do on %s", sweep_id, name, len(todo), total,
             cluster or f"{min(n_workers, max(len(todo), 1))} worker(s)")
    status = "interrupted"
    try:
        try:
            with _sigterm_as_interrupt():
                if not todo:  # a resumed sweep that had finished: nothing to start
                    results: Iterator[tuple[int, list[dict[str, Any]]]] = (x for x in ())
                elif cluster is not None or (n_workers > 1 and len(todo) > 1 and
                                             not (grid and len(todo) < GRID_POOL_MIN_RUNS)):
                    from trader.simulation.sweep_dask import run_on_cluster

                    n = n_workers if cluster is None else max(n_workers, 4)
                    # A grid pass costs per chunk, not per combo: a few large chunks per worker.
                    size = max(1, min(grid_chunk, math.ceil(len(todo) / (n * 2))) if grid else
                               min(32, math.ceil(len(todo) / (n * 4))))
                    tasks = chunk_tasks(todo, size)
                    results = (run_on_cluster(cluster, payloads, tasks) if cluster is not None
                               else run_local_pool(payloads, tasks, min(n_workers, len(tasks))))
                else:
                    # chunks share a grid pass
                    results = run_in_process(payloads, chunk_tasks(todo, grid_chunk if grid else 32))
                    if hold:  # each chunk's runs are written behind while the next one computes
                        writer.behind_rows, writer.behind_until = grid_chunk, len(todo)
                with contextlib.closing(results):
                    for job_index, chunk in results:
                        for res in chunk:
                            writer.add(job_index, res)
                            if progress is not None:
                                progress(writer.done + writer.failed, total)
            status = "done" if writer.failed == 0 else "failed"
        except KeyboardInterrupt:
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            last.enter_context(store.connect(write=True))  # the last write and the digest: one store open
            writer.flush(status=status)
            log.info("sweep %s %s: %d done, %d failed of %d", sweep_id, status, writer.done, writer.failed, total)
        digest_path = _write_digest(store, sweep_id, Path(report_dir))
        if after is not None:
            after(store, sweep_id)
    finally:
        writer.wait(quietly=True)  # a write still running behind ends before its connection closes
        last.close()  # commits were made; the close checkpoints the store
        # The summary's time includes the last write's checkpoint (at this close, after the digest).
        writer.t_end = time.monotonic()
    return SweepSummary(sweep_id, name, status, total, writer.done, writer.failed, writer.elapsed,
                        writer.ran / writer.this_call if writer.this_call > 0 else 0.0, digest_path)


def _write_digest(store: DuckStore, sweep_id: str, report_dir: Path) -> str:
    from trader.simulation.digest import write_digest

    with store.transaction():  # one store open for the digest's reads and the path it records
        path = str(write_digest(store, sweep_id, report_dir))
        store.execute("UPDATE sweeps SET digest_path = ? WHERE id = ?", [path, sweep_id])
    return path


def estimate_sweep(jobs: list[SweepJob], *, strategies_root: Path, data_dir: Path, workers: int | None = None,
                   sample: int = 3) -> dict[str, Any]:
    """For ``--dry-run``: expand each grid and time `sample` runs per job in this process (after one warm-up
    run), persisting nothing. Returns {"jobs": [{"name", "combinations", "per_run_s"}], "total_runs",
    "workers", "estimated_wall_s"} where the wall time assumes the runs spread evenly over the workers."""
    n_workers = _default_workers(workers)
    token = f"estimate{uuid.uuid4().hex[:6]}"
    out_jobs, work = [], 0.0
    for i, job in enumerate(jobs):
        pj = _prepare_job(job, i, token, Path(strategies_root), Path(data_dir))
        picks = pj.combos[:: max(1, len(pj.combos) // max(sample, 1))][:max(sample, 1)]
        run_chunk(pj.payload, picks[:1])  # warm-up: class loading, bars to frames
        t0 = time.perf_counter()
        run_chunk(pj.payload, picks)
        per_run = (time.perf_counter() - t0) / len(picks)
        out_jobs.append({"name": job.name, "combinations": len(pj.combos), "per_run_s": per_run})
        work += per_run * len(pj.combos)
    total = sum(j["combinations"] for j in out_jobs)
    used = min(n_workers, max(total, 1))
    return {"jobs": out_jobs, "total_runs": total, "workers": used, "estimated_wall_s": work / used}
