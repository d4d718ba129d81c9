"""Parameter sweeps: ``bt-sweep`` (one strategy's grid) and ``sweep [run|list|show]`` (nightly YAML sweeps).

Cron-safe: no TTY needed (the progress bar only appears on an interactive stderr and never with --json), a lock
in the run dir stops two overlapping sweeps (the second fails fast with SweepLocked), a failed sweep exits
non-zero, and ``--resume ID`` continues an interrupted sweep. Heavy imports happen inside the commands.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from trader.cli.backtest import _conids, _store, _strategies_dir, costs_options
from trader.cli.core import AppContext, bound_rows, list_options, output

# ---------------------------------------------------------------------------------------------- rendering


def _fmt(v: Any, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _render_leaderboard(rows: list[dict[str, Any]], console: Any, title: str = "leaderboard") -> None:
    from rich import box
    from rich.table import Table

    from trader.simulation.digest import format_params

    several_jobs = len({r.get("job") for r in rows}) > 1
    params = [format_params(r.get("params")) for r in rows]
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))  # fits 80 columns
    for col in ("#", "id", *(["job"] if several_jobs else [])):
        table.add_column(col, no_wrap=True, justify="right" if col == "#" else "left")
    # The only column allowed to wrap, but never narrower than a typical "FAST=20 SLOW=100".
    table.add_column("params", overflow="fold", min_width=min(max(map(len, params), default=6), 20))
    for col in ("score", "sharpe", "DSR", "return", "max dd", "trades"):
        table.add_column(col, no_wrap=True, justify="right")
    for r, text in zip(rows, params, strict=True):
        table.add_row(str(r["rank"]), r["id"], *([str(r.get("job", ""))] if several_jobs else []), text,
                      _fmt(r.get("score"), ".3f"), _fmt(r.get("sharpe"), ".2f"), _fmt(r.get("dsr"), ".2f"),
                      _fmt(r.get("total_return"), ".1%"), _fmt(r.get("max_drawdown"), ".1%"),
                      "–" if r.get("trade_count") is None else str(int(r["trade_count"])))
    console.print(table)


def _render_result(data: dict[str, Any], console: Any) -> None:
    s = data["sweep"]
    _render_leaderboard(data["leaderboard"], console, title=f"sweep {s['name']} ({s['sweep_id']})")
    console.print(f"{s['status']}: {s['done']} of {s['total']} runs done, {s['failed']} failed in "
                  f"{s['elapsed_s']:.1f} s ({s['runs_per_s']:.1f} runs/s)")
    console.print(f"digest: {data.get('digest') or '–'}")
    for w in data.get("warnings") or []:
        console.print(f"[bold yellow]warning:[/] {w}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _render_estimate(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"dry run of sweep {data['name']}: nothing was run")
    for col in ("job", "conids", "grid", "runs", "per run"):
        table.add_column(col, overflow="fold", justify="right" if col in ("runs", "per run") else "left")
    for j in data["jobs"]:
        grid = " × ".join(f"{k}={','.join(map(str, v))}" for k, v in j["grid"].items())
        table.add_row(j["name"], ",".join(map(str, j["conids"])), grid, str(j["combinations"]),
                      "–" if j.get("per_run_s") is None else f"{j['per_run_s'] * 1000:.1f} ms")
    console.print(table)
    console.print(f"{data['total_runs']} runs on {data['workers']} worker(s): about "
                  f"{_duration(data['estimated_wall_s'])} (from timed sample runs)")


def _render_sweeps(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(title="sweeps")
    for col in ("id", "name", "status", "created", "done", "failed", "total", "best score"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(r["id"], r["name"], r["status"], str(r.get("created_at") or "")[:19],
                      str(r.get("done", "")), str(r.get("failed", "")), str(r.get("total", "")),
                      _fmt(r.get("best_score"), ".3f"))
    console.print(table)


def _render_show(data: dict[str, Any], console: Any) -> None:
    s = data["sweep"]
    _render_leaderboard(data["leaderboard"], console, title=f"sweep {s['name']} ({s['id']}) {s['status']}")
    console.print(f"{s.get('done')} of {s.get('total')} runs done, {s.get('failed')} failed; "
                  f"digest: {s.get('digest_path') or '–'}")
    if data.get("plot"):
        console.print(f"heatmap: {data['plot']}")


# ---------------------------------------------------------------------------------------------- running


@contextlib.contextmanager
def _progress(app: AppContext) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar with ETA on an interactive stderr (never with --json, never under cron)."""
    if app.json or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), "eta", TimeRemainingColumn(), console=app.console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task("sweep", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _import_sweep_modules() -> None:
    """Import what a sweep runs on (pandas, numpy, DuckDB, the backtester) with the cyclic collector paused, then
    freeze what they built out of its reach: these objects live until the process ends, and the collector,
    triggered ~200 times by the allocations of these imports, walked them again each time (~80 ms of CPU at the
    start of a fresh `bt-sweep`). The sweep itself runs with the collector on, as before."""
    if "trader.simulation.sweep" in sys.modules:  # imported already (the REPL's second sweep)
        return
    import gc
    import os

    if "numpy" not in sys.modules:
        # OpenBLAS starts a thread per core when numpy loads, and they spin meanwhile (~40-90 ms of CPU on the
        # other core of a fresh sweep, which a loaded 2-core machine pays in wall time); a sweep does no BLAS work.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    enabled = gc.isenabled()
    gc.disable()
    try:
        import duckdb  # noqa: F401 - the stores' driver, imported lazily by the first store open otherwise

        import trader.simulation.sweep  # noqa: F401 - numpy, pandas, the backtester, the grid pass
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _run(app: AppContext, jobs: list[Any], *, name: str, workers: int | None, cluster: str | None,
         resume: str | None, top: int) -> dict[str, Any]:
    """Lock, run, rank: the shared body of `bt-sweep` and `sweep run`. run_sweep validates the jobs (strategy
    files, grid parameter names) before it stores anything."""
    from dataclasses import asdict

    from trader.errors import SweepFailed
    from trader.simulation.sweep import SweepLock, get_sweep, leaderboard, list_sweeps, run_sweep

    paths = app.paths
    store = _store(app)
    ranked: dict[str, Any] = {}
    # Every store connection, pool and file of a sweep is closed by the time it returns or raises: the process
    # may skip the interpreter's teardown at exit (mmr_cli.main).
    app.teardown = False

    def read_back(store_: Any, sweep_id: str) -> None:
        # Inside run_sweep's last store connection (after the digest ranked the runs): no extra open.
        ranked["info"] = get_sweep(store_, sweep_id)
        ranked["rows"] = leaderboard(store_, sweep_id, limit=top)

    try:
        with SweepLock(paths.run_dir), _progress(app) as progress:
            summary = run_sweep(jobs, name=name, strategies_root=_strategies_dir(app), data_dir=paths.data_dir,
                                report_dir=paths.report_dir, workers=workers, cluster=cluster, resume=resume,
                                progress=progress, after=read_back)
    except KeyboardInterrupt:
        # run_sweep marked the sweep "interrupted" and kept every finished run: say how to continue it.
        latest = resume or next((s["id"] for s in list_sweeps(store, limit=5)
                                 if s["name"] == name and s["status"] == "interrupted"), None)
        raise SweepFailed(f"sweep {latest or '?'} ({name}) interrupted; continue it by running the same command "
                          f"with --resume {latest or 'SWEEP_ID'}") from None
    if summary.status != "done":
        # Cron reads the exit code: anything but a finished sweep is a failure (the digest is still written).
        errors = (ranked.get("info") or get_sweep(store, summary.sweep_id)).get("errors") or []
        first = f"; first error: {errors[0]}" if errors else ""
        raise SweepFailed(f"sweep {summary.sweep_id} ({name}) {summary.status}: {summary.done} of "
                          f"{summary.total} runs done, {summary.failed} failed{first}; digest: "
                          f"{summary.digest_path or 'none'}; continue it by running the same command with "
                          f"--resume {summary.sweep_id}")
    if "rows" not in ranked:  # pragma: no cover - run_sweep returned without reaching its last write
        with store.connect(write=False):
            ranked["rows"] = leaderboard(store, summary.sweep_id, limit=top)
            ranked["info"] = get_sweep(store, summary.sweep_id)
    return {"sweep": asdict(summary), "leaderboard": ranked["rows"], "digest": summary.digest_path,
            "warnings": _simulated_warnings(ranked["info"])}


def _simulated_warnings(info: dict[str, Any]) -> list[str]:
    """One warning per job whose bars were simulated (no stored bars for its range)."""
    out = []
    for job in info.get("jobs") or []:
        sim = [str(c) for c, src in (job.get("data") or {}).items() if src == "simulated"]
        if sim:
            out.append(f"job {job['name']}: conId {', '.join(sim)} had no stored {job.get('bar_size', '')} bars "
                       "for the range, so its results use SIMULATED prices (download history first)")
        # simulated-gateway history and short coverage (trader.simulation.coverage)
        out += [f"job {job['name']}: {w}" for w in job.get("warnings") or [] if "SIMULATED prices" not in w]
    return out


def _parse_grid(text: str) -> dict[str, list[Any]]:
    import json

    try:
        grid = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--grid") from None
    if not isinstance(grid, dict) or not grid:
        raise click.BadParameter('expected a JSON object like \'{"FAST":[5,10],"SLOW":[30,50]}\'',
                                 param_hint="--grid")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise click.BadParameter(f"{k!r} must map to a non-empty list of values", param_hint="--grid")
    return grid


# ---------------------------------------------------------------------------------------------- commands


@click.command("bt-sweep")
@click.option("-s", "--strategy", "strategy_file", required=True,
              help="File inside strategies_directory (a leading 'strategies/' is fine).")
@click.option("--class", "class_name", default=None, help="Strategy class (default: the only one in the file).")
@click.option("--conids", default=None, help="Comma-separated conIds.")
@click.option("--universe", "universe_name", default=None, help="Every member of this universe instead.")
@click.option("--days", type=int, default=365, show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day YYYY-MM-DD (wins over --days).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day YYYY-MM-DD (alone: the --days before it).")
@click.option("--bar-size", default="1 day", show_default=True)
@click.option("--grid", "grid_json", required=True, help='JSON: param -> values, e.g. \'{"FAST":[5,10]}\'.')
@click.option("--capital", type=float, default=100_000.0, show_default=True)
@click.option("--quantity", type=float, default=None, help="Fixed shares per entry (default: all-in sizing).")
@costs_options
@click.option("--mode", type=click.Choice(["auto", "vectorized", "bar-by-bar"]), default="auto")
@click.option("--name", default=None, help="Sweep label (default: the file's stem).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local processes (default: all cores).")
@click.option("--cluster", default=None, help="Dask scheduler address, e.g. tcp://host:8786.")
@click.option("--resume", default=None, help="Sweep id to continue: only unfinished combinations run.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Leaderboard rows.")
@click.pass_obj
@output(_render_result)
def bt_sweep(app: AppContext, strategy_file: str, class_name: str | None, conids: str | None,
             universe_name: str | None, days: int, start: datetime | None, end: datetime | None, bar_size: str,
             grid_json: str, capital: float, quantity: float | None, commission_bps: float,
             commission_per_share: float, slippage_bps: float, slippage_per_share: float, mode: str,
             name: str | None, workers: int | None, cluster: str | None, resume: str | None,
             top: int, **slippage: Any) -> dict[str, Any]:
    """Backtest every combination of a parameter grid in parallel; leaderboard with the Deflated Sharpe."""
    _import_sweep_modules()
    from trader.cli.backtest import slippage_models
    from trader.simulation.backtester import Costs
    from trader.simulation.sweep import SweepJob
    from trader.simulation.sweep_spec import strategy_file_name

    if start is not None and end is not None and start >= end:
        raise click.UsageError(f"--start {start:%Y-%m-%d} must be before --end {end:%Y-%m-%d}")
    strategy_file = strategy_file_name(strategy_file)
    name = name or Path(strategy_file).stem
    job = SweepJob(name=name, strategy_file=strategy_file, class_name=class_name,
                   conids=tuple(_conids(app, conids, universe_name)), grid=_parse_grid(grid_json), days=days,
                   start=start and start.date().isoformat(), end=end and end.date().isoformat(),
                   bar_size=bar_size,
                   costs=Costs(commission_bps, commission_per_share, slippage_bps, slippage_per_share,
                               **slippage_models(**slippage)),
                   capital=capital, quantity=quantity, mode=mode)
    return _run(app, [job], name=name, workers=workers, cluster=cluster, resume=resume, top=top)


@click.group()
def sweep() -> None:
    """Nightly parameter sweeps from a YAML file; stored sweeps and their leaderboards."""


@sweep.command("run")
@click.argument("spec_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Expand the grids and estimate wall time; run nothing.")
@click.option("--resume", default=None, help="Sweep id to continue: only unfinished combinations run.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local processes (overrides the file).")
@click.option("--cluster", default=None, help="Dask scheduler tcp://host:8786 (overrides the file).")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Leaderboard rows.")
@click.pass_obj
def sweep_run(app: AppContext, spec_file: Path, dry_run: bool, resume: str | None, workers: int | None,
              cluster: str | None, top: int) -> None:
    """Run the sweep a YAML file describes (see examples/nightly_sweep.yaml); writes a digest to reports."""
    _import_sweep_modules()
    from trader.simulation.sweep_spec import load_spec

    name, jobs, options = load_spec(spec_file, universe_members=lambda u: _conids(app, None, u))
    workers = workers or options.get("workers")
    cluster = cluster or options.get("cluster")
    if dry_run:
        app.emit(_estimate(app, name, jobs, workers), _render_estimate)
        return
    app.emit(_run(app, jobs, name=name, workers=workers, cluster=cluster, resume=resume, top=top), _render_result)


def _estimate(app: AppContext, name: str, jobs: list[Any], workers: int | None) -> dict[str, Any]:
    from trader.simulation.sweep import estimate_sweep

    est = estimate_sweep(jobs, strategies_root=_strategies_dir(app), data_dir=app.paths.data_dir, workers=workers)
    by_name = {j.name: j for j in jobs}
    for row in est["jobs"]:
        job = by_name[row["name"]]
        row.update(strategy_file=job.strategy_file, class_name=job.class_name, conids=list(job.conids),
                   grid=job.grid)
    return {"name": name, "dry_run": True, **est}


@sweep.command("list")
@list_options(20, "sweeps")
@click.pass_obj
@output(_render_sweeps)
def sweep_list(app: AppContext, limit: int, since: Any) -> list[dict[str, Any]]:
    """Stored sweeps, newest first."""
    from trader.simulation.sweep import list_sweeps

    return _mark_orphans(app, bound_rows(list_sweeps(_store(app), limit=limit), limit, since, "created_at"))


def _mark_orphans(app: AppContext, sweeps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A sweep stored as "running" whose process died (kill -9, power loss) would read "running" forever: when
    no process holds the sweep lock, show it as "interrupted" and say how to resume it."""
    if not any(s.get("status") == "running" for s in sweeps):
        return sweeps
    from trader.errors import SweepLocked
    from trader.simulation.sweep import SweepLock

    try:
        with SweepLock(app.paths.run_dir):
            pass
    except SweepLocked:
        return sweeps  # a sweep is running now
    return [{**s, "status": "interrupted", "note": f"its process is gone; continue with --resume {s['id']}"}
            if s.get("status") == "running" else s for s in sweeps]


@sweep.command("show")
@click.argument("sweep_id")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Leaderboard rows (default: all).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a heatmap PNG of the score over two grid parameters.")
@click.option("--x", "x_param", default=None, help="Heatmap columns (default: the job's first grid key).")
@click.option("--y", "y_param", default=None, help="Heatmap rows (default: the job's second grid key).")
@click.option("--metric", default="score", show_default=True,
              type=click.Choice(["score", "sharpe", "dsr", "total_return", "max_drawdown", "trade_count",
                                 "profit_factor"]))
@click.option("--job", "job_name", default=None, help="Which job's grid to plot (default: the first).")
@click.pass_obj
@output(_render_show)
def sweep_show(app: AppContext, sweep_id: str, top: int | None, plot_path: str | None, x_param: str | None,
               y_param: str | None, metric: str, job_name: str | None) -> dict[str, Any]:
    """One sweep: its jobs, status and leaderboard (best first, with the Deflated Sharpe); --plot a heatmap."""
    from trader.simulation.sweep import get_sweep, leaderboard

    store = _store(app)
    info = _mark_orphans(app, [get_sweep(store, sweep_id)])[0]
    rows = leaderboard(store, sweep_id)
    out: dict[str, Any] = {"sweep": info, "leaderboard": rows[:top] if top else rows,
                           "warnings": _simulated_warnings(info)}
    if plot_path:
        out["plot"] = str(_heatmap(info, rows, plot_path, x_param, y_param, metric, job_name))
    return out


def _heatmap(info: dict[str, Any], rows: list[dict[str, Any]], path: str, x: str | None, y: str | None,
             metric: str, job_name: str | None) -> Path:
    from trader.simulation.plot import plot_sweep_heatmap

    jobs = {j["name"]: j for j in info.get("jobs") or []}
    if job_name is not None and job_name not in jobs:
        raise click.UsageError(f"sweep {info['id']} has no job {job_name!r}; jobs: {', '.join(jobs)}")
    job = jobs[job_name] if job_name else next(iter(jobs.values()), {"name": None, "grid": {}})
    keys = list(job.get("grid") or {})
    x = x or (keys[0] if keys else None)
    y = y or next((k for k in keys if k != x), None)
    if x is None or y is None or x == y:
        raise click.UsageError(f"a heatmap needs two different grid parameters; job {job['name']!r} has "
                               f"{', '.join(keys) or 'none'}: pass --x and --y")
    missing = [p for p in (x, y) if keys and p not in keys]
    if missing:
        raise click.UsageError(f"job {job['name']!r} has no grid parameter {', '.join(missing)}; "
                               f"grid: {', '.join(keys)}")
    return plot_sweep_heatmap([r for r in rows if r.get("job") == job["name"]], x, y, path, metric=metric)


@sweep.command("overfit")
@click.argument("sweep_id")
@click.option("--job", "job_name", default=None, help="One job of the sweep (default: every job).")
@click.option("--blocks", type=int, default=16, show_default=True, help="CSCV blocks (even).")
@click.pass_obj
@output()
def sweep_overfit(app: AppContext, sweep_id: str, job_name: str | None, blocks: int) -> list[dict[str, Any]]:
    """Probability of backtest overfitting (PBO, by CSCV) of picking the best run of each sweep job."""
    from trader.simulation.research import sweep_overfit as pbo

    return pbo(_store(app), sweep_id, job=job_name, blocks=blocks)
