"""Charts of backtests (matplotlib, Agg backend: no display needed): a run's equity + drawdown, a sweep's heatmap."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_run(run: dict[str, Any], out: str | Path) -> Path:
    """Write a PNG with the equity curve (top) and drawdown (bottom) of a run from `store.get_run`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    t = pd.to_datetime(run["equity"]["t"], utc=True, format="mixed")
    v = np.asarray(run["equity"]["v"], float)
    dd = v / np.maximum.accumulate(v) - 1.0
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[3, 1])
    ax1.plot(t, v, lw=1)
    ax1.set_title(f"{run['class_name']} {run['id']}  sharpe={run['metrics'].get('sharpe') or 0:.2f}")
    ax1.set_ylabel("equity")
    ax2.fill_between(t, dd * 100, 0, color="tab:red", alpha=0.5)
    ax2.set_ylabel("drawdown %")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _sort_key(v: Any) -> tuple[int, Any]:
    # Numbers in numeric order, then everything else as text: grid values can be ints, floats, bools, strings.
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v)
    return (1, str(v))


def sweep_grid(rows: list[dict[str, Any]], x: str, y: str, metric: str = "score"
               ) -> tuple[list[Any], list[Any], list[list[float]]]:
    """Pivot leaderboard rows to (x values, y values, cells[y][x]) of `metric`; when other grid dimensions
    exist, a cell holds the best value over them; NaN where no run exists."""
    best: dict[tuple[Any, Any], float] = {}
    for r in rows:
        params = r.get("params") or {}
        if x not in params or y not in params:
            continue
        value = r.get(metric)
        v = float(value) if isinstance(value, (int, float)) and value == value else float("nan")
        key = (params[x], params[y])
        if key not in best or (v == v and not v <= best[key]):  # NaN never beats a number
            best[key] = v
    if not best:
        keys = sorted({k for r in rows for k in (r.get("params") or {})})
        raise ValueError(f"no run has both parameters {x!r} and {y!r} (parameters: {', '.join(keys) or 'none'})")
    xs = sorted({k[0] for k in best}, key=_sort_key)
    ys = sorted({k[1] for k in best}, key=_sort_key)
    cells = [[best.get((xv, yv), float("nan")) for xv in xs] for yv in ys]
    return xs, ys, cells


def plot_sweep_heatmap(rows: list[dict[str, Any]], x: str, y: str, path: str | Path,
                       metric: str = "score") -> Path:
    """Write a PNG heatmap of `metric` over grid parameters `x` (columns) and `y` (rows) of a sweep's
    leaderboard rows; other dimensions collapse to their best value. Raises ValueError for unknown params."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    xs, ys, cells = sweep_grid(rows, x, y, metric)
    from matplotlib.colors import TwoSlopeNorm

    data = np.ma.masked_invalid(np.asarray(cells, float))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(xs) + 2.5), max(3.0, 0.6 * len(ys) + 1.5)))
    lo, hi = (float(data.min()), float(data.max())) if data.count() else (0.0, 0.0)
    # Zero in the middle of the colours when values straddle it: red loses, green wins.
    norm = TwoSlopeNorm(vmin=lo, vcenter=0.0, vmax=hi) if lo < 0 < hi else None
    im = ax.imshow(data, cmap="RdYlGn", aspect="auto", origin="lower", norm=norm)
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    others = sorted({k for r in rows for k in (r.get("params") or {})} - {x, y})
    ax.set_title(f"{metric} over {x} × {y}" + (f"\n(best over {', '.join(others)})" if others else ""))
    if len(xs) * len(ys) <= 400:  # labels stay readable up to ~20×20
        for i in range(len(ys)):
            for j in range(len(xs)):
                if not np.ma.is_masked(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label=metric)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
