"""Scale: a nightly sweep over many symbols of one-minute bars on the local process pool and on a Dask
LocalCluster — wall time, runs/s, peak memory (this process + its children, sampled), and whether both executors
stored the same results.

Workload (issue 23 target 5 at full size): `--symbols` (50) seeded random-walk symbols of regular-hours one-minute
bars over `--days` (365 calendar days ≈ 252 sessions × 390 bars ≈ 98k bars each), stored in a temp bar store;
one sweep job per symbol (MA crossover, vectorized), `--combos` (10,000) combinations in all, split evenly over the
symbols. Every run is stored as a sweep stores it (metrics, trades, equity curve). Memory must stay under 4 GiB.

The full size is long on 2 shared cores (≈10^9 bar-steps per executor); `--symbols 5 --combos 100` is a quick look.

Run: .venv/bin/python bench/bench_scale.py [--symbols 50] [--days 365] [--combos 10000] [--no-dask]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRATEGIES = ROOT / "strategies"


def _sessions(days: int):
    """The weekday sessions of `days` calendar days from 2025-01-02 (UTC midnights)."""
    import pandas as pd

    return pd.bdate_range("2025-01-02", periods=max(1, int(days * 252 / 365)), tz="UTC")


def _minute_bars(seed: int, days: int):
    """Regular-hours one-minute bars (14:30–21:00 UTC, weekdays) over `days` calendar days, seeded random walk."""
    import pandas as pd

    sessions = _sessions(days)
    idx = (sessions.repeat(390) + pd.Timedelta(hours=14, minutes=30)
           + pd.to_timedelta(np.tile(np.arange(390), len(sessions)), unit="min"))
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, len(idx))))
    open_ = np.concatenate(([100.0], close[:-1]))
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.0002, "close": close,
                         "low": np.minimum(open_, close) * 0.9998, "volume": 1e4}, index=idx)


class PeakMemory:
    """Peak memory of this process and all its children (pool workers, Dask workers), sampled: the sum of their
    proportional set sizes (a page shared by k processes counts 1/k in each), so forked workers' shared pages are
    not counted twice."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self._me, self._every, self.peak = psutil.Process(), every, 0
        self.parent_at_peak = 0  # this process's share at the peak (the writer, DuckDB), the rest is workers
        self.parent_peak = 0
        self._t0 = time.perf_counter()
        self.peak_at = 0.0  # seconds into the run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = mine = 0
            for p in [self._me, *self._me.children(recursive=True)]:
                try:  # proportional set size: pages a forked worker shares with the parent are counted once
                    pss = p.memory_full_info().pss
                except psutil.Error:
                    continue
                total += pss
                mine = mine or pss  # the first is this process
            self.parent_peak = max(self.parent_peak, mine)
            if total > self.peak:
                self.peak, self.parent_at_peak, self.peak_at = total, mine, time.perf_counter() - self._t0
            self._stop.wait(self._every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _jobs(conids: list[int], combos: int, days: int):
    from trader.simulation.sweep import SweepJob

    per = max(1, combos // len(conids))
    fast = list(range(5, 5 + max(1, int(np.ceil(np.sqrt(per))))))
    slow = list(range(60, 60 + 5 * max(1, int(np.ceil(per / len(fast)))), 5))
    # The stored bars' own dates (not "the last N days" from today, which would cut them to the weeks that overlap).
    end = (_sessions(days)[-1] + np.timedelta64(1, "D")).date().isoformat()
    return [SweepJob(f"s{c}", "ma_crossover.py", "MACrossover", (c,), {"FAST": fast, "SLOW": slow},
                     start="2025-01-01", end=end, bar_size="1 min", mode="vectorized") for c in conids]


def _run(home: Path, jobs, label: str, **kw) -> dict:
    from trader.simulation.sweep import run_sweep

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        s = run_sweep(jobs, name=label, strategies_root=STRATEGIES, data_dir=home / "data",
                      report_dir=home / "reports", **kw)
        wall = time.perf_counter() - t0
    load = os.getloadavg()[0]
    assert s.done == s.total, s
    return {"label": label, "runs": s.total, "wall_s": wall, "runs_per_s": s.total / wall,
            "peak_gib": mem.peak / 2**30, "parent_at_peak_gib": mem.parent_at_peak / 2**30,
            "parent_peak_gib": mem.parent_peak / 2**30, "peak_at": mem.peak_at / wall, "sweep_id": s.sweep_id, "load": load}


def _results(home: Path, sweep_id: str) -> dict:
    from trader.data.store import research_store

    # Every metric and digests of the stored trades and equity values (10,000 full runs would not fit in memory).
    rows = research_store(home / "data").execute(
        "SELECT sweep_job, combo_key, metrics, md5(trades) || coalesce(md5(trades_z), ''), "
        "md5(coalesce(equity_v, equity_seg)) FROM backtest_runs "
        "WHERE sweep_id = ?",
        [sweep_id], write=False)
    return {(j, k): (json.loads(m), t, e) for j, k, m, t, e in rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--combos", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from trader.data.bars import BarStore

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        conids = list(range(9_000_001, 9_000_001 + args.symbols))
        t0 = time.perf_counter()
        store = BarStore.open(home / "data")
        n_bars = 0
        for i, c in enumerate(conids):
            df = _minute_bars(i, args.days)
            n_bars += len(df)
            store.ingest(c, "1 min", "bench", df)
        print(f"{args.symbols} symbols × {n_bars // args.symbols:,} one-minute bars stored in "
              f"{time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        jobs = _jobs(conids, args.combos, args.days)
        from trader.simulation.data import load_bars_between

        seen = load_bars_between(conids[0], jobs[0].start, jobs[0].end, jobs[0].days, jobs[0].bar_size,
                                 str(home / "data"))  # what each run of a job backtests over
        print(f"{sum(len(j.conids) for j in jobs)} jobs, {len(seen):,} bars per run")
        out = [_run(home, jobs, "pool", workers=args.workers)]
        if not args.no_dask:
            from distributed import LocalCluster

            with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                out.append(_run(home, jobs, "dask", cluster=cluster.scheduler_address))
        size = (home / "data" / "research.duckdb").stat().st_size
        for r in out:
            print(f"{r['label']}: {r['runs']:,} runs in {r['wall_s']:.1f} s = {r['runs_per_s']:.1f} runs/s, peak "
                  f"memory {r['peak_gib']:.2f} GiB (limit 4 GiB; {r['parent_at_peak_gib']:.2f} GiB of it this process, "
                  f"reached {100 * r['peak_at']:.0f}% into the run; this process's own peak "
                  f"{r['parent_peak_gib']:.2f} GiB); "
                  f"load average {r['load']:.1f} at its end")
        if len(out) == 2:
            same = _results(home, out[0]["sweep_id"]) == _results(home, out[1]["sweep_id"])
            print(f"pool and Dask results identical: {same}")
        print(f"research.duckdb after both: {size / 2**20:,.0f} MiB ({size / sum(r['runs'] for r in out) / 1024:,.0f} "
              "KiB per stored run: the equity curve of every bar dominates)")


if __name__ == "__main__":
    main()
