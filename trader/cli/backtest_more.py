"""``backtests compare`` and ``backtests delete`` (attached to the ``backtests`` group of trader/cli/backtest.py)."""
from __future__ import annotations

from typing import Any

import click

from trader.cli.backtest import _store, backtests
from trader.cli.core import AppContext, output


def _render_compare(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    runs = data["runs"]
    table = Table("metric", *[r["id"] for r in runs], title="runs compared")
    for key in ("class_name", "bar_size", "provenance", "execution", "min_coverage", "score", "total_return", "cagr", "sharpe",
                "max_drawdown", "profit_factor", "trade_count", "periods_per_year"):
        table.add_row(key, *[f"{r.get(key):.4g}" if isinstance(r.get(key), float) else str(r.get(key))
                             for r in runs])
    console.print(table)
    if data.get("plot"):
        console.print(f"equity curves: {data['plot']}")


@backtests.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the equity curves (each rebased to 1.0) in one PNG.")
@click.pass_obj
@output(_render_compare)
def backtests_compare(app: AppContext, run_ids: tuple[str, ...], plot_path: str | None) -> dict[str, Any]:
    """Metrics of several runs side by side (with provenance and coverage); --plot their equity curves."""
    from trader.simulation.research import compare_runs, plot_compare

    if len(run_ids) < 2:
        raise click.UsageError("compare needs at least 2 run ids")
    store = _store(app)
    out: dict[str, Any] = {"runs": compare_runs(store, list(run_ids))}
    if plot_path:
        out["plot"] = str(plot_compare(store, list(run_ids), plot_path))
    return out


@backtests.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.pass_obj
@output()
def backtests_delete(app: AppContext, run_ids: tuple[str, ...]) -> dict[str, Any]:
    """Delete stored runs and their validations (nothing is deleted when an id is unknown)."""
    from trader.simulation.research import delete_runs

    return {"deleted": delete_runs(_store(app), list(dict.fromkeys(run_ids)))}
