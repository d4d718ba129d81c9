"""Equity curve + drawdown chart of a stored run (matplotlib, Agg backend: no display needed)."""
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
