"""Charts for discovery commands, drawn headless (matplotlib's Agg backend; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def depth_chart(bids: Sequence[dict[str, Any]], asks: Sequence[dict[str, Any]], path: Path,
                title: str = "market depth") -> Path:
    """A depth chart: cumulative size by price, bids (green) left of the touch, asks (red) right; returns
    ``path`` (parents created)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for levels, colour, label in ((bids, "tab:green", "bids"), (asks, "tab:red", "asks")):
            prices = [lv["price"] for lv in levels]
            cumulative, total = [], 0.0
            for lv in levels:
                total += lv["size"]
                cumulative.append(total)
            if prices:
                ax.step(prices, cumulative, where="post", color=colour, label=label)
                ax.fill_between(prices, cumulative, step="post", color=colour, alpha=0.25)
        ax.set_xlabel("price")
        ax.set_ylabel("cumulative size")
        ax.set_title(title)
        ax.legend(loc="upper center")
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path


def implied_chart(curve: Sequence[Sequence[float]], path: Path, *, title: str, spot: float | None = None,
                  forward: float | None = None, percentiles: Sequence[dict[str, Any]] = ()) -> Path:
    """The implied (risk-neutral) density at expiry: the curve, the spot and forward, the 5th–95th percentile
    band shaded; returns ``path`` (parents created)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xs, ys = [p[0] for p in curve], [p[1] for p in curve]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ax.plot(xs, ys, color="tab:blue", label="implied density")
        pct = {int(p["pct"]): p["price"] for p in percentiles}
        if 5 in pct and 95 in pct:
            ax.axvspan(pct[5], pct[95], color="tab:blue", alpha=0.1, label="5th–95th percentile")
        for value, colour, label in ((spot, "tab:gray", "spot"), (forward, "tab:orange", "forward")):
            if value:
                ax.axvline(value, color=colour, linestyle="--", label=label)
        ax.set_xlabel("underlying price at expiry")
        ax.set_ylabel("probability density")
        ax.set_title(title)
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
