"""Reading stored runs side by side: PBO over a sweep's runs, comparing runs, deleting runs.

- `sweep_overfit`: the probability of backtest overfitting (CSCV, `walkforward.pbo_cscv`) of picking the best run
  of a sweep job, from the per-bar returns of every run of that job (all runs of a job share one bar index).
- `compare_runs`: metrics of several runs side by side, with provenance and coverage; `plot_compare` draws
  their equity curves (each rebased to 1.0) in one PNG.
- `delete_runs`: removes runs and their stored verdicts.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.errors import BacktestError, NotFound

if TYPE_CHECKING:
    from trader.data.store import DuckStore

COMPARE_METRICS = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "profit_factor", "win_rate",
                   "trade_count", "time_in_market", "periods_per_year")


def sweep_overfit(store: DuckStore, sweep_id: str, *, job: str | None = None, blocks: int = 16
                  ) -> list[dict[str, Any]]:
    """PBO by CSCV per job of a sweep (or one `job`): each run is a configuration, its per-bar returns a
    column. BacktestError when a job has fewer than 2 runs or too few bars for `blocks`."""
    import numpy as np

    from trader.simulation.store import equity_values
    from trader.simulation.sweep import get_sweep
    from trader.simulation.sweep_rank import period_returns as _period_returns
    from trader.simulation.walkforward import pbo_cscv

    info = get_sweep(store, sweep_id)
    names = [j["name"] for j in info["jobs"]]
    if job is not None and job not in names:
        raise NotFound(f"sweep {sweep_id} has no job {job!r} (jobs: {', '.join(names)})")
    out = []
    for name in [job] if job else names:
        rows = store.execute("SELECT id, capital, equity, equity_v, equity_seg FROM backtest_runs "
                             "WHERE sweep_id = ? AND sweep_job = ? ORDER BY id", [sweep_id, name], write=False)
        close = store.execute("SELECT close FROM sweep_equity_index WHERE sweep_id = ? AND sweep_job = ?",
                              [sweep_id, name], write=False)
        close = close[0][0] if close else None
        if len(rows) < 2:
            raise BacktestError(f"sweep {sweep_id} job {name!r}: PBO needs at least 2 runs, it has {len(rows)}")
        rets = [_period_returns(float(cap), equity_values(eq, blob, seg, close)) for _, cap, eq, blob, seg in rows]
        t = min(len(r) for r in rets)  # equal unless bars changed on a resume: keep the common tail
        matrix = np.column_stack([r[-t:] for r in rets])
        result = pbo_cscv(matrix, blocks=blocks)
        out.append({"sweep_id": sweep_id, "job": name, "runs": len(rows), "periods": t, "pbo": result.pbo,
                    "blocks": result.blocks, "splits": result.combinations, "logit_median": result.logit_median,
                    "oos_loss_rate": result.oos_loss_rate, "meaning": result.meaning})
    return out


def compare_runs(store: DuckStore, run_ids: list[str]) -> list[dict[str, Any]]:
    """One row per run: id, strategy, class, params, conIds, bar size, provenance, lowest coverage, score and
    the `COMPARE_METRICS`. NotFound names an unknown id."""
    from trader.simulation.store import get_run

    rows = []
    for rid in run_ids:
        r = get_run(store, rid)
        rows.append({"id": rid, "strategy": r["strategy"], "class_name": r["class_name"], "params": r["params"],
                     "conids": r["conids"], "bar_size": r["bar_size"], "start": r["start_ts"], "end": r["end_ts"],
                     "provenance": r["provenance"], "min_coverage": r["min_coverage"], "score": r["score"],
                     **{k: r["metrics"].get(k) for k in COMPARE_METRICS}})
    return rows


def plot_compare(store: DuckStore, run_ids: list[str], out: str | Path) -> Path:
    """PNG of the runs' equity curves, each divided by its starting capital, on one chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from trader.simulation.store import get_run

    fig, ax = plt.subplots(figsize=(10, 5))
    for rid in run_ids:
        r = get_run(store, rid)
        t = pd.to_datetime(r["equity"]["t"], utc=True, format="mixed")
        v = np.asarray(r["equity"]["v"], float) / float(r["capital"])
        ax.plot(t, v, lw=1, label=f"{rid} {r['class_name']} ({r['provenance']})")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_ylabel("equity / starting capital")
    ax.set_title(f"{len(run_ids)} runs compared")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def delete_runs(store: DuckStore, run_ids: list[str]) -> int:
    """Delete runs and their validations (one transaction); NotFound before anything is deleted when an id is
    unknown. Returns how many runs were deleted."""
    from trader.simulation.store import get_run

    for rid in run_ids:
        get_run(store, rid)
    with store.transaction():
        for rid in run_ids:
            store.execute("DELETE FROM run_validations WHERE run_id = ?", [rid])
            store.execute("DELETE FROM backtest_runs WHERE id = ?", [rid])
    return len(run_ids)
