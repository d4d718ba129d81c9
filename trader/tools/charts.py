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
