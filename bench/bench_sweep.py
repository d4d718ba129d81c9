"""Sweep throughput: a 1,000-combination MA-crossover grid (FAST 40 x SLOW 25, vectorized) on 10 years of daily
simulated bars of one conId, single process vs the local process pool, persistence into DuckDB included.

Prints runs/s, the per-run cost of a bare backtest and the per-run overhead of the sweep machinery (chunking,
result transfer, batched inserts). Optional: `--dask` also runs it on a 2-worker distributed.LocalCluster.
Run: .venv/bin/python bench/bench_sweep.py [--quick] [--dask]
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from trader.simulation.backtester import run_backtest
from trader.simulation.data import load_bars_between, sim_bars
from trader.simulation.sweep import SweepJob, run_sweep
from trader.strategy.loader import load_strategy_class

STRATEGIES = Path(__file__).parents[1] / "strategies"
CONID = 265598


def _job(n_fast: int, n_slow: int) -> SweepJob:
    return SweepJob("ma", "ma_crossover.py", "MACrossover", (CONID,),
                    {"FAST": list(range(2, 2 + n_fast)), "SLOW": list(range(30, 30 + 2 * n_slow, 2))},
                    days=3650, mode="vectorized")


def _bare_per_run(job: SweepJob, n: int = 50) -> float:
    """Seconds per backtest called directly (no sweep machinery, no persistence)."""
    cls = load_strategy_class(STRATEGIES, job.strategy_file, job.class_name)
    bars = sim_bars(CONID, job.days)
    run_backtest(cls(), bars, mode="vectorized")
    t0 = time.perf_counter()
    for i in range(n):
        run_backtest(cls().with_params(FAST=2 + i % 40, SLOW=30 + 2 * (i % 25)), bars, mode="vectorized")
    return (time.perf_counter() - t0) / n


def _sweep(job: SweepJob, workers: int | None, cluster: str | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = run_sweep([job], name="bench", strategies_root=STRATEGIES, data_dir=Path(tmp),
                      report_dir=Path(tmp) / "reports", workers=workers, cluster=cluster)
        wall = time.perf_counter() - t0
        assert s.done == s.total, s
        return {"runs": s.total, "sweep_s": s.elapsed_s, "wall_s": wall}


def main() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import scipy.stats  # noqa: F401 - imported once up front so no run pays the import (the CLI pays it too)

    quick = "--quick" in sys.argv
    job = _job(8, 25) if quick else _job(40, 25)
    repeats = 1 if quick else 3
    bare = _bare_per_run(job)
    t0 = time.perf_counter()
    n_bars = len(load_bars_between(CONID, job.start, job.end, job.days, job.bar_size))
    load_s = time.perf_counter() - t0
    print(f"grid {len(job.grid['FAST']) * len(job.grid['SLOW'])} combinations, 10y daily bars ({n_bars} bars), "
          f"{os.cpu_count()} cores; bare backtest {bare * 1e3:.2f} ms/run ({1 / bare:,.0f} runs/s); "
          f"loading the bars once per sweep {load_s:.2f} s")
    cases = [("single process (workers=1)", 1, None), ("local pool (workers=2)", 2, None)]
    cluster = None
    if "--dask" in sys.argv:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        cases.append(("dask LocalCluster (2 worker processes)", 2, cluster.scheduler_address))
    try:
        for label, workers, address in cases:
            f = max((_sweep(job, None if address else workers, address) for _ in range(repeats)),
                    key=lambda x: x["runs"] / x["sweep_s"])
            runs = f["runs"]
            per_run = (f["sweep_s"] - load_s) / runs  # wall per run once the bars are loaded
            overhead = per_run * workers - bare  # CPU per run beyond the bare backtest (result transfer, inserts)
            print(f"{label}: {runs / f['sweep_s']:,.0f} runs/s for the sweep incl. bar loading and batched "
                  f"inserts ({runs / (f['sweep_s'] - load_s):,.0f} runs/s once the bars are loaded); "
                  f"{runs / f['wall_s']:,.0f} runs/s with the leaderboard + digest "
                  f"({f['wall_s'] - f['sweep_s']:.2f} s); overhead {overhead * 1e3:+.2f} ms/run/worker")
    finally:
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
