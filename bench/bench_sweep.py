"""Sweep throughput, MMR against vectorbt's one-call grid, side by side in one run.

Workload: a 1,000-combination MA-crossover grid (FAST 2..41 × SLOW 30..78 step 2, long-only, all-in whole-share
sizing, next-bar-open fills, no costs) on 10 years of daily bars of one conId (2,520 weekdays of a seeded
random walk's bars, stored in the bar store first, as `history` would, so every path reads stored bars).

Rows (each the best of `--repeats`, all in one run so the machine's load falls on all of them):
- bare `run_backtest` loop: no sweep, nothing stored (the floor of MMR's per-run work);
- `run_sweep` (Python API) with workers=1 and 2, timed around the call: runs, batched inserts, leaderboard and
  digest (a job that goes through the grid pass runs in one process below `GRID_POOL_MIN_RUNS`, so a third row
  forces the pool);
- `mmr --json bt-sweep` and `mmr --json sweep run FILE.yaml`: a fresh CLI process end to end (imports, bars,
  runs, storage, leaderboard, digest, JSON out);
- vectorbt (the peer, its fastest documented setup): the MAs of every window computed once with numpy, 2-D
  entry/exit arrays for all 1,000 combinations and ONE `Portfolio.from_signals` call on numpy inputs, then the
  1,000 total returns. Its results are checked against MMR's stored runs (total return to 1e-9) before printing.
  Two rows: warm in this process (imported and compiled before the timing), and a fresh `python` process that
  imports vectorbt, reads the same bars (an .npz file) and runs the grid (its numba cache already on disk: an
  untimed fresh process runs first) — the peer of `mmr bt-sweep` as a fresh process.

- vectorbt doing the same work (`_vectorbt_stored`), warm and as a fresh process: the same one-call grid, then
  the per-run metrics MMR stores and ranks by, each from vectorbt's own vectorized accessors over all columns
  (total return, CAGR, volatility, Sharpe, Sortino, Calmar, max drawdown and its duration, Deflated Sharpe over
  the job's trials, profit factor, win rate, expectancy, average win/loss, trade and order counts, time in
  market, final equity, skew, excess kurtosis), the trade records and every column's equity (`pf.value()`), one
  Arrow insert per DuckDB table (runs with equity, trades), the leaderboard read back ranked by Deflated Sharpe
  then Sharpe, and a 20-line text digest. The bare rows stay: both peers are printed.

Ratios printed (keys as in the table): the fresh CLI processes against both fresh peers, `run_sweep` in this
process (workers=1, 2, the pool) against both warm peers, and the fresh `bt-sweep` against both warm peers.
Optional: `--dask` adds the pool's twin on a 2-worker distributed.LocalCluster.

Run: .venv/bin/python bench/bench_sweep.py [--quick] [--dask] [--repeats N]
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trader.simulation.backtester import run_backtest  # noqa: E402
from trader.simulation.sweep import SweepJob, run_sweep  # noqa: E402
from trader.strategy.loader import load_strategy_class  # noqa: E402

STRATEGIES = ROOT / "strategies"
CONID = 265598


def _grid(quick: bool) -> dict[str, list[int]]:
    return {"FAST": list(range(2, 10 if quick else 42)), "SLOW": list(range(30, 80, 2))}


def _store_bars(home: Path) -> tuple[str, str]:
    """Ingest 10 y of seeded random-walk daily bars (2,520 weekdays) into `home`'s bar store; their (start, end)."""
    import pandas as pd

    from trader.data.bars import BarStore

    rng = np.random.default_rng(7)
    n = 2_520
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.002, n))
    idx = pd.bdate_range("2016-01-04", periods=n, tz="UTC")
    df = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001, "close": close, "volume": 1e6,
                       "low": np.minimum(open_, close) * 0.999}, index=idx)
    BarStore.open(home / "data").ingest(CONID, "1 day", "bench", df)
    return str(df.index[0].date()), str((df.index[-1] + np.timedelta64(1, "D")).date())


def _job(grid: dict[str, list[int]], start: str, end: str) -> SweepJob:
    return SweepJob("ma", "ma_crossover.py", "MACrossover", (CONID,), grid, start=start, end=end, mode="vectorized")


def _bare(bars, grid: dict[str, list[int]], n: int = 100) -> float:
    cls = load_strategy_class(STRATEGIES, "ma_crossover.py")
    combos = [(f, s) for f in grid["FAST"] for s in grid["SLOW"]][:n]
    run_backtest(cls(), bars, mode="vectorized")
    t0 = time.perf_counter()
    for f, s in combos:
        run_backtest(cls().with_params(FAST=f, SLOW=s), bars, mode="vectorized")
    return (time.perf_counter() - t0) / len(combos)


def _api(home: Path, job: SweepJob, workers: int, cluster: str | None = None) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    s = run_sweep([job], name="bench", strategies_root=STRATEGIES, data_dir=home / "data",
                  report_dir=home / "reports", workers=None if cluster else workers, cluster=cluster)
    assert s.done == s.total, s
    return s.total / s.elapsed_s, s.total / (time.perf_counter() - t0), s.sweep_id


def _cli(home: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ", "PYTHONPATH")}
    env.update(MMR_HOME=str(home), STRATEGIES_DIRECTORY=str(STRATEGIES))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "trader.mmr_cli", "--json", *args], env=env, capture_output=True,
                       text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout[-500:] + p.stderr[-2000:]
    doc = json.loads(p.stdout)
    return doc["sweep"]["total"] / wall


def _vectorbt_run(close_1d: np.ndarray, open_1d: np.ndarray, grid: dict[str, list[int]]) -> np.ndarray:
    """vectorbt's one-call grid (its fastest documented setup, numpy inputs): total return per (FAST, SLOW)."""
    import pandas as pd
    import vectorbt as vbt

    close, open_ = close_1d[:, None], open_1d[:, None]
    s = pd.Series(close[:, 0])
    ma = {w: s.rolling(w).mean().to_numpy() for w in sorted({*grid["FAST"], *grid["SLOW"]})}
    fast = np.column_stack([ma[f] for f in grid["FAST"] for _ in grid["SLOW"]])
    slow = np.column_stack([ma[w] for _ in grid["FAST"] for w in grid["SLOW"]])
    long_ = fast > slow  # decided at bar t's close, filled at bar t+1's open
    held = np.vstack([np.zeros((1, long_.shape[1]), bool), long_[:-1]])
    before = np.vstack([np.zeros((1, long_.shape[1]), bool), held[:-1]])
    pf = vbt.Portfolio.from_signals(close, entries=held & ~before, exits=~held & before, price=open_,
                                    size=np.inf, size_granularity=1.0, init_cash=100_000.0, freq="1D")
    return np.asarray(pf.total_return())


def _vectorbt_stored(close_1d: np.ndarray, open_1d: np.ndarray, grid: dict[str, list[int]], db: str) -> np.ndarray:
    """The same-work peer: vectorbt's one-call grid, then what a vectorbt user must add for a stored, ranked sweep.

    The per-run headline metrics MMR stores, each from vectorbt's own vectorized accessors over all columns
    (annualised on 252 periods a year); the trade records and every column's equity (`pf.value()`); one Arrow
    insert per DuckDB table (runs with their equity as a fixed-size list, trades); the leaderboard by Deflated
    Sharpe (vectorbt's, over the job's trials) then Sharpe, read back with SQL, and a short text digest of its top 20.
    Returns the total returns (checked against MMR's stored runs)."""
    import duckdb
    import pandas as pd
    import pyarrow as pa
    import vectorbt as vbt

    vbt.settings.returns["year_freq"] = "252 days"
    close, open_ = close_1d[:, None], open_1d[:, None]
    s = pd.Series(close[:, 0])
    ma = {w: s.rolling(w).mean().to_numpy() for w in sorted({*grid["FAST"], *grid["SLOW"]})}
    combos = [(f, w) for f in grid["FAST"] for w in grid["SLOW"]]
    fast = np.column_stack([ma[f] for f, _ in combos])
    slow = np.column_stack([ma[w] for _, w in combos])
    long_ = fast > slow  # decided at bar t's close, filled at bar t+1's open
    held = np.vstack([np.zeros((1, long_.shape[1]), bool), long_[:-1]])
    before = np.vstack([np.zeros((1, long_.shape[1]), bool), held[:-1]])
    pf = vbt.Portfolio.from_signals(close, entries=held & ~before, exits=~held & before, price=open_,
                                    size=np.inf, size_granularity=1.0, init_cash=100_000.0, freq="1D")
    trades = pf.trades
    rets = pf.returns()  # once; every returns-based metric from its accessor (pf's own methods recompute it)
    ra = rets.vbt.returns(freq="1D", year_freq="252 days")
    sharpe = np.asarray(ra.sharpe_ratio())
    total_return = np.asarray(pf.total_return())
    metrics = {
        "FAST": np.array([f for f, _ in combos]), "SLOW": np.array([w for _, w in combos]),
        "total_return": total_return, "cagr": ra.annualized(), "annual_volatility": ra.annualized_volatility(),
        "sharpe": sharpe, "sortino": ra.sortino_ratio(), "calmar": ra.calmar_ratio(),
        "max_drawdown": ra.max_drawdown(), "max_drawdown_bars": ra.drawdowns.max_duration(),
        # flat columns have an infinite Sharpe: the trials' variance over the finite ones
        "deflated_sharpe": ra.deflated_sharpe_ratio(var_sharpe=float(np.var(sharpe[np.isfinite(sharpe)]))),
        "profit_factor": trades.profit_factor(), "win_rate": trades.win_rate(), "expectancy": trades.expectancy(),
        "avg_win": trades.winning.pnl.mean(), "avg_loss": trades.losing.pnl.mean(), "trade_count": trades.count(),
        "order_count": pf.orders.count(), "time_in_market": pf.position_mask().mean(),
        "final_equity": pf.final_value(), "skew": rets.skew(), "excess_kurtosis": rets.kurt(),
    }
    cols = {k: pa.array(np.asarray(v, float if k not in ("FAST", "SLOW") else np.int64), from_pandas=True)
            for k, v in metrics.items()}  # NaN -> NULL
    value = np.ascontiguousarray(pf.value().to_numpy().T)  # one row of equity per combination
    cols["equity"] = pa.FixedSizeListArray.from_arrays(pa.array(value.ravel()), value.shape[1])
    runs = pa.table(cols)
    rec = trades.values  # the trade records, one structured array over all columns
    trade_tab = pa.table({name: rec[name] for name in rec.dtype.names})
    con = duckdb.connect(db)
    con.register("runs_in", runs)
    con.register("trades_in", trade_tab)
    con.execute("CREATE OR REPLACE TABLE runs AS SELECT * FROM runs_in")
    con.execute("CREATE OR REPLACE TABLE trades AS SELECT * FROM trades_in")
    top = con.execute("SELECT FAST, SLOW, deflated_sharpe, sharpe, total_return, max_drawdown, trade_count FROM runs "
                      "ORDER BY deflated_sharpe DESC NULLS LAST, sharpe DESC LIMIT 20").fetchall()
    con.close()
    with open(db + ".digest.txt", "w") as out:
        out.write("FAST SLOW DSR Sharpe return maxDD trades\n")
        out.writelines(" ".join(f"{x:.4g}" for x in row) + "\n" for row in top)
    return total_return


# A fresh process: import vectorbt, read the bars, run the grid, print the total returns (the peer's CLI start).
# The function's own source is sent, so the peer imports nothing of MMR.
_FRESH_PEER = """
import json, warnings
warnings.simplefilter("ignore")
import numpy as np
{source}
bars = np.load({npz!r})
out = {func}(bars["close"], bars["open"], json.loads({grid!r}){extra})
print(json.dumps(out.tolist()))
"""


def _vectorbt_fresh(npz: Path, grid: dict[str, list[int]], db: str | None = None) -> tuple[float, np.ndarray]:
    """vectorbt's grid in a fresh python process, end to end; (seconds, total returns). With `db`, the same-work
    peer (`_vectorbt_stored` into that DuckDB file)."""
    import inspect

    func = _vectorbt_stored if db else _vectorbt_run
    code = _FRESH_PEER.format(source=inspect.getsource(func), func=func.__name__, npz=str(npz),
                              grid=json.dumps(grid), extra=f", {db!r}" if db else "")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-2000:]
    return wall, np.array(json.loads(p.stdout.strip().splitlines()[-1]))


def _vectorbt_grid(bars, grid: dict[str, list[int]], db: str | None = None):
    """One-call vectorbt grid, warm; (seconds, total return per (FAST, SLOW)). With `db`, the same-work peer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt  # noqa: F401

    def run() -> np.ndarray:
        if db:
            return _vectorbt_stored(bars["close"].to_numpy(), bars["open"].to_numpy(), grid, db)
        return _vectorbt_run(bars["close"].to_numpy(), bars["open"].to_numpy(), grid)
    run()  # warm-up: numba compile / cache load
    t0 = time.perf_counter()
    out = run()
    return time.perf_counter() - t0, out


def main() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    quick = "--quick" in sys.argv
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else (1 if quick else 3)
    grid = _grid(quick)
    n = len(grid["FAST"]) * len(grid["SLOW"])
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        start, end = _store_bars(home)
        job = _job(grid, start, end)
        from trader.simulation.data import load_bars_between

        bars = load_bars_between(CONID, start, end, 3650, "1 day", str(home / "data"))
        load = os.getloadavg()[0]
        print(f"{n} combinations, {len(bars)} stored daily bars, {os.cpu_count()} cores, load average {load:.1f}")
        rows: dict[str, tuple[str, float]] = {}  # key -> (label, runs/s)
        bare = min(_bare(bars, grid) for _ in range(repeats))
        rows["bare"] = ("bare run_backtest loop (nothing stored)", 1 / bare)
        sweep_id = ""
        for workers in (1, 2):
            best = max((_api(home, job, workers) for _ in range(repeats)), key=lambda x: x[1])
            sweep_id = best[2]
            # The summary's time (best[0]) now also ends after the digest: one row, timed around the call.
            rows[f"api{workers}+"] = (f"run_sweep workers={workers}: runs, storage, leaderboard, digest (warm process)",
                                      best[1])
        # The same with the pool forced (a grid-pass job under GRID_POOL_MIN_RUNS runs in one process otherwise).
        from trader.simulation import sweep as sweep_module

        threshold, sweep_module.GRID_POOL_MIN_RUNS = sweep_module.GRID_POOL_MIN_RUNS, 0
        try:
            best = max((_api(home, job, 2) for _ in range(repeats)), key=lambda x: x[1])
        finally:
            sweep_module.GRID_POOL_MIN_RUNS = threshold
        rows["pool"] = ("run_sweep on the pool of 2 forced: runs, storage, leaderboard, digest", best[1])
        cli_grid = json.dumps(grid)
        spec = Path(tmp) / "sweep.yaml"
        spec.write_text(f"name: bench\nworkers: 2\njobs:\n  - strategy: ma_crossover.py\n    conids: [{CONID}]\n"
                        f"    start: {start}\n    end: {end}\n    mode: vectorized\n    grid: {cli_grid}\n")
        rows["bt-sweep"] = ("mmr --json bt-sweep (fresh process, end to end)", max(
            _cli(home, "bt-sweep", "-s", "ma_crossover.py", "--conids", str(CONID), "--start", start, "--end", end,
                 "--mode", "vectorized", "--grid", cli_grid, "--workers", "2") for _ in range(repeats)))
        rows["sweep-run"] = ("mmr --json sweep run FILE.yaml (fresh process, end to end)",
                             max(_cli(home, "sweep", "run", str(spec)) for _ in range(repeats)))
        if "--dask" in sys.argv:
            from distributed import LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster:
                best = max((_api(home, job, 2, cluster.scheduler_address) for _ in range(repeats)),
                           key=lambda x: x[1])
                rows["dask"] = ("run_sweep on a 2-worker Dask LocalCluster, + leaderboard", best[1])
        vbt_s, vbt_ret = min((_vectorbt_grid(bars, grid) for _ in range(repeats)), key=lambda x: x[0])
        npz = Path(tmp) / "bars.npz"
        np.savez(npz, close=bars["close"].to_numpy(), open=bars["open"].to_numpy())
        _vectorbt_fresh(npz, grid)  # untimed: leaves vectorbt's numba cache on disk, as any second run finds it
        fresh_s, fresh_ret = min((_vectorbt_fresh(npz, grid) for _ in range(repeats)), key=lambda x: x[0])
        # The same-work peer: + every run's metrics, trades and equity stored in DuckDB, ranked, a digest.
        db = str(Path(tmp) / "vbt.duckdb")
        sw_s, sw_ret = min((_vectorbt_grid(bars, grid, db) for _ in range(repeats)), key=lambda x: x[0])
        _vectorbt_fresh(npz, grid, db)  # untimed, as above
        swf_s, swf_ret = min((_vectorbt_fresh(npz, grid, db) for _ in range(repeats)), key=lambda x: x[0])
        # The peer must agree with MMR's stored runs before its figure means anything.
        from trader.data.store import research_store

        got = {tuple(sorted(json.loads(p).items())): json.loads(m)["total_return"] for p, m in research_store(
            home / "data").execute("SELECT params, metrics FROM backtest_runs WHERE sweep_id = ?", [sweep_id],
                                   write=False)}
        mmr_ret = np.array([got[(("FAST", f), ("SLOW", s))] for f in grid["FAST"] for s in grid["SLOW"]])
        agree = all(np.allclose(r, mmr_ret, rtol=0, atol=1e-9) for r in (vbt_ret, fresh_ret, sw_ret, swf_ret))
        verdict = "agrees" if agree else "DISAGREES"
        rows["vbt"] = (f"vectorbt one-call grid, numpy inputs, warm process ({verdict} to 1e-9)", n / vbt_s)
        rows["vbt-fresh"] = (f"vectorbt one-call grid, fresh python process ({verdict} to 1e-9)", n / fresh_s)
        rows["vbt-sw"] = (f"vectorbt same work: grid + metrics, trades, equity into DuckDB, ranked, digest (warm, {verdict})",
                          n / sw_s)
        rows["vbt-sw-fresh"] = (f"vectorbt same work, fresh python process ({verdict})", n / swf_s)
        width = max(len(label) for label, _ in rows.values())
        for key, (label, rate) in rows.items():
            print(f"{key:<13} {label:<{width}}  {rate:>8,.0f} runs/s")
        pairs = [(key, peer) for key in ("bt-sweep", "sweep-run") for peer in ("vbt-fresh", "vbt-sw-fresh")]
        pairs += [(key, peer) for key in ("api1+", "api2+", "pool", *(("dask",) if "dask" in rows else ()))
                  for peer in ("vbt", "vbt-sw")]
        pairs += [("bt-sweep", "vbt"), ("bt-sweep", "vbt-sw")]
        for key, peer in pairs:
            print(f"ratio {key} / {peer}: {rows[key][1] / rows[peer][1]:.2f}x")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        if not agree:
            worst = float(np.max(np.abs(vbt_ret - mmr_ret)))
            print(f"largest total-return difference {worst:.3g}")


if __name__ == "__main__":
    main()
