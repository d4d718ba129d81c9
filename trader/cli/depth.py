"""``depth SYMBOL``: the order book (reqMktDepth) as a table and a PNG depth chart (headless matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trader.cli.core import AppContext, output

TRADER = "trader_service"


def _render(out: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table("bid size", "bid", "ask", "ask size", title=f"{out['symbol']} depth ({out['exchange']})")
    bids, asks = out["bids"], out["asks"]
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else {}
        a = asks[i] if i < len(asks) else {}
        table.add_row(f"{b['size']:,.0f}" if b else "", f"{b['price']:.2f}" if b else "",
                      f"{a['price']:.2f}" if a else "", f"{a['size']:,.0f}" if a else "")
    console.print(table)
    if out.get("chart"):
        console.print(f"chart: {out['chart']}")


@click.command()
@click.argument("symbol")
@click.option("--rows", default=5, show_default=True, type=click.IntRange(1, 20), help="Levels per side.")
@click.option("--smart", is_flag=True, help="SMART depth, consolidated across exchanges.")
@click.option("--exchange", default=None, help="One exchange's book (e.g. ISLAND, ARCA).")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the PNG (default: the reports directory).")
@click.option("--no-chart", is_flag=True, help="Levels only, no PNG.")
@click.pass_obj
@output(_render)
def depth(app: AppContext, symbol: str, rows: int, smart: bool, exchange: str | None, chart_path: str | None,
          no_chart: bool) -> dict[str, Any]:
    """The order book of SYMBOL: levels (price, size) a side and a PNG depth chart."""
    out = app.call(TRADER, "depth", symbol.upper(), rows=rows, smart=smart, exchange=exchange, timeout=30.0)
    if not no_chart:
        import time

        from trader.tools.charts import depth_chart

        path = Path(chart_path) if chart_path else \
            app.paths.report_dir / f"depth_{out['symbol']}_{time.strftime('%Y%m%d_%H%M%S')}.png"
        out["chart"] = str(depth_chart(out["bids"], out["asks"], path, title=f"{out['symbol']} market depth"))
    return out
